/**
 * The GPU's answers at the edges: NaN and int32 semantics (PyTorch's, PLAN.md), labels out of
 * range in crossEntropy, and what every call says after the device is lost.
 *
 * Expected values are PyTorch's rules written out here (relu(NaN) = NaN, a comparison with NaN
 * is false except ne, int32 arithmetic wraps like `Math.imul` / `| 0`), and the CPU device
 * where it already follows them.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  add,
  argmax,
  crossEntropy,
  eq,
  fromArray,
  ge,
  gt,
  le,
  lt,
  max,
  maxPool2d,
  mul,
  ne,
  relu,
  sub,
  sum,
  type Tensor,
} from "../../mod.ts";
import { acquireRuntime } from "../../gpu/device.ts";
import { GpuBackend } from "../../gpu/backend.ts";
import { gpuAvailable, gpuTest } from "../support/gpu_helpers.ts";

async function data(t: Tensor): Promise<Float32Array | Int32Array> {
  return await t.data() as Float32Array | Int32Array;
}

gpuTest("relu(NaN) is NaN and its gradient passes, as in PyTorch", async () => {
  const x = fromArray(new Float32Array([NaN, -1, 2, 0]), [4], {
    device: "gpu",
    requiresGrad: true,
  });
  const y = relu(x);
  assert.deepEqual([...await data(y)], [NaN, 0, 2, 0]);
  sum(y).backward();
  // PyTorch: grad * !(x <= 0), which is 1 at NaN.
  assert.deepEqual([...await data(x.grad!)], [1, 0, 1, 0]);
});

gpuTest("max, max-pool and argmax propagate NaN, as on the CPU", async () => {
  const values = new Float32Array([1, NaN, 3, NaN, 5, 6, 7, 8]);
  for (const device of ["cpu", "gpu"]) {
    const x = fromArray(values, [2, 4], { device });
    assert.deepEqual([...await data(max(x, 1))], [NaN, 8], `${device}: max`);
    const pooled = maxPool2d(fromArray(values, [1, 1, 2, 4], { device }), { kernelSize: 2 });
    assert.deepEqual([...await data(pooled)], [NaN, NaN], `${device}: maxPool2d`);
  }
  // PyTorch's argmax returns the first NaN (the CPU reference follows once the semantics
  // branch lands; then this can join the loop above).
  const x2 = fromArray(values, [2, 4], { device: "gpu" });
  assert.deepEqual([...await data(argmax(x2))], [1, 3]);
  // Long rows take the tree kernels: the first NaN still wins, wherever it lies.
  const cols = 70000, long = new Float32Array(cols).fill(1);
  long[50000] = NaN;
  long[60000] = NaN;
  long[100] = 2;
  const x = fromArray(long, [1, cols], { device: "gpu" });
  assert.deepEqual([...await data(argmax(x))], [50000]);
  assert.deepEqual([...await data(max(x, 1))], [NaN]);
});

gpuTest("comparisons with NaN are false except ne, on the GPU as on the CPU", async () => {
  const a = new Float32Array([NaN, 1, NaN, 2]), b = new Float32Array([1, NaN, NaN, 2]);
  for (const op of [eq, ne, gt, ge, lt, le]) {
    const results = [];
    for (const device of ["cpu", "gpu"]) {
      const x = fromArray(a, [4], { device }), y = fromArray(b, [4], { device });
      results.push([...await data(op(x, y))]);
    }
    assert.deepEqual(results[1], results[0], op.name);
  }
  const gpuNe = ne(fromArray(a, [4], { device: "gpu" }), fromArray(b, [4], { device: "gpu" }));
  assert.deepEqual([...await data(gpuNe)], [1, 1, 1, 0]);
});

gpuTest("int32 add, sub and mul wrap around two's complement", async () => {
  const a = new Int32Array([2147483647, -2147483648, 65536, 123456789, -7]);
  const b = new Int32Array([1, 1, 65536, 987654321, 3]);
  const x = fromArray(a, [5], { device: "gpu" }), y = fromArray(b, [5], { device: "gpu" });
  const wrap = (f: (p: number, q: number) => number) => [...a].map((p, i) => f(p, b[i]));
  assert.deepEqual([...await data(add(x, y))], wrap((p, q) => (p + q) | 0));
  assert.deepEqual([...await data(sub(x, y))], wrap((p, q) => (p - q) | 0));
  assert.deepEqual([...await data(mul(x, y))], wrap(Math.imul));
});

gpuTest("crossEntropy with a label out of range fails at the next read, naming it", async () => {
  for (const cols of [10, 5000]) { // one workgroup per row, and the long-row kernels
    const logits = fromArray(new Float32Array(2 * cols).fill(1), [2, cols], { device: "gpu" });
    for (const bad of [cols, -1]) {
      const labels = fromArray(new Int32Array([1, bad]), [2], { device: "gpu" });
      const loss = crossEntropy(logits, labels);
      await assert.rejects(
        loss.data(),
        new RegExp(`crossEntropy: label ${bad} \\(row 1\\) is out of range for ${cols} classes`),
      );
    }
    // The composed path (class weights, an ignored label, label smoothing) checks them too; an
    // ignored label outside [0, cols) is no error.
    const bad = fromArray(new Int32Array([1, cols]), [2], { device: "gpu" });
    await assert.rejects(
      crossEntropy(logits, bad, { labelSmoothing: 0.1 }).data(),
      new RegExp(`crossEntropy: label ${cols} \\(row 1\\) is out of range for ${cols} classes`),
    );
    const ignored = fromArray(new Int32Array([1, -100]), [2], { device: "gpu" });
    const kept = (await data(crossEntropy(logits, ignored, { ignoreIndex: -100 })))[0];
    assert.ok(Math.abs(kept - Math.log(cols)) < 1e-5, `loss ${kept}, expected log(${cols})`);
    // The flag is cleared: good labels work again and give log(cols).
    const good = crossEntropy(
      logits,
      fromArray(new Int32Array([0, cols - 1]), [2], { device: "gpu" }),
    );
    const value = (await data(good))[0];
    assert.ok(Math.abs(value - Math.log(cols)) < 1e-5, `loss ${value}, expected log(${cols})`);
  }
});

Deno.test({
  name: "after the device is lost, every call says so and what to do",
  ignore: !gpuAvailable,
  async fn() {
    const runtime = await acquireRuntime();
    const gpu = new GpuBackend(runtime, "gpu-lost");
    const kept = gpu.full(8, 1, "float32");
    assert.deepEqual(await gpu.read(kept), new Float32Array(8).fill(1));
    runtime.device.destroy();
    await runtime.device.lost;
    const lost = /the WebGPU device was lost \(reason: destroyed.*--resume.*--device cpu/;
    assert.throws(() => gpu.full(8, 2, "float32"), lost);
    assert.throws(() => gpu.fromArray(new Float32Array(4)), lost);
    assert.throws(() => gpu.unary("relu", kept), lost);
    await assert.rejects(gpu.read(kept), lost);
    await assert.rejects(runtime.sync(), lost);
  },
});
