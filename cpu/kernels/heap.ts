/**
 * The heap of a kernel engine's WebAssembly memory: where the cpu device's tensors live, so
 * the kernels read and write them in place instead of copying them in and out on every call
 * (cpu/kernels/operands.ts decides, per operand, which it can do).
 *
 * The memory starts with the engine's control area; the heap hands out 64-byte-aligned blocks
 * after it. A freed block waits in a list of its exact size for the next request of that size
 * (a training step asks for the same sizes every time, as cpu/pool.ts explains); a request no
 * list and no growth of the memory can serve first merges the free blocks that touch and takes
 * the first large enough. Every block has {@link GUARD_BYTES} after it: the gemm's edge tiles
 * load whole vectors past a matrix's last column (and ignore the extra lanes), and a matrix at
 * the end of the memory must not make that a trap.
 *
 * Only a shared memory holds tensors: growing it leaves every view of it valid, where growing
 * an ordinary memory detaches its buffer and would empty every tensor at once. Tensors take
 * blocks below {@link TENSOR_SHARE} of the memory's limit (a request's `ceiling`), so the
 * kernels' own scratch (copies of operands that live elsewhere, packed panels) always finds
 * the rest; past it, the device allocates ordinary arrays, and the kernels copy them as they
 * always could. The garbage collector does not see the memory behind a tensor that nobody
 * disposed (its array is a small view): such a tensor keeps its block until the collector
 * runs for other reasons, which the ordinary arrays allocated past the share provide.
 *
 * @module
 */

/** Extra bytes after every block (see the module comment). */
export const GUARD_BYTES = 64;

/** The share of the memory's limit that tensors may take (the rest is for scratch). */
export const TENSOR_SHARE = 0.5;

const PAGE = 65536;
const line = (bytes: number) => Math.ceil(bytes / 64) * 64;

/** Which heap a buffer of a memory belongs to (every buffer object the memory has given). */
const owners = new WeakMap<ArrayBufferLike, Heap>();

/** The heap whose memory holds `array`, or null for an ordinary array. */
export function heapOf(array: ArrayBufferView): Heap | null {
  return owners.get(array.buffer) ?? null;
}

/** Blocks of a WebAssembly memory, from `start` to `limitBytes`. */
export class Heap {
  readonly memory: WebAssembly.Memory;
  readonly limitBytes: number;
  #top: number;
  #free = new Map<number, number[]>();
  #freeBytes = 0;
  #usedBytes = 0;
  /** Blocks handed out: address → block size. */
  #live = new Map<number, number>();

  /** A heap over `memory` from byte `start` (64-byte aligned) up to `limitBytes`. */
  constructor(memory: WebAssembly.Memory, start: number, limitBytes: number) {
    this.memory = memory;
    this.limitBytes = limitBytes;
    this.#top = line(start);
    this.buffer();
  }

  /** The memory's buffer now (after a growth, a new object: it is registered as this heap's). */
  buffer(): ArrayBufferLike {
    const buffer = this.memory.buffer;
    if (!owners.has(buffer)) owners.set(buffer, this);
    return buffer;
  }

  /** Bytes in blocks handed out and not yet released. */
  get usedBytes(): number {
    return this.#usedBytes;
  }

  /** The block size of a request of `bytes` (what {@link release} must be given back). */
  static blockBytes(bytes: number): number {
    return line(Math.max(bytes, 1)) + GUARD_BYTES;
  }

  /**
   * The byte address of a block of at least `bytes`, its contents unspecified, or null when the
   * blocks in use would pass `ceiling` bytes of memory (by default the limit).
   */
  allocate(bytes: number, ceiling = this.limitBytes): number | null {
    const size = Heap.blockBytes(bytes);
    const at = this.#reuse(size, ceiling) ?? this.#bump(size, ceiling) ??
      (this.#merge(), this.#firstFit(size, ceiling) ?? this.#bump(size, ceiling));
    if (at === null) return null;
    this.#usedBytes += size;
    this.#live.set(at, size);
    return at;
  }

  /** Gives back the block at `at` that a request of `bytes` got (once). */
  release(at: number, bytes: number): void {
    const size = Heap.blockBytes(bytes);
    if (this.#live.get(at) !== size) {
      throw new Error(`heap: no block of ${size} bytes is in use at ${at} (released twice?)`);
    }
    this.#live.delete(at);
    this.#usedBytes -= size;
    this.#push(at, size);
  }

  #push(at: number, size: number) {
    const list = this.#free.get(size);
    if (list === undefined) this.#free.set(size, [at]);
    else list.push(at);
    this.#freeBytes += size;
  }

  /** The latest freed block of exactly `size` that ends by `ceiling`, or null. */
  #reuse(size: number, ceiling: number): number | null {
    const list = this.#free.get(size) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i] + size > ceiling) continue;
      const at = list[i];
      list.splice(i, 1);
      this.#freeBytes -= size;
      return at;
    }
    return null;
  }

  /** A block at the top, growing the memory when needed; null past `ceiling`. */
  #bump(size: number, ceiling: number): number | null {
    const end = this.#top + size;
    if (end > Math.min(ceiling, this.limitBytes)) return null;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      try {
        this.memory.grow(Math.ceil((end - have) / PAGE));
      } catch {
        return null; // the engine could not commit the pages: as if past the limit
      }
    }
    this.buffer();
    const at = this.#top;
    this.#top = end;
    return at;
  }

  /** Merges free blocks that touch; a free run ending at the top lowers the top. */
  #merge() {
    if (this.#freeBytes === 0) return;
    const blocks: [number, number][] = [];
    for (const [size, list] of this.#free) for (const at of list) blocks.push([at, size]);
    blocks.sort((a, b) => a[0] - b[0]);
    this.#free.clear();
    this.#freeBytes = 0;
    const merged: [number, number][] = [];
    for (const [at, size] of blocks) {
      const last = merged[merged.length - 1];
      if (last !== undefined && last[0] + last[1] === at) last[1] += size;
      else merged.push([at, size]);
    }
    const last = merged[merged.length - 1];
    if (last[0] + last[1] === this.#top) {
      this.#top = last[0];
      merged.pop();
    }
    for (const [at, size] of merged) this.#push(at, size);
  }

  /** The first free block of at least `size` that ends by `ceiling` (its rest stays free). */
  #firstFit(size: number, ceiling: number): number | null {
    for (const [have, list] of this.#free) {
      if (have < size) continue;
      const i = list.findIndex((at) => at + size <= ceiling);
      if (i < 0) continue;
      const [at] = list.splice(i, 1);
      this.#freeBytes -= have;
      if (have > size) this.#push(at + size, have - size);
      return at;
    }
    return null;
  }
}
