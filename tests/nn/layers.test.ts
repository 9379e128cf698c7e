import "../../mod.ts"; // registers the CPU backend, as in any program using tessera
import assert from "node:assert/strict";
import {
  AdaptiveAvgPool2d,
  AvgPool2d,
  Conv2d,
  Dropout,
  Flatten,
  Identity,
  Linear,
  LocalResponseNorm,
  MaxPool2d,
  ReLU,
  Sequential,
  Tanh,
} from "../../nn/layers.ts";
import type { Module } from "../../nn/module.ts";
import { noGrad } from "../../tensor/autograd.ts";
import { ones, randn, type Tensor } from "../../tensor/tensor.ts";
import { localResponseNorm } from "../../tensor/ops/lrn.ts";

// Each layer's outputShape (used by summary() and to size fc6) must agree with what its
// forward actually returns.
const shapeCases: [string, Module, number[], number[]][] = [
  ["conv 11x11/4 (conv1 on 227)", new Conv2d(3, 4, 11, { stride: 4 }), [1, 3, 227, 227], [
    1,
    4,
    55,
    55,
  ]],
  ["conv 5x5 pad 2 groups 2", new Conv2d(4, 6, 5, { padding: 2, groups: 2 }), [2, 4, 9, 9], [
    2,
    6,
    9,
    9,
  ]],
  ["conv rectangular", new Conv2d(2, 3, [3, 1], { stride: [2, 1] }), [1, 2, 7, 5], [1, 3, 3, 5]],
  ["linear", new Linear(6, 4), [3, 6], [3, 4]],
  ["relu", new ReLU(), [2, 3], [2, 3]],
  ["tanh", new Tanh(), [2, 3, 4], [2, 3, 4]],
  ["identity", new Identity(), [5], [5]],
  ["lrn", new LocalResponseNorm(), [1, 7, 3, 3], [1, 7, 3, 3]],
  ["max pool 3/2 (overlapping)", new MaxPool2d({ kernelSize: 3, stride: 2 }), [1, 2, 13, 13], [
    1,
    2,
    6,
    6,
  ]],
  ["max pool 2 (stride defaults to kernel)", new MaxPool2d({ kernelSize: 2 }), [1, 2, 7, 7], [
    1,
    2,
    3,
    3,
  ]],
  ["avg pool padded", new AvgPool2d({ kernelSize: 3, stride: 2, padding: 1 }), [1, 1, 8, 8], [
    1,
    1,
    4,
    4,
  ]],
  ["adaptive avg 6x6", new AdaptiveAvgPool2d(6), [1, 2, 13, 13], [1, 2, 6, 6]],
  ["adaptive avg 2x3", new AdaptiveAvgPool2d([2, 3]), [1, 2, 5, 7], [1, 2, 2, 3]],
  ["dropout", new Dropout(0.5), [4, 8], [4, 8]],
  ["flatten", new Flatten(), [2, 3, 4, 5], [2, 60]],
  ["sequential", new Sequential([new Conv2d(1, 2, 3), new Flatten(), new Linear(8, 1)]), [
    3,
    1,
    4,
    4,
  ], [3, 1]],
];

for (const [name, layer, input, expected] of shapeCases) {
  Deno.test(`outputShape matches forward: ${name}`, () => {
    assert.deepEqual(layer.outputShape(input), expected);
    const y = noGrad(() => layer.forward(randn(input, { seed: 1 })));
    assert.deepEqual([...y.shape], expected);
  });
}

Deno.test("Conv2d: weight [O, C/groups, kH, kW], bias [O]; groups must divide both channel counts", () => {
  const conv = new Conv2d(96, 256, 5, { padding: 2, groups: 2 });
  assert.deepEqual([...conv.weight.shape], [256, 48, 5, 5]);
  assert.deepEqual([...conv.bias!.shape], [256]);
  assert.equal(conv.describe(), "96->256, 5x5/1, pad 2, groups 2");
  assert.throws(() => new Conv2d(3, 4, 3, { groups: 2 }), /divisible by groups 2/);
  // The default init is PyTorch's: U(-1/sqrt(fanIn), 1/sqrt(fanIn)), fanIn = 48 * 25.
  const bound = 1 / Math.sqrt(48 * 25);
  const w = Array.from(conv.weight.dataSync());
  assert.ok(w.every((v) => Math.abs(v) <= bound));
  assert.ok(w.reduce((m, v) => Math.max(m, v), 0) > 0.9 * bound, "the whole range is used");
});

Deno.test("LocalResponseNorm passes every hyperparameter to the op (both alpha conventions)", () => {
  const x = randn([1, 7, 2, 2], { seed: 4 });
  for (const alphaScaling of ["averaged", "per-term"] as const) {
    const options = { size: 3, alpha: 0.5, beta: 0.6, k: 1.5, alphaScaling };
    const layer = noGrad(() => new LocalResponseNorm(options).forward(x)).dataSync();
    const op = noGrad(() => localResponseNorm(x, options)).dataSync();
    assert.deepEqual(layer, op, alphaScaling);
  }
  // The two conventions differ by a factor `size` on alpha, so the outputs must differ.
  const averaged = noGrad(() => new LocalResponseNorm({ alpha: 1 }).forward(x)).dataSync();
  const perTerm = noGrad(() =>
    new LocalResponseNorm({ alpha: 1, alphaScaling: "per-term" }).forward(x)
  )
    .dataSync();
  assert.notDeepEqual(averaged, perTerm);
});

Deno.test("Dropout: a fresh mask per training forward, scaled by 1/(1-p); identity in eval", () => {
  const drop = new Dropout(0.5, { seed: 9 });
  const x = ones([1000]);
  const first = noGrad(() => drop.forward(x)).dataSync();
  const second = noGrad(() => drop.forward(x)).dataSync();
  assert.ok(first.every((v) => v === 0 || v === 2), "survivors scaled by 1 / (1 - 0.5)");
  const kept = first.filter((v) => v === 2).length;
  assert.ok(kept > 430 && kept < 570, `about half kept, got ${kept}`);
  assert.notDeepEqual(first, second, "each forward draws a new seed");
  drop.eval();
  const y: Tensor = drop.forward(x);
  assert.equal(y, x, "eval mode returns the input itself");
  assert.throws(() => new Dropout(1), /p must be in \[0, 1\), got 1/);
});

Deno.test("Sequential: children named by index or by key; at() and length", () => {
  const relu = new ReLU();
  const byIndex = new Sequential([new Identity(), relu]);
  assert.deepEqual(byIndex.children().map(([n]) => n), ["0", "1"]);
  assert.equal(byIndex.at(1), relu);
  assert.equal(byIndex.length, 2);
  assert.throws(() => byIndex.at(2), /index 2 out of range \(2 layers\)/);
  const byName = new Sequential({ conv1: new Conv2d(1, 1, 1), relu1: relu });
  assert.deepEqual([...byName.namedParameters().keys()], ["conv1.weight", "conv1.bias"]);
});

Deno.test("Sequential under noGrad disposes each activation once the next child made its own", () => {
  const seen: Tensor[] = [];
  class Spy extends Identity {
    override forward(x: Tensor): Tensor {
      seen.push(x);
      return x;
    }
  }
  class ReturnsWeight extends Linear {
    override forward(_x: Tensor): Tensor {
      return this.weight;
    }
  }
  const net = new Sequential([
    new Linear(4, 6),
    new Spy(), // passes its input through unchanged
    new ReLU(),
    new Spy(),
    new Flatten(), // a view of its input's memory
    new Linear(6, 3),
  ]);
  const x = randn([2, 4], { seed: 3 });
  const expected = net.forward(x).dataSync().slice();
  seen.length = 0;
  const y = noGrad(() => net.forward(x));
  assert.deepEqual([...y.dataSync()], [...expected], "the same answer");
  assert.equal(x.isDisposed, false, "the input is the caller's");
  assert.deepEqual(seen.map((t) => t.isDisposed), [true, true], "activations went when passed on");
  assert.ok(net.parameters().every((p) => !p.isDisposed));
  // A child that returns a parameter: the parameter survives the next child.
  const owner = new ReturnsWeight(2, 2);
  const z = noGrad(() => new Sequential([owner, new ReLU()]).forward(x));
  assert.equal(owner.weight.isDisposed, false, "a returned parameter is not disposed");
  assert.deepEqual(z.shape, [2, 2]);
});
