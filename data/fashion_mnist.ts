/**
 * Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; Zalando, MIT license): 60,000 training and
 * 10,000 test grayscale 28x28 images in 10 classes, stored as four gzipped IDX files.
 *
 * {@link loadFashionMnist} looks in this order and uses the first folder that has all four
 * files:
 *
 * 1. an explicit `dir` (the `--data` flag); if given it must be complete, no fallback;
 * 2. `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist` package);
 * 3. the cache, `$XDG_CACHE_HOME/tessera/fashion-mnist` or `~/.cache/tessera/fashion-mnist`,
 *    which {@link downloadFashionMnist} fills;
 * 4. the balanced subset committed at `data/fashion-mnist/` (1000 training and 200 test
 *    images per class, built by `data/make_subset.ts`), so examples and tests run offline.
 *
 * @module
 */

import { writeFileAtomic } from "../io/atomic.ts";
import type { ImageDataset } from "./dataset.ts";
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

/** The committed balanced subset (resolved relative to this module, so it works anywhere). */
export const FASHION_MNIST_BUILTIN_DIR: string = fromFileUrl(
  new URL("./fashion-mnist/", import.meta.url),
);

/** One split of Fashion-MNIST: uint8 images `[N, 1, 28, 28]`, labels and class names. */
export type FashionMnistDataset = ImageDataset;

/** Options of {@link loadFashionMnist}. */
export interface LoadFashionMnistOptions {
  /** Explicit folder (the `--data` flag). When set, it is the only place looked at. */
  dir?: string;
  /** Override of the system folder; default {@link FASHION_MNIST_SYSTEM_DIR}. */
  systemDir?: string;
  /** Override of the cache folder; default {@link defaultCacheDir}. */
  cacheDir?: string;
  /** Whether the committed subset may be used as the last resort; default true. */
  allowBuiltin?: boolean;
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

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function missingFiles(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (const file of Object.values(FASHION_MNIST_FILES)) {
    if (!(await exists(`${dir}/${file}`))) missing.push(file);
  }
  return missing;
}

/** Loads Fashion-MNIST from the first complete folder in the search order (see module doc). */
export async function loadFashionMnist(
  options: LoadFashionMnistOptions = {},
): Promise<FashionMnist> {
  if (options.dir !== undefined) {
    const missing = await missingFiles(options.dir);
    if (missing.length > 0) {
      throw new Error(
        `loadFashionMnist: --data folder ${options.dir} lacks ${missing.join(", ")}`,
      );
    }
    return { ...(await loadFolder(options.dir)), source: options.dir, kind: "dir" };
  }
  const candidates: [FashionMnist["kind"], string | undefined][] = [
    ["system", options.systemDir ?? FASHION_MNIST_SYSTEM_DIR],
    ["cache", options.cacheDir ?? defaultCacheDir()],
  ];
  if (options.allowBuiltin ?? true) candidates.push(["builtin", FASHION_MNIST_BUILTIN_DIR]);
  const tried: string[] = [];
  for (const [kind, dir] of candidates) {
    if (dir === undefined) continue;
    tried.push(dir);
    if ((await missingFiles(dir)).length === 0) {
      return { ...(await loadFolder(dir)), source: dir, kind };
    }
  }
  throw new Error(
    `loadFashionMnist: no folder with the four files; looked in ${tried.join(", ")}. ` +
      `Pass --data DIR or run downloadFashionMnist().`,
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
export async function downloadFashionMnist(options: DownloadOptions = {}): Promise<string> {
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
