import assert from "node:assert/strict";
import { SGD, SGD_DEFAULTS, type SgdRule, type SgdState } from "../../optim/sgd.ts";
import { parameter } from "../../nn/module.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { assertClose } from "../support/helpers.ts";

/** Sets `p.grad` to a fixed value, as a backward pass would. */
function setGrad(p: Tensor, values: number[]): void {
  p.grad?.dispose();
  p.grad = tensor(values).keep();
}

/** Runs one-element SGD with a constant gradient and a given lr per step; returns w after each. */
function trajectory(rule: SgdRule, lrs: number[], options: { grad: number; weightDecay: number }) {
  const w = parameter(tensor([1]));
  const sgd = new SGD([w], { lr: lrs[0], momentum: 0.9, weightDecay: options.weightDecay, rule });
  return lrs.map((lr) => {
    sgd.lr = lr;
    setGrad(w, [options.grad]);
    sgd.step();
    return w.dataSync()[0];
  });
}

// w = 1, g = 1 at every step, momentum 0.9, no weight decay; lr 0.1 for two steps, then 0.01.
//
// paper:   v <- 0.9 v - lr g;  w <- w + v
//   step 1 (lr 0.1):  v = -0.1                    w = 0.9
//   step 2 (lr 0.1):  v = -0.09 - 0.1 = -0.19     w = 0.71
//   step 3 (lr 0.01): v = -0.171 - 0.01 = -0.181  w = 0.529
//   step 4 (lr 0.01): v = -0.1629 - 0.01 = -0.1729  w = 0.3561
// pytorch: v <- 0.9 v + g;  w <- w - lr v
//   step 1 (lr 0.1):  v = 1     w = 1 - 0.1 = 0.9
//   step 2 (lr 0.1):  v = 1.9   w = 0.9 - 0.19 = 0.71
//   step 3 (lr 0.01): v = 2.71  w = 0.71 - 0.0271 = 0.6829
//   step 4 (lr 0.01): v = 3.439 w = 0.6829 - 0.03439 = 0.64851
// Equal while lr is constant; after the drop the paper's velocity still carries lr = 0.1, so
// its steps stay large (0.181, 0.1729) while PyTorch's shrink tenfold at once (0.0271).
Deno.test("SGD rules agree while lr is constant and differ after a /10 drop (worked by hand)", () => {
  const lrs = [0.1, 0.1, 0.01, 0.01];
  const paper = trajectory("paper", lrs, { grad: 1, weightDecay: 0 });
  const pytorch = trajectory("pytorch", lrs, { grad: 1, weightDecay: 0 });
  [0.9, 0.71, 0.529, 0.3561].forEach((w, i) =>
    assertClose(paper[i], w, { rtol: 0, what: `paper step ${i + 1}` })
  );
  [0.9, 0.71, 0.6829, 0.64851].forEach((w, i) =>
    assertClose(pytorch[i], w, { rtol: 0, what: `pytorch step ${i + 1}` })
  );
});

// w = 1, g = 0.5, momentum 0.9, weight decay 0.1, lr 0.1 throughout.
//   paper:   v1 = -0.1*0.1*1 - 0.1*0.5 = -0.06, w1 = 0.94
//            v2 = -0.054 - 0.1*0.1*0.94 - 0.05 = -0.1134, w2 = 0.8266
//   pytorch: v1 = 0.5 + 0.1*1 = 0.6, w1 = 1 - 0.06 = 0.94
//            v2 = 0.54 + 0.5 + 0.094 = 1.134, w2 = 0.94 - 0.1134 = 0.8266
Deno.test("SGD weight decay: both rules give w = 0.94 then 0.8266", () => {
  for (const rule of ["paper", "pytorch"] as const) {
    const w = trajectory(rule, [0.1, 0.1], { grad: 0.5, weightDecay: 0.1 });
    assertClose(w[0], 0.94, { rtol: 0, what: `${rule} step 1` });
    assertClose(w[1], 0.8266, { rtol: 0, what: `${rule} step 2` });
  }
});

Deno.test("SGD.zeroGrad disposes gradients and sets them to null; velocities are lazy and kept", () => {
  const w = parameter(tensor([1, 2]));
  const sgd = new SGD([w], { lr: 0.1, momentum: 0.9 });
  assert.equal(sgd.velocity(w), null);
  sum(mul(w, tensor([3, 4]))).backward();
  const grad = w.grad!;
  assert.deepEqual([...grad.dataSync()], [3, 4]);
  sgd.step();
  const v = sgd.velocity(w)!;
  assert.ok(v.isKept);
  assertClose(v.dataSync()[0], -0.3, { rtol: 0, what: "paper velocity = -lr g" });
  sgd.zeroGrad();
  assert.equal(w.grad, null);
  assert.ok(grad.isDisposed, "the old gradient was released, not zeroed in place");
  sgd.step(); // no gradient: nothing moves
  assertClose(w.dataSync()[0], 0.7, { rtol: 0, what: "w unchanged by a step without gradient" });
});

Deno.test("SGD parameter groups: own lr and weight decay; lr setter and scaleLr", () => {
  const a = parameter(tensor([1])), b = parameter(tensor([1]));
  const sgd = new SGD([{ params: [a] }, { params: [b], lr: 0.5, weightDecay: 0 }], {
    lr: 0.1,
    weightDecay: 0.2,
  });
  assert.deepEqual(sgd.groups.map((g) => [g.lr, g.weightDecay, g.momentum]), [[0.1, 0.2, 0], [
    0.5,
    0,
    0,
  ]]);
  setGrad(a, [1]);
  setGrad(b, [1]);
  sgd.step();
  assertClose(a.dataSync()[0], 1 - 0.1 * 0.2 - 0.1, {
    rtol: 0,
    what: "group 0: w - lr wd w - lr g",
  });
  assertClose(b.dataSync()[0], 0.5, { rtol: 0, what: "group 1: w - 0.5 g" });
  sgd.scaleLr(0.1);
  assert.deepEqual(sgd.groups.map((g) => g.lr), [0.1 * 0.1, 0.5 * 0.1]);
  sgd.lr = 0.02;
  assert.deepEqual(sgd.groups.map((g) => g.lr), [0.02, 0.02]);
  assert.equal(sgd.lr, 0.02);
  assert.deepEqual(new SGD([a, a], { lr: 0.1 }).parameters(), [a]); // tied: updated once
  assert.throws(
    () => new SGD([{ params: [a] }, { params: [a] }], { lr: 0.1 }),
    /appears in more than one parameter group/,
  );
  assert.throws(() => new SGD([tensor([1])], { lr: 0.1 }), /not a parameter/);
  assert.throws(
    () => new SGD([a], { lr: 0.1, momentum: 1 }),
    /momentum must be in \[0, 1\), got 1/,
  );
});

Deno.test("SGD stateDict/loadStateDict: a restored optimizer continues identically", async () => {
  const run = () => {
    const w = parameter(tensor([1, -1]));
    return { w, sgd: new SGD([w], { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 }) };
  };
  const a = run();
  for (let i = 0; i < 3; i++) {
    setGrad(a.w, [0.5, -0.25]);
    a.sgd.step();
  }
  const b = run();
  b.w.backend.write(b.w.storage, a.w.dataSync());
  a.sgd.lr = 0.01;
  await b.sgd.loadStateDict(a.sgd.stateDict());
  assert.equal(b.sgd.lr, 0.01);
  assert.deepEqual(b.sgd.velocity(b.w)!.dataSync(), a.sgd.velocity(a.w)!.dataSync());
  for (const { w, sgd } of [a, b]) {
    setGrad(w, [0.5, -0.25]);
    sgd.step();
  }
  assert.deepEqual(b.w.dataSync(), a.w.dataSync());

  const other = new SGD([parameter(tensor([1, 2]))], { lr: 0.1, rule: "pytorch" });
  await assert.rejects(() => other.loadStateDict(a.sgd.stateDict()), /saved with rule "paper"/);
  const wrongShape = new SGD([parameter(tensor([1, 2, 3]))], { lr: 0.1 });
  await assert.rejects(
    () => wrongShape.loadStateDict(a.sgd.stateDict()),
    /velocity 0 has shape \[2\] but its parameter has \[3\]/,
  );
});

Deno.test("SGD refuses missing, non-finite and unknown hyperparameters, naming each", () => {
  const w = () => [parameter(tensor([1]))];
  // deno-fmt-ignore
  const cases: [string, () => unknown, RegExp][] = [
    ["no lr", () => new SGD(w(), { momentum: 0.9 } as never), /^TypeError: SGD: lr is required, e\.g\. new SGD\(model\.parameters\(\), \{ lr: 0\.01 \}\)/],
    ["lr undefined", () => new SGD(w(), { lr: undefined as unknown as number }), /SGD: lr must be a finite number >= 0, got undefined/],
    ["lr NaN", () => new SGD(w(), { lr: NaN }), /SGD: lr must be a finite number >= 0, got NaN/],
    ["lr Infinity", () => new SGD(w(), { lr: Infinity }), /got Infinity/],
    ["lr a string", () => new SGD(w(), { lr: "0.1" as unknown as number }), /lr must be a finite number >= 0, got the string "0\.1"/],
    ["lr negative", () => new SGD(w(), { lr: -1 }), /lr must be a finite number >= 0, got -1/],
    ["momentum undefined", () => new SGD(w(), { lr: 0.1, momentum: undefined }), /SGD: momentum is undefined; leave it out for the default \(0\) or give a number/],
    ["momentum NaN", () => new SGD(w(), { lr: 0.1, momentum: NaN }), /momentum must be in \[0, 1\), got NaN/],
    ["weightDecay null", () => new SGD(w(), { lr: 0.1, weightDecay: null as unknown as number }), /weightDecay must be a finite number >= 0, got null/],
    ["weightDecay undefined", () => new SGD(w(), { lr: 0.1, weightDecay: undefined }), /weightDecay is undefined/],
    ["dampening 0.1", () => new SGD(w(), { lr: 0.1, dampening: 0.1 }), /dampening must be 0 \(PyTorch's default; tessera's SGD has no dampening\), got 0\.1/],
    ["dampening NaN", () => new SGD(w(), { lr: 0.1, dampening: NaN }), /dampening must be in \[0, 1\), got NaN/],
    ["snake_case option", () => new SGD(w(), { lr: 0.1, weight_decay: 5e-4 } as never), /unknown option "weight_decay" \(did you mean weightDecay\?\)/],
    ["nesterov", () => new SGD(w(), { lr: 0.1, nesterov: true } as never), /unknown option "nesterov"; the options are lr, momentum, weightDecay, dampening, rule/],
    ["rule unknown", () => new SGD(w(), { lr: 0.1, rule: "adam" as never }), /rule must be "paper" or "pytorch", got the string "adam"/],
    ["rule undefined", () => new SGD(w(), { lr: 0.1, rule: undefined }), /rule must be "paper" or "pytorch", got undefined/],
    ["options missing", () => new SGD(w(), undefined as never), /SGD: options must be an object, got undefined/],
    ["params not iterable", () => new SGD(3 as never, { lr: 0.1 }), /SGD: params must be parameters \(e\.g\. model\.parameters\(\)\)/],
    ["params empty", () => new SGD([], { lr: 0.1 }), /SGD: params is empty/],
    ["group without lr", () => new SGD([{ params: w() }], {} as never), /SGD: group 0 has no lr and the options give none/],
    ["group lr NaN", () => new SGD([{ params: w(), lr: NaN }], { lr: 0.1 }), /SGD group 0: lr must be a finite number >= 0, got NaN/],
    ["group momentum undefined", () => new SGD([{ params: w(), momentum: undefined }], { lr: 0.1 }), /SGD group 0: momentum is undefined/],
    ["group unknown key", () => new SGD([{ params: w(), learningRate: 1 } as never], { lr: 0.1 }), /SGD group 0: unknown option "learningRate"/],
    ["group without params", () => new SGD([{ lr: 0.1 } as never], { lr: 0.1 }), /SGD group 0: params must be an iterable of parameters, got undefined/],
    ["tensors mixed with groups", () => new SGD([parameter(tensor([1])), { params: w() }] as never, { lr: 0.1 }), /mixes tensors and groups/],
  ];
  for (const [label, make, message] of cases) {
    assert.throws(make, (error: Error) => {
      assert.match(String(error), message, label);
      return true;
    });
  }
  // Defaults, and the groups' inheritance, are what SGD_DEFAULTS says.
  const sgd = new SGD([{ params: w() }, { params: w(), lr: 0.5, momentum: 0.5 }], {
    lr: 0.1,
    weightDecay: 1e-4,
  });
  assert.deepEqual(
    sgd.groups.map(({ lr, momentum, weightDecay }) => [lr, momentum, weightDecay]),
    [[0.1, SGD_DEFAULTS.momentum, 1e-4], [0.5, 0.5, 1e-4]],
  );
  assert.equal(sgd.rule, SGD_DEFAULTS.rule);
  assert.equal(new SGD(w(), { lr: 0.1, dampening: 0 }).groups[0].momentum, 0);
});

Deno.test("SGD groups, lr setter and scaleLr refuse values that would make weights NaN", () => {
  const sgd = new SGD([parameter(tensor([1]))], { lr: 0.1, momentum: 0.9 });
  assert.throws(
    () => (sgd.groups[0].lr = NaN),
    /SGD group 0: lr must be a finite number >= 0, got NaN/,
  );
  assert.throws(
    () => (sgd.groups[0].momentum = 1),
    /SGD group 0: momentum must be in \[0, 1\), got 1/,
  );
  assert.throws(() => (sgd.groups[0].weightDecay = -1), /weightDecay must be a finite number >= 0/);
  assert.throws(
    () => (sgd.lr = Infinity),
    /SGD\.lr: lr must be a finite number >= 0, got Infinity/,
  );
  assert.throws(
    () => sgd.scaleLr(NaN),
    /SGD\.scaleLr: factor must be a finite number >= 0, got NaN/,
  );
  sgd.lr = 1e300;
  assert.throws(
    () => sgd.scaleLr(1e10),
    /group 0 lr \* factor must be a finite number >= 0, got Infinity/,
  );
  assert.equal(sgd.lr, 1e300);
  assert.deepEqual(sgd.groups.map((g) => [g.lr, g.momentum, g.weightDecay]), [[1e300, 0.9, 0]]);
});

Deno.test("SGD.loadStateDict checks every field before changing anything", async () => {
  const w = parameter(tensor([1, -1]));
  const sgd = new SGD([w], { lr: 0.1, momentum: 0.9 });
  setGrad(w, [0.5, -0.25]);
  sgd.step();
  const velocity = sgd.velocity(w)!.dataSync().slice();
  const good = () => ({
    rule: "paper",
    groups: [{ lr: 0.01, momentum: 0.5, weightDecay: 0, size: 1 }],
    velocities: new Map([[0, { shape: [2], data: new Float32Array([1, 2]) }]]),
  });
  // deno-fmt-ignore
  const cases: [string, unknown, RegExp][] = [
    ["null", null, /the state must be an object, got null/],
    ["lr missing", { ...good(), groups: [{ momentum: 0.5, weightDecay: 0, size: 1 }] }, /groups\[0\]\.lr must be a finite number >= 0, got undefined/],
    ["momentum a string", { ...good(), groups: [{ lr: 0.1, momentum: "0.9", weightDecay: 0, size: 1 }] }, /groups\[0\]\.momentum must be in \[0, 1\), got the string "0\.9"/],
    ["velocities missing", { ...good(), velocities: undefined }, /velocities must be a Map/],
    ["velocity index out of range", { ...good(), velocities: new Map([[3, { shape: [2], data: new Float32Array(2) }]]) }, /velocity index 3 is out of range \(1 parameters\)/],
    ["velocity NaN", { ...good(), velocities: new Map([[0, { shape: [2], data: new Float32Array([0, NaN]) }]]) }, /velocity 0 holds NaN at element 1/],
    ["velocity of ints", { ...good(), velocities: new Map([[0, { shape: [2], data: new Int32Array(2) }]]) }, /velocity 0 must hold a Float32Array or Float64Array, got Int32Array/],
    ["velocity too short", { ...good(), velocities: new Map([[0, { shape: [2], data: new Float32Array(1) }]]) }, /velocity 0 holds 1 values for shape \[2\]/],
  ];
  for (const [label, state, message] of cases) {
    await assert.rejects(() => sgd.loadStateDict(state as SgdState), message, label);
    assert.deepEqual(sgd.groups.map((g) => [g.lr, g.momentum]), [[0.1, 0.9]], label);
    assert.deepEqual(sgd.velocity(w)!.dataSync(), velocity, label);
  }
  await sgd.loadStateDict(good() as SgdState);
  assert.deepEqual(sgd.groups.map((g) => [g.lr, g.momentum]), [[0.01, 0.5]]);
  assert.deepEqual([...sgd.velocity(w)!.dataSync()], [1, 2]);
});
