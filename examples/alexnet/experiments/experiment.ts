/**
 * What the experiments (ablate.ts, figure1.ts) share: one configuration trained over several
 * seeds through the same loop as `train-alexnet` (`train()` in ../train.ts), a diverged seed
 * kept as a result, the numbers read from the run's records, and the section of RESULTS.md
 * each command regenerates.
 *
 * The test set never decides anything here: the experiments read its error after the last
 * epoch, for the report, as the trainer does.
 *
 * @module
 */

import os from "node:os";
import { parseArgs } from "node:util";
import { writeFileAtomic, writeTextFileAtomic } from "../../../mod.ts";
import { parseFlags, parseNumberFlag, type TrainConfig, UsageError } from "../config.ts";
import { train } from "../train.ts";
import { DivergenceError, type MetricRecord } from "../trainer.ts";
import { decodeResults, encodeResults, RunRecords, START_FLAGS } from "./records.ts";

/** One seed of one configuration: its errors after the last epoch, or how it diverged. */
export interface SeedOutcome {
  /** The seed (initialisation, data order, dropout). */
  seed: number;
  /** Training error over the last epoch (running, as the paper's Figure 1 plots it). */
  trainError: number;
  /** Training error after the last epoch in evaluation mode (--eval-train images; else NaN). */
  trainEvalError: number;
  /** Validation error after the last epoch. */
  valError: number;
  /** Test error after the last epoch (report only). */
  testError: number;
  /** Every metric record of the run (10-step windows and epochs). */
  metrics: MetricRecord[];
  /** Steps per epoch. */
  stepsPerEpoch: number;
  /** Wall seconds of the run, setup and evaluation included. */
  seconds: number;
  /** The device it trained on. */
  device: string;
  /** Epochs after which the learning rate changed (the schedule's drops). */
  lrDrops: number[];
  /** Ten-crop testing (ten_crop.ts), for the variants that ask: test error with ten crops. */
  tenCropError?: number;
  /** The same evaluation's centre view alone. */
  centreError?: number;
  /** Set when the run diverged: the message, with its step and lr. */
  diverged?: string;
}

/** What {@link trainSeeds} does with each finished seed: complete it, record it. */
export interface SeedKeeping {
  /** Where finished seeds are recorded, and earlier records kept (records.ts). */
  records?: RunRecords;
  /** The configuration's folder among the records (a variant's or a net's slug). */
  name: string;
  /** Completes a trained seed's outcome (ten-crop testing reads the run's checkpoint). */
  finish?: (run: TrainConfig, outcome: SeedOutcome) => Promise<void>;
}

/**
 * Trains `config` once per seed, each in `<config.out>/seed-<seed>`, quietly. A
 * {@link DivergenceError} is an outcome (its errors are NaN), any other error is thrown. With
 * `keeping.records`, each finished seed is recorded, and a seed that an earlier invocation
 * recorded is kept instead of trained where the records allow it (`--resume`, records.ts).
 */
export async function trainSeeds(
  config: TrainConfig,
  seeds: readonly number[],
  log: (line: string) => void = () => {},
  keeping: SeedKeeping = { name: "" },
): Promise<SeedOutcome[]> {
  const { records, name, finish } = keeping;
  const outcomes: SeedOutcome[] = [];
  for (const seed of seeds) {
    const run = { ...config, seed, out: `${config.out}/seed-${seed}` };
    const kept = records?.keptOutcome(name, run, seed);
    if (kept) {
      outcomes.push(kept);
      log(`  seed ${seed}: kept from ${records!.dir}/${name}/seed-${seed}.json`);
      continue;
    }
    // A seed left unfinished by a stopped invocation starts again in its folder.
    if (records?.resume) run.overwrite = true;
    outcomes.push(await trainSeed(run));
    const o = outcomes.at(-1)!;
    if (!o.diverged) await finish?.(run, o);
    await records?.save(name, run, o);
    log(
      o.diverged
        ? `  seed ${seed}: diverged (lr ${config.lr}) after ${o.seconds.toFixed(0)} s`
        : `  seed ${seed}: train ${pct(o.trainError)}, validation ${pct(o.valError)}, ` +
          `test ${pct(o.testError)} (report only), ${o.seconds.toFixed(0)} s`,
    );
  }
  return outcomes;
}

/** Trains one seed's run (see {@link trainSeeds}). */
async function trainSeed(run: TrainConfig): Promise<SeedOutcome> {
  const seed = run.seed, start = performance.now();
  try {
    const result = await train(run, { quiet: true });
    const epochs = result.metrics.filter((m) => m.kind === "epoch");
    const last = epochs.at(-1)!;
    return {
      seed,
      trainError: 1 - last.trainAccuracy,
      trainEvalError: last.trainEvalAccuracy === undefined ? NaN : 1 - last.trainEvalAccuracy,
      device: result.device,
      lrDrops: epochs.slice(1).filter((m, i) => m.lr !== epochs[i].lr).map((m) => m.epoch - 1),
      valError: 1 - last.valAccuracy!,
      testError: 1 - last.testAccuracy!,
      metrics: result.metrics,
      stepsPerEpoch: last.step / last.epoch,
      seconds: (performance.now() - start) / 1000,
    };
  } catch (error) {
    if (!(error instanceof DivergenceError)) throw error;
    return {
      seed,
      trainError: NaN,
      trainEvalError: NaN,
      device: "?",
      lrDrops: [],
      valError: NaN,
      testError: NaN,
      metrics: [],
      stepsPerEpoch: NaN,
      seconds: (performance.now() - start) / 1000,
      diverged: error.message,
    };
  }
}

/**
 * First (fractional) epoch at which the training error, averaged over the last `window` step
 * records (a sliding window: with a record every step, the time resolution is one step), is at
 * most `target`; null if the run never got there. The epoch is the window's last step.
 */
export function epochsToReach(
  metrics: MetricRecord[],
  stepsPerEpoch: number,
  target: number,
  window = 1,
): number | null {
  const steps = metrics.filter((m) => m.kind === "step");
  let sum = 0;
  for (let i = 0; i < steps.length; i++) {
    sum += 1 - steps[i].trainAccuracy;
    if (i >= window) sum -= 1 - steps[i - window].trainAccuracy;
    if (i >= window - 1 && sum / window <= target + 1e-12) return steps[i].step / stepsPerEpoch;
  }
  return null;
}

/** The sliding-window training error of {@link epochsToReach}, as [epoch, error] points. */
export function windowedTrainError(
  metrics: MetricRecord[],
  stepsPerEpoch: number,
  window: number,
): [number, number][] {
  const steps = metrics.filter((m) => m.kind === "step");
  const out: [number, number][] = [];
  let sum = 0;
  for (let i = 0; i < steps.length; i++) {
    sum += 1 - steps[i].trainAccuracy;
    if (i >= window) sum -= 1 - steps[i - window].trainAccuracy;
    if (i >= window - 1) out.push([steps[i].step / stepsPerEpoch, sum / window]);
  }
  return out;
}

/** A fraction as a percentage with one decimal ("12.3%"); "-" for NaN. */
export function pct(x: number): string {
  return Number.isNaN(x) ? "-" : `${(100 * x).toFixed(1)}%`;
}

/**
 * The flags whose values differ from the full preset's, as "--flag value (full preset: x)".
 */
export function presetDepartures(
  chosen: Record<string, unknown>,
  full: Record<string, unknown>,
): string[] {
  return Object.keys(full)
    .filter((k) => JSON.stringify(chosen[k]) !== JSON.stringify(full[k]))
    .map((k) => `--${k} ${chosen[k]} (full preset: ${full[k]})`);
}

/** The lines above a report's table: "not evidence" for --quick, else any departures. */
export function presetNote(quick: boolean, departures: string[]): string[] {
  if (quick) return [NOT_EVIDENCE, ""];
  if (departures.length === 0) return [];
  return [
    `**Not the full preset:** this run differs in ${departures.join(", ")}. These are the ` +
    "numbers of what ran; the full preset's may differ.",
    "",
  ];
}

/** Text that marks a smoke run above its table, in the terminal and in RESULTS.md. */
export const NOT_EVIDENCE =
  "**Smoke run, not evidence:** the --quick preset checks that the command works end to end; " +
  "its numbers come from a few hundred images and mean nothing.";

/**
 * Replaces the section between `<!-- name:begin -->` and `<!-- name:end -->` in the markdown
 * file at `path` (appending it when absent, creating the file when missing), atomically.
 */
export async function writeResultsSection(
  path: string,
  name: string,
  markdown: string,
): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const begin = `<!-- ${name}:begin -->`, end = `<!-- ${name}:end -->`;
  const section = `${begin}\n${markdown.trim()}\n${end}`;
  const from = text.indexOf(begin), to = text.indexOf(end);
  if ((from < 0) !== (to < 0) || to < from) {
    throw new Error(`${path}: the markers ${begin} and ${end} must both be there, in order`);
  }
  text = from < 0
    ? `${text.trimEnd()}${text ? "\n\n" : ""}${section}\n`
    : text.slice(0, from) + section + text.slice(to + end.length);
  await writeTextFileAtomic(path, text);
}

/**
 * Writes `name.md`, `name.png` and `name.json` into `out`, and the chart and the JSON into
 * results/ beside RESULTS.md (with its section) when asked.
 */
export async function writeOutputs(
  out: string,
  name: string,
  markdown: string,
  png: Uint8Array,
  results: string | null,
  json: string,
): Promise<string[]> {
  await Deno.mkdir(out, { recursive: true });
  await writeTextFileAtomic(`${out}/${name}.md`, markdown + "\n");
  await writeFileAtomic(`${out}/${name}.png`, png);
  await writeTextFileAtomic(`${out}/${name}.json`, json);
  const written = [`${out}/${name}.md`, `${out}/${name}.png`, `${out}/${name}.json`];
  if (results !== null) {
    const folder = results.includes("/") ? results.slice(0, results.lastIndexOf("/")) : ".";
    await Deno.mkdir(`${folder}/results`, { recursive: true });
    await writeFileAtomic(`${folder}/results/${name}.png`, png);
    await writeTextFileAtomic(`${folder}/results/${name}.json`, json);
    await writeResultsSection(
      results,
      name,
      markdown.replaceAll(`(${name}.png)`, `(results/${name}.png)`),
    );
    written.push(results, `${folder}/results/${name}.png`, `${folder}/results/${name}.json`);
  }
  return written;
}

/** "3 h 05 min", "12 min", "40 s". */
export function roughDuration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/** The flags both experiment commands share, read strictly (see {@link parseExperimentFlags}). */
export interface ExperimentFlags {
  /** Every flag as given (strings and booleans), undefined when absent. */
  values: Record<string, string | boolean | undefined>;
  /** An integer flag of at least `min`, or `fallback` when it is absent. */
  int(name: string, fallback: number, min: number): number;
  /** `--device`: auto (the default), cpu or gpu. */
  device: TrainConfig["device"];
}

/**
 * Parses an experiment's command line: the numeric flags `numbers` and the text flags `texts`
 * of the command, plus `--device`, `--out`, `--records`, `--results`, `--quick`, `--resume`,
 * `--overwrite` and `--help` that both commands take. Null for --help; a malformed flag throws
 * {@link UsageError}.
 */
export function parseExperimentFlags(
  args: string[],
  numbers: string[],
  texts: string[],
): ExperimentFlags | null {
  const values = parseFlags({
    args,
    options: {
      ...Object.fromEntries(
        [...numbers, ...texts, "device", "out", "records", "results"].map((n) => [n, {
          type: "string" as const,
        }]),
      ),
      quick: { type: "boolean" },
      overwrite: { type: "boolean" },
      resume: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }).values as Record<string, string | boolean | undefined>;
  if (values.help) return null;
  const device = (values.device ?? "auto") as string;
  if (!["auto", "cpu", "gpu"].includes(device)) {
    throw new UsageError(`--device must be one of auto, cpu, gpu; got "${device}"`);
  }
  const int = (name: string, fallback: number, min: number) =>
    values[name] === undefined
      ? fallback
      : parseNumberFlag(name, values[name] as string, { integer: true, min });
  return { values, int, device: device as TrainConfig["device"] };
}

/** Where and with what a result was produced: stamped on every generated section. */
export interface Provenance {
  /** The git commit checked out (with "+ uncommitted changes" when git says so), or "unknown". */
  commit: string;
  /** Deno's version. */
  deno: string;
  /** The CPU model (/proc/cpuinfo), or "unknown". */
  cpu: string;
  /** The devices the runs trained on. */
  devices: string[];
  /**
   * Wall time of the whole command, seconds: with runs kept from earlier invocations
   * (`--resume`), this invocation's plus the kept runs' own.
   */
  wallSeconds: number;
  /** Runs kept from earlier invocations (absent when none was). */
  keptRuns?: number;
  /** When it finished (ISO 8601, UTC). */
  finished: string;
}

/** Everything a section is drawn from: written as JSON, read back by --from-json. */
export interface ResultsFile<Command, Results> {
  format: "tessera-experiment";
  version: 1;
  /** The task (ablate, figure1). */
  name: string;
  /** The command line that produced it. */
  commandLine: string;
  provenance: Provenance;
  /** The parsed command (what the report needs of it). */
  command: Command;
  /** Every seed's result, every metric record included. */
  results: Results;
}

/** The commit of the repository in the working directory, read from .git without git. */
export async function gitCommit(): Promise<string> {
  try {
    let gitDir = ".git";
    if ((await Deno.stat(gitDir)).isFile) {
      gitDir = (await Deno.readTextFile(gitDir)).replace(/^gitdir:\s*/, "").trim();
    }
    const head = (await Deno.readTextFile(`${gitDir}/HEAD`)).trim();
    if (!head.startsWith("ref: ")) return head + await dirtyNote();
    const ref = head.slice(5);
    let common = gitDir;
    try {
      const relative = (await Deno.readTextFile(`${gitDir}/commondir`)).trim();
      common = relative.startsWith("/") ? relative : `${gitDir}/${relative}`;
    } catch { /* not a worktree */ }
    try {
      return (await Deno.readTextFile(`${common}/${ref}`)).trim() + await dirtyNote();
    } catch {
      const packed = await Deno.readTextFile(`${common}/packed-refs`);
      const line = packed.split("\n").find((l) => l.endsWith(` ${ref}`));
      return line ? line.split(" ")[0] + await dirtyNote() : "unknown";
    }
  } catch {
    return "unknown";
  }
}

/** " + uncommitted changes" when `git status` may run and reports some; "" otherwise. */
async function dirtyNote(): Promise<string> {
  if (Deno.permissions.querySync({ name: "run", command: "git" }).state !== "granted") return "";
  try {
    const out = await new Deno.Command("git", { args: ["status", "--porcelain", "-uno"] })
      .output();
    return new TextDecoder().decode(out.stdout).trim() ? " + uncommitted changes" : "";
  } catch {
    return "";
  }
}

/** The CPU model and its logical cores (node:os, which needs --allow-sys=cpus), or "unknown". */
export function cpuModel(): string {
  try {
    const cpus = os.cpus();
    return cpus.length ? `${cpus[0].model.trim()} (${cpus.length} logical cores)` : "unknown";
  } catch {
    return "unknown";
  }
}

/** The provenance line under a section's title. */
export function provenanceLine(p: Provenance): string {
  return `Produced by commit \`${p.commit}\`, Deno ${p.deno}, CPU ${p.cpu}, device ` +
    `${p.devices.join(", ") || "-"}, wall time ${roughDuration(p.wallSeconds)}` +
    (p.keptRuns
      ? ` over several invocations (${p.keptRuns} run${p.keptRuns === 1 ? "" : "s"} kept ` +
        "from earlier ones)"
      : "") +
    ` (finished ${p.finished}).`;
}

/** One experiment command: how to read its flags, run it and write what it found. */
export interface ExperimentSpec<Command, Results> {
  /** The task's name, as in `deno task NAME`; errors start with it. */
  name: string;
  /** The file names of its outputs (ablations.md, .png, .json). */
  output: string;
  /** The `--help` text. */
  help: string;
  /** Reads the flags; null for --help; throws {@link UsageError}. */
  parse(args: string[]): Command | null;
  /** Trains every run, printing progress through `log`, recording each in `records`. */
  run(command: Command, log: (line: string) => void, records: RunRecords): Promise<Results>;
  /** The markdown section (table and text), from the results file alone. */
  markdown(file: ResultsFile<Command, Results>): string;
  /** The chart, as PNG bytes, from the results file alone. */
  chart(file: ResultsFile<Command, Results>): Uint8Array;
}

/** `--from-json FILE [--out DIR] [--results FILE]`, or null when the first flag is not it. */
function fromJsonArgs(
  args: string[],
): { file: string; out: string | null; results: string | null } | null {
  if (!args.includes("--from-json")) return null;
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        "from-json": { type: "string" },
        out: { type: "string" },
        results: { type: "string" },
      },
    }).values;
  } catch (error) {
    throw new UsageError(
      `--from-json takes only --out and --results: ${(error as Error).message.split("\n")[0]}`,
    );
  }
  return { file: parsed["from-json"]!, out: parsed.out ?? null, results: parsed.results ?? null };
}

/**
 * An experiment's command line, from flags to files: `--quick` says "not evidence" first; the
 * results go to `<out>/<output>.json` (and results/ beside RESULTS.md with `--results`), and
 * the markdown and chart are drawn from that JSON, read back, so `--from-json FILE` redraws
 * them byte for byte without training. Returns the exit code: 2 for a malformed flag, 1 for
 * any other error, each on one line naming the command.
 */
export async function runExperiment<
  Command extends {
    quick: boolean;
    base: TrainConfig;
    results: string | null;
    records: string;
    resume: boolean;
  },
  Results,
>(spec: ExperimentSpec<Command, Results>, args: string[]): Promise<number> {
  try {
    const replay = fromJsonArgs(args);
    let text: string, out: string, results: string | null;
    if (replay) {
      text = await Deno.readTextFile(replay.file);
      const file = decodeResults<ResultsFile<Command, Results>>(text);
      if (file.format !== "tessera-experiment" || file.name !== spec.name) {
        throw new Error(`--from-json ${replay.file}: not a ${spec.name} results file`);
      }
      out = replay.out ?? file.command.base.out;
      results = replay.results;
    } else {
      const command = spec.parse(args);
      if (command === null) {
        console.log(spec.help);
        return 0;
      }
      if (command.quick) console.log(NOT_EVIDENCE);
      const start = performance.now();
      const commit = await gitCommit(), cpu = cpuModel();
      const records = await RunRecords.open(
        command.records,
        { resume: command.resume, overwrite: command.base.overwrite, args },
        { commit, deno: Deno.version.deno, cpu },
      );
      const ran = await spec.run(command, console.log, records);
      const file: ResultsFile<Command, Results> = {
        format: "tessera-experiment",
        version: 1,
        name: spec.name,
        commandLine: `deno task ${spec.name} ${args.filter((a) => !START_FLAGS.has(a)).join(" ")}`
          .trim(),
        provenance: {
          commit,
          deno: Deno.version.deno,
          cpu,
          devices: devicesOf(ran),
          wallSeconds: (performance.now() - start) / 1000 + records.keptSeconds,
          ...(records.kept > 0 ? { keptRuns: records.kept } : {}),
          finished: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
        },
        command,
        results: ran,
      };
      text = encodeResults(file);
      out = command.base.out;
      results = command.results;
    }
    const file = decodeResults<ResultsFile<Command, Results>>(text);
    const markdown = spec.markdown(file);
    const written = await writeOutputs(out, spec.output, markdown, spec.chart(file), results, text);
    console.log(`\n${markdown}\n\nWrote ${written.join(", ")}`);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${spec.name}: ${error.message} (see --help)`);
      return 2;
    }
    console.error(`${spec.name}: ${(error as Error).message}`);
    return 1;
  }
}

/** The distinct devices of every outcome found in `results` (any nesting). */
function devicesOf(results: unknown): string[] {
  const found = new Set<string>();
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === "object") {
      const record = v as Record<string, unknown>;
      if (typeof record.device === "string" && "seed" in record) found.add(record.device);
      Object.values(record).forEach(walk);
    }
  };
  walk(results);
  return [...found].filter((d) => d !== "?").sort();
}
