/**
 * The OpInfo table (table.ts) on every device: for each public op one test, one step per
 * category and sample, and one sub-step per device ("ref", "cpu", "gpu"), so the output names
 * the device of every check. Without a WebGPU adapter the GPU sub-steps are skipped, except in
 * CI (CI=true), where tests/support/gpu_helpers.ts fails the run.
 *
 * @module
 */

import { getGpu, gpuAvailable } from "../support/gpu_helpers.ts";
import { CATEGORIES } from "./sample.ts";
import { OPINFO } from "./table.ts";

const DEVICES = ["ref", "cpu", "gpu"];

for (const info of OPINFO) {
  Deno.test(`opinfo ${info.op}: every category on ref, cpu and gpu`, async (t) => {
    const gpu = gpuAvailable ? await getGpu() : null;
    for (const category of CATEGORIES) {
      const rows = info.samples[category];
      if (!Array.isArray(rows)) continue; // declared not applicable, with its reason
      for (const sample of rows) {
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
