/**
 * Transform pipelines described as plain data. A {@link PipelineSpec} is a list of steps
 * (`{ op: "randomCrop", size: 224 }`, ...) that survives `postMessage`, so a loader worker
 * can rebuild exactly the pipeline the main thread uses; {@link compose} turns it into a
 * function. The ready-made recipes are the paper's (section 4.1) and one for Fashion-MNIST.
 *
 * @module
 */

import type { Rng } from "../tensor/random.ts";
import type { ImageCHW } from "./dataset.ts";
import { checkArgument, checkOptions, declareOptions } from "../tensor/options.ts";

const PAPER_TRAIN_KEYS = declareOptions<PaperTrainOptions>()("paperTrainSpec", [
  "cropSize",
  "pcaJitter",
  "magnitude",
]);
const PAPER_EVAL_KEYS = declareOptions<NonNullable<Parameters<typeof paperEvalSpec>[1]>>()(
  "paperEvalSpec",
  ["cropSize", "tenCrop"],
);
const FASHION_SPEC_KEYS = declareOptions<FashionMnistSpecOptions>()("fashionMnistSpec", [
  "padCrop",
  "flip",
  "resize",
]);
import {
  centerCrop,
  type Eigen3,
  horizontalFlip,
  normalize,
  pcaJitter,
  type PcaJitterOptions,
  randomCrop,
  resizeBilinear,
  subtractMean,
  tenCrop,
  toFloat,
} from "./transforms.ts";

/** One step of a pipeline, as plain data. */
export type TransformSpec =
  | { op: "toFloat"; scale?: number }
  | { op: "resize"; height: number; width: number }
  | { op: "centerCrop"; size: number }
  | { op: "randomCrop"; size: number; padding?: number; fill?: number }
  | { op: "horizontalFlip"; p?: number }
  | { op: "subtractMean"; mean: Float32Array }
  | { op: "normalize"; mean: number[]; std: number[] }
  | ({ op: "pcaJitter"; eigen: Eigen3 } & PcaJitterOptions)
  | { op: "tenCrop"; size: number };

/** A whole pipeline: its steps, applied in order. `tenCrop` may only be the last step. */
export type PipelineSpec = TransformSpec[];

/** A built pipeline: one image in, one or more views out (ten for `tenCrop`), float32. */
export type Transform = (image: ImageCHW, rng: Rng) => ImageCHW<Float32Array>[];

function step(spec: TransformSpec): (image: ImageCHW, rng: Rng) => ImageCHW | ImageCHW[] {
  switch (spec.op) {
    case "toFloat":
      return (image) => toFloat(image, spec.scale ?? 1);
    case "resize":
      return (image) => resizeBilinear(image, spec.height, spec.width);
    case "centerCrop":
      return (image) => centerCrop(image, spec.size);
    case "randomCrop":
      return (image, rng) => randomCrop(image, spec.size, rng, spec.padding ?? 0, spec.fill ?? 0);
    case "horizontalFlip":
      return (image, rng) => horizontalFlip(image, rng, spec.p ?? 0.5);
    case "subtractMean":
      return (image) => subtractMean(image, spec.mean);
    case "normalize":
      return (image) => normalize(image, spec.mean, spec.std);
    case "pcaJitter":
      return (image, rng) =>
        pcaJitter(image, spec.eigen, rng, {
          std: spec.std,
          magnitude: spec.magnitude,
          pixelScale: spec.pixelScale,
        });
    case "tenCrop":
      return (image) => tenCrop(image, spec.size);
    default:
      throw new TypeError(
        `compose: unknown transform op ${JSON.stringify((spec as { op: unknown }).op)}`,
      );
  }
}

/**
 * Builds a pipeline from its spec. Steps run in order and draw from the one `rng` they are
 * given, so a per-sample generator fixes the whole augmentation of that sample.
 */
export function compose(spec: PipelineSpec): Transform {
  checkArgument("compose", "spec", spec, "array");
  spec.forEach((s, i) => {
    if (s.op === "tenCrop" && i !== spec.length - 1) {
      throw new RangeError(
        `compose: tenCrop must be the last step, found at step ${i} of ${spec.length}`,
      );
    }
  });
  const steps = spec.map(step);
  return (image, rng) => {
    let current: ImageCHW | ImageCHW[] = image;
    for (const apply of steps) current = apply(current as ImageCHW, rng);
    const views = Array.isArray(current) ? current : [current];
    return views.map((
      v,
    ) => (v.data instanceof Float32Array ? v as ImageCHW<Float32Array> : toFloat(v)));
  };
}

/** The output `[C, H, W]` and views per sample of a pipeline fed `[C, H, W]` images. */
export function outputShape(spec: PipelineSpec, input: [number, number, number]): {
  shape: [number, number, number];
  views: number;
} {
  checkArgument("outputShape", "spec", spec, "array");
  checkArgument("outputShape", "input", input, "array");
  let [c, h, w] = input;
  let views = 1;
  for (const s of spec) {
    if (s.op === "resize") [h, w] = [s.height, s.width];
    else if (s.op === "centerCrop" || s.op === "randomCrop") [h, w] = [s.size, s.size];
    else if (s.op === "tenCrop") [h, w, views] = [s.size, s.size, 10];
  }
  return { shape: [c, h, w], views };
}

/** The training-set statistics the paper's pipeline needs (saved with an ImageFolder shard). */
export interface PaperStats {
  /** Mean image `[3, S, S]` in 0..255 units (section 2). */
  meanImage: Float32Array;
  /** Eigen-decomposition of the RGB covariance, RGB in [0, 1] units (section 4.1). */
  eigen: Eigen3;
}

/** The paper's crop as `alexnet()` takes it: 227 (section 4.1 says 224; see models/alexnet.ts). */
export const PAPER_CROP = 227;

/** Options of {@link paperTrainSpec}. */
export interface PaperTrainOptions {
  /**
   * Crop size; default 227, what `alexnet()` takes. Section 4.1 says 224, but the paper's
   * 11x11 stride-4 conv1 yields its 55x55 only from 227 (Caffe's choice; see models/alexnet.ts).
   */
  cropSize?: number;
  /** Whether to add PCA colour jitter; true (section 4.1). Caffe's reproduction omits it. */
  pcaJitter?: boolean;
  /** Jitter magnitude; see {@link PcaJitterOptions}. Default the paper's `"eigenvalue"`. */
  magnitude?: PcaJitterOptions["magnitude"];
}

/**
 * The paper's training pipeline on 256x256 uint8 images: raw RGB (0..255), mean image
 * subtracted over the full 256x256 (section 2), then a random 227 crop (the paper's "224"; see
 * {@link PaperTrainOptions.cropSize}), a mirror with
 * probability 0.5 and PCA colour jitter (section 4.1). Jitter adds one constant per channel,
 * so applying it after the crop and flip is the same as before them, and cheaper.
 */
export function paperTrainSpec(stats: PaperStats, options?: PaperTrainOptions): PipelineSpec {
  checkArgument("paperTrainSpec", "stats", stats, "object");
  options = checkOptions("paperTrainSpec", options, PAPER_TRAIN_KEYS);
  const spec: PipelineSpec = [
    { op: "subtractMean", mean: stats.meanImage },
    { op: "randomCrop", size: options.cropSize ?? PAPER_CROP },
    { op: "horizontalFlip", p: 0.5 },
  ];
  if (options.pcaJitter ?? true) {
    // The eigenvalues are in [0, 1] units, the image in 0..255: pixelScale bridges the two.
    spec.push({
      op: "pcaJitter",
      eigen: stats.eigen,
      std: 0.1,
      pixelScale: 255,
      magnitude: options.magnitude,
    });
  }
  return spec;
}

/**
 * The paper's evaluation pipeline: mean subtraction, then the center crop or the ten crops of
 * section 4.1 (whose softmax outputs the evaluator averages), 227 pixels by default (see
 * {@link PaperTrainOptions.cropSize}).
 */
export function paperEvalSpec(
  stats: PaperStats,
  options?: { cropSize?: number; tenCrop?: boolean },
): PipelineSpec {
  checkArgument("paperEvalSpec", "stats", stats, "object");
  options = checkOptions("paperEvalSpec", options, PAPER_EVAL_KEYS);
  const size = options.cropSize ?? PAPER_CROP;
  return [
    { op: "subtractMean", mean: stats.meanImage },
    options.tenCrop ? { op: "tenCrop", size } : { op: "centerCrop", size },
  ];
}

/** Mean and standard deviation of Fashion-MNIST training pixels in [0, 1]. */
export const FASHION_MNIST_MEAN = 0.2860;
/** See {@link FASHION_MNIST_MEAN}. */
export const FASHION_MNIST_STD = 0.3530;

/** Options of {@link fashionMnistSpec}. */
export interface FashionMnistSpecOptions {
  /** Random crop of the original size after padding by this many pixels; 0 (off) by default. */
  padCrop?: number;
  /** Random horizontal mirror; false by default (clothes are roughly symmetric, so it helps). */
  flip?: boolean;
  /** Resize to this square size afterwards (d2l.ai feeds AlexNet 224x224); off by default. */
  resize?: number;
}

/**
 * Fashion-MNIST: scale bytes to [0, 1], optional pad-and-crop and mirror, optional resize,
 * then normalize with mean 0.2860 and std 0.3530.
 */
export function fashionMnistSpec(options?: FashionMnistSpecOptions): PipelineSpec {
  options = checkOptions("fashionMnistSpec", options, FASHION_SPEC_KEYS);
  const spec: PipelineSpec = [{ op: "toFloat", scale: 1 / 255 }];
  if (options.padCrop) spec.push({ op: "randomCrop", size: 28, padding: options.padCrop });
  if (options.flip) spec.push({ op: "horizontalFlip", p: 0.5 });
  if (options.resize) spec.push({ op: "resize", height: options.resize, width: options.resize });
  spec.push({ op: "normalize", mean: [FASHION_MNIST_MEAN], std: [FASHION_MNIST_STD] });
  return spec;
}
