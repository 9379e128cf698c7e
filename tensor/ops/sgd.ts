/**
 * The SGD-with-momentum update, in place: the math, stated once for the whole library, and the
 * CPU kernel behind `SGD.step()` (optim/sgd.ts). The WGSL twin is in gpu/kernels/sgd.ts.
 *
 * For a weight w, its gradient g and its velocity v, with learning rate lr, momentum m and
 * weight decay wd, two rules:
 *
 *     paper   (Krizhevsky et al. 2012, section 5):  v <- m v - wd lr w - lr g;   w <- w + v
 *     pytorch (torch.optim.SGD, dampening 0):       v <- m v + (g + wd w);       w <- w - lr v
 *
 * While lr is constant the two produce the same weights: by induction the paper's v equals
 * −lr times PyTorch's v (its momentum buffer). They part ways the moment lr changes, because
 * the paper's velocity was accumulated with the old lr already inside it, while PyTorch
 * multiplies its whole buffer by the new lr. After a /10 drop the paper's rule therefore keeps
 * moving with the old, larger steps for a while (the velocity decays by m per step), and
 * PyTorch's takes steps 10 times smaller at once. tests/optim/sgd.test.ts works one example by
 * hand.
 *
 * @module
 */

import type { SgdParams, TypedArray } from "../../backend/backend.ts";

/** Applies one update of rule `p.rule` to `w` and `v` in place (see the module comment). */
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
