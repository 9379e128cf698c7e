/**
 * The tasks of one fast gemm and how two threads share them (cpu/kernels/gemm.ts prepares a job,
 * cpu/kernels/gemm_worker.ts is the second thread). A job is described by Int32 words in the
 * module's memory; task t < packTasks packs one k-block of op(A) (t even) or op(B) (t odd),
 * every later task computes one MC × NC block of C over all k-blocks. Both threads claim tasks
 * with compare-and-swap on one word and count finished ones on another.
 *
 * @module
 */

import { type GemmExports, type SimdTier, TILE } from "./gemm_kernels.ts";

/** Depth of one k-block: a B panel (256 × 8 floats = 8 KiB) stays in the 32 KiB L1. */
export const KC = 256;
/** Columns of C per task: 512 keeps tasks many enough to balance two threads. */
export const NC = 512;
/** Rows of C per task, 20 tiles tall: the A block (MC × KC floats, 80-120 KiB) stays in L2. */
export const mcOf = (tier: SimdTier) => TILE[tier].mr * 20;

/** Int32 words at the start of the memory that coordinate the threads. */
export const GENERATION = 0, NEXT = 1, DONE = 2, FAILED = 3, STOP = 4, JOB = 8;
export const JOB_WORDS = 24;
/** Bytes at the start of the memory reserved for the control words and the descriptor. */
export const CONTROL_BYTES = 256;

/** The job descriptor, Int32 words from JOB; both threads decode tasks from it. */
export const J = {
  m: 0,
  n: 1,
  k: 2,
  transA: 3,
  transB: 4,
  a: 5,
  lda: 6,
  b: 7,
  ldb: 8,
  c: 9,
  ldc: 10,
  accumulate: 11,
  packedA: 12,
  packedB: 13,
  mPad: 14,
  nPad: 15,
  packTasks: 16,
  kBlocks: 17,
  rowBlocks: 18,
  total: 19,
  mc: 20,
  unpackedB: 21,
} as const;

/** Runs task `t` of the job in `job` (an Int32Array view of the descriptor). */
export function runTask(ex: GemmExports, job: Int32Array, t: number): void {
  const k = job[J.k];
  if (t < job[J.packTasks]) {
    const p0 = (t >> 1) * KC, kc = Math.min(KC, k - p0);
    if ((t & 1) === 0) {
      // op(A)(i, p) = A[i·lda + p], or A[p·lda + i] when transposed.
      const lda = job[J.lda], trans = job[J.transA];
      const rowStride = (trans ? 1 : lda) * 4, depthStride = (trans ? lda : 1) * 4;
      const dst = job[J.packedA] + p0 * job[J.mPad] * 4;
      ex.packA(job[J.a] + p0 * depthStride, rowStride, depthStride, job[J.m], kc, dst);
    } else if (!job[J.unpackedB]) {
      // op(B)(p, j) = B[p·ldb + j], or B[j·ldb + p]; packed with j as the panel's row.
      const ldb = job[J.ldb], trans = job[J.transB];
      const rowStride = (trans ? ldb : 1) * 4, depthStride = (trans ? 1 : ldb) * 4;
      const dst = job[J.packedB] + p0 * job[J.nPad] * 4;
      ex.packB(job[J.b] + p0 * depthStride, rowStride, depthStride, job[J.n], kc, dst);
    }
    return;
  }
  const u = t - job[J.packTasks], mc = job[J.mc];
  const i0 = (u % job[J.rowBlocks]) * mc, j0 = Math.floor(u / job[J.rowBlocks]) * NC;
  const rows = Math.min(mc, job[J.m] - i0), cols = Math.min(NC, job[J.n] - j0);
  const ldc = job[J.ldc];
  for (let kb = 0; kb < job[J.kBlocks]; kb++) {
    const p0 = kb * KC, kc = Math.min(KC, k - p0);
    const a = job[J.packedA] + (p0 * job[J.mPad] + i0 * kc) * 4;
    const load = job[J.accumulate] || kb > 0 ? 1 : 0;
    const c = job[J.c] + (i0 * ldc + j0) * 4;
    if (job[J.unpackedB]) {
      const ldb = job[J.ldb];
      ex.macro(a, job[J.b] + (p0 * ldb + j0) * 4, c, ldc * 4, rows, cols, kc, load, ldb * 4);
    } else {
      const b = job[J.packedB] + (p0 * job[J.nPad] + j0 * kc) * 4;
      ex.macro(a, b, c, ldc * 4, rows, cols, kc, load, 0);
    }
  }
}

/**
 * The claim word control[NEXT]: the job's generation (11 bits) above the next task's number
 * (20 bits). A thread claims a task with compare-and-swap only while the word still carries
 * its job's generation, so a worker that wakes late for a finished job claims nothing, even
 * while the main thread is already writing the next job's descriptor (the main thread closes
 * the word, counter at its maximum, as soon as a job is done).
 */
export const claimWord = (generation: number, task: number) => ((generation & 0x7ff) << 20) | task;
export const TASK_MASK = (1 << 20) - 1;

/**
 * Claims and runs tasks of job `generation` (described by `job`, this thread's copy of the
 * descriptor) until none is left: the loop both threads run. Compute tasks first wait until
 * every packing task is done (packing tasks are claimed first).
 */
export function workOnTasks(
  ex: GemmExports,
  control: Int32Array,
  job: Int32Array,
  generation: number,
): void {
  for (;;) {
    const word = Atomics.load(control, NEXT);
    const t = word & TASK_MASK;
    if (word >>> 20 !== (generation & 0x7ff) || t >= job[J.total]) return;
    if (Atomics.compareExchange(control, NEXT, word, word + 1) !== word) continue;
    if (t >= job[J.packTasks]) waitAtLeast(control, DONE, job[J.packTasks]);
    try {
      runTask(ex, job, t);
    } catch (error) {
      Atomics.store(control, FAILED, 1);
      console.error("gemm task failed:", error);
    }
    Atomics.add(control, DONE, 1);
    Atomics.notify(control, DONE);
  }
}

/** Whether this thread may block in Atomics.wait (workers and Deno's main thread may). */
let canBlock = true;

/** Waits until control[index] ≥ target: Atomics.wait where allowed, else spins. */
export function waitAtLeast(control: Int32Array, index: number, target: number): void {
  for (;;) {
    const value = Atomics.load(control, index);
    if (value >= target) return;
    if (!canBlock) continue;
    try {
      Atomics.wait(control, index, value, 20);
    } catch {
      canBlock = false; // a browser's main thread: spin on Atomics.load instead
    }
  }
}
