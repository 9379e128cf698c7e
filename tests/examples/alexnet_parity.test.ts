/**
 * Whole-network parity: the same AlexNet, same weights, same batch and same dropout seeds give
 * the same loss, the same gradients and the same SGD trajectory on the CPU and on the GPU. The
 * mini model runs in full; the paper's full-size AlexNet (61M parameters, fc6's 151 MB weight
 * over the software adapter's 128 MiB binding limit) trains a few steps on 227x227 data.
 */

import assert from "node:assert/strict";
import { crossEntropy, fromArray, Rng, SGD } from "../../mod.ts";
import type { Module } from "../../nn/module.ts";
import { alexnet, alexnetMini } from "../../models/alexnet.ts";
import { gpuTest } from "../support/gpu_helpers.ts";
import { assertClose } from "../support/helpers.ts";

function batch(shape: number[], classes: number, seed: number) {
  const rng = new Rng(seed);
  const images = new Float32Array(shape.reduce((a, b) => a * b)).map(() => rng.normal());
  const labels = new Int32Array(shape[0]).map(() => rng.int(classes));
  return { images, labels };
}

/** Runs `steps` SGD steps; returns each step's loss and the first step's gradients by name. */
async function trainSteps(
  model: Module,
  device: string,
  shape: number[],
  classes: number,
  steps: number,
) {
  await model.to(device);
  model.train();
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const losses: number[] = [];
  const grads = new Map<string, Float32Array>();
  for (let step = 0; step < steps; step++) {
    const { images, labels } = batch(shape, classes, 100 + step);
    using x = fromArray(images, shape, { device });
    using y = fromArray(labels, [shape[0]], { device });
    optimizer.zeroGrad();
    using loss = crossEntropy(model.forward(x), y);
    loss.backward();
    if (step === 0) {
      for (const [name, p] of model.namedParameters()) {
        grads.set(name, new Float32Array(await p.grad!.data()));
      }
    }
    optimizer.step();
    losses.push(await loss.item());
  }
  optimizer.dispose();
  for (const p of model.parameters()) p.dispose();
  return { losses, grads };
}

gpuTest("AlexNet-mini: same loss, gradients and 5-step SGD trajectory on CPU and GPU", async () => {
  const make = () => alexnetMini({ inChannels: 1, numClasses: 10, inputSize: 28, seed: 3 });
  const shape = [5, 1, 28, 28]; // batch 5: no workgroup size divides it
  const cpu = await trainSteps(make(), "cpu", shape, 10, 5);
  const gpu = await trainSteps(make(), "gpu", shape, 10, 5);
  // Float32 sums in a different order: agreement to ~1e-5 relative per op, compounding.
  assertClose(gpu.losses, cpu.losses, { rtol: 1e-3, atol: 1e-4, what: "losses" });
  for (const [name, g] of cpu.grads) {
    assertClose(gpu.grads.get(name)!, g, { rtol: 2e-3, atol: 2e-4, what: `grad of ${name}` });
  }
  assert.ok(cpu.losses.at(-1)! < cpu.losses[0], `loss should fall: ${cpu.losses.join(", ")}`);
});

gpuTest(
  "full-size AlexNet (227x227, 61M parameters) trains on CPU and GPU with matching losses",
  async () => {
    const make = () => alexnet({ numClasses: 1000, seed: 7 });
    const shape = [2, 3, 227, 227];
    const cpu = await trainSteps(make(), "cpu", shape, 1000, 2);
    const gpu = await trainSteps(make(), "gpu", shape, 1000, 2);
    for (const loss of [...cpu.losses, ...gpu.losses]) {
      assert.ok(
        Number.isFinite(loss),
        `loss ${loss}`,
      );
    }
    assertClose(gpu.losses, cpu.losses, { rtol: 1e-3, atol: 1e-4, what: "losses" });
    // fc6's weight is larger than one storage binding on the software adapter: its gradient
    // must still agree (it is computed in chunks).
    assertClose(gpu.grads.get("fc6.weight")!, cpu.grads.get("fc6.weight")!, {
      rtol: 5e-3,
      atol: 1e-6,
      what: "grad of fc6.weight",
    });
  },
);

gpuTest(
  "AlexNet-mini at the training batch size (128): every gradient matches the CPU",
  async () => {
    // Long reductions (a conv bias gradient sums 128·28·28 values) are where a GPU kernel can
    // go wrong without small shapes noticing.
    const make = () => alexnetMini({ inChannels: 1, numClasses: 10, inputSize: 28, seed: 3 });
    const shape = [128, 1, 28, 28];
    const cpu = await trainSteps(make(), "cpu", shape, 10, 1);
    const gpu = await trainSteps(make(), "gpu", shape, 10, 1);
    assertClose(gpu.losses, cpu.losses, { rtol: 1e-5, atol: 1e-6, what: "loss" });
    // Compared as whole vectors: among 128 images a float32 rounding difference can flip a
    // near-tie (a pre-activation at ±1e-9 around a ReLU's zero, then which cell of an all-but-zero
    // max-pool window wins). That moves one image's gradient to a neighbouring position: conv2's
    // bias gradient (a sum over positions) stays within 1e-6, its weight gradient moves by up to
    // ~3e-4 relative and conv1's by ~2e-3. A real kernel bug (a dropped term, a wrong tap) shows
    // up as errors of 1e-2 and more.
    for (const [name, g] of cpu.grads) {
      const h = gpu.grads.get(name)!;
      let diff = 0, norm = 0;
      for (let i = 0; i < g.length; i++) {
        diff += (h[i] - g[i]) ** 2;
        norm += g[i] ** 2;
      }
      const relative = Math.sqrt(diff / norm);
      assert.ok(relative < 1e-2, `grad of ${name}: relative L2 error ${relative.toExponential(2)}`);
    }
  },
);
