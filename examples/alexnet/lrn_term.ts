/**
 * How much local response normalization depends on the data (paper section 3.3). LRN divides
 * each activation by (k + α' Σ a²)^β over a window of neighbouring channels. When the
 * data-dependent term α' Σ a² is tiny against k, LRN is a constant scale, k^(-β), and
 * removing it tests nothing. {@link lrnTerm} measures that term, relative to k, at the input
 * of every LRN layer of a Sequential model, for one batch; trainer.ts logs it after each epoch
 * (the `lrnTerm` field of metrics.jsonl's epoch records).
 *
 * @module
 */

import { LocalResponseNorm, type Module, noGrad, Sequential, type Tensor } from "../../mod.ts";

/** The data-dependent term α' Σ a² divided by k, over every element of one batch. */
export interface LrnTermStat {
  /** Mean over elements. */
  mean: number;
  /** Largest element. */
  max: number;
}

/**
 * For each LRN layer of `model` (a Sequential, walked in order), the statistics of
 * α' Σ_{window} a² / k at its input, for the batch `x` (no graph is built). Models that are not
 * a Sequential, or that hold no LRN layer, give an empty record.
 *
 * @example
 * ```ts
 * import { randn } from "../../mod.ts";
 * import { alexnetMini } from "../../models/alexnet.ts";
 * import { lrnTerm } from "./lrn_term.ts";
 *
 * const stats = await lrnTerm(alexnetMini(), randn([2, 1, 28, 28], { seed: 1 }));
 * console.log(stats.norm1.mean); // about 1e-4 of k: with these constants LRN is a constant scale
 * ```
 */
export async function lrnTerm(model: Module, x: Tensor): Promise<Record<string, LrnTermStat>> {
  const stats: Record<string, LrnTermStat> = {};
  if (!(model instanceof Sequential)) return stats;
  if (![...model.children()].some(([, layer]) => layer instanceof LocalResponseNorm)) return stats;
  let input = x;
  const made: Tensor[] = [];
  try {
    for (const [name, layer] of model.children()) {
      if (layer instanceof LocalResponseNorm) {
        const data = await input.data();
        stats[name] = termOf(Float32Array.from(data as ArrayLike<number>), input.shape, layer);
      }
      input = noGrad(() => layer.forward(input));
      made.push(input);
      if (Object.keys(stats).length === countLrn(model)) break;
    }
  } finally {
    for (const t of made) t.dispose();
  }
  return stats;
}

function countLrn(model: Sequential): number {
  return [...model.children()].filter(([, layer]) => layer instanceof LocalResponseNorm).length;
}

/** The statistic for one input [N, C, H, W], with the window of tensor/ops/lrn.ts. */
export function termOf(
  a: Float32Array,
  shape: readonly number[],
  layer: Pick<LocalResponseNorm, "size" | "alpha" | "k" | "alphaScaling">,
): LrnTermStat {
  const [n, c, h, w] = shape;
  const plane = h * w;
  const alpha = layer.alphaScaling === "averaged" ? layer.alpha / layer.size : layer.alpha;
  const below = Math.floor(layer.size / 2), above = Math.floor((layer.size - 1) / 2);
  let total = 0, max = 0;
  for (let item = 0; item < n; item++) {
    for (let ch = 0; ch < c; ch++) {
      const from = Math.max(0, ch - below), to = Math.min(c - 1, ch + above);
      for (let s = 0; s < plane; s++) {
        let sum = 0;
        for (let j = from; j <= to; j++) {
          const v = a[(item * c + j) * plane + s];
          sum += v * v;
        }
        const term = (alpha * sum) / layer.k;
        total += term;
        if (term > max) max = term;
      }
    }
  }
  return { mean: total / (n * c * plane), max };
}
