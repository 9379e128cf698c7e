/**
 * The training worker: fetches the Fashion-MNIST subset, builds AlexNet-mini on WebGPU (or
 * the CPU backend: web/choose_device.ts picks the faster), and trains it step after step,
 * posting each step's loss and accuracy, the conv1 filters and the test accuracy to the page.
 * Training runs here, off the page's thread, so the page stays responsive; between steps the
 * worker answers the page's pause, resume and predict messages.
 *
 * The library runs unchanged: this file uses only its public modules and the browser's
 * `fetch`, the same way a Deno program would use the file system.
 *
 * @module
 */

/// <reference lib="webworker" />

import {
  argmax,
  crossEntropy,
  fromArray,
  type Module,
  noGrad,
  SGD,
  softmax,
  type Tensor,
} from "../mod.ts";
import { alexnetMini } from "../models/alexnet.ts";
import { parseIdx } from "../data/idx.ts";
import { FASHION_MNIST_CLASSES, FASHION_MNIST_FILES } from "../data/fashion_mnist.ts";
import { FASHION_MNIST_MEAN, FASHION_MNIST_STD } from "../data/pipeline.ts";
import { Rng } from "../tensor/random.ts";
import type { FromWorker, ToWorker, TrainOptions } from "./protocol.ts";
import { chooseDevice } from "./choose_device.ts";

const PIXELS = 28 * 28;

function post(message: FromWorker, transfer: Transferable[] = []): void {
  self.postMessage(message, transfer);
}

/** One split: images normalized like the Deno example's pipeline, and labels. */
interface Split {
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

async function fetchSplit(imagesFile: string, labelsFile: string): Promise<Split> {
  const get = async (file: string) => {
    // This script is dist/train_worker.js; the data sits beside dist/.
    const url = new URL(`../data/fashion-mnist/${file}`, self.location.href);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`fetch ${url}: HTTP ${response.status}`);
    return parseIdx(new Uint8Array(await response.arrayBuffer()), file);
  };
  const [images, labels] = await Promise.all([get(imagesFile), get(labelsFile)]);
  const bytes = images.data as Uint8Array;
  const normalized = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    normalized[i] = (bytes[i] / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD;
  }
  return { images: normalized, labels: Int32Array.from(labels.data), count: images.dims[0] };
}

/** Copies the images at `indices` into one batch. */
function gather(split: Split, indices: ArrayLike<number>): { x: Float32Array; y: Int32Array } {
  const x = new Float32Array(indices.length * PIXELS);
  const y = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    x.set(split.images.subarray(indices[i] * PIXELS, (indices[i] + 1) * PIXELS), i * PIXELS);
    y[i] = split.labels[indices[i]];
  }
  return { x, y };
}

// Pause, resume and predict arrive while the loop awaits; the loop acts on them between steps.
let paused = false;
let pendingPixels: Float32Array | null = null;
let wake: () => void = () => {};

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "start") {
    train(message.options).catch((error: Error) => post({ type: "error", message: error.message }));
  } else if (message.type === "pause") {
    paused = true;
  } else if (message.type === "resume") {
    paused = false;
  } else if (message.type === "predict") {
    pendingPixels = message.pixels;
  }
  wake();
};

async function train(options: TrainOptions): Promise<void> {
  post({ type: "status", text: "fetching the Fashion-MNIST subset…" });
  const [trainSet, testSet] = await Promise.all([
    fetchSplit(FASHION_MNIST_FILES.trainImages, FASHION_MNIST_FILES.trainLabels),
    fetchSplit(FASHION_MNIST_FILES.testImages, FASHION_MNIST_FILES.testLabels),
  ]);
  const choice = await chooseDevice(options.device, new URL("./gemm_worker.js", import.meta.url));
  post({ type: "ready", ...choice });
  const device = choice.device;
  const model = await alexnetMini({ seed: 1 }).to(device);
  const optimizer = new SGD(model.parameters(), {
    lr: options.lr,
    momentum: 0.9,
    weightDecay: 5e-4,
  });
  const conv1 = model.namedParameters().get("conv1.weight")!;
  post({
    type: "status",
    text: `training AlexNet-mini (${
      model.parameterCount().toLocaleString("en-US")
    } parameters) on ${trainSet.count} images`,
  });
  await sendFilters(conv1, 0);

  const rng = new Rng(2012);
  let order = rng.permutation(trainSet.count);
  let cursor = 0;
  let seconds = 0; // training time, without pauses and evaluations
  for (let step = 1; options.maxSteps === 0 || step <= options.maxSteps; step++) {
    await betweenSteps(model);
    const stepStarted = performance.now();
    if (cursor + options.batchSize > trainSet.count) {
      order = rng.permutation(trainSet.count);
      cursor = 0;
    }
    const batch = gather(trainSet, order.subarray(cursor, cursor += options.batchSize));
    model.train();
    using x = fromArray(batch.x, [options.batchSize, 1, 28, 28], { device });
    using y = fromArray(batch.y, [options.batchSize], { device });
    const logits = model.forward(x);
    using predicted = argmax(logits);
    using loss = crossEntropy(logits, y);
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    const [lossValue, labels] = [await loss.item(), await predicted.data()];
    let correct = 0;
    for (let i = 0; i < batch.y.length; i++) if (labels[i] === batch.y[i]) correct++;
    seconds += (performance.now() - stepStarted) / 1000;
    post({
      type: "step",
      step,
      loss: lossValue,
      accuracy: correct / batch.y.length,
      imagesPerSecond: (step * options.batchSize) / seconds,
    });
    if (step % 5 === 0) await sendFilters(conv1, step);
    if (step % options.testEvery === 0) await evaluate(model, testSet, options, step, device);
  }
  post({ type: "done", steps: options.maxSteps });
  // Stay available for predictions after the last step.
  for (;;) {
    await new Promise<void>((resolve) => wake = resolve);
    await betweenSteps(model);
  }
}

/** Answers a pending prediction, and waits here while paused. */
async function betweenSteps(model: Module): Promise<void> {
  for (;;) {
    if (pendingPixels !== null) {
      const pixels = pendingPixels;
      pendingPixels = null;
      await predict(model, pixels);
    }
    if (!paused) return;
    await new Promise<void>((resolve) => wake = resolve);
  }
}

async function predict(model: Module, pixels: Float32Array): Promise<void> {
  const normalized = pixels.map((v) => (v - FASHION_MNIST_MEAN) / FASHION_MNIST_STD);
  const device = model.parameters()[0].device;
  model.eval();
  const probabilities = noGrad(() => {
    using x = fromArray(normalized, [1, 1, 28, 28], { device });
    using logits = model.forward(x);
    return softmax(logits);
  });
  const p = await probabilities.data();
  probabilities.dispose();
  const top = [...p].map((probability, i) => ({ label: FASHION_MNIST_CLASSES[i], probability }))
    .sort((a, b) => b.probability - a.probability).slice(0, 5);
  post({ type: "prediction", top });
}

async function evaluate(
  model: Module,
  testSet: Split,
  options: TrainOptions,
  step: number,
  device: string,
): Promise<void> {
  model.eval();
  const count = Math.min(options.testImages, testSet.count);
  let correct = 0;
  for (let start = 0; start < count; start += 100) {
    const indices = Array.from({ length: Math.min(100, count - start) }, (_, i) => start + i);
    const batch = gather(testSet, indices);
    const predicted = noGrad(() => {
      using x = fromArray(batch.x, [indices.length, 1, 28, 28], { device });
      using logits = model.forward(x);
      return argmax(logits);
    });
    const labels = await predicted.data();
    predicted.dispose();
    for (let i = 0; i < indices.length; i++) if (labels[i] === batch.y[i]) correct++;
  }
  post({ type: "test", step, accuracy: correct / count });
}

async function sendFilters(conv1: Tensor, step: number): Promise<void> {
  const weights = new Float32Array(await conv1.data());
  post({ type: "filters", step, shape: [...conv1.shape], weights }, [weights.buffer]);
}
