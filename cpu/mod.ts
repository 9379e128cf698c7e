/**
 * The cpu device, registered: importing this module makes "cpu" (the default device) exist.
 * Every entry point of the package (mod.ts, models/alexnet.ts) imports it, so this is the one
 * place the CPU backend is registered. Its two settings, the SIMD tier of the WebAssembly
 * kernels and the number of threads they run on, are read and changed with {@link cpuOptions}
 * and {@link setCpuOptions}.
 *
 * @module
 */

import { registerBackend } from "../backend/registry.ts";
import { checkArgument, checkOptions, declareOptions } from "../tensor/options.ts";
import { cpuBackend } from "./backend.ts";
import {
  getThreads,
  prepareGemm,
  setSimdTier,
  setThreads,
  type SimdTier,
  simdTier,
  threadCount,
} from "./kernels/gemm.ts";

registerBackend(cpuBackend);

export { cpuBackend } from "./backend.ts";
export type { SimdTier };

/** The cpu device's settings, as {@link cpuOptions} reports them. */
export interface CpuOptions {
  /**
   * The WebAssembly kernels' instruction set: "relaxed-simd" (fused multiply-add) or "simd";
   * "none" where the JavaScript engine compiles no SIMD, and the cpu device then runs the
   * reference kernels of tensor/ops/ (as device "ref" does).
   */
  simd: SimdTier | "none";
  /**
   * Threads the float32 kernels (matmul, linear, conv2d forward and both gradients, ReLU, LRN,
   * max-pooling, the SGD update) run on: the main thread and threads − 1 workers on one shared
   * memory. By default every core where SharedArrayBuffer exists (Deno, a cross-origin-isolated
   * page), else 1.
   */
  threads: number;
}

/** What {@link setCpuOptions} accepts; each key is optional. */
export interface SetCpuOptions {
  /** A SIMD tier this engine compiles, or "auto" for the best one (the default). */
  simd?: SimdTier | "auto";
  /**
   * An integer from 1 to 64, or "auto" (the default: `navigator.hardwareConcurrency`). Where
   * SharedArrayBuffer is missing the kernels stay on one thread. Results are the same bits on
   * any number of threads. Idle workers end by themselves: a program ends when its work does.
   */
  threads?: number | "auto";
  /**
   * Where the workers' script is, for code bundled for a browser: bundle
   * `cpu/kernels/gemm_worker.ts` beside the page and pass its URL.
   */
  workerUrl?: URL | string;
}

const SET_CPU_KEYS = declareOptions<SetCpuOptions>()("setCpuOptions", [
  "simd",
  "threads",
  "workerUrl",
]);

/**
 * The cpu device's settings now.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cpuOptions } from "../mod.ts";
 *
 * const { simd, threads } = cpuOptions();
 * assert.ok(["relaxed-simd", "simd", "none"].includes(simd));
 * assert.ok(threads >= 1); // every core by default, where SharedArrayBuffer exists
 * ```
 */
export function cpuOptions(): CpuOptions {
  return { simd: simdTier() ?? "none", threads: getThreads() };
}

/**
 * Changes the cpu device's settings. Asynchronous: a second thread must finish starting
 * before it takes work, and the SIMD module is compiled off the main thread where the engine
 * requires it (browsers). Results do not depend on the settings beyond rounding: every tier
 * is proven against the reference, and any number of threads gives the same bits as one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cpuOptions, matmul, setCpuOptions, tensor } from "../mod.ts";
 *
 * await setCpuOptions({ threads: 1 });
 * const a = tensor([[1, 2], [3, 4]]);
 * assert.deepEqual([...matmul(a, a).dataSync()], [7, 10, 15, 22]);
 * assert.equal(cpuOptions().threads, 1);
 * await setCpuOptions({ threads: "auto" }); // back to every core
 * await assert.rejects(() => setCpuOptions({ simd: "avx512" as "simd" }), /simd must be one of/);
 * ```
 */
export async function setCpuOptions(options: SetCpuOptions): Promise<void> {
  checkArgument("setCpuOptions", "options", options, "object");
  checkOptions("setCpuOptions", options, SET_CPU_KEYS);
  if (options.threads !== undefined) threadCount(options.threads); // checked before any change
  if (options.simd !== undefined) setSimdTier(options.simd);
  await prepareGemm(simdTier());
  if (options.threads !== undefined || options.workerUrl !== undefined) {
    await setThreads(options.threads ?? getThreads(), { workerUrl: options.workerUrl });
  }
}
