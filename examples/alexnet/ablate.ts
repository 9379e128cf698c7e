/**
 * `deno task ablate`: the paper's ablations in miniature. Trains the mini AlexNet once per
 * variant (the full recipe, then each ingredient removed) for the same budget, prints a
 * markdown table in the shape of the paper's, and draws the training curves. The ReLU/tanh
 * pair is Figure 1 in miniature: epochs needed to reach a training error.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { writeFileAtomic } from "../../mod.ts";
import { DEFAULTS, parseNumberFlag, type TrainConfig, UsageError } from "./config.ts";
import { DivergenceError, type MetricRecord, train } from "./trainer.ts";
import { comparisonChartPng } from "./plot.ts";

/** One ablation: a name, the paper section it tests, and the change to the full recipe. */
export interface Variant {
  /** Row label. */
  name: string;
  /** What the paper measured for this ingredient. */
  paper: string;
  /** Changes to the configuration. */
  change: Partial<TrainConfig>;
}

/** The paper's ingredients, each removed in turn. */
export const VARIANTS: Variant[] = [
  { name: "full recipe", paper: "-", change: {} },
  {
    name: "no dropout",
    paper: "4.2: dropout halves overfitting, doubles epochs",
    change: { dropout: false },
  },
  { name: "no LRN", paper: "3.3: LRN -1.4% top-1, -1.2% top-5", change: { lrn: false } },
  {
    name: "plain pooling (2x2/2)",
    paper: "3.4: overlap -0.4% top-1, -0.3% top-5",
    change: { pool: "plain" },
  },
  { name: "one group", paper: "3.2: two-GPU net -1.7% top-1 vs half-size", change: { groups: 1 } },
  {
    name: "tanh instead of ReLU",
    paper: "3.1/Fig. 1: ReLU reaches 25% train error 6x faster",
    change: { activation: "tanh" },
  },
];

/** First (fractional) epoch at which the running training error is at most `target`. */
export function epochsToReach(
  metrics: MetricRecord[],
  stepsPerEpoch: number,
  target: number,
): number | null {
  for (const m of metrics) {
    if (m.kind === "step" && 1 - m.trainAccuracy <= target) return m.step / stepsPerEpoch;
  }
  return null;
}

/** Options of {@link runAblations}. */
export interface AblationOptions {
  /** Base configuration (budget, device, data). */
  base: TrainConfig;
  /** Training error for the Figure-1 column. */
  targetError: number;
  /** Variants to run (default all). */
  variants?: Variant[];
}

/** Trains every variant and returns the markdown table and the curves' PNG. */
export async function runAblations(
  options: AblationOptions,
): Promise<{ table: string; png: Uint8Array }> {
  const rows: string[] = [];
  const curves: { name: string; points: [number, number][] }[] = [];
  let fullError = NaN;
  for (const variant of options.variants ?? VARIANTS) {
    const slug = variant.name.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
    const config: TrainConfig = {
      ...options.base,
      ...variant.change,
      out: `${options.base.out}/${slug}`,
    };
    console.log(`== ${variant.name}`);
    let result;
    try {
      result = await train(config);
    } catch (error) {
      if (!(error instanceof DivergenceError)) throw error;
      // A diverged variant is a result: its row says so, with its lr, and the others go on.
      console.log(error.message);
      rows.push(
        `| ${variant.name} | diverged (lr ${config.lr}) | - | - | - | - | ${variant.paper} |`,
      );
      continue;
    }
    const epochs = result.metrics.filter((m) => m.kind === "epoch");
    const last = epochs.at(-1)!;
    const valError = 1 - last.valAccuracy!;
    const testError = 1 - last.testAccuracy!;
    if (variant.change && Object.keys(variant.change).length === 0) fullError = testError;
    const stepsPerEpoch = last.step / last.epoch;
    const reach = epochsToReach(result.metrics, stepsPerEpoch, options.targetError);
    const delta = Number.isNaN(fullError) || testError === fullError
      ? "-"
      : `${(100 * (testError - fullError)).toFixed(1)}`;
    rows.push(
      `| ${variant.name} | ${(100 * (1 - last.trainAccuracy)).toFixed(1)}% | ${
        (100 * valError).toFixed(1)
      }% | ${(100 * testError).toFixed(1)}% | ${delta} | ` +
        `${reach === null ? "not reached" : reach.toFixed(2)} | ${variant.paper} |`,
    );
    curves.push({
      name: variant.name,
      points: result.metrics.filter((m) => m.kind === "step").map((
        m,
      ) => [m.step / stepsPerEpoch, 100 * (1 - m.trainAccuracy)]),
    });
  }
  const table = [
    `| variant | train error | validation error | test error | Δ test error (points) | epochs to ${
      (100 * options.targetError).toFixed(0)
    }% train error | paper |`,
    "|---|---|---|---|---|---|---|",
    ...rows,
  ].join("\n");
  const png = comparisonChartPng(curves, {
    title: "ABLATIONS: TRAINING ERROR",
    xLabel: "EPOCH",
    yLabel: "TRAIN ERROR %",
  });
  return { table, png };
}

const HELP = `Train the mini AlexNet once per ablation and compare (paper sections 3.1-3.4, 4.2).

Usage: deno task ablate [options]

  --epochs N         epochs per variant (default 2)
  --train-limit N    training images per variant (default 3000; 0 = all)
  --test-limit N     test images (default 1000; 0 = all)
  --batch-size N     (default 64)
  --target-error X   training error for the "epochs to reach" column (default 0.25, as Figure 1)
  --device NAME      auto (default) | cpu | gpu
  --out DIR          folder for the runs, table and chart (default runs/ablate)
  --overwrite        replace the runs a previous ablation left in --out
`;

/** Parses ablate's command line into the base configuration; throws {@link UsageError}. */
export function parseAblateArgs(
  args: string[],
): { base: TrainConfig; targetError: number } | null {
  let values;
  try {
    values = parseArgs({
      args,
      options: {
        epochs: { type: "string" },
        "train-limit": { type: "string" },
        "test-limit": { type: "string" },
        "batch-size": { type: "string" },
        "target-error": { type: "string" },
        device: { type: "string" },
        out: { type: "string" },
        overwrite: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    throw new UsageError((error as Error).message.split("\n")[0]);
  }
  if (values.help) return null;
  const int = (name: string, value: string | undefined, fallback: number, min: number) =>
    value === undefined ? fallback : parseNumberFlag(name, value, { integer: true, min });
  const device = values.device ?? "auto";
  if (!["auto", "cpu", "gpu"].includes(device)) {
    throw new UsageError(`--device must be one of auto, cpu, gpu; got "${device}"`);
  }
  const targetError = values["target-error"] === undefined
    ? 0.25
    : parseNumberFlag("target-error", values["target-error"], { min: 0 });
  if (targetError >= 1) {
    throw new UsageError(`--target-error must be below 1; got "${values["target-error"]}"`);
  }
  const base: TrainConfig = {
    ...DEFAULTS,
    epochs: int("epochs", values.epochs, 2, 1),
    trainLimit: int("train-limit", values["train-limit"], 3000, 0),
    testLimit: int("test-limit", values["test-limit"], 1000, 0),
    batchSize: int("batch-size", values["batch-size"], 64, 1),
    schedule: "none",
    timeLimit: 0,
    checkpointEvery: 1_000_000,
    device: device as TrainConfig["device"],
    out: values.out ?? "runs/ablate",
    overwrite: values.overwrite ?? false,
    plain: true,
  };
  return { base, targetError };
}

if (import.meta.main) {
  try {
    const command = parseAblateArgs(Deno.args);
    if (command === null) {
      console.log(HELP);
      Deno.exit(0);
    }
    const out = command.base.out;
    await Deno.mkdir(out, { recursive: true });
    const { table, png } = await runAblations(command);
    await writeFileAtomic(`${out}/ablations.png`, png);
    await writeFileAtomic(`${out}/ablations.md`, new TextEncoder().encode(table + "\n"));
    console.log(`\n${table}\n\nWrote ${out}/ablations.md and ${out}/ablations.png`);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`ablate: ${error.message} (see --help)`);
      Deno.exit(2);
    }
    console.error(`ablate: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
