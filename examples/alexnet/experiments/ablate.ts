/**
 * `deno task ablate`: the paper's ablations (sections 3.1-3.4, 4.2) as an experiment on the mini
 * AlexNet, designed so a skeptic can accept the answer (issue 19): every variant trains on the
 * same seeds with the same recipe (cosine schedule, no decision on the validation split); each
 * row compares a variant with a reference of matched size (parameters and multiply-adds are
 * reported per row, from the model's summary), paired by seed where both start from the same
 * weights; the seed count comes from a stated minimum detectable effect; verdicts are
 * corrected for their number (Holm); dropout is judged on the train-validation gap (training
 * error in evaluation mode) and at twice the epochs; LRN is tested where its data-dependent
 * term is not negligible (alpha at the paper's pixel scale) and that term is logged. Every
 * seed's records go to ablations.json, from which the table and the chart are drawn
 * (`--from-json` redraws them byte for byte).
 *
 * @module
 */

import { DEFAULTS, parseNumberFlag, type TrainConfig, UsageError } from "../config.ts";
import { buildModel } from "../learner.ts";
import { tenCropTestError } from "./ten_crop.ts";
import { lineChartPng, PALETTE as TAB10 } from "../plot.ts";
import {
  type Difference,
  holm,
  mean,
  minimumDetectableEffect,
  pairedInterval,
  pValue,
  seedsFor,
  standardDeviation,
  verdict,
  welchInterval,
} from "./stats.ts";
import {
  parseExperimentFlags,
  presetDepartures,
  presetNote,
  provenanceLine,
  type ResultsFile,
  roughDuration,
  runExperiment,
  type SeedOutcome,
  trainSeeds,
} from "./experiment.ts";
import type { RunRecords } from "./records.ts";

/** One configuration the ablation trains: the change to the full recipe. */
export interface Variant {
  /** Label. */
  name: string;
  /** Short name for --variants and the run folder. */
  slug: string;
  /** Changes to the configuration. */
  change: Partial<TrainConfig>;
  /** Epochs as a multiple of the preset's (default 1). */
  epochsFactor?: number;
  /** Also evaluate each seed's final weights with ten-crop testing (ten_crop.ts). */
  tenCrop?: boolean;
}

/** One row of the table: a variant against its reference, on one quantity. */
export interface Comparison {
  /** Row label. */
  name: string;
  /** The variant measured. */
  variant: string;
  /** The variant it is compared with. */
  reference: string;
  /**
   * "test": test error after the last epoch; "gap": validation error minus the training error
   * in evaluation mode; "ten-crop" / "centre": test error of ten-crop testing / of its centre
   * view alone.
   */
  measure: Measure;
  /** The reference's measure, when it differs (ten crops against the centre, same runs). */
  referenceMeasure?: Measure;
  /** Paired by seed (the two start from the same weights and see the same batches) or Welch. */
  paired: boolean;
  /** The paper's figure (ImageNet; not comparable with Fashion-MNIST at 28 px). */
  paper: string;
  /** +1 (-1): the paper reports a higher (lower) value for the variant; null: no claim (no verdict, not in Holm's family). */
  paperSign: 1 | -1 | null;
}

/** What a row compares. */
export type Measure = "test" | "gap" | "ten-crop" | "centre";

/** Padding of the random-crop variant and of ten-crop testing (28 px crops of 32). */
export const CROP_PADDING = 2;

/** The paper's pixel scale: its inputs are 0-255 minus the mean, ours ~N(0, 1) (x 255 in a, x 255² in Σa²). */
export const PIXEL_SCALE_ALPHA = 1e-4 * 255 * 255;

/** The configurations, the full recipe first. */
export const VARIANTS: Variant[] = [
  { name: "full recipe", slug: "full", change: {} },
  { name: "no dropout", slug: "no-dropout", change: { dropout: false } },
  { name: "full recipe, 2x epochs", slug: "full-2x", change: {}, epochsFactor: 2 },
  {
    name: "no dropout, 2x epochs",
    slug: "no-dropout-2x",
    change: { dropout: false },
    epochsFactor: 2,
  },
  {
    name: "LRN at the paper's pixel scale (alpha x 255²)",
    slug: "lrn-pixel",
    change: { lrnAlpha: PIXEL_SCALE_ALPHA },
  },
  { name: "no LRN", slug: "no-lrn", change: { lrn: false } },
  {
    name: "non-overlapping pooling 2x2/2 at equal map sizes (28-13-6-2)",
    slug: "plain-matched",
    change: { pool: "plain-matched" },
  },
  {
    name: "non-overlapping pooling 2x2/2 (28-14-7-3)",
    slug: "plain-pool",
    change: { pool: "plain" },
  },
  { name: "one-GPU net, half the kernels in conv1-4", slug: "one-gpu", change: { oneGpu: true } },
  {
    name: "one-GPU net, fc widened to ~98% of the parameters",
    slug: "one-gpu-matched",
    change: { oneGpu: true, fcWidth: -1 }, // -1: chosen by matchedFcWidth
  },
  { name: "same width, one group", slug: "groups-1", change: { groups: 1 } },
  {
    name: `random 28 px crops of the image padded by ${CROP_PADDING} (section 4.1)`,
    slug: "random-crops",
    change: { padCrop: CROP_PADDING },
    tenCrop: true,
  },
  { name: "tanh instead of ReLU", slug: "tanh", change: { activation: "tanh" } },
];

/** The rows of the table; those with a claim form Holm's family. */
export const COMPARISONS: Comparison[] = [
  {
    name: "no dropout: train-validation gap",
    variant: "no-dropout",
    reference: "full",
    measure: "gap",
    paired: true,
    paper: "4.2: substantial overfitting without it",
    paperSign: 1,
  },
  {
    name: "no dropout at 2x epochs: test error",
    variant: "no-dropout-2x",
    reference: "full-2x",
    measure: "test",
    paired: true,
    paper: "4.2: dropout doubles the iterations to converge, and helps",
    paperSign: 1,
  },
  {
    name: "no LRN vs LRN at pixel scale",
    variant: "no-lrn",
    reference: "lrn-pixel",
    measure: "test",
    paired: true,
    paper: "3.3: +1.4 top-1, +1.2 top-5",
    paperSign: 1,
  },
  {
    name: "no LRN vs the mini's LRN (a constant scale: control)",
    variant: "no-lrn",
    reference: "full",
    measure: "test",
    paired: true,
    paper: "-",
    paperSign: null,
  },
  {
    name: "non-overlapping pooling, equal map sizes",
    variant: "plain-matched",
    reference: "full",
    measure: "test",
    paired: true,
    paper: "3.4: +0.4 top-1, +0.3 top-5",
    paperSign: 1,
  },
  {
    name: "non-overlapping pooling, larger maps (confounded: control)",
    variant: "plain-pool",
    reference: "full",
    measure: "test",
    paired: false,
    paper: "-",
    paperSign: null,
  },
  {
    name: "one-GPU net, parameters matched",
    variant: "one-gpu-matched",
    reference: "full",
    measure: "test",
    paired: false,
    paper: "3.2: +1.7 top-1, +1.2 top-5 (98% of the parameters)",
    paperSign: 1,
  },
  {
    name: "one-GPU net, half the kernels",
    variant: "one-gpu",
    reference: "full",
    measure: "test",
    paired: false,
    paper: "3.2: +1.7 top-1, +1.2 top-5",
    paperSign: 1,
  },
  {
    name: "same width, one group",
    variant: "groups-1",
    reference: "full",
    measure: "test",
    paired: false,
    paper: "not in the paper",
    paperSign: null,
  },
  {
    name: "random crops (translations) vs none",
    variant: "random-crops",
    reference: "full",
    measure: "test",
    paired: true,
    paper: "4.1: without it, substantial overfitting",
    paperSign: -1,
  },
  {
    name: "ten-crop vs centre testing (random-crop runs)",
    variant: "random-crops",
    reference: "random-crops",
    measure: "ten-crop",
    referenceMeasure: "centre",
    paired: true,
    paper: "4.1: ten patches averaged at test time (no separate figure)",
    paperSign: -1,
  },
  {
    name: "tanh instead of ReLU",
    variant: "tanh",
    reference: "full",
    measure: "test",
    paired: true,
    paper: "3.1/Fig. 1: ReLU trains ~6x faster (no error given)",
    paperSign: 1,
  },
];

/**
 * The default --variants: every configuration a row with a claim needs (plain-pool and
 * groups-1, controls without a claim, run when named).
 */
export const DEFAULT_VARIANTS: Variant[] = VARIANTS.filter((v) =>
  v.slug !== "plain-pool" && v.slug !== "groups-1"
);

/**
 * The seed count's basis, fixed before any run: the smallest difference to detect (points of
 * error), the pilot's spread and where it comes from. Seeds = the fewest for which a Welch
 * test at Holm's strictest level (0.05 / the number of claims) has 80% power at that
 * difference (stats.seedsFor); paired rows detect less when their differences vary less.
 */
export const POWER_PLAN = {
  effect: 1.0,
  pilotSd: 0.93,
  pilot: "the pooled sd of test error over the 7 rows of the previous design's\n" +
    "                     full run (commit ab07730: 0.6, 0.4, 0.4, 0.7, 2.0, 0.9, 0.3 points,\n" +
    "                     3 seeds each)",
};

/** Claims in Holm's family. */
export const CLAIMS = COMPARISONS.filter((c) => c.paperSign !== null).length;

/** The full preset's seed count (see {@link POWER_PLAN}). */
export const PLANNED_SEEDS = seedsFor(
  POWER_PLAN.effect / 100,
  POWER_PLAN.pilotSd / 100,
  "welch",
  0.05 / CLAIMS,
);

/** A preset: the budget of every variant's runs. */
export interface AblatePreset {
  epochs: number;
  trainLimit: number;
  valSize: number | "auto";
  testLimit: number;
  batchSize: number;
  seeds: number;
  evalTrain: number;
}

/**
 * "full": 6 epochs of 9,000 images with cosine annealing from lr 0.01 to 0 (no decision on
 * the validation split, so no schedule noise), training error measured in evaluation mode on
 * 2,000 training images, {@link PLANNED_SEEDS} seeds. "quick": a smoke run.
 */
export const PRESETS: Record<"full" | "quick", AblatePreset> = {
  full: {
    epochs: 6,
    trainLimit: 9000,
    valSize: "auto",
    testLimit: 0,
    batchSize: 128,
    seeds: PLANNED_SEEDS,
    evalTrain: 2000,
  },
  quick: {
    epochs: 1,
    trainLimit: 256,
    valSize: 128,
    testLimit: 128,
    batchSize: 32,
    seeds: 2,
    evalTrain: 128,
  },
};

/** Runs of a whole preset, counting a 2x-epochs configuration's run as two. */
export function presetRuns(preset: AblatePreset, variants: Variant[]): number {
  return preset.seeds * variants.reduce((n, v) => n + (v.epochsFactor ?? 1), 0);
}

// What the full preset took on the CPU of the 2-core build machine, both threads: the sum of
// the training times of its 275 runs (commit 0604c5f, 2026-12-06, in parts; 60-263 s each, the
// 12-epoch rows and tanh, which has no WebAssembly kernel, the slowest).
const FULL_PRESET_SECONDS = 36773;

const HELP = `The paper's ablations on the mini AlexNet: matched comparisons, planned power,
Holm-corrected verdicts, raw data.

Usage: deno task ablate [--quick] [options]
       deno task ablate --from-json FILE [--out DIR] [--results FILE]

Every configuration (--variants) trains with the same recipe (lr 0.01 annealed to 0 on a
cosine over the epochs, batch 128, momentum 0.9, weight decay 0.0005) on the same seeds; a
seed fixes the initial weights (dropout has its own draws, so "no dropout" starts from the
same weights), the batch order and the augmentation. Each row compares a variant with its
reference: paired by seed where both start from the same weights, else Welch. The interval
of each row is at its Holm level (alpha 0.05 over the ${CLAIMS} rows with a claim), so it excludes
0 exactly when Holm's step-down test rejects (unless an earlier row stopped it). Per row:
parameters and multiply-adds relative to the full recipe, seeds, the minimum detectable
effect (80% power at the row's Holm level, from the rows' own sd), the interval, the verdict.
Fashion-MNIST at 28 px is not ImageNet: a verdict describes this miniature.

Stopping rule, fixed before running: the seed count comes from the plan below, every seed
runs, none is added or dropped after seeing results; a diverged seed is a result (its rows
get no verdict).

Presets
  (default)          full: ${PRESETS.full.seeds} seeds x ${PRESETS.full.epochs} epochs (12 for the 2x rows) of ${PRESETS.full.trainLimit} images per
                     configuration. ${PRESETS.full.seeds} seeds: the fewest that detect ${POWER_PLAN.effect} point with 80% power
                     (Welch, alpha 0.05/${CLAIMS}) at a pilot sd of ${POWER_PLAN.pilotSd} points:
                     ${POWER_PLAN.pilot}.
                     Wall time on this 2-core machine's CPU, measured: ${
  roughDuration(FULL_PRESET_SECONDS)
} (${presetRuns(PRESETS.full, DEFAULT_VARIANTS)} six-epoch
                     units; with --resume it ran in parts: RESULTS.md's Status)
  --quick            smoke run (${PRESETS.quick.seeds} seeds, ${PRESETS.quick.trainLimit} images, 1 epoch): "not evidence"

Options (override the preset)
  --seeds N          seeds per variant (1..N)
  --epochs N         epochs per run
  --train-limit N    training images (0: all)
  --val-size N       validation images held out of the training set
  --test-limit N     test images (0: all)
  --eval-train N     training images evaluated in evaluation mode after each epoch
  --batch-size N     images per step
  --lr X             initial learning rate for every variant (default 0.01, the paper's)
  --variants LIST    comma-separated (default: all but plain-pool and groups-1):
                     ${VARIANTS.map((v) => v.slug).join(",")}
  --device NAME      auto (default) | cpu | gpu
  --out DIR          run folder (default runs/ablate): one sub-folder per variant and seed,
                     ablations.md, ablations.png and ablations.json (every seed's records)
  --records DIR      where each finished run is recorded, one JSON per variant and seed
                     (default <out>/records)
  --resume           keep the runs --records holds from this commit with these arguments
                     (same Deno, same CPU model) and train the rest: a stopped ablation
                     goes on where it stopped, on this machine or another
  --overwrite        replace the runs a previous ablation left in --out and --records
  --results FILE     also rewrite the ablation section of FILE (e.g.
                     examples/alexnet/experiments/RESULTS.md), its chart and JSON in results/
  --from-json FILE   redraw the table and chart from a results JSON, without training
`;

/** A parsed ablate command. */
export interface AblateCommand {
  base: TrainConfig;
  seeds: number[];
  variants: Variant[];
  quick: boolean;
  /** Flags that differ from the full preset (see {@link presetDepartures}). */
  departures: string[];
  results: string | null;
  /** Where finished runs are recorded, and whether earlier records are kept (records.ts). */
  records: string;
  resume: boolean;
}

/** Parses ablate's command line; null for --help; throws {@link UsageError}. */
export function parseAblateArgs(args: string[]): AblateCommand | null {
  const flags = parseExperimentFlags(args, [
    "seeds",
    "epochs",
    "train-limit",
    "val-size",
    "test-limit",
    "batch-size",
    "eval-train",
  ], ["lr", "variants"]);
  if (flags === null) return null;
  const { values, int, device } = flags;
  const preset = PRESETS[values.quick ? "quick" : "full"];
  const base: TrainConfig = {
    ...DEFAULTS,
    lr: values.lr === undefined
      ? 0.01
      : parseNumberFlag("lr", values.lr as string, { min: 0, minExclusive: true }),
    epochs: int("epochs", preset.epochs, 1),
    trainLimit: int("train-limit", preset.trainLimit, 0),
    valSize: values["val-size"] === undefined ? preset.valSize : int("val-size", 0, 1),
    testLimit: int("test-limit", preset.testLimit, 0),
    batchSize: int("batch-size", preset.batchSize, 1),
    evalTrain: int("eval-train", preset.evalTrain, 0),
    schedule: "cosine",
    timeLimit: 0,
    checkpointEvery: 1_000_000,
    device,
    out: (values.out as string | undefined) ?? "runs/ablate",
    overwrite: values.overwrite === true,
    plain: true,
  };
  const seedCount = int("seeds", preset.seeds, 1);
  return {
    base,
    seeds: Array.from({ length: seedCount }, (_, i) => i + 1),
    variants: pickVariants(values.variants as string | undefined),
    quick: values.quick === true,
    departures: presetDepartures(
      {
        ...flagValues(base, seedCount),
        variants: values.variants === undefined ? "all" : values.variants,
      },
      {
        ...flagValues({ ...base, ...PRESETS.full, lr: 0.01 }, PRESETS.full.seeds),
        variants: "all",
      },
    ),
    results: (values.results as string | undefined) ?? null,
    records: (values.records as string | undefined) ?? `${base.out}/records`,
    resume: values.resume === true,
  };
}

/** The preset-controlled values of a run, keyed by their flags. */
function flagValues(c: Omit<AblatePreset, "seeds"> & { lr: number }, seeds: number) {
  return {
    seeds,
    epochs: c.epochs,
    "train-limit": c.trainLimit,
    "val-size": c.valSize,
    "test-limit": c.testLimit,
    "batch-size": c.batchSize,
    "eval-train": c.evalTrain,
    lr: c.lr,
  };
}

function pickVariants(list: string | undefined): Variant[] {
  if (list === undefined) return DEFAULT_VARIANTS;
  const slugs = list.split(",").map((s) => s.trim());
  for (const slug of slugs) {
    if (!VARIANTS.some((v) => v.slug === slug)) {
      throw new UsageError(
        `--variants: unknown "${slug}"; choose from ${VARIANTS.map((v) => v.slug).join(", ")}`,
      );
    }
  }
  return VARIANTS.filter((v) => slugs.includes(v.slug));
}

/** Parameters and multiply-adds of one configuration's network (Fashion-MNIST's 1x28x28). */
export function modelSize(config: TrainConfig): { parameters: number; multiplyAdds: number } {
  const report = buildModel(config, [1, 28, 28], 10).summary([1, 1, 28, 28], { print: false });
  return { parameters: report.totalParameters, multiplyAdds: report.totalMultiplyAdds };
}

/**
 * The hidden fc width that brings the one-GPU net closest to 98% of the full net's
 * parameters (the paper's one-GPU net kept 98%; section 3.2, footnote 2).
 */
export function matchedFcWidth(base: TrainConfig): number {
  const target = 0.98 * modelSize({ ...base, oneGpu: false, fcWidth: 0 }).parameters;
  let best = 1, bestGap = Infinity;
  // Parameters grow monotonically with the width: a scan of the plausible range.
  for (let width = 16; width <= 4096; width += 1) {
    const gap = Math.abs(
      modelSize({ ...base, oneGpu: true, groups: 1, fcWidth: width }).parameters - target,
    );
    if (gap < bestGap) [best, bestGap] = [width, gap];
    else if (gap > bestGap) break;
  }
  return best;
}

/** A variant's configuration on top of `base`. */
export function variantConfig(base: TrainConfig, variant: Variant): TrainConfig {
  const config: TrainConfig = {
    ...base,
    ...variant.change,
    epochs: base.epochs * (variant.epochsFactor ?? 1),
    out: `${base.out}/${variant.slug}`,
  };
  if (config.oneGpu) config.groups = 1;
  if (config.fcWidth === -1) config.fcWidth = matchedFcWidth(base);
  return config;
}

/** One variant's seeds. */
export interface VariantResult {
  slug: string;
  name: string;
  lr: number;
  epochs: number;
  /** Its network's size. */
  parameters: number;
  multiplyAdds: number;
  /** The hidden fc width (0: the network's own). */
  fcWidth: number;
  outcomes: SeedOutcome[];
}

/** Trains every variant over every seed (see the module doc). */
export async function runAblations(
  command: Pick<AblateCommand, "base" | "seeds" | "variants">,
  log: (line: string) => void = () => {},
  records?: RunRecords,
): Promise<VariantResult[]> {
  const results: VariantResult[] = [];
  const runs = command.variants.length * command.seeds.length;
  let done = 0, seconds = 0;
  for (const variant of command.variants) {
    const config = variantConfig(command.base, variant);
    const size = modelSize(config);
    log(`== ${variant.name} (lr ${config.lr}, seeds ${command.seeds.join(", ")})`);
    // Ten-crop testing reads the run's checkpoint: it completes the outcome before it is recorded.
    const finish = variant.tenCrop
      ? async (run: TrainConfig, o: SeedOutcome) => {
        const errors = await tenCropTestError(run, CROP_PADDING);
        o.tenCropError = errors.tenCrop;
        o.centreError = errors.centre;
        log(
          `  seed ${o.seed}: ten-crop test error ${(100 * errors.tenCrop).toFixed(1)}%, ` +
            `centre ${(100 * errors.centre).toFixed(1)}%`,
        );
      }
      : undefined;
    const outcomes = await trainSeeds(config, command.seeds, log, {
      records,
      name: variant.slug,
      finish,
    });
    results.push({
      slug: variant.slug,
      name: variant.name,
      lr: config.lr,
      epochs: config.epochs,
      ...size,
      fcWidth: config.fcWidth,
      outcomes,
    });
    done += outcomes.length;
    seconds += outcomes.reduce((total, o) => total + o.seconds, 0);
    if (done < runs) {
      log(
        `   ${done}/${runs} runs done; about ${
          roughDuration((seconds / done) * (runs - done))
        } left`,
      );
    }
  }
  return results;
}

/** A row of the table: a comparison's statistics and its verdict. */
export interface AblationRow {
  comparison: Comparison;
  variant: VariantResult;
  reference: VariantResult;
  /** Seeds with a finite result in both (paired) or in each. */
  seeds: number;
  diverged: number;
  /** The measured quantity of variant and reference, per seed (fractions). */
  values: { variant: number[]; reference: number[] };
  /** Variant minus reference with its interval at the Holm level (null: no interval). */
  delta: Difference | null;
  p: number;
  /** Holm's level for the row (NaN: no claim). */
  level: number;
  /** Minimum detectable effect at the row's level, 80% power, from the rows' own sd. */
  mde: number;
  verdict: string;
}

const finiteOutcomes = (r: VariantResult) => r.outcomes.filter((o) => !o.diverged);

function measureOf(o: SeedOutcome, measure: Measure): number {
  if (measure === "gap") return o.valError - o.trainEvalError;
  if (measure === "ten-crop") return o.tenCropError ?? NaN;
  if (measure === "centre") return o.centreError ?? NaN;
  return o.testError;
}

const MEASURE_NAMES: Record<Measure, string> = {
  test: "test error",
  gap: "val - train(eval) error",
  "ten-crop": "test error, 10 crops",
  centre: "test error, centre",
};

/**
 * A comparison's values, reference first: paired by seed (seeds finite in both) or every
 * finite seed of each; `usable` when each side has 2 finite values or more.
 */
function measured(comparison: Comparison, variant: VariantResult, reference: VariantResult) {
  const referenceMeasure = comparison.referenceMeasure ?? comparison.measure;
  const runs = variant === reference ? [variant] : [variant, reference];
  const diverged = runs.reduce((n, r) => n + r.outcomes.length - finiteOutcomes(r).length, 0);
  let a: number[], b: number[];
  if (comparison.paired) {
    const seeds = finiteOutcomes(variant).map((o) => o.seed)
      .filter((s) => finiteOutcomes(reference).some((o) => o.seed === s));
    const pick = (r: VariantResult, measure: Measure) =>
      seeds.map((s) => measureOf(r.outcomes.find((o) => o.seed === s)!, measure));
    [a, b] = [pick(reference, referenceMeasure), pick(variant, comparison.measure)];
  } else {
    a = finiteOutcomes(reference).map((o) => measureOf(o, referenceMeasure));
    b = finiteOutcomes(variant).map((o) => measureOf(o, comparison.measure));
  }
  const usable = a.length >= 2 && b.length >= 2 && [...a, ...b].every(Number.isFinite);
  return { a, b, diverged, usable };
}

/** The rows whose variant and reference both ran, with Holm's correction over the claims. */
export function summarise(results: VariantResult[]): AblationRow[] {
  const bySlug = new Map(results.map((r) => [r.slug, r]));
  const rows = COMPARISONS.filter((c) => bySlug.has(c.variant) && bySlug.has(c.reference))
    .map((comparison) => {
      const [variant, reference] = [
        bySlug.get(comparison.variant)!,
        bySlug.get(comparison.reference)!,
      ];
      const m = measured(comparison, variant, reference);
      return {
        comparison,
        variant,
        reference,
        ...m,
        p: m.usable ? pValue(m.a, m.b, comparison.paired) : NaN,
      };
    });
  const claims = rows.filter((r) => r.comparison.paperSign !== null);
  const corrected = holm(claims.map((r) => r.p));
  return rows.map((row) => {
    const { comparison, a, b, usable } = row;
    const claim = claims.indexOf(row);
    const level = claim >= 0 ? corrected[claim].level : 0.05;
    const design = comparison.paired ? "paired" : "welch";
    const delta = !usable
      ? null
      : comparison.paired
      ? pairedInterval(a, b, 1 - level)
      : welchInterval(a, b, 1 - level);
    const sd = !usable
      ? NaN
      : comparison.paired
      ? standardDeviation(a.map((x, i) => b[i] - x))
      : Math.sqrt((standardDeviation(a) ** 2 + standardDeviation(b) ** 2) / 2);
    const seeds = Math.min(a.length, b.length);
    let word: string;
    if (row.diverged > 0) word = "no verdict (a seed diverged)";
    else if (!usable) word = "no verdict (too few seeds)";
    else if (claim < 0) word = "- (no claim: control)";
    else if (!corrected[claim].rejected) word = "inconclusive";
    else word = verdict(delta!, comparison.paperSign!);
    return {
      comparison,
      variant: row.variant,
      reference: row.reference,
      seeds,
      diverged: row.diverged,
      values: { variant: b, reference: a },
      delta,
      p: row.p,
      level: claim >= 0 ? level : NaN,
      mde: usable ? minimumDetectableEffect(seeds, sd, design, level) : NaN,
      verdict: word,
    };
  });
}

const points = (x: number) => (100 * x).toFixed(1);
const signed = (x: number) => `${x >= 0 ? "+" : ""}${points(x)}`;
const ratio = (x: number, y: number) => `${(100 * x / y).toFixed(1)}%`;

function spread(xs: number[]): string {
  if (xs.length === 0) return "-";
  return `${points(mean(xs))}${xs.length > 1 ? ` ± ${points(standardDeviation(xs))}` : ""}`;
}

/** Mean over seeds of each LRN layer's term/k after the last epoch: "norm1 0.0001 (max 0.002)". */
function lrnTermText(r: VariantResult): string {
  const last = finiteOutcomes(r).map((o) =>
    o.metrics.filter((m) => m.kind === "epoch").at(-1)?.lrnTerm
  )
    .filter((t) => t !== undefined);
  if (last.length === 0) return "no LRN";
  return Object.keys(last[0]!).map((layer) => {
    const m = mean(last.map((t) => t![layer].mean)), x = mean(last.map((t) => t![layer].max));
    return `${layer} ${m.toPrecision(2)} (max ${x.toPrecision(2)})`;
  }).join(", ");
}

/** The markdown report, from the results file alone. */
export function ablationMarkdown(file: ResultsFile<AblateCommand, VariantResult[]>): string {
  const { command, results, provenance, commandLine } = file;
  const rows = summarise(results);
  const full = results.find((r) => r.slug === "full") ?? results[0];
  const b = command.base;
  const table = rows.map((r) => {
    const c = r.comparison;
    const delta = r.delta === null
      ? "-"
      : `${signed(r.delta.estimate)} [${points(r.delta.low)}, ${points(r.delta.high)}]`;
    const level = Number.isNaN(r.level) ? "-" : r.level.toPrecision(2);
    const p = Number.isNaN(r.p) ? "-" : r.p.toPrecision(2);
    return `| ${c.name} | ${r.variant.slug} vs ${r.reference.slug} | ` +
      `${ratio(r.variant.parameters, full.parameters)} | ${
        ratio(r.variant.multiplyAdds, full.multiplyAdds)
      } | ` +
      `${r.seeds}${r.diverged ? ` (${r.diverged} diverged)` : ""} | ${
        c.paired ? "paired" : "Welch"
      } | ` +
      `${MEASURE_NAMES[c.measure]}${
        c.referenceMeasure ? ` vs ${MEASURE_NAMES[c.referenceMeasure]}` : ""
      } | ${spread(r.values.variant)} | ` +
      `${spread(r.values.reference)} | ${delta} | ${p} / ${level} | ` +
      `${Number.isNaN(r.mde) ? "-" : points(r.mde)} | ${c.paper} | ${r.verdict} |`;
  });
  const runs = results.map((r) => {
    const ok = finiteOutcomes(r);
    const of = (f: (o: SeedOutcome) => number) => spread(ok.map(f));
    return `| ${r.name} | ${r.slug} | ${r.epochs} | ${r.parameters.toLocaleString("en-US")} | ` +
      `${(r.multiplyAdds / 1e6).toFixed(2)} M${r.fcWidth ? ` (fc ${r.fcWidth})` : ""} | ` +
      `${of((o) => o.trainEvalError)} | ${of((o) => o.valError)} | ${of((o) => o.testError)} | ` +
      `${lrnTermText(r)} |`;
  });
  return [
    "## Ablations (paper sections 3.1-3.4, 4.1, 4.2)",
    "",
    provenanceLine(provenance),
    "",
    ...presetNote(command.quick, command.departures),
    `Mini AlexNet on Fashion-MNIST at 28 px: ${b.epochs} epoch(s) (2x rows: ${2 * b.epochs}) of ` +
    `${
      b.trainLimit || "all"
    } training images, batch ${b.batchSize}, lr ${b.lr} annealed to 0 on a ` +
    `cosine (schedule "${b.schedule}": no decision on the validation split), momentum ${b.momentum}, ` +
    `weight decay ${b.weightDecay}; seeds ${command.seeds.join(", ")}, the same for every ` +
    "configuration. Δ is the variant minus its reference in points, with its interval at the " +
    `row's Holm level (alpha 0.05 over the ${
      rows.filter((r) => !Number.isNaN(r.level)).length
    } rows ` +
    'with a claim; paired by seed where both start from the same weights). "p / level": the ' +
    "two-sided p-value and the level Holm tests it at. MDE: the smallest difference the row " +
    "detects with 80% power at its level, from its own sd. Training error in evaluation mode " +
    `(dropout off) on ${b.evalTrain} training images. **Fashion-MNIST at 28 px is not ImageNet:** the ` +
    "paper's figures stand beside the rows for reference. The test set decides nothing.",
    "",
    "| comparison | runs | params vs full | MACs vs full | seeds | design | measure | variant | reference | Δ [Holm-level CI] | p / level | MDE | paper (ImageNet) | verdict |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...table,
    "",
    "Per configuration (mean ± sd over seeds, points); LRN: its data-dependent term α'Σa²/k at " +
    "each LRN layer's input on a validation batch after the last epoch (mean over elements, max), " +
    "mean over seeds. Against k it is what decides whether LRN is more than a constant scale.",
    "",
    "| configuration | slug | epochs | parameters | multiply-adds | train error (eval mode) | validation error | test error | LRN term / k |",
    "|---|---|---|---|---|---|---|---|---|",
    ...runs,
    "",
    "PCA colour augmentation (section 4.1) has no row: Fashion-MNIST is grayscale, so the 3x3 " +
    "RGB covariance it perturbs along does not exist (on one channel it would be a random " +
    "brightness scale, not the paper's colour jitter). What would test it: RGB photos, e.g. " +
    "`deno task train-alexnet --data <ImageFolder>` against the same with `--no-pca`, paired " +
    "over seeds (the paper: top-1 error down by over 1%).",
    "",
    "![validation error per epoch (solid) and training error per window (dashed), one line per seed](ablations.png)",
    "",
    `Regenerate: \`${commandLine}\`; redraw from the raw data: \`deno task ablate --from-json ` +
    "examples/alexnet/experiments/results/ablations.json\`",
  ].join("\n");
}

/** Per-seed lines: validation error per epoch (solid), training error per window (dashed). */
export function ablationChart(file: ResultsFile<AblateCommand, VariantResult[]>): Uint8Array {
  const series = file.results.flatMap((r) => {
    const lines = (pick: (o: SeedOutcome) => [number, number][]) =>
      finiteOutcomes(r).flatMap((o) => [...pick(o), [NaN, NaN] as [number, number]]);
    const val = lines((o) =>
      o.metrics.filter((m) => m.kind === "epoch").map((m) => [m.epoch, 100 * (1 - m.valAccuracy!)])
    );
    const train = lines((o) =>
      o.metrics.filter((m) => m.kind === "step").map((
        m,
      ) => [m.step / o.stepsPerEpoch, 100 * (1 - m.trainAccuracy)])
    );
    return [{ name: r.slug, points: val }, {
      name: `${r.slug} train`,
      points: train,
      dashed: true,
    }];
  });
  // The two lines of a configuration share its colour.
  const palette = series.map((_, i) => Math.floor(i / 2));
  return lineChartPng({
    title: "Ablations: validation (solid) and training error (dashed), every seed",
    xLabel: "epoch",
    yLabelLeft: "error %",
    width: 1000,
    height: 650,
    series: series.map((s, i) => ({ ...s, color: PALETTE[palette[i] % PALETTE.length] })),
  });
}

/** plot.ts's ten colours, then two more: the ablation draws up to twelve configurations. */
const PALETTE: [number, number, number][] = [...TAB10, [0, 0, 0], [120, 120, 0]];

/** The command: parse, train, write the table, chart and JSON (and RESULTS.md with --results). */
export function main(args: string[]): Promise<number> {
  return runExperiment<AblateCommand, VariantResult[]>({
    name: "ablate",
    output: "ablations",
    help: HELP,
    parse: parseAblateArgs,
    run: runAblations,
    markdown: ablationMarkdown,
    chart: ablationChart,
  }, args);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
