import "../../mod.ts"; // registers the CPU backend, as in any program using tessera
import assert from "node:assert/strict";
import { Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, Tanh } from "../../nn/layers.ts";
import type { Module } from "../../nn/module.ts";
import { SGD } from "../../optim/sgd.ts";
import { fromArray, type Tensor } from "../../tensor/tensor.ts";
import { crossEntropy } from "../../tensor/ops/softmax.ts";
import { Rng } from "../../tensor/random.ts";

/** Full-batch training; returns the loss before each step. */
async function train(model: Module, x: Tensor, labels: Int32Array, sgd: SGD, steps: number) {
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    sgd.zeroGrad();
    const loss = crossEntropy(model.forward(x), labels);
    loss.backward();
    losses.push(await loss.item());
    sgd.step();
  }
  return losses;
}

Deno.test("a 2-layer MLP learns XOR-like quadrants with SGD (loss falls below half)", async () => {
  // Points in [-1, 1]²; the label is 1 when x and y have the same sign: not linearly separable.
  const rng = new Rng(11);
  const n = 64;
  const points = new Float32Array(n * 2), labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const px = 2 * rng.uniform() - 1, py = 2 * rng.uniform() - 1;
    points.set([px, py], 2 * i);
    labels[i] = px * py > 0 ? 1 : 0;
  }
  const model = new Sequential([
    new Linear(2, 16, { rng: 1 }),
    new Tanh(),
    new Linear(16, 2, { rng: 2 }),
  ]);
  const sgd = new SGD(model.parameters(), { lr: 0.2, momentum: 0.9 });
  const losses = await train(model, fromArray(points, [n, 2]), labels, sgd, 150);
  const last = losses[losses.length - 1];
  assert.ok(last < 0.5 * losses[0], `loss ${losses[0]} -> ${last}`);
});

Deno.test("a small convnet learns horizontal vs vertical bars with SGD (loss falls below half)", async () => {
  // 8x8 images with a bright row (class 0) or column (class 1) at a random place, plus noise.
  const rng = new Rng(5);
  const n = 32, size = 8;
  const images = new Float32Array(n * size * size), labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    const line = rng.int(size);
    for (let r = 0; r < size; r++) {
      for (let c = 0; c < size; c++) {
        const onLine = labels[i] === 0 ? r === line : c === line;
        images[i * 64 + r * size + c] = (onLine ? 1 : 0) + 0.1 * rng.normal();
      }
    }
  }
  const model = new Sequential([
    new Conv2d(1, 4, 3, { padding: 1, rng: 3 }),
    new ReLU(),
    new MaxPool2d({ kernelSize: 2 }),
    new Flatten(),
    new Linear(4 * 4 * 4, 2, { rng: 4 }),
  ]);
  const sgd = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
  const losses = await train(model, fromArray(images, [n, 1, size, size]), labels, sgd, 40);
  const last = losses[losses.length - 1];
  assert.ok(last < 0.5 * losses[0], `loss ${losses[0]} -> ${last}`);
});
