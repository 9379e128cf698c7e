/**
 * Everything around the training step: the loops in train.ts (one device) and two_devices.ts
 * (the split model) write the step itself and call these, in this order:
 *
 * - {@link setupRun}: the run folder (fresh or resumed), data, loaders and the learner (model,
 *   optimizer, schedule) that the caller's `makeLearner` builds;
 * - {@link epochs}: the training batches of each epoch in turn, from where a resumed run stopped;
 * - {@link afterStep}: a step's bookkeeping: losses read back (a few steps at a time on a GPU),
 *   metrics, the progress bar, --max-steps, --time-limit and the periodic checkpoint;
 * - {@link endEpoch}: the validation split decides (schedule, best.safetensors), the test set
 *   is evaluated for the report, then metrics, checkpoint and pictures;
 * - {@link closeRun} and {@link report}: free what the run holds, print its last lines.
 *
 * The model behind them is a {@link Learner} (learner.ts). Device memory stays flat: every
 * step's inputs are disposed, `backward()` releases the graph, and evaluation runs inside
 * `noGrad()`.
 *
 * @module
 */

import {
  fromArray,
  type Module,
  saveCheckpoint,
  saveSafetensors,
  writeFileAtomic,
  writeTextFileAtomic,
} from "../../mod.ts";
import type { Batch, DataLoader } from "../../data/mod.ts";
import { filterGridPng, trainingCurvesPng } from "./plot.ts";
import { resumedConfig, type TrainCommand, type TrainConfig, UsageError } from "./config.ts";
import { type Loaders, loadRunData, makeLoaders, type RunData } from "./data.ts";
import { lrnTerm } from "./lrn_term.ts";
import type { Learner, MakeLearner, PendingStep } from "./learner.ts";
import { formatDuration, ProgressBar } from "./progress.ts";
import {
  checkRunFolder,
  clearRunFolder,
  freshRunState,
  type MetricRecord,
  readRunMetadata,
  type RunState,
} from "./run_state.ts";

export type { MetricRecord, RunState } from "./run_state.ts";
export { allFinite, buildModel } from "./learner.ts";

/** What a finished run reports. */
export interface TrainResult {
  /** Device(s) used. */
  device: string;
  /** Every metric record. */
  metrics: MetricRecord[];
  /** Validation accuracy after the last epoch. */
  finalValAccuracy: number;
  /** Best validation accuracy of any epoch (its weights are in best.safetensors). */
  bestValAccuracy: number;
  /** Test accuracy after the last epoch: for the report, chosen by nothing. */
  finalTestAccuracy: number;
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
  /** The flags given on the command line (a resume checks them; default: every field). */
  given?: TrainCommand["given"];
}

/** A diverged run: a non-finite loss or weight. The message says where and what to try. */
export class DivergenceError extends Error {
  /** Creates the error for `what` ("the loss is NaN") at `step`. */
  constructor(what: string, step: number, config: TrainConfig, lr: number) {
    // The paper's network diverges with He initialisation at the mini model's lr.
    const init = config.arch === "alexnet" && config.init !== "paper" && config.init !== "auto"
      ? " or the paper's initialisation (--init paper, lr 0.01)"
      : "";
    super(
      `training diverged at step ${step} (lr ${lr}): ${what}. The run stops here and nothing ` +
        `from this step on is saved (a checkpoint already in --out ${config.out} is finite). ` +
        `Try a lower --lr (for example ${lr / 10})${init}`,
    );
    this.name = "DivergenceError";
  }
}

/** Everything a run holds between its steps; `L` is the learner the caller built. */
export interface Run<L extends Learner = Learner> {
  /** The configuration (a resumed run's is the checkpoint's). */
  config: TrainConfig;
  /** The datasets and pipelines. */
  data: RunData;
  /** The model and its optimizer. */
  learner: L;
  /** Training, validation and test batches. */
  loaders: Loaders;
  /** Progress (saved in every checkpoint). */
  state: RunState;
  /** Every metric record so far (saved too). */
  metrics: MetricRecord[];
  /** Steps taken but not yet read back. */
  pending: PendingStep[];
  /** Why the run stops early, once it must. */
  stop: null | "max-steps" | "time-limit";
  /** When this session started, and when its current epoch did (ms). */
  clock: { runStart: number; epochStart: number; secondsAtStart: number; images: number };
  /** Printing. */
  say: (text: string) => void;
  progress: ProgressBar;
  hooks: TrainHooks;
}

const ALL_FIELDS = { has: () => true } as unknown as TrainCommand["given"];

/**
 * Prepares a run: checks the run folder (resume or overwrite), restores a checkpoint's
 * configuration and state when resuming, loads the data, builds the learner with
 * `makeLearner`.
 */
export async function setupRun<L extends Learner>(
  config: TrainConfig,
  hooks: TrainHooks,
  makeLearner: MakeLearner<L>,
): Promise<Run<L>> {
  const runStart = performance.now(); // --time-limit counts the setup too
  const progress = new ProgressBar(config.plain);
  const say = (text: string) => hooks.quiet || progress.line(text);
  const checkpointPath = `${config.out}/checkpoint.safetensors`;
  const oldRun = await checkRunFolder(config);
  let saved;
  if (config.resume) {
    saved = await readRunMetadata(checkpointPath, true);
    config = resumedConfig(saved.config, { config, given: hooks.given ?? ALL_FIELDS }, say);
  }
  const data = await loadRunData(config);
  const learner = await makeLearner(config, data, say);
  say(
    `data: ${data.source}; ${data.train.shape[0]} training, ${data.val.shape[0]} validation ` +
      `(held out of the training images) and ${data.test.shape[0]} test images`,
  );
  const loaders = makeLoaders(config, data);
  await clearRunFolder(config, oldRun);
  const run: Run<L> = {
    config,
    data,
    learner,
    loaders,
    state: freshRunState(),
    metrics: [],
    pending: [],
    stop: null,
    clock: { runStart, epochStart: 0, secondsAtStart: 0, images: 0 },
    say,
    progress,
    hooks,
  };
  if (saved) {
    const { run: state, metrics } = saved as Required<typeof saved>;
    if (state.batch >= loaders.trainLoader.batchesPerEpoch) {
      throw new Error(
        `${checkpointPath}: "run.batch" is ${state.batch}, but an epoch has only ` +
          `${loaders.trainLoader.batchesPerEpoch} batches`,
      );
    }
    if (state.epoch >= config.epochs) {
      throw new UsageError(
        `--resume: the run in ${config.out} has finished its ${config.epochs} epochs; pass a ` +
          `larger --epochs to train on`,
      );
    }
    if (!learner.load) throw new Error(`--resume is not available on ${learner.device}`);
    await learner.load(checkpointPath);
    run.state = state;
    run.metrics = metrics;
    say(
      `resumed ${checkpointPath}: epoch ${
        state.epoch + 1
      }, batch ${state.batch}, step ${state.step}`,
    );
  } else {
    say(
      `model: ${config.arch}, ${learner.parameterCount().toLocaleString("en-US")} parameters; ` +
        `${config.epochs} epochs of batch ${config.batchSize}, lr ${config.lr}`,
    );
  }
  if (data.meanImage) {
    // predict subtracts the same mean image from new photos (paper section 2).
    await saveSafetensors(`${config.out}/mean_image.safetensors`, {
      mean: { dtype: "F32", shape: [3, 256, 256], data: data.meanImage },
    });
  }
  return run;
}

/** Writes the checkpoint (refusing non-finite weights) and metrics.jsonl. */
async function save(run: Run, state: RunState = run.state): Promise<void> {
  const { config, learner } = run;
  if (learner.save) {
    if (!await learner.weightsAreFinite()) {
      throw new DivergenceError("a weight is not finite", state.step, config, learner.lr);
    }
    await learner.save(`${config.out}/checkpoint.safetensors`, {
      epoch: state.epoch,
      step: state.step,
      config,
      run: state,
      metrics: run.metrics,
      data: describeData(run.data),
    });
  }
  await writeTextFileAtomic(
    `${config.out}/metrics.jsonl`,
    run.metrics.map((m) => JSON.stringify(m)).join("\n") + "\n",
  );
}

function describeData(data: RunData) {
  return { kind: data.kind, classNames: data.classNames, inputShape: data.inputShape };
}

/**
 * Reads back the pending steps: the epoch's and the 10-step window's sums, a step record
 * every 10 steps (the same records however many steps a read covers), and a stop on the first
 * non-finite loss.
 */
async function drain(run: Run): Promise<void> {
  const { state, pending } = run;
  run.pending = [];
  const first = state.step - pending.length + 1;
  const values = await Promise.all(pending.map((p) => p.read()));
  for (const [i, { loss, correct }] of values.entries()) {
    const step = first + i, size = pending[i].size;
    if (!Number.isFinite(loss)) {
      throw new DivergenceError(`the loss is ${loss}`, step, run.config, run.learner.lr);
    }
    run.hooks.onStepLoss?.(step, loss);
    state.epochLoss += loss * size;
    state.epochCorrect += correct;
    state.epochSeen += size;
    state.windowLoss += loss * size;
    state.windowCorrect += correct;
    state.windowSeen += size;
    if (step % run.config.logEvery === 0) {
      run.metrics.push({
        kind: "step",
        epoch: state.epoch + 1,
        step,
        trainLoss: state.windowLoss / state.windowSeen,
        trainAccuracy: state.windowCorrect / state.windowSeen,
        lr: run.learner.lr,
        seconds: run.clock.secondsAtStart + (performance.now() - run.clock.epochStart) / 1000,
      });
      state.windowLoss = state.windowCorrect = state.windowSeen = 0;
    }
  }
}

/**
 * The training batches of every epoch still to run, one epoch's at a time (a resumed run's
 * first epoch starts at its saved batch). The loop ends after the last epoch, or once a step
 * or the end of an epoch sets `run.stop`.
 */
export function* epochs(run: Run): Generator<AsyncIterable<Batch>> {
  const { state, clock } = run;
  for (; state.epoch < run.config.epochs && run.stop === null; state.epoch++, state.batch = 0) {
    run.learner.train(true);
    clock.epochStart = performance.now();
    clock.secondsAtStart = state.seconds;
    clock.images = 0;
    yield run.loaders.trainLoader.epoch(state.epoch, state.batch);
    if (run.stop) break;
  }
}

/**
 * A step's bookkeeping, after the caller took it: `pending` holds its loss, read back with
 * others; metrics, progress, stops and the periodic checkpoint. Returns true when the run
 * must stop (--max-steps, --time-limit).
 */
export async function afterStep(run: Run, pending: PendingStep): Promise<boolean> {
  const { config, state, clock } = run;
  const steps = run.loaders.trainLoader.batchesPerEpoch;
  run.pending.push(pending);
  state.step++;
  state.batch++;
  clock.images += pending.size;
  if (run.pending.length >= run.learner.readEvery || state.batch === steps) await drain(run);
  const elapsed = (performance.now() - clock.epochStart) / 1000;
  const rate = clock.images / Math.max(elapsed, 1e-9);
  if (!run.hooks.quiet && state.epochSeen > 0) {
    run.progress.update({
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
  if (config.maxSteps > 0 && state.step >= config.maxSteps) {
    run.stop = "max-steps";
    return true;
  }
  // --time-limit: stop early enough to evaluate and save within the budget (evaluation runs
  // forward only, about a third of a training step per image).
  const evalImages = run.data.val.shape[0] + run.data.test.shape[0];
  const evalSeconds = evalImages / (3 * rate) + 5;
  const used = (performance.now() - clock.runStart) / 1000;
  if (config.timeLimit > 0 && used + evalSeconds > 60 * config.timeLimit) {
    run.stop = "time-limit";
    return true;
  }
  if (state.step % config.checkpointEvery === 0 && state.batch < steps) {
    await drain(run);
    state.seconds = clock.secondsAtStart + elapsed;
    await save(run);
  }
  return false;
}

/** Mean loss and accuracy of the learner over a loader, without a graph. */
export async function evaluate(
  learner: Learner,
  loader: DataLoader,
): Promise<{ loss: number; accuracy: number }> {
  learner.train(false);
  let totalLoss = 0, correct = 0, seen = 0;
  for await (const batch of loader.epoch(0)) {
    const result = await learner.evaluateBatch(batch);
    totalLoss += result.lossSum;
    correct += result.correct;
    seen += batch.shape[0];
  }
  learner.train(true);
  return { loss: totalLoss / seen, accuracy: correct / seen };
}

/**
 * The end of an epoch (or of a run stopped inside one): evaluation on the validation split,
 * which steps the schedule and picks best.safetensors, and on the test set for the report;
 * the epoch record, the checkpoint and the pictures. A run stopped by --max-steps is saved
 * unevaluated, resumable at its very batch.
 */
export async function endEpoch(run: Run): Promise<void> {
  const { config, state, learner, clock } = run;
  await drain(run);
  state.seconds = clock.secondsAtStart + (performance.now() - clock.epochStart) / 1000;
  const steps = run.loaders.trainLoader.batchesPerEpoch;
  const partial = state.batch < steps;
  if (partial && run.stop === "max-steps") return await save(run);
  const val = await evaluate(learner, run.loaders.valLoader);
  const test = await evaluate(learner, run.loaders.testLoader);
  const trainEval = run.loaders.trainEvalLoader
    ? await evaluate(learner, run.loaders.trainEvalLoader)
    : null;
  const lrn = await lrnTermOfBatch(run);
  const record: MetricRecord = {
    kind: "epoch",
    epoch: state.epoch + (partial ? state.batch / steps : 1),
    step: state.step,
    trainLoss: state.epochLoss / Math.max(1, state.epochSeen),
    trainAccuracy: state.epochCorrect / Math.max(1, state.epochSeen),
    valLoss: val.loss,
    valAccuracy: val.accuracy,
    testLoss: test.loss,
    testAccuracy: test.accuracy,
    lr: learner.lr,
    seconds: state.seconds,
    imagesPerSecond: clock.images / Math.max(1e-9, state.seconds - clock.secondsAtStart),
    ...(trainEval ? { trainEvalLoss: trainEval.loss, trainEvalAccuracy: trainEval.accuracy } : {}),
    ...(Object.keys(lrn).length ? { lrnTerm: lrn } : {}),
  };
  run.metrics.push(record);
  const percent = (x: number) => `${(100 * x).toFixed(2)}%`;
  run.say(
    `${partial ? `time limit: stopped at batch ${state.batch}/${steps} of epoch` : "epoch"} ` +
      `${state.epoch + 1}/${config.epochs}: train loss ${record.trainLoss.toFixed(4)}, ` +
      `train acc ${percent(record.trainAccuracy)}, val loss ${val.loss.toFixed(4)}, ` +
      `val acc ${percent(val.accuracy)}, test acc ${percent(test.accuracy)} (report only), ` +
      `lr ${record.lr}, ${record.imagesPerSecond!.toFixed(0)} img/s, ` +
      `${formatDuration(state.seconds)} elapsed${learner.epochNote?.() ?? ""}`,
  );
  if (val.accuracy > state.bestValAccuracy) {
    state.bestValAccuracy = val.accuracy;
    state.bestEpoch = state.epoch + 1;
    await saveBest(run);
  }
  if (partial) {
    // Out of time mid-epoch: the checkpoint resumes at this very batch.
    await save(run);
  } else {
    for (const schedule of learner.schedules) schedule.step(1 - val.accuracy);
    // The checkpoint marks this epoch done: a resume starts the next one.
    state.epochLoss = state.epochCorrect = state.epochSeen = 0;
    await save(run, { ...state, epoch: state.epoch + 1, batch: 0 });
  }
  await drawPictures(await learner.model(), run.metrics, config.out);
}

/**
 * The LRN layers' data-dependent term relative to k (lrn_term.ts) on the first validation
 * batch, in evaluation mode; empty for a model without LRN.
 */
async function lrnTermOfBatch(run: Run): Promise<Record<string, { mean: number; max: number }>> {
  if (!run.config.lrn || run.config.arch === "figure1-cnn") return {};
  const model = await run.learner.model();
  const device = model.parameters()[0].device;
  for await (const batch of run.loaders.valLoader.epoch(0)) {
    using x = fromArray(batch.images, batch.shape, { device });
    model.train(false);
    try {
      return await lrnTerm(model, x);
    } finally {
      model.train(true);
    }
  }
  return {};
}

/** best.safetensors: the weights of the epoch with the best validation accuracy. */
async function saveBest(run: Run): Promise<void> {
  if (!await run.learner.weightsAreFinite()) {
    throw new DivergenceError("a weight is not finite", run.state.step, run.config, run.learner.lr);
  }
  await saveCheckpoint(`${run.config.out}/best.safetensors`, {
    model: await run.learner.model(),
    metadata: {
      epoch: run.state.bestEpoch,
      step: run.state.step,
      config: run.config,
      data: describeData(run.data),
      valAccuracy: run.state.bestValAccuracy,
    },
  });
}

/** Frees what the run holds: unread steps, the loaders' workers, the learner. */
export function closeRun(run: Run): void {
  for (const p of run.pending) p.dispose();
  run.loaders.trainLoader.close();
  run.loaders.valLoader.close();
  run.loaders.testLoader.close();
  run.loaders.trainEvalLoader?.close();
  run.learner.dispose();
}

/** The run's result, and its last lines. */
export function report(run: Run): TrainResult {
  const { config, state, learner } = run;
  const epochs = run.metrics.filter((m) => m.kind === "epoch");
  const last = epochs.at(-1);
  const result: TrainResult = {
    device: learner.device,
    metrics: run.metrics,
    finalValAccuracy: last?.valAccuracy ?? NaN,
    bestValAccuracy: state.bestValAccuracy,
    finalTestAccuracy: last?.testAccuracy ?? NaN,
    steps: state.step,
    out: config.out,
  };
  const percent = (x: number) => `${(100 * x).toFixed(2)}%`;
  // Two devices write no checkpoint.safetensors (learner.save is absent).
  const checkpoint = learner.save ? " checkpoint.safetensors," : "";
  const files = `metrics.jsonl,${checkpoint} curves.png, conv1_filters.png`;
  if (last) {
    run.say(
      `done: ${result.steps} steps in ${formatDuration(state.seconds)} on ${learner.device}; ` +
        `final validation accuracy ${percent(result.finalValAccuracy)} (best ` +
        `${percent(result.bestValAccuracy)}, epoch ${state.bestEpoch}: best.safetensors); ` +
        `final test accuracy ${percent(result.finalTestAccuracy)} (report only). Run folder: ` +
        `${config.out} (${files})`,
    );
  } else {
    run.say(`stopped after ${result.steps} steps; resume with --resume --out ${config.out}`);
  }
  if (run.stop === "time-limit") {
    run.say(
      `the --time-limit of ${config.timeLimit} minutes ended the run early; --resume continues it`,
    );
  }
  return result;
}

/** Writes curves.png and conv1_filters.png (the paper's Figure 3) into the run folder. */
export async function drawPictures(
  model: Module,
  metrics: MetricRecord[],
  out: string,
): Promise<void> {
  // Training curves from the 10-step windows; validation and test points from the evaluations.
  const points = metrics.map((m) =>
    m.kind === "step"
      ? { epoch: m.epoch, step: m.step, trainLoss: m.trainLoss, trainAccuracy: m.trainAccuracy }
      : {
        epoch: m.epoch,
        step: m.step,
        valLoss: m.valLoss,
        valAccuracy: m.valAccuracy,
        testLoss: m.testLoss,
        testAccuracy: m.testAccuracy,
      }
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
