import "../../mod.ts"; // registers the CPU backend, as in any program using tessera
import assert from "node:assert/strict";
import { Module, parameter } from "../../nn/module.ts";
import { Conv2d, Dropout, Flatten, Linear, ReLU, Sequential } from "../../nn/layers.ts";
import { ones, randn, type Tensor } from "../../tensor/tensor.ts";
import { noGrad } from "../../tensor/autograd.ts";
import type { Shape } from "../../tensor/shape.ts";

function small(): Sequential {
  return new Sequential({
    features: new Sequential([
      new Conv2d(1, 2, 3, { padding: 1, rng: 1 }),
      new ReLU(),
      new Dropout(0.5, { seed: 3 }),
    ]),
    flatten: new Flatten(),
    classifier: new Sequential([new Linear(2 * 4 * 4, 3, { rng: 2 })]),
  });
}

Deno.test("namedParameters: dotted PyTorch names in registration order, leaves that are kept", () => {
  const model = small();
  assert.deepEqual([...model.namedParameters().keys()], [
    "features.0.weight",
    "features.0.bias",
    "classifier.0.weight",
    "classifier.0.bias",
  ]);
  for (const p of model.parameters()) {
    assert.ok(p.requiresGrad && p.isKept && p.node === null);
  }
  assert.equal(model.parameterCount(), 2 * 1 * 9 + 2 + 3 * 32 + 3);
  const noBias = new Linear(4, 2, { bias: false });
  assert.deepEqual([...noBias.namedParameters().keys()], ["weight"]);
  assert.equal(noBias.bias, null);
});

Deno.test("train() and eval() reach every descendant", () => {
  const model = small();
  model.eval();
  assert.ok(model.namedModules().every(([, m]) => m.training === false));
  model.train();
  assert.ok(model.namedModules().every(([, m]) => m.training === true));
});

Deno.test("registration rejects plain tensors, dotted and duplicate names", () => {
  class Bad extends Module {
    constructor(kind: string) {
      super();
      if (kind === "plain") this.registerParameter("w", ones([2]));
      if (kind === "dot") this.registerParameter("a.b", parameter(ones([2])));
      if (kind === "twice") {
        this.registerParameter("w", parameter(ones([2])));
        this.registerModule("w", new ReLU());
      }
    }
    forward(x: Tensor): Tensor {
      return x;
    }
    outputShape(s: Shape): number[] {
      return [...s];
    }
  }
  assert.throws(() => new Bad("plain"), /wrap the tensor in parameter\(\)/);
  assert.throws(() => new Bad("dot"), /invalid name "a\.b"/);
  assert.throws(() => new Bad("twice"), /"w" is already registered/);
});

Deno.test("loadStateDict copies values in place: parameters stay the same tensors", async () => {
  const source = small(),
    target = new Sequential({
      features: new Sequential([
        new Conv2d(1, 2, 3, { padding: 1, rng: 7 }),
        new ReLU(),
        new Dropout(0.5, { seed: 3 }),
      ]),
      flatten: new Flatten(),
      classifier: new Sequential([new Linear(32, 3, { rng: 8 })]),
    });
  const before = target.parameters();
  await target.loadStateDict(source.stateDict());
  assert.deepEqual(target.parameters(), before, "same tensor objects");
  for (const [name, p] of source.namedParameters()) {
    assert.deepEqual(target.namedParameters().get(name)!.dataSync(), p.dataSync(), name);
  }
  // Host entries (what a safetensors file yields) load too.
  const weight = new Float32Array(96).fill(0.25);
  await target.loadStateDict(new Map([["classifier.0.weight", { shape: [3, 32], data: weight }]]), {
    strict: false,
  });
  assert.deepEqual(target.namedParameters().get("classifier.0.weight")!.dataSync(), weight);
});

Deno.test("loadStateDict errors name the key and both shapes, and change nothing", async () => {
  const model = small();
  const snapshot = model.parameters().map((p) => p.dataSync().slice());
  const state = new Map<string, Tensor>(model.stateDict());
  state.set("features.0.weight", randn([2, 1, 5, 5]));
  await assert.rejects(
    () => model.loadStateDict(state),
    /"features\.0\.weight" has shape \[2,1,3,3\] in the model but \[2,1,5,5\] in the state dict/,
  );
  model.parameters().forEach((p, i) => assert.deepEqual(p.dataSync(), snapshot[i]));

  const missing = new Map(model.stateDict());
  missing.delete("classifier.0.bias");
  missing.set("classifier.1.weight", ones([1]));
  await assert.rejects(
    () => model.loadStateDict(missing),
    /missing keys: classifier\.0\.bias; unexpected keys: classifier\.1\.weight/,
  );
  const short = new Map([["classifier.0.bias", { shape: [3], data: new Float32Array(2) }]]);
  await assert.rejects(
    () => model.loadStateDict(short, { strict: false }),
    /"classifier\.0\.bias" holds 2 values for shape \[3\]/,
  );
  // Non-strict loading skips both, but a shape mismatch is still an error.
  await model.loadStateDict(missing, { strict: false });
  await assert.rejects(() => model.loadStateDict(state, { strict: false }), /\[2,1,5,5\]/);
});

Deno.test("rngStates: a restored Dropout draws the masks the original would have", () => {
  const a = small(), b = small();
  const x = ones([2, 1, 4, 4]);
  noGrad(() => a.forward(x)); // advance a's generator by one mask
  b.loadRngStates(a.rngStates());
  const ya = noGrad(() => a.forward(x)).dataSync();
  const yb = noGrad(() => b.forward(x)).dataSync();
  assert.deepEqual(ya, yb);
  assert.deepEqual(Object.keys(a.rngStates()), ["features.2"]);
  assert.throws(() => b.loadRngStates({}), /missing states: features\.2/);
});

Deno.test("to('cpu') keeps the parameters; summary rows follow the children", async () => {
  const model = small();
  const before = model.parameters();
  await model.to("cpu");
  assert.deepEqual(model.parameters(), before);
  const report = model.summary([2, 1, 4, 4], { print: false });
  assert.deepEqual(report.rows.map((r) => r.name), [
    "features.0",
    "features.1",
    "features.2",
    "flatten",
    "classifier.0",
  ]);
  assert.deepEqual(report.outputShape, [2, 3]);
  assert.equal(report.totalParameters, model.parameterCount());
  // conv: 2 samples * 2 channels * 16 positions * 9 taps; linear: 2 * 32 * 3.
  assert.equal(report.totalMultiplyAdds, 2 * 2 * 16 * 9 + 2 * 32 * 3);
  assert.match(report.text, /classifier\.0 +Linear\(32->3\) +\[2,3\] +99 +192/);
});

Deno.test("a layer given a wrongly shaped input says which layer and what it expected", () => {
  const model = small();
  assert.throws(() => model.outputShape([1, 3, 4, 4]), /Conv2d\(1->2.*has 3 channels, expected 1/);
  assert.throws(
    () => model.outputShape([1, 1, 5, 5]),
    /Linear\(32->3\): input must be \[N, 32\], got \[1,50\]/,
  );
});
