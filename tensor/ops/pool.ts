/**
 * 2-D pooling over [N, C, H, W]: max, average, and adaptive average. Each (n, c) plane is
 * pooled on its own; outputs are [N, C, outH, outW].
 *
 * Windows (PyTorch conventions): output (i, j) reads rows
 * `i·strideH − padH .. i·strideH − padH + kh − 1` and the matching columns, and
 *
 *     outH = floor((H + 2·padH − kh) / strideH) + 1       (ceilMode: ceil instead of floor,
 *                                                          minus one if the last window would
 *                                                          start past H + padH − 1)
 *
 * With `ceilMode` (PyTorch's `ceil_mode`) a last, partial window covers the leftover rows; it
 * always starts inside the input or its left padding, and may reach past the right padding.
 * The kernels clip every window to the input.
 *
 * - max:  y = max over the window's real cells (padding never wins);
 * - avg:  y = (sum over the window's real cells) / divisor. `countIncludePad` (default true,
 *         PyTorch's `count_include_pad`): the divisor is the window's size inside the padded
 *         input (kh·kw except for a ceilMode window hanging past it), so padded cells count as
 *         zeros; false: the number of real cells.
 * - adaptive avg: bin i spans rows [floor(i·H/outH), ceil((i+1)·H/outH)), PyTorch's bins; the
 *         average runs over the bin's cells only. Bins of neighbours may overlap by one cell.
 *
 * Backward, from y = Σ_cells weight(cell) · x[cell] for each window:
 * - max:  the winner has weight 1, the others 0, so dx[winner] += dy. The forward stores the
 *         winner (`argmax`, the flat index h·W + w in its plane) so backward need not search;
 *         with overlapping windows (AlexNet's 3x3 stride 2, paper section 3.4) one cell can
 *         win several windows and collects every dy it won.
 * - avg:  every real cell has weight 1/divisor: dx[cell] += dy / divisor for each window
 *         containing it.
 * - adaptive: every cell of a bin has weight 1/|bin|: dx[cell] += dy / |bin|.
 *
 * The CPU kernels scatter (loop over outputs, add into dx); the GPU kernels compute the same
 * sums as gathers (loop over the windows containing each input), since WGSL has no float
 * atomics. Error bound: every window sum is accumulated in a float64 local (at most kh·kw
 * terms) and rounded once, so float32 outputs carry one float32 rounding.
 *
 * @module
 */

import type { AdaptivePool2dParams, Pool2dParams, TypedArray } from "../../backend/backend.ts";
import { type Tensor, wrap } from "../tensor.ts";
import { formatShape, type Shape } from "../shape.ts";
import { checkFloat, record } from "./op.ts";
import { checkOptions, declareOptions } from "../options.ts";

// ---------------------------------------------------------------------------------------------
// Parameters

/** One number for both axes, or [vertical, horizontal]. */
export type Size2d = number | readonly [number, number];

function pair(op: string, name: string, value: Size2d, min: number): [number, number] {
  const [a, b] = typeof value === "number" ? [value, value] : value;
  if (!Number.isInteger(a) || !Number.isInteger(b) || a < min || b < min) {
    const what = min > 0 ? "positive integers" : "non-negative integers";
    const got = Array.isArray(value) ? `[${value.join(",")}]` : String(value);
    throw new RangeError(`${op}: ${name} must be ${what}, got ${got}`);
  }
  return [a, b];
}

function checkInput(op: string, shape: Shape): void {
  if (shape.length !== 4) {
    throw new RangeError(`${op}: input must be [N, C, H, W], got ${formatShape(shape)}`);
  }
  if (shape[2] < 1 || shape[3] < 1) {
    throw new RangeError(`${op}: input ${formatShape(shape)} has an empty H x W plane`);
  }
}

/**
 * Validates a pooling configuration for input `xShape` [N, C, H, W] and returns the kernel
 * parameters. `stride` defaults to the kernel size (non-overlapping windows, PyTorch's
 * default) and `padding` to 0. Throws, naming `op`, the argument and its value, when the
 * kernel is larger than the padded input, the padding exceeds half the kernel (PyTorch's
 * rule: it guarantees that every window overlaps the input) or a stride is not positive.
 * `ceilMode` rounds the output size up (see the module comment); `countIncludePad` is only
 * read by average pooling.
 */
export function pool2dParams(
  op: string,
  xShape: Shape,
  kernelSize: Size2d,
  stride: Size2d | undefined,
  padding: Size2d | undefined,
  ceilMode = false,
  countIncludePad = true,
): Pool2dParams {
  checkInput(op, xShape);
  const [n, c, h, w] = xShape;
  const [kh, kw] = pair(op, "kernelSize", kernelSize, 1);
  const [strideH, strideW] = pair(op, "stride", stride ?? kernelSize, 1);
  const [padH, padW] = pair(op, "padding", padding ?? 0, 0);
  if (2 * padH > kh || 2 * padW > kw) {
    throw new RangeError(
      `${op}: padding ${JSON.stringify(padding)} must be at most half of kernelSize ${kh}x${kw} ` +
        `(a window made mostly of padding would see no input)`,
    );
  }
  if (kh > h + 2 * padH || kw > w + 2 * padW) {
    throw new RangeError(
      `${op}: kernelSize ${kh}x${kw} is larger than the padded input ` +
        `${h + 2 * padH}x${w + 2 * padW} (input ${formatShape(xShape)}, padding ${padH}x${padW})`,
    );
  }
  for (const [name, value] of [["ceilMode", ceilMode], ["countIncludePad", countIncludePad]]) {
    if (typeof value !== "boolean") {
      throw new TypeError(`${op}: ${name} must be true or false, got ${JSON.stringify(value)}`);
    }
  }
  const outH = pooledSize(h, kh, strideH, padH, ceilMode);
  const outW = pooledSize(w, kw, strideW, padW, ceilMode);
  return { n, c, h, w, kh, kw, strideH, strideW, padH, padW, outH, outW, countIncludePad };
}

/**
 * Windows along one axis, PyTorch's `pooling_output_shape`: floor (or ceil) of
 * (size + 2·pad − k) / stride, plus one; with ceil, a last window that would start at or past
 * size + pad (entirely in the right padding) is dropped.
 */
function pooledSize(size: number, k: number, stride: number, pad: number, ceil: boolean): number {
  const span = size + 2 * pad - k;
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  if (ceil && (out - 1) * stride >= size + pad) out--;
  return out;
}

/**
 * The cells [from, to) of window `index` along one axis of `size` cells (stride, padding and
 * window length k): the window starts at index·stride − pad; cells outside [0, size) are padding.
 */
function windowCells(
  index: number,
  stride: number,
  pad: number,
  k: number,
  size: number,
): [number, number] {
  const start = index * stride - pad;
  return [Math.max(start, 0), Math.min(start + k, size)];
}

/** Bin `index` of `outSize` adaptive bins over `inSize` cells: [floor(i·in/out), ceil((i+1)·in/out)). */
export function adaptiveBin(index: number, inSize: number, outSize: number): [number, number] {
  // Exact: i·in/out is a ratio of small integers, so floor/ceil of the float quotient are exact.
  return [Math.floor((index * inSize) / outSize), Math.ceil(((index + 1) * inSize) / outSize)];
}

// ---------------------------------------------------------------------------------------------
// CPU kernels

/**
 * CPU: max pooling into `y`, with the winner of each window in `argmax` (flat index h·W + w
 * within its plane). Padded cells never win. On ties the first cell in row-major order wins.
 * A NaN beats every number, so NaNs propagate as in PyTorch; the first NaN of the window wins
 * (PyTorch's CPU kernel takes the last, which only changes which cell receives dy).
 */
export function maxPool2dForwardCpu(
  x: TypedArray,
  p: Pool2dParams,
  y: TypedArray,
  argmax: Int32Array,
): void {
  const { h: height, w: width, outH, outW } = p;
  const planeSize = height * width;
  let o = 0;
  for (let plane = 0; plane < p.n * p.c; plane++) {
    const base = plane * planeSize;
    for (let i = 0; i < outH; i++) {
      const [rowFrom, rowTo] = windowCells(i, p.strideH, p.padH, p.kh, height);
      for (let j = 0; j < outW; j++) {
        const [colFrom, colTo] = windowCells(j, p.strideW, p.padW, p.kw, width);
        let best = NaN, bestIndex = -1;
        for (let row = rowFrom; row < rowTo; row++) {
          for (let col = colFrom; col < colTo; col++) {
            const index = row * width + col;
            const value = x[base + index];
            // `value !== value` is NaN; once the best is NaN nothing replaces it.
            if (bestIndex < 0 || value > best || (value !== value && best === best)) {
              best = value;
              bestIndex = index;
            }
          }
        }
        y[o] = best;
        argmax[o++] = bestIndex;
      }
    }
  }
}

/** CPU: dx = 0, then dx[winner] += dy for every window (a cell may win several windows). */
export function maxPool2dBackwardCpu(
  dy: TypedArray,
  argmax: Int32Array,
  p: Pool2dParams,
  dx: TypedArray,
): void {
  dx.fill(0);
  const planeSize = p.h * p.w, outPlaneSize = p.outH * p.outW;
  for (let plane = 0; plane < p.n * p.c; plane++) {
    const base = plane * planeSize;
    for (let o = plane * outPlaneSize; o < (plane + 1) * outPlaneSize; o++) {
      dx[base + argmax[o]] += dy[o];
    }
  }
}

/**
 * The divisor of average-pooling window (i, j), PyTorch's rule: the window's extent inside the
 * padded input [−pad, size + pad) when `countIncludePad`, else the number of real cells.
 */
export function avgPoolDivisor(p: Pool2dParams, i: number, j: number): number {
  const extent = (index: number, stride: number, pad: number, k: number, size: number) => {
    const start = index * stride - pad;
    const end = Math.min(start + k, size + pad);
    return p.countIncludePad ? end - start : Math.min(end, size) - Math.max(start, 0);
  };
  return extent(i, p.strideH, p.padH, p.kh, p.h) * extent(j, p.strideW, p.padW, p.kw, p.w);
}

/** CPU: average pooling, each window's sum over its real cells / {@link avgPoolDivisor}. */
export function avgPool2dForwardCpu(x: TypedArray, p: Pool2dParams, y: TypedArray): void {
  const { h: height, w: width, outH, outW } = p;
  const planeSize = height * width;
  let o = 0;
  for (let plane = 0; plane < p.n * p.c; plane++) {
    const base = plane * planeSize;
    for (let i = 0; i < outH; i++) {
      const [rowFrom, rowTo] = windowCells(i, p.strideH, p.padH, p.kh, height);
      for (let j = 0; j < outW; j++) {
        const [colFrom, colTo] = windowCells(j, p.strideW, p.padW, p.kw, width);
        let total = 0;
        for (let row = rowFrom; row < rowTo; row++) {
          for (let col = colFrom; col < colTo; col++) total += x[base + row * width + col];
        }
        y[o++] = total / avgPoolDivisor(p, i, j);
      }
    }
  }
}

/** CPU: dx = 0, then dx[cell] += dy / divisor for every window containing the cell. */
export function avgPool2dBackwardCpu(dy: TypedArray, p: Pool2dParams, dx: TypedArray): void {
  dx.fill(0);
  const { h: height, w: width, outH, outW } = p;
  const planeSize = height * width;
  let o = 0;
  for (let plane = 0; plane < p.n * p.c; plane++) {
    const base = plane * planeSize;
    for (let i = 0; i < outH; i++) {
      const [rowFrom, rowTo] = windowCells(i, p.strideH, p.padH, p.kh, height);
      for (let j = 0; j < outW; j++) {
        const [colFrom, colTo] = windowCells(j, p.strideW, p.padW, p.kw, width);
        const share = dy[o++] / avgPoolDivisor(p, i, j);
        for (let row = rowFrom; row < rowTo; row++) {
          for (let col = colFrom; col < colTo; col++) dx[base + row * width + col] += share;
        }
      }
    }
  }
}

/** CPU: adaptive average pooling, each output the mean of its bin (see {@link adaptiveBin}). */
export function adaptiveAvgPool2dForwardCpu(
  x: TypedArray,
  p: AdaptivePool2dParams,
  y: TypedArray,
): void {
  const { h: height, w: width, outH, outW } = p;
  const planeSize = height * width;
  let o = 0;
  for (let plane = 0; plane < p.n * p.c; plane++) {
    const base = plane * planeSize;
    for (let i = 0; i < outH; i++) {
      const [rowFrom, rowTo] = adaptiveBin(i, height, outH);
      for (let j = 0; j < outW; j++) {
        const [colFrom, colTo] = adaptiveBin(j, width, outW);
        let total = 0;
        for (let row = rowFrom; row < rowTo; row++) {
          for (let col = colFrom; col < colTo; col++) total += x[base + row * width + col];
        }
        y[o++] = total / ((rowTo - rowFrom) * (colTo - colFrom));
      }
    }
  }
}

/** CPU: dx = 0, then dx[cell] += dy / |bin| for every bin containing the cell. */
export function adaptiveAvgPool2dBackwardCpu(
  dy: TypedArray,
  p: AdaptivePool2dParams,
  dx: TypedArray,
): void {
  dx.fill(0);
  const { h: height, w: width, outH, outW } = p;
  const planeSize = height * width;
  let o = 0;
  for (let plane = 0; plane < p.n * p.c; plane++) {
    const base = plane * planeSize;
    for (let i = 0; i < outH; i++) {
      const [rowFrom, rowTo] = adaptiveBin(i, height, outH);
      for (let j = 0; j < outW; j++) {
        const [colFrom, colTo] = adaptiveBin(j, width, outW);
        const share = dy[o++] / ((rowTo - rowFrom) * (colTo - colFrom));
        for (let row = rowFrom; row < rowTo; row++) {
          for (let col = colFrom; col < colTo; col++) dx[base + row * width + col] += share;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Ops

/** Options of {@link maxPool2d} and {@link avgPool2d}. */
export interface Pool2dOptions {
  /** Window size, one number or [height, width]. */
  kernelSize: Size2d;
  /** Step between windows (default: the kernel size, so windows do not overlap). */
  stride?: Size2d;
  /** Implicit padding on each side (default 0); at most half the kernel size. */
  padding?: Size2d;
  /** Round the output size up, adding a last partial window (default false, PyTorch's `ceil_mode`). */
  ceilMode?: boolean;
}

/** Options of {@link avgPool2d}: {@link Pool2dOptions} and whether padding counts in the divisor. */
export interface AvgPool2dOptions extends Pool2dOptions {
  /** Padded cells count in each window's divisor (default true, PyTorch's `count_include_pad`). */
  countIncludePad?: boolean;
}

const MAX_POOL_KEYS = declareOptions<Pool2dOptions>()("maxPool2d", [
  "kernelSize",
  "stride",
  "padding",
  "ceilMode",
]);
const AVG_POOL_KEYS = declareOptions<AvgPool2dOptions>()("avgPool2d", [
  "kernelSize",
  "stride",
  "padding",
  "ceilMode",
  "countIncludePad",
]);

/**
 * Checks pooling `options` (required: the kernel size has no default). A bare size, PyTorch's
 * `MaxPool2d(3)`, gets an error showing the object to write instead.
 */
export function poolOptions<T extends Pool2dOptions>(
  op: string,
  options: T,
  keys: readonly string[],
): T {
  if (options === undefined || typeof options === "number" || Array.isArray(options)) {
    const got = Array.isArray(options) ? `[${options.join(", ")}]` : String(options);
    const hint = options === undefined ? "" : `; write { kernelSize: ${got} }`;
    throw new TypeError(
      `${op}: expects options { kernelSize, stride?, padding? }, got ${got}${hint}`,
    );
  }
  return checkOptions(op, options, keys);
}

/**
 * Max pooling of x [N, C, H, W]. AlexNet pools with `{kernelSize: 3, stride: 2}`: overlapping
 * windows, which cut top-1 error by 0.4% against 2x2 stride 2 (paper section 3.4).
 *
 * @example The largest value of each window
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxPool2d, tensor } from "../../mod.ts";
 *
 * const x = tensor([[[
 *   [1, 2, 5, 6],
 *   [3, 4, 7, 8],
 *   [0, 0, 1, 0],
 *   [0, 9, 0, 2],
 * ]]]); // [1, 1, 4, 4]
 * const y = maxPool2d(x, { kernelSize: 2 }); // stride defaults to the window
 * assert.deepEqual(y.shape, [1, 1, 2, 2]);
 * assert.deepEqual([...y.dataSync()], [4, 8, 9, 2]);
 * // AlexNet's overlapping pooling: 3x3 windows every 2 pixels.
 * assert.deepEqual(maxPool2d(x, { kernelSize: 3, stride: 2 }).shape, [1, 1, 1, 1]);
 * ```
 */
export function maxPool2d(x: Tensor, options: Pool2dOptions): Tensor {
  checkFloat("maxPool2d", x);
  const o = poolOptions("maxPool2d", options, MAX_POOL_KEYS);
  const p = pool2dParams("maxPool2d", x.shape, o.kernelSize, o.stride, o.padding, o.ceilMode);
  const outShape = [p.n, p.c, p.outH, p.outW];
  const backend = x.backend;
  const { y: values, argmax: winners } = backend.maxPool2dForward(x.storage, p);
  const y = wrap(values, outShape);
  // The winners are saved for backward (and freed with the graph, or at once if none is recorded).
  const argmax = wrap(winners, outShape);
  return record(
    "maxPool2d",
    y,
    [x],
    (g) => [wrap(backend.maxPool2dBackward(g.storage, argmax.storage, p), x.shape)],
    [argmax],
  );
}

/**
 * Average pooling of x [N, C, H, W]; by default padded cells count as zeros in the divisor
 * (`countIncludePad: false` divides by the real cells only).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { avgPool2d, ones } from "../../mod.ts";
 *
 * const x = ones([1, 1, 2, 2]);
 * // A corner window of 2x2 with padding 1 sees one real cell and three padded zeros.
 * assert.equal(avgPool2d(x, { kernelSize: 2, padding: 1 }).dataSync()[0], 0.25);
 * assert.equal(avgPool2d(x, { kernelSize: 2, padding: 1, countIncludePad: false }).dataSync()[0], 1);
 * ```
 */
export function avgPool2d(x: Tensor, options: AvgPool2dOptions): Tensor {
  checkFloat("avgPool2d", x);
  const o = poolOptions("avgPool2d", options, AVG_POOL_KEYS);
  const p = pool2dParams(
    "avgPool2d",
    x.shape,
    o.kernelSize,
    o.stride,
    o.padding,
    o.ceilMode,
    o.countIncludePad,
  );
  const backend = x.backend;
  const y = wrap(backend.avgPool2dForward(x.storage, p), [p.n, p.c, p.outH, p.outW]);
  return record(
    "avgPool2d",
    y,
    [x],
    (g) => [wrap(backend.avgPool2dBackward(g.storage, p), x.shape)],
  );
}

/**
 * Adaptive average pooling of x [N, C, H, W] to [N, C, outH, outW] with PyTorch's bins, so the
 * output size is fixed whatever the input size (torchvision's AlexNet pools to 6x6 before fc6).
 * `outputSize` is one number for a square output or [outH, outW].
 */
export function adaptiveAvgPool2d(x: Tensor, outputSize: Size2d): Tensor {
  checkFloat("adaptiveAvgPool2d", x);
  checkInput("adaptiveAvgPool2d", x.shape);
  const [outH, outW] = pair("adaptiveAvgPool2d", "outputSize", outputSize, 1);
  const [n, c, h, w] = x.shape;
  const p: AdaptivePool2dParams = { n, c, h, w, outH, outW };
  const backend = x.backend;
  const y = wrap(backend.adaptiveAvgPool2dForward(x.storage, p), [n, c, outH, outW]);
  return record(
    "adaptiveAvgPool2d",
    y,
    [x],
    (g) => [wrap(backend.adaptiveAvgPool2dBackward(g.storage, p), x.shape)],
  );
}
