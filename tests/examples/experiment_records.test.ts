/**
 * Experiments survive being stopped: each finished seed is recorded, `--resume` keeps the
 * records made by the same commit, Deno, CPU and arguments and trains the rest, and anything
 * else is refused before a seed trains, naming the file (examples/alexnet/experiments/records.ts).
 */

import assert from "node:assert/strict";
import { captured, withDir } from "../support/alexnet_helpers.ts";
import { DEFAULTS, UsageError } from "../../examples/alexnet/config.ts";
import { main as ablateMain } from "../../examples/alexnet/experiments/ablate.ts";
import {
  decidingArgs,
  decodeResults,
  RunRecords,
  type SeedRecord,
} from "../../examples/alexnet/experiments/records.ts";

const TINY = [
  "--quick",
  "--train-limit",
  "32",
  "--val-size",
  "16",
  "--test-limit",
  "16",
  "--eval-train",
  "16",
  "--batch-size",
  "16",
  "--device",
  "cpu",
  "--variants",
  "full,random-crops",
];

/** The table of an ablations.md, without the provenance line (its wall time differs). */
function table(markdown: string): string {
  return markdown.split("\n").filter((l) => !l.startsWith("Produced by commit")).join("\n");
}

Deno.test("ablate --resume: a stopped ablation keeps its finished seeds, trains the rest, and gives the same table", async () => {
  await withDir(async (dir) => {
    const run = [...TINY, "--out", `${dir}/run`];
    const first = await captured(() => ablateMain(run));
    assert.equal(first.value, 0, first.printed);
    const records = `${dir}/run/records`;
    const kept = await Deno.readTextFile(`${records}/random-crops/seed-1.json`);
    const record = decodeResults<SeedRecord>(kept);
    assert.equal(record.format, "tessera-seed-record");
    assert.deepEqual(record.args, TINY);
    assert.equal(record.outcome.seed, 1);
    // Ten-crop testing completes the outcome before it is recorded.
    assert.ok(Number.isFinite(record.outcome.tenCropError), kept.slice(0, 200));
    const before = await Deno.readTextFile(`${dir}/run/ablations.md`);

    // Stopped before its last seed finished: that seed has no record.
    await Deno.remove(`${records}/random-crops/seed-2.json`);
    const again = await captured(() => ablateMain(run));
    assert.equal(again.value, 2);
    assert.match(
      again.errors,
      /^ablate: --records .*records holds 3 finished run\(s\) \(full\/seed-1\.json, \.\.\.\): pass --resume to keep them and train the rest, or --overwrite/,
    );
    assert.doesNotMatch(again.printed, /seed \d:/);

    const resumed = await captured(() => ablateMain([...run, "--resume"]));
    assert.equal(resumed.value, 0, resumed.printed);
    assert.equal(resumed.printed.match(/seed \d: kept from /g)?.length, 3, resumed.printed);
    const after = await Deno.readTextFile(`${dir}/run/ablations.md`);
    assert.match(after, /over several invocations \(3 runs kept from earlier ones\)/);
    assert.equal(table(after), table(before));
    // The kept record is untouched; the retrained seed is recorded again.
    assert.equal(await Deno.readTextFile(`${records}/random-crops/seed-1.json`), kept);
    await Deno.stat(`${records}/random-crops/seed-2.json`);
    const json = decodeResults<{ commandLine: string; provenance: { keptRuns: number } }>(
      await Deno.readTextFile(`${dir}/run/ablations.json`),
    );
    assert.equal(json.provenance.keptRuns, 3);
    assert.doesNotMatch(json.commandLine, /--resume/);
  });
});

Deno.test("experiment records: records made elsewhere are refused before anything trains, naming the file", async () => {
  await withDir(async (dir) => {
    const where = { commit: "0123abc", deno: Deno.version.deno, cpu: "test CPU" };
    const args = ["--seeds", "2"];
    const records = await RunRecords.open(dir, { resume: false, overwrite: false, args }, where);
    const outcome = {
      seed: 1,
      trainError: 0.5,
      trainEvalError: NaN,
      valError: 0.25,
      testError: 0.25,
      metrics: [],
      stepsPerEpoch: 2,
      seconds: 3,
      device: "cpu",
      lrDrops: [],
    };
    const config = { ...DEFAULTS, seed: 1 };
    await records.save("full", config, outcome);

    const open = (
      options: Partial<{ resume: boolean; overwrite: boolean; args: string[] }>,
      at: Partial<typeof where> = {},
    ) =>
      RunRecords.open(
        dir,
        { resume: false, overwrite: false, args, ...options },
        { ...where, ...at },
      );
    await assert.rejects(open({}), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.match(
        e.message,
        /holds 1 finished run\(s\) \(full\/seed-1\.json, \.\.\.\): pass --resume/,
      );
      return true;
    });
    await assert.rejects(open({ resume: true, overwrite: true }), /contradict/);
    await assert.rejects(
      open({ resume: true }, { commit: "0123abc + uncommitted changes" }),
      /only on a clean checkout of the commit that made them/,
    );
    await assert.rejects(
      open({ resume: true }, { commit: "fedcba9" }),
      /full\/seed-1\.json was made elsewhere \(commit 0123abc, this checkout fedcba9\)/,
    );
    await assert.rejects(open({ resume: true }, { cpu: "other CPU" }), /CPU test CPU, this one/);
    await assert.rejects(
      open({ resume: true, args: ["--seeds", "3"] }),
      /arguments "--seeds 2", these "--seeds 3"/,
    );

    const resumed = await open({ resume: true });
    assert.deepEqual(resumed.keptOutcome("full", config, 1), outcome);
    assert.equal(resumed.keptOutcome("full", config, 2), null);
    assert.throws(
      () => resumed.keptOutcome("full", { ...config, lr: 0.5 }, 1),
      /full\/seed-1\.json trained another configuration/,
    );
    assert.equal(resumed.kept, 1);
    assert.equal(resumed.keptSeconds, 3);
    await Deno.writeTextFile(`${dir}/file`, "");
    await assert.rejects(
      RunRecords.open(`${dir}/file`, { resume: true, overwrite: false, args }, where),
      /--records .*\/file: it is a file, not a folder/,
    );
    // --overwrite trains again; a different folder or place for the outputs is the same run.
    await open({ overwrite: true });
    assert.deepEqual(
      decidingArgs(["--seeds", "2", "--out", "a", "--records=b", "--results", "c", "--resume"]),
      ["--seeds", "2"],
    );
  });
});
