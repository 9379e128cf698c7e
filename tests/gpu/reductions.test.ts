/**
 * GPU reductions at sizes where a serial loop per invocation is cut short by the software
 * adapter (gpu/README.md, "Limits"): sums over 2^24 elements, reduced axes of 2^17 and more,
 * a batch of 1024 images, a 260x260 pooling window, a matmul with k = 2^18, a deep LRN. Each
 * result is checked against a float64 sum computed here or the CPU device.
 *
 * Data is made on the GPU (full, ones) where the expected value is known in closed form, so
 * the big cases move little memory; each case stays well under ten seconds on lavapipe.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  adaptiveAvgPool2d,
  argmax,
  avgPool2d,
  conv2d,
  crossEntropy,
  fromArray,
  full,
  localResponseNorm,
  logSoftmax,
  matmul,
  max,
  maxPool2d,
  mean,
  mul,
  ones,
  softmax,
  sub,
  sum,
  type Tensor,
} from "../../mod.ts";
import { setMatmulPath } from "../../gpu/kernels/matmul.ts";
import { setReducePath } from "../../gpu/kernels/reduce.ts";
import { gpuTest } from "../support/gpu_helpers.ts";
import { assertClose } from "../support/close.ts";

/** Deterministic values in [-1, 1) (a sine table, distinct enough to have one maximum). */
function wave(length: number, phase = 0): Float32Array {
  return Float32Array.from({ length }, (_, i) => Math.sin(i * 0.7373 + phase));
}

/** Float64 sums of the rows of a [rows, cols] array. */
function rowSums(values: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r] += values[r * cols + c];
  return out;
}

async function data(t: Tensor): Promise<Float32Array | Int32Array> {
  const values = await t.data() as Float32Array | Int32Array;
  t.dispose();
  return values;
}

gpuTest("sum over 20000 rows gives 20000 in every column", async () => {
  const x = ones([20000, 2], { device: "gpu" });
  assert.deepEqual(await data(sum(x, 0)), new Float32Array([20000, 20000]));
  x.dispose();
});

gpuTest("sums of 2^24 elements: exact for ones, within 1e-5 of float64 for 0.1", async () => {
  const n = 2 ** 24;
  const x = ones([n], { device: "gpu" });
  assert.equal((await data(sum(x)))[0], n);
  x.dispose();
  const tenth = full([4096, 4096], 0.1, { device: "gpu" });
  const expected = Math.fround(0.1) * n; // the float64 sum of 2^24 copies of float32(0.1)
  assertClose(await data(sum(tenth)), [expected], { rtol: 1e-5, atol: 0, what: "sum" });
  // Along each axis too: 4096 outputs of 4096 elements, strided and contiguous.
  const perRow = Math.fround(0.1) * 4096;
  for (const axis of [0, 1]) {
    assertClose(await data(sum(tenth, axis)), new Float64Array(4096).fill(perRow), {
      rtol: 1e-6,
      atol: 0,
      what: `sum over axis ${axis}`,
    });
  }
  tenth.dispose();
});

gpuTest("mean and MSE over [64, 3, 64, 64] (786,432 elements)", async () => {
  const shape = [64, 3, 64, 64];
  const a = full(shape, 0.5, { device: "gpu" }), b = full(shape, 0.25, { device: "gpu" });
  assert.equal((await data(mean(a)))[0], 0.5);
  const d = sub(a, b);
  assert.equal((await data(mean(mul(d, d))))[0], 0.0625);
  for (const t of [a, b, d]) t.dispose();
});

gpuTest("sum, max and argmax over rows of 2^17 + 3 and 70,000 columns", async () => {
  for (const cols of [2 ** 17 + 3, 70000]) {
    const rows = 2;
    const values = wave(rows * cols);
    values[cols - 2] = 5; // row 0: a maximum near the end
    values[cols + 1] = 6; // row 1: one near the start, and a tie later that must not win
    values[2 * cols - 1] = 6;
    const x = fromArray(values, [rows, cols], { device: "gpu" });
    const what = `${cols} columns`;
    assertClose(await data(sum(x, 1)), rowSums(values, rows, cols), {
      rtol: 1e-5,
      atol: 1e-3,
      what: `${what}: sum`,
    });
    assert.deepEqual(await data(max(x, 1)), new Float32Array([5, 6]), `${what}: max`);
    assert.deepEqual(await data(argmax(x)), new Int32Array([cols - 2, 1]), `${what}: argmax`);
    x.dispose();
  }
});

gpuTest(
  "softmax, logSoftmax and crossEntropy over rows of 2^17 columns match the CPU",
  async () => {
    const rows = 2, cols = 2 ** 17;
    const values = wave(rows * cols).map((v) => v * 4);
    const weights = wave(rows * cols, 1);
    const labels = new Int32Array([7, cols - 1]);
    const results: Record<string, (Float32Array | Int32Array)[]> = {};
    for (const device of ["cpu", "gpu"]) {
      const out: (Float32Array | Int32Array)[] = [];
      for (const f of [softmax, logSoftmax] as const) {
        const x = fromArray(values, [rows, cols], { device, requiresGrad: true });
        const y = f(x);
        out.push(await y.data() as Float32Array);
        sum(mul(y, fromArray(weights, [rows, cols], { device }))).backward();
        out.push(await x.grad!.data() as Float32Array);
      }
      const x = fromArray(values, [rows, cols], { device, requiresGrad: true });
      const loss = crossEntropy(x, fromArray(labels, [rows], { device }));
      out.push(await loss.data() as Float32Array);
      loss.backward();
      out.push(await x.grad!.data() as Float32Array);
      results[device] = out;
    }
    const names = ["softmax", "softmax grad", "logSoftmax", "logSoftmax grad", "loss", "loss grad"];
    names.forEach((what, i) =>
      assertClose(results.gpu[i], results.cpu[i], { rtol: 1e-4, atol: 1e-7, what })
    );
  },
);

gpuTest("conv2d bias and weight gradients at batch 1024 of 28x28", async () => {
  const x = ones([1024, 1, 28, 28], { device: "gpu", requiresGrad: true });
  const w = full([2, 1, 3, 3], 0.5, { device: "gpu", requiresGrad: true });
  const bias = full([2], 0.25, { device: "gpu", requiresGrad: true });
  sum(conv2d(x, w, bias)).backward();
  // Every one of the 1024·26·26 outputs adds 1 to each bias and x = 1 to each tap.
  const count = 1024 * 26 * 26;
  assert.deepEqual(await bias.grad!.data(), new Float32Array([count, count]));
  assert.deepEqual(await w.grad!.data(), new Float32Array(18).fill(count));
});

gpuTest("global and adaptive pooling of a 260x260 map", async () => {
  const side = 260, values = wave(2 * side * side);
  values[side * side + 259 * side + 3] = 9; // channel 1's maximum, in its last row
  const x = fromArray(values, [1, 2, side, side], { device: "gpu" });
  const planeMeans = rowSums(values, 2, side * side).map((s) => s / (side * side));
  const tolerance = { rtol: 1e-5, atol: 1e-6 };
  assertClose(await data(adaptiveAvgPool2d(x, 1)), planeMeans, { ...tolerance, what: "global" });
  assertClose(await data(avgPool2d(x, { kernelSize: side })), planeMeans, {
    ...tolerance,
    what: "avgPool2d 260",
  });
  // Global max pooling, and its gradient: 1 at each plane's maximum, 0 elsewhere.
  const xg = fromArray(values, [1, 2, side, side], { device: "gpu", requiresGrad: true });
  const y = maxPool2d(xg, { kernelSize: side });
  const maxima = await y.data();
  assert.equal(maxima[1], 9);
  sum(y).backward();
  const grad = await data(xg.grad!);
  const at = [values.subarray(0, side * side).indexOf(maxima[0]), side * side + 259 * side + 3];
  assert.deepEqual(
    [...grad].flatMap((g, i) => g === 0 ? [] : [[i, g]]),
    at.map((i) => [i, 1]),
  );
  // Adaptive bins of 130x87 (and 86): each the float64 mean of its bin.
  const expected: number[] = [];
  for (let c = 0; c < 2; c++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        const [r0, r1] = [Math.floor(i * side / 2), Math.ceil((i + 1) * side / 2)];
        const [c0, c1] = [Math.floor(j * side / 3), Math.ceil((j + 1) * side / 3)];
        let total = 0;
        for (let r = r0; r < r1; r++) {
          for (let q = c0; q < c1; q++) total += values[(c * side + r) * side + q];
        }
        expected.push(total / ((r1 - r0) * (c1 - c0)));
      }
    }
  }
  assertClose(await data(adaptiveAvgPool2d(x, [2, 3])), expected, { ...tolerance, what: "2x3" });
  x.dispose();
});

gpuTest("matmul with k = 2^18 (texture kernel) and 2^17 (tiled kernel)", async () => {
  for (const [path, k] of [["texture", 2 ** 18], ["tiled", 2 ** 17]] as const) {
    const m = 1, n = 2;
    const a = wave(m * k), b = wave(k * n, 2);
    const expected = new Float64Array(m * n), magnitude = new Float64Array(m * n);
    for (let i = 0; i < m; i++) {
      for (let q = 0; q < k; q++) {
        for (let j = 0; j < n; j++) {
          const product = a[i * k + q] * b[q * n + j];
          expected[i * n + j] += product;
          magnitude[i * n + j] += Math.abs(product);
        }
      }
    }
    setMatmulPath(path);
    try {
      const c = await data(
        matmul(fromArray(a, [m, k], { device: "gpu" }), fromArray(b, [k, n], { device: "gpu" })),
      );
      // float32 products summed in order within slices: bounded by k·eps relative to Σ|a·b|.
      for (let i = 0; i < m * n; i++) {
        const error = Math.abs(c[i] - expected[i]) / magnitude[i];
        assert.ok(error < 1e-6, `${path} k=${k}: element ${i} is ${c[i]}, expected ${expected[i]}`);
      }
    } finally {
      setMatmulPath("auto");
    }
  }
});

gpuTest("LRN over 600 channels (more than one channel block) matches the CPU", async () => {
  const shape = [2, 600, 3, 3], values = wave(2 * 600 * 9);
  const results: Float32Array[] = [];
  for (const device of ["cpu", "gpu"]) {
    const x = fromArray(values, shape, { device, requiresGrad: true });
    const y = localResponseNorm(x, { size: 5 });
    results.push(await y.data() as Float32Array);
    sum(mul(y, fromArray(wave(values.length, 3), shape, { device }))).backward();
    results.push(await x.grad!.data() as Float32Array);
  }
  assertClose(results[2], results[0], { rtol: 1e-5, atol: 1e-6, what: "forward" });
  assertClose(results[3], results[1], { rtol: 1e-4, atol: 1e-6, what: "backward" });
});

gpuTest(
  "the workgroup-tree path (real GPUs' default) gives the same sums, maxima and softmax",
  async () => {
    setReducePath("tree");
    try {
      const x = ones([20000, 2], { device: "gpu" });
      assert.deepEqual(await data(sum(x, 0)), new Float32Array([20000, 20000]));
      x.dispose();
      const tenth = full([4096, 4096], 0.1, { device: "gpu" });
      const expected = Math.fround(0.1) * 2 ** 24;
      assertClose(await data(sum(tenth)), [expected], { rtol: 1e-5, atol: 0, what: "2^24 sum" });
      tenth.dispose();
      const cols = 70000, values = wave(2 * cols);
      values[cols + 5] = NaN;
      const y = fromArray(values, [2, cols], { device: "gpu" });
      const maxima = await data(max(y, 1));
      assert.equal(maxima[0], Math.max(...values.subarray(0, cols)));
      assert.ok(Number.isNaN(maxima[1]), "a NaN wins the maximum");
      y.dispose();
      const rows = 2, long = 2 ** 13;
      const logits = wave(rows * long).map((v) => v * 4);
      const results: Float32Array[] = [];
      for (const device of ["cpu", "gpu"]) {
        const z = fromArray(logits, [rows, long], { device, requiresGrad: true });
        const s = softmax(z);
        results.push(await s.data() as Float32Array);
        sum(mul(s, fromArray(wave(rows * long, 1), [rows, long], { device }))).backward();
        results.push(await z.grad!.data() as Float32Array);
      }
      assertClose(results[2], results[0], { rtol: 1e-4, atol: 1e-8, what: "softmax" });
      assertClose(results[3], results[1], { rtol: 1e-4, atol: 1e-8, what: "softmax grad" });
    } finally {
      setReducePath("auto");
    }
  },
);

gpuTest("a loop a hyperparameter would stretch past MAX_LOOP is refused by name", async (gpu) => {
  const x = ones([1, 1, 200, 200], { device: "gpu", requiresGrad: true });
  // Every input cell lies in up to 150x150 windows of stride 1: the backward gather refuses.
  const y = avgPool2d(x, { kernelSize: 150, stride: 1 });
  assert.throws(
    () => sum(y).backward(),
    /avgPool2d_backward: windows containing an input cell = 22500 loop iterations per invocation, over the GPU kernels' 16384; use a stride closer to the kernel size/,
  );
  // The forward (two passes of at most 150 cells each) is still right: every window's mean is 1.
  assert.deepEqual(await data(y), new Float32Array(51 * 51).fill(1));
  x.dispose();
  await gpu.runtime.checkErrors();
});
