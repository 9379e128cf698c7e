/**
 * CIFAR-10, binary version (Krizhevsky 2009): `data_batch_1.bin` .. `data_batch_5.bin`
 * (10,000 images each) and `test_batch.bin`. Each record is 3073 bytes: one label byte
 * (0-9), then 1024 red, 1024 green and 1024 blue bytes of a 32x32 image, rows top to bottom,
 * which is already the CHW layout. The paper's Figure 1 (ReLU vs tanh) was measured on it.
 *
 * @module
 */

import { type ImageDataset, validateDataset } from "./dataset.ts";
import { checkArgument } from "../tensor/options.ts";

/** The ten class names, in label order (`batches.meta.txt`). */
export const CIFAR10_CLASSES: readonly string[] = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
];

/** Bytes per record: 1 label + 3 * 32 * 32 pixels. */
export const CIFAR10_RECORD_BYTES: number = 1 + 3 * 32 * 32;

/** The training files, in order, and the test file. */
export const CIFAR10_FILES: {
  readonly train: readonly string[];
  readonly test: readonly string[];
} = {
  train: [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
  ],
  test: ["test_batch.bin"],
};

/**
 * Parses one or more concatenated CIFAR-10 records into uint8 `[N, 3, 32, 32]`. Errors name
 * `name` and say what is wrong (length not a multiple of 3073, label above 9).
 */
export function parseCifar10(bytes: Uint8Array, name = "<bytes>"): ImageDataset {
  checkArgument("parseCifar10", "bytes", bytes, "bytes");
  if (bytes.length === 0 || bytes.length % CIFAR10_RECORD_BYTES !== 0) {
    throw new Error(
      `${name}: expected a whole number of ${CIFAR10_RECORD_BYTES}-byte records, found ` +
        `${bytes.length} bytes (${Math.floor(bytes.length / CIFAR10_RECORD_BYTES)} records and ` +
        `${bytes.length % CIFAR10_RECORD_BYTES} bytes left over)`,
    );
  }
  const n = bytes.length / CIFAR10_RECORD_BYTES;
  const pixels = CIFAR10_RECORD_BYTES - 1;
  const images = new Uint8Array(n * pixels);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const at = i * CIFAR10_RECORD_BYTES;
    const label = bytes[at];
    if (label >= CIFAR10_CLASSES.length) {
      throw new Error(`${name}: record ${i} (byte ${at}) has label ${label}, expected 0-9`);
    }
    labels[i] = label;
    images.set(bytes.subarray(at + 1, at + CIFAR10_RECORD_BYTES), i * pixels);
  }
  return { images, shape: [n, 3, 32, 32], labels, classNames: [...CIFAR10_CLASSES] };
}

/** Concatenates datasets of equal image shape and classes (e.g. the five training batches). */
export function concatDatasets(parts: ImageDataset[]): ImageDataset {
  checkArgument("concatDatasets", "parts", parts, "array");
  parts.forEach((part, i) => validateDataset(part, `concatDatasets: part ${i}`));
  if (parts.length === 0) throw new RangeError("concatDatasets: no datasets given");
  const [, c, h, w] = parts[0].shape;
  const n = parts.reduce((sum, p) => sum + p.shape[0], 0);
  const images = new Uint8Array(n * c * h * w);
  const labels = new Int32Array(n);
  let at = 0;
  for (const part of parts) {
    if (part.shape[1] !== c || part.shape[2] !== h || part.shape[3] !== w) {
      throw new RangeError(
        `concatDatasets: image shape [${part.shape.slice(1)}] differs from [${c}, ${h}, ${w}]`,
      );
    }
    images.set(part.images, at * c * h * w);
    labels.set(part.labels, at);
    at += part.shape[0];
  }
  return { images, shape: [n, c, h, w], labels, classNames: parts[0].classNames };
}

/** Reads a CIFAR-10 binary file. */
export async function readCifar10File(path: string): Promise<ImageDataset> {
  return parseCifar10(await Deno.readFile(path), path);
}

/**
 * Loads `dir` (the extracted `cifar-10-batches-bin`): the five training batches concatenated,
 * and the test batch. A missing file is an error naming it.
 */
export async function loadCifar10(
  dir: string,
): Promise<{ train: ImageDataset; test: ImageDataset; source: string }> {
  const read = async (file: string) => {
    try {
      return await readCifar10File(`${dir}/${file}`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(`loadCifar10: ${dir}/${file} not found`);
      }
      throw error;
    }
  };
  const train = concatDatasets(await Promise.all(CIFAR10_FILES.train.map(read)));
  const test = await read(CIFAR10_FILES.test[0]);
  return { train, test, source: dir };
}
