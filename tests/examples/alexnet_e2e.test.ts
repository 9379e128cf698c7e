import assert from "node:assert/strict";
import {
  DEFAULTS,
  parseTrainArgs,
  type TrainConfig,
  UsageError,
} from "../../examples/alexnet/config.ts";
import { train } from "../../examples/alexnet/train.ts";
import { readRunMetadata } from "../../examples/alexnet/run_state.ts";
import { predictImages } from "../../examples/alexnet/predict.ts";
import { loadFashionMnist } from "../../data/mod.ts";
import { encodePng } from "../../data/codecs.ts";
import { smallRun } from "../support/alexnet_helpers.ts";

async function losses(config: TrainConfig): Promise<number[]> {
  const out: number[] = [];
  await train(config, { quiet: true, onStepLoss: (_step, loss) => out.push(loss) });
  return out;
}

Deno.test("train-alexnet: loss falls, and the run folder has metrics, checkpoint and pictures", async () => {
  const out = await Deno.makeTempDir();
  try {
    // Long enough that the fall does not hinge on float32 rounding: the run is chaotic, and
    // kernels that sum in another order (SIMD, FMA) move single losses by a few percent.
    const config = smallRun(out, { epochs: 3, trainLimit: 640 });
    const seen = await losses(config);
    assert.equal(seen.length, 60);
    const first = seen.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = seen.slice(-5).reduce((a, b) => a + b) / 5;
    assert.ok(
      last < 0.8 * first,
      `loss did not fall: first steps ${first.toFixed(3)}, last steps ${last.toFixed(3)}`,
    );
    for (
      const file of ["metrics.jsonl", "checkpoint.safetensors", "curves.png", "conv1_filters.png"]
    ) {
      assert.ok((await Deno.stat(`${out}/${file}`)).size > 0, `${file} is missing or empty`);
    }
    const records = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    const epochs = records.filter((r) => r.kind === "epoch");
    assert.equal(epochs.length, 3);
    assert.ok(epochs.every((r) => r.testAccuracy >= 0 && r.testAccuracy <= 1));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("train-alexnet --resume continues a stopped run with exactly the same losses", async () => {
  const whole = await Deno.makeTempDir(), split = await Deno.makeTempDir();
  try {
    const uninterrupted = await losses(smallRun(whole));
    // Stop mid-way through epoch 2 (step 9 of 12), then resume to the end.
    const before = await losses(smallRun(split, { maxSteps: 9 }));
    const after = await losses(smallRun(split, { resume: true }));
    assert.equal(before.length, 9);
    assert.deepEqual([...before, ...after], uninterrupted);
  } finally {
    await Deno.remove(whole, { recursive: true });
    await Deno.remove(split, { recursive: true });
  }
});

Deno.test("predict: top-5 classes of a test image from a trained checkpoint, 1 and 10 crops", async () => {
  const out = await Deno.makeTempDir();
  try {
    await losses(smallRun(out, { epochs: 1 }));
    const { test } = await loadFashionMnist({});
    const gray = test.images.subarray(0, 784);
    const rgb = new Uint8Array(3 * 784);
    for (let c = 0; c < 3; c++) rgb.set(gray, c * 784);
    const image = { data: rgb, channels: 3, height: 28, width: 28 };
    const file = `${out}/sample.png`;
    await Deno.writeFile(file, encodePng(image));
    for (const crops of [1, 10] as const) {
      const [result] = await predictImages(out, [file], { crops });
      assert.equal(result.top.length, 5);
      const probabilities = result.top.map((t) => t.probability);
      assert.deepEqual(probabilities, [...probabilities].sort((a, b) => b - a));
      assert.ok(probabilities.reduce((a, b) => a + b) <= 1 + 1e-6);
      assert.ok(result.top.every((t) => test.classNames.includes(t.className)));
    }
    // An unreadable file gets its error; the files around it are still classified.
    const mixed = await predictImages(out, [file, `${out}/missing.png`, file], { crops: 1 });
    assert.match(mixed[1].error ?? "", /cannot read .*missing\.png/);
    assert.equal(mixed[1].top.length, 0);
    assert.deepEqual(mixed[2], mixed[0]);
    assert.equal(mixed[0].top.length, 5);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("train-alexnet --time-limit stops mid-epoch, evaluates, and leaves a resumable checkpoint", async () => {
  const out = await Deno.makeTempDir();
  try {
    // A budget of a few seconds: the run must stop inside epoch 1 of 10 and still evaluate.
    const result = await train(smallRun(out, { epochs: 10, trainLimit: 3200, timeLimit: 0.1 }), {
      quiet: true,
    });
    const last = result.metrics.filter((m) => m.kind === "epoch").at(-1)!;
    assert.ok(last.epoch < 10, `stopped at epoch ${last.epoch}`);
    assert.ok(Number.isFinite(last.testAccuracy));
    const metadata = await readRunMetadata(`${out}/checkpoint.safetensors`, true);
    assert.equal(metadata.run!.step, result.steps);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("train-alexnet flags: bad values get a message naming the flag", () => {
  const cases: [string[], RegExp][] = [
    [
      ["--arch", "vgg"],
      /--arch must be one of alexnet, alexnet-mini, alexnet-torchvision, figure1-cnn; got "vgg"/,
    ],
    [["--epochs", "0"], /--epochs must be an integer of at least 1; got "0"/],
    [["--lr=-1"], /--lr must be a number greater than 0; got "-1"/],
    [["--groups", "3"], /--groups must be one of 1, 2; got "3"/],
    [["--bogus"], /bogus/],
  ];
  for (const [args, pattern] of cases) {
    assert.throws(
      () => parseTrainArgs(args),
      (e) => e instanceof UsageError && pattern.test(e.message),
    );
  }
  assert.equal(parseTrainArgs(["--help"]), null);
  assert.deepEqual(parseTrainArgs(["--no-lrn", "--pool", "plain", "--epochs", "7"]), {
    ...DEFAULTS,
    lrn: false,
    pool: "plain",
    epochs: 7,
  });
});
