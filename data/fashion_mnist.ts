/**
 * Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; Zalando, MIT license): 60,000 training and
 * 10,000 test grayscale 28x28 images in 10 classes, stored as four gzipped IDX files.
 *
 * {@link loadFashionMnist} looks in this order and uses the first folder that has all four
 * files:
 *
 * 1. an explicit `dir`; if given it must be complete, there is no fallback;
 * 2. `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist` package);
 * 3. the cache, `$XDG_CACHE_HOME/tessera/fashion-mnist` or `~/.cache/tessera/fashion-mnist`,
 *    which {@link downloadFashionMnist} fills;
 * 4. in a checkout of the repository only, the balanced subset committed at
 *    `data/fashion-mnist/` (1000 training and 200 test images per class, built by
 *    `data/make_subset.ts`), so examples and tests run offline; the published package leaves
 *    these 5 MB out;
 * 5. with `download: true`, the official files, downloaded into the cache with their SHA-256
 *    checked.
 *
 * ```ts
 * import { loadFashionMnist } from "./mod.ts";
 *
 * // Reads the system copy or the cache, else downloads (about 30 MB, checked) into the cache.
 * const { train, test, kind } = await loadFashionMnist({ download: true });
 * console.log(kind, train.shape, test.shape); // e.g. "cache" [60000, 1, 28, 28] [10000, 1, 28, 28]
 * ```
 *
 * Permissions: `--allow-read` for the folders searched, `--allow-env=XDG_CACHE_HOME,HOME` to
 * find the cache, and to download `--allow-net=fashion-mnist.s3-website.eu-central-1.amazonaws.com`
 * and `--allow-write` for the cache folder.
 *
 * @module
 */

import { writeFileAtomic } from "../io/atomic.ts";
import type { ImageDataset } from "./dataset.ts";
import { checkOptions, declareOptions } from "../tensor/options.ts";

const LOAD_KEYS = declareOptions<LoadFashionMnistOptions>()("loadFashionMnist", [
  "dir",
  "systemDir",
  "cacheDir",
  "allowBuiltin",
  "download",
]);
const DOWNLOAD_KEYS = declareOptions<DownloadOptions>()("downloadFashionMnist", [
  "baseUrl",
  "cacheDir",
  "sha256",
  "force",
  "fetch",
]);
import { validateDataset } from "./dataset.ts";
import { readIdxFile } from "./idx.ts";

/** The ten class names, in label order (Fashion-MNIST README). */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

/** The four official file names. */
export const FASHION_MNIST_FILES = {
  trainImages: "train-images-idx3-ubyte.gz",
  trainLabels: "train-labels-idx1-ubyte.gz",
  testImages: "t10k-images-idx3-ubyte.gz",
  testLabels: "t10k-labels-idx1-ubyte.gz",
} as const;

/**
 * SHA-256 of the four official files, computed from Debian's `dataset-fashion-mnist`, which
 * ships the files published by Zalando byte for byte.
 */
export const FASHION_MNIST_SHA256: Readonly<Record<string, string>> = {
  "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
  "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
  "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
  "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
};

/** Where the official files are published (the Fashion-MNIST README's download links). */
export const FASHION_MNIST_URL = "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

/** Debian's install location for the full set. */
export const FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist";

/**
 * The balanced subset committed to the repository, resolved relative to this module. It is
 * read only from a local checkout (a `file:` URL); a package imported over the network does
 * not carry it.
 */
export const FASHION_MNIST_BUILTIN_DIR: string = fromFileUrl(
  new URL("./fashion-mnist/", import.meta.url),
);

/** One split of Fashion-MNIST: uint8 images `[N, 1, 28, 28]`, labels and class names. */
export type FashionMnistDataset = ImageDataset;

/** Options of {@link loadFashionMnist}. */
export interface LoadFashionMnistOptions {
  /** A folder with the four files. When set, it is the only place looked at. */
  dir?: string;
  /** Override of the system folder; default {@link FASHION_MNIST_SYSTEM_DIR}. */
  systemDir?: string;
  /** Override of the cache folder; default {@link defaultCacheDir}. */
  cacheDir?: string;
  /** Whether the committed subset (in a repository checkout) may be used; default true. */
  allowBuiltin?: boolean;
  /**
   * When no folder has the files, download them into the cache (SHA-256 checked) instead of
   * throwing; `true` or the options of {@link downloadFashionMnist}. Default false.
   */
  download?: boolean | DownloadOptions;
}

/** What {@link loadFashionMnist} returns. */
export interface FashionMnist {
  /** Training split. */
  train: FashionMnistDataset;
  /** Test split. */
  test: FashionMnistDataset;
  /** The folder the files were read from. */
  source: string;
  /** Which search step found them. */
  kind: "dir" | "system" | "cache" | "builtin";
}

/**
 * `$XDG_CACHE_HOME/tessera/fashion-mnist`, else `$HOME/.cache/tessera/fashion-mnist`; undefined
 * when neither variable is readable (no `--allow-env`) or set.
 */
export function defaultCacheDir(): string | undefined {
  const env = (name: string): string | undefined => {
    try {
      return Deno.env.get(name) || undefined;
    } catch {
      return undefined;
    }
  };
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/tessera/fashion-mnist`;
  const home = env("HOME");
  return home ? `${home}/.cache/tessera/fashion-mnist` : undefined;
}

/** Thrown by {@link exists} when the path may not be read (no `--allow-read` for it). */
class NoReadAccess extends Error {}

/** Whether `path` exists; a missing read permission is a {@link NoReadAccess}. */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return false;
    }
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw new NoReadAccess(`no read access to ${path}`, { cause: error });
    }
    throw error;
  }
}

/** The files `dir` lacks. */
async function missingFiles(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (const file of Object.values(FASHION_MNIST_FILES)) {
    if (!(await exists(`${dir}/${file}`))) missing.push(file);
  }
  return missing;
}

/** The files `dir` lacks, or "no access" when the permissions do not allow looking. */
async function probe(dir: string): Promise<string[] | "no access"> {
  try {
    return await missingFiles(dir);
  } catch (error) {
    if (error instanceof NoReadAccess) return "no access";
    throw error;
  }
}

/**
 * Loads Fashion-MNIST's training and test splits from the first complete folder among:
 * `options.dir` (only that folder, when given), the system copy
 * ({@link FASHION_MNIST_SYSTEM_DIR}), the cache ({@link defaultCacheDir}), the subset
 * committed to the repository (in a local checkout), and, with `download: true`, a fresh
 * download into the cache. Throws a message listing the folders searched and the ways to
 * get the data when none has all four files.
 *
 * @example Load the data and check what came back
 * ```ts
 * import assert from "node:assert/strict";
 * import { FASHION_MNIST_CLASSES, loadFashionMnist } from "./mod.ts";
 *
 * const { train, test, kind, source } = await loadFashionMnist();
 * console.log(`Fashion-MNIST from ${kind}: ${source}`);
 * assert.deepEqual(train.shape.slice(1), [1, 28, 28]); // [N, 1, 28, 28] uint8 pixels
 * assert.equal(train.labels.length, train.shape[0]);
 * assert.deepEqual(test.classNames, FASHION_MNIST_CLASSES);
 * ```
 */
export async function loadFashionMnist(
  options?: LoadFashionMnistOptions,
): Promise<FashionMnist> {
  options = checkOptions("loadFashionMnist", options, LOAD_KEYS);
  if (options.dir !== undefined) {
    const missing = await probe(options.dir);
    if (missing === "no access") {
      throw new Error(
        `loadFashionMnist: no read access to ${options.dir} (options.dir); grant it ` +
          `(deno run --allow-read=${options.dir}) or pass another folder`,
      );
    }
    if (missing.length > 0) {
      throw new Error(
        `loadFashionMnist: folder ${options.dir} (options.dir) lacks ${missing.join(", ")}; ` +
          `it needs all four files: ${Object.values(FASHION_MNIST_FILES).join(", ")}`,
      );
    }
    return { ...(await loadFolder(options.dir)), source: options.dir, kind: "dir" };
  }
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const candidates: [FashionMnist["kind"], string | undefined][] = [
    ["system", options.systemDir ?? FASHION_MNIST_SYSTEM_DIR],
    ["cache", cacheDir],
  ];
  const local = new URL(import.meta.url).protocol === "file:";
  if ((options.allowBuiltin ?? true) && local) {
    candidates.push(["builtin", FASHION_MNIST_BUILTIN_DIR]);
  }
  const tried: string[] = [];
  for (const [kind, dir] of candidates) {
    if (dir === undefined) continue;
    const missing = await probe(dir);
    tried.push(missing === "no access" ? `${dir} (not readable: no read permission)` : dir);
    if (missing !== "no access" && missing.length === 0) {
      return { ...(await loadFolder(dir)), source: dir, kind };
    }
  }
  if (options.download) {
    const download = options.download === true ? {} : options.download;
    const dir = await downloadFashionMnist({ cacheDir, ...download });
    return { ...(await loadFolder(dir)), source: dir, kind: "cache" };
  }
  const noCache = cacheDir === undefined
    ? " (no cache folder: neither XDG_CACHE_HOME nor HOME could be read; allow env access " +
      "to them or pass { cacheDir })"
    : "";
  throw new Error(
    `loadFashionMnist: no folder has the four Fashion-MNIST files; looked in ` +
      `${tried.join(", ")}${noCache}. Pass { download: true } to download them into the ` +
      `cache (about 30 MB, SHA-256 checked), call downloadFashionMnist(), install Debian's ` +
      `dataset-fashion-mnist, or pass { dir } naming a folder that has them.`,
  );
}

async function loadFolder(dir: string): Promise<{ train: ImageDataset; test: ImageDataset }> {
  const [train, test] = await Promise.all([
    loadSplit(
      `${dir}/${FASHION_MNIST_FILES.trainImages}`,
      `${dir}/${FASHION_MNIST_FILES.trainLabels}`,
    ),
    loadSplit(
      `${dir}/${FASHION_MNIST_FILES.testImages}`,
      `${dir}/${FASHION_MNIST_FILES.testLabels}`,
    ),
  ]);
  return { train, test };
}

/** Loads one split from an images IDX file `[N, 28, 28]` and a labels IDX file `[N]`. */
export async function loadSplit(imagesPath: string, labelsPath: string): Promise<ImageDataset> {
  const [images, labels] = await Promise.all([readIdxFile(imagesPath), readIdxFile(labelsPath)]);
  if (images.dtype !== "uint8" || images.dims.length !== 3) {
    throw new Error(
      `${imagesPath}: expected uint8 images [N, H, W], found ${images.dtype} [${images.dims}]`,
    );
  }
  if (labels.dtype !== "uint8" || labels.dims.length !== 1) {
    throw new Error(
      `${labelsPath}: expected uint8 labels [N], found ${labels.dtype} [${labels.dims}]`,
    );
  }
  const [n, height, width] = images.dims;
  if (labels.dims[0] !== n) {
    throw new Error(
      `${labelsPath}: expected ${n} labels to match ${imagesPath}, found ${labels.dims[0]}`,
    );
  }
  const dataset: ImageDataset = {
    images: images.data as Uint8Array,
    shape: [n, 1, height, width],
    labels: Int32Array.from(labels.data),
    classNames: [...FASHION_MNIST_CLASSES],
  };
  validateDataset(dataset, labelsPath);
  return dataset;
}

/** Options of {@link downloadFashionMnist}. */
export interface DownloadOptions {
  /** Base URL the four file names are appended to; default {@link FASHION_MNIST_URL}. */
  baseUrl?: string;
  /** Destination folder; default {@link defaultCacheDir}. */
  cacheDir?: string;
  /** Expected SHA-256 per file name; default {@link FASHION_MNIST_SHA256}. */
  sha256?: Readonly<Record<string, string>>;
  /** Re-download files that are already present and verified; default false. */
  force?: boolean;
  /** The fetch to use (tests may inject one); default `globalThis.fetch`. */
  fetch?: typeof fetch;
}

/** Lowercase hex SHA-256 of `bytes`. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Downloads the four official files, verifies each SHA-256 before it is stored, and writes
 * them atomically into the cache folder (so a failed or corrupted download never leaves a
 * file that a later {@link loadFashionMnist} would trust). Files already present with the
 * right hash are kept. Returns the folder.
 */
export async function downloadFashionMnist(options?: DownloadOptions): Promise<string> {
  options = checkOptions("downloadFashionMnist", options, DOWNLOAD_KEYS);
  const baseUrl = options.baseUrl ?? FASHION_MNIST_URL;
  const dir = options.cacheDir ?? defaultCacheDir();
  if (dir === undefined) {
    throw new Error(
      "downloadFashionMnist: no cacheDir given and neither XDG_CACHE_HOME nor HOME is set",
    );
  }
  const hashes = options.sha256 ?? FASHION_MNIST_SHA256;
  const doFetch = options.fetch ?? fetch;
  await Deno.mkdir(dir, { recursive: true });
  for (const file of Object.values(FASHION_MNIST_FILES)) {
    const expected = hashes[file];
    if (expected === undefined) {
      throw new Error(`downloadFashionMnist: no SHA-256 known for ${file}`);
    }
    const target = `${dir}/${file}`;
    if (!options.force && (await exists(target))) {
      if ((await sha256Hex(await Deno.readFile(target))) === expected) continue;
    }
    const url = new URL(file, baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`).href;
    const response = await doFetch(url);
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(
        `downloadFashionMnist: ${url}: HTTP ${response.status} ${response.statusText}`,
      );
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    const actual = await sha256Hex(bytes);
    if (actual !== expected) {
      throw new Error(
        `downloadFashionMnist: ${url}: SHA-256 mismatch, expected ${expected}, got ${actual} ` +
          `(${bytes.length} bytes); not stored`,
      );
    }
    await writeFileAtomic(target, bytes);
  }
  return dir;
}

function fromFileUrl(url: URL): string {
  if (url.protocol !== "file:") return url.href;
  return decodeURIComponent(url.pathname).replace(/\/$/, "");
}
