/**
 * What the single-module kernels (ReLU, max-pool, LRN) share: their module instantiated once,
 * on first use, over a memory of its own, and the layout of their arrays in that memory.
 *
 * @module
 */

import { MAX_PAGES } from "./kernels/gemm_kernels.ts";

/** A kernel module's instance: its memory and its exported functions. */
export interface KernelInstance<Exports> {
  memory: WebAssembly.Memory;
  exports: Exports;
}

/**
 * A getter that instantiates the module of `bytes()` on its first call, importing a fresh
 * memory as `env.memory` (growable to {@link MAX_PAGES}), and returns the same instance after.
 */
export function lazyInstance<Exports>(
  bytes: () => Uint8Array<ArrayBuffer>,
): () => KernelInstance<Exports> {
  let instance: KernelInstance<Exports> | null = null;
  return () => {
    if (instance === null) {
      const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
      const module = new WebAssembly.Module(bytes());
      const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
      instance = { memory, exports: exports as unknown as Exports };
    }
    return instance;
  };
}

/**
 * Byte addresses of consecutive arrays of the given counts of 4-byte elements (float32 or
 * int32), each starting on a 64-byte line; grows the memory to hold them all.
 */
export function regions(memory: WebAssembly.Memory, counts: number[]): number[] {
  const at: number[] = [];
  let end = 0;
  for (const count of counts) {
    at.push(end);
    end += Math.ceil((count * 4) / 64) * 64;
  }
  const have = memory.buffer.byteLength;
  if (end > have) memory.grow(Math.ceil((end - have) / 65536));
  return at;
}
