/**
 * `deno task figure1`: the paper's Figure 1 in miniature. The paper trained "a four-layer
 * convolutional neural network" on CIFAR-10, with ReLUs and with tanh units, no regularisation,
 * each with the learning rate that made it train fastest, and found that the ReLU net reached
 * 25% training error six times sooner (in epochs). Here: a small conv net (models/alexnet.ts
 * `figure1Net`) on Fashion-MNIST, each activation's lr picked by a short sweep (lowest training
 * error after the sweep's epochs, one seed of its own), then several seeds at that lr through
 * the same loop as train-alexnet. It reports the epochs to 25% training error and to a harder
 * threshold (Fashion-MNIST is easier than CIFAR-10), the tanh/ReLU ratio per seed with its
 * spread, and the chart in the paper's style.
 *
 * @module
 */

import { DEFAULTS, parseNumberFlag, type TrainConfig, UsageError } from "../config.ts";
import { lineChartPng } from "../plot.ts";
import { mean, pairedInterval, standardDeviation, verdict } from "./stats.ts";
import {
  epochsToReach,
  parseExperimentFlags,
  pct,
  presetDepartures,
  presetNote,
  roughDuration,
  runExperiment,
  type SeedOutcome,
  trainSeeds,
} from "./experiment.ts";

/** A preset: the sweep and the seeds' budget. */
export interface Figure1Preset {
  epochs: number;
  trainLimit: number;
  valSize: number | "auto";
  batchSize: number;
  seeds: number;
  sweepLrs: number[];
  sweepEpochs: number;
  thresholds: [number, number];
}

/**
 * "full": 6,000 images, a sweep of four rates (1 epoch each), then 10 seeds x 4 epochs per
 * activation: within the 20-minute target on a 2-core CPU. The grid reaches down to 0.003
 * because with three rates (0.01, 0.03, 0.1) ReLU's best was the lowest, at the grid's edge;
 * ten seeds because three left the direction inconclusive. The second threshold, 20%, comes
 * after about 70 steps of batch 128 with ReLU at lr 0.03 (a trial run), well inside the
 * budget. "quick": a smoke run.
 */
export const PRESETS: Record<"full" | "quick", Figure1Preset> = {
  full: {
    epochs: 4,
    trainLimit: 6000,
    valSize: "auto",
    batchSize: 128,
    seeds: 10,
    sweepLrs: [0.003, 0.01, 0.03, 0.1],
    sweepEpochs: 1,
    thresholds: [0.25, 0.2],
  },
  quick: {
    epochs: 2,
    trainLimit: 256,
    valSize: 128,
    batchSize: 32,
    seeds: 2,
    sweepLrs: [0.01, 0.1],
    sweepEpochs: 1,
    thresholds: [0.25, 0.2],
  },
};

// Training speed of figure1Net, batch 128, on the CPU of this 2-core machine with the
// WebAssembly kernels: the full preset's 561,000 image-steps (see presetWork) took 12.2 minutes
// with an ablation running on the other core, about 770 img/s; 700 leaves some margin.
const CPU_IMAGES_PER_SECOND = 700;

/**
 * Image-steps of a whole preset (the sweep and the seeds of both activations): the training
 * images, and each epoch's evaluation of the validation split and 100 test images (forward
 * only, about a third of a training step per image).
 */
export function presetWork(p: Figure1Preset): number {
  const val = p.valSize === "auto" ? 1000 : p.valSize;
  const epochs = p.sweepLrs.length * p.sweepEpochs + p.seeds * p.epochs;
  return 2 * epochs * (p.trainLimit + (val + 100) / 3);
}

const HELP = `The paper's Figure 1 in miniature: ReLU vs tanh, epochs to a training error.

Usage: deno task figure1 [--quick] [options]

A small conv net with no regularisation (conv 16 - pool - conv 32 - pool - fc 128 - fc 10;
no dropout, no LRN, no weight decay; momentum 0.9, constant lr) trains on Fashion-MNIST with
ReLU and with tanh. Each activation's lr is the one of a short sweep that leaves the lowest
training error (the paper chose each net's lr "to make training as fast as possible"); then
every seed trains at that lr. Reported: epochs to 25% training error (the paper's threshold)
and to a harder one, the tanh/ReLU ratio per seed (the paper: 6x on CIFAR-10), and the chart.
Fashion-MNIST at 28 px is not CIFAR-10.

Presets
  (default)            full: sweep ${
  PRESETS.full.sweepLrs.join(", ")
} (${PRESETS.full.sweepEpochs} epoch, seed 0), then ${PRESETS.full.seeds} seeds x
                       ${PRESETS.full.epochs} epochs of ${PRESETS.full.trainLimit} images per activation. Estimated wall time on this
                       2-core machine (CPU, ~${CPU_IMAGES_PER_SECOND} img/s): ~${
  roughDuration(presetWork(PRESETS.full) / CPU_IMAGES_PER_SECOND)
}; an estimate
                       from one full run (12.2 min on 2026-11-29, an ablation
                       running on the other core)
  --quick              smoke run (${PRESETS.quick.trainLimit} images, ${PRESETS.quick.epochs} epochs, ${PRESETS.quick.seeds} seeds): "not evidence"

Options (override the preset)
  --seeds N            seeds per activation (1..N)
  --epochs N           epochs per seed
  --train-limit N      training images (0: all)
  --val-size N         validation images held out of the training set
  --batch-size N       images per step
  --lrs LIST           the sweep's learning rates, comma-separated
  --sweep-epochs N     epochs of each sweep run
  --thresholds A,B     training errors to reach (default 0.25,${PRESETS.full.thresholds[1]})
  --device NAME        auto (default) | cpu | gpu
  --out DIR            run folder (default runs/figure1): figure1.md, figure1.png, the runs
  --overwrite          replace the runs a previous figure1 left in --out
  --results FILE       also rewrite the Figure 1 section of FILE (e.g.
                       examples/alexnet/experiments/RESULTS.md) and its chart in results/ beside it
`;

/** A parsed figure1 command. */
export interface Figure1Command {
  base: TrainConfig;
  seeds: number[];
  sweepLrs: number[];
  sweepEpochs: number;
  thresholds: [number, number];
  quick: boolean;
  /** Flags that differ from the full preset (see {@link presetDepartures}). */
  departures: string[];
  results: string | null;
}

/** A preset's values keyed by their flags. */
function flagValues(p: Figure1Preset): Record<string, unknown> {
  return {
    seeds: p.seeds,
    epochs: p.epochs,
    "train-limit": p.trainLimit,
    "val-size": p.valSize,
    "batch-size": p.batchSize,
    lrs: p.sweepLrs.join(","),
    "sweep-epochs": p.sweepEpochs,
    thresholds: p.thresholds.join(","),
  };
}

function numberList(flag: string, text: string): number[] {
  return text.split(",").map((v) =>
    parseNumberFlag(flag, v.trim(), { min: 0, minExclusive: true })
  );
}

/** Parses figure1's command line; null for --help; throws {@link UsageError}. */
export function parseFigure1Args(args: string[]): Figure1Command | null {
  const flags = parseExperimentFlags(args, [
    "seeds",
    "epochs",
    "train-limit",
    "val-size",
    "batch-size",
    "sweep-epochs",
  ], ["lrs", "thresholds"]);
  if (flags === null) return null;
  const { values, int, device } = flags;
  const preset = PRESETS[values.quick ? "quick" : "full"];
  const thresholds = values.thresholds === undefined
    ? preset.thresholds
    : numberList("thresholds", values.thresholds as string);
  if (thresholds.length !== 2 || thresholds.some((t) => t >= 1)) {
    throw new UsageError(
      `--thresholds must be two training errors below 1, like 0.25,0.1; got "${values.thresholds}"`,
    );
  }
  const base: TrainConfig = {
    ...DEFAULTS,
    arch: "figure1-cnn",
    lr: NaN, // set per run by the sweep
    weightDecay: 0, // "No regularization of any kind was employed" (Figure 1's caption)
    dropout: false,
    lrn: false,
    schedule: "none",
    epochs: int("epochs", preset.epochs, 1),
    trainLimit: int("train-limit", preset.trainLimit, 0),
    valSize: values["val-size"] === undefined ? preset.valSize : int("val-size", 0, 1),
    // Figure 1 reads training error only; the loop still reports a test error, on a few images.
    testLimit: 100,
    batchSize: int("batch-size", preset.batchSize, 1),
    timeLimit: 0,
    checkpointEvery: 1_000_000,
    device,
    out: (values.out as string | undefined) ?? "runs/figure1",
    overwrite: values.overwrite === true,
    plain: true,
  };
  const chosen: Figure1Preset = {
    epochs: base.epochs,
    trainLimit: base.trainLimit,
    valSize: base.valSize,
    batchSize: base.batchSize,
    seeds: int("seeds", preset.seeds, 1),
    sweepLrs: values.lrs === undefined ? preset.sweepLrs : numberList("lrs", values.lrs as string),
    sweepEpochs: int("sweep-epochs", preset.sweepEpochs, 1),
    thresholds: thresholds as [number, number],
  };
  return {
    base,
    seeds: Array.from({ length: chosen.seeds }, (_, i) => i + 1),
    sweepLrs: chosen.sweepLrs,
    sweepEpochs: chosen.sweepEpochs,
    thresholds: chosen.thresholds,
    quick: values.quick === true,
    departures: presetDepartures(flagValues(chosen), flagValues(PRESETS.full)),
    results: (values.results as string | undefined) ?? null,
  };
}

/** One activation: its sweep, its chosen lr and its seeds. */
export interface ActivationResult {
  activation: "relu" | "tanh";
  /** Each swept lr with the training error of its last epoch (NaN: diverged). */
  sweep: { lr: number; trainError: number }[];
  /** The lr with the lowest sweep training error. */
  lr: number;
  outcomes: SeedOutcome[];
}

/** The sweep's choice: the lowest training error; diverged rates (NaN) never win. */
export function chooseLr(sweep: { lr: number; trainError: number }[]): number {
  const finite = sweep.filter((s) => Number.isFinite(s.trainError));
  if (finite.length === 0) {
    throw new Error(
      `figure1: every swept lr diverged (${sweep.map((s) => s.lr).join(", ")}); pass --lrs ` +
        "with smaller rates",
    );
  }
  return finite.reduce((best, s) => s.trainError < best.trainError ? s : best).lr;
}

/** Sweeps, then trains every seed, for ReLU and for tanh. */
export async function runFigure1(
  command: Pick<Figure1Command, "base" | "seeds" | "sweepLrs" | "sweepEpochs">,
  log: (line: string) => void = () => {},
): Promise<ActivationResult[]> {
  const results: ActivationResult[] = [];
  for (const activation of ["relu", "tanh"] as const) {
    const base = { ...command.base, activation, out: `${command.base.out}/${activation}` };
    const sweep = [];
    for (const lr of command.sweepLrs) {
      log(`== ${activation}: sweep lr ${lr} (${command.sweepEpochs} epoch(s), seed 0)`);
      const config = { ...base, lr, epochs: command.sweepEpochs, out: `${base.out}/sweep-lr${lr}` };
      const [outcome] = await trainSeeds(config, [0], log);
      sweep.push({ lr, trainError: outcome.trainError });
    }
    const lr = chooseLr(sweep);
    log(`== ${activation}: lr ${lr}, seeds ${command.seeds.join(", ")}`);
    const outcomes = await trainSeeds({ ...base, lr }, command.seeds, log);
    results.push({ activation, sweep, lr, outcomes });
  }
  return results;
}

/** Epochs to reach `target` of each seed (null: not reached; NaN: diverged). */
function reach(r: ActivationResult, target: number): (number | null)[] {
  return r.outcomes.map((o) =>
    o.diverged ? NaN : epochsToReach(o.metrics, o.stepsPerEpoch, target)
  );
}

function summary(xs: (number | null)[], digits = 2): string {
  const got = xs.filter((x): x is number => x !== null && !Number.isNaN(x));
  const missed = xs.filter((x) => x === null).length;
  const each = xs.map((x) => x === null ? "—" : Number.isNaN(x) ? "diverged" : x.toFixed(digits))
    .join(", ");
  if (got.length === 0) return `not reached (${each})`;
  const sd = got.length > 1 ? ` ± ${standardDeviation(got).toFixed(digits)}` : "";
  return `${mean(got).toFixed(digits)}${sd} (${each})${missed ? `; ${missed} not reached` : ""}`;
}

/** A per-seed ratio; `atLeast` when tanh had not reached the target by the end of its run. */
export interface Ratio {
  value: number;
  atLeast: boolean;
}

/**
 * tanh / ReLU epochs per seed, paired by seed. A tanh run that never reached the target gives a
 * lower bound (its epochs / ReLU's); null where ReLU did not reach it or a run diverged.
 */
export function ratios(
  relu: (number | null)[],
  tanh: (number | null)[],
  tanhEpochs: number,
): (Ratio | null)[] {
  return relu.map((r, i) => {
    if (r === null || r === 0 || Number.isNaN(tanh[i])) return null;
    const t = tanh[i];
    return t === null ? { value: tanhEpochs / r, atLeast: true } : { value: t / r, atLeast: false };
  });
}

function ratioSummary(list: (Ratio | null)[]): string {
  const each = list.map((r) => r === null ? "—" : `${r.atLeast ? "≥ " : ""}${r.value.toFixed(1)}`);
  const exact = list.filter((r): r is Ratio => r !== null && !r.atLeast).map((r) => r.value);
  const bounds = list.filter((r) => r?.atLeast).length;
  const missing = list.filter((r) => r === null).length;
  const middle = exact.length === 0
    ? "no exact ratio"
    : `${mean(exact).toFixed(1)}x${
      exact.length > 1 ? ` ± ${standardDeviation(exact).toFixed(1)}` : ""
    } over ${exact.length} seed(s), range ${Math.min(...exact).toFixed(1)}-${
      Math.max(...exact).toFixed(1)
    }`;
  const notes = [
    bounds ? `${bounds} lower bound(s): tanh did not get there in its epochs` : "",
    missing ? `${missing} without a ratio: ReLU did not get there or a run diverged` : "",
  ].filter(Boolean);
  return `${middle} (per seed: ${each.join(", ")})${notes.length ? `; ${notes.join("; ")}` : ""}`;
}

/** The markdown report: the caveat, the table, the ratios, the chart and how it was made. */
export function figure1Markdown(
  results: ActivationResult[],
  command: Pick<
    Figure1Command,
    "base" | "seeds" | "thresholds" | "quick" | "sweepEpochs" | "departures"
  >,
  commandLine: string,
): string {
  const [easy, hard] = command.thresholds;
  const b = command.base;
  const rows = results.map((r) => {
    const sweep = r.sweep.map((s) =>
      `${s.lr}: ${Number.isNaN(s.trainError) ? "diverged" : pct(s.trainError)}`
    )
      .join("; ");
    const final = r.outcomes.filter((o) => !o.diverged).map((o) => o.trainError);
    const diverged = r.outcomes.length - final.length;
    return `| ${
      r.activation === "relu" ? "ReLU (solid)" : "tanh (dashed)"
    } | ${sweep} | ${r.lr} | ` +
      `${summary(reach(r, easy))} | ${summary(reach(r, hard))} | ` +
      `${final.length ? `${pct(mean(final))}` : "-"}${diverged ? ` (${diverged} diverged)` : ""} |`;
  });
  const [relu, tanh] = results;
  const directionLine = (target: number) => {
    // Seeds where both nets got there: tanh's epochs minus ReLU's, paired by seed.
    const [r, t] = [reach(relu, target), reach(tanh, target)];
    const pairs = r.map((x, i) => [x, t[i]]).filter((p): p is [number, number] =>
      p.every((x) => x !== null && !Number.isNaN(x))
    );
    if (pairs.length < 2) {
      return `- ${pct(target)}: too few seeds reached it in both nets for an interval`;
    }
    const d = pairedInterval(pairs.map((p) => p[0]), pairs.map((p) => p[1]));
    return `- ${pct(target)}: tanh minus ReLU ${d.estimate >= 0 ? "+" : ""}${
      d.estimate.toFixed(2)
    } ` +
      `epochs [${d.low.toFixed(2)}, ${d.high.toFixed(2)}] over ${pairs.length} seeds: ` +
      `**${verdict(d, 1)}** with the paper (ReLU faster)`;
  };
  const ratioLine = (target: number) =>
    `- ${pct(target)} training error: tanh / ReLU = ${
      ratioSummary(ratios(reach(relu, target), reach(tanh, target), b.epochs))
    }`;
  return [
    "## Figure 1: ReLU vs tanh (paper section 3.1)",
    "",
    ...presetNote(command.quick, command.departures),
    `A small conv net with no regularisation on Fashion-MNIST at 28 px (${b.trainLimit || "all"} ` +
    `training images, batch ${b.batchSize}, momentum ${b.momentum}, no weight decay, constant lr), ` +
    `seeds ${command.seeds.join(", ")}. The paper used a four-layer conv net on CIFAR-10 and ` +
    "reports that ReLU reached 25% training error 6x sooner than tanh; **Fashion-MNIST is not " +
    "CIFAR-10** (it is easier, hence a second, harder threshold). Each lr is the " +
    `sweep's lowest training error after ${command.sweepEpochs} epoch(s) (seed 0). Epochs to a ` +
    "threshold: the first 10-step window of training at or below it; mean ± sd (per seed).",
    "",
    `| network | sweep: lr: train error | lr | epochs to ${pct(easy)} | epochs to ${
      pct(hard)
    } | final train error |`,
    "|---|---|---|---|---|---|",
    ...rows,
    "",
    "Ratio tanh / ReLU of the epochs needed, per seed (paper: 6x at 25% on CIFAR-10):",
    "",
    ratioLine(easy),
    ratioLine(hard),
    "",
    "Direction, with a paired 95% t interval (agrees: it excludes 0 on the paper's side, ReLU " +
    "faster; disagrees: on the other side; else inconclusive):",
    "",
    directionLine(easy),
    directionLine(hard),
    "",
    "![training error against epochs: ReLU solid, tanh dashed](figure1.png)",
    "",
    `Regenerate: \`${commandLine}\``,
  ].join("\n");
}

/** Training error (10-step windows, mean over seeds) against epochs: ReLU solid, tanh dashed. */
export function figure1Chart(results: ActivationResult[], thresholds: number[]): Uint8Array {
  const series = results.map((r) => {
    const bySteps = new Map<number, number[]>();
    let perEpoch = 1;
    for (const o of r.outcomes.filter((o) => !o.diverged)) {
      perEpoch = o.stepsPerEpoch;
      for (const m of o.metrics) {
        if (m.kind === "step") {
          bySteps.set(m.step, [...(bySteps.get(m.step) ?? []), 1 - m.trainAccuracy]);
        }
      }
    }
    return {
      name: `${r.activation === "relu" ? "ReLU" : "tanh"}, lr ${r.lr}`,
      points: [...bySteps].map(([step, xs]) =>
        [step / perEpoch, 100 * mean(xs)] as [number, number]
      ),
      dashed: r.activation === "tanh",
      color: (r.activation === "relu" ? [31, 119, 180] : [214, 39, 40]) as [number, number, number],
    };
  });
  const last = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[0])));
  const lines = thresholds.map((t) => ({
    name: `${pct(t)} training error`,
    points: [[0, 100 * t], [last, 100 * t]] as [number, number][],
    color: [150, 150, 150] as [number, number, number],
  }));
  return lineChartPng({
    title: "Figure 1 in miniature: training error (mean over seeds)",
    xLabel: "epochs",
    yLabelLeft: "training error %",
    series: [...series, ...lines],
  });
}

/** The command: parse, train, write the table and chart (and RESULTS.md with --results). */
export function main(args: string[]): Promise<number> {
  return runExperiment<Figure1Command, ActivationResult[]>({
    name: "figure1",
    help: HELP,
    parse: parseFigure1Args,
    run: runFigure1,
    markdown: figure1Markdown,
    chart: (results, command) => figure1Chart(results, command.thresholds),
  }, args);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
