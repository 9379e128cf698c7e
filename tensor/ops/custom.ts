/**
 * Writing an op from outside the library: {@link customOp} pairs a forward function with its
 * backward, as PyTorch's `torch.autograd.Function` does, and returns the op. It is built on
 * {@link record}, the call every op of tensor/ops/ ends with, which attaches the backward to
 * the output when an input needs a gradient.
 *
 * The forward runs with recording off, so autograd sees the op as one step whose gradient is
 * exactly what `backward` returns; check it with `gradcheck` in float64.
 *
 * @module
 */

import type { Tensor } from "../tensor.ts";
import { noGrad } from "../autograd.ts";
import { checkTensor, deviceOf, record } from "./op.ts";
import { checkOptions, declareOptions } from "../options.ts";

export { record };

/** What {@link customOp} needs: a name for messages, the forward and its backward. */
export interface CustomOpDefinition {
  /** The op's name, used in error messages and in the graph. */
  name: string;
  /** Computes the output from the inputs (recording is off while it runs). */
  forward: (...inputs: Tensor[]) => Tensor;
  /**
   * Maps `grad` = dL/d(output) to dL/d(input) for each input, in order (null: no gradient).
   * `inputs` and `output` are the forward's, still alive while the backward runs.
   */
  backward: (
    grad: Tensor,
    context: { inputs: readonly Tensor[]; output: Tensor },
  ) => (Tensor | null)[];
}

/**
 * Defines an op with its backward. The result takes tensors on one device and returns the
 * forward's output, recorded for autograd when an input requires grad.
 *
 * @example softplus, y = log(1 + eˣ), whose derivative is the sigmoid; gradcheck agrees
 * ```ts
 * import assert from "node:assert/strict";
 * import { add, customOp, exp, gradcheck, log, mul, randn, sigmoid } from "../../mod.ts";
 *
 * const softplus = customOp({
 *   name: "softplus",
 *   forward: (x) => log(add(exp(x), 1)),
 *   backward: (grad, { inputs: [x] }) => [mul(grad, sigmoid(x))],
 * });
 * const x = randn([4, 5], { seed: 2, dtype: "float64" });
 * const result = gradcheck(softplus, [x]);
 * assert.ok(result.ok, result.message);
 * ```
 */
export function customOp(definition: CustomOpDefinition): (...inputs: Tensor[]) => Tensor {
  checkDefinition(definition);
  const { name, forward, backward } = definition;
  return (...inputs: Tensor[]): Tensor => {
    if (inputs.length === 0) throw new TypeError(`${name}: expected at least one input tensor`);
    deviceOf(name, ...inputs);
    const output = noGrad(() => forward(...inputs));
    checkTensor(name, "the forward's result", output);
    return record(name, output, inputs, (grad) => {
      const grads = backward(grad, { inputs, output });
      if (!Array.isArray(grads) || grads.length !== inputs.length) {
        throw new TypeError(
          `${name}: backward must return an array of ${inputs.length} gradients (Tensor or null), ` +
            `one per input, got ${Array.isArray(grads) ? `${grads.length}` : typeof grads}`,
        );
      }
      grads.forEach((g, i) => {
        if (g !== null) checkTensor(name, `backward's gradient ${i}`, g);
      });
      return grads;
    });
  };
}

const DEFINITION_KEYS = declareOptions<CustomOpDefinition>()("customOp", [
  "name",
  "forward",
  "backward",
]);

function checkDefinition(definition: CustomOpDefinition): void {
  if (typeof definition !== "object" || definition === null) {
    throw new TypeError(`customOp: expected { name, forward, backward }, got ${definition}`);
  }
  checkOptions("customOp", definition, DEFINITION_KEYS);
  if (typeof definition.name !== "string" || definition.name === "") {
    throw new TypeError(`customOp: name must be a non-empty string, got ${definition.name}`);
  }
  for (const key of ["forward", "backward"] as const) {
    if (typeof definition[key] !== "function") {
      throw new TypeError(
        `customOp: ${key} of "${definition.name}" must be a function, got ${typeof definition[
          key
        ]}`,
      );
    }
  }
}
