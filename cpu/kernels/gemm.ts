/**
 * The fast float32 gemm: the WebAssembly of gemm_kernels.ts driven from TypeScript, on one or
 * two threads. tensor/ops/gemm.ts holds the reference loops; {@link gemm} at the end of this
 * file sends float32 products to {@link GemmEngine.gemm} when the JavaScript engine compiles
 * SIMD, and everything else to the reference. Every result here is proven against that
 * reference in tests/cpu/gemm.test.ts.
 *
 * One call: copy the operands into the module's memory (Float32Array.set), pack op(A) and
 * op(B) into panels (wasm), run the macro kernel over blocks of C (wasm), copy C back. The work
 * is a list of tasks (gemm_tasks.ts): 2 packing tasks per k-block, then one task per MC × NC
 * block of C. Products with one row or one column skip packing and use the matrix-vector kernels; with
 * at most 8 rows, B is read in place (or, transposed, as rows for dot products): packing the big
 * operand would cost more than the few rows of C reuse it. The copies are the price of tensors
 * living in ordinary ArrayBuffers; bench/gemm_bench.ts prints their share of each product.
 *
 * ## Threads
 *
 * With {@link setThreads}(2) a worker shares the module's memory (a shared
 * `WebAssembly.Memory`) and both threads claim tasks from one atomic counter, so a worker whose
 * core is busy elsewhere simply takes fewer tasks. The backend's kernels are synchronous, so
 * the main thread cannot yield while the product runs; instead it never idles while work is
 * left: it computes tasks itself and only waits for the worker's last task in flight (at most
 * one MC × NC block), and it never waits for a worker that has not woken up
 * (unclaimed tasks are done by the main thread). Each element of C is computed by one thread in
 * the same order as on one thread, so two threads give bit-identical results.
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
import {
  claimWord,
  CONTROL_BYTES,
  DONE,
  FAILED,
  GENERATION,
  J,
  JOB,
  JOB_WORDS,
  KC,
  mcOf,
  NC,
  NEXT,
  runTask,
  STOP,
  TASK_MASK,
  waitAtLeast,
  workOnTasks,
} from "./gemm_tasks.ts";

import {
  checkGemmArgs,
  type FloatArray,
  type GemmArgs,
  gemmReference,
} from "../../tensor/ops/gemm.ts";

export type { FloatArray, GemmArgs, SimdTier };

/** C with at most this many rows reads B in place instead of packing it (see gemm). */
const SKINNY_ROWS = 8;

/** Where the gemm worker's module is: beside this file (a bundle passes its own, see setThreads). */
const DEFAULT_WORKER_URL = new URL("./gemm_worker.ts", import.meta.url);

/** Products below this many flops stay on one thread (waking the worker costs more than they save). */
const PARALLEL_MIN_FLOPS = 2 ** 23;

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
export async function compileGemmModule(tier: SimdTier): Promise<WebAssembly.Module> {
  const shared = newMemory().shared;
  return await WebAssembly.compile(gemmModuleBytes(tier, shared));
}

/** Byte size rounded up to a 64-byte cache line. */
const line = (bytes: number) => Math.ceil(bytes / 64) * 64;

/**
 * Copies of operands into WebAssembly memory and of C out: milliseconds and bytes since the
 * last reset, and the milliseconds of the latest call alone (benchmarks report them).
 */
export const copyStats = { ms: 0, bytes: 0, lastMs: 0 };

/**
 * One compiled gemm module with its memory (shared when the platform allows it) and,
 * optionally, one worker on the same memory.
 */
export class GemmEngine {
  readonly tier: SimdTier;
  readonly memory: WebAssembly.Memory;
  readonly shared: boolean;
  readonly module: WebAssembly.Module;
  readonly exports: GemmExports;
  #worker: Worker | null = null;
  #control: Int32Array;
  #job: Int32Array;

  /**
   * Compiles (or takes, from {@link compileGemmModule}) the tier's module and creates its
   * memory: shared when the platform allows it, else an ordinary one.
   */
  constructor(tier: SimdTier, compiled?: WebAssembly.Module) {
    this.tier = tier;
    const { memory, shared } = newMemory();
    this.memory = memory;
    this.shared = shared;
    this.module = compiled ?? new WebAssembly.Module(gemmModuleBytes(tier, shared));
    const instance = new WebAssembly.Instance(this.module, { env: { memory } });
    this.exports = instance.exports as unknown as GemmExports;
    this.#control = new Int32Array(memory.buffer, 0, JOB);
    this.#job = new Int32Array(memory.buffer, JOB * 4, JOB_WORDS);
  }

  /** 2 while a worker shares this engine's memory, else 1. */
  get threads(): 1 | 2 {
    return this.#worker === null ? 1 : 2;
  }

  /**
   * Starts the worker (no-op without shared memory, or when already running) from `url`, by
   * default `gemm_worker.ts` beside this file.
   */
  async startWorker(url: URL | string = DEFAULT_WORKER_URL): Promise<void> {
    if (!this.shared || this.#worker !== null) return;
    const worker = new Worker(url, { type: "module" });
    const ready = new Promise<void>((resolve, reject) => {
      worker.onmessage = () => resolve();
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`setThreads: the gemm worker failed to start: ${event.message}`));
      };
    });
    Atomics.store(this.#control, STOP, 0);
    worker.postMessage({ module: this.module, memory: this.memory });
    try {
      await ready;
    } catch (error) {
      worker.terminate();
      throw error;
    }
    worker.onmessage = null;
    this.#worker = worker;
  }

  /** Stops the worker, if any. */
  stopWorker(): void {
    if (this.#worker === null) return;
    Atomics.store(this.#control, STOP, 1);
    Atomics.add(this.#control, GENERATION, 1);
    Atomics.notify(this.#control, GENERATION);
    this.#worker.terminate();
    this.#worker = null;
  }

  /** Grows the memory to at least `bytes`; returns a fresh Float32Array view of all of it. */
  #reserve(bytes: number): Float32Array {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) {
      const pages = Math.ceil((bytes - have) / 65536);
      if (have / 65536 + pages > MAX_PAGES) {
        throw new RangeError(
          `gemm: the operands need ${bytes} bytes of WebAssembly memory, over the 2 GiB limit; ` +
            "split the product into smaller ones",
        );
      }
      this.memory.grow(pages);
    }
    return new Float32Array(this.memory.buffer);
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
    // 32 spare bytes after B and C: edge tiles load whole vectors past their last column.
    const aAt = CONTROL_BYTES, bAt = aAt + line(aSpan * 4), cAt = bAt + line(bSpan * 4 + 32);
    const packedA = cAt + line(cSpan * 4 + 32), packedB = packedA + line(mPad * k * 4);
    const heap = this.#reserve(packedB + (unpackedB ? 0 : nPad * k * 4));
    const started = performance.now();
    heap.set(a.subarray(aOffset, aOffset + aSpan), aAt / 4);
    heap.set(b.subarray(bOffset, bOffset + bSpan), bAt / 4);
    if (accumulate) heap.set(c.subarray(cOffset, cOffset + cSpan), cAt / 4);
    const copied = performance.now();

    const job = new Int32Array(JOB_WORDS);
    const kBlocks = Math.ceil(k / KC), rowBlocks = Math.ceil(m / mc);
    const values: Record<keyof typeof J, number> = {
      m,
      n,
      k,
      transA: transA ? 1 : 0,
      transB: transB ? 1 : 0,
      a: aAt,
      lda,
      b: bAt,
      ldb,
      c: cAt,
      ldc,
      accumulate: accumulate ? 1 : 0,
      packedA,
      packedB,
      mPad,
      nPad,
      packTasks: 2 * kBlocks,
      kBlocks,
      rowBlocks,
      total: 2 * kBlocks + rowBlocks * Math.ceil(n / NC),
      mc,
      unpackedB: unpackedB ? 1 : 0,
    };
    for (const key in values) job[J[key as keyof typeof J]] = values[key as keyof typeof J];

    this.#runJob(job, values.total, 2 * m * n * k);

    const computed = performance.now();
    const out = new Float32Array(this.memory.buffer, cAt, cSpan);
    if (ldc === n) c.set(out, cOffset);
    else for (let i = 0; i < m; i++) c.set(out.subarray(i * ldc, i * ldc + n), cOffset + i * ldc);
    const done = performance.now();
    copyStats.lastMs = copied - started + done - computed;
    copyStats.ms += copyStats.lastMs;
    copyStats.bytes += (aSpan + bSpan + (accumulate ? 2 : 1) * cSpan) * 4;
  }

  /** Runs the job's `total` tasks: shared with the worker when big enough, else here. */
  #runJob(job: Int32Array, total: number, flops: number): void {
    if (this.#worker !== null && flops >= PARALLEL_MIN_FLOPS) {
      // Publish the job: descriptor, counters, then the claim word and the generation.
      const control = this.#control;
      this.#job.set(job);
      Atomics.store(control, FAILED, 0);
      Atomics.store(control, DONE, 0);
      const generation = Atomics.load(control, GENERATION) + 1;
      Atomics.store(control, NEXT, claimWord(generation, 0));
      Atomics.store(control, GENERATION, generation);
      Atomics.notify(control, GENERATION);
      workOnTasks(this.exports, control, job, generation);
      waitAtLeast(control, DONE, total);
      Atomics.store(control, NEXT, claimWord(generation, TASK_MASK)); // closed
      if (Atomics.load(control, FAILED)) throw new Error("gemm: a task failed on the worker");
    } else {
      for (let t = 0; t < total; t++) runTask(this.exports, job, t);
    }
  }

  /**
   * C (+)= op(A)·Bᵀ with m ≤ SKINNY_ROWS: dot products of A's rows (gathered contiguously)
   * with B's rows, B copied as it is stored and read once.
   */
  #skinnyDot(args: GemmArgs): void {
    const { transA, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc } = args;
    const bSpan = (n - 1) * ldb + k, cSpan = (m - 1) * ldc + n;
    const aAt = CONTROL_BYTES, bAt = aAt + line(m * k * 4), cAt = bAt + line(bSpan * 4);
    const heap = this.#reserve(cAt + cSpan * 4);
    const started = performance.now();
    for (let i = 0; i < m; i++) {
      const row = aAt / 4 + i * k;
      if (!transA) heap.set(a.subarray(aOffset + i * lda, aOffset + i * lda + k), row);
      else for (let p = 0; p < k; p++) heap[row + p] = a[aOffset + p * lda + i];
    }
    heap.set(b.subarray(bOffset, bOffset + bSpan), bAt / 4);
    if (args.accumulate) heap.set(c.subarray(cOffset, cOffset + cSpan), cAt / 4);
    const copied = performance.now();
    const load = args.accumulate ? 1 : 0;
    this.exports.skinnyDot(aAt, k * 4, m, bAt, ldb * 4, n, k, cAt, ldc * 4, load);
    const computed = performance.now();
    const out = new Float32Array(this.memory.buffer, cAt, cSpan);
    for (let i = 0; i < m; i++) c.set(out.subarray(i * ldc, i * ldc + n), cOffset + i * ldc);
    copyStats.lastMs = copied - started + performance.now() - computed;
    copyStats.ms += copyStats.lastMs;
    copyStats.bytes += (m * k + bSpan + (args.accumulate ? 2 : 1) * cSpan) * 4;
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
    const mAt = CONTROL_BYTES, xAt = mAt + line(span * 4), yAt = xAt + line(k * 4);
    const heap = this.#reserve(yAt + rows * 4);
    const started = performance.now();
    heap.set(matrix.subarray(matrixOffset, matrixOffset + span), mAt / 4);
    for (let p = 0; p < k; p++) heap[xAt / 4 + p] = vector[vectorOffset + p * vectorStep];
    if (args.accumulate) {
      for (let i = 0; i < rows; i++) heap[yAt / 4 + i] = c[cOffset + i * yStep];
    }
    const copied = performance.now();
    const gemv = dot ? this.exports.gemvDot : this.exports.gemvAxpy;
    gemv(mAt, ld * 4, rows, k, xAt, yAt, args.accumulate ? 1 : 0);
    const computed = performance.now();
    const y = new Float32Array(this.memory.buffer, yAt, rows);
    if (yStep === 1) c.set(y, cOffset);
    else for (let i = 0; i < rows; i++) c[cOffset + i * yStep] = y[i];
    copyStats.lastMs = copied - started + performance.now() - computed;
    copyStats.ms += copyStats.lastMs;
    copyStats.bytes += (span + k + (args.accumulate ? 2 : 1) * rows) * 4;
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
let wantedThreads: 1 | 2 = 1;
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
  if (wantedThreads === 2) void engineFor(tier)?.startWorker(workerUrl);
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
 * Uses 1 thread (the default) or 2: the main thread and a worker on the kernels' shared
 * memory; the cpu device's `threads` setting (see cpu/mod.ts). Asynchronous because a worker
 * must finish starting before it can take work. Where SharedArrayBuffer is missing it resolves
 * and gemm stays on one thread ({@link getThreads} says 1). A live worker keeps a Deno process
 * running: call {@link shutdownThreads} (or setThreads(1)) when done. One thread is the default
 * for that reason.
 *
 * `options.workerUrl` is where the worker's script is, for code bundled for a browser, where
 * `gemm_worker.ts` is not beside the bundle: bundle `cpu/kernels/gemm_worker.ts` too and pass
 * its URL (the web page does). The page must be cross-origin isolated for SharedArrayBuffer.
 */
export async function setThreads(
  threads: 1 | 2,
  options: { workerUrl?: URL | string } = {},
): Promise<void> {
  if (threads !== 1 && threads !== 2) {
    throw new RangeError(`setCpuOptions: threads must be 1 or 2, got ${threads}`);
  }
  wantedThreads = threads;
  if (options.workerUrl !== undefined) workerUrl = options.workerUrl;
  if (threads === 1) return shutdownThreads();
  const tier = simdTier();
  if (tier === null) return;
  await prepareGemm(tier);
  await engineFor(tier)?.startWorker(workerUrl);
}

/** Threads float32 gemm runs on now: 2 only after setThreads(2) and with shared memory. */
export function getThreads(): 1 | 2 {
  const tier = simdTier();
  return tier === null ? 1 : engines.get(tier)?.threads ?? 1;
}

/** Stops every gemm worker and returns to one thread. Safe to call twice. */
export function shutdownThreads(): void {
  wantedThreads = 1;
  for (const engine of engines.values()) engine.stopWorker();
}
