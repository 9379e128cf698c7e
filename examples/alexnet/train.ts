/**
 * `deno task train-alexnet`: trains AlexNet (by default the mini model on Fashion-MNIST) and
 * writes metrics, checkpoints and pictures to a run folder. `--help` lists the flags.
 *
 * Read this file first: {@link train} is the whole training loop on one device, and the
 * training step (forward, loss, zeroGrad, backward, step) is written out in it. The parts it
 * calls live in:
 *
 * - config.ts: the flags, their defaults and `--help` ({@link parseTrainCommand});
 * - data.ts: the datasets, the validation split held out of the training images, the loaders;
 * - learner.ts: the network (`buildModel`), SGD and the schedule on the chosen device
 *   (device.ts measures which is faster), and evaluation of a batch;
 * - trainer.ts: the run around the step: the run folder and resume (`setupRun`), the epochs,
 *   a step's bookkeeping (`afterStep`: metrics, progress, --max-steps, --time-limit, periodic
 *   checkpoints), the end of an epoch (`endEpoch`: evaluation on the validation and test
 *   splits, the schedule, best.safetensors, the checkpoint, the pictures) and the last lines;
 * - run_state.ts (what a checkpoint records), progress.ts (the progress bar), plot.ts and
 *   filters.ts (curves.png, conv1_filters.png);
 * - two_devices.ts: the same loop with the model split over two devices (`--devices 2`,
 *   paper section 3.2; parallel.ts holds the split model);
 * - experiments/: `deno task ablate` and `deno task figure1`, which train with {@link train}.
 *
 * @module
 */

import { argmax, crossEntropy, fromArray } from "../../mod.ts";
import { HELP, parseTrainCommand, type TrainConfig, UsageError } from "./config.ts";
import { oneDevice, readLater } from "./learner.ts";
import { afterStep, closeRun, endEpoch, epochs, report, setupRun } from "./trainer.ts";
import type { TrainHooks, TrainResult } from "./trainer.ts";
import { trainTwoDevices } from "./two_devices.ts";

/** Trains `config` on one device (the faster, or the one asked for) and reports the run. */
export async function train(config: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  // The run folder (fresh or resumed), the data, and the network with its SGD and schedule.
  const run = await setupRun(config, hooks, oneDevice);
  const { network, optimizer, device } = run.learner;
  try {
    for (const batches of epochs(run)) {
      for await (const batch of batches) {
        using x = fromArray(batch.images, batch.shape, { device }); // [N, C, H, W]
        using y = fromArray(batch.labels, [batch.shape[0]], { device }); // [N] class indices
        const logits = network.forward(x); // [N, classes]
        const predictions = argmax(logits); // not part of the graph: survives backward
        const loss = crossEntropy(logits, y);
        optimizer.zeroGrad();
        loss.backward(); // fills every parameter's .grad, releases logits and the graph
        optimizer.step();
        // Loss and accuracy (read back later on a GPU), progress, stops, periodic checkpoint.
        if (await afterStep(run, readLater(loss, predictions, batch.labels))) break;
      }
      // Evaluation (validation: schedule and best.safetensors; test: the report), checkpoint.
      await endEpoch(run);
    }
  } finally {
    closeRun(run);
  }
  return report(run);
}

/**
 * Runs the command line `args` and returns the exit code: 0 done, 1 the run failed, 2 a flag
 * was wrong (one line naming it, then "see --help").
 */
export async function main(args: string[]): Promise<number> {
  try {
    const command = parseTrainCommand(args);
    if (command === null) {
      console.log(HELP);
      return 0;
    }
    const { config, given } = command;
    if (config.devices === 2) await trainTwoDevices(config, { given });
    else await train(config, { given });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`train-alexnet: ${error.message} (see --help)`);
      return 2;
    }
    const hint = error instanceof Deno.errors.NotCapable
      ? "\n(`deno task train-alexnet` may write only under runs/: use --out runs/NAME, or run " +
        "examples/alexnet/train.ts with your own --allow-write)"
      : "";
    console.error(`\ntrain-alexnet: ${(error as Error).message}${hint}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
