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
 * A file is untrusted input. Loading checks all of it (tensors, optimizer and schedule state,
 * generator states) before it writes anything, so a file that is refused leaves the run as
 * it was, and every error names the file and the field. Non-finite weights are refused on
 * both sides: a diverged model is not saved over a good checkpoint, nor loaded, unless
 * `allowNonFinite` says so.
 *
 * @module
 */

import type { Tensor, TypedArray } from "../tensor/tensor.ts";
import { Module, stateProblems } from "../nn/module.ts";
import { describeValue } from "../optim/options.ts";
import { checkOptions, declareOptions } from "../tensor/options.ts";

const SAVE_KEYS = declareOptions<SaveCheckpointOptions>()("saveCheckpoint", [
  "model",
  "optimizer",
  "schedule",
  "metadata",
  "allowNonFinite",
]);
const LOAD_KEYS = declareOptions<LoadCheckpointOptions>()("loadCheckpoint", [
  "model",
  "optimizer",
  "schedule",
  "strict",
  "allowNonFinite",
]);
import { SGD, type SgdState } from "../optim/sgd.ts";
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
  /**
   * Save even if a parameter or velocity holds NaN or Infinity (default false: such a model
   * diverged, and the save throws, naming the tensor, so a good checkpoint is not replaced).
   */
  allowNonFinite?: boolean;
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
  /**
   * Load parameters that hold NaN or Infinity (default false: the file is refused, naming the
   * tensor and the element). Velocities must be finite either way: one NaN in a velocity turns
   * its weights into NaN at the next step.
   */
  allowNonFinite?: boolean;
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

/** Index and value of the first NaN or Infinity in `data`, or undefined. */
function firstNonFinite(data: ArrayLike<number>): [number, number] | undefined {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return [i, data[i]];
  return undefined;
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
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`saveCheckpoint: path must be a file name, got ${describeValue(path)}`);
  }
  if (options === undefined) {
    throw new TypeError(
      `saveCheckpoint(${path}): expects options { model, optimizer?, schedule?, metadata? }`,
    );
  }
  checkOptions(`saveCheckpoint(${path})`, options, SAVE_KEYS);
  if (!(options.model instanceof Module)) {
    throw new TypeError(
      `saveCheckpoint(${path}): options.model must be a Module, got ${
        describeValue(options.model)
      }`,
    );
  }
  const { model, optimizer, schedule } = options;
  const tensors = new Map<string, TensorEntry>();
  const add = (name: string, entry: TensorEntry) => {
    const bad = options.allowNonFinite ? undefined : firstNonFinite(entry.data);
    if (bad) {
      throw new RangeError(
        `saveCheckpoint(${path}): "${name}" holds ${bad[1]} at element ${bad[0]}; the model ` +
          `diverged, so nothing was written (pass allowNonFinite: true to save it anyway)`,
      );
    }
    tensors.set(name, entry);
  };
  for (const [name, p] of model.namedParameters()) {
    if (name.startsWith(VELOCITY_PREFIX)) {
      throw new Error(
        `saveCheckpoint: parameter name "${name}" clashes with the optimizer's prefix`,
      );
    }
    add(name, await entryOf(p));
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
      add(VELOCITY_PREFIX + name, await entryOf(velocity as Tensor));
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
 * generators when the file has them) from `path`, and returns the run metadata.
 *
 * Everything is checked before anything is written: the tensors (names, shapes, dtypes,
 * finite values), the optimizer state (rule, groups, every hyperparameter present, finite and
 * in range, velocities matching their parameters), the schedule state and the generator
 * states. A file that fails any check throws an error naming the file and the field, and
 * leaves model, optimizer, schedule and generators exactly as they were.
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
  const fail = (problem: string): never => {
    throw new Error(`loadCheckpoint(${path}): ${problem}`);
  };
  checkLoadOptions(options, fail);
  const { model, optimizer, schedule } = options;
  const { tensors, metadata } = await loadSafetensors(path);
  const plan = planLoad(tensors, metadata, options, `loadCheckpoint(${path})`, fail);

  // Every check passed. The schedule goes first: a custom schedule without checkStateDict is
  // only checked by its loadStateDict, and is rolled back if that throws.
  if (schedule) {
    const before = schedule.stateDict();
    const lrs = optimizer?.groups.map((g) => g.lr);
    try {
      schedule.loadStateDict(plan.schedule!);
    } catch (error) {
      schedule.loadStateDict(before);
      optimizer?.groups.forEach((g, i) => (g.lr = lrs![i]));
      fail(`schedule state "${KEYS.schedule}": ${(error as Error).message}`);
    }
  }
  if (plan.rngStates) model.loadRngStates(plan.rngStates);
  if (optimizer) await optimizer.loadStateDict(plan.optimizer!);
  await model.loadStateDict(plan.weights, { strict: options.strict ?? true });
  return plan.run;
}

interface LoadPlan {
  weights: Map<string, TensorEntry & { data: TypedArray }>;
  optimizer?: SgdState;
  schedule?: ScheduleState;
  rngStates?: Record<string, RngState>;
  run: CheckpointMetadata;
}

function checkLoadOptions(options: LoadCheckpointOptions, fail: (problem: string) => never) {
  if (typeof options !== "object" || options === null) {
    fail(`options must be { model, optimizer?, schedule? }, got ${String(options)}`);
  }
  checkOptions("loadCheckpoint", options, LOAD_KEYS);
  if (!(options.model instanceof Module)) fail(`options.model must be a Module`);
  if (options.optimizer !== undefined && !(options.optimizer instanceof SGD)) {
    fail(`options.optimizer must be an SGD optimizer`);
  }
  const schedule = options.schedule as Partial<LrSchedule> | undefined;
  if (
    schedule !== undefined &&
    (typeof schedule?.stateDict !== "function" || typeof schedule.loadStateDict !== "function")
  ) {
    fail(`options.schedule must be a schedule (StepLR, ReduceLROnPlateau, CosineAnnealing)`);
  }
}

/** Checks the whole file against the live objects and returns what to write; writes nothing. */
function planLoad(
  tensors: Map<string, TensorEntry>,
  metadata: Record<string, string>,
  options: LoadCheckpointOptions,
  where: string,
  fail: (problem: string) => never,
): LoadPlan {
  const { model, optimizer, schedule } = options;
  const format = metadata[KEYS.format];
  if (format !== undefined && format !== FORMAT) {
    fail(`unknown format ${JSON.stringify(format)} (expected "${FORMAT}")`);
  }
  const weights = new Map<string, TensorEntry & { data: TypedArray }>();
  const velocities = new Map<string, TensorEntry & { data: TypedArray }>();
  for (const [name, entry] of tensors) {
    if (entry.dtype !== "F32" && entry.dtype !== "F64") {
      fail(`tensor "${name}" is ${entry.dtype}; parameters and velocities must be F32 or F64`);
    }
    const typed = entry as TensorEntry & { data: TypedArray };
    if (name.startsWith(VELOCITY_PREFIX)) velocities.set(name.slice(VELOCITY_PREFIX.length), typed);
    else weights.set(name, typed);
  }
  checkWeights(model, weights, options, fail);
  const plan: LoadPlan = { weights, run: runMetadata(metadata) };
  if (optimizer) {
    plan.optimizer = optimizerState(model, optimizer, velocities, metadata, where, fail);
  }
  if (schedule) {
    const state = jsonField(metadata, KEYS.schedule, "schedule state", fail);
    const field = `${where}: schedule state "${KEYS.schedule}"`;
    if (typeof state !== "object" || state === null || Array.isArray(state)) {
      fail(`schedule state "${KEYS.schedule}" must be a JSON object, got ${describeValue(state)}`);
    }
    schedule.checkStateDict?.(state, field);
    plan.schedule = state as ScheduleState;
  }
  if (metadata[KEYS.rngStates] !== undefined || format === FORMAT) {
    plan.rngStates = rngStates(model, metadata, fail);
  }
  return plan;
}

/** Names, shapes and finite values of the model's tensors in the file. */
function checkWeights(
  model: Module,
  weights: Map<string, TensorEntry & { data: TypedArray }>,
  options: LoadCheckpointOptions,
  fail: (problem: string) => never,
): void {
  const own = model.namedParameters();
  const problems = stateProblems(own, weights, options.strict ?? true, "the file");
  if (problems.length) fail(problems.join("; "));
  if (options.allowNonFinite) return;
  for (const [key, entry] of weights) {
    if (!own.has(key)) continue;
    const bad = firstNonFinite(entry.data);
    if (bad) {
      fail(
        `tensor "${key}" holds ${bad[1]} at element ${bad[0]}: the run that saved it diverged ` +
          `(pass allowNonFinite: true to load it anyway, or inspect it with loadSafetensors)`,
      );
    }
  }
}

/** The optimizer's saved state, mapped onto `optimizer` and checked by SGD.checkStateDict. */
function optimizerState(
  model: Module,
  optimizer: SGD,
  velocities: Map<string, TensorEntry & { data: TypedArray }>,
  metadata: Record<string, string>,
  where: string,
  fail: (problem: string) => never,
): SgdState {
  const field = `optimizer state "${KEYS.optimizer}"`;
  if (metadata[KEYS.optimizer] === undefined) {
    fail("the file holds no optimizer state (it was saved without one)");
  }
  const saved = jsonField(metadata, KEYS.optimizer, "optimizer state", fail);
  if (typeof saved !== "object" || saved === null || Array.isArray(saved)) {
    fail(`${field} must be a JSON object { rule, groups }, got ${describeValue(saved)}`);
  }
  const names = namesOf(model);
  const params = optimizer.parameters();
  const indexOf = new Map<string, number>();
  params.forEach((p, i) => {
    const name = names.get(p);
    if (name === undefined) fail(`optimizer parameter ${i} is not a parameter of the model`);
    indexOf.set(name!, i);
  });
  const byIndex = new Map<number, TensorEntry & { data: TypedArray }>();
  for (const [name, entry] of velocities) {
    const index = indexOf.get(name);
    if (index === undefined) fail(`"${VELOCITY_PREFIX}${name}" belongs to no optimizer parameter`);
    const p = params[index!];
    if (!sameShape(p.shape, entry.shape)) {
      fail(
        `"${VELOCITY_PREFIX}${name}" has shape ${
          formatShape(entry.shape)
        } in the file but the parameter has ${formatShape(p.shape)}`,
      );
    }
    byIndex.set(index!, entry);
  }
  const { rule, groups } = saved as Record<string, unknown>;
  return optimizer.checkStateDict(
    { rule, groups, velocities: byIndex },
    `${where}: ${field}`,
  );
}

/** The dropout generators' states: one per module that has a generator, four u32 words each. */
function rngStates(
  model: Module,
  metadata: Record<string, string>,
  fail: (problem: string) => never,
): Record<string, RngState> {
  const field = `generator states "${KEYS.rngStates}"`;
  if (metadata[KEYS.rngStates] === undefined) {
    fail(`${field} are missing (every tessera checkpoint has them)`);
  }
  const states = jsonField(metadata, KEYS.rngStates, "generator states", fail);
  if (typeof states !== "object" || states === null || Array.isArray(states)) {
    fail(
      `${field} must be a JSON object { module name: [4 words] }, got ${describeValue(states)}`,
    );
  }
  const record = states as Record<string, unknown>;
  const saved = Object.keys(record).sort().join(", ");
  const own = Object.keys(model.rngStates()).sort().join(", ");
  if (saved !== own) {
    fail(`the file has generator states for [${saved}] but the model's generators are [${own}]`);
  }
  for (const [name, value] of Object.entries(record)) {
    const words = Array.isArray(value) && value.length === 4 &&
      value.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff);
    if (!words) {
      fail(
        `${field}: "${name}" must be four 32-bit unsigned integers, got ${describeValue(value)}`,
      );
    }
    // xoshiro128** never leaves the all-zero state: it would give 0 forever.
    if ((value as number[]).every((w) => w === 0)) {
      fail(`${field}: "${name}" is all zeros, which no generator ever reaches`);
    }
  }
  return record as Record<string, RngState>;
}

function jsonField(
  metadata: Record<string, string>,
  key: string,
  what: string,
  fail: (problem: string) => never,
): unknown {
  const text = metadata[key];
  if (text === undefined) return fail(`the file holds no ${what} ("${key}")`);
  try {
    return JSON.parse(text);
  } catch (error) {
    return fail(
      `${what} "${key}" is not valid JSON (${error instanceof Error ? error.message : error})`,
    );
  }
}

/** The caller's metadata: every key that is not tessera's own, JSON-decoded where possible. */
function runMetadata(metadata: Record<string, string>): CheckpointMetadata {
  const run: CheckpointMetadata = {};
  for (const [key, value] of Object.entries(metadata)) {
    if (RESERVED.has(key)) continue;
    // Foreign files (e.g. safetensors.torch's {"format": "pt"}) hold plain strings.
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      parsed = value;
    }
    Object.defineProperty(run, key, {
      value: parsed,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return run;
}
