/**
 * WGSL kernels of 2-D convolution (NCHW, float32): forward, backward to the input, backward to
 * the weight. The math and the CPU reference are in `tensor/ops/conv2d.ts`; this file only
 * maps them onto the GPU.
 *
 * All three are implicit GEMMs: no im2col buffer is materialised (for AlexNet-mini's conv2 at
 * batch 128 it would hold 17M floats, 69 MB, and one pass writing it would take about half as
 * long as the GEMM itself on lavapipe, at gpu/README.md's 11-22 ns per element).
 *
 * - **Forward** `y[n, o, i, j] = bias[o] + Σ_{c,p,q} w[o, c, p, q] · x[n, c, i·sh + p − ph, j·sw + q − pw]`.
 *   One invocation owns a *strip*: 4 output channels × 8 neighbouring columns of two output
 *   rows. For each (c, p) it loads each row's input segment once (7·sw + KW values, as
 *   aligned vec4s from a zero-padded copy of x) and reuses it for every tap q, and it loads
 *   the 4 channels' weights as one vec4 from a transposed copy of w
 *   ([groups, C/g·KH·KW, O/g rounded up to 4]) and reuses it for both rows.
 * - **Backward to the input, stride 1** is the same kernel: dx is the convolution of dy with the
 *   kernel flipped and its in/out channels swapped, padded by KH − 1 − ph (jax-js's rule: the
 *   transposed convolution; stride 1 needs no dilation).
 * - **Backward to the input, stride > 1** is a gather: each dx element visits only the taps p
 *   with (h + ph − p) % sh == 0 (those are the output rows whose window covers it). WGSL has no
 *   float atomics, so a scatter from dy is never an option (gpu/README.md, "Numerics"). Only
 *   AlexNet's conv1 has stride 4, and its input (the image) needs no gradient, so this path is
 *   kept simple (one vec4 of input channels per invocation) rather than fast.
 * - **Backward to the weight** `dw[o, c, p, q] = Σ_{n,i,j} dy[n, o, i, j] · x[n, c, i·sh + p − ph, j·sw + q − pw]`:
 *   each invocation owns 4 output channels × one input channel × all kernel rows (two for
 *   kernels over 25 taps) × all KW taps, and loops over the batch and the output positions in 8-column strips of the same
 *   padded input. It reads 4 channels of dy as one vec4 from a channels-last copy when each dy
 *   element feeds enough products to pay for the copy. When O/4·(C/g)·KH/rows invocations are
 *   too few to keep every core busy (AlexNet-mini's conv1 has 24), the batch's output rows
 *   are split into slices in the same dispatch, whose partial sums a reduction adds in a fixed
 *   order (deterministic, unlike atomics). Slices also bound each invocation's loop: at most
 *   4096 strip rows, whatever the batch (gpu/README.md, "Limits").
 *
 * - **Dilation** runs the same kernels on the kernel spread out with zeros between its taps
 *   (see `spread` at the end of the file).
 *
 * Why no shared-memory tiles: on the software adapter (lavapipe) workgroup memory is as slow
 * as a storage buffer and barriers cost extra, while register blocking cuts the loads that
 * dominate (gpu/README.md, "Speed"). On a real GPU shared-memory tiles would pay; no real GPU was
 * available to tune and verify such a path, so every adapter runs this one.
 *
 * Shapes other than the batch size are baked into the WGSL as constants (the runtime caches a
 * pipeline per source text), so the tap loops unroll; the batch size and the offsets of the
 * current batch chunk come in the uniform params.
 *
 * This is the one WGSL file of conv2d (the op's math and reference kernels are in
 * tensor/ops/conv2d.ts): its three kernels and the TypeScript that chunks the batch and
 * dispatches them. Each kernel's source is a template to check against the formula above.
 *
 * @module
 */

import type { Conv2dParams } from "../../backend/backend.ts";
import {
  type GpuKernel,
  type GpuRuntime,
  type GpuStorage,
  packParams,
  WORKGROUP_INDEX,
} from "../runtime.ts";
import {
  type BatchChunk,
  batchChunks,
  bindSamples,
  checkIndexRange,
  checkLoop,
} from "../chunks.ts";
import { reduceGpu } from "./reduce.ts";

/** Invocations per workgroup of every kernel in this file. */
const WORKGROUP = 64;

/** WGSL: the entry point of the kernels with one invocation per element, numbered `index`. */
const INDEX_MAIN = `@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let index = ${WORKGROUP_INDEX} * ${WORKGROUP}u + lid;`;

// ---------------------------------------------------------------------------------------------
// Weight layouts

/**
 * Rearranges w [O, C/g, KH, KW] into a vec4-friendly matrix per group.
 * - `"forward"`: [g][(c·KH + p)·KW + q][o rounded up to 4] = w[g·O/g + o, c, p, q].
 * - `"transposed"`: [g][(o·KH + p)·KW + q][c rounded up to 4] = w[g·O/g + o, c, p', q'], with
 *   p' = KH − 1 − p and q' = KW − 1 − q when `flip` (the transposed convolution of stride 1).
 * Padding lanes are 0, so kernels may read whole vec4s.
 */
function weightLayout(
  rt: GpuRuntime,
  w: GpuStorage,
  p: Conv2dParams,
  mode: "forward" | "transposed",
  flip: boolean,
): GpuStorage {
  const groups = p.groups, outPerGroup = p.o / groups, inPerGroup = p.c / groups;
  const taps = p.kh * p.kw;
  const [rows, cols] = mode === "forward"
    ? [inPerGroup * taps, outPerGroup]
    : [outPerGroup * taps, inPerGroup];
  const cols4 = Math.ceil(cols / 4) * 4;
  const total = groups * rows * cols4;
  const name = `conv2d_weight_${mode}${flip ? "_flipped" : ""}`;
  const code = `
@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${INDEX_MAIN}
  if (index >= ${total}u) { return; }
  let col = index % ${cols4}u;
  let row = (index / ${cols4}u) % ${rows}u;
  let g = index / ${cols4 * rows}u;
  if (col >= ${cols}u) { out[index] = 0.0; return; }
  let tap = row % ${taps}u;
  let other = row / ${taps}u;
  ${
    mode === "forward"
      ? `let o = col; let c = other; let pq = tap;`
      : `let o = other; let c = col; let pq = ${flip ? `${taps - 1}u - tap` : "tap"};`
  }
  out[index] = w[((g * ${outPerGroup}u + o) * ${inPerGroup}u + c) * ${taps}u + pq];
}`;
  const out = rt.alloc("float32", total);
  rt.dispatch({ name, code }, [w], [out], null, Math.ceil(total / WORKGROUP));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Forward (and stride-1 backward to the input)

/** The shape of one strip convolution: input [n, groups·inPerGroup, height, width]. */
interface StripShape {
  groups: number;
  inPerGroup: number;
  outPerGroup: number;
  height: number;
  width: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  /** May be negative (the transposed convolution of a convolution padded by more than KH − 1). */
  padH: number;
  padW: number;
  outH: number;
  outW: number;
}

/**
 * Columns per strip: 8, or the whole row when it is narrower (a strip past the right edge
 * computes waste). Measured on lavapipe (AlexNet-mini conv2, batch 128, each variant against
 * the same unpadded baseline in one process): 8 columns ran the forward 1.7-1.8x faster than
 * the baseline, 4 columns 1.05-1.3x. More accumulators than 8 vec4s spill registers (8 SIMD
 * lanes, 16 vector registers); 8 channels × 4 columns loads the weights twice as often.
 */
function stripColumns(outW: number): number {
  return Math.min(8, outW);
}

/**
 * The zero-padded copy of the input that the strip kernels read: [n, C, paddedH, paddedW],
 * row r, column s holding x[r − padH, s − padW] (0 outside). Padding up front removes every
 * bounds check from the inner loops, and with paddedW a multiple of 4 and strips starting at
 * multiples of 4 columns each strip's row segment is a few aligned vec4 loads instead of
 * (columns − 1)·sw + KW scalar ones: loads are what cost on lavapipe (gpu/README.md, "Speed").
 * The copy is one elementwise pass over x: about 2-4% of AlexNet-mini's conv2 (gpu/README.md puts
 * such a pass at 11-22 ns per element).
 */
interface PaddedGeometry {
  columns: number;
  stripsPerRow: number;
  /** vec4 loads per strip row segment. */
  vectors: number;
  paddedH: number;
  paddedW: number;
}

function paddedGeometry(s: StripShape): PaddedGeometry {
  const columns = stripColumns(s.outW);
  const stripsPerRow = Math.ceil(s.outW / columns);
  const vectors = Math.ceil(((columns - 1) * s.strideW + s.kw) / 4);
  return {
    columns,
    stripsPerRow,
    vectors,
    paddedH: (s.outH - 1) * s.strideH + s.kh,
    // Strip k's segment starts at column k·columns·sw, a multiple of 4 (columns is 8 when
    // there is more than one strip per row).
    paddedW: (stripsPerRow - 1) * columns * s.strideW + 4 * vectors,
  };
}

function padKernel(s: StripShape, geo: PaddedGeometry): GpuKernel {
  const channels = s.groups * s.inPerGroup;
  const paddedPlane = geo.paddedH * geo.paddedW;
  const code = `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> padded: array<f32>;
struct Params { n: u32, xOffset: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${INDEX_MAIN}
  if (index >= params.n * ${channels * paddedPlane}u) { return; }
  let plane = index / ${paddedPlane}u;
  let h = i32((index / ${geo.paddedW}u) % ${geo.paddedH}u) - (${s.padH});
  let w = i32(index % ${geo.paddedW}u) - (${s.padW});
  var v = 0.0;
  if (u32(h) < ${s.height}u && u32(w) < ${s.width}u) {
    v = x[params.xOffset + plane * ${s.height * s.width}u + u32(h) * ${s.width}u + u32(w)];
  }
  padded[index] = v;
}`;
  return { name: "conv2d_pad_input", code };
}

/**
 * Pads samples `chunk` of x into a fresh storage (see {@link PaddedGeometry}); the caller
 * frees it after recording the kernels that read it.
 */
function padChunk(
  rt: GpuRuntime,
  x: GpuStorage,
  s: StripShape,
  geo: PaddedGeometry,
  chunk: BatchChunk,
): GpuStorage {
  const channels = s.groups * s.inPerGroup;
  const xs = bindSamples(rt, x, channels * s.height * s.width, chunk);
  const length = chunk.count * channels * geo.paddedH * geo.paddedW;
  const padded = rt.alloc("float32", length);
  rt.dispatch(
    padKernel(s, geo),
    [xs.binding],
    [padded],
    packParams([chunk.count, xs.offset]),
    Math.ceil(length / WORKGROUP),
  );
  return padded;
}

/** Elements of one padded sample. */
function paddedSample(s: StripShape, geo: PaddedGeometry): number {
  return s.groups * s.inPerGroup * geo.paddedH * geo.paddedW;
}

/**
 * Output rows per strip invocation. Two rows share every weight load (each (c, p) step loads
 * KW weight vec4s for 2·8 columns instead of 8) at the price of 16 vec4 accumulators, which
 * spill to function memory, cheap next to storage loads on lavapipe. Against one row, in one
 * process, on AlexNet-mini at batch 128: forward 1.05-1.4x faster per layer (conv2 1.2-1.4x),
 * backward to the input 0.9-1.15x (about even in total).
 */
const STRIP_ROWS = 2;

/** The padded input of the strip kernels: zero rows below for a last, half-used row pair. */
function stripGeometry(s: StripShape): PaddedGeometry {
  const geo = paddedGeometry(s), rows = STRIP_ROWS;
  return { ...geo, paddedH: geo.paddedH + (Math.ceil(s.outH / rows) * rows - s.outH) * s.strideH };
}

/**
 * The unrolled body of one (c, p) step of {@link stripKernel}: both rows' input segments as
 * vec4 loads, then for each tap q the 4 channels' weights and one fma per (row, column).
 */
function stripTapLines(s: StripShape, geo: PaddedGeometry): string[] {
  const rows = STRIP_ROWS, columns = geo.columns;
  const out4 = Math.ceil(s.outPerGroup / 4);
  const rowVectors = geo.paddedW / 4;
  const segment = (row: number, t: number) => `v${row}_${t >> 2}[${t & 3}]`;
  const lines: string[] = [];
  for (let row = 0; row < rows; row++) {
    for (let k = 0; k < geo.vectors; k++) {
      lines.push(`      let v${row}_${k} = x[at + ${row * s.strideH * rowVectors + k}u];`);
    }
  }
  lines.push(
    `      let wRow = (g * ${s.inPerGroup * s.kh}u + c * ${s.kh}u + p) * ${s.kw * out4}u + ob;`,
  );
  for (let q = 0; q < s.kw; q++) {
    lines.push(`      let w${q} = w[wRow + ${q * out4}u];`);
    for (let row = 0; row < rows; row++) {
      for (let r = 0; r < columns; r++) {
        lines.push(
          `      acc${row}_${r} = fma(vec4f(${
            segment(row, r * s.strideW + q)
          }), w${q}, acc${row}_${r});`,
        );
      }
    }
  }
  return lines;
}

/** The guarded stores of {@link stripKernel}'s accumulators (plus the bias) into y. */
function stripStoreLines(s: StripShape, columns: number, hasBias: boolean): string[] {
  const rows = STRIP_ROWS;
  const outPlane = s.outH * s.outW;
  const stores: string[] = [];
  for (let row = 0; row < rows; row++) {
    for (let r = 0; r < columns; r++) {
      stores.push(`  if (i + ${row}u < ${s.outH}u && j0 + ${r}u < ${s.outW}u) {`);
      for (let e = 0; e < 4; e++) {
        stores.push(
          `    if (ob * 4u + ${e}u < ${s.outPerGroup}u) { y[yBase + ${
            e * outPlane + row * s.outW + r
          }u] = acc${row}_${r}[${e}]${hasBias ? ` + bias[o0 + ${e}u]` : ""}; }`,
        );
      }
      stores.push(`  }`);
    }
  }
  return stores;
}

function stripKernel(s: StripShape, hasBias: boolean, name: string): GpuKernel {
  const geo = stripGeometry(s), rows = STRIP_ROWS;
  const { columns, stripsPerRow } = geo;
  const rowGroups = Math.ceil(s.outH / rows);
  const out4 = Math.ceil(s.outPerGroup / 4);
  const outChannels = s.groups * s.outPerGroup;
  const rowVectors = geo.paddedW / 4;
  const lines = stripTapLines(s, geo);
  const stores = stripStoreLines(s, columns, hasBias);
  const accumulators: string[] = [];
  for (let row = 0; row < rows; row++) {
    for (let r = 0; r < columns; r++) accumulators.push(`  var acc${row}_${r} = vec4f();`);
  }
  const code = `
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> w: array<vec4f>;
${hasBias ? "@group(0) @binding(2) var<storage, read> bias: array<f32>;" : ""}
@group(0) @binding(${hasBias ? 3 : 2}) var<storage, read_write> y: array<f32>;
struct Params { n: u32, yOffset: u32 }
@group(0) @binding(${hasBias ? 4 : 3}) var<uniform> params: Params;
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let strips = params.n * ${rowGroups * stripsPerRow}u;
  let stripGroups = (strips + ${WORKGROUP - 1}u) / ${WORKGROUP}u;
  let group = ${WORKGROUP_INDEX};
  if (group >= stripGroups * ${s.groups * out4}u) { return; }
  let block = group / stripGroups;          // which 4 output channels
  let g = block / ${out4}u;
  let ob = block % ${out4}u;
  let strip = (group % stripGroups) * ${WORKGROUP}u + lid;
  if (strip >= strips) { return; }
  let n = strip / ${rowGroups * stripsPerRow}u;
  let i = ((strip / ${stripsPerRow}u) % ${rowGroups}u) * ${rows}u;
  let j0 = (strip % ${stripsPerRow}u) * ${columns}u;
  let planes = (n * ${s.groups * s.inPerGroup}u + g * ${s.inPerGroup}u) * ${geo.paddedH}u;
  let segmentStart = (j0 / 4u) * ${s.strideW}u; // j0 is 0 or a multiple of 8
${accumulators.join("\n")}
  for (var c = 0u; c < ${s.inPerGroup}u; c++) {
    for (var p = 0u; p < ${s.kh}u; p++) {
      let at = (planes + c * ${geo.paddedH}u + i * ${s.strideH}u + p) * ${rowVectors}u + segmentStart;
${lines.join("\n")}
    }
  }
  let o0 = g * ${s.outPerGroup}u + ob * 4u;
  let yBase = params.yOffset + ((n * ${outChannels}u + o0) * ${s.outH}u + i) * ${s.outW}u + j0;
${stores.join("\n")}
}`;
  return { name, code };
}

function runStrip(
  rt: GpuRuntime,
  name: string,
  s: StripShape,
  n: number,
  x: GpuStorage,
  wLayout: GpuStorage,
  bias: GpuStorage | null,
): GpuStorage {
  const geo = stripGeometry(s);
  const inSample = s.groups * s.inPerGroup * s.height * s.width;
  const outSample = s.groups * s.outPerGroup * s.outH * s.outW;
  const padSample = paddedSample(s, geo);
  checkIndexRange(name, "input elements", n * Math.max(inSample, padSample));
  checkIndexRange(name, "output elements", n * outSample);
  checkLoop(
    name,
    "input channels per group x kernel rows",
    s.inPerGroup * s.kh,
    "use fewer channels per group (groups) or run this layer on the CPU",
  );
  const kernel = stripKernel(s, bias !== null, name);
  const y = rt.alloc("float32", n * outSample);
  const stripsPerSample = Math.ceil(s.outH / STRIP_ROWS) * geo.stripsPerRow;
  const blocks = s.groups * Math.ceil(s.outPerGroup / 4);
  for (const chunk of batchChunks(rt, name, n, [inSample, padSample, outSample])) {
    const padded = padChunk(rt, x, s, geo, chunk);
    const ys = bindSamples(rt, y, outSample, chunk);
    const workgroups = blocks * Math.ceil(chunk.count * stripsPerSample / WORKGROUP);
    rt.dispatch(
      kernel,
      bias ? [padded, wLayout, bias] : [padded, wLayout],
      [ys.binding],
      packParams([chunk.count, ys.offset]),
      workgroups,
    );
    rt.free(padded);
  }
  return y;
}

/** The forward with dilation 1 (see {@link conv2dForwardGpu}). */
function conv2dForwardUndilated(
  rt: GpuRuntime,
  x: GpuStorage,
  w: GpuStorage,
  bias: GpuStorage | null,
  p: Conv2dParams,
): GpuStorage {
  const wLayout = weightLayout(rt, w, p, "forward", false);
  const y = runStrip(
    rt,
    "conv2d_forward",
    forwardShape(p),
    p.n,
    x,
    wLayout,
    bias,
  );
  rt.free(wLayout);
  return y;
}

// ---------------------------------------------------------------------------------------------
// Backward to the input

function inputGatherKernel(p: Conv2dParams): GpuKernel {
  const inPerGroup = p.c / p.groups, outPerGroup = p.o / p.groups;
  const in4 = Math.ceil(inPerGroup / 4);
  const plane = p.h * p.w, outPlane = p.outH * p.outW;
  const code = `
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
struct Params { n: u32, dyOffset: u32, dxOffset: u32 }
@group(0) @binding(3) var<uniform> params: Params;
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  // Positions vary fastest so that one workgroup shares a block of 4 input channels.
  let positions = params.n * ${plane}u;
  let index = ${WORKGROUP_INDEX} * ${WORKGROUP}u + lid;
  if (index >= positions * ${p.groups * in4}u) { return; }
  let block = index / positions;
  let g = block / ${in4}u;
  let cb = block % ${in4}u;
  let position = index % positions;
  let n = position / ${plane}u;
  let h = (position / ${p.w}u) % ${p.h}u;
  let x = position % ${p.w}u;
  let hp = h + ${p.padH}u;
  let xp = x + ${p.padW}u;
  var acc = vec4f();
  for (var o = 0u; o < ${outPerGroup}u; o++) {
    let dyPlane = params.dyOffset + (n * ${p.o}u + g * ${outPerGroup}u + o) * ${outPlane}u;
    // Only taps p ≡ h + ph (mod sh) land on an output row: i = (h + ph − p) / sh.
    for (var kp = hp % ${p.strideH}u; kp < ${p.kh}u && kp <= hp; kp += ${p.strideH}u) {
      let i = (hp - kp) / ${p.strideH}u;
      if (i >= ${p.outH}u) { continue; }
      for (var kq = xp % ${p.strideW}u; kq < ${p.kw}u && kq <= xp; kq += ${p.strideW}u) {
        let j = (xp - kq) / ${p.strideW}u;
        if (j >= ${p.outW}u) { continue; }
        let wv = w[((g * ${outPerGroup}u + o) * ${
    p.kh * p.kw
  }u + kp * ${p.kw}u + kq) * ${in4}u + cb];
        acc = fma(vec4f(dy[dyPlane + i * ${p.outW}u + j]), wv, acc);
      }
    }
  }
  let dxBase = params.dxOffset + (n * ${p.c}u + g * ${inPerGroup}u + cb * 4u) * ${plane}u + h * ${p.w}u + x;
  for (var e = 0u; e < 4u; e++) {
    if (cb * 4u + e < ${inPerGroup}u) { dx[dxBase + e * ${plane}u] = acc[e]; }
  }
}`;
  return { name: "conv2d_backward_input_gather", code };
}

/** The input gradient with dilation 1 (see {@link conv2dBackwardInputGpu}). */
function conv2dBackwardInputUndilated(
  rt: GpuRuntime,
  dy: GpuStorage,
  w: GpuStorage,
  p: Conv2dParams,
): GpuStorage {
  if (p.strideH === 1 && p.strideW === 1) {
    // The transposed convolution: swap channel roles, flip the kernel, pad by K − 1 − pad.
    const wLayout = weightLayout(rt, w, p, "transposed", true);
    const dx = runStrip(
      rt,
      "conv2d_backward_input",
      {
        groups: p.groups,
        inPerGroup: p.o / p.groups,
        outPerGroup: p.c / p.groups,
        height: p.outH,
        width: p.outW,
        kh: p.kh,
        kw: p.kw,
        strideH: 1,
        strideW: 1,
        padH: p.kh - 1 - p.padH,
        padW: p.kw - 1 - p.padW,
        outH: p.h,
        outW: p.w,
      },
      p.n,
      dy,
      wLayout,
      null,
    );
    rt.free(wLayout);
    return dx;
  }
  const name = "conv2d_backward_input_gather";
  const inSample = p.c * p.h * p.w, outSample = p.o * p.outH * p.outW;
  checkIndexRange(name, "input elements", p.n * inSample);
  checkIndexRange(name, "output elements", p.n * outSample);
  const wLayout = weightLayout(rt, w, p, "transposed", false);
  checkLoop(
    name,
    "output channels per group x taps per input cell",
    (p.o / p.groups) * Math.ceil(p.kh / p.strideH) * Math.ceil(p.kw / p.strideW),
    "use fewer channels per group (groups) or run this layer on the CPU",
  );
  const kernel = inputGatherKernel(p);
  const dx = rt.alloc("float32", p.n * inSample);
  const blocks = p.groups * Math.ceil(p.c / p.groups / 4);
  for (const chunk of batchChunks(rt, name, p.n, [inSample, outSample])) {
    const dys = bindSamples(rt, dy, outSample, chunk), dxs = bindSamples(rt, dx, inSample, chunk);
    const workgroups = Math.ceil(blocks * chunk.count * p.h * p.w / WORKGROUP);
    rt.dispatch(
      kernel,
      [dys.binding, wLayout],
      [dxs.binding],
      packParams([chunk.count, dys.offset, dxs.offset]),
      workgroups,
    );
  }
  rt.free(wLayout);
  return dx;
}

// ---------------------------------------------------------------------------------------------
// Backward to the weight

/** dy [n, O, outH, outW] → [n, outH, outW, g, O/g rounded up to 4] (channels last, zero padded). */
function channelsLastKernel(p: Conv2dParams): GpuKernel {
  const outPerGroup = p.o / p.groups, out4 = Math.ceil(outPerGroup / 4) * 4;
  const outPlane = p.outH * p.outW, row = p.groups * out4;
  const code = `
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
struct Params { n: u32, dyOffset: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${INDEX_MAIN}
  if (index >= params.n * ${outPlane * row}u) { return; }
  let slot = index % ${row}u;
  let position = (index / ${row}u) % ${outPlane}u;
  let n = index / ${outPlane * row}u;
  let g = slot / ${out4}u;
  let o = slot % ${out4}u;
  if (o >= ${outPerGroup}u) { out[index] = 0.0; return; }
  out[index] = dy[params.dyOffset + (n * ${p.o}u + g * ${outPerGroup}u + o) * ${outPlane}u + position];
}`;
  return { name: "conv2d_dy_channels_last", code };
}

/** The forward's strip shape (the weight gradient reads the same padded input). */
function forwardShape(p: Conv2dParams): StripShape {
  return {
    groups: p.groups,
    inPerGroup: p.c / p.groups,
    outPerGroup: p.o / p.groups,
    height: p.h,
    width: p.w,
    kh: p.kh,
    kw: p.kw,
    strideH: p.strideH,
    strideW: p.strideW,
    padH: p.padH,
    padW: p.padW,
    outH: p.outH,
    outW: p.outW,
  };
}

/**
 * Kernel rows per weight-gradient invocation: rows share every dy load (the loads that
 * dominate) at the price of rows·KW vec4 accumulators. Kernels of up to 25 taps take all
 * their rows: AlexNet-mini's conv2 gradient (5x5, 25 accumulators) ran 1.4x faster than with
 * two rows and conv4's (3x3) 1.7x; the extra accumulators spill to function memory, which is
 * far cheaper than storage loads on lavapipe. Larger kernels (full AlexNet's 11x11 conv1) keep
 * two rows.
 */
function weightGradRows(p: Conv2dParams): number {
  return p.kh * p.kw <= 25 ? p.kh : Math.min(p.kh, 2);
}

/** The padded input of the weight gradient, with zero rows for a last, partial group of rows. */
function weightGradGeometry(p: Conv2dParams): PaddedGeometry {
  const geo = paddedGeometry(forwardShape(p));
  const rows = weightGradRows(p);
  return { ...geo, paddedH: geo.paddedH + Math.ceil(p.kh / rows) * rows - p.kh };
}

/**
 * Whether the weight gradient reads dy from a channels-last copy (one vec4 load per column
 * instead of four scalar loads). The copy is a pass over dy, which pays when each dy element
 * feeds many products: (C/g)·KH·KW of them. AlexNet-mini's conv1 (25 per element) reads dy
 * in place, which ran its gradient 1.3x faster than with the copy.
 */
function dyChannelsLast(p: Conv2dParams): boolean {
  return (p.c / p.groups) * p.kh * p.kw >= 64;
}

/**
 * The unrolled body of one 8-column strip of {@link weightGradKernel}: the kernel rows' input
 * segments as vec4 loads, then column by column one dy vector and one fma per (row, tap).
 */
function weightGradStripLines(
  p: Conv2dParams,
  geo: PaddedGeometry,
  channelsLast: boolean,
): string[] {
  const rows = weightGradRows(p), columns = geo.columns;
  const out4 = Math.ceil(p.o / p.groups / 4);
  const rowVectors = geo.paddedW / 4;
  const body: string[] = [];
  for (let row = 0; row < rows; row++) {
    for (let k = 0; k < geo.vectors; k++) {
      body.push(`        let v${row}_${k} = x[at + ${row * rowVectors + k}u];`);
    }
  }
  for (let r = 0; r < columns; r++) {
    // Column by column, so that only one dy vector is live besides the accumulators.
    // Columns past the right edge read a clamped dy and multiply it by 0.
    const column = `min(j0 + ${r}u, ${p.outW - 1}u)`;
    const load = channelsLast
      ? `dy[dyRow + ${column} * ${p.groups * out4}u]`
      : `vec4f(${[0, 1, 2, 3].map((e) => `dy[dyRow${e} + ${column}]`).join(", ")})`;
    body.push(`        let d${r} = select(vec4f(), ${load}, j0 + ${r}u < ${p.outW}u);`);
    for (let row = 0; row < rows; row++) {
      for (let q = 0; q < p.kw; q++) {
        const t = r * p.strideW + q;
        body.push(
          `        acc${row}_${q} = fma(vec4f(v${row}_${t >> 2}[${
            t & 3
          }]), d${r}, acc${row}_${q});`,
        );
      }
    }
  }
  return body;
}

/** The guarded stores of {@link weightGradKernel}'s accumulators into its slice of dw. */
function weightGradStoreLines(p: Conv2dParams): string[] {
  const rows = weightGradRows(p);
  const inPerGroup = p.c / p.groups, outPerGroup = p.o / p.groups;
  const taps = p.kh * p.kw;
  const weightSize = p.o * inPerGroup * taps;
  const stores: string[] = [];
  for (let row = 0; row < rows; row++) {
    stores.push(`  if (kp + ${row}u < ${p.kh}u) {`);
    for (let e = 0; e < 4; e++) {
      stores.push(`    if (ob * 4u + ${e}u < ${outPerGroup}u) {`);
      stores.push(
        `      let at = params.outOffset + slice * ${weightSize}u + ((g * ${outPerGroup}u + ob * 4u + ${e}u) * ${inPerGroup}u + c) * ${taps}u + (kp + ${row}u) * ${p.kw}u;`,
      );
      for (let q = 0; q < p.kw; q++) stores.push(`      dw[at + ${q}u] = acc${row}_${q}[${e}];`);
      stores.push(`    }`);
    }
    stores.push(`  }`);
  }
  return stores;
}

function weightGradKernel(p: Conv2dParams): GpuKernel {
  const channelsLast = dyChannelsLast(p);
  const geo = weightGradGeometry(p);
  const rows = weightGradRows(p), rowPairs = Math.ceil(p.kh / rows);
  const { columns, stripsPerRow } = geo;
  const inPerGroup = p.c / p.groups, outPerGroup = p.o / p.groups;
  const out4 = Math.ceil(outPerGroup / 4);
  const invocations = p.groups * out4 * inPerGroup * rowPairs;
  const rowVectors = geo.paddedW / 4;
  const body = weightGradStripLines(p, geo, channelsLast);
  const stores = weightGradStoreLines(p);
  const accumulators: string[] = [];
  for (let row = 0; row < rows; row++) {
    for (let q = 0; q < p.kw; q++) accumulators.push(`  var acc${row}_${q} = vec4f();`);
  }
  const code = `
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> dy: array<${channelsLast ? "vec4f" : "f32"}>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;
struct Params { n: u32, slices: u32, rowsPerSlice: u32, outOffset: u32, dyOffset: u32 }
@group(0) @binding(3) var<uniform> params: Params;
${INDEX_MAIN}
  // Each slice of the chunk's samples writes its own partial sums (split-K over the batch).
  let slice = index / ${invocations}u;
  if (slice >= params.slices) { return; }
  // (c, kernel rows) vary fastest: a workgroup shares its 4 output channels' dy.
  let kp = (index % ${rowPairs}u) * ${rows}u;
  let c = (index / ${rowPairs}u) % ${inPerGroup}u;
  let block = (index / ${inPerGroup * rowPairs}u) % ${p.groups * out4}u;
  let g = block / ${out4}u;
  let ob = block % ${out4}u;
${accumulators.join("\n")}
  // The slice's output rows, counted across samples: at most ${LOOP_ROWS} / strips per row.
  let firstRow = slice * params.rowsPerSlice;
  for (var unit = firstRow; unit < min(firstRow + params.rowsPerSlice, params.n * ${p.outH}u); unit++) {
    let n = unit / ${p.outH}u;
    let i = unit % ${p.outH}u;
    let plane = (n * ${p.c}u + g * ${inPerGroup}u + c) * ${geo.paddedH}u;
    {
      let rowAt = (plane + i * ${p.strideH}u + kp) * ${rowVectors}u;
${
    channelsLast
      ? `      let dyRow = (n * ${p.outH}u + i) * ${p.outW * p.groups * out4}u + g * ${out4}u + ob;`
      : [0, 1, 2, 3].map((e) =>
        `      let dyRow${e} = params.dyOffset + ((n * ${p.o}u + g * ${outPerGroup}u + min(ob * 4u + ${e}u, ${
          outPerGroup - 1
        }u)) * ${p.outH}u + i) * ${p.outW}u;`
      ).join("\n")
  }
      for (var strip = 0u; strip < ${stripsPerRow}u; strip++) {
        let j0 = strip * ${columns}u;
        // The strip's segment starts j0 / 4 · sw vec4s into the row.
        let at = rowAt + strip * ${stripsPerRow > 1 ? (columns / 4) * p.strideW : 0}u;
${body.join("\n")}
      }
    }
  }
${stores.join("\n")}
}`;
  return { name: "conv2d_backward_weight", code };
}

/**
 * Invocations the weight gradient wants before it splits the batch into slices: enough
 * workgroups for every core of the software adapter, or to fill a real GPU. Slices run in the
 * same dispatch (consecutive dispatches do not overlap on lavapipe).
 */
function targetInvocations(rt: GpuRuntime): number {
  return rt.isSoftware ? 16 * WORKGROUP : 64 * 1024;
}

/** Output rows (times strips per row) one weight-gradient invocation may loop over. */
const LOOP_ROWS = 4096;

/**
 * How the weight gradient splits each batch chunk's output rows (counted across its samples)
 * into slices, each writing its own `weightSize` partial sums: enough slices to reach
 * {@link targetInvocations}, and enough that no invocation loops over more than
 * {@link LOOP_ROWS} strip rows (gpu/README.md, "Limits"); all partials must fit one binding.
 */
function sliceChunks(
  rt: GpuRuntime,
  chunks: { count: number }[],
  invocations: number,
  weightSize: number,
  p: Conv2dParams,
  stripsPerRow: number,
): { slices: { rowsPerSlice: number; count: number }[]; totalSlices: number } {
  const maxSlices = Math.floor(rt.maxBindingBytes / (weightSize * 4));
  const wanted = Math.ceil(targetInvocations(rt) / invocations);
  const longest = Math.floor(LOOP_ROWS / stripsPerRow);
  if (longest < 1) {
    throw new RangeError(
      `conv2d_backward_weight: an output row of ${p.outW} columns is wider than the kernel's ` +
        `${LOOP_ROWS * 8} columns; split the input into narrower pieces`,
    );
  }
  const perChunk = Math.max(1, Math.min(wanted, Math.floor(maxSlices / chunks.length)));
  const slices = chunks.map((chunk) => {
    const rows = chunk.count * p.outH;
    const rowsPerSlice = Math.min(longest, Math.ceil(rows / Math.min(perChunk, rows)));
    return { rowsPerSlice, count: Math.ceil(rows / rowsPerSlice) };
  });
  const totalSlices = slices.reduce((total, s) => total + s.count, 0);
  if (totalSlices > maxSlices) {
    throw new RangeError(
      `conv2d_backward_weight: ${totalSlices} slices of ${weightSize} partial sums exceed one ` +
        `binding of ${rt.maxBindingBytes} bytes; use a smaller batch`,
    );
  }
  return { slices, totalSlices };
}

/** The weight gradient with dilation 1 (see {@link conv2dBackwardWeightGpu}). */
function conv2dBackwardWeightUndilated(
  rt: GpuRuntime,
  dy: GpuStorage,
  x: GpuStorage,
  p: Conv2dParams,
): GpuStorage {
  const name = "conv2d_backward_weight";
  const shape = forwardShape(p), geo = weightGradGeometry(p);
  const inSample = p.c * p.h * p.w, outSample = p.o * p.outH * p.outW;
  const padSample = paddedSample(shape, geo);
  const outPerGroup = p.o / p.groups, out4 = Math.ceil(outPerGroup / 4);
  const lastSample = p.outH * p.outW * p.groups * out4 * 4;
  checkIndexRange(name, "input elements", p.n * Math.max(inSample, padSample));
  checkIndexRange(name, "output elements", p.n * outSample);
  const weightSize = p.o * (p.c / p.groups) * p.kh * p.kw;
  const invocations = p.groups * out4 * (p.c / p.groups) * Math.ceil(p.kh / weightGradRows(p));
  // Memory chunks bound what one dispatch reads; slices split each chunk's samples between
  // invocations. All slices' partial sums share one binding.
  const chunks = batchChunks(rt, name, p.n, [inSample, padSample, outSample, lastSample]);
  const { slices, totalSlices } = sliceChunks(
    rt,
    chunks,
    invocations,
    weightSize,
    p,
    geo.stripsPerRow,
  );
  const kernel = weightGradKernel(p);
  const transpose = channelsLastKernel(p);
  const partial = rt.alloc("float32", totalSlices * weightSize);
  let sliceBase = 0;
  chunks.forEach((chunk, index) => {
    const dys = bindSamples(rt, dy, outSample, chunk);
    const padded = padChunk(rt, x, shape, geo, chunk);
    let dyBinding = dys.binding, dyLast: GpuStorage | null = null;
    if (dyChannelsLast(p)) {
      dyLast = rt.alloc("float32", chunk.count * lastSample);
      rt.dispatch(
        transpose,
        [dys.binding],
        [dyLast],
        packParams([chunk.count, dys.offset]),
        Math.ceil(chunk.count * lastSample / WORKGROUP),
      );
      dyBinding = dyLast;
    }
    const { count, rowsPerSlice } = slices[index];
    rt.dispatch(
      kernel,
      [padded, dyBinding],
      [partial],
      packParams([chunk.count, count, rowsPerSlice, sliceBase * weightSize, dys.offset]),
      Math.ceil(count * invocations / WORKGROUP),
    );
    sliceBase += count;
    if (dyLast) rt.free(dyLast);
    rt.free(padded);
  });
  if (totalSlices === 1) return partial;
  // The slices' partial sums, [slices, weight], summed over the slices (a tree when many).
  const total = reduceGpu(rt, "sum", partial, [totalSlices, weightSize], [0]);
  rt.free(partial);
  return total;
}

// ---------------------------------------------------------------------------------------------
// Dilation

/**
 * A dilated kernel (tap i reads input row oh·sh − ph + i·dilationH) is the undilated kernel of
 * (KH − 1)·dilationH + 1 rows holding the taps at multiples of the dilation and zeros between
 * them: same output size, same sums. So dilation runs the kernels above on that spread kernel,
 * and the weight gradient keeps the spread gradient's taps at those multiples. The zeros cost
 * multiply-adds, which is the price of one path to prove instead of two.
 */
function spread(p: Conv2dParams): Conv2dParams {
  return {
    ...p,
    kh: (p.kh - 1) * p.dilationH + 1,
    kw: (p.kw - 1) * p.dilationW + 1,
    dilationH: 1,
    dilationW: 1,
  };
}

/**
 * Maps between w [O, C/g, KH, KW] and the spread [O, C/g, KH', KW']: `"spread"` writes the
 * spread kernel (zeros off the taps), `"gather"` reads the taps back out of a spread gradient.
 */
function mapTaps(
  rt: GpuRuntime,
  source: GpuStorage,
  p: Conv2dParams,
  direction: "spread" | "gather",
): GpuStorage {
  const wide = spread(p);
  const filters = p.o * (p.c / p.groups);
  const total = filters * (direction === "spread" ? wide.kh * wide.kw : p.kh * p.kw);
  const code = `
@group(0) @binding(0) var<storage, read> source: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${INDEX_MAIN}
  if (index >= ${total}u) { return; }
${
    direction === "spread"
      ? `  let kernelIndex = index / ${wide.kh * wide.kw}u;
  let row = (index / ${wide.kw}u) % ${wide.kh}u;
  let col = index % ${wide.kw}u;
  var v = 0.0;
  if (row % ${p.dilationH}u == 0u && col % ${p.dilationW}u == 0u) {
    v = source[(kernelIndex * ${p.kh}u + row / ${p.dilationH}u) * ${p.kw}u + col / ${p.dilationW}u];
  }
  out[index] = v;`
      : `  let kernelIndex = index / ${p.kh * p.kw}u;
  let row = (index / ${p.kw}u) % ${p.kh}u;
  let col = index % ${p.kw}u;
  out[index] = source[(kernelIndex * ${wide.kh}u + row * ${p.dilationH}u) * ${wide.kw}u + col * ${p.dilationW}u];`
  }
}`;
  const out = rt.alloc("float32", total);
  rt.dispatch(
    { name: `conv2d_dilation_${direction}`, code },
    [source],
    [out],
    null,
    Math.ceil(total / WORKGROUP),
  );
  return out;
}

function dilated(p: Conv2dParams): boolean {
  return p.dilationH !== 1 || p.dilationW !== 1;
}

/** y = conv2d(x, w) + bias on the GPU: x [N, C, H, W], w [O, C/g, KH, KW] → y [N, O, outH, outW]. */
export function conv2dForwardGpu(
  rt: GpuRuntime,
  x: GpuStorage,
  w: GpuStorage,
  bias: GpuStorage | null,
  p: Conv2dParams,
): GpuStorage {
  if (!dilated(p)) return conv2dForwardUndilated(rt, x, w, bias, p);
  const wide = mapTaps(rt, w, p, "spread");
  const y = conv2dForwardUndilated(rt, x, wide, bias, spread(p));
  rt.free(wide);
  return y;
}

/** dL/dx [N, C, H, W] of conv2d on the GPU, from dy [N, O, outH, outW] and w. */
export function conv2dBackwardInputGpu(
  rt: GpuRuntime,
  dy: GpuStorage,
  w: GpuStorage,
  p: Conv2dParams,
): GpuStorage {
  if (!dilated(p)) return conv2dBackwardInputUndilated(rt, dy, w, p);
  const wide = mapTaps(rt, w, p, "spread");
  const dx = conv2dBackwardInputUndilated(rt, dy, wide, spread(p));
  rt.free(wide);
  return dx;
}

/** dL/dw [O, C/g, KH, KW] of conv2d on the GPU, from dy [N, O, outH, outW] and x. */
export function conv2dBackwardWeightGpu(
  rt: GpuRuntime,
  dy: GpuStorage,
  x: GpuStorage,
  p: Conv2dParams,
): GpuStorage {
  if (!dilated(p)) return conv2dBackwardWeightUndilated(rt, dy, x, p);
  const wide = conv2dBackwardWeightUndilated(rt, dy, x, spread(p));
  const dw = mapTaps(rt, wide, p, "gather");
  rt.free(wide);
  return dw;
}
