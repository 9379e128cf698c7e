/**
 * WGSL for reductions (sum, max over any set of axes), row argmax, and the row statistics of
 * softmax over long rows.
 *
 * The rule of every kernel in this folder: no invocation runs a loop whose length grows with
 * the input (the software adapter silently ends an invocation after about 65,535 loop
 * iterations, gpu/README.md "Limits"; on a real GPU a serial loop is slow too). So a reduction
 * of R elements per output is one of:
 *
 * - **Serial** (R <= {@link SERIAL_MAX}): one invocation per output loops over its R elements
 *   in the CPU's order. Cheap when outputs are many and short (a bias gradient over a batch).
 * - **Tree** (R > {@link SERIAL_MAX}): the R elements are cut into chunks of {@link CHUNK}; one
 *   workgroup per (output, chunk) adds {@link PER_INVOCATION} consecutive elements in each of
 *   its {@link GROUP} invocations, then combines the 64 partials in a binary tree in workgroup
 *   memory, writing one partial per chunk. The partials, contiguous [outputs, chunks], are
 *   reduced again by the same kernel until one chunk remains: ceil(log_1024 R) dispatches.
 *
 * Accuracy of a float32 tree sum: each pass adds at most 16 values in order and then 6 tree
 * levels, so a sum of R positive values carries at most 22·ceil(log_1024 R) roundings:
 * relative error <= 66·2^-24 ≈ 4e-6 for R = 2^24 (a serial float32 sum stops growing there).
 *
 * Max propagates NaN (PyTorch's amax): a NaN in the input wins; argmax returns the first NaN's
 * index, else the first maximum's. Both combines are order-free (a NaN or the larger value
 * wins, ties go to the smaller index), so the tree gives the serial answer.
 *
 * @module
 */

import type { ReduceOp } from "../../backend/backend.ts";
import { type Shape, sizeOf, stridesOf } from "../../tensor/shape.ts";
import {
  ELEMENT_MAIN,
  type GpuKernel,
  type GpuRuntime,
  type GpuStorage,
  packParams,
  WORKGROUP_INDEX,
  workgroupsFor,
} from "../runtime.ts";
import { MAX_RANK } from "./elementwise.ts";

/** Invocations per workgroup of the tree kernels. */
const GROUP = 64;
/** Consecutive elements each tree invocation combines in order before the tree. */
const PER_INVOCATION = 16;
/** Elements one workgroup reduces to one partial. */
export const CHUNK = GROUP * PER_INVOCATION;
/** Longest reduction done by one invocation (the serial path's loop bound). */
export const SERIAL_MAX = 256;

/** WGSL: NaN test on the bits (`x != x` is false on Vulkan, gpu/README.md "Numerics"). */
export const IS_NAN_WGSL =
  `fn isNan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }`;

/** WGSL combines: sum, and max that lets a NaN win (WGSL's max(NaN, x) may return x). */
const COMBINE_WGSL = `
fn combine_sum(a: f32, b: f32) -> f32 { return a + b; }
fn combine_max(a: f32, b: f32) -> f32 {
  if (isNan(a)) { return a; }
  if (isNan(b)) { return b; }
  return max(a, b);
}`;

/** Merges neighbouring axes that are contiguous in the input: (sizes, strides) per group. */
function mergeAxes(
  shape: Shape,
  strides: readonly number[],
  axes: readonly number[],
): [number[], number[]] {
  const sizes: number[] = [], merged: number[] = [];
  for (const axis of axes) {
    if (shape[axis] === 1) continue;
    const last = sizes.length - 1;
    // Axis a followed by axis b merges when b's stride times its size is a's stride.
    if (last >= 0 && merged[last] === strides[axis] * shape[axis]) {
      sizes[last] *= shape[axis];
      merged[last] = strides[axis];
    } else {
      sizes.push(shape[axis]);
      merged.push(strides[axis]);
    }
  }
  return [sizes, merged];
}

/**
 * What the first pass of a tree reduction reads per element: the input itself, exp(x − shift
 * of its output) (softmax's Σ e^(x − max)), or x times a second input at the same offset
 * (softmax backward's Σ dy·y). Later passes read their partials plainly.
 */
export type ReduceLoad =
  | { kind: "plain" }
  | { kind: "expShift"; shift: GpuStorage }
  | { kind: "product"; other: GpuStorage };

/** The layout of one reduction: outputs (kept groups) and reduced groups, merged. */
interface Layout {
  outputs: number;
  length: number;
  keptSizes: number[];
  keptStrides: number[];
  reducedSizes: number[];
  reducedStrides: number[];
}

/** WGSL shared by the serial and tree kernels: params and the offset math over the groups. */
const LAYOUT_WGSL = `
// words: kept sizes, kept strides, reduced sizes, reduced strides (${MAX_RANK} each).
struct Params { outputs: u32, length: u32, chunks: u32, keptRank: u32, reducedRank: u32, init: f32,
  pad0: u32, pad1: u32, words: array<vec4u, ${MAX_RANK}> }
fn word(w: u32) -> u32 { return params.words[w / 4u][w % 4u]; }
fn keptOffset(output: u32) -> u32 {
  var rest = output;
  var offset = 0u;
  for (var axis = i32(params.keptRank) - 1; axis >= 0; axis--) {
    let size = word(u32(axis));
    offset += (rest % size) * word(${MAX_RANK}u + u32(axis));
    rest = rest / size;
  }
  return offset;
}
fn reducedOffset(r: u32) -> u32 {
  var rest = r;
  var offset = 0u;
  for (var axis = i32(params.reducedRank) - 1; axis >= 0; axis--) {
    let size = word(${2 * MAX_RANK}u + u32(axis));
    offset += (rest % size) * word(${3 * MAX_RANK}u + u32(axis));
    rest = rest / size;
  }
  return offset;
}`;

function loadBindings(load: ReduceLoad["kind"]): string {
  if (load === "expShift") return "@group(0) @binding(1) var<storage, read> shift: array<f32>;";
  if (load === "product") return "@group(0) @binding(1) var<storage, read> other: array<f32>;";
  return "";
}

function loadExpression(load: ReduceLoad["kind"]): string {
  if (load === "expShift") return "exp(xs[at] - shift[output])";
  if (load === "product") return "xs[at] * other[at]";
  return "xs[at]";
}

const kernels = new Map<string, GpuKernel>();

/** One output per invocation, looping over at most SERIAL_MAX elements (the host checks). */
function serialKernel(op: ReduceOp): GpuKernel {
  const key = `serial_${op}`;
  let kernel = kernels.get(key);
  if (!kernel) {
    kernel = {
      name: `reduce_${op}_serial`,
      code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${LAYOUT_WGSL}
${IS_NAN_WGSL}
${COMBINE_WGSL}
${ELEMENT_MAIN}
  if (i >= params.outputs) { return; }
  let base = keptOffset(i);
  // init travels as data: a -Infinity literal would be a WGSL constant-evaluation error.
  var acc = params.init;
  for (var r = 0u; r < min(params.length, ${SERIAL_MAX}u); r++) {
    acc = combine_${op}(acc, xs[base + reducedOffset(r)]);
  }
  ys[i] = acc;
}`,
    };
    kernels.set(key, kernel);
  }
  return kernel;
}

/** One workgroup per (output, chunk of CHUNK elements): 16 in order per invocation, then a tree. */
function treeKernel(op: ReduceOp, load: ReduceLoad["kind"]): GpuKernel {
  const key = `tree_${op}_${load}`;
  let kernel = kernels.get(key);
  if (!kernel) {
    const outBinding = load === "plain" ? 1 : 2;
    kernel = {
      name: `reduce_${op}_tree${load === "plain" ? "" : `_${load}`}`,
      code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
${loadBindings(load)}
@group(0) @binding(${outBinding}) var<storage, read_write> ys: array<f32>;
@group(0) @binding(${outBinding + 1}) var<uniform> params: Params;
${LAYOUT_WGSL}
${IS_NAN_WGSL}
${COMBINE_WGSL}
var<workgroup> scratch: array<f32, ${GROUP}>;
@compute @workgroup_size(${GROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let group = ${WORKGROUP_INDEX};
  if (group >= params.outputs * params.chunks) { return; }  // uniform per workgroup
  let output = group / params.chunks;
  let chunk = group % params.chunks;
  let base = keptOffset(output);
  let first = chunk * ${CHUNK}u + lid * ${PER_INVOCATION}u;
  var acc = params.init;
  for (var e = 0u; e < ${PER_INVOCATION}u; e++) {
    let r = first + e;
    if (r >= params.length) { break; }
    let at = base + reducedOffset(r);
    acc = combine_${op}(acc, ${loadExpression(load)});
  }
  scratch[lid] = acc;
  workgroupBarrier();
  for (var step = ${GROUP / 2}u; step > 0u; step = step >> 1u) {
    if (lid < step) { scratch[lid] = combine_${op}(scratch[lid], scratch[lid + step]); }
    workgroupBarrier();
  }
  if (lid == 0u) { ys[group] = scratch[0]; }
}`,
    };
    kernels.set(key, kernel);
  }
  return kernel;
}

function packLayout(layout: Layout, chunks: number, init: number): ArrayBuffer {
  const pad = (xs: number[]) => [...xs, ...new Array(MAX_RANK - xs.length).fill(0)];
  return packParams([
    layout.outputs,
    layout.length,
    chunks,
    layout.keptSizes.length,
    layout.reducedSizes.length,
    { f32: init },
    0,
    0,
    ...pad(layout.keptSizes),
    ...pad(layout.keptStrides),
    ...pad(layout.reducedSizes),
    ...pad(layout.reducedStrides),
  ]);
}

/** The layout of [outputs, length] contiguous rows (the partials of a tree pass). */
function rowsLayout(outputs: number, length: number): Layout {
  return {
    outputs,
    length,
    keptSizes: outputs > 1 ? [outputs] : [],
    keptStrides: outputs > 1 ? [length] : [],
    reducedSizes: [length],
    reducedStrides: [1],
  };
}

/**
 * Reduces `layout` of x into a fresh [outputs] storage: serially when short and plain, else by
 * tree passes until one chunk per output remains.
 */
function reduceLayout(
  rt: GpuRuntime,
  op: ReduceOp,
  x: GpuStorage,
  layout: Layout,
  load: ReduceLoad,
): GpuStorage {
  const init = op === "sum" ? 0 : -Infinity;
  if (layout.length <= SERIAL_MAX && load.kind === "plain") {
    const out = rt.alloc("float32", layout.outputs);
    rt.dispatch(
      serialKernel(op),
      [x],
      [out],
      packLayout(layout, 1, init),
      workgroupsFor(layout.outputs),
    );
    return out;
  }
  let input = x, current = layout, kind = load;
  for (;;) {
    const chunks = Math.ceil(current.length / CHUNK);
    const out = rt.alloc("float32", current.outputs * chunks);
    const extra = kind.kind === "expShift"
      ? [kind.shift]
      : kind.kind === "product"
      ? [kind.other]
      : [];
    rt.dispatch(
      treeKernel(op, kind.kind),
      [input, ...extra],
      [out],
      packLayout(current, chunks, init),
      current.outputs * chunks,
    );
    if (input !== x) rt.free(input);
    if (chunks === 1) return out;
    input = out;
    current = rowsLayout(current.outputs, chunks);
    kind = { kind: "plain" };
  }
}

/** Reduces `axes` of x (shape `shape`); the result keeps them with size 1. */
export function reduceGpu(
  rt: GpuRuntime,
  op: ReduceOp,
  x: GpuStorage,
  shape: Shape,
  axes: readonly number[],
): GpuStorage {
  const strides = stridesOf(shape);
  const all = shape.map((_, i) => i);
  const [keptSizes, keptStrides] = mergeAxes(shape, strides, all.filter((a) => !axes.includes(a)));
  const [reducedSizes, reducedStrides] = mergeAxes(
    shape,
    strides,
    all.filter((a) => axes.includes(a)),
  );
  if (keptSizes.length > MAX_RANK || reducedSizes.length > MAX_RANK) {
    throw new RangeError(
      `gpu.reduce: rank ${shape.length} exceeds the GPU kernels' maximum of ${MAX_RANK}`,
    );
  }
  const layout = {
    outputs: sizeOf(keptSizes),
    length: sizeOf(reducedSizes),
    keptSizes,
    keptStrides,
    reducedSizes,
    reducedStrides,
  };
  return reduceLayout(rt, op, x, layout, { kind: "plain" });
}

/**
 * Reduces each row of a contiguous [rows, cols] matrix to [rows], reading elements through
 * `load` (softmax's row statistics over rows too long for one workgroup).
 */
export function reduceRowsGpu(
  rt: GpuRuntime,
  op: ReduceOp,
  x: GpuStorage,
  rows: number,
  cols: number,
  load: ReduceLoad = { kind: "plain" },
): GpuStorage {
  return reduceLayout(rt, op, x, rowsLayout(rows, cols), load);
}

// ---- argmax ----------------------------------------------------------------------------------

const ARGMAX_COMBINE = `
${IS_NAN_WGSL}
// (value, index) pairs: a NaN beats everything, then the larger value; ties (equal values or
// two NaNs) go to the smaller index. Order-free, so any tree gives the first NaN / maximum.
fn better(v: f32, i: i32, w: f32, j: i32) -> bool {
  let vn = isNan(v);
  let wn = isNan(w);
  if (vn != wn) { return vn; }
  if (!vn && v != w) { return v > w; }
  return i < j;
}`;

const argmaxSerialKernel: GpuKernel = {
  name: "argmax_serial",
  code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<i32>;
struct Params { rows: u32, cols: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${ARGMAX_COMBINE}
${ELEMENT_MAIN}
  if (i >= params.rows) { return; }
  let start = i * params.cols;
  var best = 0;
  var bestValue = xs[start];
  for (var c = 1; c < i32(min(params.cols, ${SERIAL_MAX}u)); c++) {
    let v = xs[start + u32(c)];
    if (better(v, c, bestValue, best)) { best = c; bestValue = v; }
  }
  ys[i] = best;
}`,
};

/** Tree argmax: the first pass reads xs (indices are positions), later ones (value, index) partials. */
function argmaxTreeKernel(first: boolean): GpuKernel {
  const key = `argmax_${first}`;
  let kernel = kernels.get(key);
  if (kernel) return kernel;
  kernel = {
    name: `argmax_tree${first ? "" : "_partials"}`,
    code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
${first ? "" : "@group(0) @binding(1) var<storage, read> indices: array<i32>;"}
@group(0) @binding(${first ? 1 : 2}) var<storage, read_write> values: array<f32>;
@group(0) @binding(${first ? 2 : 3}) var<storage, read_write> winners: array<i32>;
struct Params { rows: u32, cols: u32, chunks: u32 }
@group(0) @binding(${first ? 3 : 4}) var<uniform> params: Params;
${ARGMAX_COMBINE}
var<workgroup> scratchValue: array<f32, ${GROUP}>;
var<workgroup> scratchIndex: array<i32, ${GROUP}>;
@compute @workgroup_size(${GROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let group = ${WORKGROUP_INDEX};
  if (group >= params.rows * params.chunks) { return; }  // uniform per workgroup
  let row = group / params.chunks;
  let first = (group % params.chunks) * ${CHUNK}u + lid * ${PER_INVOCATION}u;
  var best = -1;
  var bestValue = 0.0;
  for (var e = 0u; e < ${PER_INVOCATION}u; e++) {
    let c = first + e;
    if (c >= params.cols) { break; }
    let v = xs[row * params.cols + c];
    let index = ${first ? "i32(c)" : "indices[row * params.cols + c]"};
    if (best < 0 || better(v, index, bestValue, best)) { best = index; bestValue = v; }
  }
  scratchValue[lid] = bestValue;
  scratchIndex[lid] = best;
  workgroupBarrier();
  for (var step = ${GROUP / 2}u; step > 0u; step = step >> 1u) {
    if (lid < step) {
      let j = scratchIndex[lid + step];
      let w = scratchValue[lid + step];
      if (j >= 0 && (scratchIndex[lid] < 0 || better(w, j, scratchValue[lid], scratchIndex[lid]))) {
        scratchIndex[lid] = j;
        scratchValue[lid] = w;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    values[group] = scratchValue[0];
    winners[group] = scratchIndex[0];
  }
}`,
  };
  kernels.set(key, kernel);
  return kernel;
}

/** Index of the largest element of each row of [rows, cols] (int32; the first NaN wins). */
export function argmaxGpu(rt: GpuRuntime, x: GpuStorage, rows: number, cols: number): GpuStorage {
  if (cols <= SERIAL_MAX) {
    const out = rt.alloc("int32", rows);
    rt.dispatch(argmaxSerialKernel, [x], [out], packParams([rows, cols]), workgroupsFor(rows));
    return out;
  }
  let values = x, indices: GpuStorage | null = null, length = cols;
  for (;;) {
    const chunks = Math.ceil(length / CHUNK);
    const nextValues = rt.alloc("float32", rows * chunks);
    const nextIndices = rt.alloc("int32", rows * chunks);
    rt.dispatch(
      argmaxTreeKernel(indices === null),
      indices ? [values, indices] : [values],
      [nextValues, nextIndices],
      packParams([rows, length, chunks]),
      rows * chunks,
    );
    if (values !== x) rt.free(values);
    if (indices) rt.free(indices);
    values = nextValues;
    indices = nextIndices;
    if (chunks === 1) {
      rt.free(values);
      return indices;
    }
    length = chunks;
  }
}
