/**
 * WGSL for reductions (sum, max over any set of axes) and row argmax.
 *
 * A reduction is a gather: each output element loops over the input elements it reduces, in
 * the CPU's order (row-major over the reduced axes), so a float32 sum rounds exactly as
 * `reduceCpu` does. The kept axes and the reduced axes each travel as (sizes, strides) after
 * merging neighbouring axes of the same kind, which keeps the index math short.
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
  workgroupsFor,
} from "../runtime.ts";
import { MAX_RANK } from "./elementwise.ts";

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

function reduceKernel(op: ReduceOp): GpuKernel {
  const combine = op === "sum" ? "acc + v" : "max(acc, v)";
  return {
    name: `reduce_${op}`,
    code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;
// words: kept sizes, kept strides, reduced sizes, reduced strides (${MAX_RANK} each).
// The last reduced group has stride 1 and "inner" elements when contiguous (inner = 1
// otherwise); reducedRank and outerCount then describe the groups before it.
struct Params { n: u32, keptRank: u32, reducedRank: u32, outerCount: u32, words: array<vec4u, ${MAX_RANK}>, init: f32, inner: u32 }
@group(0) @binding(2) var<uniform> params: Params;
fn word(w: u32) -> u32 { return params.words[w / 4u][w % 4u]; }
${ELEMENT_MAIN}
  if (i >= params.n) { return; }
  var rest = i;
  var base = 0u;
  for (var axis = i32(params.keptRank) - 1; axis >= 0; axis--) {
    let size = word(u32(axis));
    base += (rest % size) * word(${MAX_RANK}u + u32(axis));
    rest = rest / size;
  }
  // init travels as data: a -Infinity literal would be a WGSL constant-evaluation error.
  var acc = params.init;
  for (var r = 0u; r < params.outerCount; r++) {
    var restR = r;
    var offset = base;
    for (var axis = i32(params.reducedRank) - 1; axis >= 0; axis--) {
      let size = word(${2 * MAX_RANK}u + u32(axis));
      offset += (restR % size) * word(${3 * MAX_RANK}u + u32(axis));
      restR = restR / size;
    }
    // Eight elements per iteration, still in order: llvmpipe silently ends any invocation's
    // loops after 65,535 iterations in total, which a conv1 bias gradient at batch 128
    // (100,352 elements per channel) would exceed.
    var k = 0u;
    for (; k + 8u <= params.inner; k += 8u) {
      for (var e = 0u; e < 8u; e++) {
        let v = xs[offset + k + e];
        acc = ${combine};
      }
    }
    for (; k < params.inner; k++) {
      let v = xs[offset + k];
      acc = ${combine};
    }
  }
  ys[i] = acc;
}`,
  };
}

const REDUCE_KERNELS = { sum: reduceKernel("sum"), max: reduceKernel("max") };

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
  const n = sizeOf(keptSizes);
  const out = rt.alloc(x.dtype, n);
  // A contiguous last group (a conv bias gradient's H·W) runs as a plain inner loop: the
  // generic index math costs more than the load (6x on AlexNet-mini's conv1 bias gradient).
  const last = reducedSizes.length - 1;
  const inner = last >= 0 && reducedStrides[last] === 1 ? reducedSizes[last] : 1;
  if (inner > 1) {
    reducedSizes.pop();
    reducedStrides.pop();
  }
  const pad = (xs: number[]) => [...xs, ...new Array(MAX_RANK - xs.length).fill(0)];
  const params = packParams([
    n,
    keptSizes.length,
    reducedSizes.length,
    sizeOf(reducedSizes),
    ...pad(keptSizes),
    ...pad(keptStrides),
    ...pad(reducedSizes),
    ...pad(reducedStrides),
    { f32: op === "sum" ? 0 : -Infinity },
    inner,
  ]);
  rt.dispatch(REDUCE_KERNELS[op], [x], [out], params, workgroupsFor(n));
  return out;
}

const argmaxKernel: GpuKernel = {
  name: "argmax",
  code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<i32>;
struct Params { rows: u32, cols: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${ELEMENT_MAIN}
  if (i >= params.rows) { return; }
  let start = i * params.cols;
  var best = 0u;
  // Strict > keeps the first maximum on ties, like argmaxCpu.
  for (var c = 1u; c < params.cols; c++) {
    if (xs[start + c] > xs[start + best]) { best = c; }
  }
  ys[i] = i32(best);
}`,
};

/** Index of the largest element of each row of [rows, cols] (int32). */
export function argmaxGpu(rt: GpuRuntime, x: GpuStorage, rows: number, cols: number): GpuStorage {
  const out = rt.alloc("int32", rows);
  rt.dispatch(argmaxKernel, [x], [out], packParams([rows, cols]), workgroupsFor(rows));
  return out;
}
