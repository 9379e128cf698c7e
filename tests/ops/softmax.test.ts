import assert from "node:assert/strict";
import type { Storage } from "../../backend/backend.ts";
import { getBackend, type Tensor, tensor } from "../../tensor/tensor.ts";
import { noGrad } from "../../tensor/autograd.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { crossEntropy, logSoftmax, softmax } from "../../tensor/ops/softmax.ts";
import { assertClose, assertGradcheck, randomF64, values } from "../support/helpers.ts";

// ---------------------------------------------------------------------------------------------
// Naive references (fine for the moderate logits they are used on)

function naiveSoftmax(x: ArrayLike<number>, cols: number): number[] {
  const y: number[] = [];
  for (let start = 0; start < x.length; start += cols) {
    const e = Array.from({ length: cols }, (_, j) => Math.exp(x[start + j]));
    const total = e.reduce((s, v) => s + v, 0);
    y.push(...e.map((v) => v / total));
  }
  return y;
}

function rowSums(y: ArrayLike<number>, cols: number): number[] {
  const sums: number[] = [];
  for (let start = 0; start < y.length; start += cols) {
    let total = 0;
    for (let j = 0; j < cols; j++) total += y[start + j];
    sums.push(total);
  }
  return sums;
}

// ---------------------------------------------------------------------------------------------
// softmax and logSoftmax

const shapes: number[][] = [[5], [3, 7], [2, 3, 4], [4, 1]];

for (const shape of shapes) {
  Deno.test(`softmax / logSoftmax forward [${shape}]: naive formula, rows sum to 1`, () => {
    const x = randomF64(shape, shape.length, -4, 4);
    const cols = shape[shape.length - 1];
    const expected = naiveSoftmax(x.dataSync(), cols);
    const y = softmax(x);
    assert.deepEqual(y.shape, shape);
    assertClose(values(y), expected, { rtol: 1e-13, atol: 0 });
    assertClose(rowSums(values(y), cols), new Array(x.size / cols).fill(1), {
      rtol: 0,
      atol: 1e-15,
    });
    assertClose(values(logSoftmax(x)), expected.map(Math.log), { rtol: 1e-12, atol: 1e-15 });
  });
}

Deno.test("softmax / logSoftmax: stable at logits of ±1000", () => {
  const cases: [string, number[], number[], number[]][] = [
    // logits, softmax, logSoftmax
    ["one huge", [1000, -1000, 0], [1, 0, 0], [0, -2000, -1000]],
    ["all huge and equal", [1000, 1000], [0.5, 0.5], [-Math.LN2, -Math.LN2]],
    ["all tiny and equal", [-1000, -1000, -1000, -1000], [0.25, 0.25, 0.25, 0.25], [
      -2 * Math.LN2,
      -2 * Math.LN2,
      -2 * Math.LN2,
      -2 * Math.LN2,
    ]],
  ];
  for (const dtype of ["float32", "float64"] as const) {
    for (const [name, logits, probabilities, logProbabilities] of cases) {
      const x = tensor(logits, { dtype });
      assertClose(values(softmax(x)), probabilities, {
        rtol: 1e-6,
        atol: 0,
        what: `${dtype} softmax ${name}`,
      });
      assertClose(values(logSoftmax(x)), logProbabilities, {
        rtol: 1e-6,
        atol: 0,
        what: `${dtype} logSoftmax ${name}`,
      });
    }
  }
});

const gradCases: [string, (x: Tensor) => Tensor, () => Tensor][] = [
  ["softmax [3,7]", softmax, () => randomF64([3, 7], 1, -3, 3)],
  ["softmax [2,3,4]", softmax, () => randomF64([2, 3, 4], 2, -3, 3)],
  ["softmax [1,1] (constant 1)", softmax, () => randomF64([1, 1], 3)],
  ["logSoftmax [3,7]", logSoftmax, () => randomF64([3, 7], 4, -3, 3)],
  ["logSoftmax [2,3,4]", logSoftmax, () => randomF64([2, 3, 4], 5, -3, 3)],
  [
    "softmax of logSoftmax (chained)",
    (x) => softmax(logSoftmax(x)),
    () => randomF64([2, 5], 6, -3, 3),
  ],
];

for (const [name, fn, input] of gradCases) {
  Deno.test(`gradcheck ${name}`, () => assertGradcheck(fn, [input()]));
}

Deno.test("softmax / logSoftmax: a scalar has no axis", () => {
  assert.throws(() => softmax(tensor(1)), /softmax: needs at least one axis, got a scalar/);
  assert.throws(() => logSoftmax(tensor(1)), /logSoftmax: needs at least one axis, got a scalar/);
});

// ---------------------------------------------------------------------------------------------
// crossEntropy

Deno.test("crossEntropy: mean of −log softmax[label] against the naive formula", () => {
  const logits = randomF64([5, 7], 7, -3, 3);
  const labels = [6, 0, 3, 3, 1];
  const probabilities = naiveSoftmax(logits.dataSync(), 7);
  const expected =
    labels.reduce((s, label, row) => s - Math.log(probabilities[row * 7 + label]), 0) / 5;
  const loss = crossEntropy(logits, labels);
  assert.deepEqual(loss.shape, []);
  assertClose(values(loss), [expected], { rtol: 1e-13, atol: 0 });
  // All three ways to pass labels agree.
  assert.deepEqual(values(crossEntropy(logits, Int32Array.from(labels))), values(loss));
  assert.deepEqual(values(crossEntropy(logits, tensor(labels, { dtype: "int32" }))), values(loss));
});

Deno.test("crossEntropy: stable and exact at logits of ±1000", () => {
  const cases: [string, number[], number, number][] = [
    // logits, label, −log softmax[label]: log Σ e^(x − m) − (x_label − m)
    ["wrong class by 2000", [1000, -1000, 0], 1, 2000],
    ["right class by 1000", [1000, -1000, 0], 0, 0],
    ["tie of two huge", [1000, 1000], 0, Math.LN2],
    ["three tiny", [-1000, -1000, -1000], 2, Math.log(3)],
    ["tiny wrong class", [-1000, 0, 1000], 1, 1000],
  ];
  for (const dtype of ["float32", "float64"] as const) {
    for (const [name, logits, label, expected] of cases) {
      const loss = values(crossEntropy(tensor([logits], { dtype }), [label]))[0];
      assert.ok(Number.isFinite(loss), `${dtype} ${name}: loss ${loss}`);
      assertClose([loss], [expected], { rtol: 1e-6, atol: 1e-7, what: `${dtype} ${name}` });
    }
  }
});

Deno.test("crossEntropy: gradient is (softmax − onehot) / N, finite at ±1000", () => {
  const logits = tensor([[1000, -1000, 0], [0, 0, 0]], { dtype: "float64", requiresGrad: true });
  crossEntropy(logits, [1, 2]).backward();
  assertClose(values(logits.grad!), [1 / 2, -1 / 2, 0, 1 / 6, 1 / 6, -1 / 3], {
    rtol: 1e-12,
    atol: 1e-15,
  });
});

const ceGradCases: [string, number[], number[]][] = [
  ["[4,7]", [4, 7], [6, 0, 2, 2]],
  ["[3,2]", [3, 2], [1, 1, 0]],
  ["[1,5]", [1, 5], [4]],
];

for (const [name, shape, labels] of ceGradCases) {
  Deno.test(`gradcheck crossEntropy ${name}`, () => {
    const logits = randomF64(shape, shape[0] * 10 + shape[1], -3, 3);
    assertGradcheck((x, y) => crossEntropy(x, y), [logits, tensor(labels, { dtype: "int32" })]);
    assertGradcheck((x) => crossEntropy(x, labels), [logits]);
  });
}

Deno.test("crossEntropy: bad labels and logits name the offending value and index", () => {
  const logits = randomF64([3, 5], 8);
  const cases: [string, () => unknown, RegExp][] = [
    [
      "label = C",
      () => crossEntropy(logits, [0, 1, 5]),
      /crossEntropy: label 5 at index 2 is not a class index in \[0, 5\)/,
    ],
    [
      "negative label",
      () => crossEntropy(logits, Int32Array.from([0, -1, 2])),
      /crossEntropy: label -1 at index 1 /,
    ],
    [
      "fractional label",
      () => crossEntropy(logits, [1.5, 0, 0]),
      /crossEntropy: label 1.5 at index 0 /,
    ],
    [
      "label tensor out of range",
      () => crossEntropy(logits, tensor([0, 7, 1], { dtype: "int32" })),
      /crossEntropy: label 7 at index 1 /,
    ],
    [
      "too few labels",
      () => crossEntropy(logits, [0, 1]),
      /crossEntropy: 2 labels for 3 rows of logits \[3,5\]/,
    ],
    [
      "label tensor shape",
      () => crossEntropy(logits, tensor([[0, 1, 2]], { dtype: "int32" })),
      /crossEntropy: labels \[1,3\] do not match logits \[3,5\] \(expected \[3\]\)/,
    ],
    [
      "float labels",
      () => crossEntropy(logits, tensor([0, 1, 2])),
      /crossEntropy: labels must be int32, got float32/,
    ],
    [
      "1-D logits",
      () => crossEntropy(randomF64([5], 9), [0]),
      /crossEntropy: logits must be \[N, C\], got \[5\]/,
    ],
    [
      "empty batch",
      () => crossEntropy(randomF64([0, 5], 9), []),
      /crossEntropy: logits \[0,5\] are empty/,
    ],
  ];
  for (const [name, run, message] of cases) assert.throws(run, message, name);
});

// ---------------------------------------------------------------------------------------------
// Memory: host labels are uploaded, and released with the graph (or at once without one)

/** Runs `fn` and returns how many storages created by backend.fromArray during it are still alive. */
function uploadsAlive(fn: () => void): number {
  const cpu = getBackend("cpu");
  const alive = new Set<Storage>();
  const upload = cpu.fromArray, free = cpu.free;
  cpu.fromArray = (data) => {
    const s = upload.call(cpu, data);
    alive.add(s);
    return s;
  };
  cpu.free = (s) => {
    alive.delete(s);
    free.call(cpu, s);
  };
  try {
    fn();
  } finally {
    cpu.fromArray = upload;
    cpu.free = free;
  }
  return alive.size;
}

Deno.test("crossEntropy: uploaded labels do not leak", () => {
  const logits = randomF64([3, 4], 10);
  const leaf = randomF64([3, 4], 11);
  leaf.requiresGrad = true;
  const cases: [string, () => void][] = [
    ["no grad required", () => void crossEntropy(logits, [0, 3, 1])],
    ["inside noGrad", () => noGrad(() => void crossEntropy(leaf, Int32Array.from([0, 3, 1])))],
    ["after backward()", () => crossEntropy(leaf, [0, 3, 1]).backward()],
    [
      "after backward() through a product",
      () => sum(mul(crossEntropy(leaf, [2, 2, 2]), leaf)).backward(),
    ],
  ];
  for (const [name, run] of cases) assert.equal(uploadsAlive(run), 0, name);
});

Deno.test("crossEntropy: the caller's label tensor survives backward()", () => {
  const logits = randomF64([2, 3], 12);
  logits.requiresGrad = true;
  const labels = tensor([2, 0], { dtype: "int32" });
  crossEntropy(logits, labels).backward();
  assert.ok(!labels.isDisposed);
  assert.deepEqual([...values(labels)], [2, 0]);
  assert.ok(logits.grad !== null);
});
