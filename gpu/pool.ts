/**
 * A pool of storage buffers keyed by size class.
 *
 * Creating a GPUBuffer costs a driver call and a zeroing pass, and dropping one leaves it to a
 * garbage collector that runs too late (gpu/README.md: 6 GB of RSS after 1,500 forgotten 4 MB
 * buffers). A training step allocates the same sizes every time, so freed buffers go back to
 * a free list per size class and the next step takes them from there: after the first step
 * no buffer is created at all, and memory stays flat.
 *
 * Reusing a buffer right after `free` is safe without fences: every use is recorded on the
 * one queue, and WebGPU orders a later dispatch after an earlier one that read the old
 * contents. (Host writes are the exception; the runtime flushes recorded work before a
 * `writeBuffer`, see runtime.ts.)
 *
 * @module
 */

/** Memory counters of a pool, in bytes and buffers. */
export interface GpuMemoryStats {
  /** Bytes of buffers handed out and not yet freed (size-class bytes, not requested bytes). */
  bytesInUse: number;
  /** Bytes of freed buffers waiting in the pool for reuse. */
  bytesPooled: number;
  /** Buffers handed out and not yet freed. */
  liveBuffers: number;
  /** Buffers waiting in the pool. */
  pooledBuffers: number;
}

/**
 * The size class of a request: at least 16 bytes, a power of two up to 4 KiB, then the next of
 * 2^k · {1, 1.25, 1.5, 1.75}. At most 25% is wasted, and the number of distinct classes
 * (hence of buffers that sit in the pool unused) stays small.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= 16) return 16;
  if (bytes <= 4096) return 2 ** Math.ceil(Math.log2(bytes));
  const base = 2 ** Math.floor(Math.log2(bytes));
  for (const step of [1, 1.25, 1.5, 1.75, 2]) {
    if (base * step >= bytes) return base * step;
  }
  return base * 2;
}

/** Storage buffers recycled by size class. */
export class BufferPool {
  readonly #device: GPUDevice;
  readonly #maxBufferSize: number;
  readonly #free = new Map<number, GPUBuffer[]>();
  readonly #freeTextures = new Map<string, GPUTexture[]>();
  #stats: GpuMemoryStats = { bytesInUse: 0, bytesPooled: 0, liveBuffers: 0, pooledBuffers: 0 };

  /** A pool that creates buffers on `device`, none larger than `maxBufferSize` bytes. */
  constructor(device: GPUDevice, maxBufferSize: number) {
    this.#device = device;
    this.#maxBufferSize = maxBufferSize;
  }

  /**
   * A buffer of at least `bytes` bytes (STORAGE | COPY_SRC | COPY_DST), reused when the pool
   * has one of the same class. Its contents are undefined.
   */
  acquire(bytes: number): GPUBuffer {
    let size = sizeClass(bytes);
    // Near the limit the class may overshoot it; the exact size (rounded to 16) still fits.
    if (size > this.#maxBufferSize) size = Math.ceil(bytes / 16) * 16;
    const list = this.#free.get(size);
    const s = this.#stats;
    let buffer = list?.pop();
    if (buffer) {
      s.bytesPooled -= size;
      s.pooledBuffers--;
    } else {
      buffer = this.#device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
    }
    s.bytesInUse += size;
    s.liveBuffers++;
    return buffer;
  }

  /** Returns a buffer obtained from {@link acquire} for reuse. */
  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, list = []);
    list.push(buffer);
    const s = this.#stats;
    s.bytesInUse -= size;
    s.liveBuffers--;
    s.bytesPooled += size;
    s.pooledBuffers++;
  }

  /**
   * An rgba32float texture of `width` x `height` texels usable as a storage texture and a
   * sampled texture (the software matmul's operands), reused by size. Counted in the stats as
   * a buffer of 16 bytes per texel.
   */
  acquireTexture(width: number, height: number): GPUTexture {
    const key = `${width}x${height}`;
    const bytes = width * height * 16;
    const s = this.#stats;
    let texture = this.#freeTextures.get(key)?.pop();
    if (texture) {
      s.bytesPooled -= bytes;
      s.pooledBuffers--;
    } else {
      texture = this.#device.createTexture({
        size: [width, height],
        format: "rgba32float",
        usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.TEXTURE_BINDING,
      });
    }
    s.bytesInUse += bytes;
    s.liveBuffers++;
    return texture;
  }

  /** Returns a texture from {@link acquireTexture} for reuse. */
  releaseTexture(texture: GPUTexture): void {
    const key = `${texture.width}x${texture.height}`;
    let list = this.#freeTextures.get(key);
    if (!list) this.#freeTextures.set(key, list = []);
    list.push(texture);
    const bytes = texture.width * texture.height * 16;
    const s = this.#stats;
    s.bytesInUse -= bytes;
    s.liveBuffers--;
    s.bytesPooled += bytes;
    s.pooledBuffers++;
  }

  /** Destroys every pooled buffer and texture (the ones in use are untouched). */
  trim(): void {
    for (const list of this.#free.values()) for (const buffer of list) buffer.destroy();
    for (const list of this.#freeTextures.values()) for (const texture of list) texture.destroy();
    this.#free.clear();
    this.#freeTextures.clear();
    this.#stats.bytesPooled = 0;
    this.#stats.pooledBuffers = 0;
  }

  /** A snapshot of the counters. */
  stats(): GpuMemoryStats {
    return { ...this.#stats };
  }
}
