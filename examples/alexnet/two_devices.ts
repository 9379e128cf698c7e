/**
 * `deno task train-alexnet --devices 2`: the training loop of train.ts with AlexNet split over
 * two devices as the paper's two GPUs split it (section 3.2). The split model, and its
 * training step that crosses between the devices, is parallel.ts's {@link TwoDeviceAlexNet};
 * this file builds it with an SGD and a schedule per device and drives it with the run
 * bookkeeping of trainer.ts, so every flag works as on one device, except that no resumable
 * checkpoint is written (metrics, pictures and best.safetensors are).
 *
 * @module
 */

import { initWebGPU, Sequential, SGD, type SgdOptions } from "../../mod.ts";
import type { TrainConfig } from "./config.ts";
import { allFinite, buildModel, type Learner, type MakeLearner, makeSchedule } from "./learner.ts";
import { type TransferStats, TwoDeviceAlexNet, zeroStats } from "./parallel.ts";
import { afterStep, closeRun, endEpoch, epochs, report, setupRun } from "./trainer.ts";
import type { TrainHooks, TrainResult } from "./trainer.ts";

/** Steps counted and their transfers summed. */
interface TransferCounter {
  steps: number;
  total: TransferStats;
}

/** The learner of a two-device run: the split network, an SGD per device, the transfers. */
export interface TwoDeviceLearner extends Learner {
  /** The network split over the two devices. */
  readonly net: TwoDeviceAlexNet;
  /** SGD over each device's parameters. */
  readonly optimizers: [SGD, SGD];
  /** Adds a step's cross-device copies to the run's and the epoch's counts. */
  countTransfers(transfer: TransferStats): void;
}

/** What {@link trainTwoDevices} returns: the run's result and the mean transfers per step. */
export interface TwoDeviceTrainResult extends TrainResult {
  /** Mean cross-device copies per step over the run. */
  transferPerStep: TransferStats;
}

/**
 * Trains `config`'s AlexNet (alexnet or alexnet-mini) split over two devices (section 3.2)
 * with the run bookkeeping of trainer.ts: every flag as on one device, except that it writes
 * no resumable checkpoint (metrics, pictures and best.safetensors it writes). `hooks.devices`
 * defaults to two WebGPU devices, "gpu0" and "gpu1".
 */
export async function trainTwoDevices(
  config: TrainConfig,
  hooks: TrainHooks & { devices?: readonly [string, string] } = {},
): Promise<TwoDeviceTrainResult> {
  const stats: TransferCounter = { steps: 0, total: zeroStats() };
  const run = await setupRun(config, hooks, twoDevices(hooks.devices, stats));
  const { net, optimizers } = run.learner;
  try {
    for (const batches of epochs(run)) {
      for await (const batch of batches) {
        // Forward stage by stage, the loss on device 0, backward stage by stage, then each
        // device's SGD step: TwoDeviceAlexNet.trainStep (parallel.ts). It reads the loss back.
        const { loss, correct, transfer } = await net.trainStep(
          batch.images,
          batch.shape,
          batch.labels,
          optimizers,
        );
        run.learner.countTransfers(transfer);
        const read = () => Promise.resolve({ loss, correct });
        if (await afterStep(run, { size: batch.shape[0], read, dispose: () => {} })) break;
      }
      await endEpoch(run);
    }
  } finally {
    closeRun(run);
  }
  const n = Math.max(1, stats.steps), t = stats.total;
  return {
    ...report(run),
    transferPerStep: {
      forwardMs: t.forwardMs / n,
      backwardMs: t.backwardMs / n,
      forwardBytes: t.forwardBytes / n,
      backwardBytes: t.backwardBytes / n,
    },
  };
}

/**
 * Builds the two-device learner: the model split as {@link TwoDeviceAlexNet}, an SGD and a
 * schedule per device (both schedules see the same validation error, so they decide alike).
 * It writes no resumable checkpoint: the optimizer state lives in halves. `devices` defaults
 * to two WebGPU devices; `stats` collects the transfers of every step.
 */
function twoDevices(
  devices: readonly [string, string] | undefined,
  stats: TransferCounter,
): MakeLearner<TwoDeviceLearner> {
  return async (config, data, say) => {
    if (config.arch === "alexnet-torchvision") {
      throw new RangeError(
        "--devices 2: the two-GPU split is the 2012 paper's (alexnet, alexnet-mini); " +
          "torchvision's variant was never split",
      );
    }
    const model = buildModel(config, data.inputShape, data.classNames.length);
    if (!(model instanceof Sequential)) throw new TypeError("--devices 2: expected a Sequential");
    const pair = devices ?? await acquireTwoGpus();
    const net = await TwoDeviceAlexNet.fromModel(model, pair);
    const sgd: SgdOptions = {
      lr: config.lr,
      momentum: config.momentum,
      weightDecay: config.weightDecay,
      rule: config.sgdRule,
    };
    const optimizers: [SGD, SGD] = [
      new SGD(net.parameters(0), sgd),
      new SGD(net.parameters(1), sgd),
    ];
    const schedules = optimizers.flatMap((o) => makeSchedule(config, o) ?? []);
    say(
      `two devices: ${pair.join(" + ")}, ${net.stageCount} stages` +
        (config.lrn ? "; LRN per device (section 3.3)" : ""),
    );
    let epoch: TransferCounter = { steps: 0, total: zeroStats() };
    return {
      device: pair.join(" + "),
      net,
      optimizers,
      readEvery: 1, // trainStep reads its loss itself
      get lr() {
        return optimizers[0].lr;
      },
      schedules,
      parameterCount: () => model.parameterCount(),
      train: (mode) => void net.train(mode),
      countTransfers(transfer) {
        for (const counter of [stats, epoch]) {
          counter.steps++;
          for (const key of Object.keys(transfer) as (keyof TransferStats)[]) {
            counter.total[key] += transfer[key];
          }
        }
      },
      async evaluateBatch(batch) {
        return scoreLogits(await net.forward(batch.images, batch.shape), batch.labels);
      },
      // One check per device: an op's inputs must share a device.
      weightsAreFinite: async () =>
        await allFinite(net.parameters(0)) && await allFinite(net.parameters(1)),
      async model() {
        await net.toModel(model);
        return model;
      },
      epochNote() {
        const n = Math.max(1, epoch.steps), t = epoch.total;
        const kib = (bytes: number) => (bytes / n / 1024).toFixed(0);
        epoch = { steps: 0, total: zeroStats() };
        return `; transfers per step ${(t.forwardMs / n).toFixed(1)} ms forward ` +
          `(${kib(t.forwardBytes)} KiB) + ${(t.backwardMs / n).toFixed(1)} ms backward ` +
          `(${kib(t.backwardBytes)} KiB)`;
      },
      dispose() {
        net.dispose();
        for (const optimizer of optimizers) optimizer.dispose();
      },
    };
  };
}

/** Acquires two WebGPU devices, registered as "gpu0" and "gpu1". */
async function acquireTwoGpus(): Promise<[string, string]> {
  await initWebGPU({ name: "gpu0" });
  await initWebGPU({ name: "gpu1" });
  return ["gpu0", "gpu1"];
}

/** Summed cross-entropy and correct predictions of host logits [N, classes]. */
function scoreLogits(
  logits: Float32Array,
  labels: Int32Array,
): { lossSum: number; correct: number } {
  const n = labels.length, classes = logits.length / n;
  let lossSum = 0, correct = 0;
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    let best = 0, max = -Infinity;
    row.forEach((v, c) => {
      if (v > max) [max, best] = [v, c];
    });
    let sumExp = 0;
    for (const v of row) sumExp += Math.exp(v - max);
    lossSum += max + Math.log(sumExp) - row[labels[i]];
    if (best === labels[i]) correct++;
  }
  return { lossSum, correct };
}
