/**
 * Autograd, module and optimizer contracts, as PyTorch keeps them: only leaves change their
 * requiresGrad flag; `.grad` never aliases another tensor; `model.to()` moves parameters in
 * place so an existing optimizer keeps training them; shared layers and tied weights count
 * and update once; schedules chain on the current learning rate.
 */

import assert from "node:assert/strict";
import {
  add,
  CosineAnnealing,
  Linear,
  mean,
  mul,
  reshape,
  Sequential,
  SGD,
  StepLR,
  sub,
  sum,
  tensor,
} from "../../mod.ts";

Deno.test("requiresGrad on a computed tensor: false is refused (PyTorch's message), true is a no-op", () => {
  const x = tensor([1, 2], { requiresGrad: true });
  const y = mul(x, 3);
  assert.throws(
    () => (y.requiresGrad = false),
    /you can only change requires_grad flags of leaf variables; this tensor was computed by mul.*detach/,
  );
  y.requiresGrad = true; // already true: nothing changes, the graph stays
  sum(y).backward();
  assert.deepEqual([...x.grad!.dataSync()], [3, 3]); // not cut at y
  const leaf = tensor([1]);
  leaf.requiresGrad = true;
  leaf.requiresGrad = false; // a leaf's flag may change either way
  assert.equal(leaf.requiresGrad, false);
  assert.throws(() => (leaf.requiresGrad = 1 as never), /requiresGrad: must be true or false/);
});

Deno.test(".grad never aliases another tensor or the gradient passed to backward(g)", () => {
  const a = tensor([1, 2], { requiresGrad: true }), b = tensor([3, 4], { requiresGrad: true });
  const g = tensor([10, 20]);
  add(a, b).backward(g); // add hands the same gradient to both inputs
  a.grad!.dataSync()[0] = -1;
  assert.deepEqual([...b.grad!.dataSync()], [10, 20]);
  assert.deepEqual([...g.dataSync()], [10, 20]);

  const x = tensor([[1, 2]], { requiresGrad: true });
  const upstream = tensor([5, 6]);
  reshape(x, [2]).backward(upstream); // reshape passes the gradient through
  x.grad!.dataSync()[0] = -1;
  assert.deepEqual([...upstream.dataSync()], [5, 6]);

  const leaf = tensor([1, 2], { requiresGrad: true });
  const seed = tensor([7, 8]);
  leaf.backward(seed); // backward on a leaf: its gradient is the upstream one, copied
  leaf.grad!.dataSync()[1] = -1;
  assert.deepEqual([...seed.dataSync()], [7, 8]);
});

Deno.test("await model.to() after creating the optimizer moves parameters in place: training goes on", async () => {
  const model = new Linear(2, 1, { rng: 3 });
  const weight = model.weight;
  const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.5 });
  const x = tensor([[1, 2], [3, -1], [0, 1], [2, 2]]);
  const y = tensor([[1], [2], [0], [3]]);
  const lossOf = (input = x, target = y) => {
    const diff = sub(model.forward(input), target);
    return mean(mul(diff, diff));
  };
  optimizer.zeroGrad();
  lossOf().backward();
  optimizer.step(); // the velocities now exist, in float32
  await model.to({ dtype: "float64" }); // a move after the optimizer was made
  assert.equal(model.weight, weight); // the same Tensor object...
  assert.equal(weight.dtype, "float64"); // ...with new memory
  assert.equal(optimizer.parameters()[0], weight);
  const [x64, y64] = [x.cast("float64"), y.cast("float64")];
  const losses: number[] = [];
  for (let step = 0; step < 20; step++) {
    optimizer.zeroGrad();
    const loss = lossOf(x64, y64);
    losses.push(loss.dataSync()[0]);
    loss.backward();
    optimizer.step();
  }
  assert.ok(losses.at(-1)! < 0.5 * losses[0], `loss ${losses[0]} -> ${losses.at(-1)}`);
  assert.equal(optimizer.velocity(weight)!.dtype, "float64");
});

Deno.test("a shared layer is counted once; tied weights are updated once (PyTorch dedups)", () => {
  const shared = new Linear(2, 2, { rng: 1 });
  const model = new Sequential([shared, shared]);
  assert.equal(model.parameterCount(), 6);
  assert.equal(model.parameters().length, 2);
  const w = tensor([1, 1], { requiresGrad: true });
  const optimizer = new SGD([w, w], { lr: 0.5 });
  sum(w).backward();
  optimizer.step();
  assert.deepEqual([...w.dataSync()], [0.5, 0.5]); // once: 1 - 0.5 · 1
  const fromModel = new SGD(model.parameters(), { lr: 0.1 });
  assert.equal(fromModel.parameters().length, 2);
});

Deno.test("StepLR and CosineAnnealing keep an lr set by hand and schedule from it (chainable)", () => {
  const params = () => [tensor([1], { requiresGrad: true })];
  const optimizer = new SGD(params(), { lr: 1 });
  const schedule = new StepLR(optimizer, { stepSize: 2, gamma: 0.1 });
  schedule.step(); // epoch 1: no drop
  assert.equal(optimizer.lr, 1);
  optimizer.lr = 0.5; // by hand
  schedule.step(); // epoch 2: a drop, from the hand-set lr (PyTorch: 0.05)
  assert.ok(Math.abs(optimizer.lr - 0.05) < 1e-15, `${optimizer.lr}`);
  schedule.step(); // epoch 3: untouched
  assert.ok(Math.abs(optimizer.lr - 0.05) < 1e-15, `${optimizer.lr}`);

  const cosine = new SGD(params(), { lr: 1 });
  const annealing = new CosineAnnealing(cosine, { tMax: 4 });
  annealing.step(); // 1 · (1 + cos(π/4)) / 2
  const closed = (1 + Math.cos(Math.PI / 4)) / 2;
  assert.ok(Math.abs(cosine.lr - closed) < 1e-12);
  cosine.lr = 0.2; // by hand: PyTorch continues from it
  annealing.step();
  const ratio = (1 + Math.cos(Math.PI / 2)) / (1 + Math.cos(Math.PI / 4));
  assert.ok(Math.abs(cosine.lr - 0.2 * ratio) < 1e-12, `${cosine.lr}`);
  annealing.step();
  annealing.step(); // epoch 4 = tMax: minLr
  assert.equal(cosine.lr, 0);
});
