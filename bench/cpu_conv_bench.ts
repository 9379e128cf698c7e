/**
 * conv2d side by side, GFLOP/s per pass (forward, backward to the input, backward to the
 * weight): the reference loops of tensor/ops/conv2d.ts, the WebAssembly kernels of
 * cpu/kernels/conv2d.ts in each SIMD tier (one thread: the conv kernels do not use the gemm worker),
 * and the GPU backend's WGSL kernels. Layers: AlexNet's five at batch 8 (paper shapes, 227 px)
 * and AlexNet-mini's five at batch 128 (the model's own shapes, groups included), then the
 * total of each table (total GFLOP over total time, what a training step sees). PyTorch 1.13 +
 * OpenBLAS/oneDNN reached 77 GFLOP/s on AlexNet conv3 forward on one thread
 * (../shared/PERF.md).
 *
 *     deno run --allow-read --allow-env bench/cpu_conv_bench.ts [--quick] [--no-reference] [--no-gpu]
 *
 * GFLOP = 2·N·O·H'·W'·(C/G)·KH·KW per pass. Every figure is the best of a few runs (on a shared
 * machine other processes only ever add time), after a warm-up run (V8 compiles wasm lazily).
 * `--quick`: AlexNet-mini only. `--no-reference`: skip the reference loops (slow: a minute).
 *
 * @module
 */

import { type Conv2dParams, conv2dParams } from "../tensor/ops/conv2d.ts";
import {
  conv2dBackwardInputCpu,
  conv2dBackwardWeightCpu,
  conv2dForwardCpu,
} from "../tensor/ops/conv2d.ts";
import {
  conv2dBackwardInputWasm,
  conv2dBackwardWeightWasm,
  conv2dForwardWasm,
} from "../cpu/kernels/conv2d.ts";
import { bestSimdTier, type SimdTier } from "../cpu/kernels/gemm.ts";
import { alexnetLayers, type ConvLayer } from "./gpu_conv_bench.ts";
import { randomFloat32 } from "./random.ts";

/** AlexNet-mini's conv layers at batch 128 (models/alexnet.ts, MINI). */
export const miniConvLayers: ConvLayer[] = [
  { name: "mini conv1", x: [128, 1, 28, 28], w: [32, 1, 5, 5], stride: 1, padding: 2, groups: 1 },
  { name: "mini conv2", x: [128, 32, 13, 13], w: [64, 16, 5, 5], stride: 1, padding: 2, groups: 2 },
  { name: "mini conv3", x: [128, 64, 6, 6], w: [96, 64, 3, 3], stride: 1, padding: 1, groups: 1 },
  { name: "mini conv4", x: [128, 96, 6, 6], w: [96, 48, 3, 3], stride: 1, padding: 1, groups: 2 },
  { name: "mini conv5", x: [128, 96, 6, 6], w: [64, 48, 3, 3], stride: 1, padding: 1, groups: 2 },
];

const PASSES = ["forward", "input", "weight"] as const;
type Pass = typeof PASSES[number];

/** One engine's three passes of one layer, each a function that runs the pass once. */
type Engine = (p: Conv2dParams, data: LayerData) => Record<Pass, () => Promise<void> | void>;

interface LayerData {
  x: Float32Array;
  w: Float32Array;
  bias: Float32Array;
  dy: Float32Array;
}

/** Best seconds of `runs` runs after one warm-up run. */
async function best(run: () => Promise<void> | void, runs: number): Promise<number> {
  await run();
  let fastest = Infinity;
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await run();
    fastest = Math.min(fastest, (performance.now() - start) / 1000);
  }
  return fastest;
}

const reference: Engine = (p, { x, w, bias, dy }) => {
  const y = new Float32Array(dy.length), dx = new Float32Array(x.length);
  const dw = new Float32Array(w.length);
  return {
    forward: () => conv2dForwardCpu(x, w, bias, p, y),
    input: () => conv2dBackwardInputCpu(dy, w, p, dx),
    weight: () => conv2dBackwardWeightCpu(dy, x, p, dw),
  };
};

const wasm = (tier: SimdTier): Engine => (p, { x, w, bias, dy }) => {
  const y = new Float32Array(dy.length), dx = new Float32Array(x.length);
  const dw = new Float32Array(w.length);
  return {
    forward: () => conv2dForwardWasm(x, w, bias, p, y, tier),
    input: () => conv2dBackwardInputWasm(dy, w, p, dx, tier),
    weight: () => conv2dBackwardWeightWasm(dy, x, p, dw, tier),
  };
};

/** The GPU backend's kernels, timed with the wait for the queue; null without an adapter. */
async function gpuEngine(): Promise<{ engine: Engine; close: () => void; name: string } | null> {
  try {
    const { acquireRuntime } = await import("../gpu/device.ts");
    const kernels = await import("../gpu/kernels/conv2d.ts");
    const rt = await acquireRuntime();
    rt.backend = { name: "conv-bench" } as typeof rt.backend;
    const engine: Engine = (p, { x, w, bias, dy }) => {
      const upload = (data: Float32Array) => {
        const s = rt.alloc("float32", data.length);
        rt.write(s, data);
        return s;
      };
      const [xg, wg, bg, dyg] = [upload(x), upload(w), upload(bias), upload(dy)];
      const pass = (launch: () => ReturnType<typeof kernels.conv2dForwardGpu>) => async () => {
        const out = launch();
        await rt.sync();
        rt.free(out);
      };
      return {
        forward: pass(() => kernels.conv2dForwardGpu(rt, xg, wg, bg, p)),
        input: pass(() => kernels.conv2dBackwardInputGpu(rt, dyg, wg, p)),
        weight: pass(() => kernels.conv2dBackwardWeightGpu(rt, dyg, xg, p)),
      };
    };
    const info = rt.adapterInfo;
    return {
      engine,
      close: () => rt.device.destroy(),
      name: `GPU (${info.description || info.vendor || "adapter"})`,
    };
  } catch (error) {
    console.log(`(no GPU column: ${error instanceof Error ? error.message : error})`);
    return null;
  }
}

/** Measures every engine on every layer and prints one Markdown table. */
async function table(title: string, layers: ConvLayer[], engines: [string, Engine][]) {
  const gflops: number[] = [];
  // seconds[engine][layer][pass]
  const seconds = engines.map(() => layers.map(() => ({ forward: 0, input: 0, weight: 0 })));
  for (const [l, layer] of layers.entries()) {
    const p = conv2dParams(layer.x, layer.w, layer.stride, layer.padding, layer.groups);
    const gflop = 2 * p.n * p.o * p.outH * p.outW * (p.c / p.groups) * p.kh * p.kw / 1e9;
    gflops.push(gflop);
    const data = {
      x: randomFloat32(p.n * p.c * p.h * p.w, 1),
      w: randomFloat32(p.o * (p.c / p.groups) * p.kh * p.kw, 2),
      bias: randomFloat32(p.o, 3),
      dy: randomFloat32(p.n * p.o * p.outH * p.outW, 4),
    };
    for (const [e, [name, engine]] of engines.entries()) {
      const passes = engine(p, data);
      const runs = name === "reference" ? 1 : 3;
      for (const pass of PASSES) seconds[e][l][pass] = await best(passes[pass], runs);
    }
  }
  const header = engines.map(([name]) => name).join(" / ");
  console.log(`\n${title}: GFLOP/s, ${header}\n`);
  console.log("| layer | GFLOP per pass | forward | backward input | backward weight |");
  console.log("|---|---|---|---|---|");
  const cell = (rates: number[]) => rates.map((r) => r.toFixed(1)).join(" / ");
  for (const [l, layer] of layers.entries()) {
    const row = PASSES.map((pass) => cell(seconds.map((s) => gflops[l] / s[l][pass])));
    console.log(`| ${layer.name} | ${gflops[l].toFixed(3)} | ${row.join(" | ")} |`);
  }
  const total = gflops.reduce((a, b) => a + b, 0);
  const totals = PASSES.map((pass) =>
    cell(seconds.map((s) => total / s.reduce((sum, layer) => sum + layer[pass], 0)))
  );
  console.log(`| all layers | ${total.toFixed(3)} | ${totals.join(" | ")} |`);
}

/** Runs the conv tables; `quick` measures AlexNet-mini only. */
export async function runCpuConvBench(
  options: { quick?: boolean; reference?: boolean; gpu?: boolean } = {},
): Promise<void> {
  const { quick = false } = options;
  const engines: [string, Engine][] = [];
  if (options.reference ?? true) engines.push(["reference", reference]);
  const tier = bestSimdTier();
  const tiers: SimdTier[] = tier === "relaxed-simd"
    ? ["relaxed-simd", "simd"]
    : tier === "simd"
    ? ["simd"]
    : [];
  for (const t of tiers) engines.push([`wasm ${t} (1 thread)`, wasm(t)]);
  const gpu = options.gpu ?? true ? await gpuEngine() : null;
  if (gpu) engines.push([gpu.name, gpu.engine]);
  await table("AlexNet-mini conv layers, batch 128", miniConvLayers, engines);
  if (!quick) await table("AlexNet conv layers (paper, 227 px), batch 8", alexnetLayers, engines);
  gpu?.close();
}

if (import.meta.main) {
  await runCpuConvBench({
    quick: Deno.args.includes("--quick"),
    reference: !Deno.args.includes("--no-reference"),
    gpu: !Deno.args.includes("--no-gpu"),
  });
}
