/**
 * `deno task train-alexnet`: trains AlexNet (by default the mini model on Fashion-MNIST) and
 * writes metrics, checkpoints and pictures to a run folder. `--help` lists the flags.
 *
 * @module
 */

import { HELP, parseTrainArgs, UsageError } from "./config.ts";
import { train } from "./trainer.ts";
import { trainTwoDevices } from "./parallel.ts";

if (import.meta.main) {
  let config;
  try {
    config = parseTrainArgs(Deno.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`train-alexnet: ${error.message}\n`);
    console.error(HELP);
    Deno.exit(2);
  }
  if (config === null) {
    console.log(HELP);
    Deno.exit(0);
  }
  try {
    if (config.devices === 2) {
      if (config.resume) throw new Error("--resume is not available with --devices 2");
      await trainTwoDevices(config);
    } else {
      await train(config);
    }
  } catch (error) {
    const hint = error instanceof Deno.errors.NotCapable
      ? "\n(`deno task train-alexnet` may write only under runs/: use --out runs/NAME, or run " +
        "examples/alexnet/train.ts with your own --allow-write)"
      : "";
    console.error(`\ntrain-alexnet: ${(error as Error).message}${hint}`);
    Deno.exit(1);
  }
}
