/**
 * Shared test helpers: float comparison with a useful failure message, and float64 inputs
 * for gradient checks.
 *
 * @module
 */

import "../mod.ts"; // registers the CPU backend, as in any program using tessera
import assert from "node:assert/strict";
import type { TypedArray } from "../backend/backend.ts";
import { fromArray, type Tensor } from "../tensor/tensor.ts";
import { Rng } from "../tensor/random.ts";
import { gradcheck, type GradcheckOptions } from "../tensor/gradcheck.ts";

/** Asserts |actual - expected| <= atol + rtol * |expected| elementwise, naming the worst element. */
export function assertAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { rtol = 1e-5, atol = 1e-6, what = "values" } = {},
): void {
  assert.equal(
    actual.length,
    expected.length,
    `${what}: length ${actual.length} != ${expected.length}`,
  );
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const excess = Math.abs(actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
    if (excess > worstExcess || Number.isNaN(actual[i]) !== Number.isNaN(expected[i])) {
      worst = i;
      worstExcess = Number.isNaN(excess) ? Infinity : excess;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${what}: element ${worst} is ${actual[worst]}, expected ${
        expected[worst]
      } (rtol ${rtol}, atol ${atol})`,
    );
  }
}

/** A float64 CPU tensor of seeded values in [low, high). */
export function randomF64(shape: number[], seed: number, low = -1, high = 1): Tensor {
  const rng = new Rng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  return fromArray(new Float64Array(size).map(() => low + (high - low) * rng.uniform()), shape);
}

/** Runs gradcheck and fails with its message. */
export function assertGradcheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  options?: GradcheckOptions,
): void {
  const result = gradcheck(fn, inputs, options);
  assert.ok(result.ok, result.message);
}

/** Host copy of a CPU tensor's values. */
export function values(t: Tensor): TypedArray {
  return t.dataSync().slice();
}
