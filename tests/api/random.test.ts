/**
 * Randomness as PyTorch users expect: one global generator that layers and random factories
 * draw from by default (so two layers differ), `manualSeed` for reproducible runs, explicit
 * seeds that always give the same values, and a saveable state for exact resume.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  crossEntropy,
  Dropout,
  dropout,
  getRngState,
  init,
  Linear,
  manualSeed,
  rand,
  randn,
  ReLU,
  Rng,
  Sequential,
  setRngState,
  SGD,
  type Tensor,
  tensor,
  zeros,
} from "../../mod.ts";
import { values } from "../support/helpers.ts";

const list = (t: Tensor) => [...values(t)];

Deno.test("layers and factories without a seed draw fresh values from the global generator", () => {
  manualSeed(0);
  assert.notDeepEqual(list(new Linear(8, 8).weight), list(new Linear(8, 8).weight));
  assert.notDeepEqual(list(randn([3])), list(randn([3])));
  assert.notDeepEqual(list(rand([3])), list(rand([3])));
  assert.notDeepEqual(
    list(init.normal(zeros([4]))),
    list(init.normal(zeros([4]))),
    "init.* too",
  );
  const x = tensor([1, 1, 1, 1, 1, 1, 1, 1]);
  assert.notDeepEqual(list(dropout(x)), list(dropout(x)), "dropout masks too");
  const a = new Dropout(0.5), b = new Dropout(0.5);
  assert.notDeepEqual(list(a.forward(x)), list(b.forward(x)), "two Dropout layers differ");
});

Deno.test("manualSeed makes the whole sequence repeat", () => {
  const draw = () => {
    manualSeed(42);
    const layer = new Linear(3, 2);
    return [list(layer.weight), list(randn([5])), list(rand([2])), list(dropout(randn([6])))];
  };
  assert.deepEqual(draw(), draw());
  manualSeed(43);
  assert.notDeepEqual(list(randn([5])), draw()[1]);
});

Deno.test("an explicit seed gives exactly the values it always gave", () => {
  manualSeed(5); // the global generator plays no part
  const expected = (seed: number, n: number) => {
    const rng = new Rng(seed);
    return Array.from({ length: n }, () => Math.fround(rng.normal()));
  };
  assert.deepEqual(list(randn([7], { seed: 3 })), expected(3, 7));
  assert.deepEqual(list(randn([7], { seed: 3 })), list(randn([7], { seed: 3 })));
  const uniform = new Rng(9);
  assert.deepEqual(
    list(rand([4], { seed: 9 })),
    Array.from({ length: 4 }, () => Math.fround(uniform.uniform())),
  );
  assert.deepEqual(
    list(new Linear(4, 3, { rng: 1 }).weight),
    list(new Linear(4, 3, { rng: 1 }).weight),
  );
  const x = randn([16], { seed: 1 });
  assert.deepEqual(list(dropout(x, { seed: 7 })), list(dropout(x, { seed: 7 })));
  assert.deepEqual(
    list(new Dropout(0.5, { seed: 3 }).forward(x)),
    list(new Dropout(0.5, { seed: 3 }).forward(x)),
  );
});

Deno.test("saving the global state never changes what a run draws (odd-sized randn too)", () => {
  manualSeed(1);
  randn([3]);
  const uninterrupted = list(randn([3]));
  manualSeed(1);
  randn([3]);
  const state = getRngState();
  const continued = list(randn([3]));
  assert.deepEqual(continued, uninterrupted);
  manualSeed(99);
  setRngState(state);
  assert.deepEqual(list(randn([3])), uninterrupted, "restored state continues the sequence");
});

/** A small model trained for `steps` SGD steps on a fixed batch; returns its weights. */
function train(model: Sequential, optimizer: SGD, steps: number): number[][] {
  const x = randn([6, 4], { seed: 11 });
  const labels = [0, 1, 2, 0, 1, 2];
  for (let i = 0; i < steps; i++) {
    optimizer.zeroGrad();
    crossEntropy(model.forward(x), labels).backward();
    optimizer.step();
  }
  return model.parameters().map(list);
}

function build(): Sequential {
  return new Sequential([new Linear(4, 8), new ReLU(), new Dropout(0.5), new Linear(8, 3)]);
}

Deno.test("a seeded training run is bit-for-bit reproducible, and resume is exact", async () => {
  const run = (steps: number) => {
    manualSeed(2024);
    const model = build();
    return train(model, new SGD(model.parameters(), { lr: 0.1 }), steps);
  };
  const full = run(4);
  assert.deepEqual(run(4), full);

  // Two steps, save (weights, the global generator, each module's own), two more steps.
  manualSeed(2024);
  const first = build();
  train(first, new SGD(first.parameters(), { lr: 0.1 }), 2);
  const weights = new Map(
    [...first.stateDict()].map(([k, v]) => [k, { shape: v.shape, data: values(v) }]),
  );
  const globalState = getRngState();
  const moduleStates = first.rngStates();

  manualSeed(7); // a different process: other initial weights and streams
  const resumed = build();
  await resumed.loadStateDict(weights);
  setRngState(globalState);
  resumed.loadRngStates(moduleStates);
  assert.deepEqual(train(resumed, new SGD(resumed.parameters(), { lr: 0.1 }), 2), full);
});
