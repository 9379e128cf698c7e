/**
 * Runs lose nothing and hide nothing (examples/alexnet): the run folder guard, resume against a
 * checkpoint's recipe, metadata that cannot be trusted, metrics across a resume, divergence,
 * predict on bad weights, and the command line's errors. Small CPU runs on the built-in
 * Fashion-MNIST subset; the GPU case reads losses 8 steps at a time.
 */

import assert from "node:assert/strict";
import { fromArray, loadSafetensors, saveSafetensors, type TensorEntry } from "../../mod.ts";
import { loadFashionMnist, writeIdxFile } from "../../data/mod.ts";
import { encodePng } from "../../data/codecs.ts";
import {
  parseTrainCommand,
  resumedConfig,
  type TrainConfig,
  UsageError,
} from "../../examples/alexnet/config.ts";
import { allFinite, buildModel, DivergenceError } from "../../examples/alexnet/trainer.ts";
import { readRunMetadata } from "../../examples/alexnet/run_state.ts";
import { holdOutValidation, VALIDATION_SEED } from "../../examples/alexnet/data.ts";
import { predictImages } from "../../examples/alexnet/predict.ts";
import { main, train } from "../../examples/alexnet/train.ts";
import { gpuTest } from "../support/gpu_helpers.ts";
import { smallRun } from "../support/alexnet_helpers.ts";

async function withDirs(n: number, fn: (...dirs: string[]) => Promise<void>): Promise<void> {
  const dirs = await Promise.all(Array.from({ length: n }, () => Deno.makeTempDir()));
  try {
    await fn(...dirs);
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
}

/** Rewrites one metadata entry of a safetensors file (`undefined` removes it). */
async function editMetadata(path: string, key: string, json: string | undefined): Promise<void> {
  const file = await loadSafetensors(path);
  const metadata = { ...file.metadata };
  if (json === undefined) delete metadata[key];
  else metadata[key] = json;
  await saveSafetensors(path, file.tensors as Map<string, TensorEntry>, metadata);
}

/** Metric records without their wall-clock fields. */
function withoutTimes(records: { seconds: number; imagesPerSecond?: number }[]) {
  return records.map(({ seconds: _s, imagesPerSecond: _i, ...rest }) => rest);
}

/** Captures console.error while `fn` runs. */
async function stderrOf(fn: () => Promise<number>): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    return { code: await fn(), lines };
  } finally {
    console.error = original;
  }
}

// ---------------------------------------------------------------------------------------------
// The run folder

Deno.test("runs: a folder that holds a run needs --resume or --overwrite", async () => {
  await withDirs(1, async (out) => {
    await train(smallRun(out, { maxSteps: 2 }), { quiet: true });
    const before = await Deno.readFile(`${out}/checkpoint.safetensors`);
    await assert.rejects(
      train(smallRun(out, { maxSteps: 2 }), { quiet: true }),
      (e) =>
        e instanceof UsageError && /holds a run \(checkpoint\.safetensors/.test(e.message) &&
        /--resume/.test(e.message) && /--overwrite/.test(e.message),
    );
    assert.deepEqual(await Deno.readFile(`${out}/checkpoint.safetensors`), before);
    // --overwrite starts afresh: the old metrics are gone, not appended to.
    const result = await train(smallRun(out, { maxSteps: 1, overwrite: true }), { quiet: true });
    assert.equal(result.steps, 1);
    const metadata = await readRunMetadata(`${out}/checkpoint.safetensors`, true);
    assert.equal(metadata.run!.step, 1);
  });
});

Deno.test("runs: --resume needs a checkpoint, and --resume --overwrite is refused", async () => {
  await withDirs(1, async (out) => {
    await assert.rejects(
      train(smallRun(out, { resume: true }), { quiet: true }),
      /--resume: --out .* holds no checkpoint\.safetensors/,
    );
  });
  assert.throws(
    () => parseTrainCommand(["--resume", "--overwrite"]),
    /--resume and --overwrite contradict/,
  );
});

Deno.test("runs: on --resume a recipe flag that contradicts the checkpoint is an error, a session flag wins aloud", async () => {
  await withDirs(1, async (out) => {
    await train(smallRun(out, { maxSteps: 2 }), { quiet: true });
    const saved = (await readRunMetadata(`${out}/checkpoint.safetensors`, true)).config;
    const command = parseTrainCommand(["--resume", "--out", out, "--lr", "0.05"])!;
    assert.throws(
      () => resumedConfig(saved, command, () => {}),
      (e) =>
        e instanceof UsageError &&
        e.message.startsWith("--lr 0.05 contradicts the checkpoint's 0.02"),
    );
    for (const flags of [["--arch", "alexnet"], ["--no-dropout"], ["--seed", "5"]]) {
      assert.throws(
        () =>
          resumedConfig(saved, parseTrainCommand(["--resume", "--out", out, ...flags])!, () => {}),
        /contradicts the checkpoint's/,
        flags.join(" "),
      );
    }
    const said: string[] = [];
    const config = resumedConfig(
      saved,
      parseTrainCommand(["--resume", "--out", out, "--epochs", "9", "--lr", "0.02"])!,
      (line) => said.push(line),
    );
    assert.equal(config.epochs, 9);
    assert.deepEqual(said, [`--epochs: 9 replaces the checkpoint's 2`]);
    // Not given: the checkpoint's epochs and device; this session's stopping point (none).
    const plain = resumedConfig(saved, parseTrainCommand(["--resume", "--out", out])!, () => {});
    assert.deepEqual([plain.epochs, plain.device, plain.maxSteps], [2, "cpu", 0]);
    // Through train() too (the flags a program passes all count as given).
    await assert.rejects(
      train(smallRun(out, { resume: true, batchSize: 16 }), { quiet: true }),
      /--batch-size 16 contradicts the checkpoint's 32/,
    );
  });
});

Deno.test("runs: resume metadata is checked field by field, naming the file and the field", async () => {
  await withDirs(1, async (out) => {
    await train(smallRun(out, { maxSteps: 2 }), { quiet: true });
    const path = `${out}/checkpoint.safetensors`;
    const original = await Deno.readFile(path);
    const cases: [string, string | undefined, RegExp][] = [
      ["run", undefined, /"run" must be an object, got undefined/],
      ["run", "{}", /"run\.epoch" must be an integer of at least 0, got undefined/],
      ["run", "null", /"run" must be an object, got null/],
      ["metrics", '[{"kind":"step"}]', /"metrics\[0\]\.epoch" must be a number/],
      ["metrics", "{}", /"metrics" must be an array/],
      ["config", undefined, /holds no run configuration/],
      ["config", '{"arch":"alexnet-mini"}', /"config\.data" must be null or a path, got undefined/],
      ["data", '{"kind":"fashion-mnist"}', /"data\.classNames" must be an array/],
      ["run", "not json", /metadata "run" is not JSON/],
    ];
    for (const [key, json, pattern] of cases) {
      await Deno.writeFile(path, original);
      await editMetadata(path, key, json);
      await assert.rejects(
        train(smallRun(out, { resume: true }), { quiet: true }),
        (e) => e instanceof Error && e.message.includes(path) && pattern.test(e.message),
        `${key} = ${json}`,
      );
    }
    // A saved config with lr "abc" is refused too, before any training.
    await Deno.writeFile(path, original);
    const config = JSON.parse((await loadSafetensors(path)).metadata.config);
    await editMetadata(path, "config", JSON.stringify({ ...config, lr: "abc" }));
    await assert.rejects(
      train(smallRun(out, { resume: true }), { quiet: true }),
      /"config\.lr" must be a number greater than 0, got "abc"/,
    );
  });
});

Deno.test("runs: an empty or too small data set is an error, not 'train loss 0'", async () => {
  await withDirs(2, async (data, out) => {
    const { train: full, test } = await loadFashionMnist({});
    const write = async (name: string, images: Uint8Array, count: number, labels: Int32Array) => {
      await writeIdxFile(`${data}/${name}-images-idx3-ubyte.gz`, [count, 28, 28], images);
      await writeIdxFile(
        `${data}/${name}-labels-idx1-ubyte.gz`,
        [count],
        Uint8Array.from(labels.subarray(0, count)),
      );
    };
    await write("train", new Uint8Array(0), 0, full.labels);
    await write("t10k", test.images.subarray(0, 784), 1, test.labels);
    await assert.rejects(
      train(smallRun(out, { data }), { quiet: true }),
      new RegExp(`--data ${data}: 0 training images; a run needs at least 2`),
    );
    await assert.rejects(Deno.stat(`${out}/metrics.jsonl`), Deno.errors.NotFound);
  });
  const tiny = {
    images: new Uint8Array(3 * 4),
    shape: [3, 1, 2, 2] as [number, number, number, number],
    labels: new Int32Array(3),
    classNames: ["a", "b"],
  };
  assert.throws(() => holdOutValidation(tiny, 3), /--val-size 3 leaves no training images/);
});

Deno.test("runs: the validation split is held out of the training images with a fixed seed", async () => {
  const { train: full } = await loadFashionMnist({});
  const a = holdOutValidation(full, 1000), b = holdOutValidation(full, 1000);
  assert.equal(VALIDATION_SEED, 2012);
  assert.deepEqual(a.val.labels, b.val.labels);
  assert.equal(a.val.shape[0] + a.train.shape[0], full.shape[0]);
  assert.equal(a.val.shape[0], 1000);
  // Disjoint: no validation image is a training image (compare the pixels' hashes).
  const hash = (images: Uint8Array, i: number) => images.subarray(i * 784, (i + 1) * 784).join();
  const trainSet = new Set(
    Array.from({ length: a.train.shape[0] }, (_, i) => hash(a.train.images, i)),
  );
  let shared = 0;
  for (let i = 0; i < 1000; i++) if (trainSet.has(hash(a.val.images, i))) shared++;
  assert.ok(shared <= 2, `${shared} validation images also in training`); // duplicates in the data
});

Deno.test("runs: the schedule and best.safetensors follow validation, not the test set", async () => {
  await withDirs(1, async (out) => {
    const result = await train(smallRun(out, { epochs: 2 }), { quiet: true });
    const epochs = result.metrics.filter((m) => m.kind === "epoch");
    assert.ok(epochs.every((m) => m.valAccuracy !== undefined && m.testAccuracy !== undefined));
    const best = Math.max(...epochs.map((m) => m.valAccuracy!));
    assert.equal(result.bestValAccuracy, best);
    const saved = JSON.parse(
      (await loadSafetensors(`${out}/best.safetensors`)).metadata.valAccuracy,
    );
    assert.equal(saved, best);
    // The finished run resumes only with more epochs.
    await assert.rejects(
      train(smallRun(out, { resume: true }), { quiet: true }),
      /has finished its 2 epochs; pass a larger --epochs/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Exact resume of the metrics

async function assertResumeKeepsMetrics(extra: Partial<TrainConfig>) {
  await withDirs(2, async (whole, split) => {
    const uninterrupted = await train(smallRun(whole, extra), { quiet: true });
    // 12 steps in all; stop at 7 (the 10-step record then spans the resume), then resume.
    await train(smallRun(split, { ...extra, maxSteps: 7 }), { quiet: true });
    const resumed = await train(smallRun(split, { ...extra, resume: true }), { quiet: true });
    assert.ok(uninterrupted.metrics.some((m) => m.kind === "step" && m.step === 10));
    assert.deepEqual(withoutTimes(resumed.metrics), withoutTimes(uninterrupted.metrics));
    const lines = (await Deno.readTextFile(`${split}/metrics.jsonl`)).trim().split("\n");
    assert.deepEqual(
      withoutTimes(lines.map((l) => JSON.parse(l))),
      withoutTimes(uninterrupted.metrics),
    );
  });
}

Deno.test("runs: metrics records across a resume equal the uninterrupted run's (cpu)", async () => {
  await assertResumeKeepsMetrics({});
});

gpuTest(
  "runs: metrics records across a resume equal the uninterrupted run's (gpu, losses read 8 at a time)",
  async () => {
    await assertResumeKeepsMetrics({ device: "gpu" });
  },
);

// ---------------------------------------------------------------------------------------------
// Divergence

Deno.test("allFinite: one read says whether every weight is finite", async () => {
  const finite = fromArray(new Float32Array([1, -2, 3e38]), [3]);
  assert.equal(await allFinite([finite]), true);
  for (const bad of [NaN, Infinity, -Infinity]) {
    const t = fromArray(new Float32Array([1, bad, 2]), [3]);
    assert.equal(await allFinite([finite, t]), false, String(bad));
  }
});

Deno.test("runs: a non-finite loss stops the run at its step, and no checkpoint is written from it", async () => {
  await withDirs(1, async (out) => {
    const seen: number[] = [];
    let error: unknown;
    try {
      await train(smallRun(out, { lr: 1e6, checkpointEvery: 1 }), {
        quiet: true,
        onStepLoss: (_, loss) => seen.push(loss),
      });
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof DivergenceError, String(error));
    const match =
      /diverged at step (\d+) \(lr 1000000\): (the loss is NaN|the loss is Infinity|a weight is not finite)/
        .exec(error.message);
    assert.ok(match, error.message);
    assert.match(error.message, /lower --lr/);
    assert.ok(seen.every(Number.isFinite));
    // Whatever checkpoint exists is from before the divergence, and finite.
    try {
      const saved = await loadSafetensors(`${out}/checkpoint.safetensors`);
      for (const [name, entry] of saved.tensors) {
        assert.ok((entry.data as Float32Array).every(Number.isFinite), `${name} is not finite`);
      }
      assert.ok(JSON.parse(saved.metadata.run).step < Number(match[1]));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  });
});

Deno.test("predict: refuses non-finite weights", async () => {
  await withDirs(1, async (out) => {
    await train(smallRun(out, { epochs: 1 }), { quiet: true });
    const { test } = await loadFashionMnist({});
    const rgb = new Uint8Array(3 * 784);
    for (let c = 0; c < 3; c++) rgb.set(test.images.subarray(0, 784), c * 784);
    const image = { data: rgb, channels: 3, height: 28, width: 28 };
    await Deno.writeFile(`${out}/x.png`, encodePng(image));
    for (const file of ["best.safetensors", "checkpoint.safetensors"]) {
      const path = `${out}/${file}`;
      const saved = await loadSafetensors(path);
      const weight = saved.tensors.get("fc8.weight")!;
      (weight.data as Float32Array)[3] = NaN;
      await saveSafetensors(path, saved.tensors as Map<string, TensorEntry>, saved.metadata);
    }
    await assert.rejects(
      predictImages(out, [`${out}/x.png`]),
      // Named: the file, and that its weights are not finite.
      /best\.safetensors.*(holds weights that are not finite|holds NaN)/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The command line

Deno.test("cli: every malformed flag is one line, exit code 2, naming the flag", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--lr", "-1"],
      /^train-alexnet: --lr must be a number greater than 0; got "-1" \(see --help\)$/,
    ],
    [["--lr", " 0x10"], /--lr must be a number greater than 0; got " 0x10"/],
    [["--lr", "0x10"], /--lr must be a number/],
    [["--lr", "Infinity"], /--lr must be a number/],
    [["--epochs", "1.5"], /--epochs must be an integer of at least 1; got "1.5"/],
    [["--epochs", ""], /--epochs must be an integer/],
    [["--seed", "-3"], /--seed must be an integer of at least 0; got "-3"/],
    [["--momentum", "-0.5"], /--momentum must be a number of at least 0; got "-0.5"/],
    [["--bogus"], /Unknown option '--bogus'/],
    [["--epochs"], /--epochs/],
    [["--arch", "vgg"], /--arch must be one of alexnet, alexnet-mini, alexnet-torchvision/],
    [["--val-size", "0"], /--val-size must be an integer of at least 1/],
    [["--devices", "2", "--resume"], /--resume is not available with --devices 2/],
    [
      ["--devices", "2", "--checkpoint-every", "5"],
      /--checkpoint-every is not available with --devices 2/,
    ],
    [["--devices", "2", "--device", "cpu"], /--device is not available with --devices 2/],
    [["--devices", "2", "--arch", "alexnet-torchvision"], /torchvision's variant was never split/],
    [["positional"], /positional/],
  ];
  for (const [args, pattern] of cases) {
    const { code, lines } = await stderrOf(() => main(args));
    assert.equal(code, 2, args.join(" "));
    assert.equal(lines.length, 1, `${args.join(" ")}: ${lines.join(" / ")}`);
    assert.equal(lines[0].split("\n").length, 1, lines[0]);
    assert.match(lines[0], pattern);
    assert.match(lines[0], /\(see --help\)$/);
  }
});

Deno.test("cli: strict numbers, paper defaults per network", () => {
  assert.equal(parseTrainCommand(["--lr", "1e-3"])!.config.lr, 0.001);
  assert.equal(parseTrainCommand(["--lr=.5"])!.config.lr, 0.5);
  const paper = parseTrainCommand(["--arch", "alexnet"])!.config;
  assert.equal(paper.lr, 0.01); // the paper's
  assert.equal(paper.init, "auto"); // alexnet(): the paper's initialisation
  assert.equal(parseTrainCommand([])!.config.lr, 0.02); // the mini model's, marked in --help
  assert.equal(parseTrainCommand(["--arch", "alexnet", "--lr", "0.05"])!.config.lr, 0.05);
  assert.deepEqual([...parseTrainCommand(["--lr", "0.05", "--no-lrn"])!.given].sort(), [
    "lr",
    "lrn",
  ]);
});

Deno.test("--arch alexnet trains the paper's network with the paper's initialisation and lr", async () => {
  const config = parseTrainCommand(["--arch", "alexnet"])!.config;
  assert.equal(config.lr, 0.01);
  const model = buildModel(config, [3, 227, 227], 10);
  const params = new Map(model.namedParameters());
  // Section 5: biases 1 in conv2, conv4, conv5 and fc6, fc7; 0 in conv1, conv3, fc8.
  for (const [name, bias] of [["conv1", 0], ["conv2", 1], ["conv3", 0], ["fc6", 1], ["fc8", 0]]) {
    const data = await params.get(`${name}.bias`)!.data();
    assert.ok(data.every((v) => v === bias), `${name}.bias should be ${bias}`);
  }
  // Weights N(0, 0.01²): conv1's 34,848 draws have a standard deviation near 0.01.
  const w = Float64Array.from(await params.get("conv1.weight")!.data());
  const std = Math.sqrt(w.reduce((a, v) => a + v * v, 0) / w.length);
  assert.ok(Math.abs(std - 0.01) < 0.0005, `conv1 weight std ${std}`);
});

Deno.test("cli: a path error names the flag that gave the path", async () => {
  await withDirs(1, async (dir) => {
    await assert.rejects(
      train(smallRun(`${dir}/out`, { data: "/nonexistent" }), { quiet: true }),
      /^Error: --data \/nonexistent: not a folder/,
    );
    await Deno.writeTextFile(`${dir}/file`, "x");
    await assert.rejects(
      train(smallRun(`${dir}/file`), { quiet: true }),
      /--out .*file is a file, not a folder/,
    );
    const { code, lines } = await stderrOf(() =>
      main(["--data", "/nonexistent", "--out", `${dir}/run`, "--device", "cpu"])
    );
    assert.equal(code, 1);
    assert.match(lines.join("\n"), /train-alexnet: --data \/nonexistent: not a folder/);
  });
});
