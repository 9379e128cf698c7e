/**
 * Errors a GPU user meets must say what went wrong: a WGSL error names its kernel, an
 * oversize allocation names the tensor length and the limit, float64 is refused by name.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fromArray, zeros } from "../../tensor/tensor.ts";
import { packParams } from "../../gpu/runtime.ts";
import { gpuTest } from "../support/gpu_helpers.ts";

gpuTest("a WGSL error names the kernel", async (gpu) => {
  const rt = gpu.runtime;
  const out = rt.alloc("float32", 4);
  rt.dispatch(
    {
      name: "deliberately_broken",
      code: "@compute @workgroup_size(1) fn main() { let x: f32 = undefinedThing; }",
    },
    [],
    [out],
    null,
    1,
  );
  await assert.rejects(rt.checkErrors(), /gpu kernel "deliberately_broken" failed to compile/);
  rt.free(out);
  // The runtime keeps working after the error was reported.
  const y = rt.fillBits("float32", 3, 0);
  assert.deepEqual([...await rt.read(y)], [0, 0, 0]);
  rt.free(y);
});

gpuTest("an allocation beyond maxBufferSize names the length and the limit", (gpu) => {
  const length = Math.ceil(gpu.runtime.maxBufferBytes / 4) + 1;
  assert.throws(
    () => zeros([length], { device: "gpu" }),
    (e: Error) =>
      e.message.includes(`${length} elements`) &&
      e.message.includes(`maxBufferSize of ${gpu.runtime.maxBufferBytes}`),
  );
  return Promise.resolve();
});

gpuTest("float64 is refused with a clear error", (gpu) => {
  assert.throws(
    () => fromArray(new Float64Array(4), [4], { device: "gpu" }),
    /gpu: float64 is not supported; use float32/,
  );
  assert.throws(() => zeros([2], { device: "gpu", dtype: "float64" }), /float64 is not supported/);
  const x = fromArray(new Float32Array(2), [2], { device: "gpu" });
  assert.throws(() => gpu.cast(x.storage, "float64"), /float64 is not supported/);
  x.dispose();
  return Promise.resolve();
});

gpuTest("using freed storage is an error", async (gpu) => {
  const s = gpu.fromArray(new Float32Array([1, 2]));
  gpu.free(s);
  await assert.rejects(gpu.read(s), /was freed/);
  assert.throws(() => gpu.unary("relu", s), /was freed/);
});

gpuTest("oversized grids and bad params are named", (gpu) => {
  const rt = gpu.runtime;
  const out = rt.alloc("float32", 1);
  const kernel = { name: "grid_check", code: "@compute @workgroup_size(1) fn main() {}" };
  assert.throws(() => rt.dispatch3(kernel, [], [out], null, [70000, 1, 1]), /grid_check.*70000/);
  assert.throws(() => packParams([-1]), /not a u32/);
  rt.free(out);
  return Promise.resolve();
});

gpuTest("int32 <-> float32 casts and int32 data round-trip", async (gpu) => {
  const ints = gpu.fromArray(new Int32Array([-3, 0, 7, 2147483647]));
  assert.deepEqual([...await gpu.read(ints)], [-3, 0, 7, 2147483647]);
  const floats = gpu.cast(gpu.fromArray(new Float32Array([-2.7, 0.2, 3.9])), "int32");
  assert.deepEqual([...await gpu.read(floats)], [-2, 0, 3]);
  const back = gpu.cast(gpu.fromArray(new Int32Array([5, -6])), "float32");
  assert.deepEqual([...await gpu.read(back)], [5, -6]);
  const filled = gpu.full(3, -4, "int32");
  assert.deepEqual([...await gpu.read(filled)], [-4, -4, -4]);
});
