/**
 * Assembling one batch: the work a loader worker does, shared with the in-process path so the
 * two produce the same bytes.
 *
 * Reproducibility rests on two derived seeds. The shuffle of epoch e comes from (seed, e), so
 * a run resumed at epoch e sees the same order; the augmentation of sample i in epoch e comes
 * from (seed, e, i), so it does not depend on which worker, batch or position handles it.
 *
 * @module
 */

import { counterHash, Rng } from "../tensor/random.ts";
import type { Batch, ImageDataset } from "./dataset.ts";
import { checkDatasetShape, getImage } from "./dataset.ts";
import { checkArgument } from "../tensor/options.ts";
import { outputShape, type PipelineSpec, type Transform } from "./pipeline.ts";

// Distinct stream constant so the shuffle and the per-sample streams never coincide.
const SHUFFLE_STREAM = 0x5bd1e995;

/** The order of epoch `epoch`: a permutation of `0..n-1` derived from `(seed, epoch)`. */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  return new Rng(counterHash((seed ^ SHUFFLE_STREAM) >>> 0, epoch)).permutation(n);
}

/** The augmentation generator of dataset sample `index` in epoch `epoch`. */
export function sampleRng(seed: number, epoch: number, index: number): Rng {
  return new Rng(counterHash(counterHash(seed >>> 0, epoch), index));
}

/**
 * Transforms the samples at `indices` and packs them into an NCHW float32 batch. With a
 * ten-crop pipeline each sample contributes 10 consecutive images (see {@link Batch.views}).
 */
export function assembleBatch(
  dataset: Pick<ImageDataset, "images" | "shape" | "labels">,
  spec: PipelineSpec,
  transform: Transform,
  seed: number,
  epoch: number,
  indices: Int32Array,
): Batch {
  checkDatasetShape("assembleBatch", dataset);
  checkArgument("assembleBatch", "spec", spec, "array");
  checkArgument("assembleBatch", "transform", transform, "function");
  checkArgument("assembleBatch", "indices", indices, "array");
  const [, c, h, w] = dataset.shape;
  const { shape: [oc, oh, ow], views } = outputShape(spec, [c, h, w]);
  const size = oc * oh * ow;
  const n = indices.length * views;
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  let at = 0;
  for (const index of indices) {
    const outputs = transform(
      getImage(dataset as ImageDataset, index),
      sampleRng(seed, epoch, index),
    );
    if (outputs.length !== views) {
      throw new Error(
        `assembleBatch: pipeline produced ${outputs.length} views, expected ${views}`,
      );
    }
    for (const out of outputs) {
      if (out.data.length !== size) {
        throw new Error(
          `assembleBatch: sample ${index} came out ${out.channels}x${out.height}x${out.width}, ` +
            `expected ${oc}x${oh}x${ow}`,
        );
      }
      images.set(out.data, at * size);
      labels[at] = dataset.labels[index];
      at++;
    }
  }
  const batch: Batch = {
    images,
    shape: [n, oc, oh, ow],
    labels,
    indices: Int32Array.from(indices),
  };
  if (views !== 1) batch.views = views;
  return batch;
}
