import assert from "node:assert/strict";
import { fromArray, tensor, zeros } from "../../tensor/tensor.ts";
import {
  abs,
  add,
  affine,
  div,
  exp,
  log,
  mul,
  neg,
  pow,
  relu,
  sigmoid,
  sqrt,
  sub,
  tanh,
} from "../../tensor/ops/elementwise.ts";
import { argmax, max, mean, sum } from "../../tensor/ops/reduce.ts";
import {
  concat,
  flatten,
  permute,
  reshape,
  slice,
  split,
  transpose,
} from "../../tensor/ops/layout.ts";
import { linear, matmul } from "../../tensor/ops/matmul.ts";
import { conv2d } from "../../tensor/ops/conv2d.ts";
import { assertClose, assertGradcheck, randomF64, values } from "../support/helpers.ts";

// One row per op: the function, its float64 inputs, and gradcheck options. Each input is a
// seeded random tensor (positive where the op needs it); shapes avoid "nice" sizes.
const cases: [
  string,
  (...x: import("../../tensor/tensor.ts").Tensor[]) => import("../../tensor/tensor.ts").Tensor,
  () => import("../../tensor/tensor.ts").Tensor[],
][] = [
  ["add broadcast [3,1,5]+[4,5]", add, () => [randomF64([3, 1, 5], 1), randomF64([4, 5], 2)]],
  ["sub broadcast [2,3]-[3]", (a, b) => sub(a, b), () => [randomF64([2, 3], 3), randomF64([3], 4)]],
  ["mul broadcast [2,1]*[1,3]", mul, () => [randomF64([2, 1], 5), randomF64([1, 3], 6)]],
  [
    "div [4,3]/[4,1]",
    (a, b) => div(a, b),
    () => [randomF64([4, 3], 7), randomF64([4, 1], 8, 0.5, 2)],
  ],
  ["neg", neg, () => [randomF64([7], 9)]],
  ["exp", exp, () => [randomF64([2, 5], 10)]],
  ["log", log, () => [randomF64([2, 5], 11, 0.2, 3)]],
  ["relu", relu, () => [randomF64([3, 7], 12)]],
  ["tanh", tanh, () => [randomF64([3, 7], 13, -3, 3)]],
  ["sigmoid", sigmoid, () => [randomF64([3, 7], 14, -6, 6)]],
  ["sqrt", sqrt, () => [randomF64([9], 15, 0.1, 4)]],
  ["abs", abs, () => [randomF64([9], 16)]],
  ["pow 3", (x) => pow(x, 3), () => [randomF64([2, 4], 17)]],
  ["pow -0.5", (x) => pow(x, -0.5), () => [randomF64([2, 4], 18, 0.5, 2)]],
  ["affine", (x) => affine(x, -2.5, 0.75), () => [randomF64([5], 19)]],
  ["sum all", (x) => sum(x), () => [randomF64([2, 3, 4], 20)]],
  ["sum axes [0,2]", (x) => sum(x, [0, 2]), () => [randomF64([2, 3, 4], 21)]],
  ["mean axis -1 keepDims", (x) => mean(x, -1, true), () => [randomF64([3, 5], 22)]],
  ["max axis 1", (x) => max(x, 1), () => [randomF64([3, 5, 2], 23)]],
  ["max all", (x) => max(x), () => [randomF64([4, 3], 24)]],
  ["reshape", (x) => mul(reshape(x, [6, -1]), 2), () => [randomF64([2, 3, 4], 25)]],
  ["flatten", (x) => flatten(x), () => [randomF64([2, 3, 2, 2], 26)]],
  ["permute", (x) => permute(x, [2, 0, 1]), () => [randomF64([2, 3, 4], 27)]],
  ["transpose", (x) => transpose(x), () => [randomF64([3, 5], 28)]],
  ["slice", (x) => slice(x, 1, 1, 2), () => [randomF64([2, 4, 3], 29)]],
  [
    "concat axis 1",
    (a, b) => concat([a, b], 1),
    () => [randomF64([2, 3], 30), randomF64([2, 2], 31)],
  ],
  [
    "split",
    (x) => mul(split(x, [1, 3], 0)[1], split(x, [1, 3], 0)[1]),
    () => [randomF64([4, 3], 32)],
  ],
  ["matmul 2-D", matmul, () => [randomF64([3, 5], 33), randomF64([5, 4], 34)]],
  ["matmul batched", matmul, () => [randomF64([2, 3, 5], 35), randomF64([2, 5, 4], 36)]],
  ["matmul shared B", matmul, () => [randomF64([2, 3, 5], 37), randomF64([5, 4], 38)]],
  ["matmul shared A", matmul, () => [randomF64([3, 5], 39), randomF64([2, 5, 4], 40)]],
  [
    "linear with bias",
    (x, w, b) => linear(x, w, b),
    () => [randomF64([4, 5], 41), randomF64([3, 5], 42), randomF64([3], 43)],
  ],
  ["linear no bias", (x, w) => linear(x, w), () => [randomF64([2, 7], 44), randomF64([3, 7], 45)]],
  [
    "conv2d 3x3 pad 1",
    (x, w, b) => conv2d(x, w, b, { padding: 1 }),
    () => [randomF64([2, 3, 5, 6], 46), randomF64([4, 3, 3, 3], 47), randomF64([4], 48)],
  ],
  [
    "conv2d groups=2 stride 2",
    (x, w, b) => conv2d(x, w, b, { stride: 2, padding: 2, groups: 2 }),
    () => [randomF64([1, 4, 7, 7], 49), randomF64([6, 2, 5, 5], 50), randomF64([6], 51)],
  ],
  [
    "conv2d 11x11 stride 4 (AlexNet conv1)",
    (x, w, b) => conv2d(x, w, b, { stride: 4 }),
    () => [randomF64([2, 3, 19, 23], 52), randomF64([2, 3, 11, 11], 53), randomF64([2], 54)],
  ],
  [
    "conv2d no bias, rectangular",
    (x, w) => conv2d(x, w, null, { stride: [1, 2], padding: [0, 1] }),
    () => [randomF64([1, 2, 4, 5], 55), randomF64([3, 2, 2, 3], 56)],
  ],
];

for (const [name, fn, inputs] of cases) {
  Deno.test(`gradcheck: ${name}`, () => assertGradcheck(fn, inputs()));
}

Deno.test("forward values match hand-computed numbers", () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]]);
  const b = tensor([10, 20, 30]);
  assert.deepEqual([...values(add(a, b))], [11, 22, 33, 14, 25, 36]);
  assert.deepEqual([...values(matmul(a, tensor([[1], [0], [-1]])))], [-2, -2]);
  assert.deepEqual([...values(sum(a, 0))], [5, 7, 9]);
  assert.deepEqual([...values(max(a, 1))], [3, 6]);
  assert.deepEqual([...values(argmax(tensor([[0, 5, 1], [7, 2, 9]])))], [1, 2]);
  assert.deepEqual([...values(transpose(a))], [1, 4, 2, 5, 3, 6]);
  assert.deepEqual([...values(concat([a, tensor([[7, 8, 9]])], 0))], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual([...values(slice(a, 1, 1, 2))], [2, 3, 5, 6]);
  assertClose(values(sigmoid(tensor([-1000, 0, 1000]))), [0, 0.5, 1]);
});

Deno.test("conv2d forward equals a direct sum (AlexNet conv1 geometry, groups=2)", () => {
  const x = randomF64([1, 4, 15, 15], 60),
    w = randomF64([2, 2, 11, 11], 61),
    bias = randomF64([2], 62);
  const y = values(conv2d(x, w, bias, { stride: 4, padding: 1, groups: 2 }));
  const xs = values(x), ws = values(w), bs = values(bias);
  const outSize = Math.floor((15 + 2 - 11) / 4) + 1;
  const expected: number[] = [];
  for (let o = 0; o < 2; o++) {
    for (let i = 0; i < outSize; i++) {
      for (let j = 0; j < outSize; j++) {
        let total = bs[o];
        for (let c = 0; c < 2; c++) {
          for (let p = 0; p < 11; p++) {
            for (let q = 0; q < 11; q++) {
              const h = i * 4 + p - 1, v = j * 4 + q - 1;
              if (h < 0 || v < 0 || h >= 15 || v >= 15) continue;
              total += ws[((o * 2 + c) * 11 + p) * 11 + q] * xs[((o * 2 + c) * 15 + h) * 15 + v];
            }
          }
        }
        expected.push(total);
      }
    }
  }
  assertClose(y, expected, { rtol: 1e-12, atol: 1e-12 });
});

// Shape errors name the op and both shapes; argument errors name the argument and value.
const errors: [string, () => unknown, RegExp][] = [
  [
    "matmul shapes",
    () => matmul(zeros([2, 3]), zeros([4, 5])),
    /matmul: cannot multiply \[2,3\] by \[4,5\]/,
  ],
  [
    "broadcast",
    () => add(zeros([2, 3]), zeros([4, 3])),
    /add: cannot broadcast \[2,3\] with \[4,3\]/,
  ],
  [
    "reshape",
    () => reshape(zeros([2, 3]), [4, 2]),
    /reshape: cannot reshape \[2,3\] \(6 elements\) to \[4,2\]/,
  ],
  [
    "linear",
    () => linear(zeros([2, 3]), zeros([4, 5])),
    /linear: input \[2,3\] does not match weight \[4,5\]/,
  ],
  [
    "conv2d groups",
    () => conv2d(zeros([1, 3, 8, 8]), zeros([4, 1, 3, 3]), null, { groups: 2 }),
    /groups=2/,
  ],
  ["conv2d kernel too large", () => conv2d(zeros([1, 3, 8, 8]), zeros([4, 3, 11, 11])), /11x11|11/],
  [
    "conv2d negative stride",
    () => conv2d(zeros([1, 3, 8, 8]), zeros([4, 3, 3, 3]), null, { stride: -1 }),
    /stride/,
  ],
  ["permute", () => permute(zeros([2, 3]), [0, 0]), /permute: \[0,0\] is not a permutation/],
  [
    "slice range",
    () => slice(zeros([2, 3]), 1, 2, 2),
    /slice: range \[2, 4\) is outside axis 1 of \[2,3\]/,
  ],
  ["axis", () => sum(zeros([2, 3]), 2), /sum: axis 2 is out of range for a tensor of rank 2/],
  ["ragged", () => tensor([[1, 2], [3]]), /ragged/],
  [
    "fromArray size",
    () => fromArray(new Float32Array(5), [2, 3]),
    /5 values do not fill shape \[2,3\]/,
  ],
];
for (const [name, fn, pattern] of errors) {
  Deno.test(`error: ${name}`, () => assert.throws(fn, pattern));
}
