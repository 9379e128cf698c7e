/**
 * ImageFolder: a root folder with one subfolder per class holding JPEG or PNG files (the
 * ImageNet training layout). Class names are the subfolder names, sorted; labels follow that
 * order.
 *
 * The paper preprocessed offline (section 2): every image is rescaled so its shorter side is
 * 256, then the central 256x256 patch is cut out. {@link loadImageFolder} does that once,
 * streaming the result into a shard, and later runs read the shard instead of decoding
 * again. The shard folder holds three files:
 *
 * - `images.u8`: uint8 pixels `[N, 3, S, S]` (NCHW, RGB, row-major), no header;
 * - `mean.f32`: the mean image `[3, S, S]`, float32 little-endian, 0..255 units;
 * - `index.json`: format and version, S, class names, labels, the source file of every image,
 *   the size and mtime of every candidate file (the staleness check), skipped files, and the
 *   RGB statistics: mean, 3x3 covariance, eigenvalues and eigenvectors (RGB in [0, 1]).
 *
 * `index.json` is written last, and removed before a rebuild starts, so it marks a complete
 * shard; each file is written through a temporary file and renamed (atomic). A build that
 * fails removes what it wrote, and the shard folder too if the build created it.
 *
 * Differences from torchvision's `ImageFolder`, each on purpose:
 *
 * - EXIF orientation is applied before resizing and cropping (see `exif.ts`), so a phone photo
 *   stored sideways with Orientation 6 is trained upright; torchvision's default loader
 *   ignores it.
 * - Symbolic links to class folders, subfolders and files are followed, as torchvision does
 *   (`os.scandir` and `os.walk(followlinks=True)`), but a link back to a folder that is being
 *   walked (a loop) is not followed: its files are already listed through that folder, and
 *   torchvision would recurse until the path is too long.
 * - Every class must end up with at least one image: a class folder without image files, or
 *   one whose files were all skipped by `skipBad`, is an error that names it (an empty class
 *   would keep an output unit that no example ever trains).
 *
 * The file is one pipeline, read top to bottom: scan the folder, decode and preprocess each
 * image, stream the shard and its statistics, read it back. The shard's writer and reader sit
 * together because they must agree on every field of `index.json`.
 *
 * @module
 */

import { removeStaleTempsOf, writeFileAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { decodeJpegImagescript, decodePng, isJpeg, isPng } from "./codecs.ts";
import { checkImage, type ImageCHW, type ImageDataset, validateDataset } from "./dataset.ts";
import { checkArgument, checkOptions, declareOptions } from "../tensor/options.ts";
import { applyOrientation, exifOrientation } from "./exif.ts";
import { decodeJpeg, JpegError } from "./jpeg.ts";
import { sha256Hex } from "./fashion_mnist.ts";
import { centerCrop, type Eigen3, jacobiEigen, resizeShorterSide, toUint8 } from "./transforms.ts";

/**
 * Shard format version; bump when the layout or preprocessing changes (2: EXIF orientation;
 * 3: JPEGs decoded by `jpeg.ts`, to PIL's pixels, instead of imagescript).
 */
export const SHARD_VERSION = 3;

const IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png"];

/** Training-set statistics saved with a shard. */
export interface ImageStats {
  /** Per-pixel mean image `[3, S, S]`, 0..255 units (section 2). */
  meanImage: Float32Array;
  /** Mean RGB, [0, 1] units. */
  rgbMean: [number, number, number];
  /** 3x3 covariance of RGB values over all pixels of all images, [0, 1] units. */
  rgbCovariance: number[][];
  /** Its eigen-decomposition (section 4.1's p_i and l_i). */
  eigen: Eigen3;
}

/** A file left out by `skipBad`, and why. */
export interface SkippedFile {
  /** Path relative to the root. */
  file: string;
  /** What was wrong with it. */
  reason: string;
}

/** A preprocessed ImageFolder: uint8 `[N, 3, S, S]` plus provenance and statistics. */
export interface ImageFolderDataset extends ImageDataset {
  /** Source file of each image, relative to the root. */
  files: string[];
  /** Mean image and RGB PCA over this set. */
  stats: ImageStats;
  /** Files left out by `skipBad`. */
  skipped: SkippedFile[];
  /** Number of files with other extensions that were ignored. */
  ignored: number;
  /** True when the shard was read from disk instead of being built. */
  fromCache: boolean;
  /** Number of images decoded by this call (0 when read from the shard). */
  decoded: number;
  /** The folder holding the shard. */
  shardDir: string;
}

const IMAGE_FOLDER_KEYS = declareOptions<ImageFolderOptions>()("loadImageFolder", [
  "size",
  "shardDir",
  "skipBad",
  "rebuild",
  "onProgress",
]);

/** Options of {@link loadImageFolder}. */
export interface ImageFolderOptions {
  /** Shorter side and center crop, S; 256 (section 2). */
  size?: number;
  /** Where the shard goes; default `$XDG_CACHE_HOME/tessera/image-folder/<root name>-<hash>`. */
  shardDir?: string;
  /** Skip undecodable files instead of failing; each is reported in `skipped`. Default false. */
  skipBad?: boolean;
  /** Rebuild even if a fresh shard exists; default false. */
  rebuild?: boolean;
  /** Called after each decoded image. */
  onProgress?: (done: number, total: number) => void;
}

/** A candidate image file found by {@link scanImageFolder}. */
export interface SourceEntry {
  /** Path relative to the root, `class/.../name.ext`. */
  file: string;
  /** Size in bytes (part of the staleness check). */
  size: number;
  /** Modification time in ms since the epoch (part of the staleness check). */
  mtime: number;
  /** Class index. */
  label: number;
}

interface ShardIndex {
  format: "tessera-image-folder";
  version: number;
  size: number;
  layout: "NCHW uint8 RGB";
  count: number;
  classNames: string[];
  labels: number[];
  files: string[];
  sources: { file: string; size: number; mtime: number }[];
  skipped: SkippedFile[];
  ignored: number;
  rgbMean: [number, number, number];
  rgbCovariance: number[][];
  eigen: Eigen3;
}

function hasImageExtension(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/** What an entry is once symbolic links are followed; "broken" for a link to nothing. */
async function kindOf(
  path: string,
  entry: Deno.DirEntry,
): Promise<"dir" | "file" | "broken" | "other"> {
  if (!entry.isSymlink) return entry.isDirectory ? "dir" : entry.isFile ? "file" : "other";
  try {
    const info = await Deno.stat(path);
    return info.isDirectory ? "dir" : info.isFile ? "file" : "other";
  } catch {
    return "broken";
  }
}

/**
 * Lists image files under `dir`, sorted, following symbolic links; `ancestors` holds the real
 * paths of the folders being walked, so a link back to one of them is not followed.
 */
async function walk(
  dir: string,
  prefix: string,
  out: { files: string[]; ignored: number },
  ancestors: Set<string>,
) {
  const entries: Deno.DirEntry[] = [];
  for await (const entry of Deno.readDir(dir)) if (!entry.name.startsWith(".")) entries.push(entry);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = `${dir}/${entry.name}`;
    const rel = `${prefix}/${entry.name}`;
    const kind = await kindOf(path, entry);
    if (kind === "dir") {
      const real = await Deno.realPath(path);
      if (ancestors.has(real)) continue;
      ancestors.add(real);
      await walk(path, rel, out, ancestors);
      ancestors.delete(real);
    } else if (kind !== "other" && hasImageExtension(entry.name)) {
      // A broken link is listed: reading it fails later with its name (or skipBad skips it).
      out.files.push(rel);
    } else out.ignored++;
  }
}

/**
 * Lists the classes and candidate image files under `root`. Throws, naming the folder, if
 * there are no class folders or a class folder has no JPEG or PNG files.
 */
export async function scanImageFolder(root: string): Promise<{
  classNames: string[];
  sources: SourceEntry[];
  ignored: number;
}> {
  let rootInfo: Deno.FileInfo;
  try {
    rootInfo = await Deno.stat(root);
  } catch (error) {
    throw new Error(`ImageFolder: cannot read root folder ${root} (${(error as Error).message})`);
  }
  if (!rootInfo.isDirectory) throw new Error(`ImageFolder: ${root} is not a folder`);
  const classNames: string[] = [];
  for await (const entry of Deno.readDir(root)) {
    if (entry.name.startsWith(".")) continue;
    if (await kindOf(`${root}/${entry.name}`, entry) === "dir") classNames.push(entry.name);
  }
  classNames.sort();
  if (classNames.length === 0) {
    throw new Error(`ImageFolder: ${root} has no class folders (expected one subfolder per class)`);
  }
  const sources: SourceEntry[] = [];
  let ignored = 0;
  const realRoot = await Deno.realPath(root);
  for (let label = 0; label < classNames.length; label++) {
    const found = { files: [] as string[], ignored: 0 };
    const classDir = `${root}/${classNames[label]}`;
    const ancestors = new Set([realRoot, await Deno.realPath(classDir)]);
    await walk(classDir, classNames[label], found, ancestors);
    ignored += found.ignored;
    if (found.files.length === 0) {
      throw new Error(
        `ImageFolder: class folder ${root}/${classNames[label]} has no images (.jpg, .jpeg, .png)`,
      );
    }
    for (const file of found.files) {
      // lstat for a broken link: its own size and mtime still tell when it changes.
      const info = await Deno.stat(`${root}/${file}`).catch(() => Deno.lstat(`${root}/${file}`));
      sources.push({ file, size: info.size, mtime: info.mtime?.getTime() ?? 0, label });
    }
  }
  return { classNames, sources, ignored };
}

/** What {@link scanImageFolder} finds: the classes, the candidate files, the ignored count. */
type FolderScan = Awaited<ReturnType<typeof scanImageFolder>>;

/**
 * Checks that `bytes` are a complete JPEG or PNG, returning what is wrong or undefined. PNG
 * chunks are walked to IEND because the decoder accepts some truncated PNGs silently.
 */
export function imageProblem(bytes: Uint8Array): string | undefined {
  checkArgument("imageProblem", "bytes", bytes, "bytes");
  if (isJpeg(bytes)) return undefined;
  if (!isPng(bytes)) {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
    return `not a JPEG or PNG (starts with ${head || "nothing"}, ${bytes.length} bytes)`;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8;
  while (at + 8 <= bytes.length) {
    const length = view.getUint32(at, false);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    at += 12 + length;
    if (at > bytes.length) return `truncated PNG: chunk ${type} runs past the end of the file`;
    if (type === "IEND") return undefined;
  }
  return "truncated PNG: no IEND chunk";
}

/**
 * Decodes a JPEG (to the pixels PIL gives, see `jpeg.ts`) or a PNG into an RGB CHW uint8
 * image, turned upright by its EXIF orientation (see `exif.ts`); errors name `name`. A CMYK
 * JPEG (a few ImageNet photos are) is outside `jpeg.ts`'s exact decoder and goes to
 * imagescript's, whose pixels may differ from PIL's by a few levels.
 */
export async function decodeImage(bytes: Uint8Array, name: string): Promise<ImageCHW<Uint8Array>> {
  const problem = imageProblem(bytes);
  if (problem) throw new Error(`${name}: ${problem}`);
  let stored: ImageCHW<Uint8Array>;
  if (isJpeg(bytes)) {
    try {
      stored = decodeJpeg(bytes, name); // as PIL decodes it (libjpeg-turbo's arithmetic)
    } catch (error) {
      if (!(error instanceof JpegError && /4-component/.test(error.message))) throw error;
      stored = await decodeJpegImagescript(bytes);
    }
  } else {
    try {
      stored = await decodePng(bytes);
    } catch (error) {
      throw new Error(`${name}: cannot decode (${(error as Error).message})`);
    }
  }
  return applyOrientation(stored, exifOrientation(bytes));
}

/**
 * The paper's offline preprocessing (section 2): shorter side to `size` (bilinear), then the
 * central `size` x `size` crop, rounded to bytes.
 */
export function preprocess(image: ImageCHW, size: number): ImageCHW<Uint8Array> {
  checkImage("preprocess", image);
  return toUint8(centerCrop(resizeShorterSide(image, size), size));
}

function defaultShardDir(absRoot: string, hash: string): string {
  const env = (name: string) => {
    try {
      return Deno.env.get(name) || undefined;
    } catch {
      return undefined;
    }
  };
  const base = env("XDG_CACHE_HOME") ?? (env("HOME") ? `${env("HOME")}/.cache` : undefined);
  if (base === undefined) {
    throw new Error("ImageFolder: no shardDir given and neither XDG_CACHE_HOME nor HOME is set");
  }
  const name = absRoot.split("/").filter(Boolean).pop() ?? "root";
  return `${base}/tessera/image-folder/${name}-${hash.slice(0, 16)}`;
}

/**
 * Loads an ImageFolder (one subfolder per class of JPEG or PNG files). On first use every
 * image is decoded, rescaled so its shorter side is `size` (256) and centre-cropped, as the
 * paper did offline (section 2), and the pixels, the mean image and the RGB statistics are
 * written to a shard; later calls read the shard. The shard is rebuilt when the size, the
 * format version or the list of files (name, size, mtime) changed.
 */
export async function loadImageFolder(
  root: string,
  options?: ImageFolderOptions,
): Promise<ImageFolderDataset> {
  options = checkOptions("loadImageFolder", options, IMAGE_FOLDER_KEYS);
  const size = options.size ?? 256;
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`loadImageFolder: size must be a positive integer, got ${size}`);
  }
  const scan = await scanImageFolder(root);
  const absRoot = await Deno.realPath(root);
  const shardDir = options.shardDir ??
    defaultShardDir(absRoot, await sha256Hex(new TextEncoder().encode(`${absRoot}\n${size}`)));
  if (!options.rebuild) {
    const cached = await readShard(shardDir, size, scan);
    if (cached !== undefined) return cached;
  }
  return await buildShard(root, shardDir, size, scan, options);
}

function sameSources(index: ShardIndex, sources: SourceEntry[]): boolean {
  return index.sources.length === sources.length &&
    index.sources.every((s, i) =>
      s.file === sources[i].file && s.size === sources[i].size && s.mtime === sources[i].mtime
    );
}

async function readShard(
  shardDir: string,
  size: number,
  scan: FolderScan,
): Promise<ImageFolderDataset | undefined> {
  let index: ShardIndex;
  try {
    index = JSON.parse(await Deno.readTextFile(`${shardDir}/index.json`));
  } catch {
    return undefined;
  }
  try {
    if (
      index.format !== "tessera-image-folder" || index.version !== SHARD_VERSION ||
      index.size !== size ||
      index.classNames.join("\n") !== scan.classNames.join("\n") ||
      !sameSources(index, scan.sources)
    ) return undefined;
  } catch {
    return undefined; // an index of another shape: rebuild
  }
  const images = await Deno.readFile(`${shardDir}/images.u8`);
  const pixels = 3 * size * size;
  if (images.length !== index.count * pixels) {
    throw new Error(
      `${shardDir}/images.u8: expected ${
        index.count * pixels
      } bytes for [${index.count}, 3, ${size}, ${size}], ` +
        `found ${images.length}; delete the folder to rebuild`,
    );
  }
  const meanBytes = await Deno.readFile(`${shardDir}/mean.f32`);
  if (meanBytes.length !== 4 * pixels) {
    throw new Error(
      `${shardDir}/mean.f32: expected ${4 * pixels} bytes, found ${meanBytes.length}`,
    );
  }
  return {
    images,
    shape: [index.count, 3, size, size],
    labels: Int32Array.from(index.labels),
    classNames: index.classNames,
    files: index.files,
    stats: {
      meanImage: readFloat32LE(meanBytes),
      rgbMean: index.rgbMean,
      rgbCovariance: index.rgbCovariance,
      eigen: index.eigen,
    },
    skipped: index.skipped,
    ignored: index.ignored,
    fromCache: true,
    decoded: 0,
    shardDir,
  };
}

async function buildShard(
  root: string,
  shardDir: string,
  size: number,
  scan: FolderScan,
  options: ImageFolderOptions,
): Promise<ImageFolderDataset> {
  const existed = await Deno.stat(shardDir).then(() => true, () => false);
  await Deno.mkdir(shardDir, { recursive: true });
  try {
    return await writeShard(root, shardDir, size, scan, options);
  } catch (error) {
    // No debris: an index-less shard is never read, and a folder made for it is removed.
    for (const name of ["index.json", "images.u8", "mean.f32"]) {
      await Deno.remove(`${shardDir}/${name}`).catch(() => {});
    }
    if (!existed) await Deno.remove(shardDir).catch(() => {});
    throw error;
  }
}

async function readSource(root: string, file: string): Promise<ImageCHW<Uint8Array>> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(`${root}/${file}`);
  } catch (error) {
    const broken = await Deno.lstat(`${root}/${file}`).then((i) => i.isSymlink, () => false);
    throw new Error(
      `${root}/${file}: cannot read (${
        broken ? "a symbolic link to nothing" : (error as Error).message
      })`,
    );
  }
  return await decodeImage(bytes, `${root}/${file}`);
}

async function writeShard(
  root: string,
  shardDir: string,
  size: number,
  scan: FolderScan,
  options: ImageFolderOptions,
): Promise<ImageFolderDataset> {
  await Deno.remove(`${shardDir}/index.json`).catch(() => {});
  // A build killed mid-way left its pixels in a temp file, possibly gigabytes: remove it.
  await removeStaleTempsOf(`${shardDir}/images.u8`);
  const temp = `${shardDir}/.images.u8.${crypto.randomUUID()}.tmp`;
  const { files, labels, skipped, sums } = await writePixels(temp, root, size, scan, options);
  const count = files.length;
  try {
    checkEveryClassHasImages(root, scan.classNames, labels, skipped);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  await Deno.rename(temp, `${shardDir}/images.u8`);

  const { meanImage, rgbMean, rgbCovariance } = sums.statistics(count);
  const eigen = jacobiEigen(rgbCovariance);
  await writeFileAtomic(`${shardDir}/mean.f32`, float32LE(meanImage));
  const index: ShardIndex = {
    format: "tessera-image-folder",
    version: SHARD_VERSION,
    size,
    layout: "NCHW uint8 RGB",
    count,
    classNames: scan.classNames,
    labels,
    files,
    sources: scan.sources.map(({ file, size, mtime }) => ({ file, size, mtime })),
    skipped,
    ignored: scan.ignored,
    rgbMean,
    rgbCovariance,
    eigen,
  };
  await writeTextFileAtomic(`${shardDir}/index.json`, JSON.stringify(index));
  return {
    images: await Deno.readFile(`${shardDir}/images.u8`),
    shape: [count, 3, size, size],
    labels: Int32Array.from(labels),
    classNames: scan.classNames,
    files,
    stats: { meanImage, rgbMean, rgbCovariance, eigen },
    skipped,
    ignored: scan.ignored,
    fromCache: false,
    decoded: count,
    shardDir,
  };
}

/**
 * Decodes and preprocesses every source image in order, appending its pixels to `temp` and
 * adding them to the running sums. Bad files are skipped (with `skipBad`) or fail the build;
 * on failure, or when no image survives, `temp` is removed.
 */
async function writePixels(
  temp: string,
  root: string,
  size: number,
  scan: FolderScan,
  options: ImageFolderOptions,
): Promise<{ files: string[]; labels: number[]; skipped: SkippedFile[]; sums: PixelSums }> {
  const sums = new PixelSums(size);
  const files: string[] = [];
  const labels: number[] = [];
  const skipped: SkippedFile[] = [];
  const out = await Deno.open(temp, { write: true, create: true, truncate: true });
  try {
    for (let i = 0; i < scan.sources.length; i++) {
      const { file, label } = scan.sources[i];
      let image: ImageCHW<Uint8Array>;
      try {
        image = preprocess(await readSource(root, file), size);
      } catch (error) {
        if (!options.skipBad) throw error;
        skipped.push({ file, reason: (error as Error).message.replace(`${root}/${file}: `, "") });
        continue;
      }
      sums.add(image.data);
      let written = 0;
      while (written < image.data.length) written += await out.write(image.data.subarray(written));
      files.push(file);
      labels.push(label);
      options.onProgress?.(i + 1, scan.sources.length);
    }
    await out.sync();
  } catch (error) {
    out.close();
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  out.close();
  if (files.length === 0) {
    await Deno.remove(temp).catch(() => {});
    throw new Error(`ImageFolder: no decodable images under ${root} (${skipped.length} skipped)`);
  }
  return { files, labels, skipped, sums };
}

/** Throws, naming the classes and a sample skipped file, if any class kept no image. */
function checkEveryClassHasImages(
  root: string,
  classNames: string[],
  labels: number[],
  skipped: SkippedFile[],
): void {
  const perClass = new Array(classNames.length).fill(0);
  for (const label of labels) perClass[label]++;
  const empty = classNames.filter((_, label) => perClass[label] === 0);
  if (empty.length === 0) return;
  const first = skipped.find((s) => s.file.startsWith(`${empty[0]}/`));
  throw new Error(
    `ImageFolder: class${empty.length > 1 ? "es" : ""} ${
      empty.map((name) => `"${name}"`).join(", ")
    } under ${root} ha${
      empty.length > 1 ? "ve" : "s"
    } no decodable images: every file was skipped` +
      (first ? ` (e.g. ${first.file}: ${first.reason})` : "") +
      `; fix or remove those files, or remove the class folder`,
  );
}

/**
 * The statistics of {@link ImageStats} (mean image, RGB covariance and its eigen-decomposition)
 * of a subset of images `[N, 3, S, S]`, e.g. the training split only, so that no validation or
 * test image shapes the mean image or the PCA colour augmentation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { datasetStats } from "./image_folder.ts";
 *
 * // Two 2x2 RGB images: one black, one white (the training split, say).
 * const images = Uint8Array.from([...new Array(12).fill(0), ...new Array(12).fill(255)]);
 * const labels = Int32Array.of(0, 1);
 * const stats = datasetStats({ images, shape: [2, 3, 2, 2], labels, classNames: ["a", "b"] });
 * assert.deepEqual([...stats.meanImage], new Array(12).fill(127.5));
 * assert.ok(Math.abs(stats.rgbCovariance[0][1] - 0.25) < 1e-12); // (1/2)(1/2), in [0, 1] units
 * ```
 */
export function datasetStats(dataset: ImageDataset): ImageStats {
  validateDataset(dataset, "datasetStats");
  const [n, c, h, w] = dataset.shape;
  if (c !== 3 || h !== w || n === 0) {
    throw new RangeError(
      `datasetStats: expected [N, 3, S, S] RGB images with N > 0, got [${dataset.shape}]`,
    );
  }
  const sums = new PixelSums(h);
  const plane = 3 * h * w;
  for (let i = 0; i < n; i++) sums.add(dataset.images.subarray(i * plane, (i + 1) * plane));
  const statistics = sums.statistics(n);
  return { ...statistics, eigen: jacobiEigen(statistics.rgbCovariance) };
}

/** Running sums over the shard's images: per-pixel (for the mean image) and per-RGB-triple. */
class PixelSums {
  readonly #plane: number;
  readonly #meanSum: Float64Array;
  /** Sums of r, g, b and of the six distinct products, over every pixel of every image. */
  readonly #rgbSum = new Float64Array(3);
  readonly #productSum = new Float64Array(9);

  constructor(size: number) {
    this.#plane = size * size;
    this.#meanSum = new Float64Array(3 * this.#plane);
  }

  /** Adds one preprocessed image `[3, S, S]`. */
  add(data: Uint8Array): void {
    const meanSum = this.#meanSum, rgbSum = this.#rgbSum, productSum = this.#productSum;
    const plane = this.#plane;
    for (let p = 0; p < meanSum.length; p++) meanSum[p] += data[p];
    for (let p = 0; p < plane; p++) {
      const r = data[p], g = data[plane + p], b = data[2 * plane + p];
      rgbSum[0] += r, rgbSum[1] += g, rgbSum[2] += b;
      productSum[0] += r * r, productSum[1] += r * g, productSum[2] += r * b;
      productSum[4] += g * g, productSum[5] += g * b, productSum[8] += b * b;
    }
  }

  /** The mean image (0..255 units) and the RGB mean and covariance (in [0, 1] units). */
  statistics(count: number): Omit<ImageStats, "eigen"> {
    const meanImage = new Float32Array(this.#meanSum.length);
    for (let p = 0; p < meanImage.length; p++) meanImage[p] = this.#meanSum[p] / count;
    const total = count * this.#plane;
    // Covariance in [0, 1] units: E[x x^T] - E[x] E[x]^T with x = rgb / 255.
    const rgbMean = Array.from(this.#rgbSum, (s) => s / total / 255) as [number, number, number];
    const rgbCovariance = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
    for (let i = 0; i < 3; i++) {
      for (let j = i; j < 3; j++) {
        const value = this.#productSum[3 * i + j] / total / (255 * 255) - rgbMean[i] * rgbMean[j];
        rgbCovariance[i][j] = rgbCovariance[j][i] = value;
      }
    }
    return { meanImage, rgbMean, rgbCovariance };
  }
}

function float32LE(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(4 * i, v, true));
  return bytes;
}

function readFloat32LE(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}
