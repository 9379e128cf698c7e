/**
 * The fast float32 gemm: the WebAssembly of gemm_kernels.ts driven from TypeScript, on one or
 * two threads. tensor/ops/gemm.ts holds the reference loops; {@link gemm} at the end of this
 * file sends float32 products to {@link GemmEngine.gemm} when the JavaScript engine compiles
 * SIMD, and everything else to the reference. Every result here is proven against that
 * reference in tests/cpu/gemm.test.ts.
 *
 * One call: find the operands in the module's memory (a tensor of the cpu device lives there
 * and is used in place; any other array is copied in, and C out: operands.ts), pack op(A) and
 * op(B) into panels (wasm), run the macro kernel over blocks of C (wasm). The work
 * is a list of tasks (gemm_tasks.ts): 2 packing tasks per k-block, then one task per MC × NC
 * block of C. Products with one row or one column skip packing and use the matrix-vector kernels; with
 * at most 8 rows, B is read in place (or, transposed, as rows for dot products): packing the big
 * operand would cost more than the few rows of C reuse it. bench/gemm_bench.ts prints the copies'
 * share of each product for arrays that live outside it.
 *
 * ## Threads
 *
 * The engine owns the cpu device's thread pool: workers (gemm_worker.ts) that instantiate the
 * gemm and conv modules on the same shared `WebAssembly.Memory` and claim tasks of a job from
 * one atomic counter alongside the main thread (tasks.ts), so a worker whose core is busy
 * elsewhere simply takes fewer tasks. The backend's kernels are synchronous, so the main thread
 * cannot yield while a job runs; instead it never idles while work is left: it computes tasks
 * itself and only waits for the tasks in flight on other threads, and it never waits for a
 * worker that has not woken up. Each element of C is computed by one thread in the same order
 * as on one thread, so any number of threads gives bit-identical results. By default the pool
 * has one thread per core ({@link defaultThreads}); workers start at the first job worth
 * splitting and close themselves when idle.
 *
 * Without SharedArrayBuffer (a browser page without cross-origin isolation) the memory is an
 * ordinary one and gemm stays on one thread.
 *
 * @module
 */

import {
  type GemmExports,
  gemmModuleBytes,
  MAX_PAGES,
  type SimdTier,
  TILE,
} from "./gemm_kernels.ts";
import { GEMV, J, KC, mcOf, NC, SKINNY } from "./gemm_tasks.ts";
import { type ConvExports, convModuleBytes } from "./conv2d_kernels.ts";
import { reluModuleBytes } from "./relu.ts";
import { lrnModuleBytes } from "./lrn.ts";
import { poolModuleBytes } from "./pool2d.ts";
import { sgdModuleBytes } from "./sgd.ts";
import { elementwiseModuleBytes } from "./elementwise.ts";
import { type Kernels, runTask } from "./run_task.ts";
import {
  claimWord,
  CONTROL_BYTES,
  DONE,
  FAILED,
  GENERATION,
  HEADER,
  JOB,
  JOB_WORDS,
  KINDS,
  LIVE,
  MAX_THREADS,
  newJob,
  NEXT,
  setWords,
  TASK_MASK,
  waitAtLeast,
  workOnTasks,
} from "./tasks.ts";
import type { WorkerStart } from "./gemm_worker.ts";
import { Heap, heapOf, TENSOR_SHARE } from "./heap.ts";
import { copyStats, placeOperands } from "./operands.ts";
import type { TypedArray } from "../../backend/backend.ts";

import {
  checkGemmArgs,
  type FloatArray,
  type GemmArgs,
  gemmReference,
} from "../../tensor/ops/gemm.ts";

export type { FloatArray, GemmArgs, SimdTier };
export { copyStats };

/** Whether the pool backs off on a busy machine (see run); tests turn it off. */
let backoff = true;

/**
 * Turns the pool's back-off on or off (on by default). Tests that prove the threads give the
 * same bits turn it off, so that the workers take part even on a busy machine.
 */
export function setThreadBackoff(enabled: boolean): void {
  backoff = enabled;
}

/** Jobs in a row that waited longer than they worked before the pool backs off (see run). */
const BACKOFF_STRIKES = 3;
/** Jobs then run on the calling thread alone: about one training step of AlexNet-mini. */
const BACKOFF_JOBS = 60;

/** Outputs per task of a split matrix-vector or few-row product (a multiple of 16: see GEMV). */
const GEMV_ROWS_PER_TASK = 64;

/** C with at most this many rows reads B in place instead of packing it (see gemm). */
const SKINNY_ROWS = 8;

/** Where the gemm worker's module is: beside this file (a bundle passes its own, see setThreads). */
const DEFAULT_WORKER_URL = new URL("./gemm_worker.ts", import.meta.url);

/** Jobs below this many flops stay on one thread (waking the workers costs more than they save). */
const PARALLEL_MIN_FLOPS = 2 ** 22;

/** A memory for the kernels: shared when SharedArrayBuffer exists and works, else ordinary. */
function newMemory(): { memory: WebAssembly.Memory; shared: boolean } {
  if (typeof SharedArrayBuffer === "function") {
    try {
      return {
        memory: new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true }),
        shared: true,
      };
    } catch {
      // no cross-origin isolation: fall through to an ordinary memory and one thread
    }
  }
  return { memory: new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES }), shared: false };
}

/** The tier's module compiled off the main thread, for engines that refuse large sync compiles. */
export async function compileGemmModule(tier: SimdTier): Promise<CompiledModules> {
  const shared = newMemory().shared;
  const names = Object.keys(MODULES) as (keyof Kernels)[];
  const compiled = await Promise.all(
    names.map((name) => WebAssembly.compile(MODULES[name](tier, shared))),
  );
  return Object.fromEntries(names.map((name, i) => [name, compiled[i]])) as CompiledModules;
}

/** Every module a thread instantiates on the shared memory, by name, and how to emit it. */
const MODULES: Record<keyof Kernels, (tier: SimdTier, shared: boolean) => Uint8Array<ArrayBuffer>> =
  {
    gemm: gemmModuleBytes,
    conv: convModuleBytes,
    relu: (_tier, shared) => reluModuleBytes(shared),
    lrn: (_tier, shared) => lrnModuleBytes(shared),
    pool: (_tier, shared) => poolModuleBytes(shared),
    sgd: (_tier, shared) => sgdModuleBytes(shared),
    elementwise: (_tier, shared) => elementwiseModuleBytes(shared),
  };

/** The compiled modules, by name. */
export type CompiledModules = Record<keyof Kernels, WebAssembly.Module>;

/** Instantiates every compiled module on `memory`: what each thread calls. */
export function instantiateKernels(modules: CompiledModules, memory: WebAssembly.Memory): Kernels {
  const env = { env: { memory } };
  const names = Object.keys(modules) as (keyof Kernels)[];
  return Object.fromEntries(
    names.map((name) => [name, new WebAssembly.Instance(modules[name], env).exports]),
  ) as unknown as Kernels;
}

/**
 * Why a worker cannot start from `url` here, or null: a Deno program without read permission
 * for the worker's file (the workers would fail to load; the kernels then stay on one thread).
 */
function workerRefused(url: URL | string): string | null {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  const href = String(url);
  if (deno?.permissions?.querySync === undefined || !href.startsWith("file:")) return null;
  const path = decodeURIComponent(new URL(href).pathname);
  if (deno.permissions.querySync({ name: "read", path }).state === "granted") return null;
  return `the cpu worker threads need read access to ${path} (--allow-read); running on one thread`;
}

/**
 * The cpu device's kernel engine of one SIMD tier: the gemm and conv modules on one memory
 * (shared when the platform allows it) and the pool of workers that share it. Workers start at
 * the first job big enough to split and end themselves when idle (gemm_worker.ts).
 */
export class GemmEngine {
  readonly tier: SimdTier;
  readonly memory: WebAssembly.Memory;
  readonly shared: boolean;
  readonly modules: CompiledModules;
  readonly exports: GemmExports;
  readonly conv: ConvExports;
  readonly kernels: Kernels;
  #threads: number;
  #workers: (Worker | null)[] = [];
  #spawned = 0;
  #startError: string | null = null;
  #strikes = 0;
  #stayHome = 0;
  #control: Int32Array;
  #job: Int32Array;
  #scratchAt = 0;
  #scratchBytes = -1;
  /** The memory's blocks: the cpu device's tensors and each call's scratch (heap.ts). */
  readonly heap: Heap;

  /**
   * Compiles (or takes, from {@link compileGemmModule}) the tier's modules and creates their
   * memory: shared when the platform allows it, else an ordinary one (then one thread).
   */
  constructor(tier: SimdTier, compiled?: CompiledModules, threads = wantedThreads) {
    this.tier = tier;
    const { memory, shared } = newMemory();
    this.memory = memory;
    this.shared = shared;
    this.modules = compiled ?? Object.fromEntries(
      Object.entries(MODULES).map((
        [name, bytes],
      ) => [name, new WebAssembly.Module(bytes(tier, shared))]),
    ) as CompiledModules;
    this.kernels = instantiateKernels(this.modules, memory);
    this.exports = this.kernels.gemm;
    this.conv = this.kernels.conv;
    this.heap = new Heap(memory, CONTROL_BYTES, MAX_PAGES * 65536);
    this.#control = new Int32Array(memory.buffer, 0, CONTROL_BYTES / 4);
    this.#job = new Int32Array(memory.buffer, JOB * 4, JOB_WORDS);
    this.#threads = shared ? threads : 1;
  }

  /** Threads a job may run on: the setting, or 1 without shared memory or after a failed start. */
  get threads(): number {
    return this.#startError === null ? this.#threads : 1;
  }

  /** Scratch spaces a job must provide (one per thread that may run its tasks). */
  get scratchSpaces(): number {
    return this.#threads;
  }

  /** Sets the thread count (1 .. MAX_THREADS); stops the workers, later jobs start new ones. */
  setThreads(threads: number): void {
    this.stopWorkers();
    this.#threads = this.shared ? threads : 1;
    this.#startError = null;
  }

  /**
   * Starts every missing worker from `url` (by default `gemm_worker.ts` beside this file) and
   * resolves when all have instantiated the modules; rejects naming the failure.
   */
  async startWorkers(url: URL | string = workerUrl): Promise<void> {
    const started = this.#ensureWorkers(url);
    await Promise.all(started);
  }

  /** Starts a worker in every slot whose worker is gone; returns their readiness. */
  #ensureWorkers(url: URL | string = workerUrl): Promise<void>[] {
    const ready: Promise<void>[] = [];
    if (this.#startError !== null) return ready;
    for (let slot = 1; slot < this.#threads; slot++) {
      if (Atomics.load(this.#control, LIVE + slot) !== 0) continue;
      ready.push(this.#spawn(slot, url));
    }
    return ready;
  }

  #spawn(slot: number, url: URL | string): Promise<void> {
    const refused = workerRefused(url);
    if (refused !== null) {
      this.#startError = refused;
      const failed = Promise.reject(new Error(`setCpuOptions: ${refused}`));
      failed.catch(() => {}); // a lazy start (from a job) reports through `threads`
      return failed;
    }
    const token = (this.#spawned = (this.#spawned % 0x7fffffff) + 1);
    Atomics.store(this.#control, LIVE + slot, token);
    const worker = new Worker(url, { type: "module" });
    this.#workers[slot] = worker;
    const ready = new Promise<void>((resolve, reject) => {
      worker.onmessage = () => {
        worker.onmessage = null;
        resolve();
      };
      worker.onerror = (event) => {
        event.preventDefault();
        // The slot stays taken: jobs run on the threads that did start.
        this.#startError = `a cpu worker failed to start: ${event.message}`;
        reject(new Error(`setCpuOptions: ${this.#startError}`));
      };
    });
    ready.catch(() => {}); // a lazy start (from a job) reports through `threads`
    const start: WorkerStart = {
      modules: this.modules,
      memory: this.memory,
      thread: slot,
      token,
    };
    worker.postMessage(start);
    return ready;
  }

  /** Stops every worker (each is started again by the next job that splits). */
  stopWorkers(): void {
    for (let slot = 1; slot < this.#workers.length; slot++) {
      Atomics.store(this.#control, LIVE + slot, 0);
      this.#workers[slot]?.terminate();
      this.#workers[slot] = null;
    }
  }

  /**
   * The byte address of `bytes` of scratch for one call: a block of the heap, kept for the
   * next call and replaced by a larger one when a call needs more. Throws naming `op` when the
   * memory cannot hold it.
   */
  scratch(bytes: number, op = "gemm"): number {
    if (bytes <= this.#scratchBytes) return this.#scratchAt;
    if (this.#scratchBytes >= 0) this.heap.release(this.#scratchAt, this.#scratchBytes);
    this.#scratchBytes = -1;
    const at = this.heap.allocate(bytes);
    if (at === null) {
      throw new RangeError(
        `${op}: the operands need ${bytes} bytes of WebAssembly memory beside ` +
          `${this.heap.usedBytes} bytes of tensors, over the 2 GiB limit; use a smaller batch`,
      );
    }
    [this.#scratchAt, this.#scratchBytes] = [at, bytes];
    return at;
  }

  /** Whether `array` lives in this engine's memory (a tensor of the heap: used in place). */
  holds(array: TypedArray): boolean {
    return heapOf(array) === this.heap;
  }

  /**
   * An array of `length` 4-byte elements in this engine's memory, for a tensor, or null:
   * without a shared memory, or when tensors already fill their share of it (heap.ts). Zeroed
   * unless `zeroed` is false (a kernel's output that it writes in full).
   */
  allocateTensor(
    dtype: "float32" | "int32",
    length: number,
    zeroed = true,
  ): Float32Array | Int32Array | null {
    if (!this.shared) return null;
    const at = this.heap.allocate(4 * length, TENSOR_SHARE * this.heap.limitBytes);
    if (at === null) return null;
    const buffer = this.heap.buffer();
    const array = dtype === "int32"
      ? new Int32Array(buffer, at, length)
      : new Float32Array(buffer, at, length);
    return zeroed ? array.fill(0) : array;
  }

  /** Gives back the block of a tensor from {@link allocateTensor}. */
  releaseTensor(array: Float32Array | Int32Array): void {
    this.heap.release(array.byteOffset, array.byteLength);
  }

  /** C (+)= op(A)·op(B) with the arguments already checked by tensor/ops/gemm.ts. */
  gemm(args: GemmArgs): void {
    const { m, n, k, c, cOffset, ldc, accumulate } = args;
    if (m === 0 || n === 0) return;
    if (k === 0) {
      if (!accumulate) {
        for (let i = 0; i < m; i++) c.fill(0, cOffset + i * ldc, cOffset + i * ldc + n);
      }
      return;
    }
    if (m === 1 || n === 1) return this.#gemv(args);
    const { transA, transB, a, aOffset, lda, b, bOffset, ldb } = args;
    // A few rows of C (linear with a small batch): packing B would cost more than it saves.
    if (m <= SKINNY_ROWS && transB) return this.#skinnyDot(args);
    const unpackedB = m <= SKINNY_ROWS;
    const { mr, nr } = TILE[this.tier];
    const mc = mcOf(this.tier);
    const aSpan = ((transA ? k : m) - 1) * lda + (transA ? m : k);
    const bSpan = ((transB ? n : k) - 1) * ldb + (transB ? k : n);
    const cSpan = (m - 1) * ldc + n;
    const mPad = Math.ceil(m / mr) * mr, nPad = Math.ceil(n / nr) * nr;
    const { at, finish } = placeOperands(this, "gemm", {
      a: { read: a, offset: aOffset, length: aSpan },
      b: { read: b, offset: bOffset, length: bSpan },
      // C between its rows (ldc > n) is not C's: copied in with it, so copied out unchanged.
      c: accumulate || ldc !== n
        ? { update: c, offset: cOffset, length: cSpan }
        : { write: c, offset: cOffset, length: cSpan },
      packedA: mPad * k,
      packedB: unpackedB ? 0 : nPad * k,
    });
    const job = new Int32Array(JOB_WORDS);
    const kBlocks = Math.ceil(k / KC), rowBlocks = Math.ceil(m / mc);
    job[HEADER.kind] = KINDS.gemm;
    job[HEADER.barrier] = 2 * kBlocks;
    job[HEADER.total] = 2 * kBlocks + rowBlocks * Math.ceil(n / NC);
    const values: Record<keyof typeof J, number> = {
      m,
      n,
      k,
      transA: transA ? 1 : 0,
      transB: transB ? 1 : 0,
      a: at.a,
      lda,
      b: at.b,
      ldb,
      c: at.c,
      ldc,
      accumulate: accumulate ? 1 : 0,
      packedA: at.packedA,
      packedB: at.packedB,
      mPad,
      nPad,
      kBlocks,
      rowBlocks,
      mc,
      unpackedB: unpackedB ? 1 : 0,
    };
    setWords(job, J, values);

    this.run(job, 2 * m * n * k);
    finish();
  }

  /**
   * Runs every task of `job` (a descriptor, tasks.ts): shared with the workers when the job
   * has `flops` enough and more than one task, else here. Throws if a task failed.
   */
  run(job: Int32Array, flops: number): void {
    const total = job[HEADER.total];
    // The claim word counts tasks in 20 bits (tasks.ts): a larger job stays on this thread.
    const split = this.threads > 1 && flops >= PARALLEL_MIN_FLOPS && total > 1 &&
      total < TASK_MASK;
    if (split && this.#stayHome > 0) this.#stayHome--;
    else if (split) {
      this.#ensureWorkers();
      // Publish the job: descriptor, counters, then the claim word and the generation.
      const control = this.#control;
      this.#job.set(job);
      Atomics.store(control, FAILED, 0);
      Atomics.store(control, DONE, 0);
      const generation = Atomics.load(control, GENERATION) + 1;
      Atomics.store(control, NEXT, claimWord(generation, 0));
      Atomics.store(control, GENERATION, generation);
      Atomics.notify(control, GENERATION);
      const started = performance.now();
      workOnTasks(this.#runTask, control, job, generation, 0);
      const worked = performance.now();
      waitAtLeast(control, DONE, total);
      Atomics.store(control, NEXT, claimWord(generation, TASK_MASK)); // closed
      this.#noteWait(worked - started, performance.now() - worked);
      if (Atomics.load(control, FAILED)) throw new Error("cpu kernels: a task failed");
      return;
    }
    for (let t = 0; t < total; t++) runTask(this.kernels, job, t, 0);
  }

  /**
   * Backs off when the workers cost more than they give: a job whose end this thread waited for
   * longer than it worked had a worker preempted mid-task (another program holds its core).
   * After {@link BACKOFF_STRIKES} such jobs in a row, the next {@link BACKOFF_JOBS} jobs run here
   * alone, then the workers are tried again. The tasks, and so the results, do not change.
   */
  #noteWait(workedMs: number, waitedMs: number): void {
    if (!backoff) return;
    // A preempted worker costs a scheduler time slice (milliseconds); a late wake-up does not.
    if (waitedMs <= Math.max(workedMs, 1)) {
      this.#strikes = 0;
      return;
    }
    if (++this.#strikes >= BACKOFF_STRIKES) {
      this.#strikes = 0;
      this.#stayHome = BACKOFF_JOBS;
    }
  }

  #runTask = (job: Int32Array, t: number, thread: number) => runTask(this.kernels, job, t, thread);

  /**
   * C (+)= op(A)·Bᵀ with m ≤ SKINNY_ROWS: dot products of A's rows (gathered contiguously)
   * with B's rows, B copied as it is stored and read once.
   */
  #skinnyDot(args: GemmArgs): void {
    const { transA, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc } = args;
    const bSpan = (n - 1) * ldb + k, cSpan = (m - 1) * ldc + n;
    const { at, finish } = placeOperands(this, "gemm", {
      // A's rows are read at stride lda; a transposed A is gathered into rows of k.
      a: transA ? m * k : { read: a, offset: aOffset, length: (m - 1) * lda + k },
      b: { read: b, offset: bOffset, length: bSpan },
      c: args.accumulate || ldc !== n
        ? { update: c, offset: cOffset, length: cSpan }
        : { write: c, offset: cOffset, length: cSpan },
    });
    if (transA) {
      const rows = new Float32Array(this.memory.buffer, at.a, m * k);
      for (let i = 0; i < m; i++) {
        for (let p = 0; p < k; p++) rows[i * k + p] = a[aOffset + p * lda + i];
      }
    }
    const job = newJob(KINDS.skinny, Math.ceil(n / GEMV_ROWS_PER_TASK));
    const words: Record<keyof typeof SKINNY, number> = {
      a: at.a,
      lda: (transA ? k : lda) * 4,
      m,
      w: at.b,
      ldw: ldb * 4,
      n,
      k,
      c: at.c,
      ldc: ldc * 4,
      load: args.accumulate ? 1 : 0,
      perTask: GEMV_ROWS_PER_TASK,
    };
    setWords(job, SKINNY, words);
    this.run(job, 2 * m * n * k);
    finish();
  }

  /**
   * One row of C (m = 1) or one column (n = 1): y = M·x with M = op(B)ᵀ and x = op(A)'s row,
   * or M = op(A) and x = op(B)'s column. M is copied as it is stored; x and y contiguously.
   */
  #gemv(args: GemmArgs): void {
    const { transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc } = args;
    const byRow = m === 1;
    const rows = byRow ? n : m; // outputs
    const matrix = byRow ? b : a, matrixOffset = byRow ? bOffset : aOffset;
    const ld = byRow ? ldb : lda;
    // M(i, p) contiguous along p ("dot") when op(B) is transposed / op(A) is not.
    const dot = byRow ? transB : !transA;
    const span = dot ? (rows - 1) * ld + k : (k - 1) * ld + rows;
    const vector = byRow ? a : b, vectorOffset = byRow ? aOffset : bOffset;
    const vectorStep = byRow ? (transA ? lda : 1) : (transB ? 1 : ldb);
    const yStep = byRow ? 1 : ldc;
    // x is gathered contiguously; y is C's row or, at stride ldc, copied through scratch.
    const { at, finish } = placeOperands(this, "gemm", {
      matrix: { read: matrix, offset: matrixOffset, length: span },
      x: k,
      y: yStep !== 1
        ? rows
        : args.accumulate
        ? { update: c, offset: cOffset, length: rows }
        : { write: c, offset: cOffset, length: rows },
    });
    const x = new Float32Array(this.memory.buffer, at.x, k);
    for (let p = 0; p < k; p++) x[p] = vector[vectorOffset + p * vectorStep];
    const y = new Float32Array(this.memory.buffer, at.y, rows);
    if (yStep !== 1 && args.accumulate) {
      for (let i = 0; i < rows; i++) y[i] = c[cOffset + i * yStep];
    }
    const perTask = GEMV_ROWS_PER_TASK;
    const job = newJob(KINDS.gemv, Math.ceil(rows / perTask));
    const words: Record<keyof typeof GEMV, number> = {
      dot: dot ? 1 : 0,
      m: at.matrix,
      ld,
      rows,
      k,
      x: at.x,
      y: at.y,
      load: args.accumulate ? 1 : 0,
      perTask,
    };
    setWords(job, GEMV, words);
    this.run(job, 2 * rows * k);
    finish();
    if (yStep !== 1) {
      const out = new Float32Array(this.memory.buffer, at.y, rows);
      for (let i = 0; i < rows; i++) c[cOffset + i * yStep] = out[i];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The checked entry point, tiers and threads: which engine gemm uses, and on how many threads.

/**
 * C[m×n] (+)= op(A)[m×k] · op(B)[k×n] with the arguments of {@link gemmReference}, checked
 * the same way (tensor/ops/gemm.ts): float32 on the engine of the current SIMD tier, float64
 * (or float32 with no SIMD engine ready) on the reference loops.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gemm } from "./gemm.ts";
 *
 * // [[1, 2], [3, 4]] · [[5], [6]] = [[17], [39]]
 * const c = new Float32Array(2);
 * gemm({
 *   transA: false, transB: false, m: 2, n: 1, k: 2,
 *   a: new Float32Array([1, 2, 3, 4]), aOffset: 0, lda: 2,
 *   b: new Float32Array([5, 6]), bOffset: 0, ldb: 1, c, cOffset: 0, ldc: 1,
 *   accumulate: false,
 * });
 * assert.deepEqual([...c], [17, 39]);
 * ```
 */
export function gemm(args: GemmArgs<FloatArray>): void {
  checkGemmArgs(args);
  const tier = simdTier();
  const engine = args.a instanceof Float32Array && tier !== null ? engineFor(tier) : null;
  if (engine === null) gemmReference(args);
  else if (args.k <= DEPTH_BLOCK) engine.gemm(args as GemmArgs<Float32Array>);
  else gemmInDepthBlocks(args as GemmArgs<Float32Array>, (block) => engine.gemm(block));
}

/**
 * The longest depth the float32 kernels sum in one call. The wasm kernels keep float32 sums
 * (KC-long blocks added in float32), so a depth growing with the input (a weight gradient over
 * a large batch) would grow a float32 running sum without bound; deeper products are cut into
 * blocks of this depth whose results are added in float64. The error is then bounded by
 * DEPTH_BLOCK·2^-24 ≈ 2.4e-4 relative to Σ|products| whatever the depth (the reference,
 * summing in float64, by k·2^-53 plus the final rounding).
 */
export const DEPTH_BLOCK = 4096;

/** C (+)= op(A)·op(B) as a float64 sum of products over depth blocks of {@link DEPTH_BLOCK}. */
function gemmInDepthBlocks(
  args: GemmArgs<Float32Array>,
  run: (block: GemmArgs<Float32Array>) => void,
): void {
  const { m, n, k, c, cOffset, ldc } = args;
  const total = new Float64Array(m * n);
  if (args.accumulate) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) total[i * n + j] = c[cOffset + i * ldc + j];
    }
  }
  const part = new Float32Array(m * n);
  const aDepthStep = args.transA ? args.lda : 1, bDepthStep = args.transB ? 1 : args.ldb;
  for (let p0 = 0; p0 < k; p0 += DEPTH_BLOCK) {
    run({
      ...args,
      k: Math.min(DEPTH_BLOCK, k - p0),
      aOffset: args.aOffset + p0 * aDepthStep,
      bOffset: args.bOffset + p0 * bDepthStep,
      c: part,
      cOffset: 0,
      ldc: n,
      accumulate: false,
    });
    for (let i = 0; i < total.length; i++) total[i] += part[i];
  }
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) c[cOffset + i * ldc + j] = total[i * n + j];
  }
}

let detected: SimdTier | null | undefined;
let forced: SimdTier | null = null;
const engines = new Map<SimdTier, GemmEngine>();
let wantedThreads = defaultThreads();
let workerUrl: URL | string = DEFAULT_WORKER_URL;

/** The best SIMD tier this engine compiles: relaxed SIMD, else SIMD, else null (none). */
export function bestSimdTier(): SimdTier | null {
  if (detected === undefined) {
    const simd = typeof WebAssembly === "object" && simdSupportedHere();
    detected = !simd ? null : relaxedSupportedHere() ? "relaxed-simd" : "simd";
  }
  return detected;
}

function simdSupportedHere(): boolean {
  return WebAssembly.validate(gemmModuleBytes("simd", false));
}

function relaxedSupportedHere(): boolean {
  return WebAssembly.validate(gemmModuleBytes("relaxed-simd", false));
}

/**
 * The SIMD tier the cpu device's float32 kernels use now; null where the engine compiles no
 * SIMD, and the cpu device then runs the reference kernels of tensor/ops/.
 */
export function simdTier(): SimdTier | null {
  return forced ?? bestSimdTier();
}

/**
 * Chooses the tier ("auto" returns to the best one); the cpu device's `simd` setting (see
 * cpu/mod.ts). Tests use it to prove each tier against the reference; a tier this engine
 * cannot compile throws.
 */
export function setSimdTier(tier: SimdTier | "auto"): void {
  if (tier === "auto") {
    forced = null;
    return;
  }
  const order: (SimdTier | null)[] = [null, "simd", "relaxed-simd"];
  if (tier !== "simd" && tier !== "relaxed-simd") {
    throw new RangeError(
      `setCpuOptions: simd must be one of auto, simd, relaxed-simd; got ${tier}`,
    );
  }
  if (order.indexOf(tier) > order.indexOf(bestSimdTier())) {
    throw new RangeError(
      `setCpuOptions: this engine cannot compile ${tier} WebAssembly (best: ${
        bestSimdTier() ?? "no SIMD"
      })`,
    );
  }
  forced = tier;
}

/** Tiers whose module is being compiled asynchronously (see {@link engineFor}). */
const compiling = new Set<SimdTier>();

/**
 * The engine of a SIMD tier, compiled on first use; null while it compiles in the background.
 * Browsers refuse to compile modules over 4 KiB synchronously on their main thread (a
 * RangeError); there the module is compiled asynchronously and gemm uses the reference until
 * it is ready. `await` {@link prepareGemm} to have it ready from the first call.
 */
export function engineFor(tier: SimdTier): GemmEngine | null {
  const engine = engines.get(tier);
  if (engine !== undefined) return engine;
  if (compiling.has(tier)) return null;
  try {
    const created = new GemmEngine(tier);
    engines.set(tier, created);
    return created;
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    void prepareGemm(tier);
    return null;
  }
}

/** Compiles the tier's module asynchronously (a no-op once compiled, or without SIMD). */
export async function prepareGemm(tier: SimdTier | null = simdTier()): Promise<void> {
  if (tier === null || engines.has(tier) || compiling.has(tier)) return;
  compiling.add(tier);
  try {
    engines.set(tier, new GemmEngine(tier, await compileGemmModule(tier)));
  } finally {
    compiling.delete(tier);
  }
}

/**
 * The default thread count: every core (navigator.hardwareConcurrency, at most MAX_THREADS)
 * where SharedArrayBuffer exists (Deno; a cross-origin-isolated page), else 1.
 */
export function defaultThreads(): number {
  if (typeof SharedArrayBuffer !== "function") return 1;
  const cores = typeof navigator === "object" ? navigator.hardwareConcurrency ?? 1 : 1;
  return Math.max(1, Math.min(MAX_THREADS, Math.floor(cores)));
}

/**
 * Sets the number of threads the cpu device's kernels run on (1 .. MAX_THREADS, or "auto"
 * for {@link defaultThreads}); the cpu device's `threads` setting (see cpu/mod.ts). Resolves
 * once the workers have started, so a worker that cannot start (a bundle without the worker
 * script, a page that is not cross-origin isolated) is reported here. Without
 * SharedArrayBuffer the kernels stay on one thread ({@link getThreads} says 1). Idle workers
 * end by themselves, so a program ends when its work does.
 *
 * `options.workerUrl` is where the worker's script is, for code bundled for a browser, where
 * `gemm_worker.ts` is not beside the bundle: bundle `cpu/kernels/gemm_worker.ts` too and pass
 * its URL (the web page does). The page must be cross-origin isolated for SharedArrayBuffer.
 */
export async function setThreads(
  threads: number | "auto",
  options: { workerUrl?: URL | string } = {},
): Promise<void> {
  const count = threadCount(threads);
  wantedThreads = count;
  if (options.workerUrl !== undefined) workerUrl = options.workerUrl;
  for (const engine of engines.values()) engine.setThreads(count);
  const tier = simdTier();
  if (tier === null || count === 1) return;
  await prepareGemm(tier);
  await engineFor(tier)?.startWorkers(workerUrl);
}

/** The thread count `threads` asks for; throws naming the setting when it is not one. */
export function threadCount(threads: number | "auto"): number {
  const count = threads === "auto" ? defaultThreads() : threads;
  if (!Number.isInteger(count) || count < 1 || count > MAX_THREADS) {
    throw new RangeError(
      `setCpuOptions: threads must be "auto" or an integer from 1 to ${MAX_THREADS}, got ${threads}`,
    );
  }
  return count;
}

/** Threads the cpu device's kernels run on now (1 without SharedArrayBuffer). */
export function getThreads(): number {
  const tier = simdTier();
  if (tier === null) return 1;
  const engine = engines.get(tier);
  if (engine !== undefined) return engine.threads;
  return canShare() ? wantedThreads : 1;
}

/** Whether a shared WebAssembly.Memory can be created here. */
function canShare(): boolean {
  return newMemory().shared;
}

/** Stops every worker and returns to one thread. Safe to call twice. */
export function shutdownThreads(): void {
  wantedThreads = 1;
  for (const engine of engines.values()) engine.setThreads(1);
}
