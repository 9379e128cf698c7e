/**
 * Shared test helpers: the float comparison (tests/support/close.ts), float64 inputs for gradient
 * checks, and the CPU backend's registration (through mod.ts).
 *
 * @module
 */

import "../../mod.ts"; // registers the CPU backend, as in any program using tessera
import assert from "node:assert/strict";
import type { TypedArray } from "../../backend/backend.ts";
import { fromArray, type Tensor } from "../../tensor/tensor.ts";
import { Rng } from "../../tensor/random.ts";
import { gradcheck, type GradcheckOptions } from "../../tensor/gradcheck.ts";

export { assertClose, type CloseOptions } from "./close.ts";

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
