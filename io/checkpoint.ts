/**
 * Training checkpoints: one safetensors file holding everything a run needs to resume
 * exactly where it stopped.
 *
 *     tensors                                 __metadata__ (each value a JSON string)
 *     <parameter name>   (features.0.weight)  tessera.format      "tessera-checkpoint/1"
 *     optimizer.velocity.<parameter name>     tessera.optimizer   rule + per-group lr, momentum, wd
 *                                             tessera.schedule    the schedule's stateDict()
 *                                             tessera.rng_states  Dropout generators, by module
 *                                             <your keys>         epoch, step, config, rngState...
 *
 * Parameters keep their PyTorch-style dotted names, so the file is an ordinary state dict to
 * any safetensors reader, and a torchvision AlexNet `state_dict` exported with
 * `safetensors.torch.save_file` loads into `alexnetTorchvision()` as is (a file without
 * `tessera.format` is read as weights only).
 *
 * Saving reads tensors back with `await t.data()` (so GPU models work); loading writes into
 * the existing parameters with `backend.write` and recreates velocities on each parameter's
 * device. The file is written atomically (temp file, fsync, rename): a crash mid-save leaves
 * the previous checkpoint intact.
 *
 * @module
 */

import type { Tensor, TypedArray } from "../tensor/tensor.ts";
import type { Module } from "../nn/module.ts";
import type { SGD, SgdState } from "../optim/sgd.ts";
import type { LrSchedule, ScheduleState } from "../optim/schedules.ts";
import type { RngState } from "../tensor/random.ts";
import { formatShape, sameShape } from "../tensor/shape.ts";
import { loadSafetensors, saveSafetensors, type TensorEntry } from "./safetensors.ts";

/** Free-form run metadata; every value must survive JSON.stringify. */
export interface CheckpointMetadata {
  /** Epochs completed. */
  epoch?: number;
  /** Optimizer steps taken. */
  step?: number;
  /** The run's configuration. */
  config?: unknown;
  /** State of the run's other generators (data order, augmentation), e.g. `rng.state()`. */
  rngState?: unknown;
  /** Anything else. */
  [key: string]: unknown;
}

/** What to save. */
export interface SaveCheckpointOptions {
  /** The model; every parameter is saved under its dotted name. */
  model: Module;
  /** The optimizer; its velocities and hyperparameters are saved. */
  optimizer?: SGD;
  /** The learning-rate schedule; its state is saved. */
  schedule?: LrSchedule;
  /** Run metadata (epoch, step, config, data RNG state, ...). */
  metadata?: CheckpointMetadata;
}

/** What to restore into. */
export interface LoadCheckpointOptions {
  /** The model to load the parameters into (shapes must match). */
  model: Module;
  /** Restores velocities and hyperparameters; the file must hold optimizer state. */
  optimizer?: SGD;
  /** Restores the schedule; the file must hold schedule state. */
  schedule?: LrSchedule;
  /** Whether missing or unexpected parameters are errors (default true). */
  strict?: boolean;
}

const FORMAT = "tessera-checkpoint/1";
const VELOCITY_PREFIX = "optimizer.velocity.";
const KEYS = {
  format: "tessera.format",
  optimizer: "tessera.optimizer",
  schedule: "tessera.schedule",
  rngStates: "tessera.rng_states",
} as const;
const RESERVED = new Set<string>(Object.values(KEYS));

const SAFETENSORS_DTYPE = { float32: "F32", float64: "F64", int32: "I32" } as const;

async function entryOf(t: Tensor): Promise<TensorEntry> {
  return {
    dtype: SAFETENSORS_DTYPE[t.dtype],
    shape: [...t.shape],
    data: (await t.data()) as TypedArray,
  };
}

/** Parameter tensor -> its dotted name in `model`. */
function namesOf(model: Module): Map<Tensor, string> {
  const names = new Map<Tensor, string>();
  for (const [name, p] of model.namedParameters()) names.set(p, name);
  return names;
}

/**
 * Saves model, optimizer, schedule and metadata to `path` (atomically).
 *
 * @example Save a model and its optimizer
 * ```ts
 * import assert from "node:assert/strict";
 * import { Linear, loadCheckpoint, saveCheckpoint, SGD } from "../mod.ts";
 *
 * const model = new Linear(4, 2, { rng: 1 });
 * const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await saveCheckpoint(path, { model, optimizer, metadata: { epoch: 3 } });
 *
 * const restored = new Linear(4, 2, { rng: 2 }); // different weights until loaded
 * const metadata = await loadCheckpoint(path, { model: restored });
 * assert.equal(metadata.epoch, 3);
 * assert.deepEqual(restored.weight.dataSync(), model.weight.dataSync());
 * await Deno.remove(path);
 * ```
 */
export async function saveCheckpoint(path: string, options: SaveCheckpointOptions): Promise<void> {
  const { model, optimizer, schedule } = options;
  const tensors = new Map<string, TensorEntry>();
  for (const [name, p] of model.namedParameters()) {
    if (name.startsWith(VELOCITY_PREFIX)) {
      throw new Error(
        `saveCheckpoint: parameter name "${name}" clashes with the optimizer's prefix`,
      );
    }
    tensors.set(name, await entryOf(p));
  }
  const metadata: Record<string, string> = { [KEYS.format]: FORMAT };
  if (optimizer) {
    const names = namesOf(model);
    const params = optimizer.parameters();
    const state = optimizer.stateDict();
    for (const [index, velocity] of state.velocities) {
      const name = names.get(params[index]);
      if (name === undefined) {
        throw new Error(
          `saveCheckpoint: optimizer parameter ${index} ${
            formatShape(params[index].shape)
          } is not a parameter of the model, so its velocity has no name`,
        );
      }
      tensors.set(VELOCITY_PREFIX + name, await entryOf(velocity as Tensor));
    }
    metadata[KEYS.optimizer] = JSON.stringify({ rule: state.rule, groups: state.groups });
  }
  if (schedule) metadata[KEYS.schedule] = JSON.stringify(schedule.stateDict());
  metadata[KEYS.rngStates] = JSON.stringify(model.rngStates());
  for (const [key, value] of Object.entries(options.metadata ?? {})) {
    if (RESERVED.has(key)) throw new Error(`saveCheckpoint: metadata key "${key}" is reserved`);
    const json = JSON.stringify(value);
    if (json === undefined) {
      throw new TypeError(
        `saveCheckpoint: metadata "${key}" (${typeof value}) cannot be written as JSON`,
      );
    }
    metadata[key] = json;
  }
  await saveSafetensors(path, tensors, metadata);
}

/**
 * Restores `model` (and `optimizer`, `schedule` when given, and the model's dropout
 * generators when the file has them) from `path`, and returns the run metadata. Every check
 * runs before anything is written; a mismatch names the file, the key and both shapes.
 *
 * @example Resume a run
 * ```ts
 * import assert from "node:assert/strict";
 * import { Linear, loadCheckpoint, saveCheckpoint, SGD, StepLR } from "../mod.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * {
 *   const model = new Linear(4, 2, { rng: 1 });
 *   const optimizer = new SGD(model.parameters(), { lr: 0.01 });
 *   const schedule = new StepLR(optimizer, { stepSize: 1 });
 *   schedule.step(); // lr 0.001
 *   await saveCheckpoint(path, { model, optimizer, schedule, metadata: { epoch: 1 } });
 * }
 * // Resume: build the same objects, then restore every one of them.
 * const model = new Linear(4, 2, { rng: 1 });
 * const optimizer = new SGD(model.parameters(), { lr: 0.01 });
 * const schedule = new StepLR(optimizer, { stepSize: 1 });
 * const { epoch } = await loadCheckpoint(path, { model, optimizer, schedule });
 * assert.equal(epoch, 1);
 * assert.ok(Math.abs(optimizer.groups[0].lr - 0.001) < 1e-12);
 * // A model of another shape is refused before anything is written.
 * await assert.rejects(loadCheckpoint(path, { model: new Linear(5, 2) }), /weight/);
 * await Deno.remove(path);
 * ```
 */
export async function loadCheckpoint(
  path: string,
  options: LoadCheckpointOptions,
): Promise<CheckpointMetadata> {
  const { model, optimizer, schedule } = options;
  const fail = (problem: string): never => {
    throw new Error(`loadCheckpoint(${path}): ${problem}`);
  };
  const { tensors, metadata } = await loadSafetensors(path);
  const format = metadata[KEYS.format];
  if (format !== undefined && format !== FORMAT) {
    fail(`unknown format "${format}" (expected "${FORMAT}")`);
  }

  const weights = new Map<string, TensorEntry & { data: TypedArray }>();
  const velocities = new Map<string, TensorEntry & { data: TypedArray }>();
  for (const [name, entry] of tensors) {
    if (entry.dtype === "U8") fail(`tensor "${name}" is U8; parameters must be F32, F64 or I32`);
    const typed = entry as TensorEntry & { data: TypedArray };
    if (name.startsWith(VELOCITY_PREFIX)) velocities.set(name.slice(VELOCITY_PREFIX.length), typed);
    else weights.set(name, typed);
  }

  // Check the optimizer's side before the model changes, so a bad file changes nothing.
  let optimizerState: SgdState | undefined;
  if (optimizer) {
    const saved = metadata[KEYS.optimizer];
    if (saved === undefined) fail("the file holds no optimizer state (it was saved without one)");
    const hyper = parseJson(saved!, KEYS.optimizer, fail) as Pick<SgdState, "rule" | "groups">;
    if (hyper.rule !== optimizer.rule) {
      fail(
        `the optimizer state uses rule "${hyper.rule}" but the optimizer uses "${optimizer.rule}"`,
      );
    }
    const savedSizes = hyper.groups.map((g) => g.size).join(", ");
    const ownSizes = optimizer.groups.map((g) => g.params.length).join(", ");
    if (savedSizes !== ownSizes) {
      fail(`the optimizer state has groups of sizes [${savedSizes}], the optimizer [${ownSizes}]`);
    }
    const names = namesOf(model);
    const params = optimizer.parameters();
    const indexOf = new Map<string, number>();
    params.forEach((p, i) => {
      const name = names.get(p);
      if (name === undefined) fail(`optimizer parameter ${i} is not a parameter of the model`);
      indexOf.set(name!, i);
    });
    optimizerState = { rule: hyper.rule, groups: hyper.groups, velocities: new Map() };
    for (const [name, entry] of velocities) {
      const index = indexOf.get(name);
      if (index === undefined) {
        fail(`"${VELOCITY_PREFIX}${name}" belongs to no optimizer parameter`);
      }
      const p = params[index!];
      if (!sameShape(p.shape, entry.shape)) {
        fail(
          `"${VELOCITY_PREFIX}${name}" has shape ${
            formatShape(entry.shape)
          } in the file but the parameter has ${formatShape(p.shape)}`,
        );
      }
      optimizerState.velocities.set(index!, entry);
    }
  }
  let scheduleState: ScheduleState | undefined;
  if (schedule) {
    const saved = metadata[KEYS.schedule];
    if (saved === undefined) fail("the file holds no schedule state");
    scheduleState = parseJson(saved!, KEYS.schedule, fail) as ScheduleState;
  }
  const rngJson = metadata[KEYS.rngStates];
  const rngStates = rngJson === undefined
    ? undefined
    : (parseJson(rngJson, KEYS.rngStates, fail) as Record<string, RngState>);

  if (rngStates) {
    const saved = Object.keys(rngStates).sort().join(", ");
    const own = Object.keys(model.rngStates()).sort().join(", ");
    if (saved !== own) {
      fail(`the file has generator states for [${saved}] but the model's generators are [${own}]`);
    }
  }

  try {
    await model.loadStateDict(weights, { strict: options.strict ?? true });
    if (optimizer) await optimizer.loadStateDict(optimizerState!);
    if (schedule) schedule.loadStateDict(scheduleState!);
    if (rngStates) model.loadRngStates(rngStates);
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }

  const run: CheckpointMetadata = {};
  for (const [key, value] of Object.entries(metadata)) {
    if (RESERVED.has(key)) continue;
    // Foreign files (e.g. safetensors.torch's {"format": "pt"}) hold plain strings.
    try {
      run[key] = JSON.parse(value);
    } catch {
      run[key] = value;
    }
  }
  return run;
}

function parseJson(text: string, key: string, fail: (problem: string) => never): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    return fail(
      `metadata "${key}" is not valid JSON (${error instanceof Error ? error.message : error})`,
    );
  }
}
