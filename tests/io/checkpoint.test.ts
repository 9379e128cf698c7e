import "../../mod.ts"; // registers the CPU backend, as in any program using tessera
import assert from "node:assert/strict";
import { loadCheckpoint, saveCheckpoint } from "../../io/checkpoint.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  type TensorEntry,
} from "../../io/safetensors.ts";
import { Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential } from "../../nn/layers.ts";
import { SGD } from "../../optim/sgd.ts";
import { ReduceLROnPlateau } from "../../optim/schedules.ts";
import { fromArray, type Tensor } from "../../tensor/tensor.ts";
import { crossEntropy } from "../../tensor/ops/softmax.ts";
import { Rng } from "../../tensor/random.ts";
import { alexnetTorchvision } from "../../models/alexnet.ts";

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

// ---------------------------------------------------------------------------------------------
// Corrupt files are refused before anything changes.

type FileParts = { tensors: Map<string, TensorEntry>; metadata: Record<string, string> };

/** Everything loadCheckpoint could change, as plain values. */
function stateOf(r: ReturnType<typeof run>) {
  return {
    weights: r.net.parameters().map((p) => bytes(p).slice()),
    velocities: r.net.parameters().map((p) => {
      const v = r.sgd.velocity(p);
      return v ? bytes(v).slice() : null;
    }),
    groups: r.sgd.groups.map(({ lr, momentum, weightDecay }) => ({ lr, momentum, weightDecay })),
    schedule: r.schedule.stateDict(),
    rng: r.net.rngStates(),
  };
}

function editJson(key: string, edit: (value: Record<string, unknown>) => unknown) {
  return (file: FileParts) => {
    file.metadata[key] = JSON.stringify(edit(JSON.parse(file.metadata[key])));
  };
}

function setRaw(key: string, text: string | undefined) {
  return (file: FileParts) => {
    if (text === undefined) delete file.metadata[key];
    else file.metadata[key] = text;
  };
}

const OPT = "tessera.optimizer", SCHED = "tessera.schedule", RNG = "tessera.rng_states";
const withoutField = (field: string) =>
  editJson(OPT, (o) => {
    delete (o.groups as Record<string, unknown>[])[0][field];
    return o;
  });
const withField = (field: string, value: unknown) =>
  editJson(OPT, (o) => {
    (o.groups as Record<string, unknown>[])[0][field] = value;
    return o;
  });

// deno-fmt-ignore
const corruptions: [string, (file: FileParts) => void, RegExp][] = [
  ["optimizer groups lack lr", withoutField("lr"), /optimizer state "tessera\.optimizer": groups\[0\]\.lr must be a finite number >= 0, got undefined/],
  ["optimizer groups lack momentum", withoutField("momentum"), /groups\[0\]\.momentum must be in \[0, 1\), got undefined/],
  ["optimizer groups lack weightDecay", withoutField("weightDecay"), /groups\[0\]\.weightDecay must be a finite number >= 0, got undefined/],
  ["optimizer groups lack size", withoutField("size"), /groups\[0\]\.size must be an integer >= 0, got undefined/],
  ["optimizer metadata null", setRaw(OPT, "null"), /optimizer state "tessera\.optimizer" must be a JSON object \{ rule, groups \}, got null/],
  ["optimizer metadata an array", setRaw(OPT, "[1]"), /optimizer state "tessera\.optimizer" must be a JSON object/],
  ["optimizer metadata a string", setRaw(OPT, '"paper"'), /must be a JSON object \{ rule, groups \}, got the string "paper"/],
  ['optimizer metadata {"rule":"paper"}', setRaw(OPT, '{"rule":"paper"}'), /groups must be an array of \{ lr, momentum, weightDecay, size \}, got undefined/],
  ["optimizer groups null", setRaw(OPT, '{"rule":"paper","groups":null}'), /groups must be an array/],
  ["optimizer group null", setRaw(OPT, '{"rule":"paper","groups":[null]}'), /groups\[0\] must be an object, got null/],
  ["optimizer rule missing", editJson(OPT, (o) => ({ groups: o.groups })), /rule must be "paper" or "pytorch", got undefined/],
  ["optimizer rule of the other kind", editJson(OPT, (o) => ({ ...o, rule: "pytorch" })), /saved with rule "pytorch" but this optimizer uses "paper"/],
  ['lr "abc"', withField("lr", "abc"), /groups\[0\]\.lr must be a finite number >= 0, got the string "abc"/],
  ['lr "NaN"', withField("lr", "NaN"), /groups\[0\]\.lr must be a finite number >= 0, got the string "NaN"/],
  ["lr null", withField("lr", null), /groups\[0\]\.lr must be a finite number >= 0, got null/],
  ["lr 1e999 (Infinity after JSON.parse)", setRaw(OPT, '{"rule":"paper","groups":[{"lr":1e999,"momentum":0.9,"weightDecay":0,"size":6}]}'), /groups\[0\]\.lr must be a finite number >= 0, got Infinity/],
  ["lr negative", withField("lr", -0.1), /groups\[0\]\.lr must be a finite number >= 0, got -0\.1/],
  ["momentum 1.5", withField("momentum", 1.5), /groups\[0\]\.momentum must be in \[0, 1\), got 1\.5/],
  ["momentum an object", withField("momentum", { v: 1 }), /groups\[0\]\.momentum must be in \[0, 1\), got \{"v":1\}/],
  ["group size wrong", withField("size", 5), /the state has groups of sizes \[5\], this optimizer \[6\]/],
  ["two groups instead of one", editJson(OPT, (o) => ({ ...o, groups: [...(o.groups as unknown[]), ...(o.groups as unknown[])] })), /groups of sizes \[6, 6\], this optimizer \[6\]/],
  ["optimizer metadata not JSON", setRaw(OPT, "{rule:"), /optimizer state "tessera\.optimizer" is not valid JSON/],
  ["optimizer metadata missing", setRaw(OPT, undefined), /the file holds no optimizer state/],
  ['schedule {"kind":"ReduceLROnPlateau","best":0.5}', setRaw(SCHED, '{"kind":"ReduceLROnPlateau","best":0.5}'), /schedule state "tessera\.schedule": badEpochs must be an integer >= 0, got undefined/],
  ["schedule null", setRaw(SCHED, "null"), /schedule state "tessera\.schedule" must be a JSON object, got null/],
  ["schedule of another kind", setRaw(SCHED, '{"kind":"StepLR","epoch":1,"baseLrs":[0.1]}'), /the state belongs to "StepLR", not ReduceLROnPlateau/],
  ["schedule best a string", editJson(SCHED, (s) => ({ ...s, best: "0.5" })), /best \(or null\) must be a finite number, got the string "0\.5"/],
  ["schedule epoch fractional", editJson(SCHED, (s) => ({ ...s, epoch: 1.5 })), /epoch must be an integer >= 0, got 1\.5/],
  ["schedule drops negative", editJson(SCHED, (s) => ({ ...s, drops: -1 })), /drops must be an integer >= 0, got -1/],
  ["schedule missing", setRaw(SCHED, undefined), /the file holds no schedule state \("tessera\.schedule"\)/],
  ["schedule not JSON", setRaw(SCHED, "{"), /schedule state "tessera\.schedule" is not valid JSON/],
  ['RNG state {"bogus":true}', setRaw(RNG, '{"bogus":true}'), /the file has generator states for \[bogus\] but the model's generators are \[classifier\.0, classifier\.3\]/],
  ["rng_states null", setRaw(RNG, "null"), /generator states "tessera\.rng_states" must be a JSON object/],
  ["rng_states missing", setRaw(RNG, undefined), /generator states "tessera\.rng_states" are missing/],
  ["rng_states words not numbers", editJson(RNG, (r) => ({ ...r, "classifier.0": ["a", 1, 2, 3] })), /"classifier\.0" must be four 32-bit unsigned integers, got \["a",1,2,3\]/],
  ["rng_states three words", editJson(RNG, (r) => ({ ...r, "classifier.3": [1, 2, 3] })), /"classifier\.3" must be four 32-bit unsigned integers/],
  ["rng_states word too large", editJson(RNG, (r) => ({ ...r, "classifier.3": [1, 2, 3, 2 ** 32] })), /"classifier\.3" must be four 32-bit unsigned integers/],
  ["rng_states all zeros", editJson(RNG, (r) => ({ ...r, "classifier.3": [0, 0, 0, 0] })), /"classifier\.3" is all zeros/],
  ["unknown format", setRaw("tessera.format", "tessera-checkpoint/9"), /unknown format "tessera-checkpoint\/9"/],
  ["NaN in a weight", (f) => { f.tensors.get("classifier.1.bias")!.data[3] = NaN; }, /tensor "classifier\.1\.bias" holds NaN at element 3: the run that saved it diverged/],
  ["Infinity in a velocity", (f) => { f.tensors.get("optimizer.velocity.features.0.bias")!.data[1] = -Infinity; }, /velocity 1 holds -Infinity at element 1/],
  ["weight saved as I32", (f) => { f.tensors.set("features.0.bias", { dtype: "I32", shape: [4], data: new Int32Array(4) }); }, /tensor "features\.0\.bias" is I32; parameters and velocities must be F32 or F64/],
  ["weight missing", (f) => { f.tensors.delete("classifier.4.weight"); }, /missing keys: classifier\.4\.weight/],
  ["unexpected weight", (f) => { f.tensors.set("extra", { dtype: "F32", shape: [1], data: new Float32Array(1) }); }, /unexpected keys: extra/],
  ["weight of the wrong shape", (f) => { f.tensors.set("classifier.4.bias", { dtype: "F32", shape: [4], data: new Float32Array(4) }); }, /"classifier\.4\.bias" has shape \[3\] in the model but \[4\] in the file/],
  ["velocity of the wrong shape", (f) => { f.tensors.set("optimizer.velocity.classifier.4.bias", { dtype: "F32", shape: [2], data: new Float32Array(2) }); }, /"optimizer\.velocity\.classifier\.4\.bias" has shape \[2\] in the file but the parameter has \[3\]/],
  ["velocity of no parameter", (f) => { f.tensors.set("optimizer.velocity.nope", { dtype: "F32", shape: [1], data: new Float32Array(1) }); }, /"optimizer\.velocity\.nope" belongs to no optimizer parameter/],
];

Deno.test("every corrupt checkpoint is refused, naming file and field, and changes nothing", async (t) => {
  const dir = await Deno.makeTempDir();
  const good = `${dir}/good.safetensors`;
  const a = run(1);
  for (let i = 0; i < 2; i++) await trainStep(a, i);
  a.schedule.step(0.5);
  await saveCheckpoint(good, { model: a.net, optimizer: a.sgd, schedule: a.schedule });
  const goodBytes = await Deno.readFile(good);

  // The target has trained too (velocities, schedule counters): "unchanged" means something.
  const b = run(2);
  for (let i = 0; i < 3; i++) await trainStep(b, i);
  b.schedule.step(0.7);
  b.schedule.step(0.8);
  b.net.loadRngStates({ "classifier.0": [1, 2, 3, 4], "classifier.3": [5, 6, 7, 8] });
  const before = stateOf(b);
  assert.notDeepEqual(before.weights, stateOf(a).weights);

  for (const [label, corrupt, message] of corruptions) {
    await t.step(label, async () => {
      const file = decodeSafetensors(goodBytes);
      corrupt(file);
      const path = `${dir}/bad.safetensors`;
      await Deno.writeFile(path, encodeSafetensors(file.tensors, file.metadata));
      await assert.rejects(
        () => loadCheckpoint(path, { model: b.net, optimizer: b.sgd, schedule: b.schedule }),
        (error: Error) => {
          assert.ok(error.message.startsWith(`loadCheckpoint(${path}): `), error.message);
          assert.match(error.message, message);
          return true;
        },
      );
      assert.deepEqual(stateOf(b), before, `${label}: the rejected file changed the run`);
    });
  }
  // The good file still loads into the same objects.
  await loadCheckpoint(good, { model: b.net, optimizer: b.sgd, schedule: b.schedule });
  assert.deepEqual(stateOf(b), stateOf(a));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadCheckpoint refuses bad options with the file named; allowNonFinite loads a diverged file", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ckpt.safetensors`;
  const a = run(1);
  await saveCheckpoint(path, { model: a.net });
  await assert.rejects(
    () => loadCheckpoint(path, { model: {} as Sequential }),
    /^Error: loadCheckpoint\(.*ckpt\.safetensors\): options\.model must be a Module/,
  );
  await assert.rejects(
    () => loadCheckpoint(path, null as unknown as { model: Sequential }),
    /loadCheckpoint\(.*\): options must be/,
  );
  await assert.rejects(
    () => loadCheckpoint(path, { model: a.net, optimizer: {} as SGD }),
    /options\.optimizer must be an SGD optimizer/,
  );

  // A diverged model is not saved unless asked, and then only loads when asked.
  const p = a.net.namedParameters().get("classifier.4.bias")!;
  const values = p.dataSync().slice();
  values[0] = NaN;
  await a.net.loadStateDict(new Map([["classifier.4.bias", { shape: [3], data: values }]]), {
    strict: false,
  });
  const before = await Deno.readFile(path);
  await assert.rejects(
    () => saveCheckpoint(path, { model: a.net }),
    /saveCheckpoint\(.*\): "classifier\.4\.bias" holds NaN at element 0; the model diverged, so nothing was written/,
  );
  assert.deepEqual(await Deno.readFile(path), before);
  const diverged = `${dir}/diverged.safetensors`;
  await saveCheckpoint(diverged, { model: a.net, allowNonFinite: true });
  const b = run(2);
  await assert.rejects(() => loadCheckpoint(diverged, { model: b.net }), /holds NaN at element 0/);
  await loadCheckpoint(diverged, { model: b.net, allowNonFinite: true });
  assert.ok(Number.isNaN(b.net.namedParameters().get("classifier.4.bias")!.dataSync()[0]));
  await Deno.remove(dir, { recursive: true });
});
