/**
 * The glue every op uses: checking that inputs share a device, and recording the op in the
 * autograd graph when an input requires grad.
 *
 * @module
 */

import type { Backend } from "../../backend/backend.ts";
import { needsGrad, type Tensor } from "../tensor.ts";

/** The backend shared by `inputs`; throws naming the op when they live on different devices. */
export function deviceOf(op: string, ...inputs: Tensor[]): Backend {
  const backend = inputs[0].backend;
  for (const t of inputs) {
    if (t.backend !== backend) {
      throw new Error(
        `${op}: tensors are on different devices (${backend.name} and ${t.backend.name}); move one with .to()`,
      );
    }
  }
  return backend;
}

/** Throws unless `t` holds floating-point values. */
export function checkFloat(op: string, t: Tensor): void {
  if (t.dtype === "int32") throw new TypeError(`${op}: expected a float tensor, got int32`);
}

/**
 * Records `out = op(inputs)` in the graph when any input requires grad; `backward` maps
 * dL/d(out) to dL/d(input) for each input. `saved` are extra tensors the backward needs,
 * released with the graph (or at once when nothing is recorded).
 */
export function record(
  op: string,
  out: Tensor,
  inputs: Tensor[],
  backward: (grad: Tensor) => (Tensor | null)[],
  saved: Tensor[] = [],
): Tensor {
  if (needsGrad(...inputs)) out.attachGraph({ op, inputs, backward, saved });
  else for (const s of saved) s.dispose();
  return out;
}
