/**
 * Convolution throughput, GPU (WebGPU kernels of gpu/kernels/conv2d.ts) next to the CPU
 * reference (tensor/ops/conv2d.ts), for AlexNet's conv layers (paper shapes, section
 * 3.5, batch 8) and AlexNet-mini's (1x28x28 input, batch 128).
 *
 * GFLOP/s counts 2·N·O·outH·outW·(C/g)·KH·KW per pass (forward, backward to the input and
 * backward to the weight all do that many multiply-adds). GPU time includes submitting and
 * waiting for the queue (`flush` + `onSubmittedWorkDone`); each kernel runs once untimed first
 * so that shader compilation is excluded. Run: `deno run -A bench/gpu_conv_bench.ts [--quick]`.
 *
 * @module
 */

import type { Backend, Conv2dParams } from "../backend/backend.ts";
import { acquireRuntime } from "../gpu/device.ts";
import type { GpuRuntime, GpuStorage } from "../gpu/runtime.ts";
import {
  conv2dBackwardInputGpu,
  conv2dBackwardWeightGpu,
  conv2dForwardGpu,
} from "../gpu/kernels/conv2d.ts";
import {
  conv2dBackwardInputCpu,
  conv2dBackwardWeightCpu,
  conv2dForwardCpu,
  conv2dParams,
} from "../tensor/ops/conv2d.ts";
import { randomFloat32 } from "./random.ts";

/** One convolution layer to measure. */
export interface ConvLayer {
  /** Printed name. */
  name: string;
  /** Input [N, C, H, W]. */
  x: [number, number, number, number];
  /** Weight [O, C/groups, KH, KW]. */
  w: [number, number, number, number];
  /** Stride, both axes. */
  stride: number;
  /** Zero padding, both axes. */
  padding: number;
  /** Channel groups (2 for AlexNet's conv2, conv4, conv5: paper section 3.2). */
  groups: number;
}

/** AlexNet's conv layers at batch 8 (paper section 3.5; 227x227 input as in Caffe). */
export const alexnetLayers: ConvLayer[] = [
  {
    name: "alexnet conv1",
    x: [8, 3, 227, 227],
    w: [96, 3, 11, 11],
    stride: 4,
    padding: 0,
    groups: 1,
  },
  {
    name: "alexnet conv2",
    x: [8, 96, 27, 27],
    w: [256, 48, 5, 5],
    stride: 1,
    padding: 2,
    groups: 2,
  },
  {
    name: "alexnet conv3",
    x: [8, 256, 13, 13],
    w: [384, 256, 3, 3],
    stride: 1,
    padding: 1,
    groups: 1,
  },
  {
    name: "alexnet conv4",
    x: [8, 384, 13, 13],
    w: [384, 192, 3, 3],
    stride: 1,
    padding: 1,
    groups: 2,
  },
  {
    name: "alexnet conv5",
    x: [8, 384, 13, 13],
    w: [256, 192, 3, 3],
    stride: 1,
    padding: 1,
    groups: 2,
  },
];

/** AlexNet-mini's conv layers at batch 128 (1x28x28 input; 3x3/2 pooling after conv1 and conv2). */
export const miniLayers: ConvLayer[] = [
  { name: "mini conv1", x: [128, 1, 28, 28], w: [32, 1, 5, 5], stride: 1, padding: 2, groups: 1 },
  { name: "mini conv2", x: [128, 32, 13, 13], w: [64, 32, 5, 5], stride: 1, padding: 2, groups: 1 },
  { name: "mini conv3", x: [128, 64, 6, 6], w: [96, 64, 3, 3], stride: 1, padding: 1, groups: 1 },
  { name: "mini conv4", x: [128, 96, 6, 6], w: [96, 96, 3, 3], stride: 1, padding: 1, groups: 1 },
  { name: "mini conv5", x: [128, 96, 6, 6], w: [64, 96, 3, 3], stride: 1, padding: 1, groups: 1 },
];

/** GFLOP/s of one layer's three passes on each device. */
export interface ConvBenchRow {
  /** Layer name. */
  layer: string;
  /** GFLOP of one pass. */
  gflop: number;
  /** GFLOP/s on the GPU: forward, backward to the input, backward to the weight. */
  gpu: { forward: number; input: number; weight: number };
  /** GFLOP/s of the CPU reference kernels, same passes. */
  cpu: { forward: number; input: number; weight: number };
}

/**
 * Fastest of `reps` runs of `fn` (awaited), in seconds: on a shared 2-core machine the other
 * processes only ever add time, so the minimum is the best estimate of the kernel's own cost.
 */
async function timeIt(reps: number, fn: () => Promise<void> | void): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const start = performance.now();
    await fn();
    times.push((performance.now() - start) / 1000);
  }
  return Math.min(...times);
}

/** Measures one layer on the GPU runtime and on the CPU. */
export async function benchConvLayer(
  rt: GpuRuntime,
  layer: ConvLayer,
  reps = 3,
): Promise<ConvBenchRow> {
  const p: Conv2dParams = conv2dParams(layer.x, layer.w, layer.stride, layer.padding, layer.groups);
  const x = randomFloat32(p.n * p.c * p.h * p.w, 1),
    w = randomFloat32(p.o * (p.c / p.groups) * p.kh * p.kw, 2);
  const bias = randomFloat32(p.o, 3), dy = randomFloat32(p.n * p.o * p.outH * p.outW, 4);
  const gflop = 2 * p.n * p.o * p.outH * p.outW * (p.c / p.groups) * p.kh * p.kw / 1e9;

  const upload = (data: Float32Array) => {
    const s = rt.alloc("float32", data.length);
    rt.write(s, data);
    return s;
  };
  const [xg, wg, bg, dyg] = [upload(x), upload(w), upload(bias), upload(dy)];
  const gpuPass = async (run: () => GpuStorage) => {
    const once = async () => {
      const out = run();
      await rt.sync();
      rt.free(out);
    };
    await once(); // compiles the pipelines
    return gflop / await timeIt(reps, once);
  };
  const gpu = {
    forward: await gpuPass(() => conv2dForwardGpu(rt, xg, wg, bg, p)),
    input: await gpuPass(() => conv2dBackwardInputGpu(rt, dyg, wg, p)),
    weight: await gpuPass(() => conv2dBackwardWeightGpu(rt, dyg, xg, p)),
  };
  for (const s of [xg, wg, bg, dyg]) rt.free(s);

  const y = new Float32Array(dy.length),
    dx = new Float32Array(x.length),
    dw = new Float32Array(w.length);
  const cpuReps = Math.max(1, Math.min(reps, Math.round(2 / gflop)));
  const cpu = {
    forward: gflop / await timeIt(cpuReps, () => conv2dForwardCpu(x, w, bias, p, y)),
    input: gflop / await timeIt(cpuReps, () => conv2dBackwardInputCpu(dy, w, p, dx)),
    weight: gflop / await timeIt(cpuReps, () => conv2dBackwardWeightCpu(dy, x, p, dw)),
  };
  return { layer: layer.name, gflop, gpu, cpu };
}

/**
 * Formats rows as a Markdown table: GFLOP/s per pass, GPU / CPU (ratio), and a last row with
 * all layers together (total GFLOP over total time, which is what a training step sees).
 */
export function formatConvTable(rows: ConvBenchRow[], title: string): string {
  const cell = (g: number, c: number) =>
    `${g.toFixed(2)} / ${c.toFixed(2)} (${(g / c).toFixed(1)}x)`;
  const passes = ["forward", "input", "weight"] as const;
  const lines = [
    `${title}: conv2d GFLOP/s, GPU / CPU (ratio)`,
    "| layer | GFLOP per pass | forward | backward input | backward weight |",
    "|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.layer} | ${r.gflop.toFixed(3)} | ${
        passes.map((pass) => cell(r.gpu[pass], r.cpu[pass])).join(" | ")
      } |`,
    );
  }
  const gflop = rows.reduce((total, r) => total + r.gflop, 0);
  const rate = (device: "gpu" | "cpu", pass: typeof passes[number]) =>
    gflop / rows.reduce((total, r) => total + r.gflop / r[device][pass], 0);
  lines.push(
    `| all layers | ${gflop.toFixed(3)} | ${
      passes.map((pass) => cell(rate("gpu", pass), rate("cpu", pass))).join(" | ")
    } |`,
  );
  return lines.join("\n");
}

/** Runs the whole conv benchmark and prints the tables; `quick` measures AlexNet-mini only. */
export async function runConvBench(quick = false): Promise<ConvBenchRow[]> {
  const rt = await acquireRuntime();
  rt.backend = { name: "gpu-bench" } as Backend;
  const adapter = rt.adapterInfo.description || rt.adapterInfo.vendor;
  const all: ConvBenchRow[] = [];
  const tables: [string, ConvLayer[]][] = [["AlexNet-mini, batch 128", miniLayers]];
  if (!quick) tables.push(["AlexNet, batch 8", alexnetLayers]);
  for (const [title, layers] of tables) {
    const rows: ConvBenchRow[] = [];
    for (const layer of layers) rows.push(await benchConvLayer(rt, layer));
    console.log(`${formatConvTable(rows, title)}\n(GPU: ${adapter})\n`);
    all.push(...rows);
  }
  rt.device.destroy();
  return all;
}

if (import.meta.main) await runConvBench(Deno.args.includes("--quick"));
