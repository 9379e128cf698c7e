/**
 * The finished runs of an experiment, one record each, so a long experiment survives being
 * stopped: every seed that finishes writes `<records>/<configuration>/seed-<n>.json` (its
 * outcome, every metric record included), and `--resume` keeps those records instead of
 * training the seeds again. A record is kept only where it must give the same numbers as a new
 * run: the same commit with no uncommitted changes, the same Deno, the same CPU model, the same
 * command line and the same configuration; anything else is an error naming the file, found
 * before the first seed trains. Without `--resume` or `--overwrite`, a records folder that holds
 * records is an error too, so no finished run is replaced silently.
 *
 * @module
 */

import { writeTextFileAtomic } from "../../../mod.ts";
import { type TrainConfig, UsageError } from "../config.ts";
import type { SeedOutcome } from "./experiment.ts";

/** What one finished seed leaves behind (see the module doc). */
export interface SeedRecord {
  format: "tessera-seed-record";
  version: 1;
  /** Where it ran: the checks a kept record must pass. */
  commit: string;
  deno: string;
  cpu: string;
  /** The experiment's arguments that decide results (see {@link decidingArgs}). */
  args: string[];
  /** The configuration the seed trained with, `out` and `overwrite` left out. */
  config: Partial<TrainConfig>;
  outcome: SeedOutcome;
}

/** Flags that choose where things go or how to start, not what is computed. */
const PLACE_FLAGS = new Set(["--out", "--records", "--results"]);
export const START_FLAGS = new Set(["--resume", "--overwrite"]);

/** `args` without the flags that do not change a result (each place flag with its value). */
export function decidingArgs(args: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].split("=")[0];
    if (START_FLAGS.has(name)) continue;
    if (PLACE_FLAGS.has(name)) {
      if (!args[i].includes("=")) i++;
      continue;
    }
    kept.push(args[i]);
  }
  return kept;
}

/** A configuration as a record stores it: without the folder it ran in and how it started. */
function comparable(config: TrainConfig): Partial<TrainConfig> {
  const { out: _out, overwrite: _overwrite, resume: _resume, ...rest } = config;
  return rest;
}

/** Every `seed-*.json` below `dir` (relative paths), or [] when `dir` does not exist. */
async function recordFiles(dir: string, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
      const path = `${prefix}${entry.name}`;
      if (entry.isDirectory) found.push(...await recordFiles(dir, `${path}/`));
      else if (/^seed-\d+\.json$/.test(entry.name)) found.push(path);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotADirectory) {
      throw new UsageError(`--records ${dir}: ${prefix || "it"} is a file, not a folder`);
    }
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return found.sort();
}

/** Where an experiment keeps its finished runs, and which earlier ones it may keep. */
export class RunRecords {
  /** Runs kept from earlier invocations, and the seconds they had taken. */
  kept = 0;
  keptSeconds = 0;
  /** The records {@link RunRecords.open} found under `--resume`, by their path in the folder. */
  readonly #found = new Map<string, SeedRecord>();

  private constructor(
    readonly dir: string,
    readonly resume: boolean,
    readonly stamp: Omit<SeedRecord, "format" | "version" | "config" | "outcome">,
  ) {}

  /**
   * Opens `dir` for an invocation with arguments `args`, checking every record already there
   * before anything trains (see the module doc).
   */
  static async open(
    dir: string,
    options: { resume: boolean; overwrite: boolean; args: readonly string[] },
    where: { commit: string; deno: string; cpu: string },
  ): Promise<RunRecords> {
    if (options.resume && options.overwrite) {
      throw new UsageError("--resume and --overwrite contradict each other: pick one");
    }
    if (options.resume && (where.commit === "unknown" || where.commit.includes("+"))) {
      throw new UsageError(
        `--resume keeps runs only on a clean checkout of the commit that made them; this one ` +
          `is ${where.commit} (commit or stash the changes, or check out that commit)`,
      );
    }
    const records = new RunRecords(dir, options.resume, {
      ...where,
      args: decidingArgs(options.args),
    });
    const files = await recordFiles(dir);
    if (files.length > 0 && !options.resume && !options.overwrite) {
      throw new UsageError(
        `--records ${dir} holds ${files.length} finished run(s) (${files[0]}, ...): pass ` +
          `--resume to keep them and train the rest, or --overwrite to train every run again`,
      );
    }
    if (options.resume) {
      for (const file of files) records.#found.set(file, await records.read(file));
    }
    return records;
  }

  /** The record at `file` (relative to the folder), checked against this invocation. */
  private async read(file: string): Promise<SeedRecord> {
    const path = `${this.dir}/${file}`;
    let record: SeedRecord;
    try {
      record = decodeResults<SeedRecord>(await Deno.readTextFile(path));
    } catch (error) {
      throw new Error(`${path}: not a seed record (${(error as Error).message})`);
    }
    if (record.format !== "tessera-seed-record" || record.version !== 1) {
      throw new Error(`${path}: not a seed record (format ${record.format})`);
    }
    const s = this.stamp;
    const differences = [
      record.commit !== s.commit && `commit ${record.commit}, this checkout ${s.commit}`,
      record.deno !== s.deno && `Deno ${record.deno}, this one ${s.deno}`,
      record.cpu !== s.cpu && `CPU ${record.cpu}, this one ${s.cpu}`,
      JSON.stringify(record.args) !== JSON.stringify(s.args) &&
      `arguments "${record.args.join(" ")}", these "${s.args.join(" ")}"`,
    ].filter(Boolean);
    if (differences.length > 0) {
      throw new UsageError(
        `--resume: ${path} was made elsewhere (${differences.join("; ")}): run with what ` +
          `made it, or pass --overwrite to train every run again`,
      );
    }
    return record;
  }

  /** The kept outcome of `seed` of configuration `name`, or null when it must train. */
  keptOutcome(name: string, config: TrainConfig, seed: number): SeedOutcome | null {
    const file = `${name}/seed-${seed}.json`;
    const record = this.#found.get(file);
    if (!record) return null;
    if (JSON.stringify(record.config) !== JSON.stringify(comparable(config))) {
      throw new UsageError(
        `--resume: ${this.dir}/${file} trained another configuration than this command ` +
          `gives it: pass --overwrite to train every run again`,
      );
    }
    this.kept++;
    this.keptSeconds += record.outcome.seconds;
    return record.outcome;
  }

  /** Writes the record of a finished seed (atomically). */
  async save(name: string, config: TrainConfig, outcome: SeedOutcome): Promise<void> {
    const record: SeedRecord = {
      format: "tessera-seed-record",
      version: 1,
      ...this.stamp,
      config: comparable(config),
      outcome,
    };
    await Deno.mkdir(`${this.dir}/${name}`, { recursive: true });
    await writeTextFileAtomic(
      `${this.dir}/${name}/seed-${outcome.seed}.json`,
      encodeResults(record, 0),
    );
  }
}

/** JSON with NaN and ±Infinity kept (as {"$number": "NaN"}), so a round trip is exact. */
export function encodeResults(value: unknown, space = 1): string {
  return JSON.stringify(
    value,
    (_key, v) => typeof v === "number" && !Number.isFinite(v) ? { $number: String(v) } : v,
    space,
  ) + "\n";
}

/** Reads what {@link encodeResults} wrote. */
export function decodeResults<T>(text: string): T {
  return JSON.parse(
    text,
    (_key, v) =>
      v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 &&
        typeof v.$number === "string"
        ? Number(v.$number)
        : v,
  );
}
