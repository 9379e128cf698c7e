/**
 * The glue every op uses: checking that inputs share a device, and recording the op in the
 * autograd graph when an input requires grad.
 *
 * @module
 */

import type { Backend } from "../../backend/backend.ts";
import { needsGrad, Tensor } from "../tensor.ts";
import { checkArgument } from "../options.ts";

/** Throws unless `value` is a Tensor, naming the op and the argument. */
export function checkTensor(op: string, name: string, value: unknown): asserts value is Tensor {
  if (!(value instanceof Tensor)) {
    const got = value === null || typeof value !== "object"
      ? `${typeof value} ${String(value)}`
      : value.constructor?.name ?? "object";
    throw new TypeError(`${op}: ${name} must be a Tensor, got ${got}`);
  }
}

/** The backend shared by `inputs`; throws naming the op when they live on different devices. */
export function deviceOf(op: string, ...inputs: Tensor[]): Backend {
  inputs.forEach((t, i) => checkTensor(op, `input ${i}`, t));
  const backend = inputs[0].backend;
  for (const t of inputs) {
    if (t.backend !== backend) {
      throw new Error(
        `${op}: tensors are on different devices (${backend.name} and ${t.backend.name}); move one with await x.to("${backend.name}")`,
      );
    }
  }
  return backend;
}

/** Throws unless `t` holds floating-point values. */
export function checkFloat(op: string, t: Tensor): void {
  checkTensor(op, "input", t);
  if (t.dtype === "int32") {
    throw new TypeError(
      `${op}: expected a float tensor, got int32; convert it with cast(x, "float32") or x.cast("float32")`,
    );
  }
}

/**
 * Records `out = op(inputs)` in the graph when any input requires grad; `backward` maps
 * dL/d(out) to dL/d(input) for each input. `saved` are extra tensors the backward needs,
 * released with the graph (or at once when nothing is recorded). Every op ends with it; the
 * package exports it, and `customOp` (custom.ts) builds on it.
 *
 * @example An op written with record: y = 2x, dL/dx = 2·dL/dy
 * ```ts
 * import assert from "node:assert/strict";
 * import { mul, noGrad, record, sum, tensor, type Tensor } from "../../mod.ts";
 *
 * const double = (x: Tensor) => record("double", noGrad(() => mul(x, 2)), [x], (g) => [mul(g, 2)]);
 * const x = tensor([1, 2, 3], { requiresGrad: true });
 * sum(double(x)).backward();
 * assert.deepEqual([...x.grad!.dataSync()], [2, 2, 2]);
 * ```
 */
export function record(
  op: string,
  out: Tensor,
  inputs: Tensor[],
  backward: (grad: Tensor) => (Tensor | null)[],
  saved: Tensor[] = [],
): Tensor {
  // The public boundary too (the package exports record): cheap checks, library messages.
  checkArgument("record", "op", op, "string");
  checkTensor(op, "record's output", out);
  checkArgument(op, "record's inputs", inputs, "array");
  checkArgument(op, "record's backward", backward, "function");
  checkArgument(op, "record's saved", saved, "array");
  if (needsGrad(...inputs)) out.attachGraph({ op, inputs, backward, saved });
  else for (const s of saved) s.dispose();
  return out;
}
