/**
 * The options learners reach for, against PyTorch (fixtures recorded by
 * tools/semantics_fixtures.py with torch 1.13) and gradchecked in float64: crossEntropy's
 * `weight`, `ignoreIndex` and `labelSmoothing`; conv2d's `dilation`; max pooling's `ceilMode`;
 * average pooling's `ceilMode` and `countIncludePad`. Each case runs in float64 (the reference
 * kernels) and float32 (the CPU backend's fast path where it has one), and compares the output
 * and the gradient of sum(output · r).
 */

import assert from "node:assert/strict";
import {
  AvgPool2d,
  avgPool2d,
  cast,
  Conv2d,
  conv2d,
  crossEntropy,
  type CrossEntropyOptions,
  MaxPool2d,
  maxPool2d,
  mul,
  sum,
  type Tensor,
} from "../../mod.ts";
import { assertClose, assertGradcheck, randomF64 } from "../support/helpers.ts";
import { fixture, type FixtureTensor, numbers, toTensor } from "../support/semantics_fixtures.ts";

/** Tolerances per dtype: float64 agrees with PyTorch's float64 to rounding. */
const TOLERANCE = {
  float64: { rtol: 1e-10, atol: 1e-12 },
  float32: { rtol: 2e-5, atol: 2e-5 },
} as const;
const DTYPES = ["float64", "float32"] as const;

/** sum(out · r) backward; returns out's values and each input's gradient. */
function valueAndGrads(out: Tensor, r: FixtureTensor, inputs: Tensor[]) {
  const weights = cast(toTensor(r), out.dtype);
  const values = [...out.dataSync()];
  sum(mul(out, weights)).backward();
  return { out: values, grads: inputs.map((t) => [...t.grad!.dataSync()]) };
}

interface CrossEntropyCase {
  options: {
    reduction: "mean" | "sum" | "none";
    weight?: number[];
    ignoreIndex?: number;
    labelSmoothing?: number;
  };
  logits: FixtureTensor;
  labels: number[];
  r: FixtureTensor;
  out: FixtureTensor;
  grad: FixtureTensor;
}

Deno.test("crossEntropy weight / ignoreIndex / labelSmoothing match PyTorch, every reduction", () => {
  const cases = fixture<CrossEntropyCase>("cross_entropy.json");
  assert.ok(cases.length >= 21);
  for (const dtype of DTYPES) {
    for (const c of cases) {
      const what = `${dtype} ${JSON.stringify(c.options)}`;
      const logits = toTensor(c.logits, { dtype, requiresGrad: true });
      const out = crossEntropy(logits, c.labels, c.options as CrossEntropyOptions);
      const got = valueAndGrads(out, c.r, [logits]);
      assertClose(got.out, numbers(c.out), { ...TOLERANCE[dtype], what: `${what} loss` });
      assertClose(got.grads[0], numbers(c.grad), { ...TOLERANCE[dtype], what: `${what} grad` });
    }
  }
});

Deno.test("crossEntropy's new options are gradchecked in float64, also with a weight Tensor", () => {
  const weight = randomF64([5], 3, 0.5, 2);
  for (
    const options of [
      { labelSmoothing: 0.2 },
      { weight, ignoreIndex: 4 },
      { weight: [1, 2, 3, 4, 5], labelSmoothing: 0.3, ignoreIndex: 0, reduction: "sum" as const },
    ]
  ) {
    assertGradcheck((x) => crossEntropy(x, [0, 4, 2, 4, 1], options), [randomF64([5, 5], 1)]);
  }
});

Deno.test("crossEntropy's option errors name the option and the value", () => {
  const x = randomF64([2, 3], 1);
  const cases: [() => unknown, RegExp][] = [
    [
      () => crossEntropy(x, [0, 1], { labelSmoothing: 1.5 }),
      /labelSmoothing must be in \[0, 1\], got 1.5/,
    ],
    [
      () => crossEntropy(x, [0, 1], { ignoreIndex: 0.5 }),
      /ignoreIndex must be an integer, got 0.5/,
    ],
    [
      () => crossEntropy(x, [0, 1], { weight: [1, 2] }),
      /weight \[2\] must hold one value per class \(\[3\]\)/,
    ],
    [() => crossEntropy(x, [0, -100]), /label -100 .*pass \{ ignoreIndex: -100 \}/],
    [() => crossEntropy(x, [0, 7], { ignoreIndex: -100 }), /label 7 at index 1/],
  ];
  for (const [call, message] of cases) assert.throws(call, message);
  // An ignored label may lie outside [0, C).
  assert.ok(Number.isFinite(crossEntropy(x, [0, -100], { ignoreIndex: -100 }).dataSync()[0]));
});

interface ConvCase {
  options: {
    stride: number | number[];
    padding: number | number[];
    dilation: number | number[];
    groups: number;
  };
  x: FixtureTensor;
  w: FixtureTensor;
  b: FixtureTensor;
  r: FixtureTensor;
  out: FixtureTensor;
  gx: FixtureTensor;
  gw: FixtureTensor;
  gb: FixtureTensor;
}

Deno.test("conv2d dilation: forward and both backwards match PyTorch", () => {
  for (const dtype of DTYPES) {
    for (const c of fixture<ConvCase>("conv2d_dilation.json")) {
      const what = `${dtype} ${JSON.stringify(c.options)}`;
      const [x, w, b] = [c.x, c.w, c.b].map((t) => toTensor(t, { dtype, requiresGrad: true }));
      const out = conv2d(x, w, b, c.options as never);
      assert.deepEqual(out.shape, c.out.shape, what);
      const got = valueAndGrads(out, c.r, [x, w, b]);
      assertClose(got.out, numbers(c.out), { ...TOLERANCE[dtype], what });
      for (const [i, expected] of [c.gx, c.gw, c.gb].entries()) {
        assertClose(got.grads[i], numbers(expected), {
          ...TOLERANCE[dtype],
          what: `${what} grad ${i}`,
        });
      }
    }
  }
});

Deno.test("conv2d dilation is gradchecked; the Conv2d layer passes it and predicts the shape", () => {
  const options = { stride: 2, padding: 1, dilation: [2, 3] as [number, number] };
  assertGradcheck(
    (x, w, b) => conv2d(x, w, b, options),
    [randomF64([2, 2, 9, 10], 1), randomF64([3, 2, 3, 2], 2), randomF64([3], 3)],
  );
  const layer = new Conv2d(2, 3, 3, { dilation: 2, padding: 1, rng: 1 });
  const x = randomF64([1, 2, 11, 11], 4);
  const y = conv2d(cast(x, "float32"), layer.weight, layer.bias, { dilation: 2, padding: 1 });
  assert.deepEqual(layer.outputShape([1, 2, 11, 11]), [1, 3, 9, 9]);
  assert.deepEqual(layer.forward(cast(x, "float32")).dataSync(), y.dataSync());
  assert.match(layer.describe(), /dilation 2/);
  assert.throws(
    () => conv2d(x, randomF64([1, 2, 3, 3], 5), null, { dilation: 6 }),
    /kernel 13x13 \(kernel 3x3 with dilation 6x6\) is larger than padded input 11x11/,
  );
  assert.throws(
    () => new Conv2d(1, 1, 3, { dilation: 0 }),
    /Conv2d: dilation must be positive integers/,
  );
});

interface PoolCase {
  op: "maxPool2d" | "avgPool2d";
  options: {
    kernelSize: number | number[];
    stride: number | number[];
    padding: number | number[];
    ceilMode: boolean;
    countIncludePad?: boolean;
  };
  x: FixtureTensor;
  r: FixtureTensor;
  out: FixtureTensor;
  grad: FixtureTensor;
}

Deno.test("maxPool2d ceilMode, avgPool2d ceilMode and countIncludePad match PyTorch (shapes too)", () => {
  const cases = fixture<PoolCase>("pool.json");
  assert.ok(cases.some((c) => c.options.ceilMode && c.out.shape[2] * 1 > 0));
  for (const dtype of DTYPES) {
    for (const c of cases) {
      const what = `${dtype} ${c.op} ${JSON.stringify(c.options)}`;
      const x = toTensor(c.x, { dtype, requiresGrad: true });
      const out = c.op === "maxPool2d"
        ? maxPool2d(x, c.options as never)
        : avgPool2d(x, c.options as never);
      assert.deepEqual(out.shape, c.out.shape, what);
      const got = valueAndGrads(out, c.r, [x]);
      assertClose(got.out, numbers(c.out), { ...TOLERANCE[dtype], what });
      assertClose(got.grads[0], numbers(c.grad), { ...TOLERANCE[dtype], what: `${what} grad` });
    }
  }
});

Deno.test("pooling's new options are gradchecked; the layers pass them and predict the shape", () => {
  const x = randomF64([1, 2, 7, 6], 1);
  assertGradcheck(
    (x) =>
      avgPool2d(x, {
        kernelSize: 3,
        stride: 2,
        padding: 1,
        ceilMode: true,
        countIncludePad: false,
      }),
    [x],
  );
  assertGradcheck((x) => avgPool2d(x, { kernelSize: 2, stride: 2, ceilMode: true }), [x]);
  assertGradcheck((x) => maxPool2d(x, { kernelSize: 3, stride: 2, ceilMode: true }), [x]);
  const pool = new MaxPool2d({ kernelSize: 3, stride: 2, ceilMode: true });
  assert.deepEqual(pool.outputShape([1, 96, 56, 56]), [1, 96, 28, 28]); // floor mode: 27
  assert.deepEqual(pool.forward(cast(x, "float32")).shape, [1, 2, 3, 3]); // floor: [1, 2, 3, 2]
  const avg = new AvgPool2d({ kernelSize: 2, padding: 1, countIncludePad: false });
  assert.equal(avg.forward(cast(randomF64([1, 1, 2, 2], 2, 1, 1), "float32")).dataSync()[0], 1);
  assert.throws(
    () => new AvgPool2d({ kernelSize: 2, countIncludePad: "no" as never }),
    /countIncludePad must be true or false/,
  );
  assert.throws(
    () => maxPool2d(x, { kernelSize: 2, ceilMode: 1 as never }),
    /ceilMode must be true or false/,
  );
});
