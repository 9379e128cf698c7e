import "../mod.ts"; // registers the CPU backend, as in any program using tessera
import assert from "node:assert/strict";
import { loadCheckpoint, saveCheckpoint } from "../io/checkpoint.ts";
import { encodeSafetensors, loadSafetensors, type TensorEntry } from "../io/safetensors.ts";
import { Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential } from "../nn/layers.ts";
import { SGD } from "../optim/sgd.ts";
import { ReduceLROnPlateau } from "../optim/schedules.ts";
import { fromArray, type Tensor } from "../tensor/tensor.ts";
import { crossEntropy } from "../tensor/ops/softmax.ts";
import { Rng } from "../tensor/random.ts";
import { alexnetTorchvision } from "../models/alexnet.ts";

/** A small convnet with dropout, so a resumed run depends on the dropout generators' state. */
function model(seed: number): Sequential {
  const rng = new Rng(seed);
  return new Sequential({
    features: new Sequential([
      new Conv2d(1, 4, 3, { padding: 1, rng }),
      new ReLU(),
      new MaxPool2d({ kernelSize: 2 }),
    ]),
    flatten: new Flatten(),
    classifier: new Sequential([
      new Dropout(0.5, { seed: seed + 1 }),
      new Linear(64, 16, { rng }),
      new ReLU(),
      new Dropout(0.5, { seed: seed + 2 }),
      new Linear(16, 3, { rng }),
    ]),
  });
}

function run(seed: number) {
  const net = model(seed);
  const sgd = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  return { net, sgd, schedule: new ReduceLROnPlateau(sgd) };
}

/** Batch `i` of a fixed synthetic data set. */
function batch(i: number): { x: Tensor; labels: Int32Array } {
  const rng = new Rng(1000 + i);
  const x = new Float32Array(6 * 64);
  for (let k = 0; k < x.length; k++) x[k] = rng.normal();
  const labels = Int32Array.from({ length: 6 }, () => rng.int(3));
  return { x: fromArray(x, [6, 1, 8, 8]), labels };
}

async function trainStep(r: ReturnType<typeof run>, i: number): Promise<number> {
  const { x, labels } = batch(i);
  r.sgd.zeroGrad();
  const loss = crossEntropy(r.net.forward(x), labels);
  loss.backward();
  r.sgd.step();
  return await loss.item();
}

function bytes(t: Tensor): Uint8Array {
  const data = t.dataSync();
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

Deno.test("checkpoint round trip is bit-exact: weights, velocities, lr, schedule, metadata", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ckpt.safetensors`;
  const a = run(1);
  for (let i = 0; i < 3; i++) await trainStep(a, i);
  a.schedule.step(0.5);
  a.schedule.step(0.6); // no improvement: lr 0.05 -> 0.005
  const config = { batch: 6, lr: 0.05, layers: ["conv", "fc"] };
  await saveCheckpoint(path, {
    model: a.net,
    optimizer: a.sgd,
    schedule: a.schedule,
    metadata: { epoch: 2, step: 3, config, rngState: new Rng(3).state() },
  });

  const b = run(2);
  const metadata = await loadCheckpoint(path, {
    model: b.net,
    optimizer: b.sgd,
    schedule: b.schedule,
  });
  assert.deepEqual(metadata, { epoch: 2, step: 3, config, rngState: new Rng(3).state() });
  for (const [name, p] of a.net.namedParameters()) {
    assert.deepEqual(bytes(b.net.namedParameters().get(name)!), bytes(p), name);
    assert.deepEqual(
      bytes(b.sgd.velocity(b.net.namedParameters().get(name)!)!),
      bytes(a.sgd.velocity(p)!),
      name,
    );
  }
  assert.equal(b.sgd.lr, a.sgd.lr);
  assert.deepEqual(b.schedule.stateDict(), a.schedule.stateDict());
  assert.deepEqual(b.net.rngStates(), a.net.rngStates());

  // The file is an ordinary safetensors state dict with JSON metadata strings.
  const file = await loadSafetensors(path);
  assert.ok(file.tensors.has("features.0.weight"));
  assert.ok(file.tensors.has("optimizer.velocity.classifier.4.bias"));
  assert.equal(file.metadata.epoch, "2");
  assert.equal(JSON.parse(file.metadata["tessera.optimizer"]).rule, "paper");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("resuming from a checkpoint gives exactly the losses of an uninterrupted run (dropout on)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/resume.safetensors`;
  const straight = run(1);
  const expected: number[] = [];
  for (let i = 0; i < 6; i++) expected.push(await trainStep(straight, i));

  const first = run(1);
  const losses: number[] = [];
  for (let i = 0; i < 3; i++) losses.push(await trainStep(first, i));
  await saveCheckpoint(path, { model: first.net, optimizer: first.sgd, metadata: { step: 3 } });
  // A fresh process: other initial weights, other dropout seeds, no velocities.
  const resumed = run(7);
  const { step } = await loadCheckpoint(path, { model: resumed.net, optimizer: resumed.sgd });
  for (let i = step as number; i < 6; i++) losses.push(await trainStep(resumed, i));
  assert.deepEqual(losses, expected);

  // Without the dropout generators' state the masks differ, and so do the losses: the test
  // above could fail.
  const noRng = run(7);
  await loadCheckpoint(path, { model: noRng.net, optimizer: noRng.sgd });
  noRng.net.loadRngStates(run(7).net.rngStates());
  assert.notEqual(await trainStep(noRng, 3), expected[3]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a torchvision AlexNet state_dict in safetensors loads into alexnetTorchvision() unrenamed", async () => {
  const shapes: Record<string, number[]> = {
    "features.0.weight": [64, 3, 11, 11],
    "features.0.bias": [64],
    "features.3.weight": [192, 64, 5, 5],
    "features.3.bias": [192],
    "features.6.weight": [384, 192, 3, 3],
    "features.6.bias": [384],
    "features.8.weight": [256, 384, 3, 3],
    "features.8.bias": [256],
    "features.10.weight": [256, 256, 3, 3],
    "features.10.bias": [256],
    "classifier.1.weight": [4096, 9216],
    "classifier.1.bias": [4096],
    "classifier.4.weight": [4096, 4096],
    "classifier.4.bias": [4096],
    "classifier.6.weight": [1000, 4096],
    "classifier.6.bias": [1000],
  };
  const entries = new Map<string, TensorEntry>();
  let k = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const offset = k++;
    for (let i = 0; i < data.length; i++) data[i] = ((i * 7 + offset) % 101) * 1e-3 - 0.05;
    entries.set(name, { dtype: "F32", shape, data });
  }
  const dir = await Deno.makeTempDir();
  const path = `${dir}/alexnet-torchvision.safetensors`;
  // safetensors.torch.save_file writes {"format": "pt"} as metadata.
  await Deno.writeFile(path, encodeSafetensors(entries, { format: "pt" }));
  const net = alexnetTorchvision();
  const metadata = await loadCheckpoint(path, { model: net });
  assert.deepEqual(metadata, { format: "pt" });
  for (const [name, p] of net.namedParameters()) {
    // A plain loop: assert.deepEqual on fc6's 37.7M elements takes seconds.
    const actual = p.dataSync(), expected = entries.get(name)!.data;
    assert.equal(actual.length, expected.length, name);
    const first = actual.findIndex((v, i) => v !== expected[i]);
    assert.equal(first, -1, `${name}[${first}]: ${actual[first]} vs ${expected[first]}`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("checkpoint mismatches name the file, the key and both shapes, and change nothing", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/small.safetensors`;
  const a = run(1);
  await saveCheckpoint(path, { model: a.net });

  const wider = new Sequential({
    features: new Sequential([
      new Conv2d(1, 4, 3, { padding: 1 }),
      new ReLU(),
      new MaxPool2d({ kernelSize: 2 }),
    ]),
    flatten: new Flatten(),
    classifier: new Sequential([
      new Dropout(0.5),
      new Linear(64, 32),
      new ReLU(),
      new Dropout(0.5),
      new Linear(32, 3),
    ]),
  });
  const before = wider.parameters().map((p) => p.dataSync().slice());
  await assert.rejects(
    () => loadCheckpoint(path, { model: wider }),
    (error: Error) => {
      assert.ok(error.message.includes(path), error.message);
      assert.match(
        error.message,
        /"classifier\.1\.weight" has shape \[32,64\] in the model but \[16,64\]/,
      );
      return true;
    },
  );
  wider.parameters().forEach((p, i) => assert.deepEqual(p.dataSync(), before[i]));

  // Asking for optimizer state from a file saved without it is an error, before any write.
  const b = run(2);
  const snapshot = b.net.parameters().map((p) => p.dataSync().slice());
  await assert.rejects(
    () => loadCheckpoint(path, { model: b.net, optimizer: b.sgd }),
    /small\.safetensors\): the file holds no optimizer state/,
  );
  b.net.parameters().forEach((p, i) => assert.deepEqual(p.dataSync(), snapshot[i]));
  await assert.rejects(
    () => saveCheckpoint(path, { model: a.net, metadata: { "tessera.format": "x" } }),
    /metadata key "tessera\.format" is reserved/,
  );
  await Deno.remove(dir, { recursive: true });
});
