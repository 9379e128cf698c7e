/**
 * The run's data: Fashion-MNIST (full when installed, else the subset built into the
 * repository) or an ImageFolder of photos with the paper's recipe (sections 2 and 4.1).
 *
 * @module
 */

import type { ImageDataset, PipelineSpec } from "../../data/mod.ts";
import {
  DataLoader,
  downloadFashionMnist,
  fashionMnistSpec,
  loadFashionMnist,
  loadImageFolder,
  paperEvalSpec,
  paperTrainSpec,
} from "../../data/mod.ts";
import type { TrainConfig } from "./config.ts";

/** Datasets, pipelines and the network's input geometry for a run. */
export interface RunData {
  /** Training images. */
  train: ImageDataset;
  /** Evaluation images. */
  test: ImageDataset;
  /** Class names. */
  classNames: string[];
  /** Where the data came from, for the log. */
  source: string;
  /** Training pipeline (augmentation). */
  trainSpec: PipelineSpec;
  /** Evaluation pipeline. */
  testSpec: PipelineSpec;
  /** [C, H, W] the network sees. */
  inputShape: [number, number, number];
  /** Which kind of data: decides how `predict` prepares an image. */
  kind: "fashion-mnist" | "image-folder";
  /** The training set's mean image [3, 256, 256] (ImageFolder only), which predict subtracts too. */
  meanImage?: Float32Array;
}

/** The run's loaders: shuffled, augmented training batches and in-order test batches. */
export function makeLoaders(
  config: TrainConfig,
  data: RunData,
): { trainLoader: DataLoader; testLoader: DataLoader } {
  return {
    trainLoader: new DataLoader(data.train, {
      batchSize: config.batchSize,
      spec: data.trainSpec,
      seed: config.seed,
      workers: config.workers,
    }),
    // Evaluation needs no graph, so it can take bigger batches.
    testLoader: new DataLoader(data.test, {
      batchSize: Math.max(config.batchSize, 256),
      spec: data.testSpec,
      shuffle: false,
    }),
  };
}

/** The first `limit` images of a dataset (all when limit is 0). */
export function firstImages(dataset: ImageDataset, limit: number): ImageDataset {
  if (limit <= 0 || limit >= dataset.shape[0]) return dataset;
  const [, c, h, w] = dataset.shape;
  return {
    images: dataset.images.subarray(0, limit * c * h * w),
    shape: [limit, c, h, w],
    labels: dataset.labels.subarray(0, limit),
    classNames: dataset.classNames,
  };
}

/** The images at `indices`. */
function pick(dataset: ImageDataset, indices: number[]): ImageDataset {
  const [, c, h, w] = dataset.shape;
  const plane = c * h * w;
  const images = new Uint8Array(indices.length * plane);
  indices.forEach((i, j) =>
    images.set(dataset.images.subarray(i * plane, (i + 1) * plane), j * plane)
  );
  return {
    images,
    shape: [indices.length, c, h, w],
    labels: Int32Array.from(indices, (i) => dataset.labels[i]),
    classNames: dataset.classNames,
  };
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

async function hasIdxFiles(path: string): Promise<boolean> {
  for await (const entry of Deno.readDir(path)) if (/idx[13]-ubyte/.test(entry.name)) return true;
  return false;
}

/** Input side length each architecture expects (see models/alexnet.ts). */
export function inputSizeFor(arch: TrainConfig["arch"]): number {
  // The paper's 11x11/4 conv1 needs 227 to give 55x55 (Caffe's choice); torchvision pads 2 at 224.
  return arch === "alexnet" ? 227 : arch === "alexnet-torchvision" ? 224 : 28;
}

/** Loads the datasets named by the configuration. */
export async function loadRunData(config: TrainConfig): Promise<RunData> {
  const size = inputSizeFor(config.arch);
  if (config.data === null || await hasIdxFiles(config.data)) {
    // --download puts the official files in the cache, where the search finds them.
    if (config.download && config.data === null) await downloadFashionMnist();
    const mnist = await loadFashionMnist(config.data ? { dir: config.data } : {});
    const resize = size === 28 ? undefined : size;
    return {
      train: firstImages(mnist.train, config.trainLimit),
      test: firstImages(mnist.test, config.testLimit),
      classNames: mnist.train.classNames,
      source: `Fashion-MNIST (${
        mnist.kind === "builtin" ? "built-in subset" : mnist.kind
      }: ${mnist.source})`,
      trainSpec: fashionMnistSpec({ flip: true, resize }),
      testSpec: fashionMnistSpec({ resize }),
      inputShape: [1, size, size],
      kind: "fashion-mnist",
    };
  }
  // ImageFolder: `train/` and `val/` subfolders if present, else a seeded 90/10 split.
  const root = config.data;
  const hasSplit = await isDirectory(`${root}/train`) && await isDirectory(`${root}/val`);
  const train = await loadImageFolder(hasSplit ? `${root}/train` : root, { size: 256 });
  let trainSet: ImageDataset = train, testSet: ImageDataset;
  if (hasSplit) {
    testSet = await loadImageFolder(`${root}/val`, { size: 256 });
  } else {
    const n = train.shape[0];
    const held = new Set<number>();
    for (let i = 0; i < n; i += 10) held.add(i);
    trainSet = pick(train, [...Array(n).keys()].filter((i) => !held.has(i)));
    testSet = pick(train, [...held]);
  }
  const stats = { meanImage: train.stats.meanImage, eigen: train.stats.eigen };
  return {
    train: firstImages(trainSet, config.trainLimit),
    test: firstImages(testSet, config.testLimit),
    classNames: train.classNames,
    source: `ImageFolder ${root} (${
      hasSplit ? "train/ and val/" : "90/10 split"
    }, shorter side 256, center 256x256)`,
    trainSpec: paperTrainSpec(stats, { cropSize: size, pcaJitter: config.pca }),
    testSpec: paperEvalSpec(stats, { cropSize: size }),
    inputShape: [3, size, size],
    kind: "image-folder",
    meanImage: stats.meanImage,
  };
}
