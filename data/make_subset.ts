/**
 * Builds the balanced Fashion-MNIST subset committed at `data/fashion-mnist/`: 1000 training
 * and 200 test images per class, chosen with a seeded {@link Rng} from the full set, written
 * as gzipped IDX files under the official file names so that the same loader reads them.
 * Within a split the chosen images keep their original order (the loader shuffles).
 *
 * Reproducible: the same full set and seed give byte-identical files.
 *
 * ```sh
 * deno run --allow-read --allow-write data/make_subset.ts [--from DIR] [--to DIR] [--seed N]
 * ```
 *
 * @module
 */

import { Rng } from "../tensor/random.ts";
import { type ImageDataset, validateDataset } from "./dataset.ts";
import { checkArgument } from "../tensor/options.ts";
import {
  FASHION_MNIST_BUILTIN_DIR,
  FASHION_MNIST_FILES,
  FASHION_MNIST_SYSTEM_DIR,
  loadSplit,
} from "./fashion_mnist.ts";
import { writeIdxFile } from "./idx.ts";

/** Seed of the committed subset (the year of the paper). */
export const SUBSET_SEED = 2012;

/** Images per class in the committed subset: training and test. */
export const SUBSET_PER_CLASS = { train: 1000, test: 200 } as const;

/**
 * Picks `perClass` images of every class with `rng`, returning their indices in ascending
 * order. Throws if a class has fewer than `perClass` images.
 */
export function balancedIndices(
  labels: Int32Array,
  classes: number,
  perClass: number,
  rng: Rng,
): Int32Array {
  const chosen: number[] = [];
  for (let k = 0; k < classes; k++) {
    const members: number[] = [];
    for (let i = 0; i < labels.length; i++) if (labels[i] === k) members.push(i);
    if (members.length < perClass) {
      throw new RangeError(
        `balancedIndices: class ${k} has ${members.length} images, need ${perClass}`,
      );
    }
    rng.shuffle(members);
    chosen.push(...members.slice(0, perClass));
  }
  return Int32Array.from(chosen.sort((a, b) => a - b));
}

/** Copies the images and labels at `indices` into a new dataset. */
export function selectImages(dataset: ImageDataset, indices: Int32Array): ImageDataset {
  validateDataset(dataset, "selectImages");
  checkArgument("selectImages", "indices", indices, "array");
  const [, c, h, w] = dataset.shape;
  const size = c * h * w;
  const images = new Uint8Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  indices.forEach((index, i) => {
    images.set(dataset.images.subarray(index * size, (index + 1) * size), i * size);
    labels[i] = dataset.labels[index];
  });
  return { images, shape: [indices.length, c, h, w], labels, classNames: dataset.classNames };
}

async function writeSplit(
  dir: string,
  imagesFile: string,
  labelsFile: string,
  split: ImageDataset,
) {
  const [n, , h, w] = split.shape;
  await writeIdxFile(`${dir}/${imagesFile}`, [n, h, w], split.images);
  await writeIdxFile(`${dir}/${labelsFile}`, [n], Uint8Array.from(split.labels));
}

/** Builds the subset from the full set in `from` and writes it to `to`. */
export async function makeSubset(from: string, to: string, seed = SUBSET_SEED): Promise<void> {
  const f = FASHION_MNIST_FILES;
  const train = await loadSplit(`${from}/${f.trainImages}`, `${from}/${f.trainLabels}`);
  const test = await loadSplit(`${from}/${f.testImages}`, `${from}/${f.testLabels}`);
  // One generator for both splits, train first, so the whole subset follows from one seed.
  const rng = new Rng(seed);
  const classes = train.classNames.length;
  const trainSubset = selectImages(
    train,
    balancedIndices(train.labels, classes, SUBSET_PER_CLASS.train, rng),
  );
  const testSubset = selectImages(
    test,
    balancedIndices(test.labels, classes, SUBSET_PER_CLASS.test, rng),
  );
  await Deno.mkdir(to, { recursive: true });
  await writeSplit(to, f.trainImages, f.trainLabels, trainSubset);
  await writeSplit(to, f.testImages, f.testLabels, testSubset);
}

if (import.meta.main) {
  const args = Deno.args;
  const flag = (name: string, fallback: string) => {
    const at = args.indexOf(name);
    return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
  };
  const from = flag("--from", FASHION_MNIST_SYSTEM_DIR);
  const to = flag("--to", FASHION_MNIST_BUILTIN_DIR);
  const seed = Number(flag("--seed", String(SUBSET_SEED)));
  await makeSubset(from, to, seed);
  console.log(`wrote the balanced subset of ${from} (seed ${seed}) to ${to}`);
}
