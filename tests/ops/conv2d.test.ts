/**
 * conv2d's reference loops (tensor/ops/conv2d.ts) against the definition: the 7 nested loops of
 * the forward and their adjoint, over the one conv2d table (tests/parity/cases_spatial.ts, whose
 * rows every device also runs against this reference); a finite-difference check of the
 * backward; conv2dParams' sizes and errors; the kernels' buffer checks.
 */
import assert from "node:assert/strict";
import {
  conv2dBackwardInputCpu,
  conv2dBackwardWeightCpu,
  conv2dForwardCpu,
  conv2dParams,
  type FloatArray,
} from "../../tensor/ops/conv2d.ts";
import type { Conv2dParams } from "../../backend/backend.ts";
import { reduceCpu } from "../../tensor/ops/reduce.ts";
import { Rng } from "../../tensor/random.ts";
import { assertClose } from "../support/close.ts";
import { convCases } from "../parity/cases_spatial.ts";

/** dbias as the conv2d op computes it: dy summed over N, H and W. */
function biasGrad(dy: FloatArray, p: Conv2dParams, out: FloatArray): void {
  reduceCpu("sum", dy, [p.n, p.o, p.outH, p.outW], [0, 2, 3], out);
}

/** Direct convolution: the 7 nested loops of the definition, with bias. */
function naiveForward(x: Float64Array, w: Float64Array, bias: Float64Array, p: Conv2dParams) {
  const out = new Float64Array(p.n * p.o * p.outH * p.outW);
  const inGroup = p.c / p.groups;
  const outGroup = p.o / p.groups;
  for (let n = 0; n < p.n; n++) {
    for (let o = 0; o < p.o; o++) {
      const group = Math.floor(o / outGroup);
      for (let i = 0; i < p.outH; i++) {
        for (let j = 0; j < p.outW; j++) {
          let sum = bias[o];
          for (let c = 0; c < inGroup; c++) {
            for (let u = 0; u < p.kh; u++) {
              for (let v = 0; v < p.kw; v++) {
                const y = i * p.strideH - p.padH + u * p.dilationH;
                const x2 = j * p.strideW - p.padW + v * p.dilationW;
                if (y < 0 || y >= p.h || x2 < 0 || x2 >= p.w) continue;
                const channel = group * inGroup + c;
                sum += w[((o * inGroup + c) * p.kh + u) * p.kw + v] *
                  x[((n * p.c + channel) * p.h + y) * p.w + x2];
              }
            }
          }
          out[((n * p.o + o) * p.outH + i) * p.outW + j] = sum;
        }
      }
    }
  }
  return out;
}

/** The adjoint of the same loops: every product x·w in the forward scatters dy into dx and dw. */
function naiveBackward(x: Float64Array, w: Float64Array, dy: Float64Array, p: Conv2dParams) {
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  const db = new Float64Array(p.o);
  const inGroup = p.c / p.groups;
  const outGroup = p.o / p.groups;
  for (let n = 0; n < p.n; n++) {
    for (let o = 0; o < p.o; o++) {
      const group = Math.floor(o / outGroup);
      for (let i = 0; i < p.outH; i++) {
        for (let j = 0; j < p.outW; j++) {
          const grad = dy[((n * p.o + o) * p.outH + i) * p.outW + j];
          db[o] += grad;
          for (let c = 0; c < inGroup; c++) {
            for (let u = 0; u < p.kh; u++) {
              for (let v = 0; v < p.kw; v++) {
                const y = i * p.strideH - p.padH + u * p.dilationH;
                const x2 = j * p.strideW - p.padW + v * p.dilationW;
                if (y < 0 || y >= p.h || x2 < 0 || x2 >= p.w) continue;
                const xIndex = ((n * p.c + group * inGroup + c) * p.h + y) * p.w + x2;
                const wIndex = ((o * inGroup + c) * p.kh + u) * p.kw + v;
                dx[xIndex] += grad * w[wIndex];
                dw[wIndex] += grad * x[xIndex];
              }
            }
          }
        }
      }
    }
  }
  return { dx, dw, db };
}

function random(rng: Rng, length: number): Float64Array {
  const values = new Float64Array(length);
  for (let i = 0; i < length; i++) values[i] = rng.uniform() * 2 - 1;
  return values;
}

/** The one conv2d table (tests/parity/cases_spatial.ts), dilation included. */
const cases = convCases;

for (const dtype of ["float64", "float32"] as const) {
  const tolerance = dtype === "float64" ? 1e-12 : 2e-5;
  const convert = (values: Float64Array) => dtype === "float64" ? values : new Float32Array(values);
  for (const testCase of cases) {
    Deno.test(`conv2d kernels ${dtype}: ${testCase.name} match the direct loops`, () => {
      const rng = new Rng(7);
      const p = conv2dParams(
        testCase.x,
        testCase.w,
        testCase.stride,
        testCase.padding,
        testCase.groups,
        testCase.dilation,
      );
      // Round the inputs through float32 once so both sides see the same values.
      const x = new Float64Array(new Float32Array(random(rng, p.n * p.c * p.h * p.w)));
      const w = new Float64Array(new Float32Array(random(rng, testCase.w.reduce((s, d) => s * d))));
      const bias = new Float64Array(new Float32Array(random(rng, p.o)));
      const dy = new Float64Array(new Float32Array(random(rng, p.n * p.o * p.outH * p.outW)));

      const out = convert(new Float64Array(dy.length));
      conv2dForwardCpu(convert(x), convert(w), convert(bias), p, out);
      assertClose(out, naiveForward(x, w, bias, p), {
        rtol: tolerance,
        atol: tolerance,
        what: "y",
      });

      const expected = naiveBackward(x, w, dy, p);
      const dx = convert(new Float64Array(x.length).fill(9)); // overwritten, not added to
      conv2dBackwardInputCpu(convert(dy), convert(w), p, dx);
      assertClose(dx, expected.dx, { rtol: tolerance, atol: tolerance, what: "dx" });
      const dw = convert(new Float64Array(w.length).fill(9));
      conv2dBackwardWeightCpu(convert(dy), convert(x), p, dw);
      assertClose(dw, expected.dw, { rtol: tolerance, atol: tolerance, what: "dw" });
      const db = convert(new Float64Array(p.o).fill(9));
      biasGrad(convert(dy), p, db);
      assertClose(db, expected.db, { rtol: tolerance, atol: tolerance, what: "dbias" });
    });
  }
}

Deno.test("conv2d backward matches finite differences of the forward (float64)", () => {
  const rng = new Rng(11);
  const p = conv2dParams([2, 4, 7, 6], [4, 2, 3, 3], [2, 1], 1, 2);
  const x = random(rng, p.n * p.c * p.h * p.w);
  const w = random(rng, p.o * 2 * 9);
  const bias = random(rng, p.o);
  const dy = random(rng, p.n * p.o * p.outH * p.outW);
  // L = <conv(x, w) + b, dy>, so dL/dθ is what the backward kernels return.
  const loss = () => {
    const out = new Float64Array(dy.length);
    conv2dForwardCpu(x, w, bias, p, out);
    return out.reduce((sum, value, i) => sum + value * dy[i], 0);
  };
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  const db = new Float64Array(p.o);
  conv2dBackwardInputCpu(dy, w, p, dx);
  conv2dBackwardWeightCpu(dy, x, p, dw);
  biasGrad(dy, p, db);
  const step = 1e-6;
  for (const [name, values, grad] of [["x", x, dx], ["w", w, dw], ["bias", bias, db]] as const) {
    for (let i = 0; i < values.length; i += 3) {
      const saved = values[i];
      values[i] = saved + step;
      const up = loss();
      values[i] = saved - step;
      const down = loss();
      values[i] = saved;
      const numeric = (up - down) / (2 * step);
      assert.ok(Math.abs(numeric - grad[i]) < 1e-6, `d${name}[${i}]: ${grad[i]} vs ${numeric}`);
    }
  }
});

Deno.test("conv2dParams computes AlexNet's output sizes", () => {
  const conv1 = conv2dParams([8, 3, 227, 227], [96, 3, 11, 11], 4, 0, 1);
  assert.deepEqual([conv1.outH, conv1.outW], [55, 55]);
  const conv2 = conv2dParams([8, 96, 27, 27], [256, 48, 5, 5], 1, 2, 2);
  assert.deepEqual([conv2.outH, conv2.outW, conv2.groups], [27, 27, 2]);
  const rect = conv2dParams([1, 1, 10, 7], [1, 1, 3, 2], [3, 2], [1, 0], 1);
  assert.deepEqual([rect.outH, rect.outW], [4, 3]);
});

Deno.test("conv2dParams names the argument and value it rejects", () => {
  const table: [() => unknown, RegExp][] = [
    [
      () => conv2dParams([8, 64, 13, 13], [96, 21, 3, 3], 1, 1, 3),
      /conv2d: groups=3 does not divide in_channels=64/,
    ],
    [
      () => conv2dParams([8, 6, 13, 13], [4, 2, 3, 3], 1, 1, 3),
      /conv2d: groups=3 does not divide out_channels=4/,
    ],
    [
      () => conv2dParams([1, 3, 8, 8], [96, 3, 11, 11], 4, 0, 1),
      /conv2d: kernel 11x11 is larger than padded input 8x8/,
    ],
    [
      () => conv2dParams([8, 4, 227, 227], [96, 3, 11, 11], 4, 0, 1),
      /conv2d: weight \[96,3,11,11\] expects 3 input channels per group, input \[8,4,227,227\] has 4 \(groups=1\)/,
    ],
    [
      () => conv2dParams([1, 3, 8, 8], [4, 3, 3, 3], -1, 0, 1),
      /conv2d: stride must be positive integers, got -1x-1/,
    ],
    [
      () => conv2dParams([1, 3, 8, 8], [4, 3, 3, 3], [1, 0], 0, 1),
      /conv2d: stride must be positive integers, got 1x0/,
    ],
    [
      () => conv2dParams([1, 3, 8, 8], [4, 3, 3, 3], 1, -2, 1),
      /conv2d: padding must be non-negative integers, got -2x-2/,
    ],
    [
      () => conv2dParams([1, 3, 8, 8], [4, 3, 3, 3], 1, 0, 0),
      /conv2d: groups must be a positive integer, got 0/,
    ],
    [
      () => conv2dParams([3, 8, 8], [4, 3, 3, 3], 1, 0, 1),
      /conv2d: input must have shape \[N, C, H, W\], got \[3,8,8\]/,
    ],
    [
      () => conv2dParams([1, 3, 8, 8], [4, 3, 3], 1, 0, 1),
      /conv2d: weight must have shape \[O, C\/groups, KH, KW\], got \[4,3,3\]/,
    ],
  ];
  for (const [call, message] of table) assert.throws(call, message);
});

Deno.test("conv2d kernels reject buffers that are too small", () => {
  const p = conv2dParams([1, 2, 4, 4], [3, 2, 3, 3], 1, 0, 1);
  assert.throws(
    () =>
      conv2dForwardCpu(new Float32Array(31), new Float32Array(54), null, p, new Float32Array(12)),
    /conv2d: x has 31 elements, expected 32/,
  );
});
