/**
 * tessera's data layer: datasets (Fashion-MNIST, CIFAR-10, ImageFolder), the paper's
 * preprocessing and augmentation (sections 2 and 4.1), and a seeded, worker-backed loader.
 * It produces plain typed arrays; the training loop wraps batches in tensors.
 *
 * @module
 */

/** The seeded generator every random transform takes (from `tensor/random.ts`). */
export { Rng, type RngState } from "../tensor/random.ts";
export type { Batch, ImageCHW, ImageDataset, PixelArray } from "./dataset.ts";
export { classCounts, getImage, validateDataset } from "./dataset.ts";
export type { IdxArray, IdxData, IdxDtype } from "./idx.ts";
export { encodeIdx, gunzip, gzip, isGzip, parseIdx, readIdxFile, writeIdxFile } from "./idx.ts";
export type {
  DownloadOptions,
  FashionMnist,
  FashionMnistDataset,
  LoadFashionMnistOptions,
} from "./fashion_mnist.ts";
export {
  defaultCacheDir,
  downloadFashionMnist,
  FASHION_MNIST_BUILTIN_DIR,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_FILES,
  FASHION_MNIST_SHA256,
  FASHION_MNIST_SYSTEM_DIR,
  FASHION_MNIST_URL,
  loadFashionMnist,
  loadSplit,
  sha256Hex,
} from "./fashion_mnist.ts";
export {
  balancedIndices,
  makeSubset,
  selectImages,
  SUBSET_PER_CLASS,
  SUBSET_SEED,
} from "./make_subset.ts";
export type {
  ImageFolderDataset,
  ImageFolderOptions,
  ImageStats,
  SkippedFile,
  SourceEntry,
} from "./image_folder.ts";
export { decodeJpeg, JpegError } from "./jpeg.ts";
export {
  datasetStats,
  decodeImage,
  imageProblem,
  loadImageFolder,
  preprocess,
  scanImageFolder,
  SHARD_VERSION,
} from "./image_folder.ts";
export {
  CIFAR10_CLASSES,
  CIFAR10_FILES,
  CIFAR10_RECORD_BYTES,
  concatDatasets,
  loadCifar10,
  parseCifar10,
  readCifar10File,
} from "./cifar10.ts";
export type { Eigen3, PcaJitterOptions } from "./transforms.ts";
export {
  centerCrop,
  crop,
  eigh3,
  flipHorizontal,
  horizontalFlip,
  jacobiEigen,
  normalize,
  pcaJitter,
  pcaShift,
  randomCrop,
  resizeBilinear,
  resizeBilinearAntialias,
  resizeShorterSide,
  subtractMean,
  tenCrop,
  toFloat,
  toUint8,
} from "./transforms.ts";
export type {
  FashionMnistSpecOptions,
  PaperStats,
  PaperTrainOptions,
  PipelineSpec,
  Transform,
  TransformSpec,
} from "./pipeline.ts";
export {
  compose,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  fashionMnistSpec,
  outputShape,
  paperEvalSpec,
  paperTrainSpec,
} from "./pipeline.ts";
export { assembleBatch, epochPermutation, sampleRng } from "./batch.ts";
export type { DataLoaderOptions } from "./loader.ts";
export { DataLoader } from "./loader.ts";
export type { ClassProbability } from "./imagenet.ts";
export {
  centerCropTorchvision,
  IMAGENET_CLASSES,
  IMAGENET_CROP,
  IMAGENET_MEAN,
  IMAGENET_RESIZE,
  IMAGENET_STD,
  imagenetEval,
  imagenetEvalBytes,
  imagenetNormalize,
  imagenetTenCrop,
  resizedSize,
  resizeShorterSidePil,
  topK,
} from "./imagenet.ts";
