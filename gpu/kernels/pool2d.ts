/**
 * WGSL kernels of 2-D pooling over [N, C, H, W]: max (with argmax), average, adaptive average,
 * forward and backward. The math and the CPU reference are in `tensor/ops/pool.ts`.
 *
 * Forward: one invocation per output. Backward: one invocation per *input* element, looping
 * over the windows that contain it (a gather): overlapping windows (AlexNet's 3x3 stride 2
 * pooling, paper section 3.4) would otherwise need a float atomic add, which WGSL lacks.
 * Window i covers rows [i·s − pad, i·s − pad + k), so input row h lies in windows
 * i ∈ [ceil((h + pad − k + 1) / s), floor((h + pad) / s)].
 *
 * Windows are clipped to the input (a ceilMode window may reach past the padded input), and
 * average pooling divides as PyTorch does, with or without the padded cells (countIncludePad).
 * Windows of more than 1,024 cells (global pooling of a large map) run in two passes, rows
 * then columns, so that no invocation loops over a whole window (gpu/README.md, "Limits").
 *
 * Every kernel works on whole (n, c) planes, so a batch larger than one binding is processed
 * a few samples at a time (`dispatchSamples`, gpu/chunks.ts).
 *
 * @module
 */

import type { AdaptivePool2dParams, Pool2dParams } from "../../backend/backend.ts";
import type { GpuRuntime, GpuStorage } from "../runtime.ts";
import { checkLoop, dispatchSamples, linearIndexWgsl } from "../chunks.ts";

const WORKGROUP = 64;

/** WGSL shared by the kernels: bindings are declared by each kernel, this is the indexing. */
const PROLOGUE = `
${linearIndexWgsl(WORKGROUP)}
// x != x is always false on Vulkan (gpu/README.md, "Numerics"): test the bits.
fn isNan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
`;

const ENTRY = `@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32)`;

/** WGSL: output element `index` as its (n, c) plane and its window (i, j). */
const OUTPUT_WINDOW = `let plane = index / (OUT_H * OUT_W);
  let i = (index / OUT_W) % OUT_H;
  let j = index % OUT_W;`;

/** WGSL: input element `index` as its (n, c) plane and its cell (h, w). */
const INPUT_CELL = `let plane = index / (H * W);
  let h = (index / W) % H;
  let w = index % W;`;

/** WGSL bindings of both max-pool backward kernels: dy and argmax in, dx out. */
const MAX_BACKWARD_BINDINGS = `@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> argmax: array<i32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
struct Params { count: u32, dyOffset: u32, argmaxOffset: u32, dxOffset: u32 }
@group(0) @binding(3) var<uniform> params: Params;`;

/** Largest window (or bin) area one invocation loops over; larger ones run in two passes. */
const WINDOW_AREA_MAX = 1024;

/**
 * Window geometry as WGSL constants and functions: `rowRange(i)` / `colRange(j)`, the input
 * rows / columns of window (i, j) clipped to the input (a ceilMode window may reach past the
 * padded input: PLAN.md's contract), and `divisor(i, j)` of average pooling, PyTorch's: the
 * window clipped to the padded input when padding counts, else to the input.
 */
function windowConstants(p: Pool2dParams): string {
  return `
const H = ${p.h}u; const W = ${p.w}u; const OUT_H = ${p.outH}u; const OUT_W = ${p.outW}u;
const KH = ${p.kh}u; const KW = ${p.kw}u; const SH = ${p.strideH}u; const SW = ${p.strideW}u;
const PH = ${p.padH}u; const PW = ${p.padW}u; const COUNT_INCLUDE_PAD = ${p.countIncludePad};
fn rowRange(i: u32) -> vec2i {
  let s = i32(i * SH) - i32(PH);
  return vec2i(max(s, 0), min(s + i32(KH), i32(H)));
}
fn colRange(j: u32) -> vec2i {
  let s = i32(j * SW) - i32(PW);
  return vec2i(max(s, 0), min(s + i32(KW), i32(W)));
}
fn divisor(i: u32, j: u32) -> f32 {
  let rows = rowRange(i);
  let cols = colRange(j);
  if (!COUNT_INCLUDE_PAD) { return f32((rows.y - rows.x) * (cols.y - cols.x)); }
  let hs = i32(i * SH) - i32(PH);
  let ws = i32(j * SW) - i32(PW);
  let he = min(hs + i32(KH), i32(H + PH));
  let we = min(ws + i32(KW), i32(W + PW));
  return f32((he - hs) * (we - ws));
}`;
}

function checkPool(kernel: string, p: Pool2dParams | AdaptivePool2dParams): void {
  const elements = p.n * p.c * Math.max(p.h * p.w, p.outH * p.outW);
  if (elements >= 2 ** 32) {
    throw new RangeError(`${kernel}: ${elements} elements overflow the kernel's 32-bit indices`);
  }
}

/** Max pooling forward on the GPU: y [N, C, outH, outW] and argmax (int32 h*W+w in the plane). */
export function maxPool2dForwardGpu(
  rt: GpuRuntime,
  x: GpuStorage,
  p: Pool2dParams,
): { y: GpuStorage; argmax: GpuStorage } {
  checkPool("maxPool2d_forward", p);
  if (p.kh * p.kw > WINDOW_AREA_MAX) return twoPassPool(rt, "max", x, p, windowConstants(p));
  const code = `${PROLOGUE}${windowConstants(p)}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> argmax: array<i32>;
struct Params { count: u32, xOffset: u32, yOffset: u32, argmaxOffset: u32 }
@group(0) @binding(3) var<uniform> params: Params;
${ENTRY} {
  let index = linearIndex(wid, nwg, lid);
  if (index >= params.count) { return; }
  ${OUTPUT_WINDOW}
  let rows = rowRange(i);
  let cols = colRange(j);
  let base = params.xOffset + plane * H * W;
  // Padded cells are never visited, so they never win; ">" keeps the first maximum on ties,
  // and a NaN wins once and is never replaced, exactly as the CPU kernel.
  var best = 0.0;
  var bestIndex = -1;
  for (var row = rows.x; row < rows.y; row++) {
    for (var col = cols.x; col < cols.y; col++) {
      let at = row * i32(W) + col;
      let v = x[base + u32(at)];
      if (bestIndex < 0 || v > best || (isNan(v) && !isNan(best))) { best = v; bestIndex = at; }
    }
  }
  y[params.yOffset + index] = best;
  argmax[params.argmaxOffset + index] = bestIndex;
}`;
  const outSample = p.c * p.outH * p.outW;
  const y = rt.alloc("float32", p.n * outSample), argmax = rt.alloc("int32", p.n * outSample);
  dispatchSamples(
    rt,
    { name: "maxPool2d_forward", code },
    p.n,
    [{ storage: x, perSample: p.c * p.h * p.w }],
    [
      { storage: y, perSample: outSample },
      { storage: argmax, perSample: outSample },
    ],
    outSample,
    WORKGROUP,
  );
  return { y, argmax };
}

/** The loop over the windows that contain input cell (h, w); `body` sees `i`, `j`, `outAt`. */
function containingWindows(body: string): string {
  return `
  let hp = h + PH;
  let wp = w + PW;
  let iFrom = select(0u, (hp - KH + SH) / SH, hp + 1u > KH);  // ceil((hp − KH + 1) / SH)
  let jFrom = select(0u, (wp - KW + SW) / SW, wp + 1u > KW);
  let iTo = min(hp / SH + 1u, OUT_H);
  let jTo = min(wp / SW + 1u, OUT_W);
  for (var i = iFrom; i < iTo; i++) {
    for (var j = jFrom; j < jTo; j++) {
      let outAt = outPlane + i * OUT_W + j;
      ${body}
    }
  }`;
}

/** Checks that a per-cell backward's loop over {@link containingWindows} stays short. */
function checkContainingWindows(kernel: string, p: Pool2dParams): void {
  checkLoop(
    kernel,
    "windows containing an input cell",
    Math.ceil(p.kh / p.strideH) * Math.ceil(p.kw / p.strideW),
    "use a stride closer to the kernel size",
  );
}

/**
 * Max pooling backward on the GPU: each input sums dy of the windows whose argmax it is.
 *
 * One invocation owns a stride-sized block of input cells (SH x SW: 2x2 for AlexNet's 3x3
 * stride-2 pooling) and visits each window that overlaps the block once, adding its dy to the
 * cell its argmax names. One invocation per cell would load the argmax and dy of a window once
 * for every cell of the window it contains (9 loads of each per 2x2 block instead of 4); this
 * ran AlexNet-mini's pool1 backward 1.2-1.4x faster (the strided dx writes remain). For every cell the windows still come in
 * ascending (i, j) order, so the sums are those of the per-cell gather, bit for bit.
 */
export function maxPool2dBackwardGpu(
  rt: GpuRuntime,
  dy: GpuStorage,
  argmax: GpuStorage,
  p: Pool2dParams,
): GpuStorage {
  checkPool("maxPool2d_backward", p);
  if (p.strideH * p.strideW > MAX_BLOCK) return maxPool2dBackwardPerCell(rt, dy, argmax, p);
  checkLoop(
    "maxPool2d_backward",
    "windows overlapping a stride block",
    Math.ceil((p.kh + p.strideH - 1) / p.strideH) * Math.ceil((p.kw + p.strideW - 1) / p.strideW),
    "use a stride closer to the kernel size",
  );
  const blocksH = Math.ceil(p.h / p.strideH), blocksW = Math.ceil(p.w / p.strideW);
  const code = `${PROLOGUE}${windowConstants(p)}
const BLOCKS_H = ${blocksH}u; const BLOCKS_W = ${blocksW}u;
${MAX_BACKWARD_BINDINGS}
${ENTRY} {
  let index = linearIndex(wid, nwg, lid);
  if (index >= params.count) { return; }
  let plane = index / (BLOCKS_H * BLOCKS_W);
  let top = ((index / BLOCKS_W) % BLOCKS_H) * SH;
  let left = (index % BLOCKS_W) * SW;
  let outPlane = plane * OUT_H * OUT_W;
  // The windows overlapping rows [top, top + SH) and columns [left, left + SW).
  let iFrom = select(0u, (top + PH - KH + SH) / SH, top + PH + 1u > KH);
  let jFrom = select(0u, (left + PW - KW + SW) / SW, left + PW + 1u > KW);
  let iTo = min((top + SH - 1u + PH) / SH + 1u, OUT_H);
  let jTo = min((left + SW - 1u + PW) / SW + 1u, OUT_W);
  var total: array<f32, ${p.strideH * p.strideW}>;
  for (var i = iFrom; i < iTo; i++) {
    for (var j = jFrom; j < jTo; j++) {
      let outAt = outPlane + i * OUT_W + j;
      let at = u32(argmax[params.argmaxOffset + outAt]);
      let row = at / W - top;  // wraps to a large u32 above the block
      let col = at % W - left;
      if (row < SH && col < SW) { total[row * SW + col] += dy[params.dyOffset + outAt]; }
    }
  }
  let dxPlane = params.dxOffset + plane * H * W;
  for (var row = 0u; row < min(SH, H - top); row++) {
    for (var col = 0u; col < min(SW, W - left); col++) {
      dx[dxPlane + (top + row) * W + left + col] = total[row * SW + col];
    }
  }
}`;
  const inSample = p.c * p.h * p.w, outSample = p.c * p.outH * p.outW;
  const dx = rt.alloc("float32", p.n * inSample);
  dispatchSamples(
    rt,
    { name: "maxPool2d_backward", code },
    p.n,
    [
      { storage: dy, perSample: outSample },
      { storage: argmax, perSample: outSample },
    ],
    [{ storage: dx, perSample: inSample }],
    p.c * blocksH * blocksW,
    WORKGROUP,
  );
  return dx;
}

/**
 * Largest stride block (SH·SW cells) of the blocked max-pool backward: its cells' sums live in
 * a private array and are stored in a loop over the block. Larger strides (global pooling:
 * stride = window = the whole map) take {@link maxPool2dBackwardPerCell}.
 */
const MAX_BLOCK = 16;

/**
 * Max pooling backward, one invocation per input cell: it sums dy of the windows containing
 * it (in ascending (i, j) order, as the blocked kernel) whose argmax it is.
 */
function maxPool2dBackwardPerCell(
  rt: GpuRuntime,
  dy: GpuStorage,
  argmax: GpuStorage,
  p: Pool2dParams,
): GpuStorage {
  const name = "maxPool2d_backward_per_cell";
  checkContainingWindows(name, p);
  const code = `${PROLOGUE}${windowConstants(p)}
${MAX_BACKWARD_BINDINGS}
${ENTRY} {
  let index = linearIndex(wid, nwg, lid);
  if (index >= params.count) { return; }
  ${INPUT_CELL}
  let cell = i32(h * W + w);
  let outPlane = plane * OUT_H * OUT_W;
  var total = 0.0;
  ${
    containingWindows(
      "if (argmax[params.argmaxOffset + outAt] == cell) { total += dy[params.dyOffset + outAt]; }",
    )
  }
  dx[params.dxOffset + index] = total;
}`;
  const inSample = p.c * p.h * p.w, outSample = p.c * p.outH * p.outW;
  const dx = rt.alloc("float32", p.n * inSample);
  dispatchSamples(
    rt,
    { name, code },
    p.n,
    [{ storage: dy, perSample: outSample }, { storage: argmax, perSample: outSample }],
    [{ storage: dx, perSample: inSample }],
    inSample,
    WORKGROUP,
  );
  return dx;
}

/**
 * Runs a kernel of one input over the batch, one invocation per element it writes: the forward
 * reads x [N, C, H, W] and writes y [N, C, outH, outW], the backward reads dy and writes dx
 * [N, C, H, W]. `body` (WGSL, after `constants`) sees that element's `index` and the two
 * bindings by those names, with their offsets in `params` (`params.xOffset`, ...).
 */
function runOneInput(
  rt: GpuRuntime,
  op: "avgPool2d" | "adaptiveAvgPool2d",
  pass: "forward" | "backward",
  p: Pool2dParams | AdaptivePool2dParams,
  input: GpuStorage,
  constants: string,
  body: string,
): GpuStorage {
  const name = `${op}_${pass}`;
  checkPool(name, p);
  const [read, write] = pass === "forward" ? ["x", "y"] : ["dy", "dx"];
  const code = `${PROLOGUE}${constants}
@group(0) @binding(0) var<storage, read> ${read}: array<f32>;
@group(0) @binding(1) var<storage, read_write> ${write}: array<f32>;
struct Params { count: u32, ${read}Offset: u32, ${write}Offset: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${ENTRY} {
  let index = linearIndex(wid, nwg, lid);
  if (index >= params.count) { return; }${body}
}`;
  const inSample = p.c * p.h * p.w, outSample = p.c * p.outH * p.outW;
  const [readSample, writeSample] = pass === "forward"
    ? [inSample, outSample]
    : [outSample, inSample];
  const output = rt.alloc("float32", p.n * writeSample);
  dispatchSamples(
    rt,
    { name, code },
    p.n,
    [{ storage: input, perSample: readSample }],
    [{ storage: output, perSample: writeSample }],
    writeSample,
    WORKGROUP,
  );
  return output;
}

/** Average pooling forward on the GPU (the divisor as PyTorch's, see `windowConstants`). */
export function avgPool2dForwardGpu(rt: GpuRuntime, x: GpuStorage, p: Pool2dParams): GpuStorage {
  if (p.kh * p.kw > WINDOW_AREA_MAX) {
    checkPool("avgPool2d_forward", p);
    return twoPassPool(rt, "avg", x, p, windowConstants(p)).y;
  }
  const body = `
  ${OUTPUT_WINDOW}
  let rows = rowRange(i);
  let cols = colRange(j);
  let base = params.xOffset + plane * H * W;
  var total = 0.0;
  for (var row = rows.x; row < rows.y; row++) {
    for (var col = cols.x; col < cols.y; col++) {
      total += x[base + u32(row * i32(W) + col)];
    }
  }
  y[params.yOffset + index] = total / divisor(i, j);`;
  return runOneInput(rt, "avgPool2d", "forward", p, x, windowConstants(p), body);
}

/** Average pooling backward on the GPU: each input sums dy / divisor of its windows. */
export function avgPool2dBackwardGpu(rt: GpuRuntime, dy: GpuStorage, p: Pool2dParams): GpuStorage {
  checkContainingWindows("avgPool2d_backward", p);
  const body = `
  ${INPUT_CELL}
  let outPlane = plane * OUT_H * OUT_W;
  var total = 0.0;
  ${containingWindows("total += dy[params.dyOffset + outAt] / divisor(i, j);")}
  dx[params.dxOffset + index] = total;`;
  return runOneInput(rt, "avgPool2d", "backward", p, dy, windowConstants(p), body);
}

/** PyTorch's adaptive bins as WGSL: bin i of `outSize` over `inSize` is [floor(i·in/out), ceil((i+1)·in/out)). */
function adaptiveConstants(p: AdaptivePool2dParams): string {
  return `
const H = ${p.h}u; const W = ${p.w}u; const OUT_H = ${p.outH}u; const OUT_W = ${p.outW}u;
fn binStart(i: u32, inSize: u32, outSize: u32) -> u32 { return (i * inSize) / outSize; }
fn binEnd(i: u32, inSize: u32, outSize: u32) -> u32 { return ((i + 1u) * inSize + outSize - 1u) / outSize; }
fn rowRange(i: u32) -> vec2i { return vec2i(i32(binStart(i, H, OUT_H)), i32(binEnd(i, H, OUT_H))); }
fn colRange(j: u32) -> vec2i { return vec2i(i32(binStart(j, W, OUT_W)), i32(binEnd(j, W, OUT_W))); }
fn divisor(i: u32, j: u32) -> f32 {
  let rows = rowRange(i);
  let cols = colRange(j);
  return f32((rows.y - rows.x) * (cols.y - cols.x));
}`;
}

/** Adaptive average pooling forward on the GPU: each output the mean of its bin. */
export function adaptiveAvgPool2dForwardGpu(
  rt: GpuRuntime,
  x: GpuStorage,
  p: AdaptivePool2dParams,
): GpuStorage {
  // The largest bin spans ceil(H / outH) + 1 rows at most.
  const side = (size: number, out: number) => Math.min(size, Math.ceil(size / out) + 1);
  if (side(p.h, p.outH) * side(p.w, p.outW) > WINDOW_AREA_MAX) {
    checkPool("adaptiveAvgPool2d_forward", p);
    return twoPassPool(rt, "avg", x, p, adaptiveConstants(p)).y;
  }
  const body = `
  ${OUTPUT_WINDOW}
  let rowFrom = binStart(i, H, OUT_H); let rowTo = binEnd(i, H, OUT_H);
  let colFrom = binStart(j, W, OUT_W); let colTo = binEnd(j, W, OUT_W);
  let base = params.xOffset + plane * H * W;
  var total = 0.0;
  for (var row = rowFrom; row < rowTo; row++) {
    for (var col = colFrom; col < colTo; col++) { total += x[base + row * W + col]; }
  }
  y[params.yOffset + index] = total / f32((rowTo - rowFrom) * (colTo - colFrom));`;
  return runOneInput(rt, "adaptiveAvgPool2d", "forward", p, x, adaptiveConstants(p), body);
}

/** Adaptive average pooling backward on the GPU: each input sums dy / |bin| of the bins containing it. */
export function adaptiveAvgPool2dBackwardGpu(
  rt: GpuRuntime,
  dy: GpuStorage,
  p: AdaptivePool2dParams,
): GpuStorage {
  const binsPerCell = (size: number, out: number) => Math.ceil(out / size) + 1;
  checkLoop(
    "adaptiveAvgPool2d_backward",
    "bins containing an input cell",
    binsPerCell(p.h, p.outH) * binsPerCell(p.w, p.outW),
    "use an output size closer to the input's",
  );
  // Bin i contains h iff floor(i·H/outH) <= h < ceil((i+1)·H/outH), which holds only for
  // i in [floor(h·outH/H), ceil((h+1)·outH/H) − 1]; bins overlap when H is not a multiple.
  const body = `
  ${INPUT_CELL}
  let outPlane = params.dyOffset + plane * OUT_H * OUT_W;
  var total = 0.0;
  for (var i = (h * OUT_H) / H; i < min(binEnd(h, OUT_H, H), OUT_H); i++) {
    let rowFrom = binStart(i, H, OUT_H); let rowTo = binEnd(i, H, OUT_H);
    if (h < rowFrom || h >= rowTo) { continue; }
    for (var j = (w * OUT_W) / W; j < min(binEnd(w, OUT_W, W), OUT_W); j++) {
      let colFrom = binStart(j, W, OUT_W); let colTo = binEnd(j, W, OUT_W);
      if (w < colFrom || w >= colTo) { continue; }
      total += dy[outPlane + i * OUT_W + j] / f32((rowTo - rowFrom) * (colTo - colFrom));
    }
  }
  dx[params.dxOffset + index] = total;`;
  return runOneInput(rt, "adaptiveAvgPool2d", "backward", p, dy, adaptiveConstants(p), body);
}

/**
 * Pooling with windows (or bins) of more than {@link WINDOW_AREA_MAX} cells in two passes, so
 * that no invocation loops over a whole window (gpu/README.md, "Limits"): the first reduces
 * each window's columns, row by row, into [N, C, H, outW] (with each row's winning column for
 * max), the second reduces those over each window's rows. Row-major order survives: the first
 * maximum (or NaN) of a window is the first of the first row holding it. `constants` gives the
 * window functions (`rowRange`, `colRange`, `divisor`) of {@link windowConstants} or
 * {@link adaptiveConstants}.
 */
function twoPassPool(
  rt: GpuRuntime,
  kind: "max" | "avg",
  x: GpuStorage,
  p: Pool2dParams | AdaptivePool2dParams,
  constants: string,
): { y: GpuStorage; argmax: GpuStorage } {
  const name = `${kind}Pool2d_two_pass`;
  // The longest run of one pass: a window side clipped to the input, or an adaptive bin.
  const side = "kh" in p
    ? Math.max(Math.min(p.kh, p.h), Math.min(p.kw, p.w))
    : Math.max(Math.ceil(p.h / p.outH) + 1, Math.ceil(p.w / p.outW) + 1);
  checkLoop(name, "cells along one side of a window", side, "pool in two steps");
  const max = kind === "max";
  const better = "v > best || (isNan(v) && !isNan(best))";
  const rowsCode = `${PROLOGUE}${constants}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> t: array<f32>;
@group(0) @binding(2) var<storage, read_write> tArg: array<i32>;
struct Params { count: u32, xOffset: u32, tOffset: u32, tArgOffset: u32 }
@group(0) @binding(3) var<uniform> params: Params;
${ENTRY} {
  let index = linearIndex(wid, nwg, lid);
  if (index >= params.count) { return; }
  let planeRow = index / OUT_W;  // (plane, input row h)
  let cols = colRange(index % OUT_W);
  let base = params.xOffset + planeRow * W;
  var best = 0.0;
  var bestCol = -1;
  for (var col = cols.x; col < cols.y; col++) {
    let v = x[base + u32(col)];
    ${max ? `if (bestCol < 0 || ${better}) { best = v; bestCol = col; }` : "best += v;"}
  }
  t[params.tOffset + index] = best;
  tArg[params.tArgOffset + index] = bestCol;
}`;
  const colsCode = `${PROLOGUE}${constants}
@group(0) @binding(0) var<storage, read> t: array<f32>;
@group(0) @binding(1) var<storage, read> tArg: array<i32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<i32>;
struct Params { count: u32, tOffset: u32, tArgOffset: u32, yOffset: u32, argmaxOffset: u32 }
@group(0) @binding(4) var<uniform> params: Params;
${ENTRY} {
  let index = linearIndex(wid, nwg, lid);
  if (index >= params.count) { return; }
  ${OUTPUT_WINDOW}
  let rows = rowRange(i);
  var best = 0.0;
  var bestIndex = -1;
  for (var row = rows.x; row < rows.y; row++) {
    let at = (plane * H + u32(row)) * OUT_W + j;
    let v = t[params.tOffset + at];
    let col = tArg[params.tArgOffset + at];
    ${
    max
      ? `if (col >= 0 && (bestIndex < 0 || ${better})) { best = v; bestIndex = row * i32(W) + col; }`
      : "best += v;"
  }
  }
  y[params.yOffset + index] = ${max ? "best" : "best / divisor(i, j)"};
  argmax[params.argmaxOffset + index] = bestIndex;
}`;
  const inSample = p.c * p.h * p.w, midSample = p.c * p.h * p.outW;
  const outSample = p.c * p.outH * p.outW;
  const t = rt.alloc("float32", p.n * midSample), tArg = rt.alloc("int32", p.n * midSample);
  dispatchSamples(
    rt,
    { name: `${name}_rows`, code: rowsCode },
    p.n,
    [{ storage: x, perSample: inSample }],
    [{ storage: t, perSample: midSample }, { storage: tArg, perSample: midSample }],
    midSample,
    WORKGROUP,
  );
  const y = rt.alloc("float32", p.n * outSample), argmax = rt.alloc("int32", p.n * outSample);
  dispatchSamples(
    rt,
    { name: `${name}_columns`, code: colsCode },
    p.n,
    [{ storage: t, perSample: midSample }, { storage: tArg, perSample: midSample }],
    [{ storage: y, perSample: outSample }, { storage: argmax, perSample: outSample }],
    outSample,
    WORKGROUP,
  );
  rt.free(t);
  rt.free(tArg);
  if (!max) rt.free(argmax);
  return { y, argmax };
}
