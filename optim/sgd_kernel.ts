/**
 * The SGD-with-momentum update on raw arrays: the CPU kernel behind `SGD.step()`. The WGSL
 * twin is in gpu/kernels/sgd.ts.
 *
 * Two rules:
 *
 *     paper   (Krizhevsky et al. 2012, section 5):  v <- m v - wd lr w - lr g;   w <- w + v
 *     pytorch (torch.optim.SGD, dampening 0):       v <- m v + (g + wd w);       w <- w - lr v
 *
 * They agree while lr is constant (the paper's v is lr times PyTorch's) and differ right after
 * a learning-rate change: the paper's velocity still carries the old lr.
 *
 * @module
 */

import type { SgdParams, TypedArray } from "../backend/backend.ts";

/** Applies one update to `w` and `v` in place. */
export function sgdUpdateCpu(w: TypedArray, g: TypedArray, v: TypedArray, p: SgdParams): void {
  const { lr, momentum, weightDecay } = p;
  if (p.rule === "paper") {
    for (let i = 0; i < w.length; i++) {
      v[i] = momentum * v[i] - weightDecay * lr * w[i] - lr * g[i];
      w[i] += v[i];
    }
  } else {
    for (let i = 0; i < w.length; i++) {
      v[i] = momentum * v[i] + (g[i] + weightDecay * w[i]);
      w[i] -= lr * v[i];
    }
  }
}
