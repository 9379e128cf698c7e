/**
 * Numbers at the edges, on the CPU (reference float64 kernels and the float32 fast paths):
 * accumulation that does not drift with the length of a sum, and PyTorch's conventions for
 * NaN, integers and gradients at kinks (recorded by tools/semantics_fixtures.py).
 */

import assert from "node:assert/strict";
import {
  abs,
  add,
  argmax,
  conv2d,
  div,
  exp,
  fromArray,
  full,
  log,
  matmul,
  max,
  maxPool2d,
  mean,
  mul,
  ones,
  pow,
  rand,
  relu,
  sigmoid,
  sqrt,
  sub,
  sum,
  tanh,
  type Tensor,
  tensor,
} from "../../mod.ts";
import { fixture, type FixtureTensor, numbers } from "../support/semantics_fixtures.ts";

/** Equal as PyTorch's results: NaN matches NaN, ±Infinity only itself, finite within rtol. */
function assertSame(actual: ArrayLike<number>, expected: number[], what: string, rtol = 1e-6) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const [a, e] = [actual[i], expected[i]];
    const same = Number.isNaN(e)
      ? Number.isNaN(a)
      : Number.isFinite(e)
      ? Math.abs(a - e) <= rtol * Math.abs(e) + 1e-12
      : a === e;
    assert.ok(same, `${what}: element ${i} is ${a}, PyTorch gives ${e}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Accumulation

Deno.test("sum over 1e6 rows of 0.1 (float32) is within 1e-6 relative of 100000, every path", () => {
  const rows = 1_000_000;
  const column = full([rows, 1], 0.1);
  const expected = rows * Math.fround(0.1);
  // Axis 0 of [N, 1]: the strided path; all axes: the contiguous block path; mean divides.
  assert.ok(Math.abs(sum(column, 0).dataSync()[0] - expected) <= 1e-6 * expected);
  assert.ok(Math.abs(sum(column).dataSync()[0] - expected) <= 1e-6 * expected);
  assert.ok(Math.abs(mean(column).dataSync()[0] - Math.fround(0.1)) <= 1e-6 * 0.1);
  const two = full([rows, 2], 0.1);
  for (const v of sum(two, 0).dataSync()) assert.ok(Math.abs(v - expected) <= 1e-6 * expected);
});

Deno.test("a sum of 2^25 float32 ones is exact (a float32 running sum stops at 2^24)", () => {
  const n = 2 ** 25;
  let x: Tensor = ones([n]);
  assert.equal(sum(x).dataSync()[0], n);
  x.dispose();
  x = ones([n, 1]);
  assert.equal(sum(x, 0).dataSync()[0], n);
  x.dispose();
});

/**
 * The fast float32 kernels sum at most 4096 products in float32 (then float64), so their error
 * is bounded by 4096·2^-24 ≈ 2.4e-4 relative whatever the depth; a float32 running sum over
 * the whole depth was 1% off at a depth of 1e6 (and 4% at 4e6) on these inputs.
 */
const FAST_BOUND = 4096 * 2 ** -24;

Deno.test("float32 matmul over a depth of 1e6 does not drift (depth blocks summed in float64)", () => {
  const k = 1_000_000;
  const a = full([2, k], 0.1), b = ones([k, 3]);
  const expected = k * Math.fround(0.1);
  for (const v of matmul(a, b).dataSync()) {
    assert.ok(Math.abs(v - expected) <= FAST_BOUND * expected, `${v}`);
  }
  const row = full([1, k], 0.1); // one row: the matrix-vector path
  const v = matmul(row, b).dataSync()[0];
  assert.ok(Math.abs(v - expected) <= FAST_BOUND * expected, `${v}`);
});

Deno.test("conv2d weight and bias gradients over a batch of 2^20 pixels do not drift", () => {
  const x = full([256, 1, 64, 64], 0.1, { requiresGrad: false });
  const w = ones([1, 1, 1, 1], { requiresGrad: true }), b = ones([1], { requiresGrad: true });
  sum(conv2d(x, w, b)).backward();
  const pixels = 256 * 64 * 64, expected = pixels * Math.fround(0.1);
  const dw = w.grad!.dataSync()[0];
  assert.ok(Math.abs(dw - expected) <= FAST_BOUND * expected, `${dw}`);
  assert.equal(b.grad!.dataSync()[0], pixels);
});

// ---------------------------------------------------------------------------------------------
// NaN, integers and edge gradients, against PyTorch

interface UnaryEdge {
  op: string;
  x: FixtureTensor;
  out: FixtureTensor;
  grad: FixtureTensor;
}

const UNARY_OPS: Record<string, (x: Tensor) => Tensor> = {
  relu,
  abs,
  sqrt,
  log,
  exp,
  tanh,
  sigmoid,
  pow0: (x) => pow(x, 0),
  pow2: (x) => pow(x, 2),
  "pow0.5": (x) => pow(x, 0.5),
  "pow-1": (x) => pow(x, -1),
  amax_ties: (x) => max(x, 0, true),
  amax_nan: (x) => max(x, 0, true),
  sum_nan: (x) => sum(x, 0, true),
};

Deno.test("NaN and edge gradients match PyTorch (relu, abs, sqrt, log, pow, max ties, NaN max)", () => {
  const cases = fixture<UnaryEdge>("edges.json").filter((c) => c.op in UNARY_OPS);
  assert.equal(cases.length, Object.keys(UNARY_OPS).length);
  for (const dtype of ["float64", "float32"] as const) {
    for (const c of cases) {
      // Repeated to 4n + 1 values: the float32 relu kernel's vector loop and its tail both run.
      const values = numbers(c.x);
      const repeat = c.op.startsWith("amax") || c.op === "sum_nan" ? 1 : 5;
      const x = fromArray(
        Float64Array.from({ length: values.length * repeat }, (_, i) => values[i % values.length]),
        [values.length * repeat],
        { dtype, requiresGrad: true },
      );
      const y = UNARY_OPS[c.op](x);
      const out = [...y.dataSync()];
      sum(y).backward();
      const tile = (v: number[]) =>
        Array.from({ length: v.length * repeat }, (_, i) => v[i % v.length]);
      assertSame(out, tile(numbers(c.out)), `${dtype} ${c.op}`);
      assertSame(x.grad!.dataSync(), tile(numbers(c.grad)), `${dtype} ${c.op} gradient`);
    }
  }
});

Deno.test("argmax returns the first NaN of a row (PyTorch: NaN is the largest)", () => {
  const c = fixture<{ op: string; x: FixtureTensor; out: number[] }>("edges.json")
    .find((c) => c.op === "argmax")!;
  for (const dtype of ["float64", "float32"] as const) {
    const x = fromArray(Float64Array.from(numbers(c.x)), c.x.shape, { dtype });
    assert.deepEqual([...argmax(x, 1).dataSync()], c.out, dtype);
  }
});

Deno.test("max pooling propagates NaN (float64 reference and the float32 kernel)", () => {
  const c = fixture<{ op: string; x: FixtureTensor; out: FixtureTensor }>("edges.json")
    .find((c) => c.op === "maxPool2dNan")!;
  for (const dtype of ["float64", "float32"] as const) {
    const x = fromArray(Float64Array.from(numbers(c.x)), c.x.shape, { dtype });
    assertSame(maxPool2d(x, { kernelSize: 2, stride: 1 }).dataSync(), numbers(c.out), dtype);
  }
});

Deno.test("int32 add, sub and mul wrap around as in PyTorch; int32 div is refused", () => {
  const c = fixture<
    { op: string; a: number[]; b: number[]; add: number[]; sub: number[]; mul: number[] }
  >(
    "edges.json",
  ).find((c) => c.op === "int32")!;
  const a = tensor(c.a, { dtype: "int32" }), b = tensor(c.b, { dtype: "int32" });
  assert.deepEqual([...add(a, b).dataSync()], c.add);
  assert.deepEqual([...sub(a, b).dataSync()], c.sub);
  assert.deepEqual([...mul(a, b).dataSync()], c.mul);
  assert.throws(() => div(a, b), /div: int32 division is not supported.*cast to float32/);
});

Deno.test("rand never returns high, also where a float64 draw rounds up to it in float32", () => {
  // 1 - 2^-30 is below 1 in float64 but rounds to 1 in float32.
  const rng = { uniform: () => 1 - 2 ** -30, nextU32: () => 0, normal: () => 0 };
  for (const dtype of ["float32", "float64"] as const) {
    const x = rand([4], { dtype, rng: rng as never });
    for (const v of x.dataSync()) assert.ok(v < 1, `${dtype}: ${v}`);
    const shifted = rand([2], { dtype, rng: rng as never, low: -3, high: -2 });
    for (const v of shifted.dataSync()) assert.ok(v < -2 && v >= -3, `${dtype}: ${v}`);
  }
  assert.throws(() => rand([1], { low: 1, high: 1 }), /rand: low \(1\) must be below high \(1\)/);
});
