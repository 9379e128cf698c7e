/**
 * The GPU-vs-reference parity table on a second WebGPU implementation: web/parity.html runs the
 * cases of parity/cases_dense.ts and parity/cases_spatial.ts in headless Chromium (Dawn, with the
 * Tint shader compiler, on SwiftShader) against the reference device "ref", with the cases' own
 * tolerances. Any case that disagrees, throws or fails to compile fails this test by name.
 *
 * @module
 */

import assert from "node:assert/strict";
import { chromiumAvailable, withBrowser } from "../support/browser_chromium.ts";
import { chunkedCases, denseCases } from "./cases_dense.ts";
import { spatialCases } from "./cases_spatial.ts";

interface Parity {
  adapter: string;
  results: { run: string; name: string; ok: boolean; message: string; worst: number }[];
  done: boolean;
  error: string | null;
}

Deno.test({
  name: "browser parity: every case agrees on Chromium's WebGPU",
  ignore: !chromiumAvailable,
  sanitizeResources: false,
  async fn() {
    await withBrowser(async (page, origin) => {
      await page.goto(`${origin}/parity.html`);
      await page.waitFor("globalThis.parity?.done", 420);
      const parity = await page.evaluate<Parity>("globalThis.parity");
      assert.equal(parity.error, null, `the parity page failed: ${parity.error}`);
      assert.match(parity.adapter, /swiftshader/i, "Chromium's own WebGPU adapter ran the table");
      const failures = parity.results.filter((r) => !r.ok).map((r) =>
        `${r.run} / ${r.name}: ${r.message}`
      );
      assert.deepEqual(failures, [], `cases that disagree on Chromium:\n${failures.join("\n")}`);
      // Every case ran: the full table, the matmul cases again, the chunked cases twice.
      const matmuls = denseCases.filter((c) => /matmul|linear/.test(c.name)).length;
      const expected = denseCases.length + spatialCases.length + matmuls + 2 * chunkedCases.length;
      assert.equal(parity.results.length, expected);
      const closest = [...parity.results].sort((a, b) => b.worst - a.worst).slice(0, 5);
      console.log(`closest to the tolerance on ${parity.adapter}:`);
      for (const r of closest) {
        console.log(`  ${(100 * r.worst).toFixed(1)}%  ${r.run} / ${r.name}`);
      }
    });
  },
});
