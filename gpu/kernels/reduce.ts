/**
 * WGSL for reductions (sum, max over any set of axes), row argmax, and the row statistics of
 * softmax over long rows.
 *
 * The rule of every kernel in this folder: no invocation runs a loop whose length grows with
 * the input (the software adapter silently ends an invocation after about 65,535 loop
 * iterations, gpu/README.md "Limits"; on a real GPU a serial loop is slow too). A reduction of
 * R elements per output therefore runs in passes, each reducing chunks to partials, until one
 * partial per output remains:
 *
 * - **Serial pass** (software adapters, and any R <= {@link SERIAL_MAX}): one invocation per
 *   (output, chunk of 4096), adding runs of 16 elements in order, 16 runs into a block and 16
 *   blocks: three levels of 16, so at most 48 roundings per pass. On llvmpipe this is the fast
 *   choice: workgroup memory and barriers cost as much as the loads (gpu/README.md, "Speed").
 * - **Tree pass** (real GPUs, R > 4096): one workgroup of {@link GROUP} invocations per
 *   (output, chunk of {@link CHUNK}); each adds 16 consecutive elements, then the 64 partials
 *   combine in a binary tree in workgroup memory: at most 22 roundings per pass.
 *
 * Elements are addressed through merged (size, stride) groups of the kept and reduced axes;
 * a run inside the last reduced group is a plain strided loop, so the index math costs one
 * division per run, not per element.
 *
 * Accuracy of a float32 sum of R positive values: relative error at most 48·ceil(log_4096 R)
 * roundings on the serial path (96·2^-24 ≈ 6e-6 at R = 2^24) and 22·ceil(log_1024 R) on the
 * tree path (4e-6), where a single running float32 sum stops growing at 2^24.
 *
 * Max propagates NaN (PyTorch's amax): a NaN in the input wins; argmax returns the first NaN's
 * index, else the first maximum's. Both combines are order-free (a NaN or the larger value
 * wins, ties go to the smaller index), so any pass structure gives the serial answer.
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
/** Elements one invocation of the serial pass reduces (16^3: three levels of 16). */
export const SERIAL_MAX = 4096;

/** WGSL: the entry point of the tree kernels: one workgroup, numbered `group`, per chunk. */
const GROUP_MAIN = `@compute @workgroup_size(${GROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let group = ${WORKGROUP_INDEX};`;

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
// lastSize and lastStride describe the last reduced group, which a Cursor walks without dividing.
struct Params { outputs: u32, length: u32, chunks: u32, keptRank: u32, reducedRank: u32, init: f32,
  lastSize: u32, lastStride: u32, words: array<vec4u, ${MAX_RANK}> }
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
}
// Walks reduced elements r, r + 1, ...: one division per wrap of the last group, not per element.
struct Cursor { offset: u32, position: u32 }
fn cursorAt(r: u32) -> Cursor { return Cursor(reducedOffset(r), r % params.lastSize); }
fn advance(cursor: ptr<function, Cursor>, next: u32) {
  (*cursor).position += 1u;
  if ((*cursor).position == params.lastSize) {
    (*cursor).position = 0u;
    (*cursor).offset = reducedOffset(next);
  } else {
    (*cursor).offset += params.lastStride;
  }
}
// Whether the next count elements lie in the current run of the last group (a plain loop).
fn inRun(cursor: Cursor, count: u32) -> bool { return cursor.position + count < params.lastSize; }
fn skip(cursor: ptr<function, Cursor>, count: u32) {
  (*cursor).position += count;
  (*cursor).offset += count * params.lastStride;
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

/**
 * WGSL: `combineRun(output, base, cursor, first, count)`, the combine of `count` (<= 16)
 * consecutive reduced elements from `first` (where `cursor` stands), in order, moving the
 * cursor past them; a plain strided loop when they lie in one run of the last group.
 */
function runWgsl(op: ReduceOp, load: ReduceLoad["kind"]): string {
  return `
fn combineRun(output: u32, base: u32, cursor: ptr<function, Cursor>, first: u32, count: u32) -> f32 {
  var acc = params.init;
  if (inRun(*cursor, count)) {
    let start = base + (*cursor).offset;
    for (var e = 0u; e < count; e++) {
      let at = start + e * params.lastStride;
      acc = combine_${op}(acc, ${loadExpression(load)});
    }
    skip(cursor, count);
  } else {
    for (var e = 0u; e < count; e++) {
      let at = base + (*cursor).offset;
      acc = combine_${op}(acc, ${loadExpression(load)});
      advance(cursor, first + e + 1u);
    }
  }
  return acc;
}`;
}

/**
 * The serial pass: one invocation per (output, chunk of SERIAL_MAX = 16^3 elements), adding
 * runs of 16 in order, 16 runs into a block, and 16 blocks: three levels, so a chunk's sum
 * carries at most 48 roundings, and no loop runs more than 16 times a level.
 */
function serialKernel(op: ReduceOp, load: ReduceLoad["kind"]): GpuKernel {
  return reduceKernel("serial", op, load, () => `
${ELEMENT_MAIN}
  if (i >= params.outputs * params.chunks) { return; }
  let output = i / params.chunks;
  let base = keptOffset(output);
  let first = (i % params.chunks) * ${SERIAL_MAX}u;
  let end = min(first + ${SERIAL_MAX}u, params.length);
  // init travels as data: a -Infinity literal would be a WGSL constant-evaluation error.
  var acc = params.init;
  var cursor = cursorAt(first);
  for (var a = 0u; a < 16u; a++) {
    var block = params.init;
    for (var b = 0u; b < 16u; b++) {
      let start = first + (a * 16u + b) * 16u;
      if (start >= end) { break; }
      block = combine_${op}(block, combineRun(output, base, &cursor, start, min(16u, end - start)));
    }
    acc = combine_${op}(acc, block);
  }
  ys[i] = acc;
}`);
}

/** One workgroup per (output, chunk of CHUNK elements): 16 in order per invocation, then a tree. */
function treeKernel(op: ReduceOp, load: ReduceLoad["kind"]): GpuKernel {
  return reduceKernel("tree", op, load, () => `
var<workgroup> scratch: array<f32, ${GROUP}>;
${GROUP_MAIN}
  if (group >= params.outputs * params.chunks) { return; }  // uniform per workgroup
  let output = group / params.chunks;
  let chunk = group % params.chunks;
  let base = keptOffset(output);
  let first = chunk * ${CHUNK}u + lid * ${PER_INVOCATION}u;
  var acc = params.init;
  if (first < params.length) {
    var cursor = cursorAt(first);
    acc = combineRun(output, base, &cursor, first, min(${PER_INVOCATION}u, params.length - first));
  }
  scratch[lid] = acc;
  workgroupBarrier();
  for (var step = ${GROUP / 2}u; step > 0u; step = step >> 1u) {
    if (lid < step) { scratch[lid] = combine_${op}(scratch[lid], scratch[lid + step]); }
    workgroupBarrier();
  }
  if (lid == 0u) { ys[group] = scratch[0]; }
}`);
}

/**
 * The kernel of one (path, op, load), built once: the bindings (xs, the load's second input,
 * ys, params), the layout, NaN and combine WGSL and `combineRun`, then the path's `main`.
 */
function reduceKernel(
  path: "serial" | "tree",
  op: ReduceOp,
  load: ReduceLoad["kind"],
  main: () => string,
): GpuKernel {
  const key = `${path}_${op}_${load}`;
  let kernel = kernels.get(key);
  if (kernel) return kernel;
  const outBinding = load === "plain" ? 1 : 2;
  kernel = {
    name: `reduce_${op}_${path}${load === "plain" ? "" : `_${load}`}`,
    code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
${loadBindings(load)}
@group(0) @binding(${outBinding}) var<storage, read_write> ys: array<f32>;
@group(0) @binding(${outBinding + 1}) var<uniform> params: Params;
${LAYOUT_WGSL}
${IS_NAN_WGSL}
${COMBINE_WGSL}
${runWgsl(op, load)}
${main()}`,
  };
  kernels.set(key, kernel);
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
    layout.reducedSizes.at(-1) ?? 1,
    layout.reducedStrides.at(-1) ?? 0,
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

/** How reductions over more than {@link SERIAL_MAX} elements run; "auto" picks by adapter. */
export type ReducePath = "auto" | "serial" | "tree";

let forcedPath: ReducePath = "auto";

/** Forces a reduction path for every runtime (tests); "auto" restores the default. */
export function setReducePath(path: ReducePath): void {
  forcedPath = path;
}

/**
 * Reduces `layout` of x into a fresh [outputs] storage, in passes until one partial per output
 * remains. Software adapters run serial passes (one invocation per chunk of 4096: workgroup
 * memory and barriers are slow there, gpu/README.md "Speed"); real GPUs run workgroup trees
 * (chunks of 1024 over 64 invocations). Later passes read their partials plainly.
 */
function reduceLayout(
  rt: GpuRuntime,
  op: ReduceOp,
  x: GpuStorage,
  layout: Layout,
  load: ReduceLoad,
): GpuStorage {
  const init = op === "sum" ? 0 : -Infinity;
  const tree = forcedPath === "auto" ? !rt.isSoftware : forcedPath === "tree";
  let input = x, current = layout, kind = load;
  for (;;) {
    // Short reductions always take one serial pass.
    const serial = !tree || current.length <= SERIAL_MAX;
    const chunks = Math.ceil(current.length / (serial ? SERIAL_MAX : CHUNK)) || 1;
    const out = rt.alloc("float32", current.outputs * chunks);
    const extra = kind.kind === "expShift"
      ? [kind.shift]
      : kind.kind === "product"
      ? [kind.other]
      : [];
    const params = packLayout(current, chunks, init);
    const count = current.outputs * chunks;
    if (serial) {
      rt.dispatch(
        serialKernel(op, kind.kind),
        [input, ...extra],
        [out],
        params,
        workgroupsFor(count),
      );
    } else {
      rt.dispatch(treeKernel(op, kind.kind), [input, ...extra], [out], params, count);
    }
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
${GROUP_MAIN}
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
