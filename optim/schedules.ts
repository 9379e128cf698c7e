/**
 * Learning-rate schedules. Each is a small object that the training loop calls once per
 * epoch, after validation (`schedule.step(validationError)`), and that saves and restores
 * its state as plain JSON so a checkpoint can carry it.
 *
 * - {@link ReduceLROnPlateau}: the paper's rule (section 5): "divide the learning rate by 10
 *   when the validation error rate stopped improving with the current learning rate", three
 *   times in all.
 * - {@link StepLR}: divide by a fixed factor every `stepSize` epochs (Caffe's bvlc_alexnet
 *   divides by 10 every 100,000 iterations, about 20 epochs at batch 256).
 * - {@link CosineAnnealing}: a half cosine from the initial lr down to `minLr` over `tMax`
 *   epochs (Loshchilov and Hutter 2017, without restarts).
 *
 * @module
 */

import { SGD } from "./sgd.ts";
import { checkNumber, checkObject, describeValue, optionalNumber } from "./options.ts";
import { checkOptions, declareOptions } from "../tensor/options.ts";

const STEP_LR_KEYS = declareOptions<StepLROptions>()("StepLR", ["stepSize", "gamma"]);
const PLATEAU_KEYS = declareOptions<ReduceLROnPlateauOptions>()("ReduceLROnPlateau", [
  "patience",
  "factor",
  "maxDrops",
  "threshold",
]);
const COSINE_KEYS = declareOptions<CosineAnnealingOptions>()("CosineAnnealing", ["tMax", "minLr"]);

/** JSON-serializable schedule state. */
export type ScheduleState = Record<string, unknown>;

/** What every schedule provides. */
export interface LrSchedule {
  /** Ends an epoch: updates the optimizer's learning rate. Plateau schedules need the metric. */
  step(validationError?: number): void;
  /** The state, as plain JSON. */
  stateDict(): ScheduleState;
  /**
   * Restores a state from {@link stateDict}; throws, changing nothing, if it belongs to another
   * kind of schedule or a field is missing or out of range.
   */
  loadStateDict(state: ScheduleState): void;
  /**
   * Checks a state without changing anything (every built-in schedule has it);
   * `loadCheckpoint` calls it before it writes anything. Errors name `where` and the field.
   */
  checkStateDict?(state: unknown, where?: string): void;
}

const COUNT = { min: 0, integer: true } as const;

function checkOptimizer(kind: string, optimizer: unknown): void {
  if (!(optimizer instanceof SGD)) {
    throw new TypeError(
      `${kind}: the first argument must be an SGD optimizer, got ${describeValue(optimizer)}`,
    );
  }
}

/** The state as an object of the right kind, or an error naming `where`. */
function stateOf(kind: string, where: string, state: unknown): Record<string, unknown> {
  const s = checkObject(where, "the state", state);
  if (s.kind !== kind) {
    throw new Error(
      `${where}: the state belongs to ${JSON.stringify(s.kind) ?? "undefined"}, not ${kind}`,
    );
  }
  return s;
}

/** One finite lr >= 0 per optimizer group. */
function lrList(where: string, value: unknown, groups: number): number[] {
  if (!Array.isArray(value) || value.length !== groups) {
    throw new Error(
      `${where}: baseLrs must hold ${groups} numbers (one per group), got ${describeValue(value)}`,
    );
  }
  return value.map((lr, i) => checkNumber(where, `baseLrs[${i}]`, lr, { min: 0 }));
}

/** The state of a schedule that is a function of the epoch and the initial learning rates. */
interface EpochState {
  epoch: number;
  baseLrs: number[];
}

/** Parses and checks `{kind, epoch, baseLrs}` saved by `kind` for an optimizer of `groups` groups. */
function epochState(kind: string, where: string, state: unknown, groups: number): EpochState {
  const s = stateOf(kind, where, state);
  return {
    epoch: checkNumber(where, "epoch", s.epoch, COUNT),
    baseLrs: lrList(where, s.baseLrs, groups),
  };
}

/** Options of {@link StepLR}. */
export interface StepLROptions {
  /** Epochs between drops. */
  stepSize: number;
  /** Factor applied at each drop (default 0.1: the paper's and Caffe's /10). */
  gamma?: number;
}

/**
 * lr = initial lr * gamma ^ floor(epoch / stepSize), per group. As PyTorch's StepLR (its
 * chainable form), the schedule multiplies the current lr by gamma at each drop and leaves it
 * alone between drops, so an lr set by hand (`optimizer.lr = ...`) is kept and then dropped.
 *
 * @example Divide the learning rate by 10 every 30 epochs
 * ```ts
 * import assert from "node:assert/strict";
 * import { Linear, SGD, StepLR } from "../mod.ts";
 *
 * const optimizer = new SGD(new Linear(2, 2).parameters(), { lr: 0.01 });
 * const schedule = new StepLR(optimizer, { stepSize: 30 }); // /10 every 30 epochs
 * for (let epoch = 0; epoch < 30; epoch++) schedule.step(); // call once per epoch
 * assert.ok(Math.abs(optimizer.groups[0].lr - 0.001) < 1e-12);
 * ```
 */
export class StepLR implements LrSchedule {
  /** Epochs completed. */
  epoch = 0;
  /** Epochs between drops. */
  readonly stepSize: number;
  /** Factor per drop. */
  readonly gamma: number;
  #baseLrs: number[];

  /** Starts from the optimizer's current learning rates. */
  constructor(readonly optimizer: SGD, options: StepLROptions) {
    checkOptimizer("StepLR", optimizer);
    checkObject("StepLR", "options", options);
    checkOptions("StepLR", options, STEP_LR_KEYS);
    this.stepSize = checkNumber("StepLR", "stepSize", options.stepSize, { min: 1, integer: true });
    this.gamma = optionalNumber("StepLR", options, "gamma", 0.1, { min: 0 });
    this.#baseLrs = optimizer.groups.map((g) => g.lr);
  }

  /** Ends an epoch. */
  step(): void {
    this.epoch++;
    if (this.epoch % this.stepSize !== 0) return;
    for (const g of this.optimizer.groups) g.lr *= this.gamma;
  }

  /** `{kind, epoch, baseLrs}`. */
  stateDict(): ScheduleState {
    return { kind: "StepLR", epoch: this.epoch, baseLrs: [...this.#baseLrs] };
  }

  /** Checks a state from {@link stateDict} without changing anything. */
  checkStateDict(state: unknown, where = "StepLR.loadStateDict"): void {
    this.#parse(state, where);
  }

  /**
   * Restores the epoch count and initial learning rates (all checked first), and sets the
   * optimizer's lr to the one the schedule had reached (loading the optimizer's own state
   * afterwards, as loadCheckpoint does, restores an lr set by hand).
   */
  loadStateDict(state: ScheduleState): void {
    const { epoch, baseLrs } = this.#parse(state, "StepLR.loadStateDict");
    this.epoch = epoch;
    this.#baseLrs = baseLrs;
    // The lr this schedule had reached (an optimizer state loaded afterwards overrides it).
    const scale = this.gamma ** Math.floor(epoch / this.stepSize);
    this.optimizer.groups.forEach((g, i) => (g.lr = baseLrs[i] * scale));
  }

  #parse(state: unknown, where: string): EpochState {
    return epochState("StepLR", where, state, this.optimizer.groups.length);
  }
}

/** Options of {@link ReduceLROnPlateau}. */
export interface ReduceLROnPlateauOptions {
  /**
   * Epochs without improvement before a drop (default 1: the paper drops as soon as the error
   * "stopped improving"). Note PyTorch drops only after `patience + 1` such epochs.
   */
  patience?: number;
  /** Factor per drop (default 0.1: "divide the learning rate by 10", section 5). */
  factor?: number;
  /** Drops allowed in all (default 3: "reduced three times prior to termination", section 5). */
  maxDrops?: number;
  /** Improvement needed to count, absolute (default 0: any decrease of the error counts). */
  threshold?: number;
}

/**
 * The paper's schedule: track the best validation error; once it has not improved for
 * `patience` consecutive epochs, multiply every lr by `factor` and start counting again, at
 * most `maxDrops` times. `step(validationError)` must get the epoch's error (lower is better).
 *
 * @example The paper's schedule: /10 when the validation error stops improving
 * ```ts
 * import assert from "node:assert/strict";
 * import { Linear, ReduceLROnPlateau, SGD } from "../mod.ts";
 *
 * const optimizer = new SGD(new Linear(2, 2).parameters(), { lr: 0.01 });
 * const schedule = new ReduceLROnPlateau(optimizer, { patience: 2 });
 * for (const error of [0.5, 0.4, 0.41, 0.42]) schedule.step(error); // two epochs without progress
 * assert.equal(schedule.drops, 1);
 * assert.ok(Math.abs(optimizer.groups[0].lr - 0.001) < 1e-12);
 * ```
 */
export class ReduceLROnPlateau implements LrSchedule {
  /** Best validation error so far (Infinity before the first epoch). */
  best: number = Infinity;
  /** Consecutive epochs without improvement since the last improvement or drop. */
  badEpochs = 0;
  /** Drops made so far. */
  drops = 0;
  /** Epochs completed. */
  epoch = 0;
  /** Epochs without improvement before a drop. */
  readonly patience: number;
  /** Factor per drop. */
  readonly factor: number;
  /** Maximum number of drops. */
  readonly maxDrops: number;
  /** Improvement needed to count. */
  readonly threshold: number;

  /** Watches `optimizer`'s learning rate. */
  constructor(readonly optimizer: SGD, options: ReduceLROnPlateauOptions = {}) {
    const where = "ReduceLROnPlateau";
    checkOptimizer(where, optimizer);
    checkObject(where, "options", options);
    checkOptions(where, options, PLATEAU_KEYS);
    this.patience = optionalNumber(where, options, "patience", 1, { min: 1, integer: true });
    this.factor = optionalNumber(where, options, "factor", 0.1, { above: 0, below: 1 });
    this.maxDrops = optionalNumber(where, options, "maxDrops", 3, COUNT);
    this.threshold = optionalNumber(where, options, "threshold", 0, { min: 0 });
  }

  /** True once all `maxDrops` drops were made (the paper stops training soon after). */
  get exhausted(): boolean {
    return this.drops >= this.maxDrops;
  }

  /** Ends an epoch whose validation error was `validationError`. */
  step(validationError?: number): void {
    if (typeof validationError !== "number" || Number.isNaN(validationError)) {
      throw new TypeError(
        `ReduceLROnPlateau.step: needs the epoch's validation error, got ${validationError}`,
      );
    }
    this.epoch++;
    if (validationError < this.best - this.threshold) {
      this.best = validationError;
      this.badEpochs = 0;
      return;
    }
    this.badEpochs++;
    if (this.badEpochs >= this.patience && !this.exhausted) {
      this.optimizer.scaleLr(this.factor);
      this.drops++;
      this.badEpochs = 0;
    }
  }

  /** `{kind, best, badEpochs, drops, epoch}` (best is null while Infinity: JSON has no Infinity). */
  stateDict(): ScheduleState {
    return {
      kind: "ReduceLROnPlateau",
      best: Number.isFinite(this.best) ? this.best : null,
      badEpochs: this.badEpochs,
      drops: this.drops,
      epoch: this.epoch,
    };
  }

  /** Checks a state from {@link stateDict} without changing anything. */
  checkStateDict(state: unknown, where = "ReduceLROnPlateau.loadStateDict"): void {
    this.#parse(state, where);
  }

  /** Restores the counters (all checked first). */
  loadStateDict(state: ScheduleState): void {
    Object.assign(this, this.#parse(state, "ReduceLROnPlateau.loadStateDict"));
  }

  #parse(state: unknown, where: string) {
    const s = stateOf("ReduceLROnPlateau", where, state);
    // JSON has no Infinity: null stands for "no epoch yet".
    const best = s.best === null ? Infinity : checkNumber(where, "best (or null)", s.best, {});
    return {
      best,
      badEpochs: checkNumber(where, "badEpochs", s.badEpochs, COUNT),
      drops: checkNumber(where, "drops", s.drops, COUNT),
      epoch: checkNumber(where, "epoch", s.epoch, COUNT),
    };
  }
}

/** Options of {@link CosineAnnealing}. */
export interface CosineAnnealingOptions {
  /** Epochs from the initial lr down to `minLr`. */
  tMax: number;
  /** Final learning rate (default 0). */
  minLr?: number;
}

/**
 * lr = minLr + (initial - minLr) * (1 + cos(pi * epoch / tMax)) / 2, per group; it stays at
 * minLr after tMax epochs (PyTorch's CosineAnnealingLR would climb back up).
 */
export class CosineAnnealing implements LrSchedule {
  /** Epochs completed. */
  epoch = 0;
  /** Length of the half cosine, in epochs. */
  readonly tMax: number;
  /** Final learning rate. */
  readonly minLr: number;
  #baseLrs: number[];

  /** Starts from the optimizer's current learning rates. */
  constructor(readonly optimizer: SGD, options: CosineAnnealingOptions) {
    const where = "CosineAnnealing";
    checkOptimizer(where, optimizer);
    checkObject(where, "options", options);
    checkOptions(where, options, COSINE_KEYS);
    this.tMax = checkNumber(where, "tMax", options.tMax, { min: 1, integer: true });
    this.minLr = optionalNumber(where, options, "minLr", 0, { min: 0 });
    this.#baseLrs = optimizer.groups.map((g) => g.lr);
  }

  /**
   * Ends an epoch. PyTorch's chainable form: the distance of the current lr to minLr shrinks by
   * the ratio of consecutive cosine factors, so from the initial lr this is the closed form
   * above, and an lr set by hand is continued from (not overwritten). After tMax the lr stays.
   */
  step(): void {
    this.epoch++;
    if (this.epoch > this.tMax) return;
    const factor = (t: number) => 1 + Math.cos((Math.PI * t) / this.tMax);
    const ratio = factor(this.epoch) / factor(this.epoch - 1);
    for (const g of this.optimizer.groups) g.lr = this.minLr + (g.lr - this.minLr) * ratio;
  }

  /** `{kind, epoch, baseLrs}`. */
  stateDict(): ScheduleState {
    return { kind: "CosineAnnealing", epoch: this.epoch, baseLrs: [...this.#baseLrs] };
  }

  /** Checks a state from {@link stateDict} without changing anything. */
  checkStateDict(state: unknown, where = "CosineAnnealing.loadStateDict"): void {
    this.#parse(state, where);
  }

  /**
   * Restores the epoch count and initial learning rates (all checked first), and sets the
   * optimizer's lr to the one the schedule had reached (loading the optimizer's own state
   * afterwards, as loadCheckpoint does, restores an lr set by hand).
   */
  loadStateDict(state: ScheduleState): void {
    const { epoch, baseLrs } = this.#parse(state, "CosineAnnealing.loadStateDict");
    this.epoch = epoch;
    this.#baseLrs = baseLrs;
    // The lr this schedule had reached (an optimizer state loaded afterwards overrides it).
    const t = Math.min(epoch, this.tMax);
    const cosine = (1 + Math.cos((Math.PI * t) / this.tMax)) / 2;
    this.optimizer.groups.forEach((
      g,
      i,
    ) => (g.lr = this.minLr + (baseLrs[i] - this.minLr) * cosine));
  }

  #parse(state: unknown, where: string): EpochState {
    return epochState("CosineAnnealing", where, state, this.optimizer.groups.length);
  }
}
