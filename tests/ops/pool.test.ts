import assert from "node:assert/strict";
import type { Pool2dParams, Storage } from "../../backend/backend.ts";
import { fromArray, getBackend, type Tensor, tensor } from "../../tensor/tensor.ts";
import { Rng } from "../../tensor/random.ts";
import { noGrad } from "../../tensor/autograd.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import {
  adaptiveAvgPool2d,
  avgPool2d,
  maxPool2d,
  maxPool2dForwardCpu,
  type Pool2dOptions,
  pool2dParams,
} from "../../tensor/ops/pool.ts";
import { assertClose, assertGradcheck, randomF64, values } from "../support/helpers.ts";

// ---------------------------------------------------------------------------------------------
// Naive references: visit every cell of every window, padded ones included, and decide per cell.

function naivePool(x: Float64Array, p: Pool2dParams, kind: "max" | "avg") {
  const y: number[] = [], argmax: number[] = [];
  for (let plane = 0; plane < p.n * p.c; plane++) {
    for (let i = 0; i < p.outH; i++) {
      for (let j = 0; j < p.outW; j++) {
        let best = -Infinity, bestIndex = -1, total = 0;
        for (let a = 0; a < p.kh; a++) {
          for (let b = 0; b < p.kw; b++) {
            const row = i * p.strideH - p.padH + a, col = j * p.strideW - p.padW + b;
            const inside = row >= 0 && row < p.h && col >= 0 && col < p.w;
            if (!inside) continue; // max: padding never wins; avg: padding adds 0
            const v = x[plane * p.h * p.w + row * p.w + col];
            total += v;
            if (v > best) [best, bestIndex] = [v, row * p.w + col];
          }
        }
        y.push(kind === "max" ? best : total / (p.kh * p.kw));
        argmax.push(bestIndex);
      }
    }
  }
  return { y, argmax };
}

function naiveAdaptive(
  x: Float64Array,
  [n, c, h, w]: number[],
  outH: number,
  outW: number,
): number[] {
  const y: number[] = [];
  for (let plane = 0; plane < n * c; plane++) {
    for (let i = 0; i < outH; i++) {
      for (let j = 0; j < outW; j++) {
        const cells: number[] = [];
        for (let row = Math.floor((i * h) / outH); row < Math.ceil(((i + 1) * h) / outH); row++) {
          for (let col = Math.floor((j * w) / outW); col < Math.ceil(((j + 1) * w) / outW); col++) {
            cells.push(x[plane * h * w + row * w + col]);
          }
        }
        y.push(cells.reduce((s, v) => s + v, 0) / cells.length);
      }
    }
  }
  return y;
}

/** Float64 values that are pairwise at least 0.05 apart: no ties, so finite differences are valid. */
function distinctF64(shape: number[], seed: number): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const order = new Rng(seed).permutation(size);
  return fromArray(Float64Array.from(order, (k) => (k - size / 2) * 0.05), shape);
}

// ---------------------------------------------------------------------------------------------
// Forward against the naive reference (negative inputs: a padded zero would win if counted)

const poolCases: [string, number[], Pool2dOptions][] = [
  ["AlexNet 3x3/2 on odd 9x7", [2, 3, 9, 7], { kernelSize: 3, stride: 2 }],
  ["3x3/2 pad 1 on 8x7", [1, 2, 8, 7], { kernelSize: 3, stride: 2, padding: 1 }],
  ["2x3 kernel, stride [1,2], pad [1,1]", [1, 2, 5, 6], {
    kernelSize: [2, 3],
    stride: [1, 2],
    padding: [1, 1],
  }],
  ["2x2/2 default stride, odd 7x5", [2, 1, 7, 5], { kernelSize: 2 }],
  ["1x1 kernel", [1, 2, 3, 4], { kernelSize: 1 }],
  ["kernel = whole padded input", [1, 1, 3, 4], { kernelSize: [5, 4], stride: 1, padding: [1, 0] }],
];

for (const [name, shape, options] of poolCases) {
  Deno.test(`maxPool2d / avgPool2d forward: ${name}`, () => {
    const x = randomF64(shape, 1, -2, -1);
    const p = pool2dParams("test", shape, options.kernelSize, options.stride, options.padding);
    const maxRef = naivePool(x.dataSync() as Float64Array, p, "max");
    const avgRef = naivePool(x.dataSync() as Float64Array, p, "avg");
    const y = maxPool2d(x, options);
    assert.deepEqual(y.shape, [p.n, p.c, p.outH, p.outW]);
    assert.deepEqual([...values(y)], maxRef.y);
    const argmax = new Int32Array(maxRef.y.length);
    maxPool2dForwardCpu(x.dataSync(), p, new Float64Array(argmax.length), argmax);
    assert.deepEqual([...argmax], maxRef.argmax);
    assertClose(values(avgPool2d(x, options)), avgRef.y, { rtol: 1e-12, atol: 0 });
  });
}

Deno.test("pool2dParams: output sizes of AlexNet's pools (paper section 3.5)", () => {
  for (const [h, out] of [[55, 27], [27, 13], [13, 6]]) {
    const p = pool2dParams("maxPool2d", [1, 96, h, h], 3, 2, 0);
    assert.deepEqual([p.outH, p.outW], [out, out]);
  }
});

Deno.test("maxPool2d / avgPool2d: hand-computed 3x3 input", () => {
  const x = tensor([[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]]);
  const cases: [string, () => Tensor, number[]][] = [
    ["max 2x2 stride 1", () => maxPool2d(x, { kernelSize: 2, stride: 1 }), [5, 6, 8, 9]],
    ["avg 2x2 stride 1", () => avgPool2d(x, { kernelSize: 2, stride: 1 }), [3, 4, 6, 7]],
    // Windows rows/cols {-1,0} and {1,2}: padding counts as zero in the divisor 4.
    ["avg 2x2 stride 2 pad 1", () => avgPool2d(x, { kernelSize: 2, stride: 2, padding: 1 }), [
      0.25,
      1.25,
      2.75,
      7,
    ]],
    ["max 2x2 stride 2 pad 1", () => maxPool2d(x, { kernelSize: 2, stride: 2, padding: 1 }), [
      1,
      3,
      7,
      9,
    ]],
    ["max 3x3/2 pad 1", () => maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 }), [5, 6, 8, 9]],
  ];
  for (const [name, run, expected] of cases) assert.deepEqual([...values(run())], expected, name);
});

Deno.test("maxPool2d: ties go to the first cell, NaN wins and propagates", () => {
  const p = pool2dParams("test", [1, 1, 2, 4], 2, 2, 0);
  const x = Float32Array.from([7, 7, 1, NaN, 7, 7, NaN, 5]);
  const y = new Float32Array(2), argmax = new Int32Array(2);
  maxPool2dForwardCpu(x, p, y, argmax);
  assert.deepEqual([y[0], argmax[0]], [7, 0]);
  assert.ok(Number.isNaN(y[1]));
  assert.equal(argmax[1], 3, "the first NaN in row-major order wins");
});

Deno.test("maxPool2d: -Infinity inputs still name a real winner", () => {
  const p = pool2dParams("test", [1, 1, 2, 2], 2, 1, 1);
  const x = Float64Array.from([-Infinity, -Infinity, -Infinity, -Infinity]);
  const y = new Float64Array(9), argmax = new Int32Array(9);
  maxPool2dForwardCpu(x, p, y, argmax);
  assert.ok(argmax.every((index) => index >= 0 && index < 4), `argmax ${argmax}`);
});

// ---------------------------------------------------------------------------------------------
// Gradients (float64; max-pool inputs without ties)

const gradCases: [string, (x: Tensor) => Tensor, () => Tensor][] = [
  [
    "maxPool 3x3/2 overlapping, odd 9x7",
    (x) => maxPool2d(x, { kernelSize: 3, stride: 2 }),
    () => distinctF64([2, 2, 9, 7], 3),
  ],
  [
    "maxPool 3x3/2 pad 1, 7x8",
    (x) => maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 }),
    () => distinctF64([1, 3, 7, 8], 4),
  ],
  [
    "maxPool [2,3] stride [1,2]",
    (x) => maxPool2d(x, { kernelSize: [2, 3], stride: [1, 2], padding: [1, 1] }),
    () => distinctF64([1, 2, 5, 6], 5),
  ],
  [
    "avgPool 3x3/2 pad 1, 7x8",
    (x) => avgPool2d(x, { kernelSize: 3, stride: 2, padding: 1 }),
    () => randomF64([2, 2, 7, 8], 6),
  ],
  [
    "avgPool [3,2] stride [2,1]",
    (x) => avgPool2d(x, { kernelSize: [3, 2], stride: [2, 1] }),
    () => randomF64([1, 3, 7, 5], 7),
  ],
  ["adaptiveAvgPool 7x7 -> 3x3", (x) => adaptiveAvgPool2d(x, 3), () => randomF64([2, 2, 7, 7], 8)],
  [
    "adaptiveAvgPool 5x7 -> [2,3]",
    (x) => adaptiveAvgPool2d(x, [2, 3]),
    () => randomF64([1, 3, 5, 7], 9),
  ],
  [
    "adaptiveAvgPool 3x2 -> 5x4 (upsampling)",
    (x) => adaptiveAvgPool2d(x, [5, 4]),
    () => randomF64([1, 2, 3, 2], 10),
  ],
];

for (const [name, fn, inputs] of gradCases) {
  Deno.test(`gradcheck ${name}`, () => assertGradcheck(fn, [inputs()]));
}

// ---------------------------------------------------------------------------------------------
// Adaptive bins

Deno.test("adaptiveAvgPool2d: PyTorch's overlapping bins", () => {
  const cases: [string, number[], number[], [number, number], number[]][] = [
    // bins [0,3) [2,5)
    ["5 -> 2", [1, 1, 1, 5], [1, 2, 3, 4, 5], [1, 2], [2, 4]],
    // bins [0,3) [2,5) [4,7)
    ["7 -> 3", [1, 1, 1, 7], [0, 1, 2, 3, 4, 5, 6], [1, 3], [1, 3, 5]],
    // bins [0,1) [0,2) [1,2)
    ["2 -> 3", [1, 1, 1, 2], [2, 4], [1, 3], [2, 3, 4]],
    ["global", [1, 2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8], [1, 1], [2.5, 6.5]],
  ];
  for (const [name, shape, data, size, expected] of cases) {
    assert.deepEqual(
      [...values(adaptiveAvgPool2d(fromArray(Float64Array.from(data), shape), size))],
      expected,
      name,
    );
  }
  const x = randomF64([2, 3, 13, 11], 11);
  assertClose(
    values(adaptiveAvgPool2d(x, [6, 4])),
    naiveAdaptive(x.dataSync() as Float64Array, [2, 3, 13, 11], 6, 4),
    {
      rtol: 1e-12,
      atol: 0,
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Validation

Deno.test("pooling: invalid configurations name the op, argument and value", () => {
  const x = tensor(new Float32Array(2 * 3 * 5 * 5), { shape: [2, 3, 5, 5] });
  const cases: [string, () => unknown, RegExp][] = [
    [
      "3-D input",
      () => maxPool2d(tensor(new Float32Array(75), { shape: [3, 5, 5] }), { kernelSize: 2 }),
      /maxPool2d: input must be \[N, C, H, W\], got \[3,5,5\]/,
    ],
    [
      "kernel larger than padded input",
      () => maxPool2d(x, { kernelSize: 8, padding: 1 }),
      /maxPool2d: kernelSize 8x8 is larger than the padded input 7x7/,
    ],
    [
      "padding over half the kernel",
      () => avgPool2d(x, { kernelSize: 3, padding: 2 }),
      /avgPool2d: padding 2 must be at most half of kernelSize 3x3/,
    ],
    [
      "zero stride",
      () => maxPool2d(x, { kernelSize: 3, stride: 0 }),
      /maxPool2d: stride must be positive integers, got 0/,
    ],
    [
      "negative stride",
      () => avgPool2d(x, { kernelSize: 3, stride: [1, -2] }),
      /avgPool2d: stride must be positive integers, got \[1,-2\]/,
    ],
    [
      "fractional kernel",
      () => maxPool2d(x, { kernelSize: 2.5 }),
      /maxPool2d: kernelSize must be positive integers, got 2.5/,
    ],
    [
      "negative padding",
      () => maxPool2d(x, { kernelSize: 3, padding: -1 }),
      /maxPool2d: padding must be non-negative integers, got -1/,
    ],
    [
      "adaptive size 0",
      () => adaptiveAvgPool2d(x, [0, 2]),
      /adaptiveAvgPool2d: outputSize must be positive integers, got \[0,2\]/,
    ],
    [
      "int32 input",
      () => maxPool2d(tensor([[[[1]]]], { dtype: "int32" }), { kernelSize: 1 }),
      /maxPool2d: expected a float tensor/,
    ],
  ];
  for (const [name, run, message] of cases) assert.throws(run, message, name);
});

// ---------------------------------------------------------------------------------------------
// Memory: the saved argmax lives exactly as long as the graph

Deno.test("maxPool2d: backward() releases the saved argmax", () => {
  const x = distinctF64([1, 2, 7, 7], 12);
  x.requiresGrad = true;
  const y = maxPool2d(x, { kernelSize: 3, stride: 2 });
  const saved = y.node!.saved;
  assert.equal(saved.length, 1);
  assert.equal(saved[0].dtype, "int32");
  assert.deepEqual(saved[0].shape, [1, 2, 3, 3]);
  const loss = sum(y);
  loss.backward();
  assert.ok(saved[0].isDisposed, "argmax still alive after backward()");
  // Each output routes exactly its dy = 1 to one winner.
  assert.equal([...values(x.grad!)].reduce((s, v) => s + v, 0), 18);
});

Deno.test("maxPool2d: without a graph the argmax is freed at once", () => {
  const cpuBackend = getBackend("cpu");
  const x = distinctF64([1, 2, 7, 7], 13);
  const alive = new Set<Storage>();
  const forward = cpuBackend.maxPool2dForward, free = cpuBackend.free;
  cpuBackend.maxPool2dForward = (s, p) => {
    const out = forward.call(cpuBackend, s, p);
    alive.add(out.argmax);
    return out;
  };
  cpuBackend.free = (s) => {
    alive.delete(s);
    free.call(cpuBackend, s);
  };
  try {
    maxPool2d(x, { kernelSize: 3, stride: 2 }); // x does not require grad
    assert.equal(alive.size, 0, "argmax leaked by an unrecorded maxPool2d");
    noGrad(() => {
      const leaf = distinctF64([1, 1, 5, 5], 14);
      leaf.requiresGrad = true;
      maxPool2d(leaf, { kernelSize: 2 });
    });
    assert.equal(alive.size, 0, "argmax leaked inside noGrad");
  } finally {
    cpuBackend.maxPool2dForward = forward;
    cpuBackend.free = free;
  }
});
