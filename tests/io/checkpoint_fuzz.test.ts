import assert from "node:assert/strict";
import { fuzzCheckpoints } from "../support/checkpoint_fuzz.ts";

// A short run of the fuzzer; `deno run --allow-read --allow-write tests/support/checkpoint_fuzz.ts 5000`
// runs a long one.
Deno.test("fuzz: 250 mutated checkpoints load cleanly or are refused without changing anything", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const report = await fuzzCheckpoints(250, 7, dir);
    const summary = JSON.stringify(report, null, 2);
    assert.equal(report.crashes, 0, summary);
    assert.equal(report.badLoads, 0, summary);
    assert.equal(report.modifyingRejections, 0, summary);
    // Both outcomes must be exercised, or the fuzzer tests nothing.
    assert.equal(report.refused + report.loaded, 250, summary);
    assert.ok(report.refused > 100 && report.loaded > 20, summary);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
