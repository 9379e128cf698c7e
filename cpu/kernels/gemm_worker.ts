/**
 * One extra thread of the cpu device's pool (cpu/kernels/gemm.ts starts them): instantiates the
 * kernel modules (gemm, conv, relu, lrn, pool, sgd, elementwise) on the shared memory, then
 * sleeps in Atomics.wait until the main thread posts a job and claims tasks alongside it (tasks.ts). A worker that sees no job for
 * {@link IDLE_MS} clears its slot's "alive" word and closes itself, so a Deno program ends
 * when its work does, without a call; the pool starts a fresh worker at its next job.
 *
 * @module
 */

import { type CompiledModules, instantiateKernels } from "./gemm.ts";
import { runTask } from "./run_task.ts";
import { GENERATION, JOB, JOB_WORDS, LIVE, MAX_THREADS, SPIN_US, workOnTasks } from "./tasks.ts";

/** Milliseconds without a job after which a worker ends. */
export const IDLE_MS = 500;

/** What the pool posts to a new worker. */
export interface WorkerStart {
  modules: CompiledModules;
  memory: WebAssembly.Memory;
  /** This worker's thread number (1 .. threads − 1): its slot and its scratch space. */
  thread: number;
  /** The value of its slot's "alive" word while this worker owns the slot. */
  token: number;
}

self.onmessage = (event: MessageEvent<WorkerStart>) => {
  const { modules, memory, thread, token } = event.data;
  const kernels = instantiateKernels(modules, memory);
  const control = new Int32Array(memory.buffer, 0, LIVE + MAX_THREADS);
  const job = new Int32Array(memory.buffer, JOB * 4, JOB_WORDS);
  const run = (descriptor: Int32Array, t: number, at: number) =>
    runTask(kernels, descriptor, t, at);
  self.onmessage = null;
  self.postMessage("ready");
  let seen = Atomics.load(control, GENERATION);
  for (;;) {
    // Spin a moment for the next job (kernels come back to back), then sleep.
    const spinUntil = performance.now() + SPIN_US / 1000;
    while (Atomics.load(control, GENERATION) === seen && performance.now() < spinUntil);
    if (Atomics.wait(control, GENERATION, seen, IDLE_MS) === "timed-out") break;
    seen = Atomics.load(control, GENERATION);
    if (Atomics.load(control, LIVE + thread) !== token) break; // stopped by the pool
    // This thread's copy of the descriptor; a stale copy claims nothing (see workOnTasks).
    workOnTasks(run, control, job.slice(), seen, thread);
  }
  Atomics.compareExchange(control, LIVE + thread, token, 0);
  self.close();
};
