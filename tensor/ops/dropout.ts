/**
 * Inverted dropout (Srivastava et al.; AlexNet uses p = 0.5 in fc6 and fc7, paper section 4.2).
 * During training each element is kept with probability 1 − p and scaled by 1 / (1 − p):
 *
 *     y_i = m_i · x_i / (1 − p),      m_i = [counterUniform(seed, i) ≥ p]
 *
 * The paper instead multiplies by 0.5 at test time; scaling at training time gives the same
 * expected activations and makes evaluation the identity, with nothing to remember.
 *
 * Backward: y is linear in x with the diagonal mask, so dx_i = m_i · dy_i / (1 − p), the same
 * kernel applied to dy with the same seed. The mask is never stored: m_i depends only on
 * (seed, i) through the counter-based hash in tensor/random.ts, which the WGSL kernel computes
 * bit for bit, so the CPU and the GPU, forward and backward, all draw the same mask.
 *
 * @module
 */

import type { TypedArray } from "../../backend/backend.ts";
import { type Tensor, wrap } from "../tensor.ts";
import { counterUniform, generator } from "../random.ts";
import { checkFloat, record } from "./op.ts";
import { checkOptions, declareOptions } from "../options.ts";

// ---------------------------------------------------------------------------------------------
// CPU kernel

/**
 * CPU: y_i = x_i · scale where counterUniform(seed, i) ≥ p, else 0, with scale = 1 / (1 − p).
 * For float32, scale is rounded to float32 first, so each product is the one a float32 GPU
 * kernel computes (a correctly rounded float32 multiply).
 */
export function dropoutCpu(x: TypedArray, p: number, seed: number, y: TypedArray): void {
  const exact = 1 / (1 - p);
  const scale = y instanceof Float32Array ? Math.fround(exact) : exact;
  for (let i = 0; i < x.length; i++) y[i] = counterUniform(seed, i) >= p ? x[i] * scale : 0;
}

// ---------------------------------------------------------------------------------------------
// Op

const DROPOUT_KEYS = declareOptions<DropoutOptions>()("dropout", ["p", "seed", "training"]);

/** Options of {@link dropout}. */
export interface DropoutOptions {
  /** Probability of dropping an element, in [0, 1) (default 0.5: paper section 4.2). */
  p?: number;
  /**
   * u32 seed of the mask (the same seed gives the same mask); default a fresh one drawn from
   * the global generator (see `manualSeed`), so every call drops different elements.
   */
  seed?: number;
  /** When false (evaluation), dropout is the identity (default true). */
  training?: boolean;
}

/**
 * Inverted dropout of x (any shape). Returns `x` itself when `training` is false or p is 0.
 * The mask is a pure function of (seed, element index), so it is reproducible and identical
 * on every backend.
 *
 * @example Drop and rescale
 * ```ts
 * import assert from "node:assert/strict";
 * import { dropout, ones } from "../../mod.ts";
 *
 * const x = ones([1000]);
 * const y = dropout(x, { p: 0.5, seed: 42 }).dataSync();
 * // Each element is either dropped (0) or kept and scaled by 1 / (1 - p) = 2 ...
 * assert.ok(y.every((v) => v === 0 || v === 2));
 * // ... about half of them are dropped, so the expectation stays 1.
 * const kept = y.filter((v) => v === 2).length;
 * assert.ok(kept > 400 && kept < 600);
 * assert.equal(dropout(x, { p: 0.5, seed: 42, training: false }), x); // evaluation: identity
 * ```
 */
export function dropout(x: Tensor, options?: DropoutOptions): Tensor {
  options = checkOptions("dropout", options, DROPOUT_KEYS);
  checkFloat("dropout", x);
  const { p = 0.5, training = true } = options;
  if (typeof p !== "number" || !(p >= 0 && p < 1)) {
    throw new RangeError(`dropout: p must be in [0, 1), got ${p}`);
  }
  if (
    options.seed !== undefined &&
    !(Number.isInteger(options.seed) && options.seed >= 0 && options.seed <= 0xffffffff)
  ) {
    throw new RangeError(
      `dropout: seed must be a u32 integer in [0, 4294967295], got ${options.seed}`,
    );
  }
  if (!training || p === 0) return x;
  const seed = options.seed ?? generator().nextU32();
  const backend = x.backend;
  const y = wrap(backend.dropout(x.storage, p, seed), x.shape);
  return record("dropout", y, [x], (g) => [wrap(backend.dropout(g.storage, p, seed), x.shape)]);
}
