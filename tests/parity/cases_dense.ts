/**
 * The parity tables of the dense ops, one per family (the spatial ops' are in
 * cases_spatial.ts). Each case is one line: its inputs and the function of them; the runner
 * (devices.test.ts) runs it on every device and checks the forward output and every input
 * gradient against the reference device in float64. Tolerances are the family's float32 error
 * bound: 1e-5 for one rounding, 1e-4 for transcendental functions (float32 libm on each device).
 *
 * Shapes are small (a GPU readback costs milliseconds on lavapipe) and deliberately do not divide
 * the workgroup sizes (256 elements, 64-row matmul tiles); batch 1 and batch > 1 both appear.
 *
 * @module
 */

import { fromArray, type Tensor } from "../../tensor/tensor.ts";
import { Rng } from "../../tensor/random.ts";
import {
  abs,
  add,
  affine,
  broadcastTo,
  cast,
  div,
  eq,
  exp,
  ge,
  gt,
  le,
  log,
  lt,
  mul,
  ne,
  neg,
  pow,
  relu,
  sigmoid,
  sqrt,
  sub,
  tanh,
} from "../../tensor/ops/elementwise.ts";
import { argmax, max, mean, sum } from "../../tensor/ops/reduce.ts";
import { concat, permute, slice, split, stack, transpose } from "../../tensor/ops/layout.ts";
import { linear, matmul } from "../../tensor/ops/matmul.ts";
import { crossEntropy, logSoftmax, softmax } from "../../tensor/ops/softmax.ts";
import { dropout } from "../../tensor/ops/dropout.ts";

/** How an input is filled: uniform in [-1, 1), in [0.5, 2), or int32 class labels. */
export interface InputSpec {
  /** Shape of the input. */
  shape: number[];
  /** "float" (default): U[-1, 1), requires grad; "positive": U[0.5, 2); "labels": int32 in [0, classes). */
  kind?: "float" | "positive" | "labels";
  /** Number of classes for "labels". */
  classes?: number;
  /** Seed of this input's values (default: derived from the case and input index). */
  seed?: number;
}

/** One row of the parity table. */
export interface ParityCase {
  /** Names the case in failures. */
  name: string;
  /** The inputs, built on the CPU and copied to the GPU. */
  inputs: InputSpec[];
  /** The computation; its output gets a seeded random upstream gradient. */
  fn: (...xs: Tensor[]) => Tensor;
  /** Relative tolerance (default 1e-5). */
  rtol?: number;
  /** Absolute tolerance (default 1e-5). */
  atol?: number;
}

/** The seeded values of one input (`seed` unless the spec gives its own). */
export function inputValues(spec: InputSpec, seed: number): Float32Array | Int32Array {
  const rng = new Rng(spec.seed ?? seed);
  const n = spec.shape.reduce((a, b) => a * b, 1);
  if (spec.kind === "labels") {
    return Int32Array.from({ length: n }, () => rng.int(spec.classes ?? 2));
  }
  const [low, high] = spec.kind === "positive" ? [0.5, 2] : [-1, 1];
  return Float32Array.from({ length: n }, () => low + (high - low) * rng.uniform());
}

const f = (...shape: number[]): InputSpec => ({ shape });
const pos = (...shape: number[]): InputSpec => ({ shape, kind: "positive" });
const labels = (n: number, classes: number): InputSpec => ({ shape: [n], kind: "labels", classes });
const TRANSCENDENTAL = { rtol: 1e-4, atol: 1e-5 };

/** Elementwise ops: broadcasting, comparisons, the unary table, pow. */
export const elementwiseCases: ParityCase[] = [
  // broadcasting
  { name: "add same shape", inputs: [f(7, 37), f(7, 37)], fn: add },
  { name: "add [3,1,5]+[4,5]", inputs: [f(3, 1, 5), f(4, 5)], fn: add },
  { name: "sub [2,3,1]-[3,4]", inputs: [f(2, 3, 1), f(3, 4)], fn: sub },
  { name: "mul row vector", inputs: [f(5, 300), f(300)], fn: mul },
  { name: "mul scalar tensor", inputs: [f(4, 9), f()], fn: mul },
  { name: "div [1,6]/[5,1]", inputs: [f(1, 6), pos(5, 1)], fn: div },
  { name: "eq (no grad)", inputs: [f(3, 41)], fn: (x) => eq(relu(x), x) },
  { name: "ne broadcast", inputs: [f(3, 41), f(41)], fn: ne },
  { name: "gt", inputs: [f(2, 37), f(2, 37)], fn: gt },
  { name: "ge number", inputs: [f(300)], fn: (x) => ge(relu(x), 0) },
  { name: "lt broadcast", inputs: [f(5, 1), f(7)], fn: lt },
  { name: "le number first", inputs: [f(65)], fn: (x) => le(0.25, x) },
  {
    name: "eq int32 -> float32 (accuracy)",
    inputs: [f(9, 13), labels(9, 13)],
    fn: (x, y) => mean(eq(argmax(x, 1), y)),
  },
  {
    name: "number-first mul, add, sub, div",
    inputs: [pos(2, 33)],
    fn: (x) => div(3, sub(1, add(2, mul(2, x)))),
  },
  { name: "pow number base", inputs: [f(130)], fn: (x) => pow(2.5, x), ...TRANSCENDENTAL },
  { name: "cast float32 -> int32", inputs: [f(70)], fn: (x) => cast(affine(x, 9, 0), "int32") },
  { name: "broadcastTo [3,1]->[2,3,4]", inputs: [f(3, 1)], fn: (x) => broadcastTo(x, [2, 3, 4]) },
  { name: "affine", inputs: [f(1000)], fn: (x) => affine(x, -2.5, 0.75) },
  { name: "neg", inputs: [f(2, 33)], fn: neg },
  // unary table
  { name: "exp", inputs: [f(513)], fn: exp, ...TRANSCENDENTAL },
  { name: "log", inputs: [pos(513)], fn: log, ...TRANSCENDENTAL },
  { name: "relu", inputs: [f(3, 171)], fn: relu },
  { name: "tanh", inputs: [f(257)], fn: (x) => tanh(affine(x, 4, 0)), ...TRANSCENDENTAL },
  { name: "sigmoid", inputs: [f(257)], fn: (x) => sigmoid(affine(x, 8, 0)), ...TRANSCENDENTAL },
  { name: "sqrt", inputs: [pos(100)], fn: sqrt, ...TRANSCENDENTAL },
  { name: "abs", inputs: [f(100)], fn: abs },
  // pow: JS ** semantics
  { name: "pow 2 of negatives", inputs: [f(301)], fn: (x) => pow(x, 2) },
  { name: "pow 3 of negatives", inputs: [f(301)], fn: (x) => pow(x, 3) },
  { name: "pow -1", inputs: [pos(50)], fn: (x) => pow(x, -1), ...TRANSCENDENTAL },
  { name: "pow 0.5", inputs: [pos(50)], fn: (x) => pow(x, 0.5), ...TRANSCENDENTAL },
  { name: "pow 0", inputs: [f(10)], fn: (x) => pow(x, 0) },
];

/** Reductions: sum, mean, max, argmax over axes. */
export const reduceCases: ParityCase[] = [
  { name: "sum all", inputs: [f(4, 5, 6)], fn: (x) => sum(x) },
  { name: "sum axis 0", inputs: [f(9, 70)], fn: (x) => sum(x, 0) },
  { name: "sum axes [0,2]", inputs: [f(3, 4, 5)], fn: (x) => sum(x, [0, 2]) },
  { name: "sum axes [1,3] keepDims", inputs: [f(2, 3, 4, 5)], fn: (x) => sum(x, [1, 3], true) },
  { name: "mean last axis", inputs: [f(6, 301)], fn: (x) => mean(x, -1) },
  { name: "max last axis (no ties)", inputs: [f(5, 17)], fn: (x) => max(x, -1) },
  { name: "max axes [0,1]", inputs: [f(4, 3, 6)], fn: (x) => max(x, [0, 1]) },
  { name: "argmax axis 0", inputs: [f(70, 3, 5)], fn: (x) => argmax(x, 0) },
  { name: "argmax axis 1 keepDims", inputs: [f(4, 67, 3)], fn: (x) => argmax(x, 1, true) },
];

/** Layout: permute, transpose, slice, concat, stack, split. */
export const layoutCases: ParityCase[] = [
  { name: "permute [2,0,1]", inputs: [f(3, 4, 5)], fn: (x) => permute(x, [2, 0, 1]) },
  { name: "transpose 4-D", inputs: [f(2, 3, 4, 5)], fn: (x) => transpose(x, 1, 3) },
  { name: "slice middle", inputs: [f(4, 10, 3)], fn: (x) => slice(x, 1, 2, 5) },
  { name: "concat axis 1", inputs: [f(2, 3, 4), f(2, 5, 4)], fn: (a, b) => concat([a, b], 1) },
  {
    name: "stack axis 1",
    inputs: [f(3, 5), f(3, 5), f(3, 5)],
    fn: (a, b, c) => stack([a, b, c], 1),
  },
  {
    name: "split then mul",
    inputs: [f(6, 7)],
    fn: (x) => {
      const [a, b] = split(x, [2, 4], 0);
      return mul(sum(a, 0), sum(b, 0));
    },
  },
];

/** matmul and linear: every transpose, batched, shared (broadcast) batch operand. */
export const matmulCases: ParityCase[] = [
  { name: "matmul 1x1", inputs: [f(1, 1), f(1, 1)], fn: matmul },
  { name: "matmul [37,19]x[19,70]", inputs: [f(37, 19), f(19, 70)], fn: matmul },
  { name: "matmul Aᵀ", inputs: [f(19, 37)], fn: (a) => matmul(transpose(a), a) },
  { name: "matmul [65,130]x[130,3]", inputs: [f(65, 130), f(130, 3)], fn: matmul },
  { name: "matmul batched [3,5,7]x[3,7,9]", inputs: [f(3, 5, 7), f(3, 7, 9)], fn: matmul },
  { name: "matmul broadcast B [4,6,5]x[5,3]", inputs: [f(4, 6, 5), f(5, 3)], fn: matmul },
  { name: "matmul broadcast A [6,5]x[2,5,3]", inputs: [f(6, 5), f(2, 5, 3)], fn: matmul },
  {
    name: "matmul batch broadcast [2,1,5,7]x[3,7,4]",
    inputs: [f(2, 1, 5, 7), f(3, 7, 4)],
    fn: matmul,
  },
  { name: "matmul vector x batch", inputs: [f(7), f(3, 7, 4)], fn: matmul },
  { name: "linear batch 1", inputs: [f(1, 20), f(30, 20), f(30)], fn: linear },
  { name: "linear batch 9", inputs: [f(9, 70), f(33, 70), f(33)], fn: linear },
];

/** softmax, logSoftmax, crossEntropy (with its options). */
export const softmaxCases: ParityCase[] = [
  { name: "softmax", inputs: [f(4, 1000)], fn: (x) => softmax(affine(x, 5, 0)), ...TRANSCENDENTAL },
  { name: "softmax batch 1", inputs: [f(1, 10)], fn: (x) => softmax(x), ...TRANSCENDENTAL },
  { name: "softmax axis 0", inputs: [f(67, 3, 2)], fn: (x) => softmax(x, 0), ...TRANSCENDENTAL },
  {
    name: "logSoftmax axis 1",
    inputs: [f(2, 70, 3)],
    fn: (x) => logSoftmax(x, 1),
    ...TRANSCENDENTAL,
  },
  {
    name: "crossEntropy reduction none",
    inputs: [f(7, 11), labels(7, 11)],
    fn: (x, y) => crossEntropy(x, y, { reduction: "none" }),
    ...TRANSCENDENTAL,
  },
  {
    name: "logSoftmax",
    inputs: [f(3, 2, 129)],
    fn: (x) => logSoftmax(affine(x, 5, 0)),
    ...TRANSCENDENTAL,
  },
  {
    name: "crossEntropy",
    inputs: [f(8, 10), labels(8, 10)],
    fn: (x, y) => crossEntropy(affine(x, 3, 0), y),
    ...TRANSCENDENTAL,
  },
  {
    name: "crossEntropy batch 1",
    inputs: [f(1, 1000), labels(1, 1000)],
    fn: (x, y) => crossEntropy(x, y),
    ...TRANSCENDENTAL,
  },
  // crossEntropy's options (PyTorch's weight, ignore_index, label_smoothing)
  {
    name: "crossEntropy weight",
    inputs: [f(9, 5), labels(9, 5)],
    fn: (x, y) => crossEntropy(x, y, { weight: classWeights(x, 5) }),
    ...TRANSCENDENTAL,
  },
  {
    name: "crossEntropy weight, reduction sum",
    inputs: [f(9, 5), labels(9, 5)],
    fn: (x, y) => crossEntropy(x, y, { weight: classWeights(x, 5), reduction: "sum" }),
    ...TRANSCENDENTAL,
  },
  {
    name: "crossEntropy ignoreIndex",
    inputs: [f(12, 4), labels(12, 4)],
    fn: (x, y) => crossEntropy(x, y, { ignoreIndex: 2 }),
    ...TRANSCENDENTAL,
  },
  {
    name: "crossEntropy labelSmoothing 0.1",
    inputs: [f(7, 6), labels(7, 6)],
    fn: (x, y) => crossEntropy(affine(x, 3, 0), y, { labelSmoothing: 0.1 }),
    ...TRANSCENDENTAL,
  },
  {
    name: "crossEntropy every option, reduction none",
    inputs: [f(12, 4), labels(12, 4)],
    fn: (x, y) =>
      crossEntropy(x, y, {
        weight: classWeights(x, 4),
        ignoreIndex: 1,
        labelSmoothing: 0.2,
        reduction: "none",
      }),
    ...TRANSCENDENTAL,
  },
];

/** Per-class weights 0.5, 1, 1.5, ... on x's device and in x's dtype (a constant: no gradient). */
function classWeights(x: Tensor, classes: number): Tensor {
  const values = Array.from({ length: classes }, (_, i) => 0.5 * (i + 1));
  const array = x.dtype === "float64" ? Float64Array.from(values) : Float32Array.from(values);
  return fromArray(array, [classes], { device: x.device });
}

/**
 * dropout: every device draws the same mask bits; a kept value is x·(1/(1−p)), with the scale
 * rounded to float32 and the product rounded once: within 2 float32 ulp of the float64 answer.
 */
const DROPOUT = { rtol: 2 ** -23, atol: 0 };

export const dropoutCases: ParityCase[] = [
  {
    name: "dropout p=0.5",
    inputs: [f(3, 1000)],
    fn: (x) => dropout(x, { p: 0.5, seed: 1234 }),
    ...DROPOUT,
  },
  {
    name: "dropout p=0.3 (not a float32)",
    inputs: [f(777)],
    fn: (x) => dropout(x, { p: 0.3, seed: 0xdeadbeef }),
    ...DROPOUT,
  },
];

/** The dense ops' cases, every family. */
export const denseCases: ParityCase[] = [
  ...elementwiseCases,
  ...reduceCases,
  ...layoutCases,
  ...matmulCases,
  ...softmaxCases,
  ...dropoutCases,
];

/**
 * Cases with tensors above 2^14 elements: run on a device whose binding limit is forced down
 * to 1 << 16 bytes, they take the chunked paths for buffers larger than one binding. (Reductions,
 * gathers and concat of a tensor larger than one binding are not chunked; they throw an error
 * naming the kernel. AlexNet never needs them: its only such tensor is fc6's weight.)
 */
export const chunkedCases: ParityCase[] = [
  { name: "chunked add", inputs: [f(200, 101), f(200, 101)], fn: add },
  { name: "chunked relu", inputs: [f(50000)], fn: relu },
  { name: "chunked affine + pow", inputs: [f(40000)], fn: (x) => pow(affine(x, 2, 1), 2) },
  {
    name: "chunked dropout",
    inputs: [f(40000)],
    fn: (x) => dropout(x, { p: 0.5, seed: 7 }),
    rtol: 0,
    atol: 0,
  },
  // linear with W [300, 70] = 21,000 elements: x·Wᵀ splits n, dW = Gᵀ·x splits the rows of dW,
  // dx = G·W splits k.
  { name: "chunked linear", inputs: [f(5, 70), f(300, 70), f(300)], fn: linear },
  { name: "chunked matmul", inputs: [f(150, 130), f(130, 140)], fn: matmul },
];
