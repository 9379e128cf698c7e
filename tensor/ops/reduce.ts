/**
 * Reductions: sum, mean and max over axes, and `sumTo`, the reduction that undoes
 * broadcasting in backward passes.
 *
 * Backward: a sum copies its gradient back to every element it summed; a mean divides that
 * by the count; a max routes it to the elements equal to the maximum (shared evenly among
 * ties, like PyTorch's amax).
 *
 * Accuracy of the CPU sum: every output accumulates in float64 (a JS number or a Float64Array),
 * whatever the input dtype, and is rounded once to the output dtype. A float64 running sum of n
 * terms is within (n − 1)·2^-53·Σ|x| of the exact sum, so for any n below 2^29 the float32
 * result is within one float32 rounding (2^-24 relative) plus 2^-24·Σ|x|/|Σx|; a float32
 * running sum instead stops growing at 2^24 and drifts by ~n·2^-24. Max is exact (it picks an
 * element) and propagates NaN, as does argmax (the first NaN wins).
 *
 * @module
 */

import type { ReduceOp, TypedArray } from "../../backend/backend.ts";
import { type Tensor, wrap } from "../tensor.ts";
import {
  broadcastShapes,
  checkShape,
  formatShape,
  normalizeAxes,
  normalizeAxis,
  sameShape,
  type Shape,
  sizeOf,
  stridesOf,
} from "../shape.ts";
import { checkFloat, checkTensor, record } from "./op.ts";
import { broadcastTo, div, eq, mul } from "./elementwise.ts";
import { reshape } from "./layout.ts";

// ---------------------------------------------------------------------------------------------
// CPU kernels

/**
 * Sums each block of `inner` consecutive elements of x into `blocks` (length x.length / inner),
 * in float64, from a block's first element to its last.
 */
export type SumBlocks = (x: TypedArray, inner: number, blocks: Float64Array) => void;

/** The reference {@link SumBlocks}. */
export function sumBlocksCpu(x: TypedArray, inner: number, blocks: Float64Array): void {
  for (let b = 0, i = 0; b < blocks.length; b++) {
    let total = 0;
    for (const end = i + inner; i < end; i++) total += x[i];
    blocks[b] = total;
  }
}

/**
 * CPU: reduces `axes` of x (shape `shape`) into `out`, whose shape keeps them with size 1.
 * `sumBlocks` sums the blocks of a sum over the last axes (the cpu device passes its wasm one).
 */
export function reduceCpu(
  op: ReduceOp,
  x: TypedArray,
  shape: Shape,
  axes: readonly number[],
  out: TypedArray,
  sumBlocks: SumBlocks = sumBlocksCpu,
): void {
  const reduced = new Set(axes);
  // A sum over the last axes (a conv bias gradient sums [N, O, H, W] over N, H and W) first
  // sums each contiguous block of them, then reduces the blocks: one tight loop per block
  // instead of the index bookkeeping below for every element.
  let outer = shape.length, inner = 1;
  while (outer > 0 && reduced.has(outer - 1)) inner *= shape[--outer];
  if (op === "sum" && inner > 1) {
    const blocks = new Float64Array(x.length / inner);
    sumBlocks(x, inner, blocks);
    reduceCpu(op, blocks, shape.slice(0, outer), axes.filter((a) => a < outer), out);
    return;
  }
  // The last axes that are kept make runs contiguous in x and in out alike: each run of x is
  // added to (or compared with) its run of the output, element by element in order, and the
  // index bookkeeping below moves once per run (a bias gradient's [N, O] blocks: runs of O).
  let kept = shape.length, run = 1;
  while (kept > 0 && !reduced.has(kept - 1)) run *= shape[--kept];
  const outShape = shape.map((d, i) => (reduced.has(i) ? 1 : d));
  const outStrides = stridesOf(outShape).map((s, i) => (reduced.has(i) ? 0 : s));
  // Sums accumulate in float64 whatever `out` holds (see the module comment).
  const acc = op === "sum" && !(out instanceof Float64Array) ? new Float64Array(out.length) : out;
  acc.fill(op === "sum" ? 0 : -Infinity);
  const index = new Array<number>(kept).fill(0);
  let o = 0;
  for (let i = 0; i < x.length; i += run) {
    if (op === "sum") { for (let j = 0; j < run; j++) acc[o + j] += x[i + j]; }
    else {
      for (let j = 0; j < run; j++) {
        if (x[i + j] > acc[o + j] || Number.isNaN(x[i + j])) acc[o + j] = x[i + j];
      }
    }
    for (let axis = kept - 1; axis >= 0; axis--) {
      if (++index[axis] < shape[axis]) {
        o += outStrides[axis];
        break;
      }
      index[axis] = 0;
      o -= outStrides[axis] * (shape[axis] - 1);
    }
  }
  if (acc !== out) out.set(acc);
}

/**
 * CPU: index of the maximum of each row of [rows, cols]: the first one on ties, and the first
 * NaN if the row has one (PyTorch: NaN is the largest value).
 */
export function argmaxCpu(x: TypedArray, rows: number, cols: number, out: Int32Array): void {
  for (let r = 0; r < rows; r++) {
    const start = r * cols;
    let best = 0, bestValue = x[start];
    for (let c = 1; c < cols && bestValue === bestValue; c++) {
      const value = x[start + c];
      if (value > bestValue || value !== value) [best, bestValue] = [c, value];
    }
    out[r] = best;
  }
}

// ---------------------------------------------------------------------------------------------
// Ops

function keptShape(shape: Shape, axes: number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function dropAxes(shape: Shape, axes: number[]): number[] {
  return shape.filter((_, i) => !axes.includes(i));
}

/** Sum over `axes` (all by default); `keepDims` keeps them with size 1. */
export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  checkFloat("sum", x);
  const list = normalizeAxes("sum", axes, x.rank);
  const kept = keptShape(x.shape, list);
  const y = wrap(
    x.backend.reduce("sum", x.storage, x.shape, list),
    keepDims ? kept : dropAxes(x.shape, list),
  );
  return record("sum", y, [x], (g) => [broadcastTo(g.alias(kept), x.shape)]);
}

/** Mean over `axes` (all by default). */
export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  checkFloat("mean", x);
  const list = normalizeAxes("mean", axes, x.rank);
  const count = list.reduce((n, a) => n * x.shape[a], 1);
  return mul(sum(x, list, keepDims), 1 / count);
}

/** Maximum over `axes` (all by default). */
export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  checkFloat("max", x);
  const list = normalizeAxes("max", axes, x.rank);
  // PyTorch refuses a maximum of nothing ("Expected reduction dim to have non-zero size").
  const empty = list.find((axis) => x.shape[axis] === 0);
  if (empty !== undefined) {
    throw new RangeError(
      `max: axis ${empty} of ${formatShape(x.shape)} is empty: a maximum of no values is undefined`,
    );
  }
  const kept = keptShape(x.shape, list);
  const y = wrap(
    x.backend.reduce("max", x.storage, x.shape, list),
    keepDims ? kept : dropAxes(x.shape, list),
  );
  return record("max", y, [x], (g) => {
    const winners = eq(x, broadcastTo(y.alias(kept), x.shape));
    const ties = broadcastTo(sum(winners, list, true), x.shape);
    return [mul(div(winners, ties), broadcastTo(g.alias(kept), x.shape))];
  });
}

/**
 * Index of the largest value along `axis` (default the last, -1; negative axes count from
 * the end), as int32; the first one on ties. Not differentiable. The axis is removed from the
 * shape unless `keepDims`. Unlike `torch.argmax(x)` without a dim, the default is the last
 * axis, not the flattened tensor: `argmax(logits)` gives one class per row of [N, C].
 */
export function argmax(x: Tensor, axis = -1, keepDims = false): Tensor {
  checkFloat("argmax", x);
  if (x.rank === 0) throw new RangeError("argmax: needs at least one axis, got a scalar");
  const ax = normalizeAxis("argmax", axis, x.rank);
  const last = x.rank - 1;
  // The kernel works on the last axis: move `axis` there first (a copy) when it is another.
  const perm = [...x.shape.keys()].filter((i) => i !== ax).concat(ax);
  const moved = ax === last
    ? x
    : wrap(x.backend.permute(x.storage, x.shape, perm), perm.map((i) => x.shape[i]));
  const cols = x.shape[ax];
  if (cols === 0) throw new RangeError(`argmax: axis ${axis} of ${formatShape(x.shape)} is empty`);
  const rows = x.size / cols;
  const indices = x.backend.argmax(moved.storage, rows, cols);
  if (moved !== x) moved.dispose();
  const shape = keepDims ? keptShape(x.shape, [ax]) : dropAxes(x.shape, [ax]);
  return wrap(indices, shape);
}

/**
 * Sums `g` down to `shape` (the inverse of broadcasting `shape` up to `g.shape`): leading axes
 * are summed away, and axes where `shape` has size 1 are summed with the size kept.
 */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  checkTensor("sumTo", "g", g);
  checkShape("sumTo", shape);
  if (sameShape(g.shape, shape)) return g;
  if (!sameShape(broadcastShapes("sumTo", shape, g.shape), g.shape)) {
    throw new RangeError(
      `sumTo: ${formatShape(g.shape)} is not a broadcast of ${formatShape(shape)}`,
    );
  }
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const summed = sum(g, axes, true);
  return sizeOf(summed.shape) === sizeOf(shape) ? reshape(summed, shape) : summed;
}
