/**
 * Local response normalization across channels (paper section 3.3): each activation is
 * divided by a power of the energy of its neighbours in channel space, at the same (h, w).
 * x and y are [N, C, H, W]. For one pixel, with `a` the coefficient of each squared term:
 *
 *     s_c = k + a · Σ_{j ∈ win(c)} x_j²          y_c = x_c · s_c^(−β)
 *
 *     win(c) = [c − floor(size/2), c + floor((size−1)/2)] clipped to [0, C)
 *
 * (PyTorch's padding of the channel window: symmetric for odd sizes, one more channel below
 * than above for even sizes; near the first and last channels the window is cut short).
 *
 * Backward. y_c depends on x_c directly and on every x_i in win(c) through s_c, with
 * ∂s_c/∂x_i = 2a·x_i, so
 *
 *     ∂y_c/∂x_i = [c = i] · s_c^(−β)  −  β · x_c · s_c^(−β−1) · 2a·x_i      (i ∈ win(c))
 *
 *     dx_i = Σ_c dy_c ∂y_c/∂x_i = dy_i · s_i^(−β)  −  2aβ · x_i · Σ_{c : i ∈ win(c)} dy_c x_c s_c^(−β−1)
 *
 * and i ∈ win(c) exactly when c ∈ [i − floor((size−1)/2), i + floor(size/2)]: the window
 * mirrored, which differs from win(i) for even sizes. The backward recomputes s from x rather
 * than storing it (one more pass over C·size values, one less tensor of activations kept).
 *
 * ## The alpha trap
 *
 * The paper prints `k + alpha · Σ x_j²` with alpha = 1e-4. The code that won ImageNet 2012
 * (cuda-convnet2: `scale /= size`) and Caffe, PyTorch and burn after it divide the configured
 * alpha by the window size, so the network actually ran with 1e-4 / 5 = 2e-5 per squared term.
 * TensorFlow and TF.js use alpha per term, as printed.
 * {@link localResponseNorm} therefore takes `alphaScaling`: `"averaged"` (default, a = alpha /
 * size: PyTorch's numbers) or `"per-term"` (a = alpha: the paper's formula, TensorFlow's
 * convention). Only alpha changes; the window is the one above in both conventions.
 *
 * Error bound: the window sums of squares and the backward's sums run in float64 arrays (at
 * most `size` terms, or C for the backward's window sums) and are rounded once to the output
 * dtype.
 *
 * @module
 */

import type { LrnParams, TypedArray } from "../../backend/backend.ts";
import { type Tensor, wrap } from "../tensor.ts";
import { formatShape } from "../shape.ts";
import { checkFloat, record } from "./op.ts";
import { checkOptions, declareOptions } from "../options.ts";

// ---------------------------------------------------------------------------------------------
// CPU kernels

/**
 * s^(−β). AlexNet's β = 0.75 is computed as 1 / (√s · √√s): a few ulps from `Math.pow`, with
 * square roots instead of a general power, for LRN runs on the two largest activations.
 */
function inversePower(s: number, beta: number): number {
  if (beta === 0.75) {
    const root = Math.sqrt(s);
    return 1 / (root * Math.sqrt(root));
  }
  return s ** -beta;
}

/** Fills `scale` [C, H·W] with s_c = k + alpha · Σ_{j ∈ win(c)} x_j² for batch item `item`. */
function lrnScales(x: TypedArray, p: LrnParams, item: number, scale: Float64Array): void {
  const planeSize = p.h * p.w, itemBase = item * p.c * planeSize;
  const below = Math.floor(p.size / 2), above = Math.floor((p.size - 1) / 2);
  for (let c = 0; c < p.c; c++) {
    const out = c * planeSize;
    scale.fill(0, out, out + planeSize);
    const from = Math.max(0, c - below), to = Math.min(p.c - 1, c + above);
    for (let j = from; j <= to; j++) {
      const base = itemBase + j * planeSize;
      for (let s = 0; s < planeSize; s++) scale[out + s] += x[base + s] * x[base + s];
    }
    for (let s = 0; s < planeSize; s++) scale[out + s] = p.k + p.alpha * scale[out + s];
  }
}

/** CPU: y = x · s^(−β), with s as in the module comment (`p.alpha` is per squared term). */
export function lrnForwardCpu(x: TypedArray, p: LrnParams, y: TypedArray): void {
  const itemSize = p.c * p.h * p.w;
  const scale = new Float64Array(itemSize);
  for (let item = 0; item < p.n; item++) {
    lrnScales(x, p, item, scale);
    const base = item * itemSize;
    for (let i = 0; i < itemSize; i++) y[base + i] = x[base + i] * inversePower(scale[i], p.beta);
  }
}

/**
 * CPU: dx_i = dy_i · s_i^(−β) − 2αβ · x_i · Σ_{c : i ∈ win(c)} dy_c x_c s_c^(−β−1), with s
 * recomputed from x.
 */
export function lrnBackwardCpu(x: TypedArray, dy: TypedArray, p: LrnParams, dx: TypedArray): void {
  const planeSize = p.h * p.w, itemSize = p.c * planeSize;
  // c ranges over the windows that contain channel i: the window mirrored.
  const below = Math.floor((p.size - 1) / 2), above = Math.floor(p.size / 2);
  const scale = new Float64Array(itemSize);
  const weighted = new Float64Array(itemSize); // dy_c · x_c · s_c^(−β−1)
  const windowSum = new Float64Array(planeSize); // Σ over the windows containing channel i
  const factor = 2 * p.alpha * p.beta;
  for (let item = 0; item < p.n; item++) {
    lrnScales(x, p, item, scale);
    const base = item * itemSize;
    for (let i = 0; i < itemSize; i++) {
      const scaled = inversePower(scale[i], p.beta);
      weighted[i] = (dy[base + i] * x[base + i] * scaled) / scale[i];
      scale[i] = scaled; // from here on, scale holds s^(−β)
    }
    for (let i = 0; i < p.c; i++) {
      const from = Math.max(0, i - below), to = Math.min(p.c - 1, i + above);
      windowSum.fill(0);
      for (let c = from; c <= to; c++) {
        const row = c * planeSize;
        for (let s = 0; s < planeSize; s++) windowSum[s] += weighted[row + s];
      }
      const at = i * planeSize;
      for (let s = 0; s < planeSize; s++) {
        dx[base + at + s] = dy[base + at + s] * scale[at + s] -
          factor * x[base + at + s] * windowSum[s];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Op

/**
 * How the configured alpha becomes the coefficient `a` of each squared term. `"averaged"`:
 * a = alpha / size, what the code that won ImageNet 2012 (cuda-convnet2), Caffe and PyTorch
 * compute, so AlexNet ran with 1e-4 / 5 = 2e-5 per term. `"per-term"`: a = alpha, the paper's
 * formula as printed and TensorFlow's convention. The paper and its code disagree by a factor
 * of the window size.
 */
export type LrnAlphaScaling = "averaged" | "per-term";

const LRN_KEYS = declareOptions<LrnOptions>()("localResponseNorm", [
  "size",
  "alpha",
  "beta",
  "k",
  "alphaScaling",
]);

/** Options of {@link localResponseNorm}; the defaults are AlexNet's (paper section 3.3). */
export interface LrnOptions {
  /** Channels in the window, n (default 5: paper section 3.3). */
  size?: number;
  /** alpha (default 1e-4: paper section 3.3); how it is applied depends on `alphaScaling`. */
  alpha?: number;
  /** Exponent β (default 0.75: paper section 3.3). */
  beta?: number;
  /** Additive constant k (default 2: paper section 3.3; PyTorch's own default is 1). */
  k?: number;
  /**
   * `"averaged"` (default): each squared term is weighted alpha / size, as in cuda-convnet2
   * (the code that trained the paper's network), Caffe, PyTorch and burn. `"per-term"`: each
   * is weighted alpha, the paper's formula as printed and TensorFlow's convention.
   */
  alphaScaling?: LrnAlphaScaling;
}

/**
 * Local response normalization of x [N, C, H, W] across channels (paper section 3.3):
 * `y_c = x_c / (k + a · Σ_{j ∈ win(c)} x_j²)^β`, where win(c) is the `size` channels around c
 * (cut short at the first and last channels). By default a = alpha / size, what the winning
 * network's code (and Caffe, PyTorch) computed although the paper prints alpha itself; pass
 * `alphaScaling: "per-term"` for the formula as printed (see {@link LrnAlphaScaling}).
 *
 * @example The formula by hand, in both alpha conventions
 * ```ts
 * import assert from "node:assert/strict";
 * import { localResponseNorm, tensor } from "../../mod.ts";
 *
 * // One pixel with 3 channels; size 3 puts all three in the middle channel's window.
 * const x = tensor([[[[1]], [[2]], [[3]]]]); // [1, 3, 1, 1]
 * const y = localResponseNorm(x, { size: 3, alpha: 3, beta: 1, k: 1 });
 * // Middle channel: a = alpha / size = 1, so y = 2 / (1 + 1 · (1 + 4 + 9)) = 2 / 15.
 * assert.ok(Math.abs(y.dataSync()[1] - 2 / 15) < 1e-6);
 * // The paper's formula read literally weighs each square by alpha itself: 2 / (1 + 3 · 14).
 * const literal = localResponseNorm(x, { size: 3, alpha: 3, beta: 1, k: 1, alphaScaling: "per-term" });
 * assert.ok(Math.abs(literal.dataSync()[1] - 2 / 43) < 1e-6);
 * ```
 */
export function localResponseNorm(x: Tensor, options?: LrnOptions): Tensor {
  options = checkOptions("localResponseNorm", options, LRN_KEYS);
  checkFloat("localResponseNorm", x);
  if (x.rank !== 4) {
    throw new RangeError(
      `localResponseNorm: input must be [N, C, H, W], got ${formatShape(x.shape)}`,
    );
  }
  const { size = 5, alpha = 1e-4, beta = 0.75, k = 2, alphaScaling = "averaged" } = options;
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`localResponseNorm: size must be a positive integer, got ${size}`);
  }
  for (const [name, value] of [["alpha", alpha], ["beta", beta], ["k", k]] as const) {
    if (!Number.isFinite(value)) {
      throw new RangeError(`localResponseNorm: ${name} must be a finite number, got ${value}`);
    }
  }
  if (alphaScaling !== "averaged" && alphaScaling !== "per-term") {
    const got = JSON.stringify(alphaScaling);
    throw new RangeError(
      `localResponseNorm: alphaScaling must be "averaged" or "per-term", got ${got}`,
    );
  }
  const [n, c, h, w] = x.shape;
  const perTermAlpha = alphaScaling === "averaged" ? alpha / size : alpha;
  const p: LrnParams = { n, c, h, w, size, alpha: perTermAlpha, beta, k };
  const backend = x.backend;
  const y = wrap(backend.lrnForward(x.storage, p), x.shape);
  return record(
    "localResponseNorm",
    y,
    [x],
    (g) => [wrap(backend.lrnBackward(x.storage, g.storage, p), x.shape)],
  );
}
