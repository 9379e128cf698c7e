import "../../mod.ts"; // registers the CPU backend, as in any program using tessera
import assert from "node:assert/strict";
import { SGD } from "../../optim/sgd.ts";
import {
  CosineAnnealing,
  ReduceLROnPlateau,
  type ScheduleState,
  StepLR,
} from "../../optim/schedules.ts";
import { parameter } from "../../nn/module.ts";
import { tensor } from "../../tensor/tensor.ts";

function optimizer(lr = 0.01): SGD {
  return new SGD([{ params: [parameter(tensor([1]))] }, {
    params: [parameter(tensor([1]))],
    lr: lr * 2,
  }], { lr });
}

function closeTo(actual: number[], expected: number[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) =>
    assert.ok(Math.abs(a - expected[i]) < 1e-12, `epoch ${i + 1}: ${a} vs ${expected[i]}`)
  );
}

Deno.test("StepLR: lr * 0.1 every 2 epochs, each group from its own initial lr", () => {
  const sgd = optimizer();
  const schedule = new StepLR(sgd, { stepSize: 2 });
  const lrs: number[][] = [];
  for (let epoch = 0; epoch < 5; epoch++) {
    schedule.step();
    lrs.push(sgd.groups.map((g) => g.lr));
  }
  closeTo(lrs.map((l) => l[0]), [0.01, 0.001, 0.001, 0.0001, 0.0001]);
  closeTo(lrs.map((l) => l[1]), [0.02, 0.002, 0.002, 0.0002, 0.0002]);
});

Deno.test("ReduceLROnPlateau (the paper's rule): /10 after `patience` epochs without improvement, 3 times at most", () => {
  const sgd = optimizer();
  const schedule = new ReduceLROnPlateau(sgd, { patience: 2 });
  // Validation errors per epoch, and the lr in force after each epoch's step:
  // 0.5 best; 0.4 best; 0.45 bad 1; 0.41 bad 2 -> drop 1; 0.3 best; 0.3 bad 1 (equal is no
  // improvement); 0.31 bad 2 -> drop 2; 0.2 best; 0.25, 0.25 -> drop 3; 0.25, 0.25 -> no 4th drop.
  const errors = [0.5, 0.4, 0.45, 0.41, 0.3, 0.3, 0.31, 0.2, 0.25, 0.25, 0.25, 0.25];
  const expected = [1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001].map((s) =>
    0.01 * s
  );
  const lrs = errors.map((e) => {
    schedule.step(e);
    return sgd.lr;
  });
  closeTo(lrs, expected);
  assert.equal(schedule.drops, 3);
  assert.ok(schedule.exhausted);
  assert.equal(schedule.best, 0.2);
  assert.ok(Math.abs(sgd.groups[1].lr - 0.02 * 0.001) < 1e-15, "groups keep their ratio");
  assert.throws(() => schedule.step(), /needs the epoch's validation error/);
});

Deno.test("ReduceLROnPlateau: default patience 1 drops on the first epoch without improvement", () => {
  const sgd = optimizer();
  const schedule = new ReduceLROnPlateau(sgd);
  schedule.step(0.5);
  schedule.step(0.6);
  closeTo([sgd.lr], [0.001]);
});

Deno.test("CosineAnnealing: half cosine from 0.01 to minLr over tMax epochs, then flat", () => {
  const sgd = optimizer();
  const schedule = new CosineAnnealing(sgd, { tMax: 4, minLr: 0.001 });
  const lrs = Array.from({ length: 6 }, () => {
    schedule.step();
    return sgd.lr;
  });
  // 0.001 + 0.009 * (1 + cos(pi t / 4)) / 2 for t = 1..4, then t stays 4.
  const c = Math.SQRT1_2;
  closeTo(lrs, [
    0.001 + 0.009 * (1 + c) / 2,
    0.001 + 0.009 * 0.5,
    0.001 + 0.009 * (1 - c) / 2,
    0.001,
    0.001,
    0.001,
  ]);
});

Deno.test("schedules save and restore: a restored schedule continues identically", () => {
  const make = [
    (sgd: SGD) => new StepLR(sgd, { stepSize: 3 }),
    (sgd: SGD) => new ReduceLROnPlateau(sgd, { patience: 2 }),
    (sgd: SGD) => new CosineAnnealing(sgd, { tMax: 5 }),
  ];
  const errors = [0.5, 0.6, 0.7, 0.4, 0.5, 0.6, 0.7];
  for (const build of make) {
    const a = optimizer(), b = optimizer(0.5);
    const sa = build(a);
    for (const e of errors.slice(0, 4)) sa.step(e);
    // Round trip through JSON, as a checkpoint does; the optimizer's lr travels with it.
    const sb = build(b);
    sb.loadStateDict(JSON.parse(JSON.stringify(sa.stateDict())));
    a.groups.forEach((g, i) => (b.groups[i].lr = g.lr));
    for (const e of errors.slice(4)) {
      sa.step(e);
      sb.step(e);
      assert.deepEqual(b.groups.map((g) => g.lr), a.groups.map((g) => g.lr), sa.constructor.name);
    }
    assert.throws(() => sb.loadStateDict({ kind: "Nope" }), /belongs to "Nope"/);
  }
});

Deno.test("schedule options: missing, non-finite and unknown values are refused, naming each", () => {
  const sgd = optimizer();
  // deno-fmt-ignore
  const cases: [string, () => unknown, RegExp][] = [
    ["StepLR without stepSize", () => new StepLR(sgd, {} as never), /StepLR: stepSize must be an integer >= 1, got undefined/],
    ["StepLR gamma NaN", () => new StepLR(sgd, { stepSize: 2, gamma: NaN }), /StepLR: gamma must be a finite number >= 0, got NaN/],
    ["StepLR gamma undefined", () => new StepLR(sgd, { stepSize: 2, gamma: undefined }), /StepLR: gamma is undefined; leave it out for the default \(0\.1\)/],
    ["StepLR unknown option", () => new StepLR(sgd, { stepSize: 2, step_size: 3 } as never), /StepLR: unknown option "step_size" \(did you mean stepSize\?\)/],
    ["StepLR without optimizer", () => new StepLR(undefined as never, { stepSize: 2 }), /StepLR: the first argument must be an SGD optimizer, got undefined/],
    ["plateau factor 1", () => new ReduceLROnPlateau(sgd, { factor: 1 }), /ReduceLROnPlateau: factor must be a finite number > 0 and < 1, got 1/],
    ["plateau patience 0.5", () => new ReduceLROnPlateau(sgd, { patience: 0.5 }), /patience must be an integer >= 1, got 0\.5/],
    ["plateau maxDrops NaN", () => new ReduceLROnPlateau(sgd, { maxDrops: NaN }), /maxDrops must be an integer >= 0, got NaN/],
    ["plateau threshold undefined", () => new ReduceLROnPlateau(sgd, { threshold: undefined }), /threshold is undefined/],
    ["plateau mode", () => new ReduceLROnPlateau(sgd, { mode: "max" } as never), /unknown option "mode"/],
    ["cosine tMax missing", () => new CosineAnnealing(sgd, {} as never), /CosineAnnealing: tMax must be an integer >= 1, got undefined/],
    ["cosine minLr negative", () => new CosineAnnealing(sgd, { tMax: 3, minLr: -1 }), /minLr must be a finite number >= 0, got -1/],
  ];
  for (const [label, make, message] of cases) {
    assert.throws(make, (error: Error) => {
      assert.match(String(error), message, label);
      return true;
    });
  }
});

Deno.test("schedule states are checked field by field before anything changes", () => {
  const sgd = optimizer();
  const make = {
    StepLR: () => new StepLR(sgd, { stepSize: 3 }),
    ReduceLROnPlateau: () => new ReduceLROnPlateau(sgd, { patience: 2 }),
    CosineAnnealing: () => new CosineAnnealing(sgd, { tMax: 5 }),
  };
  // deno-fmt-ignore
  const cases: [keyof typeof make, unknown, RegExp][] = [
    ["ReduceLROnPlateau", { kind: "ReduceLROnPlateau", best: 0.5 }, /ReduceLROnPlateau\.loadStateDict: badEpochs must be an integer >= 0, got undefined/],
    ["ReduceLROnPlateau", null, /ReduceLROnPlateau\.loadStateDict: the state must be an object, got null/],
    ["ReduceLROnPlateau", { kind: "ReduceLROnPlateau", best: "x", badEpochs: 0, drops: 0, epoch: 0 }, /best \(or null\) must be a finite number, got the string "x"/],
    ["ReduceLROnPlateau", { kind: "ReduceLROnPlateau", best: null, badEpochs: 0, drops: 0, epoch: -1 }, /epoch must be an integer >= 0, got -1/],
    ["StepLR", { kind: "StepLR", epoch: 2 }, /StepLR\.loadStateDict: baseLrs must hold 2 numbers \(one per group\), got undefined/],
    ["StepLR", { kind: "StepLR", epoch: 2, baseLrs: [0.1, "abc"] }, /baseLrs\[1\] must be a finite number >= 0, got the string "abc"/],
    ["StepLR", { kind: "StepLR", epoch: NaN, baseLrs: [0.1, 0.2] }, /epoch must be an integer >= 0, got NaN/],
    ["StepLR", [1, 2], /the state must be an object, got \[1,2\]/],
    ["CosineAnnealing", { kind: "CosineAnnealing", epoch: 1, baseLrs: [0.1] }, /baseLrs must hold 2 numbers/],
    ["CosineAnnealing", { epoch: 1, baseLrs: [0.1, 0.1] }, /the state belongs to undefined, not CosineAnnealing/],
  ];
  for (const [kind, state, message] of cases) {
    const schedule = make[kind]();
    schedule.step(0.5);
    const before = schedule.stateDict();
    assert.throws(() => schedule.checkStateDict(state), message);
    assert.throws(() => schedule.loadStateDict(state as ScheduleState), message);
    assert.deepEqual(schedule.stateDict(), before, `${kind}: a refused state changed it`);
  }
});
