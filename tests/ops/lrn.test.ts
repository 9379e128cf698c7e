import assert from "node:assert/strict";
import { fromArray, type Tensor, tensor } from "../../tensor/tensor.ts";
import { Rng } from "../../tensor/random.ts";
import { localResponseNorm, type LrnOptions } from "../../tensor/ops/lrn.ts";
import { assertClose, assertGradcheck, values } from "../support/helpers.ts";

// ---------------------------------------------------------------------------------------------
// Independent references

/**
 * PyTorch's `F.local_response_norm`, transcribed: square, zero-pad the channel axis with
 * (size // 2, (size - 1) // 2), average-pool `size` channels with stride 1, then
 * y = x / (avg · alpha + k) ** beta. "averaged" by construction.
 */
function torchLrn(
  x: Float64Array,
  [n, c, h, w]: number[],
  size: number,
  alpha: number,
  beta: number,
  k: number,
) {
  const y = new Float64Array(x.length);
  const plane = h * w;
  for (let b = 0; b < n; b++) {
    for (let s = 0; s < plane; s++) {
      const padded = new Array<number>(Math.floor(size / 2)).fill(0);
      for (let ch = 0; ch < c; ch++) padded.push(x[(b * c + ch) * plane + s] ** 2);
      padded.push(...new Array<number>(Math.floor((size - 1) / 2)).fill(0));
      for (let ch = 0; ch < c; ch++) {
        const avg = padded.slice(ch, ch + size).reduce((t, v) => t + v, 0) / size;
        const at = (b * c + ch) * plane + s;
        y[at] = x[at] / (avg * alpha + k) ** beta;
      }
    }
  }
  return y;
}

/** The paper's formula as printed (section 3.3), odd n: b_i = a_i / (k + α Σ_{j=max(0,i−n/2)}^{min(N−1,i+n/2)} a_j²)^β. */
function paperLrn(
  x: Float64Array,
  [n, c, h, w]: number[],
  size: number,
  alpha: number,
  beta: number,
  k: number,
) {
  const y = new Float64Array(x.length);
  const half = (size - 1) / 2, plane = h * w;
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < c; i++) {
      for (let s = 0; s < plane; s++) {
        let total = 0;
        for (let j = Math.max(0, i - half); j <= Math.min(c - 1, i + half); j++) {
          total += x[(b * c + j) * plane + s] ** 2;
        }
        const at = (b * c + i) * plane + s;
        y[at] = x[at] / (k + alpha * total) ** beta;
      }
    }
  }
  return y;
}

/**
 * Float64 values with |x| in [10, 100] and random signs: large enough that alpha · Σ x² is
 * comparable to k, so the normalization (and its gradient) matters.
 */
function activations(shape: number[], seed: number): Tensor {
  const rng = new Rng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  return fromArray(
    new Float64Array(size).map(() => (rng.uniform() < 0.5 ? -1 : 1) * (10 + 90 * rng.uniform())),
    shape,
  );
}

const shape = [2, 7, 2, 3];

// ---------------------------------------------------------------------------------------------
// Forward

Deno.test("localResponseNorm: hand-computed channels [1, 2, 3] at one pixel", () => {
  const x = tensor([[[[1]], [[2]], [[3]]]]);
  const cases: [string, LrnOptions, number[]][] = [
    // s = k + Σ window x²: windows {0,1} {0,1,2} {1,2}
    ["size 3 per-term", { size: 3, alpha: 1, beta: 1, k: 1, alphaScaling: "per-term" }, [
      1 / 6,
      2 / 15,
      3 / 14,
    ]],
    // even size: window(c) = [c − 1, c]: {0} {0,1} {1,2}
    ["size 2 per-term", { size: 2, alpha: 1, beta: 1, k: 1, alphaScaling: "per-term" }, [
      1 / 2,
      2 / 6,
      3 / 14,
    ]],
    ["size 2 averaged", { size: 2, alpha: 2, beta: 1, k: 1 }, [1 / 2, 2 / 6, 3 / 14]],
    // window(c) = [c − 2, c + 1]: {0,1} {0,1,2} {0,1,2}
    ["size 4 per-term", { size: 4, alpha: 1, beta: 1, k: 1, alphaScaling: "per-term" }, [
      1 / 6,
      2 / 15,
      3 / 15,
    ]],
    // β = 0.5, k = 0, size 1: y = x / |x|
    ["size 1 is x/|x| at k 0", { size: 1, alpha: 1, beta: 0.5, k: 0, alphaScaling: "per-term" }, [
      1,
      1,
      1,
    ]],
  ];
  for (const [name, options, expected] of cases) {
    assertClose(values(localResponseNorm(x, options)), expected, { rtol: 1e-6, what: name });
  }
});

const forwardCases: [string, number, number, number, number][] = [
  // name, size, alpha, beta, k
  ["AlexNet's size 5, alpha 1e-4, beta 0.75, k 2", 5, 1e-4, 0.75, 2],
  ["even size 4", 4, 1e-3, 0.75, 2],
  ["even size 2", 2, 1e-3, 0.5, 1],
  ["size 9 wider than C = 7", 9, 1e-3, 0.75, 2],
  ["size 1", 1, 1e-2, 1, 1],
];

for (const [name, size, alpha, beta, k] of forwardCases) {
  Deno.test(`localResponseNorm "averaged" matches PyTorch's algorithm: ${name}`, () => {
    const x = activations(shape, size);
    const expected = torchLrn(x.dataSync() as Float64Array, shape, size, alpha, beta, k);
    assertClose(values(localResponseNorm(x, { size, alpha, beta, k })), expected, {
      rtol: 1e-12,
      atol: 0,
    });
    const x32 = fromArray(Float32Array.from(x.dataSync()), shape);
    assertClose(values(localResponseNorm(x32, { size, alpha, beta, k })), expected, {
      rtol: 2e-6,
      atol: 0,
      what: "float32",
    });
  });
}

for (const size of [3, 5]) {
  Deno.test(`localResponseNorm "per-term" matches the paper's formula as printed: size ${size}`, () => {
    const x = activations(shape, 20 + size);
    const expected = paperLrn(x.dataSync() as Float64Array, shape, size, 1e-4, 0.75, 2);
    const y = localResponseNorm(x, { size, alphaScaling: "per-term" });
    assertClose(values(y), expected, { rtol: 1e-12, atol: 0 });
  });
}

Deno.test("localResponseNorm: the alpha trap (averaged alpha == per-term alpha / size)", () => {
  const x = activations(shape, 30);
  for (const [size, alpha] of [[5, 1e-4], [4, 3e-3], [3, 0.7]]) {
    const averaged = values(localResponseNorm(x, { size, alpha }));
    const perTerm = values(
      localResponseNorm(x, { size, alpha: alpha / size, alphaScaling: "per-term" }),
    );
    assert.deepEqual(averaged, perTerm, `size ${size}, alpha ${alpha}`);
    // And the two conventions really differ at the same alpha: the trap is not cosmetic.
    const literal = values(localResponseNorm(x, { size, alpha, alphaScaling: "per-term" }));
    assert.ok(
      literal.some((v, i) => Math.abs(v - averaged[i]) > 1e-3 * Math.abs(v)),
      `size ${size}: conventions agree`,
    );
  }
  // Defaults are AlexNet's with cuda-convnet2's scaling: 2e-5 per squared term.
  assert.deepEqual(
    values(localResponseNorm(x)),
    values(
      localResponseNorm(x, {
        size: 5,
        alpha: 1e-4 / 5,
        beta: 0.75,
        k: 2,
        alphaScaling: "per-term",
      }),
    ),
  );
});

// ---------------------------------------------------------------------------------------------
// Gradients: edge channels included (C = 7 > size), odd and even windows, both conventions

const gradCases: [string, LrnOptions][] = [
  ["defaults (size 5, averaged)", {}],
  ["size 5 averaged, alpha 1e-3", { alpha: 1e-3 }],
  ["size 5 per-term (paper / TensorFlow)", { alphaScaling: "per-term" }],
  ["even size 4 averaged", { size: 4, alpha: 1e-3 }],
  ["even size 4 per-term", { size: 4, alphaScaling: "per-term" }],
  ["even size 2, beta 0.5, k 1", { size: 2, alpha: 1e-3, beta: 0.5, k: 1 }],
  ["size 9 wider than C", { size: 9, alpha: 1e-3 }],
  ["size 1", { size: 1, alpha: 1e-3 }],
];

for (const [name, options] of gradCases) {
  Deno.test(`gradcheck localResponseNorm ${name}`, () => {
    assertGradcheck((x) => localResponseNorm(x, options), [activations(shape, name.length)]);
  });
}

// ---------------------------------------------------------------------------------------------
// Validation

Deno.test("localResponseNorm: invalid arguments name the argument and value", () => {
  const x = tensor(new Float32Array(12), { shape: [1, 3, 2, 2] });
  const cases: [string, () => unknown, RegExp][] = [
    [
      "3-D input",
      () => localResponseNorm(tensor([[[1]]])),
      /localResponseNorm: input must be \[N, C, H, W\], got \[1,1,1\]/,
    ],
    [
      "size 0",
      () => localResponseNorm(x, { size: 0 }),
      /localResponseNorm: size must be a positive integer, got 0/,
    ],
    [
      "size 2.5",
      () => localResponseNorm(x, { size: 2.5 }),
      /localResponseNorm: size must be a positive integer, got 2.5/,
    ],
    [
      "alpha NaN",
      () => localResponseNorm(x, { alpha: NaN }),
      /localResponseNorm: alpha must be a finite number, got NaN/,
    ],
    [
      "beta Infinity",
      () => localResponseNorm(x, { beta: Infinity }),
      /localResponseNorm: beta must be a finite number, got Infinity/,
    ],
    [
      "unknown scaling",
      () => localResponseNorm(x, { alphaScaling: "paper" as "per-term" }),
      /localResponseNorm: alphaScaling must be "averaged" or "per-term", got "paper"/,
    ],
  ];
  for (const [name, run, message] of cases) assert.throws(run, message, name);
});
