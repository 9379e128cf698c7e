/**
 * Shared utilities of the GPU tests: one lazily acquired device per test file, and the
 * skip-or-fail rule. Without an adapter the GPU tests are skipped with a message, except in CI
 * (env CI=true), where a missing adapter fails the run: a green CI must mean the GPU was tested.
 *
 * Every test registered with {@link gpuTest} also fails on any uncaptured WebGPU error or WGSL
 * compile error reported while it ran (`GpuRuntime.checkErrors`).
 *
 * @module
 */

import "../../mod.ts"; // registers the CPU backend, as in any program using tessera
import { initWebGPU, type InitWebGPUOptions, isWebGPUAvailable } from "../../gpu/mod.ts";
import type { GpuBackend } from "../../gpu/backend.ts";

const inCI = Deno.env.get("CI") === "true";

/** Whether an adapter is present (resolved once, at import). */
export const gpuAvailable: boolean = await isWebGPUAvailable();

if (!gpuAvailable) {
  if (inCI) {
    throw new Error("CI=true but WebGPU has no adapter: install mesa-vulkan-drivers (lavapipe)");
  }
  console.warn("WebGPU: no adapter; GPU tests are skipped (install mesa-vulkan-drivers)");
}

const devices = new Map<string, Promise<GpuBackend>>();

/**
 * The GPU backend registered under `options.name` ("gpu" by default), acquired on first use
 * and shared by the tests of this file.
 */
export function getGpu(options: InitWebGPUOptions = {}): Promise<GpuBackend> {
  const name = options.name ?? "gpu";
  let device = devices.get(name);
  if (!device) devices.set(name, device = initWebGPU(options));
  return device;
}

/** Registers a GPU test: skipped without an adapter (outside CI), failing on any GPU error. */
export function gpuTest(
  name: string,
  fn: (gpu: GpuBackend) => Promise<void>,
  options: InitWebGPUOptions = {},
): void {
  Deno.test({
    name,
    ignore: !gpuAvailable,
    async fn() {
      const gpu = await getGpu(options);
      try {
        await fn(gpu);
      } finally {
        await gpu.runtime.checkErrors();
      }
    },
  });
}
