/**
 * `deno task bench`: CPU and GPU side by side, one table per kernel family, then whole
 * training steps and the data loader.
 *
 * - gemm GFLOP/s (bench/gemm_bench.ts): matmul at 512, 1024, 2048 and AlexNet's linear layers,
 *   the reference, WebAssembly on 1 and 2 threads, GPU, PyTorch's figures as yardsticks;
 * - AlexNet's five conv layers at batch 8 and AlexNet-mini's at batch 128: forward,
 *   backward to the input and backward to the weight, GFLOP/s;
 * - LRN, max-pooling and the dense per-op kernels, milliseconds;
 * - a full training step (forward, backward, SGD update) of AlexNet-mini at batch 128 and of
 *   the paper's AlexNet at batch 8, images/s;
 * - the cpu device on whole networks, one thread beside every core, training and inference
 *   (batch-1 latency, batch-128 throughput), PyTorch's and onnxruntime's recorded figures as
 *   yardsticks (bench/cpu_alexnet_bench.ts);
 * - the data loader's images/s, with the Fashion-MNIST pipeline.
 *
 * GPU times include submitting the work and waiting for it. `--quick` skips the slow rows
 * (AlexNet conv layers, the full AlexNet step, matmul 2048).
 *
 * @module
 */

import { initWebGPU } from "../gpu/mod.ts";
import type { Backend, LrnParams, Pool2dParams } from "../backend/backend.ts";
import { compareOp, denseRows, inputs, printRows, time } from "./gpu_bench.ts";
import { runGemmBench } from "./gemm_bench.ts";
import { runCpuConvBench } from "./cpu_conv_bench.ts";
import { crossEntropy, fromArray, type Module, SGD, type Tensor } from "../mod.ts";
import { runCpuAlexnetBench } from "./cpu_alexnet_bench.ts";
import { alexnet, alexnetMini } from "../models/alexnet.ts";
import { DataLoader, fashionMnistSpec, loadFashionMnist } from "../data/mod.ts";
import { randomFloat32 } from "./random.ts";

const quick = Deno.args.includes("--quick");
const gpu = await initWebGPU();
const info = gpu.runtime.adapterInfo;
console.log(
  `# tessera benchmark\n\nGPU adapter: ${info.description || info.vendor || "unknown"} ` +
    `(${
      gpu.runtime.isSoftware ? "software" : "hardware"
    }); CPU backend: WebAssembly SIMD kernels (gemm, conv2d, LRN, ReLU, max-pool), TypeScript reference kernels for the rest.\n`,
);

console.log("## matmul and linear layers (gemm)\n");
await runGemmBench(gpu, quick);

console.log("\n## conv2d layers (GFLOP/s: reference / wasm per tier / GPU)\n");
await runCpuConvBench({ quick });

console.log("## LRN and max-pooling (ms)\n");
const lrn = (n: number, c: number, h: number): LrnParams => ({
  n,
  c,
  h,
  w: h,
  size: 5,
  alpha: 2e-5,
  beta: 0.75,
  k: 2,
});
const pool = (n: number, c: number, h: number): Pool2dParams => {
  const out = Math.floor((h - 3) / 2) + 1;
  return {
    n,
    c,
    h,
    w: h,
    kh: 3,
    kw: 3,
    strideH: 2,
    strideW: 2,
    padH: 0,
    padW: 0,
    outH: out,
    outW: out,
    countIncludePad: true,
  };
};
const spatial = [];
for (
  const [label, n, c, h] of [["mini norm1", 128, 32, 28], ["AlexNet norm1", 8, 96, 55]] as const
) {
  const size = n * c * h * h;
  const x = inputs(gpu, size, 1), dy = inputs(gpu, size, 2);
  const pick = (be: Backend, s: typeof x) => (be === gpu ? s.gpu : s.cpu);
  spatial.push(
    await compareOp(
      `LRN forward ${label} [${n},${c},${h},${h}]`,
      gpu,
      (be) => be.lrnForward(pick(be, x), lrn(n, c, h)),
    ),
  );
  spatial.push(
    await compareOp(
      `LRN backward ${label}`,
      gpu,
      (be) => be.lrnBackward(pick(be, x), pick(be, dy), lrn(n, c, h)),
    ),
  );
  spatial.push(
    await compareOp(`max-pool 3x3/2 forward ${label.replace("norm", "pool")}`, gpu, (be) => {
      const { y, argmax } = be.maxPool2dForward(pick(be, x), pool(n, c, h));
      be.free(argmax);
      return y;
    }),
  );
}
printRows(spatial);

console.log("\n## dense kernels (ms)\n");
printRows(await denseRows(gpu));

/**
 * Seconds per training step of `make()` on `device` with a batch of `shape`: the batch
 * uploaded, forward, loss, backward, the SGD update, the loss read back (which waits for the
 * device). The median of `repeats` steps after a warm-up step that compiles the GPU's shaders.
 */
async function stepSeconds(
  make: () => Module,
  shape: number[],
  classes: number,
  device: string,
  repeats: number,
): Promise<number> {
  const model = await make().to(device);
  model.train();
  const optimizer = new SGD(model.parameters(), { lr: 1e-3, momentum: 0.9 });
  const images = randomFloat32(shape.reduce((a, b) => a * b, 1), 1);
  const labels = Int32Array.from({ length: shape[0] }, (_, i) => i % classes);
  let loss: Tensor | undefined;
  const step = () => {
    using x = fromArray(images, shape, { device });
    using y = fromArray(labels, [shape[0]], { device });
    optimizer.zeroGrad();
    loss = crossEntropy(model.forward(x), y);
    loss.backward();
    optimizer.step();
  };
  const readLoss = async () => {
    await loss!.item();
    loss!.dispose();
  };
  const ms = await time(step, readLoss, repeats);
  optimizer.dispose();
  for (const p of model.parameters()) p.dispose();
  return ms / 1000;
}

console.log("\n## training steps (forward + backward + SGD update), images/s\n");
console.log("| model | batch | CPU img/s | GPU img/s | GPU / CPU |\n|---|---|---|---|---|");
const steps: [string, () => ReturnType<typeof alexnetMini>, number[], number][] = [
  ["AlexNet-mini (28x28)", () => alexnetMini({ inChannels: 1, numClasses: 10, inputSize: 28 }), [
    128,
    1,
    28,
    28,
  ], 10],
];
if (!quick) {
  steps.push([
    "AlexNet, paper (227x227)",
    () => alexnet({ numClasses: 1000 }),
    [8, 3, 227, 227],
    1000,
  ]);
}
for (const [name, make, shape, classes] of steps) {
  const cpu = shape[0] / await stepSeconds(make, shape, classes, "cpu", quick ? 1 : 2);
  const gpuRate = shape[0] / await stepSeconds(make, shape, classes, "gpu", quick ? 1 : 2);
  console.log(
    `| ${name} | ${shape[0]} | ${cpu.toFixed(1)} | ${gpuRate.toFixed(1)} | ${
      (gpuRate / cpu).toFixed(2)
    }x |`,
  );
}

console.log(
  "\n## the cpu device on whole networks: one thread and every core, with recorded yardsticks\n",
);
await runCpuAlexnetBench(quick);

console.log("\n## data loader (Fashion-MNIST, normalize + flip, batch 128), images/s\n");
const { train } = await loadFashionMnist({});
for (const workers of [0, 2]) {
  const loader = new DataLoader(train, {
    batchSize: 128,
    spec: fashionMnistSpec({ flip: true }),
    workers,
  });
  let images = 0;
  const start = performance.now();
  for await (const batch of loader.epoch(0)) images += batch.shape[0];
  const seconds = (performance.now() - start) / 1000;
  await loader.close();
  console.log(`- ${workers} workers: ${(images / seconds).toFixed(0)} images/s`);
}
gpu.runtime.device.destroy();
