/**
 * `deno task train-alexnet`: trains AlexNet (by default the mini model on Fashion-MNIST) and
 * writes metrics, checkpoints and pictures to a run folder. `--help` lists the flags.
 *
 * @module
 */

import { HELP, parseTrainCommand, UsageError } from "./config.ts";
import { train } from "./trainer.ts";
import { twoDevices } from "./parallel.ts";

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
    await train(config, { given, learner: config.devices === 2 ? twoDevices() : undefined });
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
