/**
 * The WebAssembly ReLU, max-pooling and LRN kernels (cpu/kernels/relu.ts, pool2d.ts, lrn.ts)
 * against the reference loops of tensor/ops/elementwise.ts, pool.ts and lrn.ts. ReLU and
 * max-pooling compare and select, never add, so they must agree bit for bit: NaN, −0, ties and
 * ragged tails included. LRN computes in float32: its bound is derived next to its test. Then
 * the CPU backend's dispatch.
 */
import assert from "node:assert/strict";
import { unaryBackwardCpu, unaryCpu } from "../../tensor/ops/elementwise.ts";
import {
  maxPool2dBackwardCpu,
  maxPool2dForwardCpu,
  pool2dParams,
  type Size2d,
} from "../../tensor/ops/pool.ts";
import {
  lrnBackwardWasm,
  lrnForwardWasm,
  lrnWasmSupports,
  maxPool2dBackwardWasm,
  maxPool2dForwardWasm,
  reluBackwardWasm,
  reluWasm,
  sgdUpdateWasm,
} from "../../cpu/kernels/layers.ts";
import { sgdUpdateCpu } from "../../tensor/ops/sgd.ts";
import { lrnBackwardCpu, lrnForwardCpu } from "../../tensor/ops/lrn.ts";
import type { LrnParams, SgdParams } from "../../backend/backend.ts";
import { bestSimdTier } from "../../cpu/kernels/gemm.ts";
import { cpuBackend, type CpuStorage } from "../../mod.ts";
import { Rng } from "../../tensor/random.ts";

const simd = bestSimdTier() !== null;

/** Values in [-2, 2] rounded to quarters (so windows hold ties), with NaN and −0 sprinkled in. */
function activations(rng: Rng, length: number): Float32Array {
  const values = new Float32Array(length);
  for (let i = 0; i < length; i++) values[i] = Math.round((rng.uniform() * 4 - 2) * 4) / 4;
  for (let i = 3; i < length; i += 37) values[i] = NaN;
  for (let i = 5; i < length; i += 41) values[i] = -0;
  return values;
}

function assertIdentical(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Object.is(actual[i], expected[i]), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

Deno.test({ name: "wasm relu: forward and backward match the reference", ignore: !simd }, () => {
  const rng = new Rng(1);
  for (const length of [0, 1, 3, 4, 5, 8, 131, 4099]) {
    const x = activations(rng, length), dy = activations(rng, length);
    const y = new Float32Array(length), yRef = new Float32Array(length);
    reluWasm(x, y);
    unaryCpu("relu", x, yRef);
    assertIdentical(y, yRef, `relu (${length})`);
    const dx = new Float32Array(length).fill(7), dxRef = new Float32Array(length);
    reluBackwardWasm(x, dy, dx);
    unaryBackwardCpu("relu", x, yRef, dy, dxRef);
    assertIdentical(dx, dxRef, `relu backward (${length})`);
  }
});

const poolCases: [number[], Size2d, Size2d, Size2d][] = [
  [[3, 5, 13, 11], 3, 2, 0], // AlexNet's overlapping 3x3 stride 2, odd sizes
  [[1, 3, 7, 7], 3, 2, 1], // padding: padded cells never win
  [[2, 2, 6, 5], [3, 2], [1, 2], [1, 1]], // non-square everything
  [[3, 1, 4, 4], 2, 2, 0], // non-overlapping
  [[1, 2, 5, 9], [5, 1], 1, 0], // windows one column wide
  [[2, 3, 28, 28], 3, 2, 0], // AlexNet-mini's pool1: 13 windows a row, four lanes at a time
  [[1, 2, 9, 29], 3, 2, 1], // padding: the first window is clipped, 13 whole ones follow
  [[1, 1, 3, 11], [2, 5], [1, 3], [1, 2]], // two whole windows a row: too few for the lanes
  [[1, 2, 6, 12], 3, 1, 1], // stride 1: neighbouring lanes share cells
];

/**
 * Random geometries (sizes, windows, strides, padding, ceil mode) so every way a row splits into
 * clipped windows, groups of four whole windows and a remainder is met.
 */
function randomPoolGeometry(rng: Rng) {
  for (;;) {
    const [kh, kw] = [1 + rng.int(5), 1 + rng.int(5)];
    const [sh, sw] = [1 + rng.int(4), 1 + rng.int(4)];
    const [ph, pw] = [rng.int(Math.floor(kh / 2) + 1), rng.int(Math.floor(kw / 2) + 1)];
    const shape = [1 + rng.int(2), 1 + rng.int(3), 1 + rng.int(12), 1 + rng.int(40)];
    if (kh > shape[2] + 2 * ph || kw > shape[3] + 2 * pw) continue;
    return pool2dParams("maxPool2d", shape, [kh, kw], [sh, sw], [ph, pw], rng.int(2) === 1);
  }
}

Deno.test({ name: "wasm max-pool forward and backward match the reference", ignore: !simd }, () => {
  const rng = new Rng(2);
  const geometries = [
    ...poolCases.map(([shape, kernel, stride, padding]) =>
      pool2dParams("maxPool2d", shape, kernel, stride, padding)
    ),
    ...Array.from({ length: 300 }, () => randomPoolGeometry(rng)),
  ];
  for (const p of geometries) {
    const shape = `${[p.n, p.c, p.h, p.w]} k${[p.kh, p.kw]} s${[p.strideH, p.strideW]} p${[
      p.padH,
      p.padW,
    ]}`;
    const x = activations(rng, p.n * p.c * p.h * p.w);
    const outLength = p.n * p.c * p.outH * p.outW;
    const y = new Float32Array(outLength), yRef = new Float32Array(outLength);
    const argmax = new Int32Array(outLength).fill(-9), argmaxRef = new Int32Array(outLength);
    maxPool2dForwardWasm(x, p, y, argmax);
    maxPool2dForwardCpu(x, p, yRef, argmaxRef);
    assertIdentical(y, yRef, `y ${shape}`);
    assertIdentical(argmax, argmaxRef, `argmax ${shape}`);
    // The backward: overlapping windows add several dy into one cell, in the same order.
    const dy = activations(rng, outLength).map((v) => (Number.isNaN(v) ? 0.5 : v));
    const dx = new Float32Array(x.length).fill(7), dxRef = new Float32Array(x.length);
    maxPool2dBackwardWasm(dy, argmax, p, dx);
    maxPool2dBackwardCpu(dy, argmaxRef, p, dxRef);
    assertIdentical(dx, dxRef, `dx ${shape}`);
  }
});

Deno.test(
  { name: "CPU backend: relu, max-pool and LRN run the wasm kernels", ignore: !simd },
  () => {
    const rng = new Rng(3);
    const x = activations(rng, 2 * 3 * 9 * 7), dy = activations(rng, x.length);
    const y = new Float32Array(x.length), dx = new Float32Array(x.length);
    reluWasm(x, y);
    reluBackwardWasm(x, dy, dx);
    const sx = cpuBackend.fromArray(x), sdy = cpuBackend.fromArray(dy);
    const sy = cpuBackend.unary("relu", sx);
    assertIdentical((sy as CpuStorage).data, y, "backend relu");
    const sdx = cpuBackend.unaryBackward("relu", sx, sy, sdy);
    assertIdentical((sdx as CpuStorage).data, dx, "backend relu backward");

    const p = pool2dParams("maxPool2d", [2, 3, 9, 7], 3, 2, 0);
    const out = new Float32Array(p.n * p.c * p.outH * p.outW), argmax = new Int32Array(out.length);
    maxPool2dForwardWasm(x, p, out, argmax);
    const pooled = cpuBackend.maxPool2dForward(sx, p);
    assertIdentical((pooled.y as CpuStorage).data, out, "backend max-pool");
    assertIdentical((pooled.argmax as CpuStorage).data, argmax, "backend max-pool argmax");
    const sdOut = cpuBackend.fromArray(out);
    const dPool = new Float32Array(x.length);
    maxPool2dBackwardWasm(out, argmax, p, dPool);
    const poolBack = cpuBackend.maxPool2dBackward(sdOut, pooled.argmax, p) as CpuStorage;
    assertIdentical(poolBack.data, dPool, "backend max-pool backward");

    const lrn: LrnParams = { n: 2, c: 3, h: 9, w: 7, size: 5, alpha: 2e-5, beta: 0.75, k: 2 };
    const finite = x.map((v) => (Number.isNaN(v) ? 1 : v));
    const normalized = new Float32Array(x.length), dLrn = new Float32Array(x.length);
    lrnForwardWasm(finite, lrn, normalized);
    lrnBackwardWasm(finite, dy, lrn, dLrn);
    const sf = cpuBackend.fromArray(finite);
    assertIdentical((cpuBackend.lrnForward(sf, lrn) as CpuStorage).data, normalized, "backend LRN");
    const back = cpuBackend.lrnBackward(sf, sdy, lrn) as CpuStorage;
    assertIdentical(back.data, dLrn, "backend LRN backward");
  },
);

/**
 * LRN (cpu/kernels/lrn.ts, β = 0.75) against lrnForwardCpu / lrnBackwardCpu, which sum in float64.
 * Tolerance from float32 arithmetic, u = 2⁻²⁴: the window sum of at most `size` squares
 * (size·u), then k + a·sum, two square roots, a product, a reciprocal and the product with x
 * (8 more roundings): |Δy| ≤ (size + 8)·u·|y|. The backward is dy·s^(−β) − 2aβ·x·Σ w_c with
 * w_c = dy_c·x_c·s_c^(−β)/s_c: each of its two terms carries at most (2·size + 12)·u of
 * relative error, so |Δdx| ≤ (2·size + 12)·u·(|dy·s^(−β)| + |2aβ·x·Σ w_c|), the magnitudes
 * computed here in float64 from the definition.
 */
function lrnMagnitude(x: Float32Array, dy: Float32Array, p: LrnParams): Float64Array {
  const plane = p.h * p.w, out = new Float64Array(x.length);
  const below = Math.floor(p.size / 2), above = Math.floor((p.size - 1) / 2);
  const s = new Float64Array(x.length), w = new Float64Array(x.length);
  for (let n = 0; n < p.n; n++) {
    for (let c = 0; c < p.c; c++) {
      for (let q = 0; q < plane; q++) {
        let sum = 0;
        for (let j = Math.max(0, c - below); j <= Math.min(p.c - 1, c + above); j++) {
          sum += x[(n * p.c + j) * plane + q] ** 2;
        }
        const i = (n * p.c + c) * plane + q;
        s[i] = p.k + p.alpha * sum;
        w[i] = Math.abs(dy[i] * x[i]) * s[i] ** -1.75;
      }
    }
    for (let c = 0; c < p.c; c++) {
      for (let q = 0; q < plane; q++) {
        let sum = 0;
        for (let j = Math.max(0, c - above); j <= Math.min(p.c - 1, c + below); j++) {
          sum += w[(n * p.c + j) * plane + q];
        }
        const i = (n * p.c + c) * plane + q;
        out[i] = Math.abs(dy[i]) * s[i] ** -0.75 + 2 * p.alpha * 0.75 * Math.abs(x[i]) * sum;
      }
    }
  }
  return out;
}

Deno.test({ name: "wasm LRN: forward and backward match the reference", ignore: !simd }, () => {
  const rng = new Rng(4);
  const u = 2 ** -24;
  const shapes: [number, number, number, number, number][] = [
    [2, 7, 3, 5, 5], // P = 15: three vectors and a tail of 3
    [1, 3, 4, 4, 4], // even window, C < size
    [3, 9, 5, 5, 1],
    [2, 12, 2, 3, 6],
    [1, 5, 1, 1, 3], // one pixel: only the scalar tail
    [2, 37, 43, 47, 5], // images past a task's elements: runs of 1012 and 1009 pixels per task
  ];
  for (const [n, c, h, w, size] of shapes) {
    // alpha large enough that the normalization matters (s up to ~k + 2).
    const p: LrnParams = { n, c, h, w, size, alpha: 0.05, beta: 0.75, k: 2 };
    const length = n * c * h * w;
    const x = new Float32Array(length).map(() => rng.uniform() * 6 - 3);
    const dy = new Float32Array(length).map(() => rng.uniform() * 2 - 1);
    const y = new Float32Array(length).fill(NaN), yRef = new Float64Array(length);
    lrnForwardWasm(x, p, y);
    lrnForwardCpu(new Float64Array(x), p, yRef);
    for (let i = 0; i < length; i++) {
      const bound = (size + 8) * u * Math.abs(yRef[i]);
      assert.ok(Math.abs(y[i] - yRef[i]) <= bound, `y[${i}] ${y[i]} vs ${yRef[i]} (${size})`);
    }
    const dx = new Float32Array(length).fill(NaN), dxRef = new Float64Array(length);
    lrnBackwardWasm(x, dy, p, dx);
    lrnBackwardCpu(new Float64Array(x), new Float64Array(dy), p, dxRef);
    const magnitude = lrnMagnitude(x, dy, p);
    for (let i = 0; i < length; i++) {
      const bound = (2 * size + 12) * u * magnitude[i];
      assert.ok(Math.abs(dx[i] - dxRef[i]) <= bound, `dx[${i}] ${dx[i]} vs ${dxRef[i]} (${size})`);
    }
  }
  assert.equal(
    lrnWasmSupports({ n: 1, c: 1, h: 1, w: 1, size: 5, alpha: 1, beta: 0.5, k: 1 }),
    false,
  );
});

Deno.test(
  { name: "wasm SGD update: both rules match the reference bit for bit", ignore: !simd },
  () => {
    const rng = new Rng(7);
    const rules: SgdParams[] = [
      { lr: 0.01, momentum: 0.9, weightDecay: 5e-4, rule: "paper" },
      { lr: 0.1, momentum: 0.9, weightDecay: 1e-4, rule: "pytorch" },
      { lr: 0.05, momentum: 0, weightDecay: 0, rule: "pytorch" },
      { lr: 1e-3, momentum: 0.99, weightDecay: 0.1, rule: "paper" },
    ];
    for (const p of rules) {
      for (const length of [0, 1, 3, 4099, 70_001]) {
        const [w, g, v] = [0, 1, 2].map(() => activations(rng, length).map((x) => x * 3));
        if (length > 10) [w[1], g[2], v[3], g[4]] = [Infinity, -Infinity, -3.4e38, 3.4e38];
        const [wRef, vRef] = [w.slice(), v.slice()];
        sgdUpdateCpu(wRef, g, vRef, p);
        sgdUpdateWasm(w, g, v, p);
        assertIdentical(w, wRef, `w (${p.rule}, lr ${p.lr}, ${length})`);
        assertIdentical(v, vRef, `v (${p.rule}, lr ${p.lr}, ${length})`);
      }
    }
  },
);
