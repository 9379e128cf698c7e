/**
 * Runs OpInfo rows (table.ts) on every device: for each op one test, one step per category
 * and sample, and one sub-step per device ("ref", "cpu", "gpu"), so the output names the device
 * of every check. Without a WebGPU adapter the GPU sub-steps are skipped, except in CI
 * (CI=true), where tests/support/gpu_helpers.ts fails the run. The rows are split over a few
 * test files (one per group of families) so that `deno test --parallel` spreads them.
 *
 * @module
 */

import { getGpu, gpuAvailable } from "../support/gpu_helpers.ts";
import { CATEGORIES, type OpInfo } from "./sample.ts";

const DEVICES = ["ref", "cpu", "gpu"];

/** Registers one test per op of `rows`. */
export function runOpInfo(rows: readonly OpInfo[]): void {
  for (const info of rows) {
    Deno.test(`opinfo ${info.op}: every category on ref, cpu and gpu`, async (t) => {
      const gpu = gpuAvailable ? await getGpu() : null;
      for (const category of CATEGORIES) {
        const samples = info.samples[category];
        if (!Array.isArray(samples)) continue; // declared not applicable, with its reason
        for (const sample of samples) {
          await t.step(`${category}: ${sample.name}`, async (row) => {
            const check = await sample.prepare();
            for (const device of DEVICES) {
              await row.step({
                name: device,
                ignore: device === "gpu" && !gpuAvailable,
                fn: () => check(device),
              });
            }
          });
        }
      }
      await gpu?.runtime.checkErrors();
    });
  }
}
