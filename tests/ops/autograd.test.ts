import assert from "node:assert/strict";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import { add, exp, mul, relu } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { matmul } from "../../tensor/ops/matmul.ts";
import { noGrad, scope } from "../../tensor/autograd.ts";
import { gradcheck } from "../../tensor/gradcheck.ts";
import { randomF64, values } from "../support/helpers.ts";

const param = (data: number[]) => {
  const t = tensor(data);
  t.requiresGrad = true;
  return t;
};

Deno.test("gradients accumulate over uses and across backward calls (+=)", () => {
  const x = param([1, 2, 3]);
  // y = Σ x·x + Σ 3x  ->  dy/dx = 2x + 3
  sum(add(mul(x, x), mul(x, 3))).backward();
  assert.deepEqual([...values(x.grad!)], [5, 7, 9]);
  // A second backward adds to .grad rather than replacing it.
  sum(mul(x, x)).backward();
  assert.deepEqual([...values(x.grad!)], [7, 11, 15]);
});

Deno.test("backward releases every intermediate and keeps the root and leaves", () => {
  const w = param([0.5, -1]);
  const x = tensor([2, 3]);
  const hidden = mul(w, x);
  const activated = relu(hidden);
  const loss = sum(exp(activated));
  loss.backward();
  assert.equal(hidden.isDisposed, true);
  assert.equal(activated.isDisposed, true);
  assert.equal(loss.isDisposed, false);
  assert.equal(w.isDisposed, false);
  assert.equal(x.isDisposed, false);
  assert.equal(loss.node, null);
  assert.throws(() => values(hidden), /released by backward\(\).*keep\(\)/);
});

Deno.test("keep() protects an intermediate from backward", () => {
  const w = param([1, 2]);
  const logits = mul(w, 3).keep();
  sum(logits).backward();
  assert.deepEqual([...values(logits)], [3, 6]);
  assert.deepEqual([...values(w.grad!)], [3, 3]);
});

Deno.test("noGrad records nothing and releases what it did not return", () => {
  const w = param([1, 2]);
  let inner: Tensor | undefined;
  const out = noGrad(() => {
    inner = mul(w, 2);
    return add(inner, 1);
  });
  assert.equal(out.requiresGrad, false);
  assert.equal(out.node, null);
  assert.deepEqual([...values(out)], [3, 5]);
  assert.equal(inner!.isDisposed, true);
  assert.throws(() => values(inner!), /scope\(\) or noGrad\(\)/);
});

Deno.test("scope keeps what a returned tensor's graph needs for backward", () => {
  const w = param([1, -2, 3]);
  const loss = scope(() => {
    const hidden = relu(mul(w, tensor([1, 1, 1])));
    return sum(mul(hidden, hidden));
  });
  loss.backward(); // would throw if the scope had released the graph's tensors
  assert.deepEqual([...values(w.grad!)], [2, 0, 6]);
});

Deno.test("scope keeps a returned tensor however deep it is nested, and survives cycles", () => {
  type Nest = { next?: Nest | Tensor[]; self?: unknown };
  const result = scope(() => {
    let nest: Nest = { next: [add(tensor([1, 2]), 1)] };
    for (let depth = 0; depth < 20; depth++) nest = { next: nest };
    nest.self = nest; // a cycle must not loop forever
    return nest;
  });
  let level: Nest | Tensor[] = result;
  while (!Array.isArray(level)) level = level.next!;
  assert.deepEqual([...values(level[0])], [2, 3]);
});

Deno.test("backward with an upstream gradient, and its errors", () => {
  const a = param([1, 2, 3, 4]);
  const y = mul(a, a);
  assert.throws(() => y.backward(), /backward: tensor \[4\] is not a scalar/);
  assert.throws(
    () => y.backward(tensor([1, 2])),
    /upstream gradient \[2\] does not match tensor \[4\]/,
  );
  y.backward(tensor([1, 0, 1, 0]));
  assert.deepEqual([...values(a.grad!)], [2, 0, 6, 0]);
  assert.throws(() => tensor([1]).backward(), /does not require grad/);
});

Deno.test("a parameter created by ops becomes a leaf when it requires grad", () => {
  const w = mul(tensor([1, 2]), 0.5);
  w.requiresGrad = true;
  sum(mul(w, w)).backward();
  assert.equal(w.isDisposed, false);
  assert.deepEqual([...values(w.grad!)], [1, 2]);
});

Deno.test("gradcheck reports a wrong derivative", () => {
  // A deliberately broken op: forward x², backward claims x (should be 2x).
  const broken = (x: Tensor) => {
    const y = mul(x, x);
    y.node = { op: "broken", inputs: [x], saved: [], backward: (g) => [mul(g, x)] };
    return y;
  };
  const result = gradcheck(broken, [randomF64([3], 1)]);
  assert.equal(result.ok, false);
  assert.match(result.message, /FAILED/);
});

Deno.test("a small conv-free MLP: gradients through matmul chains", () => {
  const result = gradcheck(
    (x, w1, w2) => sum(exp(matmul(relu(matmul(x, w1)), w2))),
    [randomF64([3, 4], 1), randomF64([4, 5], 2), randomF64([5, 2], 3)],
  );
  assert.ok(result.ok, result.message);
});
