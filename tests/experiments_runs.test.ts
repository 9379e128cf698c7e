/**
 * The experiments (examples/alexnet/experiments/: ablate.ts, figure1.ts) end to end at a tiny
 * size on the CPU and the built-in Fashion-MNIST subset: the --quick presets write their
 * tables, charts and RESULTS.md sections marked "not evidence"; a diverged variant is a row;
 * the verdict and lr choice rules; and the test set decides nothing in any training path.
 */

import assert from "node:assert/strict";
import { loadSafetensors } from "../mod.ts";
import {
  DEFAULTS,
  parseTrainCommand,
  type TrainConfig,
  UsageError,
} from "../examples/alexnet/config.ts";
import { train } from "../examples/alexnet/train.ts";
import {
  main as ablateMain,
  parseAblateArgs,
  runAblations,
  summarise,
  VARIANTS,
} from "../examples/alexnet/experiments/ablate.ts";
import {
  chooseLr,
  main as figure1Main,
  parseFigure1Args,
  ratios,
} from "../examples/alexnet/experiments/figure1.ts";
import {
  NOT_EVIDENCE,
  presetNote,
  writeResultsSection,
} from "../examples/alexnet/experiments/experiment.ts";
import { alexnetMini, figure1Net } from "../models/alexnet.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `fn` with console.log silenced and returns what it printed. */
async function captured<T>(fn: () => Promise<T>): Promise<{ value: T; printed: string }> {
  const log = console.log;
  const lines: string[] = [];
  console.log = (...args: unknown[]) => void lines.push(args.join(" "));
  try {
    return { value: await fn(), printed: lines.join("\n") };
  } finally {
    console.log = log;
  }
}

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

// Tiny sizes for the --quick presets: seconds per run on a loaded machine.
const TINY = ["--train-limit", "32", "--val-size", "16", "--batch-size", "16", "--device", "cpu"];

Deno.test("ablate --quick: table, chart and a RESULTS.md section marked not evidence", async () => {
  await withDir(async (dir) => {
    const results = `${dir}/RESULTS.md`;
    await Deno.writeTextFile(results, "# Results\n\nkept text\n");
    const args = [
      "--quick",
      ...TINY,
      "--test-limit",
      "16",
      "--variants",
      "full,one-gpu",
      "--out",
      `${dir}/run`,
      "--results",
      results,
    ];
    const { value: code, printed } = await captured(() => ablateMain(args));
    assert.equal(code, 0);
    assert.match(printed, /^\*\*Smoke run, not evidence:\*\*/);
    const markdown = await Deno.readTextFile(`${dir}/run/ablations.md`);
    const rows = markdown.split("\n").filter((l) => /^\| (full|one-GPU)/.test(l));
    assert.equal(rows.length, 2);
    assert.match(rows[0], /^\| full recipe \| 0\.01 \| 2 \| \d+\.\d% ± \d+\.\d \| \d+\.\d% ± /);
    assert.match(
      rows[1],
      /^\| one-GPU net .* \| \+?-?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\] \| 3\.2: \+1\.7 top-1.* \| (agrees|disagrees|inconclusive) \|$/,
    );
    assert.match(markdown, /Fashion-MNIST at 28 px is not ImageNet/);
    const png = await Deno.readFile(`${dir}/run/ablations.png`);
    assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
    let text = await Deno.readTextFile(results);
    assert.match(text, /^# Results\n\nkept text\n\n<!-- ablations:begin -->\n## Ablations/);
    assert.match(text, /Smoke run, not evidence/);
    assert.match(text, /\(results\/ablations\.png\)/);
    assert.ok((await Deno.stat(`${dir}/results/ablations.png`)).isFile);
    // A second run replaces its section, and leaves the rest alone.
    await writeResultsSection(results, "ablations", "## Ablations\n\nnew");
    text = await Deno.readTextFile(results);
    assert.equal(
      text,
      "# Results\n\nkept text\n\n<!-- ablations:begin -->\n## Ablations\n\nnew\n<!-- ablations:end -->\n",
    );
  });
});

Deno.test("figure1 --quick: the sweep, the seeds, the ratios and the chart", async () => {
  await withDir(async (dir) => {
    const args = [
      "--quick",
      ...TINY,
      "--lrs",
      "0.01,0.03",
      "--epochs",
      "1",
      "--out",
      `${dir}/run`,
      "--results",
      `${dir}/RESULTS.md`,
    ];
    const { value: code, printed } = await captured(() => figure1Main(args));
    assert.equal(code, 0);
    assert.match(printed, /^\*\*Smoke run, not evidence:\*\*/);
    const markdown = await Deno.readTextFile(`${dir}/run/figure1.md`);
    // Each activation's lr is the sweep's lowest training error.
    for (const name of ["ReLU \\(solid\\)", "tanh \\(dashed\\)"]) {
      const row = markdown.match(
        new RegExp(
          `\\| ${name} \\| 0\\.01: (\\d+\\.\\d)%; 0\\.03: (\\d+\\.\\d)% \\| (0\\.0[13]) \\|`,
        ),
      );
      assert.ok(row, `no ${name} row in\n${markdown}`);
      const [low, high] = [Number(row[1]), Number(row[2])];
      assert.equal(row[3], high < low ? "0.03" : "0.01");
    }
    assert.match(markdown, /- 25\.0% training error: tanh \/ ReLU = /);
    assert.match(markdown, /\n- 25\.0%: (too few seeds reached it|tanh minus ReLU [+-]\d)/);
    assert.match(markdown, /Fashion-MNIST is not\s+CIFAR-10/);
    const png = await Deno.readFile(`${dir}/run/figure1.png`);
    assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
    assert.match(await Deno.readTextFile(`${dir}/RESULTS.md`), /<!-- figure1:begin -->/);
  });
});

Deno.test("ablate: a diverged variant is a row that says so, and the others still run", async () => {
  await withDir(async (out) => {
    const base: TrainConfig = {
      ...DEFAULTS,
      out,
      device: "cpu",
      epochs: 1,
      batchSize: 16,
      trainLimit: 32,
      valSize: 16,
      testLimit: 16,
      schedule: "plateau",
      checkpointEvery: 1000,
      plain: true,
    };
    const huge = { ...VARIANTS[2], name: "huge lr", change: { lr: 1e6, checkpointEvery: 1 } };
    const results = await runAblations({ base, seeds: [1, 2], variants: [VARIANTS[0], huge] });
    const [full, diverged] = summarise(results);
    assert.equal(full.diverged, 0);
    assert.ok(full.test.mean >= 0 && full.test.mean <= 1);
    assert.equal(diverged.diverged, 2);
    assert.equal(diverged.lr, 1e6);
    assert.equal(diverged.verdict, "no verdict (diverged)");
    assert.match(results[1].outcomes[0].diverged!, /training diverged at step \d+ \(lr 1000000\)/);
  });
});

Deno.test("ablate and figure1: flags are parsed strictly and reach every run", () => {
  const parsed = parseAblateArgs([
    "--epochs",
    "3",
    "--train-limit",
    "500",
    "--batch-size",
    "16",
    "--seeds",
    "4",
    "--device",
    "cpu",
    "--out",
    "runs/x",
    "--overwrite",
  ])!;
  assert.deepEqual(
    [parsed.base.epochs, parsed.base.trainLimit, parsed.base.batchSize, parsed.base.device],
    [3, 500, 16, "cpu"],
  );
  assert.deepEqual(parsed.seeds, [1, 2, 3, 4]);
  assert.equal(parsed.base.lr, 0.01); // the paper's, for every variant
  assert.equal(parsed.base.overwrite, true);
  assert.equal(parsed.variants.length, 7);
  assert.equal(parseAblateArgs(["--quick"])!.quick, true);
  assert.throws(() => parseAblateArgs(["--epochs", "0x2"]), /--epochs must be an integer/);
  assert.throws(() => parseAblateArgs(["--variants", "full,nope"]), /--variants: unknown "nope"/);
  assert.throws(() => parseAblateArgs(["--nope"]), UsageError);
  const f = parseFigure1Args(["--lrs", "0.1,0.01", "--thresholds", "0.3,0.05"])!;
  assert.deepEqual([f.sweepLrs, f.thresholds], [[0.1, 0.01], [0.3, 0.05]]);
  assert.equal(f.base.weightDecay, 0);
  assert.equal(f.base.arch, "figure1-cnn");
  assert.throws(() => parseFigure1Args(["--thresholds", "1.5,0.1"]), /--thresholds must be two/);
  assert.throws(() => parseFigure1Args(["--lrs", "0.1,-1"]), /--lrs must be a number greater/);
  // A run that departs from the full preset says so above its table.
  assert.deepEqual(parseAblateArgs([])!.departures, []);
  assert.deepEqual(parsed.departures, [
    "--seeds 4 (full preset: 3)",
    "--epochs 3 (full preset: 6)",
    "--train-limit 500 (full preset: 9000)",
    "--batch-size 16 (full preset: 128)",
  ]);
  assert.deepEqual(parseFigure1Args([])!.departures, []);
  assert.deepEqual(f.departures, [
    "--lrs 0.1,0.01 (full preset: 0.003,0.01,0.03,0.1)",
    "--thresholds 0.3,0.05 (full preset: 0.25,0.2)",
  ]);
  assert.deepEqual(presetNote(false, []), []);
  assert.match(
    presetNote(false, f.departures)[0],
    /^\*\*Not the full preset:\*\* this run differs in --lrs/,
  );
  assert.equal(presetNote(true, f.departures)[0], NOT_EVIDENCE);
  // train-alexnet builds the same networks from the same flags.
  assert.equal(parseTrainCommand(["--one-gpu"])!.config.oneGpu, true);
  assert.equal(parseTrainCommand([])!.config.oneGpu, false);
  assert.equal(parseTrainCommand(["--arch", "figure1-cnn"])!.config.arch, "figure1-cnn");
  assert.throws(
    () => parseTrainCommand(["--arch", "figure1-cnn", "--devices", "2"]),
    /--devices 2 splits AlexNet's grouped layers; figure1-cnn has none/,
  );
});

Deno.test("figure1: the lr with the lowest training error wins; diverged rates never do", () => {
  assert.equal(chooseLr([{ lr: 0.01, trainError: 0.3 }, { lr: 0.1, trainError: 0.2 }]), 0.1);
  assert.equal(chooseLr([{ lr: 0.01, trainError: 0.3 }, { lr: 0.1, trainError: NaN }]), 0.01);
  assert.throws(() => chooseLr([{ lr: 1, trainError: NaN }]), /every swept lr diverged \(1\)/);
  // Paired by seed: exact ratios, a lower bound where tanh never got there, none without ReLU.
  assert.deepEqual(ratios([0.5, 1, null, 2], [3, null, 2, NaN], 8), [
    { value: 6, atLeast: false },
    { value: 8, atLeast: true },
    null,
    null,
  ]);
});

Deno.test("models: the one-GPU net halves conv1-4 and keeps conv5 (paper 3.2, footnote 2)", () => {
  const widths = (m: ReturnType<typeof alexnetMini>) =>
    [...m.namedParameters()].filter(([n]) => /^conv\d\.weight$/.test(n)).map(([, t]) => t.shape);
  assert.deepEqual(widths(alexnetMini({ oneGpu: true })), [
    [16, 1, 5, 5],
    [32, 16, 5, 5],
    [48, 32, 3, 3],
    [48, 48, 3, 3],
    [64, 48, 3, 3],
  ]);
  assert.throws(
    () => alexnetMini({ oneGpu: true, groups: 2 }),
    /oneGpu is the paper's net without groups/,
  );
  const net = figure1Net({ activation: "tanh" });
  assert.deepEqual(net.outputShape([2, 1, 28, 28]), [2, 10]);
  assert.ok([...net.namedParameters()].every(([n]) => /^(conv|fc)\d\./.test(n)));
  assert.throws(() => figure1Net({ init: "paper" as "he" }), /figure1Net: init must be "he"/);
});

Deno.test("the test set decides nothing: runs that differ only in it train identically", async () => {
  // Three epochs with the plateau schedule and best.safetensors: every decision the loop makes.
  await withDir(async (dir) => {
    const run = (testLimit: number, out: string): TrainConfig => ({
      ...DEFAULTS,
      out: `${dir}/${out}`,
      device: "cpu",
      epochs: 3,
      batchSize: 16,
      trainLimit: 32,
      valSize: 16,
      testLimit,
      lr: 0.05,
      schedule: "plateau",
      checkpointEvery: 1000,
      plain: true,
    });
    const a = await train(run(16, "a"), { quiet: true });
    const b = await train(run(48, "b"), { quiet: true });
    const decisions = (metrics: typeof a.metrics) =>
      metrics.map(({ testLoss: _l, testAccuracy: _a, seconds: _s, imagesPerSecond: _i, ...m }) =>
        m
      );
    assert.deepEqual(decisions(b.metrics), decisions(a.metrics));
    assert.notDeepEqual(
      b.metrics.filter((m) => m.kind === "epoch").map((m) => m.testLoss),
      a.metrics.filter((m) => m.kind === "epoch").map((m) => m.testLoss),
    );
    const best = async (out: string) =>
      [...(await loadSafetensors(`${dir}/${out}/best.safetensors`)).tensors].map(([name, t]) => [
        name,
        [...t.data],
      ]);
    assert.deepEqual(await best("b"), await best("a"));
  });
});
