/**
 * Softmax, log-softmax and the cross-entropy loss. The kernels work on the last axis (each
 * row of a [rows, cols] matrix; AlexNet's fc8 feeds a 1000-way softmax, paper section 3.5);
 * `softmax(x, axis)` and `logSoftmax(x, axis)` move another axis last with a permute first.
 *
 *     softmax(x)_j    = e^(x_j − m) / Σ_k e^(x_k − m)              m = max_k x_k
 *     logSoftmax(x)_j = x_j − m − log Σ_k e^(x_k − m)
 *     crossEntropy    = −logSoftmax(x)_label = log Σ_k e^(x_k − m) − (x_label − m)
 *
 * Subtracting the row maximum changes nothing mathematically (it cancels between numerator
 * and denominator) but keeps every exponent ≤ 0, so logits of ±1000 neither overflow to
 * Infinity nor underflow the whole sum to 0: the largest term is exactly e^0 = 1.
 *
 * Backward, with y = softmax(x), ∂y_j/∂x_i = y_j ([i = j] − y_i):
 *
 *     softmax:     dx_i = Σ_j dy_j y_j ([i = j] − y_i) = y_i · (dy_i − Σ_j dy_j y_j)
 *     logSoftmax:  ∂ly_j/∂x_i = [i = j] − y_i, so dx_i = dy_i − y_i · Σ_j dy_j
 *                  (the kernel gets ly = log y and uses y_i = e^(ly_i))
 *     crossEntropy: the loss is −ly_label, i.e. dy = −onehot(label), so
 *                  dx_i = (y_i − [i = label]) · dLoss
 *
 * `crossEntropy` returns the mean over the batch by default, composed from the per-row
 * kernel and `mean` (whose backward divides by N); `reduction: "sum"` or `"none"` as in PyTorch.
 *
 * PyTorch's `weight`, `ignore_index` and `label_smoothing` (ε) are composed from logSoftmax and
 * elementwise ops, so every device has them and autograd derives the gradient. With
 * lp = logSoftmax(x), per row n with label y (PyTorch 2.x, also 1.13):
 *
 *     nll_n    = −w[y] · lp[n, y]                 smooth_n = −Σ_c w[c] · lp[n, c]
 *     loss_n   = (1 − ε) · nll_n + (ε / C) · smooth_n       (0 for a row whose label is ignored)
 *     "mean"   = Σ_n loss_n / Σ_{n not ignored} w[y_n]       (w = 1 without weights: the count)
 *
 * so with weights the mean divides by the summed weights of the counted rows, not by N, and an
 * all-ignored batch gives NaN (0/0), as in PyTorch.
 *
 * Error bound: the row sums (max, Σ e^(x − m), Σ dy) are float64 locals over one row, rounded
 * once; the batch mean is `sum`'s pairwise float64 sum (see reduce.ts).
 *
 * @module
 */

import type { TypedArray } from "../../backend/backend.ts";
import { fromArray, isHostDevice, Tensor, wrap } from "../tensor.ts";
import { formatShape, normalizeAxis } from "../shape.ts";
import { checkFloat, deviceOf, record } from "./op.ts";
import { mean, sum } from "./reduce.ts";
import { permute, reshape } from "./layout.ts";
import { add, cast, div, eq, mul, ne, neg } from "./elementwise.ts";
import { checkOptions, declareOptions } from "../options.ts";

// ---------------------------------------------------------------------------------------------
// CPU kernels

function rowMax(x: TypedArray, start: number, cols: number): number {
  let m = -Infinity;
  for (let j = start; j < start + cols; j++) if (x[j] > m || x[j] !== x[j]) m = x[j];
  return m;
}

/** log Σ_j e^(x_j − m) for one row, given its maximum m. */
function logSumExpShifted(x: TypedArray, start: number, cols: number, m: number): number {
  let total = 0;
  for (let j = start; j < start + cols; j++) total += Math.exp(x[j] - m);
  return Math.log(total);
}

/** CPU: softmax of each row of x [rows, cols]. */
export function softmaxCpu(x: TypedArray, rows: number, cols: number, y: TypedArray): void {
  for (let r = 0; r < rows; r++) {
    const start = r * cols, m = rowMax(x, start, cols);
    let total = 0;
    for (let j = start; j < start + cols; j++) {
      const e = Math.exp(x[j] - m);
      y[j] = e;
      total += e;
    }
    for (let j = start; j < start + cols; j++) y[j] /= total;
  }
}

/** CPU: dx = y · (dy − Σ_j dy_j y_j) per row, given y = softmax(x). */
export function softmaxBackwardCpu(
  y: TypedArray,
  dy: TypedArray,
  rows: number,
  cols: number,
  dx: TypedArray,
): void {
  for (let r = 0; r < rows; r++) {
    const start = r * cols;
    let dot = 0;
    for (let j = start; j < start + cols; j++) dot += dy[j] * y[j];
    for (let j = start; j < start + cols; j++) dx[j] = y[j] * (dy[j] - dot);
  }
}

/** CPU: log-softmax of each row, x − m − log Σ e^(x − m). */
export function logSoftmaxCpu(x: TypedArray, rows: number, cols: number, y: TypedArray): void {
  for (let r = 0; r < rows; r++) {
    const start = r * cols, m = rowMax(x, start, cols);
    const logTotal = logSumExpShifted(x, start, cols, m);
    for (let j = start; j < start + cols; j++) y[j] = x[j] - m - logTotal;
  }
}

/** CPU: dx = dy − e^y · Σ_j dy_j per row, given y = logSoftmax(x). */
export function logSoftmaxBackwardCpu(
  y: TypedArray,
  dy: TypedArray,
  rows: number,
  cols: number,
  dx: TypedArray,
): void {
  for (let r = 0; r < rows; r++) {
    const start = r * cols;
    let total = 0;
    for (let j = start; j < start + cols; j++) total += dy[j];
    for (let j = start; j < start + cols; j++) dx[j] = dy[j] - Math.exp(y[j]) * total;
  }
}

/** CPU: loss[r] = −log softmax(logits[r])[labels[r]] = log Σ e^(x − m) − (x_label − m). */
export function crossEntropyCpu(
  logits: TypedArray,
  labels: Int32Array,
  rows: number,
  cols: number,
  loss: TypedArray,
): void {
  for (let r = 0; r < rows; r++) {
    const start = r * cols, m = rowMax(logits, start, cols);
    loss[r] = logSumExpShifted(logits, start, cols, m) - (logits[start + labels[r]] - m);
  }
}

/** CPU: dlogits = (softmax(logits) − onehot(label)) · dLoss[row]. */
export function crossEntropyBackwardCpu(
  logits: TypedArray,
  labels: Int32Array,
  dLoss: TypedArray,
  rows: number,
  cols: number,
  dx: TypedArray,
): void {
  softmaxCpu(logits, rows, cols, dx);
  for (let r = 0; r < rows; r++) {
    const start = r * cols;
    dx[start + labels[r]] -= 1;
    for (let j = start; j < start + cols; j++) dx[j] *= dLoss[r];
  }
}

// ---------------------------------------------------------------------------------------------
// Ops

function rowsAndCols(op: string, x: Tensor): [number, number] {
  if (x.rank === 0) throw new RangeError(`${op}: needs at least one axis, got a scalar`);
  const cols = x.shape[x.rank - 1];
  return [cols === 0 ? 0 : x.size / cols, cols];
}

/**
 * Runs a last-axis kernel `op` over `axis` instead: the axis is moved last with a permute
 * (differentiable, so the gradient is moved back), and the result moved back.
 */
function alongAxis(name: string, x: Tensor, axis: number, op: (x: Tensor) => Tensor): Tensor {
  checkFloat(name, x);
  if (x.rank === 0) throw new RangeError(`${name}: needs at least one axis, got a scalar`);
  const ax = normalizeAxis(name, axis, x.rank);
  if (ax === x.rank - 1) return op(x);
  const perm = [...x.shape.keys()].filter((i) => i !== ax).concat(ax);
  const inverse = perm.map((_, i) => perm.indexOf(i));
  const moved = permute(x, perm);
  const y = op(moved);
  const out = permute(y, inverse);
  if (!out.node) {
    moved.dispose();
    y.dispose();
  }
  return out;
}

/**
 * Softmax over `axis` (default the last; negative counts from the end): every slice along it
 * is positive and sums to 1.
 *
 * @example Probabilities from logits
 * ```ts
 * import assert from "node:assert/strict";
 * import { softmax, tensor } from "../../mod.ts";
 *
 * const p = softmax(tensor([[1, 2, 3], [1000, 1000, 1000]])).dataSync();
 * assert.ok(Math.abs(p[0] + p[1] + p[2] - 1) < 1e-6); // each row sums to 1
 * assert.ok(p[2] > p[1] && p[1] > p[0]); // and keeps the order of the logits
 * assert.ok(Math.abs(p[3] - 1 / 3) < 1e-6); // large logits do not overflow
 * const columns = softmax(tensor([[1, 2], [1, 2]]), 0).dataSync(); // over axis 0 instead
 * assert.ok(Math.abs(columns[0] - 0.5) < 1e-6);
 * ```
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  return alongAxis("softmax", x, axis, (x) => {
    const [rows, cols] = rowsAndCols("softmax", x);
    const backend = x.backend;
    const y = wrap(backend.softmax(x.storage, rows, cols), x.shape);
    return record(
      "softmax",
      y,
      [x],
      (g) => [wrap(backend.softmaxBackward(y.storage, g.storage, rows, cols), x.shape)],
    );
  });
}

/** log(softmax(x)) over `axis` (default the last), computed stably (no log of an underflowed 0). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return alongAxis("logSoftmax", x, axis, (x) => {
    const [rows, cols] = rowsAndCols("logSoftmax", x);
    const backend = x.backend;
    const y = wrap(backend.logSoftmax(x.storage, rows, cols), x.shape);
    return record(
      "logSoftmax",
      y,
      [x],
      (g) => [wrap(backend.logSoftmaxBackward(y.storage, g.storage, rows, cols), x.shape)],
    );
  });
}

/** Throws unless every label is an integer class index in [0, classes) or `ignored`. */
function checkLabelValues(values: ArrayLike<number>, classes: number, ignored?: number): void {
  for (let i = 0; i < values.length; i++) {
    const label = values[i];
    if (label === ignored) continue;
    if (!Number.isInteger(label) || label < 0 || label >= classes) {
      const ignoreHint = ignored === undefined && label === -100
        ? " (PyTorch ignores -100 by default; here pass { ignoreIndex: -100 })"
        : "";
      throw new RangeError(
        `crossEntropy: label ${label} at index ${i} is not a class index in [0, ${classes})${ignoreHint}`,
      );
    }
  }
}

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /**
   * How the per-row losses are combined (PyTorch's `reduction`): `"mean"` (default) over the
   * batch, `"sum"`, or `"none"` for the [N] losses themselves.
   */
  reduction?: "mean" | "sum" | "none";
  /**
   * A weight per class, [C] (PyTorch's `weight`): row n's loss is scaled by weight[label], and
   * the mean divides by the summed weights of the counted rows. Default: all 1.
   */
  weight?: Tensor | readonly number[] | Float32Array | Float64Array;
  /**
   * A label value whose rows add nothing to the loss or the gradient, and are not counted by
   * the mean (PyTorch's `ignore_index`). Default: none, so every label must be a class index
   * (PyTorch's default is -100).
   */
  ignoreIndex?: number;
  /**
   * ε in [0, 1] (PyTorch's `label_smoothing`): the target is (1 − ε)·onehot + ε/C·uniform.
   * Default 0.
   */
  labelSmoothing?: number;
}

const CROSS_ENTROPY_KEYS = declareOptions<CrossEntropyOptions>()("crossEntropy", [
  "reduction",
  "weight",
  "ignoreIndex",
  "labelSmoothing",
]);

/**
 * Cross-entropy loss of logits [N, C] against integer class labels [N]: −log
 * softmax(logits)[label] for each row, averaged over the rows (a scalar tensor) unless
 * `reduction` says otherwise. Stable for any finite logits.
 *
 * `labels` is an int32 tensor on the logits' device, or host values (Int32Array or number[]),
 * which are uploaded to that device and released with the graph. Host labels and CPU tensors
 * are checked to lie in [0, C); a GPU tensor's values are not read back to check them.
 *
 * @example Mean loss of two samples
 * ```ts
 * import assert from "node:assert/strict";
 * import { crossEntropy, tensor } from "../../mod.ts";
 *
 * const logits = tensor([[2, 0, 0], [0, 0, 0]], { requiresGrad: true }); // 2 samples, 3 classes
 * const loss = crossEntropy(logits, [0, 2]); // host labels are fine
 * // Sample 2 is a uniform guess: −log(1/3). Sample 1: −log(e² / (e² + 2)).
 * const expected = (Math.log(3) - Math.log(Math.exp(2) / (Math.exp(2) + 2))) / 2;
 * assert.ok(Math.abs((await loss.item()) - expected) < 1e-6);
 * loss.backward(); // dlogits = (softmax − onehot) / N
 * assert.ok(logits.grad!.dataSync()[0] < 0); // raising the right class lowers the loss
 * ```
 */
export function crossEntropy(
  logits: Tensor,
  labels: Tensor | Int32Array | readonly number[],
  options?: CrossEntropyOptions,
): Tensor {
  checkFloat("crossEntropy", logits);
  options = checkOptions("crossEntropy", options, CROSS_ENTROPY_KEYS);
  const reduction = options.reduction ?? "mean";
  const ignoreIndex = options.ignoreIndex;
  if (ignoreIndex !== undefined && !Number.isInteger(ignoreIndex)) {
    throw new RangeError(
      `crossEntropy: ignoreIndex must be an integer, got ${String(ignoreIndex)}`,
    );
  }
  const smoothing = options.labelSmoothing ?? 0;
  if (typeof smoothing !== "number" || !(smoothing >= 0 && smoothing <= 1)) {
    throw new RangeError(
      `crossEntropy: labelSmoothing must be in [0, 1], got ${String(smoothing)}`,
    );
  }
  if (reduction !== "mean" && reduction !== "sum" && reduction !== "none") {
    throw new RangeError(
      `crossEntropy: reduction must be "mean", "sum" or "none", got ${JSON.stringify(reduction)}`,
    );
  }
  if (!(labels instanceof Tensor) && !(labels instanceof Int32Array) && !Array.isArray(labels)) {
    throw new TypeError(
      `crossEntropy: labels must be an int32 Tensor, an Int32Array or an array of class indices, got ${
        String(labels)
      }`,
    );
  }
  const logitsShape = formatShape(logits.shape);
  if (logits.rank !== 2) {
    throw new RangeError(`crossEntropy: logits must be [N, C], got ${logitsShape}`);
  }
  const [rows, cols] = logits.shape;
  if (rows < 1 || cols < 1) throw new RangeError(`crossEntropy: logits ${logitsShape} are empty`);
  let classes: Tensor;
  if (labels instanceof Tensor) {
    deviceOf("crossEntropy", logits, labels);
    if (labels.dtype !== "int32") {
      throw new TypeError(`crossEntropy: labels must be int32, got ${labels.dtype}`);
    }
    if (labels.rank !== 1 || labels.shape[0] !== rows) {
      const labelsShape = formatShape(labels.shape);
      throw new RangeError(
        `crossEntropy: labels ${labelsShape} do not match logits ${logitsShape} (expected [${rows}])`,
      );
    }
    if (isHostDevice(labels.backend)) checkLabelValues(labels.dataSync(), cols, ignoreIndex);
    // A view of the caller's labels: the graph's release of it leaves the caller's tensor alone.
    classes = labels.detach();
  } else {
    if (labels.length !== rows) {
      throw new RangeError(
        `crossEntropy: ${labels.length} labels for ${rows} rows of logits ${logitsShape}`,
      );
    }
    checkLabelValues(labels, cols, ignoreIndex);
    classes = fromArray(Int32Array.from(labels), [rows], { device: logits.backend });
  }
  if (options.weight !== undefined || ignoreIndex !== undefined || smoothing !== 0) {
    if (!isHostDevice(logits.backend)) checkLabelsOnDevice(logits, classes, ignoreIndex);
    const weight = classWeights(logits, options.weight);
    return composedCrossEntropy(logits, classes, weight, ignoreIndex, smoothing, reduction);
  }
  const backend = logits.backend;
  const perRow = wrap(backend.crossEntropy(logits.storage, classes.storage, rows, cols), [rows]);
  // The labels are saved: freed with the graph, or at once when nothing is recorded.
  const backward = (g: Tensor) => {
    const dLogits = backend.crossEntropyBackward(
      logits.storage,
      classes.storage,
      g.storage,
      rows,
      cols,
    );
    return [wrap(dLogits, logits.shape)];
  };
  record("crossEntropy", perRow, [logits], backward, [classes]);
  if (reduction === "none") return perRow;
  const loss = reduction === "sum" ? sum(perRow) : mean(perRow);
  // Not recorded (no grad): nothing needs the per-row losses any more.
  if (!perRow.node) perRow.dispose();
  return loss;
}

/** The class weights as a [1, C] tensor of the logits' dtype and device, or null. */
function classWeights(logits: Tensor, weight: CrossEntropyOptions["weight"]): Tensor | null {
  if (weight === undefined) return null;
  const cols = logits.shape[1];
  let w: Tensor;
  if (weight instanceof Tensor) {
    deviceOf("crossEntropy", logits, weight);
    if (weight.dtype !== logits.dtype) {
      throw new TypeError(
        `crossEntropy: weight is ${weight.dtype} but the logits are ${logits.dtype}; convert it with cast(weight, "${logits.dtype}")`,
      );
    }
    w = weight;
  } else if (
    Array.isArray(weight) || weight instanceof Float32Array || weight instanceof Float64Array
  ) {
    w = fromArray(weight, [weight.length], { dtype: logits.dtype, device: logits.backend });
  } else {
    throw new TypeError(
      `crossEntropy: weight must be a Tensor or an array of ${cols} class weights, got ${
        String(weight)
      }`,
    );
  }
  if (w.rank !== 1 || w.shape[0] !== cols) {
    throw new RangeError(
      `crossEntropy: weight ${formatShape(w.shape)} must hold one value per class ([${cols}])`,
    );
  }
  return reshape(w, [1, cols]);
}

/**
 * Labels on a device are not read back here: the device's crossEntropy kernel checks them and
 * flags one out of range, which the next read reports (naming the label). The composed path
 * below never runs that kernel, so it runs it for the check alone, with ignored rows as class 0.
 */
function checkLabelsOnDevice(logits: Tensor, classes: Tensor, ignoreIndex?: number): void {
  const [rows, cols] = logits.shape;
  const checked = ignoreIndex === undefined
    ? classes
    : mul(classes, cast(ne(classes, ignoreIndex), "int32"));
  logits.backend.free(logits.backend.crossEntropy(logits.storage, checked.storage, rows, cols));
  if (checked !== classes) checked.dispose();
}

/**
 * Cross-entropy with class weights, an ignored label and/or label smoothing, composed from
 * logSoftmax and elementwise ops (the formulas of the module comment).
 */
function composedCrossEntropy(
  logits: Tensor,
  classes: Tensor,
  weight: Tensor | null,
  ignoreIndex: number | undefined,
  smoothing: number,
  reduction: "mean" | "sum" | "none",
): Tensor {
  const [rows, cols] = logits.shape;
  const options = { dtype: logits.dtype, device: logits.backend };
  const labels = reshape(cast(classes, logits.dtype), [rows, 1]);
  const classIndex = fromArray(
    Float64Array.from({ length: cols }, (_, c) => c),
    [1, cols],
    options,
  );
  // kept[n] = 1 for a counted row, 0 for an ignored one: [N, 1].
  const kept = ignoreIndex === undefined
    ? fromArray(new Float64Array(rows).fill(1), [rows, 1], options)
    : ne(labels, ignoreIndex);
  const perClass = weight ? mul(kept, weight) : kept; // [N, C] or [N, 1]: w[c] on counted rows
  const target = mul(eq(labels, classIndex), perClass); // w[y] at the label, else 0: [N, C]
  const lp = logSoftmax(logits);
  let perRow = neg(sum(mul(lp, target), 1)); // nll_n: [N]
  if (smoothing > 0) {
    const smooth = neg(sum(mul(lp, perClass), 1)); // smooth_n
    perRow = add(mul(perRow, 1 - smoothing), mul(smooth, smoothing / cols));
  }
  if (reduction === "none") return perRow;
  if (reduction === "sum") return sum(perRow);
  return div(sum(perRow), sum(target)); // Σ loss / Σ w[y_n] over counted rows
}
