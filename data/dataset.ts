/**
 * The shapes every data source in `data/` produces. The data layer knows nothing about
 * tensors: it hands out plain typed arrays, and the training loop wraps a {@link Batch} in
 * tensors.
 *
 * @module
 */

/** A batch ready for the network: images `[N, C, H, W]` float32 and one int32 label each. */
export interface Batch {
  /** Pixel values, `N * C * H * W` of them, NCHW row-major. */
  images: Float32Array;
  /** `[N, C, H, W]`. */
  shape: [number, number, number, number];
  /** Class index of each image, length N. */
  labels: Int32Array;
  /**
   * Views per sample (10 for ten-crop evaluation, section 4.1), absent or 1 otherwise. With V
   * views, images `i*V .. i*V+V-1` come from the same sample and `labels` repeats its label V
   * times, so `labels.length === shape[0]` always; average the V softmax outputs.
   */
  views?: number;
  /** Dataset index of each sample (length N / V): which images this batch holds. */
  indices?: Int32Array;
}

/**
 * An in-memory image dataset: N uint8 images stored `[N, C, H, W]` contiguously. Fashion-MNIST,
 * CIFAR-10 and a preprocessed ImageFolder shard all have this form, which is what lets one
 * {@link DataLoader} (and its workers) serve all of them.
 */
export interface ImageDataset {
  /** `N * C * H * W` bytes, NCHW row-major. May live in a SharedArrayBuffer. */
  images: Uint8Array;
  /** `[N, C, H, W]`. */
  shape: [number, number, number, number];
  /** Class index of each image, length N, each in `[0, classNames.length)`. */
  labels: Int32Array;
  /** Human-readable class names; `labels` index into this. */
  classNames: string[];
}

/** One image, channels first: `data[c * height * width + y * width + x]`. */
export interface ImageCHW<T extends PixelArray = PixelArray> {
  /** `channels * height * width` values. */
  data: T;
  /** Number of channels (1 for grayscale, 3 for RGB). */
  channels: number;
  /** Rows. */
  height: number;
  /** Columns. */
  width: number;
}

/** The pixel arrays a transform accepts: raw bytes or floats. */
export type PixelArray = Uint8Array | Float32Array;

/**
 * Checks that a dataset's arrays agree with its shape and its labels with its classes;
 * throws naming `name` and the offending value.
 */
export function validateDataset(dataset: ImageDataset, name = "dataset"): void {
  const d = dataset as Partial<ImageDataset> | null;
  if (
    typeof d !== "object" || d === null || !Array.isArray(d.shape) ||
    !(d.images instanceof Uint8Array) || !(d.labels instanceof Int32Array) ||
    !Array.isArray(d.classNames)
  ) {
    throw new TypeError(
      `${name}: expects a dataset { images: Uint8Array, shape: [N, C, H, W], labels: Int32Array, classNames }, got ${
        d === null || typeof d !== "object"
          ? String(d)
          : `an object with keys ${Object.keys(d).join(", ")}`
      }`,
    );
  }
  const [n, c, h, w] = dataset.shape;
  if (dataset.shape.length !== 4 || dataset.shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new RangeError(`${name}: shape must be [N, C, H, W], got [${dataset.shape}]`);
  }
  if (dataset.images.length !== n * c * h * w) {
    throw new RangeError(
      `${name}: shape [${dataset.shape.join(", ")}] needs ${n * c * h * w} bytes of images, ` +
        `found ${dataset.images.length}`,
    );
  }
  if (dataset.labels.length !== n) {
    throw new RangeError(`${name}: expected ${n} labels, found ${dataset.labels.length}`);
  }
  const classes = dataset.classNames.length;
  for (let i = 0; i < n; i++) {
    const label = dataset.labels[i];
    if (label < 0 || label >= classes) {
      throw new RangeError(
        `${name}: label ${label} of image ${i} is outside [0, ${classes}) (${classes} class names)`,
      );
    }
  }
}

/** The `index`-th image of `dataset`, as a view (no copy). */
export function getImage(dataset: ImageDataset, index: number): ImageCHW<Uint8Array> {
  checkDatasetShape("getImage", dataset);
  const [n, channels, height, width] = dataset.shape;
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new RangeError(`getImage: index ${index} is outside [0, ${n})`);
  }
  const size = channels * height * width;
  return {
    data: dataset.images.subarray(index * size, (index + 1) * size),
    channels,
    height,
    width,
  };
}

/** Counts images per class: `counts[k]` is the number of labels equal to k. */
export function classCounts(dataset: ImageDataset): number[] {
  validateDataset(dataset, "classCounts");
  const counts = new Array<number>(dataset.classNames.length).fill(0);
  for (const label of dataset.labels) counts[label]++;
  return counts;
}

/** Throws unless `dataset` has a [N, C, H, W] shape and an images array (a cheap check). */
export function checkDatasetShape(op: string, dataset: unknown): void {
  const d = dataset as Partial<ImageDataset> | null;
  if (
    typeof d !== "object" || d === null || !Array.isArray(d.shape) || !ArrayBuffer.isView(d.images)
  ) {
    throw new TypeError(
      `${op}: expects a dataset { images, shape: [N, C, H, W], labels, classNames }, got ${
        String(dataset)
      }`,
    );
  }
}

/**
 * Throws unless `image` is an {@link ImageCHW}: `{ data, channels, height, width }` with
 * data.length = channels·height·width, naming `op`.
 */
export function checkImage(op: string, image: unknown): void {
  const i = image as Partial<ImageCHW> | null;
  const ok = typeof i === "object" && i !== null && ArrayBuffer.isView(i.data) &&
    [i.channels, i.height, i.width].every((v) => Number.isInteger(v) && v! >= 0) &&
    (i.data as PixelArray).length === i.channels! * i.height! * i.width!;
  if (!ok) {
    throw new TypeError(
      `${op}: image must be { data, channels, height, width } with channels·height·width values, got ${
        i === null || typeof i !== "object" ? String(i) : `keys ${Object.keys(i).join(", ")}`
      }`,
    );
  }
}

/** Throws unless `rng` is a random generator (an Rng), naming `op`. */
export function checkRng(op: string, rng: unknown): void {
  const r = rng as { uniform?: unknown; normal?: unknown } | null;
  if (typeof r !== "object" || r === null || typeof r.uniform !== "function") {
    throw new TypeError(
      `${op}: rng must be a random generator (new Rng(seed)), got ${String(rng)}`,
    );
  }
}
