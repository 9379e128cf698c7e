/**
 * WGSL kernels of local response normalization across channels (paper section 3.3), forward
 * and backward. The math and the CPU reference are in `tensor/ops/lrn.ts`:
 *
 *     s_c = k + alpha · Σ_{j ∈ win(c)} x_j²,   y_c = x_c · s_c^(−β)
 *     dx_i = dy_i · s_i^(−β) − 2αβ · x_i · Σ_{c : i ∈ win(c)} dy_c · x_c · s_c^(−β−1)
 *
 * win(c) = [c − below, c + above] with below = floor(size/2), above = floor((size−1)/2),
 * clipped to the channels; the channels c whose window contains i are the mirrored window
 * [i − above, i + below].
 *
 * **Blocking: one invocation per (n, h, w) column, sliding along the channels.** Every sum is
 * over a window of `size` neighbouring channels, so an invocation that walks the C channels of
 * one pixel keeps the last `size` values of x (and, backward, of the per-channel terms) in
 * registers and loads each x and dy element once per pass, instead of `size` times for an
 * invocation per element. Loads dominate on the software adapter (gpu/README.md, "Speed"), so
 * this ran the forward 2x and the backward 2.5-2.8x faster than one invocation per element
 * on AlexNet-mini's LRNs (whose N·H·W ≥ 21,632 columns still keep every core busy). Neighbouring invocations own
 * neighbouring pixels, so each channel step reads contiguous memory across a workgroup.
 *
 * The backward is one pass: at step e it loads x at channel e, completes s, s^(−β) and
 * dy·x·s^(−β−1) of channel c = e − above (whose window ends at e), and completes dx of
 * channel i = c − below (whose mirrored window ends at c). Windows are zero-padded past the
 * edges: fma(0, 0, t) and t + 0 are exact, so every sum adds the same terms in the same order
 * as a clipped loop.
 *
 * Deep tensors: channels are walked in blocks of {@link CHANNEL_BLOCK}, one invocation per
 * (block, pixel), each starting SIZE − 1 channels early to fill its windows, so no
 * invocation's loop grows with C. Every kernel works on whole samples (all channels), so a
 * batch larger than one binding is processed a few samples at a time.
 *
 * @module
 */

import type { LrnParams } from "../../backend/backend.ts";
import type { GpuRuntime, GpuStorage } from "../runtime.ts";
import { checkLoop, dispatchSamples, linearIndexWgsl } from "../chunks.ts";

const WORKGROUP = 64;

/**
 * Channels per invocation: a deep tensor's channels are cut into blocks, each walked by its
 * own invocation (which first loads the SIZE − 1 channels before its block), so no loop grows
 * with C (gpu/README.md, "Limits").
 */
const CHANNEL_BLOCK = 256;

function channelBlocks(p: LrnParams): number {
  return Math.ceil(p.c / CHANNEL_BLOCK);
}

/** Constants, the column of an invocation and the window helpers shared by both kernels. */
function lrnHeader(p: LrnParams): string {
  const below = Math.floor(p.size / 2), above = Math.floor((p.size - 1) / 2);
  return `
const C = ${p.c}u; const PLANE = ${p.h * p.w}u;
const SIZE = ${p.size}; const BELOW = ${below}; const ABOVE = ${above};
const BLOCKS = ${channelBlocks(p)}u; const BLOCK = ${CHANNEL_BLOCK};
const ALPHA = ${f32Literal(p.alpha)}; const BETA = ${f32Literal(p.beta)}; const K = ${
    f32Literal(p.k)
  };
${linearIndexWgsl(WORKGROUP)}
// Element offset of channel 0 of column \`column\` (= n·PLANE + h·W + w) in a chunk.
fn columnStart(column: u32) -> u32 {
  return (column / PLANE) * C * PLANE + column % PLANE;
}
// Shifts a window of SIZE values down by one and appends \`value\`.
fn push(window: ptr<function, array<f32, SIZE>>, value: f32) {
  for (var j = 0; j < SIZE - 1; j++) { (*window)[j] = (*window)[j + 1]; }
  (*window)[SIZE - 1] = value;
}
// s = k + alpha · Σ x_j² over a window of x (zeros past the channel edges).
fn normalizer(window: ptr<function, array<f32, SIZE>>) -> f32 {
  var total = 0.0;
  for (var j = 0; j < SIZE; j++) { total = fma((*window)[j], (*window)[j], total); }
  return K + ALPHA * total;
}`;
}

/** A WGSL f32 literal that round-trips `value` (an exponent form for tiny alphas). */
function f32Literal(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`lrn: parameter ${value} is not finite`);
  return `f32(${Math.fround(value).toExponential(9)})`;
}

function checkLrn(kernel: string, p: LrnParams): void {
  // Each channel step shifts and sums windows of SIZE values.
  checkLoop(
    kernel,
    "channel steps x window size",
    (CHANNEL_BLOCK + 2 * p.size) * 3 * p.size,
    "use a smaller size",
  );
  if (p.n * p.c * p.h * p.w >= 2 ** 32) {
    throw new RangeError(
      `${kernel}: ${p.n * p.c * p.h * p.w} elements overflow the kernel's 32-bit indices`,
    );
  }
}

/**
 * The head of both kernels' `main`: one invocation per (channel block, column), `start` the
 * element offset of its channel 0 and [c0, c1) its block of channels (the bindings and
 * `params.columns`, invocations in the chunk, are each kernel's own).
 */
const COLUMN_MAIN = `@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let index = linearIndex(wid, nwg, lid);
  if (index >= params.columns) { return; }
  let perBlock = params.columns / BLOCKS;
  let column = index % perBlock;
  let c0 = i32(index / perBlock) * BLOCK;
  let c1 = min(c0 + BLOCK, i32(C));
  let start = columnStart(column);`;

/** Runs `code` over the batch, one invocation per column: bindings [inputs..., a new output]. */
function runColumns(
  rt: GpuRuntime,
  name: string,
  code: string,
  p: LrnParams,
  inputs: GpuStorage[],
): GpuStorage {
  const sample = p.c * p.h * p.w;
  const output = rt.alloc("float32", p.n * sample);
  const operand = (storage: GpuStorage) => ({ storage, perSample: sample });
  dispatchSamples(
    rt,
    { name, code },
    p.n,
    inputs.map(operand),
    [operand(output)],
    p.h * p.w * channelBlocks(p),
    WORKGROUP,
  );
  return output;
}

/** LRN forward on the GPU: y = x · (k + alpha · Σ_window x²)^(−β). */
export function lrnForwardGpu(rt: GpuRuntime, x: GpuStorage, p: LrnParams): GpuStorage {
  checkLrn("lrn_forward", p);
  const code = `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
struct Params { columns: u32, xOffset: u32, yOffset: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${lrnHeader(p)}
${COLUMN_MAIN}
  // xs holds x at channels [e − SIZE + 1, e]: the window of channel c = e − ABOVE.
  var xs: array<f32, SIZE>;
  // From the first channel of the block's first window (zeros before channel 0).
  for (var e = c0 + ABOVE - SIZE + 1; e < c1 + ABOVE; e++) {
    push(&xs, select(0.0, x[params.xOffset + start + u32(e) * PLANE], e >= 0 && e < i32(C)));
    let c = e - ABOVE;
    if (c >= c0) {
      y[params.yOffset + start + u32(c) * PLANE] = xs[BELOW] * pow(normalizer(&xs), -BETA);
    }
  }
}`;
  return runColumns(rt, "lrn_forward", code, p, [x]);
}

/** LRN backward on the GPU: dL/dx from x and dy, recomputing the normalizer. */
export function lrnBackwardGpu(
  rt: GpuRuntime,
  x: GpuStorage,
  dy: GpuStorage,
  p: LrnParams,
): GpuStorage {
  checkLrn("lrn_backward", p);
  const code = `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
struct Params { columns: u32, xOffset: u32, dyOffset: u32, dxOffset: u32 }
@group(0) @binding(3) var<uniform> params: Params;
${lrnHeader(p)}
${COLUMN_MAIN}
  var xs: array<f32, SIZE>;        // x at channels [e − SIZE + 1, e]; x_i is xs[0]
  var weighted: array<f32, SIZE>;  // dy·x·s^(−β−1) at [c − SIZE + 1, c]: the mirrored window of i
  var direct: array<f32, SIZE>;    // dy·s^(−β) at [c − SIZE + 1, c]; that of i is direct[SIZE − 1 − BELOW]
  // From the first x that the first channel's mirrored window needs (zeros before channel 0).
  for (var e = c0 - SIZE + 1; e < c1 + SIZE - 1; e++) {
    push(&xs, select(0.0, x[params.xOffset + start + u32(e) * PLANE], e >= 0 && e < i32(C)));
    let c = e - ABOVE;
    var w = 0.0;
    var d = 0.0;
    if (c >= 0 && c < i32(C)) {
      let s = normalizer(&xs);
      let sb = pow(s, -BETA);
      let g = dy[params.dyOffset + start + u32(c) * PLANE];
      w = g * xs[BELOW] * sb / s;
      d = g * sb;
    }
    push(&weighted, w);
    push(&direct, d);
    let i = c - BELOW;
    if (i >= c0 && i < c1) {
      var total = 0.0;
      for (var j = 0; j < SIZE; j++) { total += weighted[j]; }
      dx[params.dxOffset + start + u32(i) * PLANE] = direct[SIZE - 1 - BELOW]
        - 2.0 * ALPHA * BETA * xs[0] * total;
    }
  }
}`;
  return runColumns(rt, "lrn_backward", code, p, [x, dy]);
}
