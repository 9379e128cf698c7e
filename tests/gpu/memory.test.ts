/**
 * GPU memory stays flat across training steps: a small convnet (conv2d, relu, maxPool2d,
 * linear, crossEntropy) trained for 200 steps with SGD on the GPU must hold no more bytes and
 * buffers in steps 196..200 than in steps 8..10, up to a few buffers (fewer is fine). Anything that leaks a buffer per step
 * (a forgotten intermediate, a gradient not released, a parameter block per dispatch) shows
 * up here. The loss is read after the first step and then only every 50 steps, as a training loop would.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fromArray, randn, type Tensor } from "../../tensor/tensor.ts";
import { relu } from "../../tensor/ops/elementwise.ts";
import { flatten } from "../../tensor/ops/layout.ts";
import { linear } from "../../tensor/ops/matmul.ts";
import { conv2d } from "../../tensor/ops/conv2d.ts";
import { maxPool2d } from "../../tensor/ops/pool.ts";
import { crossEntropy } from "../../tensor/ops/softmax.ts";
import { SGD } from "../../optim/sgd.ts";
import { Rng } from "../../tensor/random.ts";
import { gpuTest } from "../support/gpu_helpers.ts";

gpuTest("200 convnet training steps keep GPU memory flat", async (gpu) => {
  const device = "gpu";
  const param = (shape: number[], std: number, seed: number) =>
    randn(shape, { std, seed, device, requiresGrad: true });
  // [N, 3, 12, 12] -> conv 5x5 (8) -> [N, 8, 12, 12] -> pool 2 -> [N, 8, 6, 6] -> linear 10
  const params: Tensor[] = [
    param([8, 3, 5, 5], 0.1, 1),
    param([8], 0.01, 2),
    param([10, 8 * 6 * 6], 0.05, 3),
    param([10], 0.01, 4),
  ];
  const [convW, convB, fcW, fcB] = params;
  const optimizer = new SGD(params, { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  const rng = new Rng(5);
  const batch = 4;
  const images = fromArray(Float32Array.from({ length: batch * 3 * 12 * 12 }, () => rng.normal()), [
    batch,
    3,
    12,
    12,
  ], { device });
  const labels = fromArray(Int32Array.from({ length: batch }, () => rng.int(10)), [batch], {
    device,
  });

  const held: { liveBuffers: number; bytesInUse: number }[] = []; // after each step
  const losses: number[] = [];
  for (let step = 1; step <= 200; step++) {
    optimizer.zeroGrad();
    const features = maxPool2d(relu(conv2d(images, convW, convB, { padding: 2 })), {
      kernelSize: 2,
    });
    const loss = crossEntropy(linear(flatten(features), fcW, fcB), labels);
    loss.backward();
    optimizer.step();
    if (step === 1 || step % 50 === 0) losses.push(await loss.item());
    loss.dispose();
    if ((step >= 8 && step <= 10) || step > 195) {
      gpu.runtime.flush();
      held.push(gpu.runtime.memoryStats());
    }
  }
  // Memory may go down between two moments (buffers released late) but must not grow: the most
  // held in steps 196..200 may exceed the most held in steps 8..10 by at most a few buffers,
  // which a leak of one buffer a step (186 by step 196) exceeds by far.
  for (const [key, allowance] of [["liveBuffers", 4], ["bytesInUse", 64 * 1024]] as const) {
    const early = Math.max(...held.slice(0, 3).map((s) => s[key]));
    const late = Math.max(...held.slice(3).map((s) => s[key]));
    assert.ok(
      late <= early + allowance,
      `${key} grew: at most ${early} in steps 8..10, ${late} in steps 196..200`,
    );
  }
  // One fixed batch: the net must memorize it, so the loss falls.
  assert.ok(losses[4] < losses[0] / 10, `loss did not fall: ${losses.join(", ")}`);
  for (const t of [...params, images, labels]) t.dispose();
  optimizer.dispose();
});

gpuTest("free returns buffers to the pool and trim destroys them", async (gpu) => {
  const rt = gpu.runtime;
  rt.trim();
  const before = rt.memoryStats();
  const s = rt.alloc("float32", 1000);
  const during = rt.memoryStats();
  assert.equal(during.liveBuffers, before.liveBuffers + 1);
  assert.equal(during.bytesInUse - before.bytesInUse, 4096);
  rt.free(s);
  const reused = rt.alloc("float32", 1000);
  assert.equal(reused.buffer, s.buffer, "a freed buffer of the same size class is reused");
  rt.free(reused);
  rt.trim();
  const after = rt.memoryStats();
  assert.equal(after.bytesPooled, 0);
  assert.equal(after.liveBuffers, before.liveBuffers);
  await rt.sync();
});

gpuTest("concurrent reads overlap and return the right data", async (gpu) => {
  const arrays = [1, 2, 3, 4].map((k) => Float32Array.from({ length: 1000 + k }, (_, i) => i * k));
  const storages = arrays.map((a) => gpu.fromArray(a));
  const results = await Promise.all(storages.map((s) => gpu.read(s)));
  results.forEach((r, i) => assert.deepEqual(r, arrays[i]));
  for (const s of storages) gpu.free(s);
});
