/**
 * What a run folder holds and what a resumed run may trust of it: the progress saved in every
 * checkpoint ({@link RunState}), the metric records, and the checks that turn a checkpoint's
 * metadata back into them. Nothing read from a file is trusted: every field is checked, and an
 * error names the file and the field.
 *
 * @module
 */

import { loadSafetensors } from "../../mod.ts";
import { checkConfig, type TrainConfig, UsageError } from "./config.ts";

/** One line of `metrics.jsonl`. */
export interface MetricRecord {
  /** "step" every --log-every steps (10), "epoch" after each evaluation. */
  kind: "step" | "epoch";
  /** 1-based epoch (fractional when a time limit ended it early). */
  epoch: number;
  /** Optimizer steps so far. */
  step: number;
  /** Mean training loss (over the last 10 steps, or the whole epoch). */
  trainLoss: number;
  /** Training accuracy, [0, 1]. */
  trainAccuracy: number;
  /** Validation loss (epoch records): what the schedule and the best checkpoint follow. */
  valLoss?: number;
  /** Validation accuracy (epoch records). */
  valAccuracy?: number;
  /** Test loss (epoch records): for the report only, never for a decision. */
  testLoss?: number;
  /** Test accuracy (epoch records): for the report only. */
  testAccuracy?: number;
  /** Learning rate in force. */
  lr: number;
  /** Seconds of training so far (excluding evaluation). */
  seconds: number;
  /** Training throughput over the epoch. */
  imagesPerSecond?: number;
  /** Loss of the --eval-train training images in evaluation mode (dropout off). */
  trainEvalLoss?: number;
  /** Their accuracy: 1 minus it is the training error the train-validation gap uses. */
  trainEvalAccuracy?: number;
  /** Per LRN layer, its data-dependent term α' Σ a² / k on a validation batch (lrn_term.ts). */
  lrnTerm?: Record<string, { mean: number; max: number }>;
}

/**
 * Training progress saved in every checkpoint, with the accumulators of the running means, so
 * a resumed run writes the very records the uninterrupted run would have.
 */
export interface RunState {
  /** 0-based epoch in progress. */
  epoch: number;
  /** Batches of that epoch already trained on. */
  batch: number;
  /** Optimizer steps in all. */
  step: number;
  /** Seconds of training in all. */
  seconds: number;
  /** Loss summed over this epoch's images (loss x batch size per step). */
  epochLoss: number;
  /** Correct predictions this epoch. */
  epochCorrect: number;
  /** Images trained on this epoch. */
  epochSeen: number;
  /** The same three sums over the current 10-step window of the step records. */
  windowLoss: number;
  windowCorrect: number;
  windowSeen: number;
  /** Best validation accuracy of any epoch so far (-1 before the first). */
  bestValAccuracy: number;
  /** The 1-based epoch that reached it (0 before the first). */
  bestEpoch: number;
}

/** The state of a run before its first step. */
export function freshRunState(): RunState {
  return {
    epoch: 0,
    batch: 0,
    step: 0,
    seconds: 0,
    epochLoss: 0,
    epochCorrect: 0,
    epochSeen: 0,
    windowLoss: 0,
    windowCorrect: 0,
    windowSeen: 0,
    bestValAccuracy: -1,
    bestEpoch: 0,
  };
}

/** How a checkpoint describes its data, for `predict`. */
export interface DataDescription {
  /** Decides how `predict` prepares an image. */
  kind: "fashion-mnist" | "image-folder" | "cifar10";
  /** Class names, in label order. */
  classNames: string[];
  /** [C, H, W] the network sees. */
  inputShape: [number, number, number];
}

/** A checkpoint's run metadata, checked. */
export interface RunMetadata {
  /** The run's configuration. */
  config: TrainConfig;
  /** Its progress (absent in best.safetensors). */
  run?: RunState;
  /** Its metric records so far (absent in best.safetensors). */
  metrics?: MetricRecord[];
  /** Its data. */
  data: DataDescription;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
const isFiniteNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);

function field(where: string, name: string, value: unknown, expected: string): never {
  throw new Error(`${where}: "${name}" must be ${expected}, got ${JSON.stringify(value)}`);
}

/** Checks a saved {@link RunState}; the error names `where` and the field. */
export function checkRunState(value: unknown, where: string): RunState {
  if (!isObject(value)) field(where, "run", value, "an object");
  const counts = ["epoch", "batch", "step", "epochCorrect", "epochSeen", "windowCorrect"];
  for (const key of [...counts, "windowSeen", "bestEpoch"]) {
    if (!isCount(value[key])) field(where, `run.${key}`, value[key], "an integer of at least 0");
  }
  for (const key of ["seconds", "epochLoss", "windowLoss"]) {
    if (!isFiniteNumber(value[key]) || (value[key] as number) < 0) {
      field(where, `run.${key}`, value[key], "a finite number of at least 0");
    }
  }
  const best = value.bestValAccuracy;
  if (!isFiniteNumber(best) || (best as number) < -1 || (best as number) > 1) {
    field(where, "run.bestValAccuracy", best, "-1 or an accuracy in [0, 1]");
  }
  if ((value.epochCorrect as number) > (value.epochSeen as number)) {
    field(where, "run.epochCorrect", value.epochCorrect, "at most run.epochSeen");
  }
  return value as unknown as RunState;
}

/** Checks saved metric records; the error names `where` and the record. */
export function checkMetrics(value: unknown, where: string): MetricRecord[] {
  if (!Array.isArray(value)) field(where, "metrics", value, "an array of records");
  value.forEach((record, i) => {
    const name = `metrics[${i}]`;
    if (!isObject(record)) field(where, name, record, "an object");
    if (record.kind !== "step" && record.kind !== "epoch") {
      field(where, `${name}.kind`, record.kind, '"step" or "epoch"');
    }
    for (const key of ["epoch", "step", "trainLoss", "trainAccuracy", "lr", "seconds"]) {
      if (!isFiniteNumber(record[key])) field(where, `${name}.${key}`, record[key], "a number");
    }
  });
  return value as MetricRecord[];
}

function checkData(value: unknown, where: string): DataDescription {
  if (!isObject(value)) field(where, "data", value, "an object");
  if (!["fashion-mnist", "image-folder", "cifar10"].includes(value.kind as string)) {
    field(where, "data.kind", value.kind, '"fashion-mnist", "image-folder" or "cifar10"');
  }
  const names = value.classNames;
  if (!Array.isArray(names) || names.length < 2 || !names.every((n) => typeof n === "string")) {
    field(where, "data.classNames", names, "an array of at least 2 class names");
  }
  const shape = value.inputShape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((d) => isCount(d) && d > 0)) {
    field(where, "data.inputShape", shape, "[C, H, W] of positive integers");
  }
  return value as unknown as DataDescription;
}

/**
 * Reads and checks a checkpoint's run metadata without loading its weights. `progress`: the
 * file must hold a resumable run (`run` and `metrics`), as checkpoint.safetensors does.
 */
export async function readRunMetadata(path: string, progress: boolean): Promise<RunMetadata> {
  let raw: Record<string, string>;
  try {
    raw = (await loadSafetensors(path)).metadata;
  } catch (error) {
    throw new Error(`cannot read checkpoint ${path}: ${(error as Error).message}`);
  }
  const parsed: Record<string, unknown> = {};
  for (const key of ["config", "run", "metrics", "data"]) {
    if (raw[key] === undefined) continue;
    try {
      parsed[key] = JSON.parse(raw[key]);
    } catch {
      throw new Error(`${path}: metadata "${key}" is not JSON: ${raw[key].slice(0, 80)}`);
    }
  }
  if (parsed.config === undefined) throw new Error(`${path}: holds no run configuration`);
  const metadata: RunMetadata = {
    config: checkConfig(parsed.config, path),
    data: checkData(parsed.data, path),
  };
  if (progress) {
    metadata.run = checkRunState(parsed.run, path);
    metadata.metrics = checkMetrics(parsed.metrics, path);
  }
  return metadata;
}

/** The files a run writes into its folder. */
export const RUN_FILES = [
  "checkpoint.safetensors",
  "best.safetensors",
  "metrics.jsonl",
  "curves.png",
  "conv1_filters.png",
  "mean_image.safetensors",
] as const;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Checks `config.out` before a run starts, so that nothing is lost silently: a folder that
 * holds a run needs `--resume` (continue it) or `--overwrite`; `--resume` needs a checkpoint
 * there. Returns the old run's files that {@link clearRunFolder} removes under `--overwrite`
 * (once the new run is set up, so a failed start leaves the old run intact).
 */
export async function checkRunFolder(config: TrainConfig): Promise<string[]> {
  const out = config.out;
  try {
    const stat = await Deno.stat(out);
    if (!stat.isDirectory) throw new UsageError(`--out ${out} is a file, not a folder`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (config.resume) {
    if (!await exists(`${out}/checkpoint.safetensors`)) {
      throw new UsageError(
        `--resume: --out ${out} holds no checkpoint.safetensors to continue (drop --resume to ` +
          `start a run there)`,
      );
    }
    return [];
  }
  const found = [];
  for (const file of RUN_FILES) if (await exists(`${out}/${file}`)) found.push(file);
  if (found.length > 0 && !config.overwrite) {
    throw new UsageError(
      `--out ${out} holds a run (${found.join(", ")}): pass --resume to continue it, or ` +
        `--overwrite to replace it`,
    );
  }
  return found;
}

/** Creates the run folder and removes the old run's `files` (see {@link checkRunFolder}). */
export async function clearRunFolder(config: TrainConfig, files: string[]): Promise<void> {
  await Deno.mkdir(config.out, { recursive: true });
  // So the folder never mixes two runs' files.
  for (const file of files) await Deno.remove(`${config.out}/${file}`);
}
