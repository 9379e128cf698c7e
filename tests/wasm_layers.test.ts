/**
 * The WebAssembly ReLU and max-pooling kernels (wasm/relu.ts, wasm/pool.ts) against the
 * reference loops of tensor/ops/elementwise.ts and tensor/ops/pool.ts. Both kernels compare
 * and select, never add, so they must agree bit for bit: NaN, −0, ties and ragged tails
 * included. Then the CPU backend's dispatch.
 */
import assert from "node:assert/strict";
import { unaryBackwardCpu, unaryCpu } from "../tensor/ops/elementwise.ts";
import { maxPool2dForwardCpu, pool2dParams, type Size2d } from "../tensor/ops/pool.ts";
import { reluBackwardWasm, reluWasm } from "../wasm/relu.ts";
import { maxPool2dForwardWasm } from "../wasm/pool.ts";
import { bestGemmTier } from "../wasm/gemm.ts";
import { cpuBackend, type CpuStorage } from "../backend/cpu.ts";
import { Rng } from "../tensor/random.ts";

const simd = bestGemmTier() !== "reference";

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
];

Deno.test({ name: "wasm max-pool forward matches the reference", ignore: !simd }, () => {
  const rng = new Rng(2);
  for (const [shape, kernel, stride, padding] of poolCases) {
    const p = pool2dParams("maxPool2d", shape, kernel, stride, padding);
    const x = activations(rng, p.n * p.c * p.h * p.w);
    const outLength = p.n * p.c * p.outH * p.outW;
    const y = new Float32Array(outLength), yRef = new Float32Array(outLength);
    const argmax = new Int32Array(outLength).fill(-9), argmaxRef = new Int32Array(outLength);
    maxPool2dForwardWasm(x, p, y, argmax);
    maxPool2dForwardCpu(x, p, yRef, argmaxRef);
    assertIdentical(y, yRef, `y ${shape}`);
    assertIdentical(argmax, argmaxRef, `argmax ${shape}`);
  }
});

Deno.test({ name: "CPU backend: relu and max-pool run the wasm kernels", ignore: !simd }, () => {
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
});
