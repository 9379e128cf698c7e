/**
 * The cpu device's array pool. Freed arrays wait here for the next allocation of the same
 * type and length, as GPU buffers do (gpu/pool.ts): a training step allocates the same sizes
 * every time, and a fresh array costs the operating system a page fault and a zeroing per
 * 4 KiB the first time it is written, which on a busy machine can take longer than the ReLU or
 * LRN written into it (bench/cpu_profile.ts measures it). A reused array is zeroed again, so
 * it looks fresh, except for a kernel's output that the kernel writes in full. The backend
 * calls {@link release} once per storage, when the last tensor sharing it goes
 * (tensor/tensor.ts), and never for an array handed out to a reader (`CpuStorage.data`), who
 * may still hold it. Float32 and int32 arrays of 64 KiB and more come from the heap of
 * cpu/kernels/heap.ts instead, where the kernels' memory is shared.
 *
 * @module
 */

import type { DType, TypedArray } from "../backend/backend.ts";
import { dtypeOf } from "../tensor/ref.ts";

const pool = new Map<string, TypedArray[]>();
const pooled = new WeakSet<TypedArray>();
let pooledBytes = 0;
/** Arrays below this many bytes are left to the garbage collector (cheap to allocate). */
const POOL_MIN_BYTES = 64 * 1024;
/** At most this many bytes wait in the pool; more are left to the garbage collector. */
const POOL_MAX_BYTES = 1 << 30;

const poolKey = (dtype: DType, length: number) => `${dtype}:${length}`;

/**
 * An array of `length` elements of `dtype`: a pooled one when there is one. Zeroed, unless
 * `zeroed` is false (for a kernel that writes every element: a reused array then keeps what
 * it held).
 */
export function allocate(dtype: DType, length: number, zeroed = true): TypedArray {
  const reused = pool.get(poolKey(dtype, length))?.pop();
  if (reused !== undefined) {
    pooled.delete(reused);
    pooledBytes -= reused.byteLength;
    return zeroed ? reused.fill(0) : reused;
  }
  if (dtype === "float64") return new Float64Array(length);
  if (dtype === "int32") return new Int32Array(length);
  // An ordinary ArrayBuffer: the wasm kernels copy operands into their own memory.
  return new Float32Array(length);
}

/** Gives an array no tensor uses any more to the pool (small ones go to the garbage collector). */
export function release(data: TypedArray): void {
  if (data.byteLength < POOL_MIN_BYTES || pooled.has(data)) return;
  if (pooledBytes + data.byteLength > POOL_MAX_BYTES) return;
  const key = poolKey(dtypeOf(data), data.length);
  const list = pool.get(key) ?? [];
  list.push(data);
  pool.set(key, list);
  pooled.add(data);
  pooledBytes += data.byteLength;
}
