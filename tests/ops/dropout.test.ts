import assert from "node:assert/strict";
import { fromArray, ones, type Tensor } from "../../tensor/tensor.ts";
import { counterUniform } from "../../tensor/random.ts";
import { dropout, dropoutCpu } from "../../tensor/ops/dropout.ts";
import { assertGradcheck, randomF64, values } from "../support/helpers.ts";

// ---------------------------------------------------------------------------------------------
// Forward

Deno.test("dropout: each element is kept iff counterUniform(seed, i) >= p, scaled by 1/(1-p)", () => {
  const cases: [number, number][] = [[0.5, 0], [0.3, 7], [0.9, 0xffffffff], [0.01, 12345]];
  for (const [p, seed] of cases) {
    const x = randomF64([3, 4, 5], seed % 1000);
    const input = x.dataSync(), y = values(dropout(x, { p, seed }));
    for (let i = 0; i < y.length; i++) {
      const expected = counterUniform(seed, i) >= p ? input[i] / (1 - p) : 0;
      assert.ok(
        Math.abs(y[i] - expected) <= 1e-15 * Math.abs(expected),
        `p ${p} seed ${seed} element ${i}: ${y[i]} != ${expected}`,
      );
    }
  }
});

Deno.test("dropout: the mask is reproducible from the seed and changes with it", () => {
  const x = ones([1000]);
  const mask = (seed: number) => [...values(dropout(x, { p: 0.5, seed }))];
  assert.deepEqual(mask(42), mask(42));
  assert.notDeepEqual(mask(42), mask(43));
});

Deno.test("dropout: the fraction kept is close to 1 - p on 200,000 elements", () => {
  const x = ones([200, 1000]);
  for (const p of [0.1, 0.5, 0.9]) {
    const y = Float64Array.from(values(dropout(x, { p, seed: 2012 })));
    const kept = y.filter((v) => v !== 0).length / y.length;
    // Binomial standard deviation is at most 0.0011 here; allow 5 of them.
    assert.ok(Math.abs(kept - (1 - p)) < 0.006, `p ${p}: kept ${kept}`);
    // Inverted dropout preserves the mean: E[y] = x = 1.
    const average = y.reduce((s, v) => s + v, 0) / y.length;
    assert.ok(Math.abs(average - 1) < 0.015 * Math.sqrt(p / (1 - p)), `p ${p}: mean ${average}`);
  }
});

Deno.test("dropout: float32 products are those of a float32 kernel (scale rounded to float32)", () => {
  const p = 0.3, seed = 9;
  const x = Float32Array.from({ length: 64 }, (_, i) => 0.1 * i - 3.3);
  const y = new Float32Array(64);
  dropoutCpu(x, p, seed, y);
  const scale = Math.fround(1 / (1 - p));
  for (let i = 0; i < 64; i++) {
    assert.equal(
      y[i],
      counterUniform(seed, i) >= p ? Math.fround(x[i] * scale) : 0,
      `element ${i}`,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Backward

Deno.test("dropout: backward applies the forward's mask and scale", () => {
  const x = randomF64([7, 11], 1);
  x.requiresGrad = true;
  const y = dropout(x, { p: 0.4, seed: 77 });
  const kept = values(y).map((v) => (v !== 0 ? 1 : 0));
  y.backward(ones([7, 11], { dtype: "float64" }));
  const grad = values(x.grad!);
  // dL/dx for L = Σ y is the mask times 1/(1-p): exactly dropout(ones) with the same seed.
  assert.deepEqual(
    grad,
    values(dropout(ones([7, 11], { dtype: "float64" }), { p: 0.4, seed: 77 })),
  );
  assert.deepEqual(grad.map((g) => (g !== 0 ? 1 : 0)), kept);
});

const gradCases: [string, number, number, number[]][] = [
  ["p 0.5", 0.5, 3, [3, 5, 7]],
  ["p 0.2", 0.2, 4000000000, [2, 9]],
  ["p 0.95", 0.95, 1, [50]],
];

for (const [name, p, seed, shape] of gradCases) {
  Deno.test(`gradcheck dropout ${name} seed ${seed}`, () => {
    assertGradcheck((x) => dropout(x, { p, seed }), [randomF64(shape, seed % 97)]);
  });
}

// ---------------------------------------------------------------------------------------------
// Identity cases and validation

Deno.test("dropout: evaluation and p = 0 return x itself", () => {
  const x = fromArray(Float32Array.from([1, 2, 3]), [3]);
  const cases: [string, () => Tensor][] = [
    ["training false", () => dropout(x, { p: 0.5, seed: 1, training: false })],
    ["p 0", () => dropout(x, { p: 0, seed: 1 })],
  ];
  for (const [name, run] of cases) assert.equal(run(), x, name);
});

Deno.test("dropout: invalid p and seed name the argument and value", () => {
  const x = ones([4]);
  const cases: [string, () => unknown, RegExp][] = [
    ["p 1", () => dropout(x, { p: 1, seed: 0 }), /dropout: p must be in \[0, 1\), got 1$/],
    ["p -0.1", () => dropout(x, { p: -0.1, seed: 0 }), /dropout: p must be in \[0, 1\), got -0.1/],
    ["p NaN", () => dropout(x, { p: NaN, seed: 0 }), /dropout: p must be in \[0, 1\), got NaN/],
    [
      "p 1.5 in eval",
      () => dropout(x, { p: 1.5, seed: 0, training: false }),
      /dropout: p must be in \[0, 1\), got 1.5/,
    ],
    [
      "seed -1",
      () => dropout(x, { seed: -1 }),
      /dropout: seed must be a u32 integer in \[0, 4294967295\], got -1/,
    ],
    ["seed 1.5", () => dropout(x, { seed: 1.5 }), /dropout: seed must be a u32 integer .*got 1.5/],
    [
      "seed 2^32",
      () => dropout(x, { seed: 2 ** 32 }),
      /dropout: seed must be a u32 integer .*got 4294967296/,
    ],
    [
      "int32 input",
      () => dropout(ones([2], { dtype: "int32" }), { seed: 0 }),
      /dropout: expected a float tensor, got int32/,
    ],
  ];
  for (const [name, run, message] of cases) assert.throws(run, message, name);
});
