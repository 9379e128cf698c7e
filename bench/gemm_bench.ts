/**
 * gemm side by side: the TypeScript reference, the WebAssembly kernels on 1 and 2 threads,
 * the GPU backend's matmul, and PyTorch's figures from ../shared/PERF.md as yardsticks. Rows:
 * square matmul (512, 1024, 2048) and the linear layers of AlexNet-mini at batch 128 (forward,
 * dx, dW), batch 1, and the paper's fc6 at batch 8.
 *
 *     deno run --allow-read --allow-env bench/gemm_bench.ts [--quick] [--no-gpu]
 *
 * The machine may be shared: every CPU figure is the best of several runs (the least
 * disturbed), next to the median; "peak now" is a register-only multiply-add loop timed right
 * after each row for as long as the row's best run (at least 1 ms), the most any kernel could
 * reach at that moment. "copy %" is the share of the best one-thread run spent copying
 * operands into WebAssembly memory and C out.
 *
 * @module
 */

import { type GemmArgs, gemmReference } from "../tensor/ops/gemm.ts";
import { bestSimdTier, copyStats, gemm, setThreads } from "../cpu/kernels/gemm.ts";
import { ModuleBuilder, relaxedSimdSupported } from "../cpu/emitter.ts";
import type { GpuBackend } from "../gpu/backend.ts";
import type { MatmulParams } from "../backend/backend.ts";
import { inputs, time } from "./gpu_bench.ts";
import { randomFloat32 } from "./random.ts";

/** PyTorch 1.13 + OpenBLAS sgemm, GFLOP/s on 1 thread (2): ../shared/PERF.md. */
const PYTORCH_SGEMM_1024 = "77 (142)";

interface Shape {
  name: string;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  /** PyTorch yardstick, when PERF.md has one. */
  yardstick?: string;
}

/** Best and median milliseconds of `repeats` runs after `warmups` (V8 tiers wasm up). */
function bestAndMedian(run: () => void, repeats: number, warmups = 2): [number, number] {
  return timeRuns(run, repeats, warmups).slice(0, 2) as [number, number];
}

/** [best ms, median ms, copy ms of the best run] of `repeats` runs after `warmups`. */
function timeRuns(run: () => void, repeats: number, warmups = 2): [number, number, number] {
  for (let i = 0; i < warmups; i++) run();
  const times: number[] = [];
  let bestCopy = 0;
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    run();
    times.push(performance.now() - start);
    if (times.at(-1)! <= Math.min(...times)) bestCopy = copyStats.lastMs;
  }
  times.sort((a, b) => a - b);
  return [times[0], times[Math.floor(times.length / 2)], bestCopy];
}

let peakLoop: ((n: number) => number) | null = null;

/**
 * GFLOP/s of a register-only multiply-add loop (12 independent v128 chains, no memory) run for
 * about `ms` milliseconds, best of `repeats`: the most any kernel could reach at that moment,
 * on a machine whose other tenants take a varying share of the core.
 */
export function fmaPeakNow(ms = 5, repeats = 5): number {
  if (peakLoop === null) {
    const builder = new ModuleBuilder();
    const fused = relaxedSimdSupported();
    builder.addFunction("peak", { n: "i32" }, ["f32"], (f) => {
      for (let i = 0; i < 12; i++) f.local(`acc${i}`, "v128");
      f.local("x", "v128").f32Const(0.999999).f32x4Splat().set("x");
      f.local("y", "v128").f32Const(1e-6).f32x4Splat().set("y");
      f.loop();
      for (let i = 0; i < 12; i++) {
        // acc = acc·x + y: no product is loop-invariant, so none can be hoisted out.
        if (fused) f.get(`acc${i}`).get("x").get("y").f32x4RelaxedMadd().set(`acc${i}`);
        else f.get(`acc${i}`).get("x").f32x4Mul().get("y").f32x4Add().set(`acc${i}`);
      }
      f.get("n").i32Const(1).i32Sub().tee("n").brIf(0);
      f.end();
      f.get("acc0").get("acc11").f32x4Add().f32x4ExtractLane(0);
    });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(builder.bytes()));
    peakLoop = instance.exports.peak as (n: number) => number;
  }
  const loop = peakLoop;
  const flopsPerIteration = 12 * 8;
  // ~50 GFLOP/s at best: iterations that take about `ms` on a free core.
  const iterations = Math.round(Math.max(ms, 1) * 50e6 / flopsPerIteration);
  const [best] = bestAndMedian(() => loop(iterations), repeats, 1);
  return iterations * flopsPerIteration / best / 1e6;
}

function argsFor(s: Shape): GemmArgs {
  const { m, n, k, transA, transB } = s;
  return {
    transA,
    transB,
    m,
    n,
    k,
    a: randomFloat32(m * k, 1),
    aOffset: 0,
    lda: transA ? m : k,
    b: randomFloat32(k * n, 2),
    bOffset: 0,
    ldb: transB ? k : n,
    c: new Float32Array(m * n),
    cOffset: 0,
    ldc: n,
    accumulate: false,
  };
}

const shapes = (quick: boolean): Shape[] => [
  ...(quick ? [512, 1024] : [512, 1024, 2048]).map((n) => ({
    name: `matmul ${n}`,
    m: n,
    n,
    k: n,
    transA: false,
    transB: false,
    yardstick: n === 1024 ? PYTORCH_SGEMM_1024 : undefined,
  })),
  // AlexNet-mini at batch 128: fc6 and fc7 are [128, 256] · [256, 256]ᵀ (28x28 inputs leave
  // 64 x 2 x 2 = 256 features), fc8 maps 256 to 10 classes.
  { name: "mini fc6/7 y = x·Wᵀ", m: 128, n: 256, k: 256, transA: false, transB: true },
  { name: "mini fc6/7 dx = G·W", m: 128, n: 256, k: 256, transA: false, transB: false },
  { name: "mini fc6/7 dW = Gᵀ·x", m: 256, n: 256, k: 128, transA: true, transB: false },
  { name: "mini fc8 y = x·Wᵀ", m: 128, n: 10, k: 256, transA: false, transB: true },
  { name: "mini fc6 batch 1", m: 1, n: 256, k: 256, transA: false, transB: true },
  { name: "paper fc6 batch 8", m: 8, n: 4096, k: 9216, transA: false, transB: true },
];

const gflops = (flops: number, ms: number) =>
  Number.isFinite(ms) ? (flops / ms / 1e6).toFixed(1) : "-";

/** Prints the gemm table; `gpu` null skips the GPU column. */
export async function runGemmBench(gpu: GpuBackend | null, quick = false): Promise<void> {
  console.log(
    `CPU kernels: ${
      bestSimdTier() ?? "reference (no SIMD)"
    }. GFLOP/s; "peak now": see the module comment.\n`,
  );
  console.log(
    "| product | m×n×k | reference | wasm 1 thread best (median) | peak now | copy % | " +
      "wasm 2 threads best (median) | 2 / 1 | GPU | PyTorch 1 (2) thr |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const shape of shapes(quick)) {
    const { m, n, k } = shape;
    const flops = 2 * m * n * k;
    const args = argsFor(shape);
    const repeats = flops > 4e9 ? 3 : flops > 5e8 ? 5 : Math.min(200, Math.ceil(5e9 / flops));
    // The reference runs once or a few times: a 2048 product would take a minute.
    const referenceMs = flops > 3e9
      ? NaN
      : bestAndMedian(() => gemmReference(args), flops > 2e8 ? 1 : 3, 0)[0];
    await setThreads(1);
    const [one, oneMedian, oneCopy] = timeRuns(() => gemm(args), repeats);
    const peak = fmaPeakNow(one, Math.min(repeats, 10));
    await setThreads(2);
    const [two, twoMedian] = bestAndMedian(() => gemm(args), repeats);
    await setThreads("auto");
    let gpuMs = NaN;
    if (gpu !== null) {
      const a = inputs(gpu, m * k, 1).gpu, b = inputs(gpu, k * n, 2).gpu;
      const p: MatmulParams = {
        batch: 1,
        m,
        n,
        k,
        transA: shape.transA,
        transB: shape.transB,
        strideA: 0,
        strideB: 0,
      };
      gpuMs = await time(() => gpu.free(gpu.matmul(a, b, p)), () => gpu.runtime.sync(), 3);
      gpu.free(a);
      gpu.free(b);
    }
    console.log(
      `| ${shape.name} | ${m}×${n}×${k} | ${gflops(flops, referenceMs)} | ` +
        `${gflops(flops, one)} (${gflops(flops, oneMedian)}) | ${peak.toFixed(1)} | ` +
        `${(100 * oneCopy / one).toFixed(0)}% | ` +
        `${gflops(flops, two)} (${gflops(flops, twoMedian)}) | ${(one / two).toFixed(2)}x | ` +
        `${gflops(flops, gpuMs)} | ${shape.yardstick ?? "-"} |`,
    );
  }
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  let gpu: GpuBackend | null = null;
  if (!Deno.args.includes("--no-gpu")) {
    const { initWebGPU } = await import("../gpu/mod.ts");
    gpu = await initWebGPU();
  }
  await runGemmBench(gpu, quick);
  gpu?.runtime.device.destroy();
}
