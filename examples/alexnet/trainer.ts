/**
 * The training loop behind `deno task train-alexnet` (and `ablate`): data in, SGD steps, an
 * evaluation per epoch, metrics, checkpoints and pictures out. Written the documented way, so
 * device memory stays flat: every step's inputs are disposed, `backward()` releases the graph,
 * and evaluation runs inside `noGrad()`.
 *
 * @module
 */

import { argmax, fromArray, noGrad, type Tensor } from "../../mod.ts";
import { crossEntropy } from "../../tensor/ops/softmax.ts";
import type { DataLoader } from "../../data/mod.ts";
import type { Module } from "../../nn/module.ts";
import { SGD } from "../../optim/sgd.ts";
import {
  CosineAnnealing,
  type LrSchedule,
  ReduceLROnPlateau,
  StepLR,
} from "../../optim/schedules.ts";
import { loadCheckpoint, saveCheckpoint } from "../../io/checkpoint.ts";
import { writeFileAtomic, writeTextFileAtomic } from "../../io/atomic.ts";
import { loadSafetensors, saveSafetensors } from "../../io/safetensors.ts";
import { filterGridPng, trainingCurvesPng } from "./plot.ts";
import { alexnet, alexnetMini, alexnetTorchvision } from "../../models/alexnet.ts";
import type { TrainConfig } from "./config.ts";
import { loadRunData, makeLoaders, type RunData } from "./data.ts";
import { chooseDevice } from "./device.ts";
import { formatDuration, ProgressBar } from "./progress.ts";

/** One line of `metrics.jsonl`. */
export interface MetricRecord {
  /** "step" every few steps, "epoch" after each evaluation. */
  kind: "step" | "epoch";
  /** 1-based epoch. */
  epoch: number;
  /** Optimizer steps so far. */
  step: number;
  /** Mean training loss (over the last few steps, or the whole epoch). */
  trainLoss: number;
  /** Training accuracy, [0, 1]. */
  trainAccuracy: number;
  /** Test loss (epoch records). */
  testLoss?: number;
  /** Test accuracy (epoch records). */
  testAccuracy?: number;
  /** Learning rate in force. */
  lr: number;
  /** Seconds of training so far (excluding evaluation). */
  seconds: number;
  /** Training throughput over the epoch. */
  imagesPerSecond?: number;
}

/** What a finished run reports. */
export interface TrainResult {
  /** Device used. */
  device: string;
  /** Every metric record. */
  metrics: MetricRecord[];
  /** Test accuracy after the last epoch. */
  finalTestAccuracy: number;
  /** Best test accuracy of any epoch. */
  bestTestAccuracy: number;
  /** Steps taken in all. */
  steps: number;
  /** The run folder. */
  out: string;
}

/** Hooks for callers that embed the loop (tests, ablations). */
export interface TrainHooks {
  /** Called with each step's loss, in order. */
  onStepLoss?: (step: number, loss: number) => void;
  /** Suppresses all printing. */
  quiet?: boolean;
}

/** Builds the configured network. */
export function buildModel(
  config: TrainConfig,
  inputShape: readonly number[],
  classes: number,
): Module {
  const common = {
    activation: config.activation,
    dropout: config.dropout,
    pool: config.pool,
    inChannels: inputShape[0],
    numClasses: classes,
    seed: config.seed,
  };
  if (config.arch === "alexnet-torchvision") {
    return alexnetTorchvision({ ...common, init: config.init });
  }
  const options = {
    ...common,
    lrn: config.lrn,
    groups: config.groups,
    inputSize: inputShape[1],
    init: config.init,
  };
  return config.arch === "alexnet" ? alexnet(options) : alexnetMini(options);
}

/** The configured learning-rate schedule for `optimizer` (null for "none"). */
export function makeSchedule(config: TrainConfig, optimizer: SGD): LrSchedule | null {
  switch (config.schedule) {
    case "plateau":
      return new ReduceLROnPlateau(optimizer, { patience: 1, maxDrops: 3 });
    case "step":
      return new StepLR(optimizer, { stepSize: Math.max(1, Math.ceil(config.epochs / 3)) });
    case "cosine":
      return new CosineAnnealing(optimizer, { tMax: config.epochs });
    default:
      return null;
  }
}

/** Training progress saved in every checkpoint (with the config and the metrics so far). */
interface RunState {
  epoch: number; // 0-based epoch in progress
  batch: number; // batches of that epoch already trained on
  step: number;
  seconds: number;
  epochLoss: number;
  epochCorrect: number;
  epochSeen: number;
}

/** Trains as configured; see the module doc. */
export async function train(config: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const runStart = performance.now();
  const say = (text: string) => hooks.quiet || progress.line(text);
  const progress = new ProgressBar(config.plain);
  const checkpointPath = `${config.out}/checkpoint.safetensors`;
  let metrics: MetricRecord[] = [];
  let state: RunState = {
    epoch: 0,
    batch: 0,
    step: 0,
    seconds: 0,
    epochLoss: 0,
    epochCorrect: 0,
    epochSeen: 0,
  };

  if (config.resume) {
    // The checkpoint's configuration wins, except for how long to train and how to show it.
    const { metadata } = await readCheckpointMetadata(checkpointPath);
    const saved = metadata.config as TrainConfig;
    config = {
      ...saved,
      epochs: config.epochs,
      maxSteps: config.maxSteps,
      timeLimit: config.timeLimit,
      plain: config.plain,
      resume: true,
      out: config.out,
      device: config.device,
    };
  }
  await Deno.mkdir(config.out, { recursive: true });

  const data: RunData = await loadRunData(config);
  const classes = data.classNames.length;
  const batchShape = [config.batchSize, ...data.inputShape];
  const choice = await chooseDevice(
    config.device,
    () => buildModel(config, data.inputShape, classes),
    batchShape,
    classes,
  );
  say(`device: ${choice.device} (${choice.reason})`);
  say(
    `data: ${data.source}; ${data.train.shape[0]} training and ${data.test.shape[0]} test images`,
  );

  const model = await buildModel(config, data.inputShape, classes).to(choice.device);
  const optimizer = new SGD(model.parameters(), {
    lr: config.lr,
    momentum: config.momentum,
    weightDecay: config.weightDecay,
    rule: config.sgdRule,
  });
  const schedule = makeSchedule(config, optimizer);

  if (config.resume) {
    const metadata = await loadCheckpoint(checkpointPath, {
      model,
      optimizer,
      schedule: schedule ?? undefined,
    });
    state = metadata.run as RunState;
    metrics = metadata.metrics as MetricRecord[];
    say(
      `resumed ${checkpointPath}: epoch ${
        state.epoch + 1
      }, batch ${state.batch}, step ${state.step}`,
    );
  } else {
    const params = model.parameterCount();
    say(
      `model: ${config.arch}, ${
        params.toLocaleString("en-US")
      } parameters; ${config.epochs} epochs of batch ${config.batchSize}, lr ${config.lr}`,
    );
  }

  if (data.meanImage) {
    // predict subtracts the same mean image from new photos (paper section 2).
    await saveSafetensors(`${config.out}/mean_image.safetensors`, {
      mean: { dtype: "F32", shape: [3, 256, 256], data: data.meanImage },
    });
  }
  const { trainLoader, testLoader } = makeLoaders(config, data);
  const save = async () => {
    await saveCheckpoint(checkpointPath, {
      model,
      optimizer,
      schedule: schedule ?? undefined,
      metadata: {
        epoch: state.epoch,
        step: state.step,
        config,
        run: state,
        metrics,
        data: { kind: data.kind, classNames: data.classNames, inputShape: data.inputShape },
      },
    });
    await writeTextFileAtomic(
      `${config.out}/metrics.jsonl`,
      metrics.map((m) => JSON.stringify(m)).join("\n") + "\n",
    );
  };

  // Loss and predictions are read back a few steps at a time: on a GPU a read waits for the
  // queue to drain, so reading every step would stall it.
  const readEvery = choice.device === "cpu" ? 1 : 8;
  let pending: { loss: Tensor; predictions: Tensor; labels: Int32Array }[] = [];
  let windowLoss = 0, windowCorrect = 0, windowSeen = 0;
  const drain = async () => {
    const values = await Promise.all(
      pending.map(async (p) => [await p.loss.item(), await p.predictions.data()] as const),
    );
    values.forEach(([loss, predicted], i) => {
      const labels = pending[i].labels;
      let correct = 0;
      for (let j = 0; j < labels.length; j++) if (predicted[j] === labels[j]) correct++;
      const stepNumber = state.step - pending.length + i + 1;
      hooks.onStepLoss?.(stepNumber, loss);
      state.epochLoss += loss * labels.length;
      state.epochCorrect += correct;
      state.epochSeen += labels.length;
      windowLoss += loss * labels.length;
      windowCorrect += correct;
      windowSeen += labels.length;
    });
    for (const p of pending) {
      p.loss.dispose();
      p.predictions.dispose();
    }
    pending = [];
  };

  const steps = trainLoader.batchesPerEpoch;
  let stopped = false, outOfTime = false;
  try {
    for (; state.epoch < config.epochs && !stopped; state.epoch++, state.batch = 0) {
      model.train();
      const epochStart = performance.now();
      const secondsAtStart = state.seconds;
      let imagesThisSession = 0;
      for await (const batch of trainLoader.epoch(state.epoch, state.batch)) {
        const n = batch.shape[0];
        using x = fromArray(batch.images, batch.shape, { device: choice.device });
        using y = fromArray(batch.labels, [n], { device: choice.device });
        const logits = model.forward(x);
        const predictions = argmax(logits); // not part of the graph: survives backward
        const loss = crossEntropy(logits, y);
        optimizer.zeroGrad();
        loss.backward(); // releases logits and every other intermediate
        optimizer.step();
        pending.push({ loss, predictions, labels: batch.labels });
        state.step++;
        state.batch++;
        imagesThisSession += n;
        if (pending.length >= readEvery || state.batch === steps) await drain();
        const elapsed = (performance.now() - epochStart) / 1000;
        const rate = imagesThisSession / Math.max(elapsed, 1e-9);
        if (!hooks.quiet && state.epochSeen > 0) {
          progress.update({
            epoch: state.epoch + 1,
            epochs: config.epochs,
            step: state.batch,
            steps,
            loss: state.epochLoss / state.epochSeen,
            accuracy: state.epochCorrect / state.epochSeen,
            imagesPerSecond: rate,
            etaSeconds: ((steps - state.batch) * config.batchSize) / rate,
          });
        }
        if (state.step % 10 === 0 && windowSeen > 0) {
          metrics.push({
            kind: "step",
            epoch: state.epoch + 1,
            step: state.step,
            trainLoss: windowLoss / windowSeen,
            trainAccuracy: windowCorrect / windowSeen,
            lr: optimizer.lr,
            seconds: secondsAtStart + elapsed,
          });
          windowLoss = windowCorrect = windowSeen = 0;
        }
        if (config.maxSteps > 0 && state.step >= config.maxSteps) {
          stopped = true;
          break;
        }
        // --time-limit: stop early enough to evaluate and save within the budget (evaluation
        // runs forward only, about a third of a training step per image).
        const evalSeconds = data.test.shape[0] / (3 * rate) + 5;
        if (
          config.timeLimit > 0 &&
          (performance.now() - runStart) / 1000 + evalSeconds > 60 * config.timeLimit
        ) {
          outOfTime = stopped = true;
          break;
        }
        if (state.step % config.checkpointEvery === 0 && state.batch < steps) {
          await drain();
          state.seconds = secondsAtStart + (performance.now() - epochStart) / 1000;
          await save();
        }
      }
      await drain();
      state.seconds = secondsAtStart + (performance.now() - epochStart) / 1000;
      const partial = state.batch < steps;
      if (partial && !outOfTime) {
        await save(); // stopped by --max-steps: resumable, not evaluated
        break;
      }
      const evaluation = await evaluate(model, testLoader, choice.device);
      const record: MetricRecord = {
        kind: "epoch",
        epoch: state.epoch + (partial ? state.batch / steps : 1),
        step: state.step,
        trainLoss: state.epochLoss / Math.max(1, state.epochSeen),
        trainAccuracy: state.epochCorrect / Math.max(1, state.epochSeen),
        testLoss: evaluation.loss,
        testAccuracy: evaluation.accuracy,
        lr: optimizer.lr,
        seconds: state.seconds,
        imagesPerSecond: imagesThisSession / Math.max(1e-9, state.seconds - secondsAtStart),
      };
      metrics.push(record);
      say(
        `${partial ? `time limit: stopped at batch ${state.batch}/${steps} of epoch` : "epoch"} ` +
          `${state.epoch + 1}/${config.epochs}: train loss ${record.trainLoss.toFixed(4)}, ` +
          `train acc ${(100 * record.trainAccuracy).toFixed(2)}%, ` +
          `test loss ${evaluation.loss.toFixed(4)}, test acc ${
            (100 * evaluation.accuracy).toFixed(2)
          }%, ` +
          `lr ${record.lr}, ${record.imagesPerSecond!.toFixed(0)} img/s, ${
            formatDuration(state.seconds)
          } elapsed`,
      );
      if (partial) {
        // Out of time mid-epoch: the checkpoint resumes at this very batch.
        await save();
        await drawPictures(model, metrics, config.out);
        break;
      }
      schedule?.step(1 - evaluation.accuracy);
      state.epochLoss = state.epochCorrect = state.epochSeen = 0;
      // The checkpoint marks this epoch done: a resume starts the next one.
      const current = state;
      state = { ...state, epoch: state.epoch + 1, batch: 0 };
      await save();
      state = current;
      await drawPictures(model, metrics, config.out);
      if (outOfTime) break;
    }
  } finally {
    for (const p of pending) {
      p.loss.dispose();
      p.predictions.dispose();
    }
    await trainLoader.close();
    await testLoader.close();
  }

  const epochs = metrics.filter((m) => m.kind === "epoch");
  const last = epochs.at(-1);
  const result: TrainResult = {
    device: choice.device,
    metrics,
    finalTestAccuracy: last?.testAccuracy ?? NaN,
    bestTestAccuracy: Math.max(...epochs.map((m) => m.testAccuracy ?? 0), 0),
    steps: state.step,
    out: config.out,
  };
  if (last) {
    say(
      `done: ${result.steps} steps in ${formatDuration(state.seconds)} on ${choice.device}; ` +
        `final test accuracy ${(100 * result.finalTestAccuracy).toFixed(2)}% ` +
        `(best ${(100 * result.bestTestAccuracy).toFixed(2)}%). Run folder: ${config.out} ` +
        `(metrics.jsonl, checkpoint.safetensors, curves.png, conv1_filters.png)`,
    );
  } else {
    say(`stopped after ${result.steps} steps; resume with --resume --out ${config.out}`);
  }
  if (outOfTime) {
    say(
      `the --time-limit of ${config.timeLimit} minutes ended the run early; --resume continues it`,
    );
  }
  optimizer.dispose();
  return result;
}

/** Test loss and accuracy, computed without a graph. */
export async function evaluate(
  model: Module,
  loader: DataLoader,
  device: string,
): Promise<{ loss: number; accuracy: number }> {
  model.eval();
  let totalLoss = 0, correct = 0, seen = 0;
  for await (const batch of loader.epoch(0)) {
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
    totalLoss += lossValue * n;
    for (let i = 0; i < n; i++) if (predicted[i] === batch.labels[i]) correct++;
    seen += n;
  }
  model.train();
  return { loss: totalLoss / seen, accuracy: correct / seen };
}

/** Writes curves.png and conv1_filters.png (the paper's Figure 3) into the run folder. */
export async function drawPictures(
  model: Module,
  metrics: MetricRecord[],
  out: string,
): Promise<void> {
  // Training curves from the 10-step windows, test points from the evaluations.
  const points = metrics.map((m) =>
    m.kind === "step"
      ? { epoch: m.epoch, step: m.step, trainLoss: m.trainLoss, trainAccuracy: m.trainAccuracy }
      : { epoch: m.epoch, step: m.step, testLoss: m.testLoss, testAccuracy: m.testAccuracy }
  );
  await writeFileAtomic(
    `${out}/curves.png`,
    trainingCurvesPng(points, { x: "step", title: "ALEXNET TRAINING" }),
  );
  // The first conv layer's weights: the paper's Figure 3 shows these, 96 of them at 11x11x3.
  const weight = [...model.parameters()].find((t) => t.rank === 4)!;
  const shape = weight.shape as [number, number, number, number];
  // Conv1 is not grouped; drawing its two halves apart mirrors Figure 3's two GPUs.
  const groups = shape[0] % 2 === 0 ? 2 : 1;
  await writeFileAtomic(
    `${out}/conv1_filters.png`,
    // Tiles about 48 pixels wide whatever the kernel (11x11 in the paper, 5x5 in the mini model).
    filterGridPng(new Float32Array(await weight.data()), shape, {
      groups,
      scale: Math.max(3, Math.round(48 / shape[3])),
    }),
  );
}

/** Reads a checkpoint's run metadata (config, data description, progress) without loading weights. */
export async function readCheckpointMetadata(
  path: string,
): Promise<{ metadata: Record<string, unknown> }> {
  let file;
  try {
    file = await loadSafetensors(path);
  } catch (error) {
    throw new Error(`cannot read checkpoint ${path}: ${(error as Error).message}`);
  }
  const raw = file.metadata;
  const metadata: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    try {
      metadata[key] = JSON.parse(value);
    } catch {
      metadata[key] = value;
    }
  }
  if (!metadata.config) throw new Error(`checkpoint ${path} holds no run configuration`);
  return { metadata };
}
