/**
 * Loader throughput in images per second with 0, 1 and 2 workers:
 *
 * (a) Fashion-MNIST (the committed subset, 10,000 images) with augmentation at 28x28:
 *     [0, 1] scaling, pad-4 random crop, flip, normalization; batch 128.
 * (b) the paper's ImageFolder training recipe on a generated shard of 256x256 RGB images:
 *     mean subtraction, random 224 crop, flip, PCA jitter (section 4.1); batch 128.
 *
 * Each configuration runs one warm-up epoch (worker start-up, JIT), then times whole epochs for
 * at least 3 s.
 *
 * ```sh
 * deno run --allow-read --allow-env bench/data_bench.ts
 * ```
 *
 * @module
 */

import type { ImageDataset } from "../data/dataset.ts";
import { loadFashionMnist } from "../data/fashion_mnist.ts";
import { DataLoader } from "../data/loader.ts";
import { fashionMnistSpec, paperTrainSpec, type PipelineSpec } from "../data/pipeline.ts";
import { jacobiEigen } from "../data/transforms.ts";
import { Rng } from "../tensor/random.ts";

async function throughput(
  dataset: ImageDataset,
  spec: PipelineSpec,
  workers: number,
  batchSize: number,
) {
  await using loader = new DataLoader(dataset, { batchSize, spec, seed: 1, workers });
  for await (const _ of loader.epoch(0)) { /* warm-up */ }
  // Whole epochs until at least 3 s have passed, so short epochs still time reliably.
  const start = performance.now();
  let images = 0;
  for (let epoch = 1; performance.now() - start < 3000; epoch++) {
    for await (const batch of loader.epoch(epoch)) images += batch.shape[0];
  }
  return images / ((performance.now() - start) / 1000);
}

function syntheticShard(n: number, size: number): ImageDataset {
  const rng = new Rng(0);
  const images = new Uint8Array(n * 3 * size * size);
  for (let i = 0; i < images.length; i += 4) {
    const word = rng.nextU32();
    images[i] = word & 255;
    images[i + 1] = (word >>> 8) & 255;
    images[i + 2] = (word >>> 16) & 255;
    images[i + 3] = word >>> 24;
  }
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  return {
    images,
    shape: [n, 3, size, size],
    labels,
    classNames: Array.from({ length: 10 }, (_, k) => `c${k}`),
  };
}

const loadStart = performance.now();
const fm = await loadFashionMnist({ systemDir: "/nonexistent", cacheDir: "/nonexistent" });
console.log(
  `built-in Fashion-MNIST subset loaded in ${(performance.now() - loadStart).toFixed(0)} ms`,
);
const shard = syntheticShard(256, 256);
const stats = {
  meanImage: new Float32Array(3 * 256 * 256).fill(127.5),
  eigen: jacobiEigen([[0.066, 0.061, 0.055], [0.061, 0.062, 0.060], [0.055, 0.060, 0.068]]),
};
const cases: [string, ImageDataset, PipelineSpec][] = [
  ["Fashion-MNIST 28x28, pad-crop + flip", fm.train, fashionMnistSpec({ padCrop: 4, flip: true })],
  ["ImageFolder 256 -> 227, paper recipe", shard, paperTrainSpec(stats)],
];

console.log(`cores: ${navigator.hardwareConcurrency}\n`);
console.log("| pipeline | 0 workers | 1 worker | 2 workers |");
console.log("|---|---|---|---|");
for (const [name, dataset, spec] of cases) {
  const row: string[] = [];
  for (const workers of [0, 1, 2]) {
    row.push(`${Math.round(await throughput(dataset, spec, workers, 128))} img/s`);
  }
  console.log(`| ${name} | ${row.join(" | ")} |`);
}
