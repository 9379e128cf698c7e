/**
 * The two-device AlexNet (examples/alexnet/parallel.ts, paper section 3.2) against the
 * one-device model: same losses and same weights after SGD steps, the transfers the split
 * implies (bytes counted from the layer shapes), the LRN difference the split introduces, and
 * flat memory on both devices. The CPU cases run everywhere (two "devices" that are both the
 * CPU backend still exercise every cut, copy and gradient sum); the GPU cases put the halves on
 * two WebGPU devices, "gpu0" and "gpu1".
 *
 * Parity runs use `dropout: false`: a half of fc6's output cannot draw the one-device masks
 * (see the module comment of parallel.ts).
 */

import assert from "node:assert/strict";
import {
  concat,
  crossEntropy,
  fromArray,
  loadCheckpoint,
  noGrad,
  Rng,
  SGD,
  type Tensor,
} from "../../mod.ts";
import { slice } from "../../tensor/ops/layout.ts";
import {
  Conv2d,
  Dropout,
  Flatten,
  Linear,
  LocalResponseNorm,
  Sequential,
} from "../../nn/layers.ts";
import { Module } from "../../nn/module.ts";
import type { Shape } from "../../tensor/shape.ts";
import { alexnetMini } from "../../models/alexnet.ts";
import { TwoDeviceAlexNet } from "../../examples/alexnet/parallel.ts";
import { trainTwoDevices } from "../../examples/alexnet/two_devices.ts";
import { DEFAULTS } from "../../examples/alexnet/config.ts";
import { type GpuMemoryStats, gpuMemoryStats } from "../../gpu/mod.ts";
import { getGpu, gpuTest } from "../support/gpu_helpers.ts";
import { assertClose } from "../support/helpers.ts";

const SHAPE = [4, 1, 28, 28];
const CLASSES = 10;
const SGD_OPTIONS = { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 };

function batch(step: number) {
  const rng = new Rng(100 + step);
  const images = new Float32Array(SHAPE.reduce((a, b) => a * b)).map(() => rng.normal());
  const labels = new Int32Array(SHAPE[0]).map(() => rng.int(CLASSES));
  return { images, labels };
}

/** `steps` SGD steps of a one-device model; returns the losses. */
async function trainOneDevice(model: Module, device: string, steps: number): Promise<number[]> {
  await model.to(device);
  const optimizer = new SGD(model.parameters(), SGD_OPTIONS);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const { images, labels } = batch(step);
    using x = fromArray(images, SHAPE, { device });
    optimizer.zeroGrad();
    using loss = crossEntropy(model.forward(x), labels);
    loss.backward();
    optimizer.step();
    losses.push(await loss.item());
  }
  optimizer.dispose();
  return losses;
}

/** `steps` SGD steps of `model` split over `devices`; returns the losses and the net. */
async function trainTwo(model: Sequential, devices: [string, string], steps: number) {
  const net = await TwoDeviceAlexNet.fromModel(model, devices);
  const optimizers: [SGD, SGD] = [
    new SGD(net.parameters(0), SGD_OPTIONS),
    new SGD(net.parameters(1), SGD_OPTIONS),
  ];
  const results = [];
  for (let step = 0; step < steps; step++) {
    const { images, labels } = batch(step);
    results.push(await net.trainStep(images, SHAPE, labels, optimizers));
  }
  for (const optimizer of optimizers) optimizer.dispose();
  return { net, results };
}

async function weightsOf(model: Module): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, p] of model.namedParameters()) {
    out.set(name, new Float32Array(await p.data()));
  }
  return out;
}

/**
 * Runs the same steps on one device (`buildReference()`) and on `build()` split over two,
 * from identical weights, and compares the losses (rtol 1e-4) and the merged weights
 * (rtol 1e-3).
 */
async function assertSameTraining(
  build: () => Sequential,
  oneDevice: string,
  devices: [string, string],
  { steps = 3, buildReference = build } = {},
) {
  const reference = buildReference();
  const expected = await trainOneDevice(reference, oneDevice, steps);
  const { net, results } = await trainTwo(build(), devices, steps);
  assertClose(results.map((r) => r.loss), expected, { rtol: 1e-4, atol: 0, what: "losses" });
  const merged = build(); // other weights until toModel overwrites every one of them
  await net.toModel(merged);
  net.dispose();
  const want = await weightsOf(reference);
  for (const [name, got] of await weightsOf(merged)) {
    assertClose(got, want.get(name)!, { rtol: 1e-3, atol: 1e-5, what: name });
  }
  for (const p of reference.parameters()) p.dispose();
  return results;
}

/**
 * Bytes one step copies in each direction of the pass, from the one-device layer shapes: at
 * each of conv3, fc6, fc7 and fc8 both halves of the previous activation cross (one half each
 * way: the whole activation in all), and half of the logits goes to device 0 for the loss.
 * Backward copies the gradients of the same tensors back.
 */
function expectedBytes(model: Sequential, inputShape: Shape): number {
  const sizes = new Map<string, number>();
  let shape = [...inputShape];
  for (const [name, layer] of model.children()) {
    shape = layer.outputShape(shape);
    sizes.set(name, shape.reduce((a, b) => a * b, 1));
  }
  const whole = sizes.get("pool2")! + sizes.get("pool5")! + sizes.get("relu6")! +
    sizes.get("relu7")!;
  return 4 * (whole + sizes.get("fc8")! / 2);
}

const mini = (options: { groups?: 1 | 2; lrn?: boolean; dropout?: boolean } = {}) => () =>
  alexnetMini({ groups: 2, lrn: false, dropout: false, seed: 7, ...options });

// ---------------------------------------------------------------------------------------------
// CPU: the split logic, everywhere

Deno.test("split on cpu+cpu: same losses and weights as one device over 3 SGD steps", async () => {
  const results = await assertSameTraining(mini(), "cpu", ["cpu", "cpu"]);
  const bytes = expectedBytes(mini()(), SHAPE);
  for (const { transfer } of results) {
    assert.equal(transfer.forwardBytes, bytes);
    assert.equal(transfer.backwardBytes, bytes);
  }
});

Deno.test("groups 1 splits too: every ungrouped layer is an exchange (8 stages)", async () => {
  const net = await TwoDeviceAlexNet.fromModel(mini({ groups: 1 })(), ["cpu", "cpu"]);
  assert.equal(net.stageCount, 8);
  net.dispose();
  await assertSameTraining(mini({ groups: 1 }), "cpu", ["cpu", "cpu"]);
});

Deno.test("fromModel cuts AlexNet where the paper's GPUs talked: conv3, fc6, fc7, fc8", async () => {
  const net = await TwoDeviceAlexNet.fromModel(mini({ lrn: true, dropout: true })(), [
    "cpu",
    "cpu",
  ]);
  assert.equal(net.stageCount, 5);
  // Half of every weighted layer on each device: 32/2 conv1 filters of 1x5x5, and so on.
  const counts = [0, 1].map((k) => net.parameters(k as 0 | 1).reduce((n, p) => n + p.size, 0));
  assert.equal(counts[0], counts[1]);
  assert.equal(counts[0] + counts[1], mini()().parameterCount());
  net.dispose();
});

Deno.test("toModel writes back exactly the weights fromModel split", async () => {
  const source = mini()();
  const net = await TwoDeviceAlexNet.fromModel(source, ["cpu", "cpu"]);
  const target = alexnetMini({ groups: 2, lrn: false, dropout: false, seed: 99 });
  await net.toModel(target);
  net.dispose();
  const want = await weightsOf(source);
  for (const [name, got] of await weightsOf(target)) {
    assert.deepEqual(got, want.get(name), name);
  }
});

/** LRN over each half of the channels separately: what each of the paper's GPUs computed. */
class PerHalfLrn extends Module {
  constructor(readonly lrn: LocalResponseNorm) {
    super();
  }
  forward(x: Tensor): Tensor {
    const half = x.shape[1] / 2;
    return concat([
      this.lrn.forward(slice(x, 1, 0, half)),
      this.lrn.forward(slice(x, 1, half, half)),
    ], 1);
  }
  outputShape(inputShape: Shape): number[] {
    return [...inputShape];
  }
}

Deno.test("with LRN the split equals a one-device model whose LRN sees only its own half", async () => {
  const withLrn = mini({ lrn: true });
  // The same layers (and weights) with each LRN replaced by the per-half one.
  const perHalf = () =>
    new Sequential(Object.fromEntries(
      withLrn().children().map((
        [name, layer],
      ) => [name, layer instanceof LocalResponseNorm ? new PerHalfLrn(layer) : layer]),
    ));
  // Inputs scaled so that LRN's sum of squares matters next to k = 2: at unit scale the
  // boundary changes the logits by ~3e-5, below the comparison's own tolerance.
  const images = batch(0).images.map((v) => 30 * v);
  const net = await TwoDeviceAlexNet.fromModel(withLrn(), ["cpu", "cpu"]);
  net.eval();
  const split = await net.forward(images, SHAPE);
  net.dispose();
  const logitsOf = (model: Module) => {
    using x = fromArray(images, SHAPE);
    using logits = noGrad(() => model.eval().forward(x));
    return new Float32Array(logits.dataSync());
  };
  const reference = logitsOf(perHalf());
  const tolerance = 1e-5 * Math.max(...reference.map(Math.abs));
  assertClose(split, reference, { rtol: 0, atol: tolerance, what: "logits" });
  // The plain one-device model lets the window cross channels 15/16 of conv1's 32: different,
  // by far more than the tolerance above.
  const plain = logitsOf(withLrn());
  const gap = Math.max(...split.map((v, i) => Math.abs(v - plain[i])));
  assert.ok(
    gap > 100 * tolerance,
    `LRN: split vs one-device max gap ${gap}, tolerance ${tolerance}`,
  );
  // And training follows the per-half reference.
  await assertSameTraining(withLrn, "cpu", ["cpu", "cpu"], { steps: 2, buildReference: perHalf });
});

Deno.test("fromModel rejects layouts it cannot split, saying why", async () => {
  // torchvision's order: dropout before fc6, on the activation both devices hold whole.
  const dropoutFirst = new Sequential({
    classifier: new Sequential([new Flatten(), new Dropout(0.5), new Linear(4, 2)]),
  });
  await assert.rejects(
    () => TwoDeviceAlexNet.fromModel(dropoutFirst, ["cpu", "cpu"]),
    /dropout "classifier\.1" acts on an activation both devices hold whole/,
  );
  // A layer that mixes channels in a way the split does not know of.
  await assert.rejects(
    () =>
      TwoDeviceAlexNet.fromModel(
        new Sequential({
          conv1: new Conv2d(1, 4, 3),
          norm: new PerHalfLrn(new LocalResponseNorm()),
        }),
        ["cpu", "cpu"],
      ),
    /cannot split "norm" \(PerHalfLrn\)/,
  );
  await assert.rejects(
    () => TwoDeviceAlexNet.fromModel(alexnetMini({ numClasses: 5 }), ["cpu", "cpu"]),
    /"fc8" has 5 outputs, which do not split in two halves/,
  );
});

Deno.test("trainTwoDevices runs the shared loop, honours --max-steps and writes best.safetensors", async () => {
  const out = await Deno.makeTempDir();
  try {
    const lines: number[] = [];
    const result = await trainTwoDevices(
      {
        ...DEFAULTS,
        out,
        epochs: 2,
        batchSize: 8,
        trainLimit: 32,
        valSize: 16,
        testLimit: 16,
        maxSteps: 4, // one epoch of 4 steps, of 2 epochs
        timeLimit: 0,
        schedule: "none",
      },
      { devices: ["cpu", "cpu"], quiet: true, onStepLoss: (step) => lines.push(step) },
    );
    assert.deepEqual(lines, [1, 2, 3, 4]);
    assert.equal(result.steps, 4);
    const epochs = result.metrics.filter((m) => m.kind === "epoch");
    assert.equal(epochs.length, 1);
    const [epoch] = epochs;
    assert.ok(Number.isFinite(epoch.trainLoss) && Number.isFinite(epoch.testLoss!));
    assert.ok(epoch.testAccuracy! >= 0 && epoch.testAccuracy! <= 1);
    assert.ok(epoch.valAccuracy! >= 0 && epoch.valAccuracy! <= 1);
    assert.ok(result.transferPerStep.forwardBytes > 0 && result.transferPerStep.backwardBytes > 0);
    // The merged weights load, name for name and shape for shape, into the one-device model.
    const model = alexnetMini({ seed: 99 });
    await loadCheckpoint(`${out}/best.safetensors`, { model });
    assert.equal(model.parameterCount(), alexnetMini().parameterCount());
    await Deno.stat(`${out}/metrics.jsonl`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// GPU: the halves on two WebGPU devices

gpuTest("split on gpu0+gpu1: same losses and weights as one device, transfers timed", async () => {
  const gpu1 = await getGpu({ name: "gpu1" });
  const results = await assertSameTraining(mini(), "gpu0", ["gpu0", "gpu1"]);
  const bytes = expectedBytes(mini()(), SHAPE);
  for (const { transfer } of results) {
    assert.equal(transfer.forwardBytes, bytes);
    assert.equal(transfer.backwardBytes, bytes);
    assert.ok(transfer.forwardMs > 0 && transfer.backwardMs > 0, JSON.stringify(transfer));
  }
  const t = results.at(-1)!.transfer;
  console.log(
    `batch 4 mini AlexNet, per step: ${t.forwardMs.toFixed(2)} ms forward, ` +
      `${t.backwardMs.toFixed(2)} ms backward, ${t.forwardBytes} bytes each way`,
  );
  await gpu1.runtime.checkErrors();
}, { name: "gpu0" });

/**
 * Memory in use may go down between two moments (buffers released late, after the queue
 * finishes with them) but must not grow: the most held in steps 16..20 may exceed the most held
 * in steps 3..5 by at most this allowance, which a leak of one buffer a step (11 or more
 * buffers by step 16) exceeds.
 */
const MEMORY_ALLOWANCE = { liveBuffers: 4, bytesInUse: 64 * 1024 };

gpuTest("memory stays flat on both devices over 20 two-device steps", async (gpu0) => {
  const gpu1 = await getGpu({ name: "gpu1" });
  // The default mini model: LRN and dropout on, the paths the parity runs leave out.
  const { net } = await trainTwo(mini({ lrn: true, dropout: true })(), ["gpu0", "gpu1"], 0);
  const optimizers: [SGD, SGD] = [
    new SGD(net.parameters(0), SGD_OPTIONS),
    new SGD(net.parameters(1), SGD_OPTIONS),
  ];
  const losses: number[] = [];
  const held: GpuMemoryStats[][] = [[], []]; // per device, after each step
  for (let step = 1; step <= 20; step++) {
    const { images, labels } = batch(step % 2);
    losses.push((await net.trainStep(images, SHAPE, labels, optimizers)).loss);
    gpu0.runtime.flush();
    gpu1.runtime.flush();
    held.forEach((stats, k) => stats.push(gpuMemoryStats(`gpu${k}`)));
  }
  const most = (stats: GpuMemoryStats[], key: "liveBuffers" | "bytesInUse") =>
    Math.max(...stats.map((s) => s[key]));
  for (const [k, stats] of held.entries()) {
    for (const key of ["liveBuffers", "bytesInUse"] as const) {
      const early = most(stats.slice(2, 5), key), late = most(stats.slice(15), key);
      assert.ok(
        late <= early + MEMORY_ALLOWANCE[key],
        `gpu${k} ${key} grew: at most ${early} in steps 3..5, ${late} in steps 16..20 ` +
          `(per step: ${stats.map((s) => s[key]).join(", ")})`,
      );
    }
  }
  assert.ok(losses.every(Number.isFinite), `losses: ${losses.join(", ")}`);
  for (const optimizer of optimizers) optimizer.dispose();
  net.dispose();
  await gpu1.runtime.checkErrors();
}, { name: "gpu0" });
