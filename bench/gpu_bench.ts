/**
 * CPU vs GPU, side by side: matmul GFLOP/s at n = 512, 1024, 2048 and per-op timings of the
 * dense kernels. GPU times include a flush and `onSubmittedWorkDone`, i.e. the work really
 * ran, not just its recording. Run:
 *
 *     XDG_RUNTIME_DIR=$(mktemp -d) deno run --allow-read --allow-env bench/gpu_bench.ts
 *
 * The exported functions let other benchmarks add rows (conv layers, a full training step).
 *
 * @module
 */

import { cpuBackend } from "../cpu/mod.ts";
import type { Backend, MatmulParams, Storage } from "../backend/backend.ts";
import { initWebGPU } from "../gpu/mod.ts";
import type { GpuBackend } from "../gpu/backend.ts";
import { matmulPathFor } from "../gpu/kernels/matmul.ts";
import { randomFloat32 } from "./random.ts";

/** One benchmark row. */
export interface BenchRow {
  /** What was measured. */
  name: string;
  /** Median milliseconds on the CPU backend (NaN if not run). */
  cpuMs: number;
  /** Median milliseconds on the GPU backend, submitted work included. */
  gpuMs: number;
  /** Floating-point operations of one run (0 when not meaningful). */
  flops: number;
}

/** Median wall time in ms of `run` after one warm-up; `finish` waits for the device. */
export async function time(
  run: () => void,
  finish: () => Promise<void>,
  repeats: number,
): Promise<number> {
  run();
  await finish();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    run();
    await finish();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Times `op(backend)` on the CPU and the GPU, freeing its output each time. */
export async function compareOp(
  name: string,
  gpu: GpuBackend,
  op: (backend: Backend) => Storage,
  options: { flops?: number; repeats?: number; cpuRepeats?: number } = {},
): Promise<BenchRow> {
  const repeats = options.repeats ?? 5;
  const runOn = (backend: Backend) => () => backend.free(op(backend));
  const cpuRepeats = options.cpuRepeats ?? repeats;
  const cpuMs = cpuRepeats > 0
    ? await time(runOn(cpuBackend), () => Promise.resolve(), cpuRepeats)
    : NaN;
  const gpuMs = await time(runOn(gpu), () => gpu.runtime.sync(), repeats);
  return { name, cpuMs, gpuMs, flops: options.flops ?? 0 };
}

/** Random float32 values on both backends. */
export function inputs(gpu: GpuBackend, length: number, seed = 1): { cpu: Storage; gpu: Storage } {
  const data = randomFloat32(length, seed);
  return { cpu: cpuBackend.fromArray(data), gpu: gpu.fromArray(data) };
}

/** Prints rows as a Markdown table. */
export function printRows(rows: readonly BenchRow[]): void {
  const gflops = (
    flops: number,
    ms: number,
  ) => (flops && Number.isFinite(ms) ? (flops / ms / 1e6).toFixed(2) : "");
  console.log("| op | CPU ms | GPU ms | CPU GFLOP/s | GPU GFLOP/s | GPU speedup |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    const speedup = Number.isFinite(r.cpuMs) ? (r.cpuMs / r.gpuMs).toFixed(2) + "x" : "";
    console.log(
      `| ${r.name} | ${Number.isFinite(r.cpuMs) ? r.cpuMs.toFixed(2) : "-"} | ${
        r.gpuMs.toFixed(2)
      } | ` +
        `${gflops(r.flops, r.cpuMs)} | ${gflops(r.flops, r.gpuMs)} | ${speedup} |`,
    );
  }
}

/** The matmul rows: n x n times n x n at 512, 1024, 2048 (the CPU runs 2048 once). */
export async function matmulRows(gpu: GpuBackend, sizes = [512, 1024, 2048]): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const n of sizes) {
    const a = inputs(gpu, n * n, 1), b = inputs(gpu, n * n, 2);
    const p: MatmulParams = {
      batch: 1,
      m: n,
      k: n,
      n,
      transA: false,
      transB: false,
      strideA: 0,
      strideB: 0,
    };
    const big = n >= 2048;
    rows.push(
      await compareOp(
        `matmul ${n} (${matmulPathFor(gpu.runtime)})`,
        gpu,
        (be) => be.matmul(be === gpu ? a.gpu : a.cpu, be === gpu ? b.gpu : b.cpu, p),
        {
          flops: 2 * n * n * n,
          repeats: big ? 2 : 5,
          cpuRepeats: big ? 1 : 3,
        },
      ),
    );
  }
  return rows;
}

/** Per-op rows for the dense kernels at AlexNet-like sizes. */
export async function denseRows(gpu: GpuBackend): Promise<BenchRow[]> {
  const n = 128 * 4096; // an fc activation of batch 128
  const x = inputs(gpu, n), y = inputs(gpu, n, 3);
  const logits = inputs(gpu, 128 * 1000);
  const pick = (be: Backend, s: { cpu: Storage; gpu: Storage }) => (be === gpu ? s.gpu : s.cpu);
  const fc = {
    batch: 1,
    m: 128,
    k: 9216,
    n: 4096,
    transA: false,
    transB: true,
    strideA: 0,
    strideB: 0,
  };
  const fcX = inputs(gpu, 128 * 9216, 4), fcW = inputs(gpu, 4096 * 9216, 5);
  return [
    await compareOp("relu [128, 4096]", gpu, (be) => be.unary("relu", pick(be, x))),
    await compareOp(
      "add [128, 4096]",
      gpu,
      (be) => be.binary("add", pick(be, x), [128, 4096], pick(be, y), [128, 4096], [128, 4096]),
    ),
    await compareOp("dropout [128, 4096]", gpu, (be) => be.dropout(pick(be, x), 0.5, 7)),
    await compareOp(
      "sum axis 0 [128, 4096]",
      gpu,
      (be) => be.reduce("sum", pick(be, x), [128, 4096], [0]),
    ),
    await compareOp("softmax [128, 1000]", gpu, (be) => be.softmax(pick(be, logits), 128, 1000)),
    await compareOp(
      "crossEntropy fwd [128, 1000]",
      gpu,
      (be) => be.crossEntropy(pick(be, logits), be.fromArray(new Int32Array(128)), 128, 1000),
    ),
    await compareOp(
      "fc6 x·Wᵀ [128,9216]·[4096,9216]ᵀ",
      gpu,
      (be) => be.matmul(pick(be, fcX), pick(be, fcW), fc),
      {
        flops: 2 * 128 * 9216 * 4096,
        repeats: 2,
        cpuRepeats: 1,
      },
    ),
  ];
}

if (import.meta.main) {
  const gpu = await initWebGPU();
  console.log(
    `adapter: ${
      gpu.runtime.adapterInfo.description || gpu.runtime.adapterInfo.vendor
    } (software: ${gpu.runtime.isSoftware})`,
  );
  const only = Deno.args[0];
  const rows = only === "dense"
    ? await denseRows(gpu)
    : only === "matmul"
    ? await matmulRows(gpu)
    : [...await matmulRows(gpu), ...await denseRows(gpu)];
  printRows(rows);
}
