/**
 * How the threads of the cpu device share one kernel call (cpu/kernels/gemm.ts runs the pool,
 * cpu/kernels/gemm_worker.ts is each extra thread). A call is a job: a descriptor of Int32
 * words in the shared WebAssembly memory, whose tasks, numbered 0 .. total−1, are independent
 * blocks of the output. Every thread claims tasks with compare-and-swap on one word and counts
 * finished ones on another; the main thread works too and only waits, at the end, for the
 * tasks in flight on other threads.
 *
 * Bit-identical results for any thread count: a job's tasks are fixed by its shape, never by
 * the number of threads, and each task writes its own elements of the output, summed in the
 * same order whichever thread runs it. Only the scratch space (packed blocks) is per thread.
 *
 * The memory begins with {@link CONTROL_BYTES} of coordination: counters, the descriptor, one
 * "alive" word per worker slot, and 64 bytes of zeros that the conv packers read for taps
 * outside the image.
 *
 * @module
 */

/** Int32 words of the control area: counters at 0-3, the descriptor from JOB, slots from LIVE. */
export const GENERATION = 0, NEXT = 1, DONE = 2, FAILED = 3;
export const JOB = 8, JOB_WORDS = 48, LIVE = 64;
/** Most threads a pool runs (the main thread and MAX_THREADS − 1 workers). */
export const MAX_THREADS = 64;
/** Byte address of 64 bytes of zeros, read in place of taps outside the image. */
export const ZERO_AT = 4 * (LIVE + MAX_THREADS);
/** Bytes at the start of the memory reserved for coordination; kernels' arrays follow. */
export const CONTROL_BYTES = ZERO_AT + 64;

/**
 * The words every descriptor begins with: which kernel (KINDS), how many tasks, the first
 * task that must wait until all tasks before it are done (a packing phase; total if none),
 * and the per-thread scratch: thread t uses scratchBytes bytes from scratch + t·scratchBytes.
 */
export const HEADER = { kind: 0, total: 1, barrier: 2, scratch: 3, scratchBytes: 4 } as const;
/** Descriptor words a kernel may use for itself start here. */
export const BODY = 5;

/** Names the words of a descriptor body, in order from BODY. */
export function bodyWords<const Name extends string>(names: readonly Name[]): Record<Name, number> {
  return Object.fromEntries(names.map((name, i) => [name, BODY + i])) as Record<Name, number>;
}

/** A descriptor with its header: `total` tasks, no barrier, thread scratch as given. */
export function newJob(kind: number, total: number, scratch = 0, scratchBytes = 0): Int32Array {
  const job = new Int32Array(JOB_WORDS);
  job[HEADER.kind] = kind;
  job[HEADER.total] = Math.max(total, 0);
  job[HEADER.barrier] = job[HEADER.total];
  job[HEADER.scratch] = scratch;
  job[HEADER.scratchBytes] = scratchBytes;
  return job;
}

/** Writes `values` into a job's descriptor words, placed as `names` (a bodyWords record) says. */
export function setWords<Name extends string>(
  job: Int32Array,
  names: Record<Name, number>,
  values: Partial<Record<Name, number>>,
): void {
  for (const name in values) job[names[name]] = values[name]!;
}

/** The byte address of `thread`'s scratch in a job (HEADER's scratch and scratchBytes). */
export function threadScratch(job: Int32Array, thread: number): number {
  return job[HEADER.scratch] + thread * job[HEADER.scratchBytes];
}
/** The kernels that run as jobs. */
export const KINDS = {
  gemm: 0,
  convPixels: 1,
  convWeight: 2,
  convPad: 3,
  relu: 4,
  lrn: 5,
  pool: 6,
  gemv: 7,
  skinny: 8,
  sgd: 9,
  binary: 10,
  dropout: 11,
  sumBlocks: 12,
} as const;

/**
 * The claim word control[NEXT]: the job's generation (11 bits) above the next task's number
 * (20 bits). A thread claims a task with compare-and-swap only while the word still carries
 * its job's generation, so a worker that wakes late for a finished job claims nothing, even
 * while the main thread is already writing the next job's descriptor (the main thread closes
 * the word, counter at its maximum, as soon as a job is done).
 */
export const claimWord = (generation: number, task: number) => ((generation & 0x7ff) << 20) | task;
export const TASK_MASK = (1 << 20) - 1;

/** Runs task t of the job described by `job` on thread `thread`. */
export type TaskRunner = (job: Int32Array, t: number, thread: number) => void;

/**
 * Claims and runs tasks of job `generation` (described by `job`, this thread's copy of the
 * descriptor) until none is left: the loop every thread runs. Tasks from the barrier on first
 * wait until every task before the barrier is done (tasks are claimed in order).
 */
export function workOnTasks(
  run: TaskRunner,
  control: Int32Array,
  job: Int32Array,
  generation: number,
  thread: number,
): void {
  const total = job[HEADER.total], barrier = job[HEADER.barrier];
  for (;;) {
    const word = Atomics.load(control, NEXT);
    const t = word & TASK_MASK;
    if (word >>> 20 !== (generation & 0x7ff) || t >= total) return;
    if (Atomics.compareExchange(control, NEXT, word, word + 1) !== word) continue;
    if (t >= barrier) waitAtLeast(control, DONE, barrier);
    try {
      run(job, t, thread);
    } catch (error) {
      Atomics.store(control, FAILED, 1);
      console.error("cpu kernel task failed:", error);
    }
    Atomics.add(control, DONE, 1);
    Atomics.notify(control, DONE);
  }
}

/** Whether this thread may block in Atomics.wait (workers and Deno's main thread may). */
let canBlock = true;

/**
 * Microseconds a waiting thread spins before it sleeps: about a wake-up's latency, so a task
 * that ends soon is not waited for in the kernel, yet short, because on a machine whose cores
 * are taken by other programs the spinning thread holds the core the awaited one needs (200 µs
 * made two threads slower than one there).
 */
export const SPIN_US = 20;

/**
 * Waits until control[index] ≥ target: spins for {@link SPIN_US}, then Atomics.wait where
 * allowed (else keeps spinning).
 */
export function waitAtLeast(control: Int32Array, index: number, target: number): void {
  const spinUntil = performance.now() + SPIN_US / 1000;
  while (performance.now() < spinUntil) {
    if (Atomics.load(control, index) >= target) return;
  }
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
