/**
 * The second thread of the fast gemm (cpu/kernels/gemm.ts): instantiates the same module on the same
 * shared memory, then sleeps in Atomics.wait until the main thread posts a job, and claims
 * tasks alongside it. Started by setThreads(2) (the cpu device's `threads` setting).
 *
 * @module
 */

import type { GemmExports } from "./gemm_kernels.ts";
import { GENERATION, JOB, JOB_WORDS, STOP, workOnTasks } from "./gemm_tasks.ts";

self.onmessage = (
  event: MessageEvent<{ module: WebAssembly.Module; memory: WebAssembly.Memory }>,
) => {
  const { module, memory } = event.data;
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const exports = instance.exports as unknown as GemmExports;
  const control = new Int32Array(memory.buffer, 0, JOB);
  const job = new Int32Array(memory.buffer, JOB * 4, JOB_WORDS);
  self.onmessage = null;
  self.postMessage("ready");
  let seen = Atomics.load(control, GENERATION);
  for (;;) {
    Atomics.wait(control, GENERATION, seen);
    seen = Atomics.load(control, GENERATION);
    if (Atomics.load(control, STOP)) break;
    // This thread's copy of the descriptor; a stale copy claims nothing (see workOnTasks).
    workOnTasks(exports, control, job.slice(), seen);
  }
  self.close();
};
