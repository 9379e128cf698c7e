/**
 * CPU throughput of gemm and of AlexNet's five convolutions (paper shapes, batch 8), in
 * GFLOP/s = 2 · multiply-adds / seconds, median of a few runs after a warmup.
 *
 *     deno run bench/cpu_bench.ts                 # 1 thread, everything (about 1.5 minutes)
 *     deno run --allow-read bench/cpu_bench.ts    # then again with 2 threads (the worker's
 *                                                 # module file needs read access)
 *     deno run bench/cpu_bench.ts gemm            # gemm only
 *
 * The machine is shared and noisy (±30% between identical runs): compare numbers from one run.
 *
 * The functions are exported so a combined CPU-vs-GPU benchmark can call them.
 *
 * @module
 */

import { gemm, getThreads, setThreads } from "../cpu/kernels/gemm.ts";
import {
  conv2dBackwardInputCpu,
  conv2dBackwardWeightCpu,
  conv2dForwardCpu,
  type Conv2dParams,
  conv2dParams,
} from "../tensor/ops/conv2d.ts";
import { randomFloat32 } from "./random.ts";

/** Median wall time in milliseconds of `runs` calls of `work`, after one warmup call. */
export function medianMs(work: () => void, runs: number): number {
  work();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    work();
    times.push(performance.now() - start);
  }
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)];
}

/**
 * GFLOP/s of a float32 n×n×n gemm (C = A·B, no transposes), median of `runs`, on as many
 * threads as {@link setThreads} enabled.
 */
export function benchGemmCpu(n: number, runs = 5): number {
  const a = randomFloat32(n * n, 1);
  const b = randomFloat32(n * n, 2);
  const c = new Float32Array(n * n);
  const ms = medianMs(
    () =>
      gemm({
        transA: false,
        transB: false,
        m: n,
        n,
        k: n,
        a,
        aOffset: 0,
        lda: n,
        b,
        bOffset: 0,
        ldb: n,
        c,
        cOffset: 0,
        ldc: n,
        accumulate: false,
      }),
    runs,
  );
  return (2 * n * n * n) / (ms * 1e6);
}

/** One convolution layer: input [batch, C, H, W] and weight [O, C/groups, KH, KW]. */
export interface ConvLayer {
  /** Layer name as in the paper's Figure 2. */
  name: string;
  /** Input [C, H, W] of one image. */
  input: [number, number, number];
  /** Weight [O, C/groups, KH, KW]. */
  weight: [number, number, number, number];
  /** Stride for both axes. */
  stride: number;
  /** Zero padding for both axes. */
  padding: number;
  /** Channel groups. */
  groups: number;
}

/** AlexNet's convolutions with the paper's shapes (section 3.5), 227-pixel input as in Caffe. */
export const ALEXNET_CONV_LAYERS: readonly ConvLayer[] = [
  {
    name: "conv1",
    input: [3, 227, 227],
    weight: [96, 3, 11, 11],
    stride: 4,
    padding: 0,
    groups: 1,
  },
  { name: "conv2", input: [96, 27, 27], weight: [256, 48, 5, 5], stride: 1, padding: 2, groups: 2 },
  {
    name: "conv3",
    input: [256, 13, 13],
    weight: [384, 256, 3, 3],
    stride: 1,
    padding: 1,
    groups: 1,
  },
  {
    name: "conv4",
    input: [384, 13, 13],
    weight: [384, 192, 3, 3],
    stride: 1,
    padding: 1,
    groups: 2,
  },
  {
    name: "conv5",
    input: [384, 13, 13],
    weight: [256, 192, 3, 3],
    stride: 1,
    padding: 1,
    groups: 2,
  },
];

/** Which conv2d kernel to time. */
export type ConvPass = "forward" | "backwardInput" | "backwardWeight";

/** Multiply-adds of one conv2d pass (the same for forward and both backward gemms). */
export function convMacs(p: Conv2dParams): number {
  return p.n * p.o * p.outH * p.outW * (p.c / p.groups) * p.kh * p.kw;
}

/**
 * GFLOP/s of one float32 conv2d pass of `layer` at `batch` images, median of `runs`, on as many
 * threads as {@link setThreads} enabled.
 */
export function benchConvCpu(layer: ConvLayer, pass: ConvPass, batch = 8, runs = 3): number {
  const [channels, height, width] = layer.input;
  const p = conv2dParams(
    [batch, channels, height, width],
    layer.weight,
    layer.stride,
    layer.padding,
    layer.groups,
  );
  const x = randomFloat32(p.n * p.c * p.h * p.w, 3);
  const w = randomFloat32(layer.weight.reduce((size, d) => size * d, 1), 4);
  const bias = randomFloat32(p.o, 5);
  const y = randomFloat32(p.n * p.o * p.outH * p.outW, 6);
  const work = {
    forward: () => conv2dForwardCpu(x, w, bias, p, y),
    backwardInput: () => conv2dBackwardInputCpu(y, w, p, x),
    backwardWeight: () => conv2dBackwardWeightCpu(y, x, p, w),
  }[pass];
  return (2 * convMacs(p)) / (medianMs(work, runs) * 1e6);
}

/** Prints the gemm and AlexNet conv tables on the current number of threads. */
export function printCpuTables(gemmOnly = false): void {
  const threads = getThreads();
  const format = (value: number) => value.toFixed(2).padStart(6);
  console.log(`gemm float32, ${threads} thread(s), GFLOP/s (median)`);
  let gemmRate = 0;
  for (const n of [256, 512, 1024, 2048]) {
    const rate = benchGemmCpu(n, n === 2048 ? 1 : n === 1024 ? 5 : 9);
    if (n === 1024) gemmRate = rate;
    console.log(`  ${String(n).padStart(4)}: ${format(rate)}`);
  }
  if (gemmOnly) return;
  console.log(
    `AlexNet conv layers, float32, batch 8, ${threads} thread(s), GFLOP/s (% of gemm 1024)`,
  );
  console.log("  layer   forward          backwardInput    backwardWeight");
  for (const layer of ALEXNET_CONV_LAYERS) {
    const cells = (["forward", "backwardInput", "backwardWeight"] as const).map((pass) => {
      const rate = benchConvCpu(layer, pass);
      return `${format(rate)} (${(rate / gemmRate * 100).toFixed(0).padStart(3)}%)`;
    });
    console.log(`  ${layer.name}  ${cells.join("    ")}`);
  }
}

if (import.meta.main) {
  const gemmOnly = Deno.args[0] === "gemm";
  await setThreads(1);
  printCpuTables(gemmOnly);
  if ((await Deno.permissions.query({ name: "read" })).state === "granted") {
    await setThreads(2);
    try {
      console.log();
      printCpuTables(gemmOnly);
    } finally {
      await setThreads("auto");
    }
  }
}
