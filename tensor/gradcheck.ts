/**
 * `gradcheck`: proves an op's backward against its forward. It compares the analytic
 * gradient (from `backward()`) with central finite differences
 *
 *     dL/dx[j] ≈ (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)
 *
 * for L = Σ y ⊙ r, a random projection of the output (so every output element's gradient is
 * exercised, not just their sum). Run it in float64: in float32 the rounding error of
 * L(x ± eps) swamps the difference for any useful eps.
 *
 * @module
 */

import { fromArray, isHostDevice, type Tensor } from "./tensor.ts";
import { Rng } from "./random.ts";
import { formatShape } from "./shape.ts";
import { noGrad } from "./autograd.ts";
import { checkArgument, checkOptions, declareOptions } from "./options.ts";

/** Tolerances and step for {@link gradcheck}. */
export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Absolute tolerance (default 1e-6). */
  atol?: number;
  /** Relative tolerance (default 1e-4). */
  rtol?: number;
  /** Seed of the random output projection (default 0). */
  seed?: number;
  /** Indices of inputs to check (default: every float input). */
  check?: number[];
}

const GRADCHECK_KEYS = declareOptions<GradcheckOptions>()("gradcheck", [
  "eps",
  "atol",
  "rtol",
  "seed",
  "check",
]);

/** The outcome of {@link gradcheck}, with the worst element found. */
export interface GradcheckResult {
  /** True when every element is within atol + rtol * |numeric|. */
  ok: boolean;
  /** Largest |analytic - numeric| - rtol * |numeric| over all checked elements. */
  worstExcess: number;
  /** Where the worst element is and its two values. */
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
  /** A one-line summary for test failures. */
  message: string;
}

/**
 * Checks the gradients of `fn` at `inputs` (CPU float64 tensors; int32 inputs, such as labels,
 * are passed through unchecked). Returns the worst element; see {@link GradcheckResult}.
 *
 * @example Check a composed function
 * ```ts
 * import assert from "node:assert/strict";
 * import { gradcheck, matmul, randn, relu } from "../mod.ts";
 *
 * // Compare the analytic gradients of relu(a · b) with central finite differences, in float64.
 * const a = randn([3, 4], { seed: 1, dtype: "float64" });
 * const b = randn([4, 2], { seed: 2, dtype: "float64" });
 * const result = gradcheck((a, b) => relu(matmul(a, b)), [a, b]);
 * assert.ok(result.ok, result.message);
 * ```
 */
export function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: Tensor[],
  options?: GradcheckOptions,
): GradcheckResult {
  checkArgument("gradcheck", "fn", fn, "function");
  checkArgument("gradcheck", "inputs", inputs, "array");
  options = checkOptions("gradcheck", options, GRADCHECK_KEYS);
  const eps = options.eps ?? 1e-6, atol = options.atol ?? 1e-6, rtol = options.rtol ?? 1e-4;
  for (const [i, x] of inputs.entries()) {
    if (!isHostDevice(x.backend) || (x.dtype !== "float64" && x.dtype !== "int32")) {
      throw new TypeError(
        `gradcheck: input ${i} is ${x.dtype} on ${x.device}; use float64 CPU tensors`,
      );
    }
  }
  const checked = options.check ?? inputs.flatMap((x, i) => (x.dtype === "float64" ? [i] : []));
  const leaves = inputs.map((x, i) => {
    const leaf = fromArray(x.dataSync().slice(), x.shape, { device: x.backend });
    if (checked.includes(i)) leaf.requiresGrad = true;
    return leaf;
  });

  // Analytic: backward with upstream gradient r, i.e. the gradient of L = Σ y ⊙ r.
  const y = fn(...leaves);
  const rng = new Rng(options.seed ?? 0);
  const r = new Float64Array(y.size).map(() => rng.uniform() * 2 - 1);
  y.backward(fromArray(r, y.shape, { device: y.backend }));

  const loss = (): number =>
    noGrad(() => {
      const out = fn(...leaves).dataSync();
      let total = 0;
      for (let j = 0; j < out.length; j++) total += out[j] * r[j];
      return total;
    });

  let worstExcess = -Infinity;
  let worst: GradcheckResult["worst"] = null;
  for (const i of checked) {
    const x = leaves[i].dataSync();
    const analytic = leaves[i].grad?.dataSync() ?? new Float64Array(x.length);
    for (let j = 0; j < x.length; j++) {
      const saved = x[j];
      x[j] = saved + eps;
      const plus = loss();
      x[j] = saved - eps;
      const minus = loss();
      x[j] = saved;
      const numeric = (plus - minus) / (2 * eps);
      const excess = Math.abs(analytic[j] - numeric) - rtol * Math.abs(numeric);
      if (excess > worstExcess) {
        worstExcess = excess;
        worst = { input: i, index: j, analytic: analytic[j], numeric };
      }
    }
  }
  const ok = worst === null || worstExcess <= atol;
  const message = worst
    ? `gradcheck ${ok ? "passed" : "FAILED"}: worst at input ${worst.input} ${
      formatShape(inputs[worst.input].shape)
    } ` +
      `element ${worst.index}: analytic ${worst.analytic}, numeric ${worst.numeric} (excess ${
        worstExcess.toExponential(2)
      }, atol ${atol})`
    : "gradcheck: nothing to check";
  return { ok, worstExcess, worst, message };
}
