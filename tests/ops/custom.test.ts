/** customOp (tensor/ops/custom.ts): an op defined from the package's exports, with its backward. */
import assert from "node:assert/strict";
import {
  add,
  customOp,
  exp,
  gradcheck,
  log,
  mul,
  randn,
  sigmoid,
  sum,
  type Tensor,
  tensor,
} from "../../mod.ts";

const softplus = customOp({
  name: "softplus",
  forward: (x) => log(add(exp(x), 1)),
  backward: (grad, { inputs: [x] }) => [mul(grad, sigmoid(x))],
});

Deno.test("customOp: softplus passes gradcheck on cpu and on ref, and its forward is log(1 + e^x)", async () => {
  for (const device of ["cpu", "ref"]) {
    const x = randn([3, 4], { seed: 5, dtype: "float64", device });
    const result = gradcheck(softplus, [x]);
    assert.ok(result.ok, `${device}: ${result.message}`);
    const y = softplus(x);
    assert.equal(y.device, device);
    const xs = await x.data(), ys = await y.data();
    xs.forEach((v, i) => assert.ok(Math.abs(ys[i] - Math.log1p(Math.exp(v))) < 1e-12));
  }
});

Deno.test("customOp: two inputs, a null gradient, and no graph without requiresGrad", () => {
  let calls = 0;
  const scaled = customOp({
    name: "scaled",
    forward: (x, s) => mul(x, s),
    backward: (grad, { inputs: [_x, s] }) => {
      calls++;
      return [mul(grad, s), null];
    },
  });
  const x = tensor([1, 2, 3], { requiresGrad: true });
  const s = tensor([2, 2, 2]);
  sum(scaled(x, s)).backward();
  assert.deepEqual([...x.grad!.dataSync()], [2, 2, 2]);
  assert.equal(calls, 1);
  const y = scaled(tensor([1, 2]), tensor([3, 4]));
  assert.equal(y.requiresGrad, false);
  assert.deepEqual([...y.dataSync()], [3, 8]);
});

Deno.test("customOp: mistakes name the op and what is wrong", () => {
  const f = (x: Tensor) => x;
  assert.throws(
    () => customOp({ name: "f", forward: f, backward: () => [], extra: 1 } as never),
    /customOp: unknown option "extra"; the options are name, forward, backward/,
  );
  assert.throws(
    () => customOp({ name: "", forward: f, backward: () => [] }),
    /customOp: name must be a non-empty string/,
  );
  assert.throws(
    () => customOp({ name: "f", forward: f, backward: 3 as never }),
    /customOp: backward of "f" must be a function, got number/,
  );
  const tooFew = customOp({ name: "tooFew", forward: (x) => mul(x, 1), backward: () => [] });
  const x = tensor([1, 2], { requiresGrad: true });
  assert.throws(
    () => sum(tooFew(x)).backward(),
    /tooFew: backward must return an array of 1 gradients \(Tensor or null\), one per input, got 0/,
  );
  const notTensor = customOp({ name: "notTensor", forward: () => 3 as never, backward: () => [] });
  assert.throws(
    () => notTensor(x),
    /notTensor: the forward's result must be a Tensor, got number 3/,
  );
  assert.throws(
    () => softplus(tensor([1]), tensor([1], { device: "ref" })),
    /softplus: tensors are on different devices \(cpu and ref\)/,
  );
});
