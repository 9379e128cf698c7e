/**
 * Image transforms for one image stored channels-first (CHW). All are pure: they return a
 * new image and never modify their input; the random ones take an {@link Rng} so that a
 * seed fixes every crop, flip and colour shift.
 *
 * The paper's augmentation (section 4.1):
 *
 * - random 224x224 crops of the 256x256 image and their horizontal mirrors
 *   (32 * 32 * 2 = 2048 variants per image): {@link randomCrop}, {@link horizontalFlip};
 * - PCA colour augmentation: with p_i, l_i the eigenvectors and eigenvalues of the 3x3
 *   covariance of RGB values over the training set, add
 *   `[p1 p2 p3] [a1 l1, a2 l2, a3 l3]^T`, a_i ~ N(0, 0.1^2) drawn once per image, to every
 *   pixel: {@link pcaJitter}; the eigenvectors come from {@link jacobiEigen};
 * - at test time ten 224 crops (four corners, the center, their mirrors): {@link tenCrop}.
 *
 * @module
 */

import type { Rng } from "../tensor/random.ts";
import { checkImage, checkRng, type ImageCHW, type PixelArray } from "./dataset.ts";
import { checkArgument } from "../tensor/options.ts";
import { checkOptions, declareOptions } from "../tensor/options.ts";

const PCA_KEYS = ["std", "magnitude", "pixelScale"] as const;
const PCA_SHIFT_KEYS = declareOptions<PcaJitterOptions>()("pcaShift", PCA_KEYS);
const PCA_JITTER_KEYS = declareOptions<PcaJitterOptions>()("pcaJitter", PCA_KEYS);

function allocLike<T extends PixelArray>(data: T, length: number): T {
  return (data instanceof Uint8Array ? new Uint8Array(length) : new Float32Array(length)) as T;
}

function toFloat32(data: PixelArray): Float32Array {
  return data instanceof Float32Array ? new Float32Array(data) : Float32Array.from(data);
}

/** Converts to float32, multiplying by `scale` (1/255 maps bytes to [0, 1]). */
export function toFloat(image: ImageCHW, scale = 1): ImageCHW<Float32Array> {
  checkImage("toFloat", image);
  const out = new Float32Array(image.data.length);
  for (let i = 0; i < out.length; i++) out[i] = image.data[i] * scale;
  return { ...image, data: out };
}

/**
 * The `height` x `width` window whose top-left corner is (`top`, `left`). The window may
 * extend past the image (when padding is wanted); pixels outside are `fill`.
 */
export function crop<T extends PixelArray>(
  image: ImageCHW<T>,
  top: number,
  left: number,
  height: number,
  width: number,
  fill = 0,
): ImageCHW<T> {
  checkImage("crop", image);
  const { channels, height: inH, width: inW, data } = image;
  const out = allocLike(data, channels * height * width);
  const inside = top >= 0 && left >= 0 && top + height <= inH && left + width <= inW;
  if (!inside && fill !== 0) out.fill(fill);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < height; y++) {
      const sy = top + y;
      if (sy < 0 || sy >= inH) continue;
      const x0 = Math.max(0, -left);
      const x1 = Math.min(width, inW - left);
      if (x1 <= x0) continue;
      const src = c * inH * inW + sy * inW + left;
      out.set(data.subarray(src + x0, src + x1), c * height * width + y * width + x0);
    }
  }
  return { data: out, channels, height, width };
}

function checkCropSize(image: ImageCHW, height: number, width: number, what: string): void {
  if (height > image.height || width > image.width || height <= 0 || width <= 0) {
    throw new RangeError(
      `${what}: crop ${height}x${width} does not fit the ${image.height}x${image.width} image`,
    );
  }
}

/** The centered `height` x `width` window (the paper's 256x256 crop, or the 224 test crop). */
export function centerCrop<T extends PixelArray>(
  image: ImageCHW<T>,
  height: number,
  width = height,
): ImageCHW<T> {
  checkImage("centerCrop", image);
  checkCropSize(image, height, width, "centerCrop");
  const top = Math.floor((image.height - height) / 2);
  const left = Math.floor((image.width - width) / 2);
  return crop(image, top, left, height, width);
}

/**
 * A uniformly random `size` x `size` window (section 4.1: 224 of 256, 33 positions per axis).
 * With `padding` the image is first padded by that many `fill` pixels on every side (the
 * usual CIFAR / Fashion-MNIST augmentation: 28 of 28 padded by 4).
 */
export function randomCrop<T extends PixelArray>(
  image: ImageCHW<T>,
  size: number,
  rng: Rng,
  padding = 0,
  fill = 0,
): ImageCHW<T> {
  checkImage("randomCrop", image);
  checkRng("randomCrop", rng);
  const paddedH = image.height + 2 * padding;
  const paddedW = image.width + 2 * padding;
  if (size > paddedH || size > paddedW || size <= 0) {
    throw new RangeError(
      `randomCrop: crop ${size}x${size} does not fit the ${image.height}x${image.width} image ` +
        `padded by ${padding}`,
    );
  }
  const top = rng.int(paddedH - size + 1) - padding;
  const left = rng.int(paddedW - size + 1) - padding;
  return crop(image, top, left, size, size, fill);
}

/** Mirrors the image left-right. */
export function flipHorizontal<T extends PixelArray>(image: ImageCHW<T>): ImageCHW<T> {
  checkImage("flipHorizontal", image);
  const { channels, height, width, data } = image;
  const out = allocLike(data, data.length);
  // Copy each row, then reverse it in place with the native TypedArray.reverse (rather than an
  // indexed loop over a Uint8Array | Float32Array union, which the engine cannot specialise).
  for (let row = 0; row < channels * height; row++) {
    const base = row * width;
    out.set(data.subarray(base, base + width), base);
    out.subarray(base, base + width).reverse();
  }
  return { data: out, channels, height, width };
}

/**
 * Mirrors with probability `p` (0.5: section 4.1 uses each crop and its mirror). Always draws
 * exactly one number from `rng`, so later draws do not depend on the outcome.
 */
export function horizontalFlip<T extends PixelArray>(
  image: ImageCHW<T>,
  rng: Rng,
  p = 0.5,
): ImageCHW<T> {
  checkImage("horizontalFlip", image);
  checkRng("horizontalFlip", rng);
  // Not flipping returns the input itself: no transform mutates its input, so sharing is safe
  // and saves a copy of the image.
  return rng.uniform() < p ? flipHorizontal(image) : image;
}

/**
 * Subtracts the per-pixel mean image (section 2: "subtracting the mean activity over the
 * training set from each pixel"). `mean` must have the image's CHW shape.
 */
export function subtractMean(image: ImageCHW, mean: Float32Array): ImageCHW<Float32Array> {
  checkImage("subtractMean", image);
  checkArgument("subtractMean", "mean", mean, "array");
  if (mean.length !== image.data.length) {
    throw new RangeError(
      `subtractMean: mean image has ${mean.length} values, image ` +
        `${image.channels}x${image.height}x${image.width} has ${image.data.length}`,
    );
  }
  const out = new Float32Array(image.data.length);
  for (let i = 0; i < out.length; i++) out[i] = image.data[i] - mean[i];
  return { ...image, data: out };
}

/** Per-channel `(x - mean[c]) / std[c]`. */
export function normalize(
  image: ImageCHW,
  mean: readonly number[],
  std: readonly number[],
): ImageCHW<Float32Array> {
  checkImage("normalize", image);
  checkArgument("normalize", "mean", mean, "array");
  checkArgument("normalize", "std", std, "array");
  if (mean.length !== image.channels || std.length !== image.channels) {
    throw new RangeError(
      `normalize: expected ${image.channels} means and stds, got ${mean.length} and ${std.length}`,
    );
  }
  const plane = image.height * image.width;
  const out = toFloat32(image.data);
  for (let c = 0; c < image.channels; c++) {
    if (!(std[c] > 0)) throw new RangeError(`normalize: std[${c}] must be positive, got ${std[c]}`);
    const m = mean[c], inv = 1 / std[c];
    for (let i = c * plane; i < (c + 1) * plane; i++) out[i] = (out[i] - m) * inv;
  }
  return { ...image, data: out };
}

/** Eigen-decomposition of a symmetric 3x3 matrix. */
export interface Eigen3 {
  /** Eigenvalues, largest first. */
  values: [number, number, number];
  /** `vectors[k]` is the unit eigenvector of `values[k]` (p_k in section 4.1). */
  vectors: [number[], number[], number[]];
}

/**
 * Eigen-decomposition of a symmetric 3x3 matrix by the cyclic Jacobi method: sweep over the
 * three off-diagonal entries, zeroing each with a plane rotation, until they vanish. Each
 * rotation keeps the matrix similar and symmetric, and the off-diagonal mass falls
 * quadratically once small, so a handful of sweeps reach machine precision; the product of
 * the rotations holds the eigenvectors. Jacobi is chosen over the closed-form cubic because it
 * stays accurate for repeated or nearly repeated eigenvalues.
 *
 * Signs are fixed so each vector's largest-magnitude component is positive, making the
 * result (and therefore PCA jitter) deterministic.
 */
export function jacobiEigen(matrix: readonly (readonly number[])[]): Eigen3 {
  checkArgument("jacobiEigen", "matrix", matrix, "array");
  if (matrix.some((row) => !Array.isArray(row))) {
    throw new TypeError(
      `jacobiEigen: expected a 3x3 matrix (rows of numbers), got ${JSON.stringify(matrix)}`,
    );
  }
  if (matrix.length !== 3 || matrix.some((row) => row.length !== 3)) {
    throw new RangeError(`jacobiEigen: expected a 3x3 matrix, got ${JSON.stringify(matrix)}`);
  }
  const scale = Math.max(...matrix.flat().map(Math.abs)) || 1;
  for (let i = 0; i < 3; i++) {
    for (let j = i + 1; j < 3; j++) {
      if (Math.abs(matrix[i][j] - matrix[j][i]) > 1e-9 * scale) {
        throw new RangeError(`jacobiEigen: matrix is not symmetric at (${i}, ${j})`);
      }
    }
  }
  const a = matrix.map((row) => [...row]);
  const v = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  for (let sweep = 0; sweep < 50; sweep++) {
    const off = a[0][1] ** 2 + a[0][2] ** 2 + a[1][2] ** 2;
    if (off <= (Number.EPSILON * scale) ** 2) break;
    for (const [p, q] of [[0, 1], [0, 2], [1, 2]]) {
      if (a[p][q] === 0) continue;
      // Choose the rotation angle that zeroes a[p][q]: t = tan(theta), the smaller root of
      // t^2 + 2 t theta' - 1 = 0 with theta' = (a_qq - a_pp) / (2 a_pq) (Golub and Van Loan 8.5).
      const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1);
      const s = t * c;
      for (let k = 0; k < 3; k++) {
        const akp = a[k][p], akq = a[k][q];
        a[k][p] = c * akp - s * akq;
        a[k][q] = s * akp + c * akq;
      }
      for (let k = 0; k < 3; k++) {
        const apk = a[p][k], aqk = a[q][k];
        a[p][k] = c * apk - s * aqk;
        a[q][k] = s * apk + c * aqk;
      }
      for (let k = 0; k < 3; k++) {
        const vkp = v[k][p], vkq = v[k][q];
        v[k][p] = c * vkp - s * vkq;
        v[k][q] = s * vkp + c * vkq;
      }
    }
  }
  const order = [0, 1, 2].sort((i, j) => a[j][j] - a[i][i]);
  const vectors = order.map((k) => {
    const vec = [v[0][k], v[1][k], v[2][k]];
    const big = vec.reduce((m, x) => (Math.abs(x) > Math.abs(m) ? x : m), 0);
    return big < 0 ? vec.map((x) => -x) : vec;
  }) as [number[], number[], number[]];
  return { values: order.map((k) => a[k][k]) as [number, number, number], vectors };
}

/** Short alias of {@link jacobiEigen}, after NumPy's `eigh`. */
export const eigh3: typeof jacobiEigen = jacobiEigen;

/** Options of {@link pcaJitter}. */
export interface PcaJitterOptions {
  /** Standard deviation of the a_i; 0.1 (section 4.1). */
  std?: number;
  /**
   * How far to move along p_i per unit of a_i: `"eigenvalue"` is the paper's formula
   * (a_i * l_i); `"sqrtEigenvalue"` uses the standard deviation along p_i (a_i * sqrt(l_i)),
   * as fb.resnet.torch's `Lighting` does. Default `"eigenvalue"`.
   */
  magnitude?: "eigenvalue" | "sqrtEigenvalue";
  /**
   * The intensity unit the eigenvalues were computed in, relative to the image: the formula
   * is applied to `x / pixelScale` and the shift scaled back. Eigenvalues scale with the
   * square of the unit, so the paper's a_i * l_i is unit-dependent: with l_i from RGB in
   * [0, 1] and an image in 0..255, pass 255. Default 1 (same unit).
   */
  pixelScale?: number;
}

/**
 * The colour shift section 4.1 adds to every pixel: `sum_i p_i * a_i * l_i` with a_i drawn
 * once per image from N(0, std^2). Draws exactly three normals from `rng`.
 */
export function pcaShift(
  eigen: Eigen3,
  rng: Rng,
  options?: PcaJitterOptions,
): [number, number, number] {
  checkArgument("pcaShift", "eigen", eigen, "object");
  checkRng("pcaShift", rng);
  options = checkOptions("pcaShift", options, PCA_SHIFT_KEYS);
  const std = options.std ?? 0.1;
  const scale = options.pixelScale ?? 1;
  const shift: [number, number, number] = [0, 0, 0];
  for (let k = 0; k < 3; k++) {
    const a = rng.normal(0, std);
    const l = Math.max(0, eigen.values[k]);
    const m = options.magnitude === "sqrtEigenvalue" ? Math.sqrt(l) : l;
    for (let c = 0; c < 3; c++) shift[c] += eigen.vectors[k][c] * a * m * scale;
  }
  return shift;
}

/** PCA colour augmentation (section 4.1) of an RGB image; see {@link pcaShift}. */
export function pcaJitter(
  image: ImageCHW,
  eigen: Eigen3,
  rng: Rng,
  options?: PcaJitterOptions,
): ImageCHW<Float32Array> {
  checkImage("pcaJitter", image);
  checkRng("pcaJitter", rng);
  options = checkOptions("pcaJitter", options, PCA_JITTER_KEYS);
  if (image.channels !== 3) {
    throw new RangeError(`pcaJitter: needs an RGB image (3 channels), got ${image.channels}`);
  }
  const shift = pcaShift(eigen, rng, options);
  const plane = image.height * image.width;
  const data = image.data;
  const out = new Float32Array(data.length);
  for (let c = 0; c < 3; c++) {
    const delta = shift[c];
    for (let i = c * plane; i < (c + 1) * plane; i++) out[i] = data[i] + delta;
  }
  return { ...image, data: out };
}

/**
 * Bilinear resize to `height` x `width`, sampling at pixel centers (`align_corners = false`,
 * the convention of PIL, OpenCV and PyTorch) with edge clamping and no antialiasing filter.
 */
export function resizeBilinear(
  image: ImageCHW,
  height: number,
  width: number,
): ImageCHW<Float32Array> {
  if (!(height >= 1 && width >= 1 && Number.isInteger(height) && Number.isInteger(width))) {
    throw new RangeError(`resizeBilinear: size must be positive integers, got ${height}x${width}`);
  }
  const { channels, height: inH, width: inW, data } = image;
  const out = new Float32Array(channels * height * width);
  const x0s = new Int32Array(width), x1s = new Int32Array(width), fxs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const sx = Math.min(Math.max((x + 0.5) * (inW / width) - 0.5, 0), inW - 1);
    x0s[x] = Math.floor(sx);
    x1s[x] = Math.min(x0s[x] + 1, inW - 1);
    fxs[x] = sx - x0s[x];
  }
  for (let y = 0; y < height; y++) {
    const sy = Math.min(Math.max((y + 0.5) * (inH / height) - 0.5, 0), inH - 1);
    const y0 = Math.floor(sy), y1 = Math.min(y0 + 1, inH - 1), fy = sy - y0;
    for (let c = 0; c < channels; c++) {
      const row0 = c * inH * inW + y0 * inW, row1 = c * inH * inW + y1 * inW;
      const dst = c * height * width + y * width;
      for (let x = 0; x < width; x++) {
        const top = data[row0 + x0s[x]] + (data[row0 + x1s[x]] - data[row0 + x0s[x]]) * fxs[x];
        const bottom = data[row1 + x0s[x]] + (data[row1 + x1s[x]] - data[row1 + x0s[x]]) * fxs[x];
        out[dst + x] = top + (bottom - top) * fy;
      }
    }
  }
  return { data: out, channels, height, width };
}

/**
 * Resizes so the shorter side is `size`, keeping the aspect ratio (section 2: "rescaled the
 * image such that the shorter side was of length 256").
 */
export function resizeShorterSide(image: ImageCHW, size: number): ImageCHW<Float32Array> {
  checkImage("resizeShorterSide", image);
  const scale = size / Math.min(image.height, image.width);
  const height = image.height <= image.width ? size : Math.round(image.height * scale);
  const width = image.width < image.height ? size : Math.round(image.width * scale);
  return resizeBilinear(image, height, width);
}

/** Rounds and clamps to bytes, for storing a resized image. */
export function toUint8(image: ImageCHW): ImageCHW<Uint8Array> {
  checkImage("toUint8", image);
  return {
    ...image,
    data: Uint8Array.from(image.data, (x) => Math.min(255, Math.max(0, Math.round(x)))),
  };
}

/**
 * The ten test crops of section 4.1: four corners and the center, then the same five
 * mirrored, in the order top-left, top-right, bottom-left, bottom-right, center.
 */
export function tenCrop<T extends PixelArray>(image: ImageCHW<T>, size: number): ImageCHW<T>[] {
  checkImage("tenCrop", image);
  checkCropSize(image, size, size, "tenCrop");
  const bottom = image.height - size, right = image.width - size;
  const five = [
    crop(image, 0, 0, size, size),
    crop(image, 0, right, size, size),
    crop(image, bottom, 0, size, size),
    crop(image, bottom, right, size, size),
    centerCrop(image, size),
  ];
  return [...five, ...five.map(flipHorizontal)];
}

/**
 * The taps of PIL's separable resampling along one axis (`precompute_coeffs` and
 * `normalize_coeffs_8bpc` in Pillow's `Resample.c`): output pixel `i` is
 * `sum_k weights[i * taps + k] * input[starts[i] + k]` for `k < counts[i]`, the weights
 * integers scaled by 2^22 (Pillow's `PRECISION_BITS`).
 */
interface PilTaps {
  starts: Int32Array;
  counts: Int32Array;
  weights: Float64Array;
  taps: number;
}

/** Pillow's fixed-point precision for 8-bit images: 32 - 8 - 2 bits. */
const PIL_PRECISION_BITS = 22;

/**
 * Pillow's coefficients for its BILINEAR filter (the triangle `1 - |x|`, support 1), going
 * from `inSize` to `outSize` pixels. When shrinking, the triangle is stretched by the
 * shrink factor `scale = inSize / outSize`, so each output pixel averages every input pixel
 * it covers: that stretching is the "antialias". The double arithmetic and the rounding to
 * integers follow Pillow line for line, so the coefficients are the same bits.
 */
function pilBilinearTaps(inSize: number, outSize: number): PilTaps {
  const scale = inSize / outSize;
  const filterScale = Math.max(1, scale);
  const support = 1 * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const starts = new Int32Array(outSize), counts = new Int32Array(outSize);
  const weights = new Float64Array(outSize * taps);
  const triangle = (x: number) => Math.max(0, 1 - Math.abs(x));
  const inverse = 1 / filterScale;
  const unit = 1 << PIL_PRECISION_BITS;
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    // C's (int) truncates toward zero; Pillow adds 0.5 first to round.
    const first = Math.max(0, Math.trunc(center - support + 0.5));
    const count = Math.min(inSize, Math.trunc(center + support + 0.5)) - first;
    const row = weights.subarray(i * taps, (i + 1) * taps);
    let total = 0;
    for (let k = 0; k < count; k++) {
      row[k] = triangle((k + first - center + 0.5) * inverse);
      total += row[k];
    }
    for (let k = 0; k < count; k++) {
      const w = total !== 0 ? row[k] / total : row[k];
      row[k] = Math.trunc(w < 0 ? -0.5 + w * unit : 0.5 + w * unit);
    }
    starts[i] = first;
    counts[i] = count;
  }
  return { starts, counts, weights, taps };
}

/**
 * One pass of Pillow's 8-bit resampling along rows (`stride` 1) or columns (`stride` the
 * row length): integer sums rounded (`+ 2^21`, then `>> 22`) and clamped to a byte.
 */
function pilPass(
  input: Uint8Array,
  output: Uint8Array,
  lines: number,
  inLineStep: number,
  outLineStep: number,
  stride: number,
  outCount: number,
  t: PilTaps,
): void {
  const half = 1 << (PIL_PRECISION_BITS - 1), top = 1 << (PIL_PRECISION_BITS + 8);
  for (let line = 0; line < lines; line++) {
    const inBase = line * inLineStep, outBase = line * outLineStep;
    for (let i = 0; i < outCount; i++) {
      let sum = half;
      const from = inBase + t.starts[i] * stride, w = i * t.taps;
      for (let k = 0; k < t.counts[i]; k++) sum += input[from + k * stride] * t.weights[w + k];
      output[outBase + i * stride] = sum >= top ? 255 : sum <= 0 ? 0 : sum >> PIL_PRECISION_BITS;
    }
  }
}

/**
 * PIL's `Image.resize((width, height), Image.BILINEAR)` of an 8-bit image, bit for bit: what
 * torchvision's `Resize` does to a PIL image (with or without `antialias`, PIL always
 * antialiases). Two passes, rows first, then columns, each rounded to bytes as Pillow does:
 * the intermediate rounding is part of the answer. A pass is skipped when its axis keeps
 * its size. Unlike {@link resizeBilinear}, shrinking averages every covered input pixel
 * instead of sampling two.
 *
 * @example Shrinking by 2: each output pixel weighs three inputs (a triangle twice as wide)
 * ```ts
 * import assert from "node:assert/strict";
 * import { resizeBilinearAntialias } from "./transforms.ts";
 *
 * const image = { data: Uint8Array.from([0, 100, 200, 255]), channels: 1, height: 1, width: 4 };
 * // PIL: Image.fromarray(np.uint8([[0, 100, 200, 255]])).resize((2, 1), Image.BILINEAR)
 * // (0 * 3 + 100 * 3 + 200 * 1) / 7 = 71.4 and (100 * 1 + 200 * 3 + 255 * 3) / 7 = 209.3
 * assert.deepEqual([...resizeBilinearAntialias(image, 1, 2).data], [71, 209]);
 * ```
 */
export function resizeBilinearAntialias(
  image: ImageCHW<Uint8Array>,
  height: number,
  width: number,
): ImageCHW<Uint8Array> {
  if (!(height >= 1 && width >= 1 && Number.isInteger(height) && Number.isInteger(width))) {
    throw new RangeError(
      `resizeBilinearAntialias: size must be positive integers, got ${height}x${width}`,
    );
  }
  if (!(image.data instanceof Uint8Array)) {
    throw new TypeError("resizeBilinearAntialias: needs a uint8 image (PIL's 8-bit resampling)");
  }
  const { channels, height: inH, width: inW } = image;
  let data = image.data, rowLength = inW;
  if (width !== inW) {
    const rows = new Uint8Array(channels * inH * width);
    pilPass(data, rows, channels * inH, inW, width, 1, width, pilBilinearTaps(inW, width));
    data = rows;
    rowLength = width;
  }
  if (height !== inH) {
    const out = new Uint8Array(channels * height * rowLength);
    const taps = pilBilinearTaps(inH, height);
    for (let c = 0; c < channels; c++) {
      const inPlane = data.subarray(c * inH * rowLength, (c + 1) * inH * rowLength);
      const outPlane = out.subarray(c * height * rowLength, (c + 1) * height * rowLength);
      pilPass(inPlane, outPlane, rowLength, 1, 1, rowLength, height, taps);
    }
    data = out;
  }
  if (data === image.data) data = new Uint8Array(data);
  return { data, channels, height, width };
}
