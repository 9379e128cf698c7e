/**
 * PyTorch habits: Tensor methods that delegate to the functional ops, printing, casts,
 * comparisons for accuracy, stack / linspace / eye, crossEntropy's reduction, softmax and
 * argmax along an axis, and torch.matmul's broadcasting. Every new differentiable op is
 * checked against finite differences in float64.
 *
 * @module
 */

import assert from "node:assert/strict";
import { inspect } from "node:util";
import {
  abs,
  add,
  argmax,
  cast,
  crossEntropy,
  div,
  eq,
  exp,
  eye,
  flatten,
  fromArray,
  ge,
  gt,
  le,
  Linear,
  linspace,
  log,
  logSoftmax,
  lt,
  manualSeed,
  matmul,
  max,
  mean,
  mul,
  ne,
  neg,
  ones,
  permute,
  pow,
  randn,
  ReLU,
  relu,
  reshape,
  Sequential,
  sigmoid,
  softmax,
  sqrt,
  stack,
  sub,
  sum,
  tanh,
  type Tensor,
  tensor,
  transpose,
} from "../../mod.ts";
import { assertClose, assertGradcheck, randomF64, values } from "../support/helpers.ts";

const list = (t: Tensor) => [...values(t)];

Deno.test("each Tensor method gives what its function gives", () => {
  const x = randn([2, 3], { seed: 1 }), y = randn([2, 3], { seed: 2 });
  const p = fromArray(new Float32Array([0.5, 1, 2, 3, 4, 5]), [2, 3]);
  const w = randn([3, 4], { seed: 3 });
  const cases: [string, Tensor, Tensor][] = [
    ["add", x.add(y), add(x, y)],
    ["add number", x.add(2), add(x, 2)],
    ["sub", x.sub(y), sub(x, y)],
    ["mul", x.mul(2), mul(x, 2)],
    ["div", x.div(p), div(x, p)],
    ["pow", x.pow(2), pow(x, 2)],
    ["neg", x.neg(), neg(x)],
    ["exp", x.exp(), exp(x)],
    ["log", p.log(), log(p)],
    ["sqrt", p.sqrt(), sqrt(p)],
    ["abs", x.abs(), abs(x)],
    ["relu", x.relu(), relu(x)],
    ["tanh", x.tanh(), tanh(x)],
    ["sigmoid", x.sigmoid(), sigmoid(x)],
    ["eq", x.eq(y), eq(x, y)],
    ["ne", x.ne(y), ne(x, y)],
    ["gt", x.gt(y), gt(x, y)],
    ["ge", x.ge(0), ge(x, 0)],
    ["lt", x.lt(y), lt(x, y)],
    ["le", x.le(0), le(x, 0)],
    ["cast", x.cast("float64"), cast(x, "float64")],
    ["matmul", x.matmul(w), matmul(x, w)],
    ["sum", x.sum(), sum(x)],
    ["sum axis keepDims", x.sum(1, true), sum(x, 1, true)],
    ["mean", x.mean(0), mean(x, 0)],
    ["max", x.max(-1), max(x, -1)],
    ["argmax", x.argmax(0), argmax(x, 0)],
    ["softmax", x.softmax(0), softmax(x, 0)],
    ["logSoftmax", x.logSoftmax(), logSoftmax(x)],
    ["reshape array", x.reshape([3, 2]), reshape(x, [3, 2])],
    ["reshape numbers", x.reshape(3, -1), reshape(x, [3, 2])],
    ["view", x.view(6), reshape(x, [6])],
    ["flatten", x.reshape(1, 2, 3).flatten(), flatten(reshape(x, [1, 2, 3]))],
    ["transpose", x.transpose(), transpose(x)],
    ["permute numbers", x.permute(1, 0), permute(x, [1, 0])],
  ];
  for (const [name, method, fn] of cases) {
    assert.deepEqual(method.shape, fn.shape, name);
    assert.equal(method.dtype, fn.dtype, name);
    assert.deepEqual(list(method), list(fn), name);
  }
});

Deno.test("methods record the same graph: gradients flow through x.view and friends", () => {
  const w = tensor([[1, 2], [3, 4]], { requiresGrad: true });
  w.view(4).mul(w.view(4)).sum().backward();
  assert.deepEqual(list(w.grad!), [2, 4, 6, 8]);
});

Deno.test("console.log shows shape, dtype, device and the values of a small CPU tensor", () => {
  const x = tensor([[1, 2.5], [3, 4]]);
  const shown = Deno.inspect(x);
  assert.match(shown, /^Tensor\(\[2,2\], float32, cpu\)\n\[\[1, 2\.500\],\n \[3, 4\]\]$/);
  assert.equal(inspect(x), shown, "node:util's inspect too");
  assert.equal(
    x[Symbol.for("nodejs.util.inspect.custom") as keyof Tensor] instanceof Function,
    true,
  );
  const w = tensor([1, 2], { requiresGrad: true });
  assert.match(Deno.inspect(w), /^Tensor\(\[2\], float32, cpu, requiresGrad\)/);
  assert.match(Deno.inspect(w.mul(2)), /^Tensor\(\[2\], float32, cpu, grad from mul\)/);
  const big = randn([100, 100], { seed: 1 });
  assert.ok(Deno.inspect(big).split("\n").length < 10, "large tensors are abbreviated");
  x.dispose();
  assert.equal(Deno.inspect(x), "Tensor([2,2], disposed)");
});

Deno.test("cast converts dtypes and is differentiable between float types", () => {
  const x = tensor([1.5, -2.5, 3], { requiresGrad: true });
  const y = cast(x, "float64");
  assert.equal(y.dtype, "float64");
  mul(y, y).sum().backward();
  assert.equal(x.grad!.dtype, "float32");
  assert.deepEqual(list(x.grad!), [3, -5, 6]);
  assert.deepEqual(list(cast(tensor([1.7, -1.7, 2]), "int32")), [1, -1, 2], "toward zero");
  assert.equal(cast(x, "float32"), x, "same dtype: the tensor itself");
  assertGradcheck((a) => mul(cast(a, "float64"), a), [randomF64([5], 1)]);
});

Deno.test("a whole model converted to float64 passes gradcheck on the CPU", async () => {
  manualSeed(3);
  const model = new Sequential([new Linear(3, 5), new ReLU(), new Linear(5, 2)]);
  await model.to({ dtype: "float64" });
  assertGradcheck((x) => model.forward(x), [randomF64([4, 3], 2)]);
  const [w] = model.parameters();
  assertGradcheck((x, weight) => {
    const h = relu(matmul(x, transpose(weight)));
    return sum(h);
  }, [randomF64([4, 3], 2), cast(w.detach(), "float64")]);
});

Deno.test("comparisons give 1 or 0 and make accuracy a one-liner with int32 labels", async () => {
  const a = tensor([1, 2, 3]), b = tensor([3, 2, 1]);
  assert.deepEqual(list(eq(a, b)), [0, 1, 0]);
  assert.deepEqual(list(ne(a, b)), [1, 0, 1]);
  assert.deepEqual(list(gt(a, b)), [0, 0, 1]);
  assert.deepEqual(list(ge(a, 2)), [0, 1, 1]);
  assert.deepEqual(list(lt(2, a)), [0, 0, 1], "number first");
  assert.deepEqual(list(le(a, tensor([[2], [3]]))), [1, 1, 0, 1, 1, 1], "broadcasting");
  const logits = tensor([[0.1, 2, 0.3], [5, 0, 1], [0, 0, 9], [1, 3, 2]]);
  const labels = fromArray(new Int32Array([1, 0, 1, 1]), [4]);
  const correct = argmax(logits, 1).eq(labels);
  assert.equal(correct.dtype, "float32");
  assert.equal(await correct.mean().item(), 0.75);
  assert.deepEqual(list(eq(labels, 1.5)), [0, 0, 0, 0], "int32 against a fraction");
});

Deno.test("stack, linspace and eye", () => {
  const a = tensor([[1, 2], [3, 4]]), b = tensor([[5, 6], [7, 8]]);
  const s0 = stack([a, b]);
  assert.deepEqual(s0.shape, [2, 2, 2]);
  assert.deepEqual(list(s0), [1, 2, 3, 4, 5, 6, 7, 8]);
  const s2 = stack([a, b], -1);
  assert.deepEqual(s2.shape, [2, 2, 2]);
  assert.deepEqual(list(s2), [1, 5, 2, 6, 3, 7, 4, 8]);
  assertGradcheck((x, y) => stack([x, y], 1), [randomF64([2, 3], 1), randomF64([2, 3], 2)]);
  assert.deepEqual(list(linspace(0, 1, 5)), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(list(linspace(2, 2, 1)), [2]);
  assert.equal(linspace(0, 1, 0).size, 0);
  assert.deepEqual(list(eye(2)), [1, 0, 0, 1]);
  assert.deepEqual(eye(2, 3).shape, [2, 3]);
  assert.deepEqual(list(eye(2, 3)), [1, 0, 0, 0, 1, 0]);
  assert.throws(
    () => linspace(0, 1, 2.5),
    /linspace: steps must be a non-negative integer, got 2.5/,
  );
  assert.throws(() => eye(-1), /eye: n must be a non-negative integer, got -1/);
});

Deno.test("crossEntropy reductions: mean (default), sum, none", () => {
  const logits = randomF64([4, 3], 5);
  const labels = [0, 2, 1, 2];
  const none = crossEntropy(logits, labels, { reduction: "none" });
  assert.deepEqual(none.shape, [4]);
  const rows = list(none);
  assertClose(list(crossEntropy(logits, labels)), [rows.reduce((s, v) => s + v) / 4]);
  assertClose(list(crossEntropy(logits, labels, { reduction: "sum" })), [
    rows.reduce((s, v) => s + v),
  ]);
  for (const reduction of ["mean", "sum", "none"] as const) {
    assertGradcheck((x) => crossEntropy(x, labels, { reduction }), [randomF64([4, 3], 6)]);
  }
});

Deno.test("softmax and logSoftmax along any axis: values and gradients", () => {
  const x = randomF64([2, 3, 4], 7);
  for (const axis of [0, 1, -1, -3]) {
    const s = softmax(x, axis);
    const total = list(sum(s, axis));
    assertClose(total, total.map(() => 1), { what: `softmax axis ${axis}` });
    assertClose(list(logSoftmax(x, axis)), list(log(s)), { what: `logSoftmax axis ${axis}` });
    assertGradcheck((a) => softmax(a, axis), [x]);
    assertGradcheck((a) => logSoftmax(a, axis), [x]);
  }
});

Deno.test("number-first arithmetic and pow with a number base: gradients", () => {
  const x = randomF64([3, 2], 8, 0.5, 2);
  assertGradcheck((a) => mul(2, a), [x]);
  assertGradcheck((a) => add(2, a), [x]);
  assertGradcheck((a) => sub(2, a), [x]);
  assertGradcheck((a) => div(2, a), [x]);
  assertGradcheck((a) => pow(2.5, a), [x]);
});

/** torch.matmul by definition: loops over the broadcast batch. */
function referenceMatmul(a: Tensor, b: Tensor): number[] {
  const [m, k] = a.shape.slice(-2), n = b.shape[b.rank - 1];
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  const rank = Math.max(batchA.length, batchB.length);
  const pad = (s: readonly number[]) => [...new Array(rank - s.length).fill(1), ...s];
  const pa = pad(batchA), pb = pad(batchB);
  const batch = pa.map((d, i) => Math.max(d, pb[i]));
  const av = values(a), bv = values(b), out: number[] = [];
  const count = batch.reduce((p, d) => p * d, 1);
  for (let flat = 0; flat < count; flat++) {
    let rest = flat, offA = 0, offB = 0, strideA = 1, strideB = 1;
    for (let i = rank - 1; i >= 0; i--) {
      const index = rest % batch[i];
      rest = Math.floor(rest / batch[i]);
      offA += (pa[i] === 1 ? 0 : index) * strideA;
      offB += (pb[i] === 1 ? 0 : index) * strideB;
      strideA *= pa[i];
      strideB *= pb[i];
    }
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < n; c++) {
        let total = 0;
        for (let j = 0; j < k; j++) {
          total += av[offA * m * k + r * k + j] * bv[offB * k * n + j * n + c];
        }
        out.push(total);
      }
    }
  }
  return out;
}

Deno.test("matmul broadcasts batch axes like torch.matmul, forward and backward", () => {
  const cases: [number[], number[], number[]][] = [
    [[2, 1, 5, 7], [3, 7, 4], [2, 3, 5, 4]],
    [[3, 5, 7], [7, 4], [3, 5, 4]],
    [[5, 7], [2, 7, 4], [2, 5, 4]],
    [[1, 5, 7], [3, 7, 4], [3, 5, 4]],
    [[2, 1, 2, 3], [1, 4, 3, 2], [2, 4, 2, 2]],
  ];
  cases.forEach(([sa, sb, expected], i) => {
    const a = randomF64(sa, 10 + i), b = randomF64(sb, 20 + i);
    const y = matmul(a, b);
    assert.deepEqual(y.shape, expected, `${sa} @ ${sb}`);
    assertClose(list(y), referenceMatmul(a, b), { rtol: 1e-12, atol: 1e-12 });
    assertGradcheck(matmul, [a, b]);
  });
});

Deno.test("matmul with vectors: 1-D operands as torch.matmul treats them", () => {
  const v = randomF64([3], 1), m = randomF64([3, 4], 2), batch = randomF64([2, 4, 3], 3);
  assert.deepEqual(matmul(v, m).shape, [4]);
  assert.deepEqual(matmul(m, randomF64([4], 4)).shape, [3]);
  assert.deepEqual(matmul(v, v).shape, []);
  assert.deepEqual(matmul(batch, v).shape, [2, 4]);
  assertClose(list(matmul(v, v)), [list(v).reduce((s, x) => s + x * x, 0)]);
  assertGradcheck(matmul, [v, m]);
  assertGradcheck(matmul, [batch, v]);
  assertGradcheck((a) => matmul(a, a), [v]);
});

Deno.test("ones and friends still work with the new argument checks", () => {
  assert.deepEqual(list(ones([2], { dtype: "int32" })), [1, 1]);
});
