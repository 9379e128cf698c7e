/**
 * 2-D convolution, NCHW, PyTorch conventions: x [N, C, H, W], weight [O, C/groups, KH, KW],
 * bias [O], output [N, O, outH, outW] with outH = floor((H + 2 padH - KH) / strideH) + 1.
 *
 *     y[n, o, i, j] = bias[o] + Σ_{c in group(o), p, q} w[o, c, p, q] · x[n, c, i·sh + p - ph, j·sw + q - pw]
 *
 * Backward (derived in conv2d_kernels.ts, where the CPU kernels live):
 * - dL/dx is a transposed convolution of dy with the same weights (stride becomes dilation of
 *   dy, the kernel flips);
 * - dL/dw is the correlation of x with dy, summed over the batch;
 * - dL/dbias sums dy over N, H and W.
 *
 * `groups = 2` is AlexNet's two-GPU split (paper section 3.2): conv2, conv4 and conv5 see only
 * the half of the channels that lived on their own GPU.
 *
 * @module
 */

import { type Tensor, wrap } from "../tensor.ts";
import { formatShape } from "../shape.ts";
import { checkFloat, deviceOf, record } from "./op.ts";
import { sum } from "./reduce.ts";
import { conv2dParams } from "./conv2d_kernels.ts";

export { conv2dParams };

/** Options of {@link conv2d}. */
export interface Conv2dOptions {
  /** Step between windows, one number or [vertical, horizontal] (default 1). */
  stride?: number | readonly [number, number];
  /** Zero padding on each side, one number or [vertical, horizontal] (default 0). */
  padding?: number | readonly [number, number];
  /** Channel groups: input and output channels split into `groups` independent convolutions (default 1). */
  groups?: number;
}

/** 2-D convolution of x [N, C, H, W] with weight [O, C/groups, KH, KW] plus optional bias [O]. */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: Conv2dOptions = {},
): Tensor {
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const backend = deviceOf("conv2d", ...inputs);
  for (const t of inputs) checkFloat("conv2d", t);
  for (const [name, t] of [["weight", weight], ["bias", bias]] as const) {
    if (t && t.dtype !== x.dtype) {
      throw new TypeError(
        `conv2d: the input is ${x.dtype} but the ${name} is ${t.dtype}; convert one with cast(x, "${t.dtype}")`,
      );
    }
  }
  if (x.rank !== 4) {
    throw new RangeError(`conv2d: input must be [N, C, H, W], got ${formatShape(x.shape)}`);
  }
  if (weight.rank !== 4) {
    throw new RangeError(
      `conv2d: weight must be [O, C/groups, KH, KW], got ${formatShape(weight.shape)}`,
    );
  }
  const p = conv2dParams(
    x.shape,
    weight.shape,
    options.stride ?? 1,
    options.padding ?? 0,
    options.groups ?? 1,
  );
  if (bias && (bias.rank !== 1 || bias.shape[0] !== p.o)) {
    throw new RangeError(
      `conv2d: bias ${formatShape(bias.shape)} does not match ${p.o} output channels`,
    );
  }
  const y = wrap(backend.conv2dForward(x.storage, weight.storage, bias?.storage ?? null, p), [
    p.n,
    p.o,
    p.outH,
    p.outW,
  ]);
  return record("conv2d", y, inputs, (g) => [
    x.requiresGrad
      ? wrap(backend.conv2dBackwardInput(g.storage, weight.storage, p), x.shape)
      : null,
    weight.requiresGrad
      ? wrap(backend.conv2dBackwardWeight(g.storage, x.storage, p), weight.shape)
      : null,
    bias?.requiresGrad ? sum(g, [0, 2, 3]) : null,
  ]);
}
