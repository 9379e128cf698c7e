import assert from "node:assert/strict";
import { SGD, type SgdRule } from "../optim/sgd.ts";
import { parameter } from "../nn/module.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { mul } from "../tensor/ops/elementwise.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { assertClose } from "./helpers.ts";

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
  assert.throws(() => new SGD([a, a], { lr: 0.1 }), /appears twice/);
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
