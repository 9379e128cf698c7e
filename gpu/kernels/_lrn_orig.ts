/**
 * WGSL kernels of local response normalization across channels (paper section 3.3), forward
 * and backward. The math and the CPU reference are in `tensor/ops/lrn.ts`:
 *
 *     s_c = k + alpha · Σ_{j ∈ win(c)} x_j²,   y_c = x_c · s_c^(−β)
 *     dx_i = dy_i · s_i^(−β) − 2αβ · x_i · Σ_{c : i ∈ win(c)} dy_c · x_c · s_c^(−β−1)
 *
 * win(c) = [c − floor(size/2), c + floor((size−1)/2)] clipped to the channels; the channels c
 * whose window contains i are the mirrored window [i − floor((size−1)/2), i + floor(size/2)].
 *
 * The backward runs in two passes: the first recomputes s (the forward's normalizer is not
 * kept) and stores s^(−β) and dy·x·s^(−β−1) per element; the second sums the latter over the
 * mirrored window. A single pass would recompute s for every neighbour: size² loads per
 * element instead of about 3·size.
 *
 * Every kernel works on whole samples (all channels), so a batch larger than one binding is
 * processed a few samples at a time.
 *
 * @module
 */

import type { LrnParams } from "../../backend/backend.ts";
import { type GpuRuntime, type GpuStorage, packParams } from "../runtime.ts";
import { batchChunks, bindSamples } from "./conv2d.ts";

const WORKGROUP = 64;

/** Constants and the normalizer s of element `index` (in a chunk-relative sample layout). */
function lrnHeader(p: LrnParams): string {
  const below = Math.floor(p.size / 2), above = Math.floor((p.size - 1) / 2);
  return `
const C = ${p.c}u; const PLANE = ${p.h * p.w}u;
const ALPHA = ${f32Literal(p.alpha)}; const BETA = ${f32Literal(p.beta)}; const K = ${
    f32Literal(p.k)
  };
fn linearIndex(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * ${WORKGROUP}u + lid;
}
// s = k + alpha · Σ x_j² over win(c) = [c − ${below}, c + ${above}] clipped to [0, C).
fn normalizer(c: u32, at: u32) -> f32 {
  var total = 0.0;
  let first = select(0u, c - ${below}u, c >= ${below}u);
  let last = min(c + ${above}u, C - 1u);
  let plane0 = at - c * PLANE;
  for (var j = first; j <= last; j++) {
    let v = x[plane0 + j * PLANE];
    total = fma(v, v, total);
  }
  return K + ALPHA * total;
}`;
}

/** A WGSL f32 literal that round-trips `value` (an exponent form for tiny alphas). */
function f32Literal(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`lrn: parameter ${value} is not finite`);
  return `f32(${Math.fround(value).toExponential(9)})`;
}

function checkLrn(kernel: string, p: LrnParams): void {
  if (p.n * p.c * p.h * p.w >= 2 ** 32) {
    throw new RangeError(
      `${kernel}: ${p.n * p.c * p.h * p.w} elements overflow the kernel's 32-bit indices`,
    );
  }
}

/** LRN forward on the GPU: y = x · (k + alpha · Σ_window x²)^(−β). */
export function lrnForwardGpu(rt: GpuRuntime, x: GpuStorage, p: LrnParams): GpuStorage {
  checkLrn("lrn_forward", p);
  const code = `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
struct Params { count: u32, xOffset: u32, yOffset: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${lrnHeader(p)}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let index = linearIndex(wid, nwg, lid);
  if (index >= params.count) { return; }
  let at = params.xOffset + index;
  let c = (index / PLANE) % C;
  y[params.yOffset + index] = x[at] * pow(normalizer(c, at), -BETA);
}`;
  const sample = p.c * p.h * p.w;
  const y = rt.alloc("float32", p.n * sample);
  for (const chunk of batchChunks(rt, "lrn_forward", p.n, [sample])) {
    const xs = bindSamples(rt, x, sample, chunk), ys = bindSamples(rt, y, sample, chunk);
    const count = chunk.count * sample;
    rt.dispatch(
      { name: "lrn_forward", code },
      [xs.binding],
      [ys.binding],
      packParams([count, xs.offset, ys.offset]),
      Math.ceil(count / WORKGROUP),
    );
  }
  return y;
}

/** LRN backward on the GPU: dL/dx from x and dy, recomputing the normalizer. */
export function lrnBackwardGpu(
  rt: GpuRuntime,
  x: GpuStorage,
  dy: GpuStorage,
  p: LrnParams,
): GpuStorage {
  checkLrn("lrn_backward", p);
  const below = Math.floor((p.size - 1) / 2), above = Math.floor(p.size / 2);
  // Pass 1: scaled = s^(−β), weighted = dy·x·s^(−β−1) = dy·x·scaled / s.
  const terms = `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> scaled: array<f32>;
@group(0) @binding(3) var<storage, read_write> weighted: array<f32>;
struct Params { count: u32, xOffset: u32, dyOffset: u32 }
@group(0) @binding(4) var<uniform> params: Params;
${lrnHeader(p)}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let index = linearIndex(wid, nwg, lid);
  if (index >= params.count) { return; }
  let at = params.xOffset + index;
  let s = normalizer((index / PLANE) % C, at);
  let sb = pow(s, -BETA);
  scaled[index] = sb;
  weighted[index] = dy[params.dyOffset + index] * x[at] * sb / s;
}`;
  // Pass 2: dx_i = dy_i · scaled_i − 2αβ · x_i · Σ_{c ∈ [i − below, i + above]} weighted_c.
  const combine = `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> scaled: array<f32>;
@group(0) @binding(3) var<storage, read> weighted: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
struct Params { count: u32, xOffset: u32, dyOffset: u32, dxOffset: u32 }
@group(0) @binding(5) var<uniform> params: Params;
${lrnHeader(p)}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let index = linearIndex(wid, nwg, lid);
  if (index >= params.count) { return; }
  let i = (index / PLANE) % C;
  let first = select(0u, i - ${below}u, i >= ${below}u);
  let last = min(i + ${above}u, C - 1u);
  let plane0 = index - i * PLANE;
  var total = 0.0;
  for (var c = first; c <= last; c++) { total += weighted[plane0 + c * PLANE]; }
  dx[params.dxOffset + index] = dy[params.dyOffset + index] * scaled[index]
    - 2.0 * ALPHA * BETA * x[params.xOffset + index] * total;
}`;
  const sample = p.c * p.h * p.w;
  const dx = rt.alloc("float32", p.n * sample);
  for (const chunk of batchChunks(rt, "lrn_backward", p.n, [sample])) {
    const xs = bindSamples(rt, x, sample, chunk), dys = bindSamples(rt, dy, sample, chunk);
    const dxs = bindSamples(rt, dx, sample, chunk);
    const count = chunk.count * sample;
    const scaled = rt.alloc("float32", count), weighted = rt.alloc("float32", count);
    const groups = Math.ceil(count / WORKGROUP);
    rt.dispatch(
      { name: "lrn_backward_terms", code: terms },
      [xs.binding, dys.binding],
      [scaled, weighted],
      packParams([count, xs.offset, dys.offset]),
      groups,
    );
    rt.dispatch(
      { name: "lrn_backward", code: combine },
      [xs.binding, dys.binding, scaled, weighted],
      [dxs.binding],
      packParams([count, xs.offset, dys.offset, dxs.offset]),
      groups,
    );
    rt.free(scaled);
    rt.free(weighted);
  }
  return dx;
}
