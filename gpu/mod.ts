/**
 * The public entry to the WebGPU backend.
 *
 * ```ts
 * import { initWebGPU } from "./mod.ts";
 * import { randn, sum } from "../mod.ts";
 * await initWebGPU(); // registers the "gpu" device
 * const x = randn([64, 1000], { device: "gpu" });
 * console.log(await sum(x).item());
 * ```
 *
 * Without WebGPU (no `navigator.gpu`, or no adapter) `initWebGPU` throws a message saying
 * what is missing; the CPU backend keeps working. On Linux the software adapter comes from
 * `mesa-vulkan-drivers` (lavapipe); `DENO_WEBGPU_BACKEND=vulkan` makes its absence a null
 * adapter instead of a much slower OpenGL fallback.
 *
 * @module
 */

import { getBackend, registerBackend } from "../tensor/tensor.ts";
import { checkOptions, declareOptions } from "../tensor/options.ts";
import { GpuBackend } from "./backend.ts";
import { acquireRuntime, hasNavigatorGpu, quietMesaDeviceSelect } from "./device.ts";
import type { GpuMemoryStats } from "./pool.ts";
import type { GpuRuntimeOptions } from "./runtime.ts";

export { GpuBackend } from "./backend.ts";
export {
  type GpuBinding,
  type GpuKernel,
  type GpuRange,
  GpuRuntime,
  type GpuRuntimeOptions,
  GpuStorage,
  type GpuTextureBinding,
} from "./runtime.ts";
export type { GpuMemoryStats } from "./pool.ts";

/** Options of {@link initWebGPU}. */
export interface InitWebGPUOptions {
  /** Device name to register (default "gpu"). */
  name?: string;
  /** Largest binding in bytes (see {@link GpuRuntimeOptions}); tests lower it. */
  maxBindingBytes?: GpuRuntimeOptions["maxBindingBytes"];
}

const INIT_KEYS = declareOptions<InitWebGPUOptions>()("initWebGPU", ["name", "maxBindingBytes"]);

/**
 * Acquires the adapter and device, registers the backend under `options.name` ("gpu") and
 * returns it. Calling it again with the same name returns the registered backend unless
 * options are given (a fresh device is then acquired and replaces it).
 *
 * @example A matrix product on the GPU, checked against the CPU
 * ```ts
 * import assert from "node:assert/strict";
 * import { initWebGPU, matmul, randn } from "../mod.ts";
 *
 * await initWebGPU(); // registers the "gpu" device; throws a clear message without WebGPU
 * const a = randn([64, 32], { seed: 1, device: "gpu" });
 * const b = randn([32, 16], { seed: 2, device: "gpu" });
 * const c = matmul(a, b); // runs as a WGSL kernel
 * assert.equal(c.device, "gpu");
 * // Read back (asynchronously) and compare with the CPU reference.
 * const onCpu = matmul(randn([64, 32], { seed: 1 }), randn([32, 16], { seed: 2 })).dataSync();
 * const values = await c.data();
 * assert.ok(values.every((v, i) => Math.abs(v - onCpu[i]) < 1e-4));
 * ```
 */
export async function initWebGPU(options: InitWebGPUOptions = {}): Promise<GpuBackend> {
  checkOptions("initWebGPU", options, INIT_KEYS);
  const name = options.name ?? "gpu";
  if (typeof name !== "string" || name === "") {
    throw new TypeError(`initWebGPU: name must be a non-empty string, got ${JSON.stringify(name)}`);
  }
  const bytes = options.maxBindingBytes;
  if (bytes !== undefined && (!Number.isSafeInteger(bytes) || bytes < 4)) {
    throw new RangeError(
      `initWebGPU: maxBindingBytes must be an integer >= 4 (bytes), got ${String(bytes)}`,
    );
  }
  const fresh = options.maxBindingBytes !== undefined || options.name !== undefined;
  if (!fresh) {
    try {
      const existing = getBackend(name);
      if (existing instanceof GpuBackend) return existing;
    } catch {
      // not registered yet
    }
  }
  const runtime = await acquireRuntime(options);
  const backend = new GpuBackend(runtime, name);
  registerBackend(backend);
  return backend;
}

/** True when an adapter can be acquired (never throws). */
export async function isWebGPUAvailable(): Promise<boolean> {
  if (!hasNavigatorGpu()) return false;
  quietMesaDeviceSelect();
  try {
    return (await navigator.gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

/** Memory counters of the registered GPU backend `name` (default "gpu"). */
export function gpuMemoryStats(name = "gpu"): GpuMemoryStats {
  const backend = getBackend(name);
  if (!(backend instanceof GpuBackend)) {
    throw new Error(`gpuMemoryStats: "${name}" is not a WebGPU backend`);
  }
  return backend.runtime.memoryStats();
}
