import assert from "node:assert/strict";
import type { Batch, ImageDataset } from "../../data/dataset.ts";
import { loadFashionMnist } from "../../data/fashion_mnist.ts";
import { epochPermutation } from "../../data/batch.ts";
import { DataLoader } from "../../data/loader.ts";
import {
  fashionMnistSpec,
  paperEvalSpec,
  paperTrainSpec,
  type PipelineSpec,
} from "../../data/pipeline.ts";
import { jacobiEigen } from "../../data/transforms.ts";

function syntheticRgb(n: number, size: number): ImageDataset {
  const images = Uint8Array.from(
    { length: n * 3 * size * size },
    (_, i) => (i * 2654435761) >>> 24,
  );
  const labels = Int32Array.from({ length: n }, (_, i) => i % 4);
  return { images, shape: [n, 3, size, size], labels, classNames: ["a", "b", "c", "d"] };
}

async function collect(loader: DataLoader, epoch: number): Promise<Batch[]> {
  const batches: Batch[] = [];
  for await (const batch of loader.epoch(epoch)) batches.push(batch);
  return batches;
}

const fm = await loadFashionMnist({ systemDir: "/nonexistent", cacheDir: "/nonexistent" });
const fmSmall: ImageDataset = {
  ...fm.train,
  images: fm.train.images.subarray(0, 300 * 784),
  labels: fm.train.labels.subarray(0, 300),
  shape: [300, 1, 28, 28],
};
const stats = {
  meanImage: new Float32Array(3 * 40 * 40).fill(120),
  eigen: jacobiEigen([[0.06, 0.03, 0.01], [0.03, 0.05, 0.02], [0.01, 0.02, 0.04]]),
};

const parityCases: [string, ImageDataset, PipelineSpec, number][] = [
  [
    "Fashion-MNIST with pad-crop and flip",
    fmSmall,
    fashionMnistSpec({ padCrop: 4, flip: true }),
    64,
  ],
  ["paper train recipe", syntheticRgb(37, 40), paperTrainSpec(stats, { cropSize: 32 }), 8],
  [
    "paper ten-crop eval",
    syntheticRgb(9, 40),
    paperEvalSpec(stats, { cropSize: 32, tenCrop: true }),
    4,
  ],
];

for (const [name, dataset, spec, batchSize] of parityCases) {
  Deno.test(`loader: ${name} gives identical batches with 0, 1 and 2 workers`, async () => {
    const runs: Batch[][] = [];
    for (const workers of [0, 1, 2]) {
      await using loader = new DataLoader(dataset, { batchSize, spec, seed: 7, workers });
      runs.push(await collect(loader, 3));
    }
    assert.equal(runs[0].length, Math.ceil(dataset.shape[0] / batchSize));
    assert.deepEqual(runs[1], runs[0]);
    assert.deepEqual(runs[2], runs[0]);
  });
}

Deno.test("loader: epochs are seeded permutations; resuming at epoch e reproduces it", async () => {
  await using loader = new DataLoader(fmSmall, { batchSize: 100, seed: 11 });
  const e2 = await collect(loader, 2);
  const e3 = await collect(loader, 3);
  const order = (batches: Batch[]) => batches.flatMap((b) => Array.from(b.indices!));
  assert.deepEqual(order(e2).toSorted((a, b) => a - b), Array.from({ length: 300 }, (_, i) => i));
  assert.notDeepEqual(order(e2), order(e3));
  await using resumed = new DataLoader(fmSmall, { batchSize: 100, seed: 11 });
  assert.deepEqual(await collect(resumed, 3), e3);
  assert.deepEqual(order(e3), Array.from(epochPermutation(300, 11, 3)));
  const batch = e2[0];
  assert.deepEqual(batch.shape, [100, 1, 28, 28]);
  assert.ok(batch.images instanceof Float32Array && batch.labels instanceof Int32Array);
  assert.deepEqual(Array.from(batch.labels), Array.from(batch.indices!, (i) => fmSmall.labels[i]));
});

Deno.test("loader: augmentation depends on (seed, epoch, index), not on batch size", async () => {
  const spec = fashionMnistSpec({ padCrop: 4, flip: true });
  await using small = new DataLoader(fmSmall, { batchSize: 7, spec, seed: 5 });
  await using large = new DataLoader(fmSmall, { batchSize: 300, spec, seed: 5 });
  const byIndex = (batches: Batch[]) => {
    const map = new Map<number, number[]>();
    for (const b of batches) {
      b.indices!.forEach((index, k) =>
        map.set(index, Array.from(b.images.subarray(k * 784, (k + 1) * 784)))
      );
    }
    return map;
  };
  const a = byIndex(await collect(small, 1)), b = byIndex(await collect(large, 1));
  for (const index of [0, 17, 299]) assert.deepEqual(a.get(index), b.get(index));
});

const sizeCases: [string, number, boolean, number[]][] = [
  ["keeps the last partial batch", 128, false, [128, 128, 44]],
  ["drops it with dropLast", 128, true, [128, 128]],
  ["exact division", 100, true, [100, 100, 100]],
];
for (const [name, batchSize, dropLast, sizes] of sizeCases) {
  Deno.test(`loader: batch sizes ${name}`, async () => {
    await using loader = new DataLoader(fmSmall, { batchSize, dropLast, shuffle: false });
    const batches = await collect(loader, 0);
    assert.deepEqual(batches.map((b) => b.shape[0]), sizes);
    assert.equal(loader.batchesPerEpoch, sizes.length);
    assert.equal(batches[0].indices![0], 0, "no shuffle keeps dataset order");
  });
}

Deno.test("loader: ten-crop batches hold 10 views per sample with repeated labels", async () => {
  await using loader = new DataLoader(syntheticRgb(6, 40), {
    batchSize: 4,
    spec: paperEvalSpec(stats, { cropSize: 32, tenCrop: true }),
    shuffle: false,
  });
  const [first] = await collect(loader, 0);
  assert.deepEqual(first.shape, [40, 3, 32, 32]);
  assert.equal(first.views, 10);
  assert.deepEqual(Array.from(first.labels.subarray(0, 12)), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
});

Deno.test("loader: breaking out early and closing leaves no workers running", async () => {
  const loader = new DataLoader(fmSmall, { batchSize: 10, workers: 2, prefetch: 6 });
  for await (const batch of loader.epoch(0)) {
    assert.equal(batch.shape[0], 10);
    break;
  }
  loader.close();
  loader.close();
  await assert.rejects(collect(loader, 1), /the loader is closed/);
});

Deno.test("loader: worker errors surface with the cause", async () => {
  await using loader = new DataLoader(syntheticRgb(4, 8), {
    batchSize: 2,
    spec: [{ op: "pcaJitter", eigen: stats.eigen }, { op: "normalize", mean: [0], std: [1] }],
    workers: 1,
  });
  await assert.rejects(
    collect(loader, 0),
    /DataLoader worker: .*normalize: expected 3 means and stds, got 1 and 1/,
  );
});

Deno.test("loader: bad options name the argument", () => {
  assert.throws(
    () => new DataLoader(fmSmall, { batchSize: 0 }),
    /batchSize must be a positive integer, got 0/,
  );
  assert.throws(
    () => new DataLoader(fmSmall, { batchSize: 2, workers: -1 }),
    /workers must be a non-negative integer, got -1/,
  );
  const broken = { ...fmSmall, labels: fmSmall.labels.subarray(0, 10) };
  assert.throws(() => new DataLoader(broken, { batchSize: 2 }), /expected 300 labels, found 10/);
});
