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

import type { SGD } from "./sgd.ts";

/** JSON-serializable schedule state. */
export type ScheduleState = Record<string, unknown>;

/** What every schedule provides. */
export interface LrSchedule {
  /** Ends an epoch: updates the optimizer's learning rate. Plateau schedules need the metric. */
  step(validationError?: number): void;
  /** The state, as plain JSON. */
  stateDict(): ScheduleState;
  /** Restores a state from {@link stateDict}; throws if it belongs to another kind of schedule. */
  loadStateDict(state: ScheduleState): void;
}

function checkKind(kind: string, state: ScheduleState): void {
  if (state.kind !== kind) {
    throw new Error(`${kind}.loadStateDict: the state belongs to ${JSON.stringify(state.kind)}`);
  }
}

function numberField(kind: string, state: ScheduleState, field: string): number {
  const value = state[field];
  if (typeof value !== "number") {
    throw new TypeError(
      `${kind}.loadStateDict: field "${field}" must be a number, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function lrList(kind: string, state: ScheduleState, groups: number): number[] {
  const value = state.baseLrs;
  if (
    !Array.isArray(value) || value.length !== groups || value.some((x) => typeof x !== "number")
  ) {
    throw new Error(
      `${kind}.loadStateDict: baseLrs must hold ${groups} numbers (one per group), got ${
        JSON.stringify(value)
      }`,
    );
  }
  return value as number[];
}

/** Options of {@link StepLR}. */
export interface StepLROptions {
  /** Epochs between drops. */
  stepSize: number;
  /** Factor applied at each drop (default 0.1: the paper's and Caffe's /10). */
  gamma?: number;
}

/**
 * lr = initial lr * gamma ^ floor(epoch / stepSize), per group.
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
    if (!(Number.isInteger(options.stepSize) && options.stepSize > 0)) {
      throw new RangeError(`StepLR: stepSize must be a positive integer, got ${options.stepSize}`);
    }
    this.stepSize = options.stepSize;
    this.gamma = options.gamma ?? 0.1;
    this.#baseLrs = optimizer.groups.map((g) => g.lr);
  }

  /** Ends an epoch. */
  step(): void {
    this.epoch++;
    // From the initial lr, not by repeated multiplication, so rounding cannot accumulate.
    const scale = this.gamma ** Math.floor(this.epoch / this.stepSize);
    this.optimizer.groups.forEach((g, i) => (g.lr = this.#baseLrs[i] * scale));
  }

  /** `{kind, epoch, baseLrs}`. */
  stateDict(): ScheduleState {
    return { kind: "StepLR", epoch: this.epoch, baseLrs: [...this.#baseLrs] };
  }

  /** Restores the epoch count and initial learning rates. */
  loadStateDict(state: ScheduleState): void {
    checkKind("StepLR", state);
    this.#baseLrs = lrList("StepLR", state, this.optimizer.groups.length);
    this.epoch = numberField("StepLR", state, "epoch");
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
    this.patience = options.patience ?? 1;
    this.factor = options.factor ?? 0.1;
    this.maxDrops = options.maxDrops ?? 3;
    this.threshold = options.threshold ?? 0;
    if (!(Number.isInteger(this.patience) && this.patience >= 1)) {
      throw new RangeError(
        `ReduceLROnPlateau: patience must be a positive integer, got ${this.patience}`,
      );
    }
    if (!(this.factor > 0 && this.factor < 1)) {
      throw new RangeError(`ReduceLROnPlateau: factor must be in (0, 1), got ${this.factor}`);
    }
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

  /** Restores the counters. */
  loadStateDict(state: ScheduleState): void {
    const kind = "ReduceLROnPlateau";
    checkKind(kind, state);
    this.best = state.best === null ? Infinity : numberField(kind, state, "best");
    this.badEpochs = numberField(kind, state, "badEpochs");
    this.drops = numberField(kind, state, "drops");
    this.epoch = numberField(kind, state, "epoch");
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
    if (!(Number.isInteger(options.tMax) && options.tMax > 0)) {
      throw new RangeError(`CosineAnnealing: tMax must be a positive integer, got ${options.tMax}`);
    }
    this.tMax = options.tMax;
    this.minLr = options.minLr ?? 0;
    this.#baseLrs = optimizer.groups.map((g) => g.lr);
  }

  /** Ends an epoch. */
  step(): void {
    this.epoch++;
    const t = Math.min(this.epoch, this.tMax);
    const cosine = (1 + Math.cos((Math.PI * t) / this.tMax)) / 2;
    this.optimizer.groups.forEach((g, i) => {
      g.lr = this.minLr + (this.#baseLrs[i] - this.minLr) * cosine;
    });
  }

  /** `{kind, epoch, baseLrs}`. */
  stateDict(): ScheduleState {
    return { kind: "CosineAnnealing", epoch: this.epoch, baseLrs: [...this.#baseLrs] };
  }

  /** Restores the epoch count and initial learning rates. */
  loadStateDict(state: ScheduleState): void {
    checkKind("CosineAnnealing", state);
    this.#baseLrs = lrList("CosineAnnealing", state, this.optimizer.groups.length);
    this.epoch = numberField("CosineAnnealing", state, "epoch");
  }
}
