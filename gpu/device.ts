/**
 * Acquiring a WebGPU device with the limits tessera needs.
 *
 * The defaults of `requestDevice()` are deliberately small (128 MiB buffers, 256 invocations
 * per workgroup, 8 storage buffers per stage); the adapter usually allows much more. We ask
 * for the adapter's own maxima of the limits that bound our kernels: AlexNet's fc6 weight
 * (9216 x 4096 float32 = 151 MB) needs `maxBufferSize` above 128 MiB, and the register-blocked
 * matmul wants large workgroups. `maxStorageBufferBindingSize` cannot be raised past 128 MiB
 * on lavapipe, which is why kernels bind big buffers in ranges (runtime.ts).
 *
 * @module
 */

import { GpuRuntime, type GpuRuntimeOptions } from "./runtime.ts";

/** The limits raised to the adapter's maxima. */
export const RAISED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxStorageBuffersPerShaderStage",
] as const;

/** True when this runtime exposes `navigator.gpu` (it may still have no adapter). */
export function hasNavigatorGpu(): boolean {
  return typeof navigator !== "undefined" && "gpu" in navigator && navigator.gpu !== undefined;
}

/**
 * Keeps Mesa's Vulkan driver quiet on a Linux machine without a desktop session (a server, a
 * container, CI: no `XDG_RUNTIME_DIR`). There, Mesa's device-selection layer tries to reach a
 * Wayland compositor while the first adapter is created, and libwayland prints
 * `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` twice. Without a session
 * there is no display GPU for the layer to prefer, so it is switched off with
 * `NODEVICE_SELECT=1`, the variable its manifest declares for that; the adapter is the same.
 * Nothing changes when the user set any of these variables, or when the script may not read
 * them (then the two lines appear; setting `NODEVICE_SELECT=1` before `deno run` avoids them).
 */
export function quietMesaDeviceSelect(): void {
  if (typeof Deno === "undefined" || Deno.build.os !== "linux") return;
  const names = ["XDG_RUNTIME_DIR", "NODEVICE_SELECT", "MESA_VK_DEVICE_SELECT"];
  for (const variable of names) {
    if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") return;
    if (Deno.env.get(variable) !== undefined) return;
  }
  Deno.env.set("NODEVICE_SELECT", "1");
}

/** Whether an adapter is a CPU implementation (llvmpipe, lavapipe, SwiftShader, WARP). */
export function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  const fallback =
    (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`;
  return fallback || /llvmpipe|lavapipe|swiftshader|software|warp/i.test(text);
}

/**
 * Requests the high-performance adapter and a device with raised limits, and wraps them in a
 * {@link GpuRuntime}. Throws a message that says what to install when WebGPU is missing.
 */
export async function acquireRuntime(options: GpuRuntimeOptions = {}): Promise<GpuRuntime> {
  if (!hasNavigatorGpu()) throw new Error("WebGPU is not available: navigator.gpu is undefined");
  quietMesaDeviceSelect();
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new Error(
      "WebGPU is not available: requestAdapter() returned null; on Linux install mesa-vulkan-drivers",
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({ requiredLimits });
  return new GpuRuntime(device, adapter.info, isSoftwareAdapter(adapter.info), options);
}
