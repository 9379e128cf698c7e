/**
 * The ceiling of WebAssembly SIMD arithmetic on this machine: how many float32 multiply-adds per
 * second a wasm module can issue at all, on one thread and on every core at once. A kernel's
 * GFLOP/s means little alone; against this ceiling it says how much faster the kernel could
 * still get (none past 100%), and a peer's figure says whether a wasm program could match it.
 *
 * The probe is a loop of {@link CHAINS} independent f32x4 multiply-adds per iteration (`acc =
 * acc·a + b` on each of CHAINS accumulators), enough chains to hide the instruction's latency,
 * nothing loaded from memory: the CPU's SIMD units do nothing but arithmetic. Four lanes times
 * two FLOP (a multiply and an add) make 8 FLOP per instruction. With relaxed SIMD the
 * multiply-add is one `f32x4.relaxed_madd` (a fused FMA on x86 with FMA3), without it an
 * `f32x4.mul` and an `f32x4.add` (the plain-SIMD tier's ceiling). 128 bits is all WebAssembly
 * has: native code on a CPU with AVX2 (256-bit) or AVX-512 issues two or four times the lanes
 * per instruction, so a native library's figure can lie above this ceiling.
 *
 * All threads run the same loop at once (workers started together on a shared barrier): two
 * logical cores that are one physical core's two hyper-threads share its SIMD units, and the
 * all-core figure shows it.
 *
 * Run: `deno run --allow-read bench/roofline.ts` (also the start of the CPU tables of
 * `deno task bench`).
 *
 * @module
 */

import { ModuleBuilder, relaxedSimdSupported, simdSupported } from "../cpu/emitter.ts";

/** Independent multiply-add chains per iteration (latency × issue width, with room to spare). */
export const CHAINS = 12;

/** FLOP per f32x4 multiply-add: four lanes, a multiply and an add each. */
const FLOP_PER_MADD = 8;

/**
 * A module exporting `peak(iterations) -> f32`: {@link CHAINS} accumulators, each updated
 * `iterations` times by `acc·a + b` (a = 0.999, b = 0.001: every value stays near 1, never
 * subnormal), summed at the end so no update is dead code.
 */
export function peakModuleBytes(relaxed: boolean): Uint8Array<ArrayBuffer> {
  const builder = new ModuleBuilder();
  builder.addFunction("peak", { iterations: "i32" }, ["f32"], (f) => {
    const acc = Array.from({ length: CHAINS }, (_, j) => `acc${j}`);
    for (const name of acc) f.local(name, "v128");
    f.local("a", "v128").local("b", "v128").local("i", "i32");
    f.f32Const(0.999).f32x4Splat().set("a");
    f.f32Const(0.001).f32x4Splat().set("b");
    for (const name of acc) f.f32Const(1).f32x4Splat().set(name);
    f.loopWhile(() => f.get("i").get("iterations").i32LtS(), () => {
      for (const name of acc) {
        f.get(name).get("a");
        if (relaxed) f.get("b").f32x4RelaxedMadd();
        else f.f32x4Mul().get("b").f32x4Add();
        f.set(name);
      }
      f.get("i").i32Const(1).i32Add().set("i");
    });
    f.get(acc[0]);
    for (const name of acc.slice(1)) f.get(name).f32x4Add();
    f.f32x4ExtractLane(0);
  });
  return builder.bytes();
}

/** The ceiling on one thread and on `threads` at once, GFLOP/s. */
export interface Ceiling {
  /** "relaxed-simd" (fused multiply-add) or "simd" (multiply, then add). */
  tier: "relaxed-simd" | "simd";
  oneThread: number;
  threads: number;
  allThreads: number;
}

const ITERATIONS = 2_000_000;

/** Best of `reps` timed calls of `peak(ITERATIONS)`, GFLOP/s. */
function bestRate(peak: (iterations: number) => number, reps: number): number {
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const start = performance.now();
    peak(ITERATIONS);
    best = Math.min(best, performance.now() - start);
  }
  return (ITERATIONS * CHAINS * FLOP_PER_MADD) / (best / 1000) / 1e9;
}

// A worker: instantiate, wait at the barrier until all have arrived, time, report.
const WORKER_SOURCE = `
self.onmessage = (event) => {
  const { module, barrier, threads, iterations, reps, flop } = event.data;
  const { peak } = new WebAssembly.Instance(module).exports;
  peak(iterations);
  Atomics.add(barrier, 0, 1);
  while (Atomics.load(barrier, 0) < threads) {}
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const start = performance.now();
    peak(iterations);
    best = Math.min(best, performance.now() - start);
  }
  self.postMessage(flop / (best / 1000) / 1e9);
};`;

/**
 * Measures the ceiling: one thread here, then `threads` workers running the loop at once (their
 * rates summed). Null where WebAssembly SIMD does not compile.
 */
export async function measureCeiling(
  threads = navigator.hardwareConcurrency ?? 1,
  reps = 5,
): Promise<Ceiling | null> {
  if (!simdSupported()) return null;
  const relaxed = relaxedSimdSupported();
  const module = new WebAssembly.Module(peakModuleBytes(relaxed));
  const { peak } = new WebAssembly.Instance(module).exports as { peak: (n: number) => number };
  peak(ITERATIONS); // compiled by the optimizing tier before timing
  const oneThread = bestRate(peak, reps);
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
  const barrier = new Int32Array(new SharedArrayBuffer(4));
  const workers = Array.from({ length: threads }, () => new Worker(url, { type: "module" }));
  try {
    const rates = await Promise.all(
      workers.map((worker) =>
        new Promise<number>((resolve, reject) => {
          worker.onmessage = (event) => resolve(event.data);
          worker.onerror = (event) => {
            event.preventDefault();
            reject(new Error(`roofline: a worker failed: ${event.message}`));
          };
          worker.postMessage({
            module,
            barrier,
            threads,
            iterations: ITERATIONS,
            reps,
            flop: ITERATIONS * CHAINS * FLOP_PER_MADD,
          });
        })
      ),
    );
    const allThreads = rates.reduce((a, b) => a + b, 0);
    return { tier: relaxed ? "relaxed-simd" : "simd", oneThread, threads, allThreads };
  } finally {
    for (const worker of workers) worker.terminate();
    URL.revokeObjectURL(url);
  }
}

if (import.meta.main) {
  const ceiling = await measureCeiling();
  if (ceiling === null) {
    console.log("WebAssembly SIMD does not compile here: no ceiling to measure");
  } else {
    console.log(
      `WebAssembly ${ceiling.tier} ceiling: ${
        ceiling.oneThread.toFixed(1)
      } GFLOP/s on one thread, ` +
        `${ceiling.allThreads.toFixed(1)} GFLOP/s on ${ceiling.threads} threads at once ` +
        `(${CHAINS} independent f32x4 multiply-adds per iteration, nothing loaded)`,
    );
  }
}
