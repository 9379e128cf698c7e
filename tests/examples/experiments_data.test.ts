/**
 * What the experiments need of the example's data and logs (issue 19): CIFAR-10 binary folders
 * train as 3x32x32 with per-channel normalisation from the training split; an image folder
 * without train/ and val/ takes its mean image and PCA from the training split only (never the
 * test tenth); LRN's data-dependent term (lrn_term.ts) against hand-computed values; the new
 * flags' metrics (--eval-train, --log-every, the LRN term) in a run's records; and checkpoints
 * written before the new configuration fields still load.
 */

import assert from "node:assert/strict";
import { withDir } from "../support/alexnet_helpers.ts";
import { encodePng } from "../../data/codecs.ts";
import { datasetStats } from "../../data/mod.ts";
import { checkConfig, DEFAULTS, type TrainConfig } from "../../examples/alexnet/config.ts";
import { channelMoments, loadRunData } from "../../examples/alexnet/data.ts";
import { lrnTerm, termOf } from "../../examples/alexnet/lrn_term.ts";
import { train } from "../../examples/alexnet/train.ts";
import { fromArray, randn } from "../../mod.ts";
import { alexnetMini } from "../../models/alexnet.ts";
import { Rng } from "../../tensor/random.ts";

function cifarRecords(n: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(n * 3073);
  const rng = new Rng(seed);
  for (let i = 0; i < n; i++) {
    bytes[i * 3073] = i % 10;
    for (let p = 1; p < 3073; p++) bytes[i * 3073 + p] = rng.nextU32() & 255;
  }
  return bytes;
}

Deno.test("data: a CIFAR-10 binary folder trains as 3x32x32, normalised by the training split", async () => {
  await withDir(async (dir) => {
    for (let k = 1; k <= 5; k++) {
      await Deno.writeFile(`${dir}/data_batch_${k}.bin`, cifarRecords(4, k));
    }
    await Deno.writeFile(`${dir}/test_batch.bin`, cifarRecords(7, 9));
    const data = await loadRunData({ ...DEFAULTS, data: dir, valSize: 5 });
    assert.equal(data.kind, "cifar10");
    assert.deepEqual(data.inputShape, [3, 32, 32]);
    assert.deepEqual([data.train.shape[0], data.val.shape[0], data.test.shape[0]], [15, 5, 7]);
    const step = data.testSpec.find((s) => s.op === "normalize");
    assert.ok(step && step.op === "normalize");
    assert.deepEqual(step, { op: "normalize", ...channelMoments(data.train) });
    // The moments by hand for the green channel of the training split.
    const plane = 32 * 32, values: number[] = [];
    for (let i = 0; i < 15; i++) {
      const base = (i * 3 + 1) * plane;
      for (let p = 0; p < plane; p++) values.push(data.train.images[base + p] / 255);
    }
    const m = values.reduce((a, b) => a + b) / values.length;
    const sd = Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / values.length);
    assert.ok(Math.abs(step.mean[1] - m) < 1e-12 && Math.abs(step.std[1] - sd) < 1e-9);
    // Dataset statistics reject what is not RGB.
    assert.throws(() => datasetStats({ ...data.train, shape: [15, 1, 32, 96] }), /datasetStats/);
  });
});

Deno.test("data: an image folder without train/ and val/ takes its mean image from the training split", async () => {
  await withDir(async (dir) => {
    const previous = Deno.env.get("XDG_CACHE_HOME");
    Deno.env.set("XDG_CACHE_HOME", `${dir}/cache`);
    try {
      // 20 images, the i-th a solid grey of level 10 i: every tenth (0, 10) is the test set.
      for (const name of ["a", "b"]) await Deno.mkdir(`${dir}/photos/${name}`, { recursive: true });
      for (let i = 0; i < 20; i++) {
        const data = new Uint8Array(3 * 8 * 8).fill(10 * i);
        const png = encodePng({ data, channels: 3, height: 8, width: 8 });
        await Deno.writeFile(
          `${dir}/photos/${i % 2 ? "b" : "a"}/${String(i).padStart(2, "0")}.png`,
          png,
        );
      }
      const config: TrainConfig = {
        ...DEFAULTS,
        arch: "alexnet",
        data: `${dir}/photos`,
        valSize: 3,
      };
      const run = await loadRunData(config);
      assert.equal(run.test.shape[0], 2);
      const expected = datasetStats(run.train).meanImage;
      assert.deepEqual(run.meanImage, expected);
      // Not the mean over all 20 images, which the test tenth would shift.
      const all = new Set([...Array(20).keys()].map((i) => 10 * i));
      const allMean = [...all].reduce((a, b) => a + b) / 20;
      assert.notEqual(run.meanImage![0], allMean);
      const levels: number[] = [];
      for (let i = 0; i < run.train.shape[0]; i++) {
        levels.push(run.train.images[i * 3 * 256 * 256]);
      }
      assert.ok(
        Math.abs(run.meanImage![0] - levels.reduce((a, b) => a + b) / levels.length) < 1e-4,
      );
      const testLevels = [0, 1].map((i) => run.test.images[i * 3 * 256 * 256]);
      for (const level of testLevels) assert.ok(!levels.includes(level));
    } finally {
      if (previous === undefined) Deno.env.delete("XDG_CACHE_HOME");
      else Deno.env.set("XDG_CACHE_HOME", previous);
    }
  });
});

Deno.test("lrn_term: the data-dependent term by hand, and its 255² growth at the paper's pixel scale", async () => {
  // a = 1, 2, 3 over three channels; window 3 (one below, one above), alpha' = 3e-4 / 3, k = 1:
  // sums 1 + 4 = 5, 1 + 4 + 9 = 14, 4 + 9 = 13, so terms 5e-4, 14e-4, 13e-4.
  const stat = termOf(Float32Array.of(1, 2, 3), [1, 3, 1, 1], {
    size: 3,
    alpha: 3e-4,
    k: 1,
    alphaScaling: "averaged",
  });
  assert.ok(Math.abs(stat.mean - 32e-4 / 3) < 1e-12 && Math.abs(stat.max - 14e-4) < 1e-12);
  using x = randn([4, 1, 28, 28], { seed: 3 });
  const small = await lrnTerm(alexnetMini({ seed: 2 }), x);
  const pixel = await lrnTerm(alexnetMini({ seed: 2, lrnAlpha: 1e-4 * 255 * 255 }), x);
  assert.deepEqual(Object.keys(small), ["norm1", "norm2"]);
  // norm1's input (conv1 + ReLU, zero biases) does not depend on alpha: the term scales exactly.
  assert.ok(Math.abs(pixel.norm1.mean / small.norm1.mean / 65025 - 1) < 1e-5);
  assert.ok(small.norm1.max < 0.05 && pixel.norm1.mean > 0.05);
  assert.deepEqual(await lrnTerm(alexnetMini({ lrn: false }), fromArray([0], [1])), {});
});

Deno.test("train: --eval-train, --log-every and the LRN term reach metrics.jsonl", async () => {
  await withDir(async (out) => {
    const result = await train({
      ...DEFAULTS,
      out,
      device: "cpu",
      epochs: 1,
      batchSize: 8,
      trainLimit: 32,
      valSize: 16,
      testLimit: 16,
      evalTrain: 24,
      logEvery: 2,
      checkpointEvery: 1000,
      plain: true,
    }, { quiet: true });
    const steps = result.metrics.filter((m) => m.kind === "step").map((m) => m.step);
    assert.deepEqual(steps, [2, 4]);
    const [epoch] = result.metrics.filter((m) => m.kind === "epoch");
    assert.ok(epoch.trainEvalAccuracy! >= 0 && epoch.trainEvalAccuracy! <= 1);
    assert.deepEqual(Object.keys(epoch.lrnTerm!), ["norm1", "norm2"]);
    assert.ok(epoch.lrnTerm!.norm1.max >= epoch.lrnTerm!.norm1.mean);
    const lines = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n");
    assert.ok(JSON.parse(lines.at(-1)!).lrnTerm.norm2.mean > 0);
  });
});

Deno.test("config: a checkpoint's configuration written before the new fields still loads", () => {
  const old: Record<string, unknown> = { ...DEFAULTS };
  for (const key of ["fcWidth", "lrnAlpha", "evalTrain", "logEvery", "padCrop"]) delete old[key];
  const config = checkConfig(old, "old.safetensors");
  assert.deepEqual(
    [config.fcWidth, config.lrnAlpha, config.evalTrain, config.logEvery, config.padCrop],
    [0, 1e-4, 0, 10, 0],
  );
  assert.throws(
    () => checkConfig({ ...DEFAULTS, logEvery: 0 }, "bad.safetensors"),
    /bad\.safetensors: "config\.logEvery" must be an integer of at least 1, got 0/,
  );
});
