/**
 * The run's data: Fashion-MNIST (full when installed, else the subset built into the
 * repository), CIFAR-10 (the binary version, the data of the paper's Figure 1) or an
 * ImageFolder of photos with the paper's recipe (sections 2 and 4.1), and
 * the three splits every run uses: training images, a validation split held out of them with
 * a fixed seed (the schedule and the best checkpoint follow it, as the paper's validation set
 * did, section 5), and the test set, evaluated for the report only.
 *
 * @module
 */

import type { ImageDataset, PipelineSpec } from "../../data/mod.ts";
import {
  DataLoader,
  datasetStats,
  downloadFashionMnist,
  fashionMnistSpec,
  loadCifar10,
  loadFashionMnist,
  loadImageFolder,
  paperEvalSpec,
  paperTrainSpec,
  Rng,
} from "../../data/mod.ts";
import type { TrainConfig } from "./config.ts";

/** Datasets, pipelines and the network's input geometry for a run. */
export interface RunData {
  /** Training images. */
  train: ImageDataset;
  /** Validation images: held out of the training data; they decide the schedule and "best". */
  val: ImageDataset;
  /** Test images: evaluated for the report, never for a decision. */
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
  kind: "fashion-mnist" | "image-folder" | "cifar10";
  /** The training set's mean image [3, 256, 256] (ImageFolder only), which predict subtracts too. */
  meanImage?: Float32Array;
}

/** The run's loaders: shuffled, augmented training batches; in-order validation and test batches. */
export function makeLoaders(
  config: TrainConfig,
  data: RunData,
): Loaders {
  return {
    trainLoader: new DataLoader(data.train, {
      batchSize: config.batchSize,
      spec: data.trainSpec,
      seed: config.seed,
      workers: config.workers,
    }),
    // Evaluation needs no graph, so it can take bigger batches.
    valLoader: new DataLoader(data.val, {
      batchSize: Math.max(config.batchSize, 256),
      spec: data.testSpec,
      shuffle: false,
    }),
    testLoader: new DataLoader(data.test, {
      batchSize: Math.max(config.batchSize, 256),
      spec: data.testSpec,
      shuffle: false,
    }),
    // --eval-train: the first N training images through the evaluation pipeline, dropout off.
    trainEvalLoader: config.evalTrain > 0
      ? new DataLoader(firstImages(data.train, config.evalTrain), {
        batchSize: Math.max(config.batchSize, 256),
        spec: data.testSpec,
        shuffle: false,
      })
      : null,
  };
}

/** A run's loaders. */
export interface Loaders {
  /** Shuffled, augmented training batches. */
  trainLoader: DataLoader;
  /** The validation split, in order. */
  valLoader: DataLoader;
  /** The test set, in order. */
  testLoader: DataLoader;
  /** Training images in evaluation mode (--eval-train), or null. */
  trainEvalLoader: DataLoader | null;
}

/** Seed of the validation split: fixed, so every run (any --seed) holds out the same images. */
export const VALIDATION_SEED = 2012;

/**
 * The validation size "auto" means: 5,000 of the full 60,000 Fashion-MNIST images (the
 * usual choice), else a tenth (1,000 of the built-in 10,000).
 */
export function autoValidationSize(trainImages: number): number {
  return trainImages >= 60_000 ? 5_000 : Math.max(1, Math.round(trainImages / 10));
}

/**
 * Splits `dataset` into training images and `size` validation images drawn with the fixed
 * {@link VALIDATION_SEED}; both keep the dataset's order.
 */
export function holdOutValidation(
  dataset: ImageDataset,
  size: number,
): { train: ImageDataset; val: ImageDataset } {
  const n = dataset.shape[0];
  if (size >= n) {
    throw new RangeError(
      `--val-size ${size} leaves no training images: the training set has ${n}`,
    );
  }
  const held = new Rng(VALIDATION_SEED).permutation(n).subarray(0, size).sort();
  const isHeld = new Uint8Array(n);
  for (const i of held) isHeld[i] = 1;
  const rest = [...Array(n).keys()].filter((i) => !isHeld[i]);
  return { train: pick(dataset, rest), val: pick(dataset, [...held]) };
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

/** The three splits of `train` and `test`, with the limits applied; empty sets are errors. */
function splits(
  config: TrainConfig,
  train: ImageDataset,
  test: ImageDataset,
  source: string,
): { train: ImageDataset; val: ImageDataset; test: ImageDataset } {
  if (train.shape[0] < 2) {
    throw new RangeError(
      `${source}: ${train.shape[0]} training images; a run needs at least 2 (one to train on, ` +
        `one to validate with)`,
    );
  }
  if (test.shape[0] === 0) throw new RangeError(`${source}: the test set is empty`);
  const size = config.valSize === "auto" ? autoValidationSize(train.shape[0]) : config.valSize;
  const held = holdOutValidation(train, size);
  return {
    train: firstImages(held.train, config.trainLimit),
    val: held.val,
    test: firstImages(test, config.testLimit),
  };
}

/** Prefixes a loading error with the --data flag that named the path. */
async function namingFlag<T>(data: string | null, loading: Promise<T>): Promise<T> {
  try {
    return await loading;
  } catch (error) {
    if (data === null || (error as Error).message.includes(`--data`)) throw error;
    throw new Error(`--data ${data}: ${(error as Error).message}`, { cause: error });
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

async function hasCifar10Files(path: string): Promise<boolean> {
  for await (const entry of Deno.readDir(path)) if (entry.name === "data_batch_1.bin") return true;
  return false;
}

/** Per-channel mean and standard deviation of uint8 images, in [0, 1] units. */
export function channelMoments(dataset: ImageDataset): { mean: number[]; std: number[] } {
  const [n, c, h, w] = dataset.shape;
  const plane = h * w;
  const mean: number[] = [], std: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    let sum = 0, squares = 0;
    for (let i = 0; i < n; i++) {
      const base = (i * c + ch) * plane;
      for (let p = 0; p < plane; p++) {
        const v = dataset.images[base + p] / 255;
        sum += v;
        squares += v * v;
      }
    }
    const m = sum / (n * plane);
    mean.push(m);
    std.push(Math.sqrt(Math.max(squares / (n * plane) - m * m, 1e-12)));
  }
  return { mean, std };
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
  if (config.data !== null && !await isDirectory(config.data)) {
    throw new Error(`--data ${config.data}: not a folder (or it does not exist)`);
  }
  if (config.data === null || await hasIdxFiles(config.data)) {
    // --download puts the official files in the cache, where the search finds them.
    if (config.download && config.data === null) await downloadFashionMnist();
    const mnist = await namingFlag(
      config.data,
      loadFashionMnist(config.data ? { dir: config.data } : {}),
    );
    const resize = size === 28 ? undefined : size;
    const source = `Fashion-MNIST (${
      mnist.kind === "builtin" ? "built-in subset" : mnist.kind
    }: ${mnist.source})`;
    return {
      ...splits(config, mnist.train, mnist.test, config.data ? `--data ${config.data}` : source),
      classNames: mnist.train.classNames,
      source,
      trainSpec: fashionMnistSpec({ flip: true, resize, padCrop: config.padCrop || undefined }),
      testSpec: fashionMnistSpec({ resize }),
      inputShape: [1, size, size],
      kind: "fashion-mnist",
    };
  }
  if (await hasCifar10Files(config.data)) {
    // CIFAR-10 at its own 32x32, normalised per channel with the training split's moments.
    const cifar = await namingFlag(config.data, loadCifar10(config.data));
    const sets = splits(config, cifar.train, cifar.test, `--data ${config.data}`);
    const { mean, std } = channelMoments(sets.train);
    const normalise = { op: "normalize" as const, mean, std };
    return {
      ...sets,
      classNames: cifar.train.classNames,
      source: `CIFAR-10 (${config.data})`,
      trainSpec: [{ op: "toFloat", scale: 1 / 255 }, { op: "horizontalFlip", p: 0.5 }, normalise],
      testSpec: [{ op: "toFloat", scale: 1 / 255 }, normalise],
      inputShape: [3, 32, 32],
      kind: "cifar10",
    };
  }
  // ImageFolder: `train/` and `val/` subfolders if present, else a seeded 90/10 split.
  const root = config.data;
  const hasSplit = await isDirectory(`${root}/train`) && await isDirectory(`${root}/val`);
  const train = await namingFlag(
    root,
    loadImageFolder(hasSplit ? `${root}/train` : root, { size: 256 }),
  );
  let trainSet: ImageDataset = train, testSet: ImageDataset;
  if (hasSplit) {
    testSet = await namingFlag(root, loadImageFolder(`${root}/val`, { size: 256 }));
  } else {
    const n = train.shape[0];
    const held = new Set<number>();
    for (let i = 0; i < n; i += 10) held.add(i);
    trainSet = pick(train, [...Array(n).keys()].filter((i) => !held.has(i)));
    testSet = pick(train, [...held]);
  }
  // The mean image and the PCA of section 4.1 come from the training split alone: neither the
  // validation images nor (without train/ and val/) the held-out test tenth shape them.
  const sets = splits(config, trainSet, testSet, `--data ${root}`);
  const { meanImage, eigen } = datasetStats(sets.train);
  const stats = { meanImage, eigen };
  return {
    ...sets,
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
