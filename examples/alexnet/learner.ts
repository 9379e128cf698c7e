/**
 * The model side of a training run: a {@link Learner} is a model with its optimizer and
 * schedule that can evaluate a batch and save itself; the training step itself is written out
 * in the loop that owns it (train.ts for {@link oneDevice}, two_devices.ts for the split
 * model). The run's bookkeeping (trainer.ts) needs only this interface, whichever the device.
 *
 * @module
 */

import {
  add,
  affine,
  argmax,
  type CheckpointMetadata,
  CosineAnnealing,
  crossEntropy,
  fromArray,
  loadCheckpoint,
  type LrSchedule,
  type Module,
  noGrad,
  ReduceLROnPlateau,
  saveCheckpoint,
  SGD,
  StepLR,
  sum,
  type Tensor,
} from "../../mod.ts";
import type { Batch } from "../../data/mod.ts";
import { alexnet, alexnetMini, alexnetTorchvision, figure1Net } from "../../models/alexnet.ts";
import type { TrainConfig } from "./config.ts";
import type { RunData } from "./data.ts";
import { chooseDevice } from "./device.ts";

/** A step whose loss and predictions are read back later (a GPU read waits for its queue). */
export interface PendingStep {
  /** Images in the batch. */
  size: number;
  /** Reads the mean loss and the number of correct predictions, and frees the step's tensors. */
  read(): Promise<{ loss: number; correct: number }>;
  /** Frees the step's tensors unread. */
  dispose(): void;
}

/** What the loop needs of a model and its optimizer, on one device or two. */
export interface Learner {
  /** Where it runs, for the log ("cpu", "gpu", "gpu0 + gpu1"). */
  readonly device: string;
  /** Steps whose losses are read back together: 1 on the CPU, 8 on a GPU. */
  readonly readEvery: number;
  /** The learning rate in force. */
  readonly lr: number;
  /** The learning-rate schedules, stepped once per epoch on the validation error. */
  readonly schedules: LrSchedule[];
  /** Parameters in all. */
  parameterCount(): number;
  /** Training mode (dropout on) or evaluation mode. */
  train(mode: boolean): void;
  /** The summed loss and the correct predictions of a batch, without a graph. */
  evaluateBatch(batch: Batch): Promise<{ lossSum: number; correct: number }>;
  /** Whether every weight is finite (one reduction per parameter, one read). */
  weightsAreFinite(): Promise<boolean>;
  /** The whole model with the current weights (pictures, best.safetensors). */
  model(): Promise<Module>;
  /** Saves model, optimizer and schedule; absent when the learner writes no checkpoint. */
  save?(path: string, metadata: CheckpointMetadata): Promise<void>;
  /** Restores what {@link save} wrote. */
  load?(path: string): Promise<void>;
  /** Words for the end of the epoch line (two devices: the transfer times). */
  epochNote?(): string;
  /** Frees the optimizer state. */
  dispose(): void;
}

/** Builds a {@link Learner} (or a richer kind, `L`) for a run. */
export type MakeLearner<L extends Learner = Learner> = (
  config: TrainConfig,
  data: RunData,
  say: (text: string) => void,
) => Promise<L>;

/** Builds the configured network. */
export function buildModel(
  config: TrainConfig,
  inputShape: readonly number[],
  classes: number,
): Module {
  const common = {
    activation: config.activation,
    dropout: config.dropout,
    inChannels: inputShape[0],
    numClasses: classes,
    seed: config.seed,
    // "auto": each network's own default (paper for alexnet, He for the mini model).
    init: config.init === "auto" ? undefined : config.init,
  };
  if (config.pool === "plain-matched" && config.arch === "alexnet-torchvision") {
    throw new Error("--pool plain-matched is for alexnet and alexnet-mini");
  }
  const pool = config.pool === "plain-matched" ? "plain" : config.pool;
  const init = common.init === "xavier" ? undefined : common.init;
  if (config.arch === "alexnet-torchvision") return alexnetTorchvision({ ...common, init, pool });
  if (config.arch === "figure1-cnn") {
    // figure1Net has no dropout or pooling choice (it is Figure 1's plain net): pass its own keys.
    const { activation, inChannels, numClasses, seed } = common;
    const netInit = common.init === "paper" ? undefined : common.init;
    return figure1Net({
      activation,
      inChannels,
      numClasses,
      seed,
      init: netInit,
      inputSize: inputShape[1],
    });
  }
  const options = {
    ...common,
    init,
    pool: config.pool,
    hidden: config.fcWidth || undefined,
    lrnAlpha: config.lrnAlpha,
    lrn: config.lrn,
    groups: config.oneGpu ? 1 : config.groups,
    oneGpu: config.oneGpu,
    inputSize: inputShape[1],
  };
  return config.arch === "alexnet" ? alexnet(options) : alexnetMini(options);
}

/** The configured learning-rate schedule for `optimizer` (null for "none"). */
export function makeSchedule(config: TrainConfig, optimizer: SGD): LrSchedule | null {
  switch (config.schedule) {
    case "plateau":
      // "Stopped improving" as two epochs in a row without a new best: one epoch's error on
      // the 1,000 validation images moves by about a point by chance, and with patience 1 a
      // single unlucky epoch divided the rate (experiments/RESULTS.md measured the spread).
      return new ReduceLROnPlateau(optimizer, { patience: 2, maxDrops: 3 });
    case "step":
      return new StepLR(optimizer, { stepSize: Math.max(1, Math.ceil(config.epochs / 3)) });
    case "cosine":
      return new CosineAnnealing(optimizer, { tMax: config.epochs });
    default:
      return null;
  }
}

/**
 * Whether every tensor is finite, with one read: x * 0 is 0 for finite x and NaN for NaN and
 * ±Infinity, so the sum over all tensors of sum(x * 0) is 0 exactly when all are finite.
 */
export async function allFinite(tensors: Tensor[]): Promise<boolean> {
  let total: Tensor | null = null;
  for (const t of tensors) {
    using zeroed = noGrad(() => affine(t, 0, 0));
    const partial = noGrad(() => sum(zeroed));
    if (total === null) total = partial;
    else {
      const previous: Tensor = total;
      total = noGrad(() => add(previous, partial));
      previous.dispose();
      partial.dispose();
    }
  }
  if (total === null) return true;
  const value = await total.item();
  total.dispose();
  return Number.isFinite(value);
}

/** A learner on one device: its network and optimizer are the training step's (train.ts). */
export interface OneDeviceLearner extends Learner {
  /** The network, on {@link Learner.device}. */
  readonly network: Module;
  /** SGD over the network's parameters. */
  readonly optimizer: SGD;
}

/**
 * A training step's loss and predictions, read back when the loop asks (every step on the CPU,
 * every 8 on a GPU, so the GPU's queue is not drained after each step).
 */
export function readLater(loss: Tensor, predictions: Tensor, labels: Int32Array): PendingStep {
  return {
    size: labels.length,
    async read() {
      const [value, predicted] = await Promise.all([loss.item(), predictions.data()]);
      this.dispose();
      let correct = 0;
      for (let j = 0; j < labels.length; j++) if (predicted[j] === labels[j]) correct++;
      return { loss: value, correct };
    },
    dispose() {
      loss.dispose();
      predictions.dispose();
    },
  };
}

/** The one-device learner: the model, SGD and the schedule on the faster (or chosen) device. */
export async function oneDevice(
  config: TrainConfig,
  data: RunData,
  say: (text: string) => void,
): Promise<OneDeviceLearner> {
  const classes = data.classNames.length;
  const choice = await chooseDevice(
    config.device,
    () => buildModel(config, data.inputShape, classes),
    [config.batchSize, ...data.inputShape],
    classes,
  );
  say(`device: ${choice.device} (${choice.reason})`);
  const device = choice.device;
  const model = await buildModel(config, data.inputShape, classes).to(device);
  const optimizer = new SGD(model.parameters(), {
    lr: config.lr,
    momentum: config.momentum,
    weightDecay: config.weightDecay,
    rule: config.sgdRule,
  });
  const schedule = makeSchedule(config, optimizer);
  return {
    device,
    network: model,
    optimizer,
    readEvery: device === "cpu" ? 1 : 8,
    get lr() {
      return optimizer.lr;
    },
    schedules: schedule ? [schedule] : [],
    parameterCount: () => model.parameterCount(),
    train: (mode) => void model.train(mode),
    async evaluateBatch(batch) {
      const n = batch.shape[0];
      using x = fromArray(batch.images, batch.shape, { device });
      using y = fromArray(batch.labels, [n], { device });
      const [loss, predictions] = noGrad(() => {
        const logits = model.forward(x);
        return [crossEntropy(logits, y), argmax(logits)];
      });
      const [lossValue, predicted] = await Promise.all([loss.item(), predictions.data()]);
      loss.dispose();
      predictions.dispose();
      let correct = 0;
      for (let i = 0; i < n; i++) if (predicted[i] === batch.labels[i]) correct++;
      return { lossSum: lossValue * n, correct };
    },
    weightsAreFinite: () => allFinite(model.parameters()),
    model: () => Promise.resolve(model),
    save: (path, metadata) =>
      saveCheckpoint(path, { model, optimizer, schedule: schedule ?? undefined, metadata }),
    load: async (path) => {
      await loadCheckpoint(path, { model, optimizer, schedule: schedule ?? undefined });
    },
    dispose: () => optimizer.dispose(),
  };
}
