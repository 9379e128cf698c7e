// This file deliberately does not import mod.ts: it checks what happens before the CPU backend
// is registered, and that registering it is all a program needs.
import assert from "node:assert/strict";
import { getBackend, registerBackend, unregisterBackend, zeros } from "../../tensor/tensor.ts";
import { cpuBackend } from "../../cpu/backend.ts";

Deno.test("a tensor made before any backend is registered says to import mod.ts", () => {
  assert.throws(
    () => zeros([2]),
    /no backend registered for "cpu": import mod\.ts, which registers it/,
  );
  assert.throws(
    () => getBackend("gpu"),
    /no backend registered for "gpu": call `await initWebGPU\(\)`/,
  );
  // The reference device is registered by tensor/ itself: it exists before any entry point.
  assert.deepEqual([...zeros([2], { device: "ref" }).dataSync()], [0, 0]);
  assert.throws(() => unregisterBackend("ref"), /the ref backend cannot be removed/);
  registerBackend(cpuBackend);
  assert.equal(getBackend("cpu"), cpuBackend);
  assert.deepEqual([...zeros([2]).dataSync()], [0, 0]);
  assert.throws(() => unregisterBackend("cpu"), /the cpu backend cannot be removed/);
});
