/**
 * The WebGPU runtime under the GPU backend: device memory ({@link GpuStorage}), compiled and
 * cached kernels, and one command stream that records dispatches and submits them lazily.
 *
 * Why it looks like this:
 * - **Lazy submission.** A dispatch inside an open compute pass costs 40-55 us on lavapipe, one
 *   with its own submit 130-600 us, one that is awaited about 12 ms (gpu/README.md). So dispatches
 *   go into one command encoder / compute pass and are submitted only on a read, a host write,
 *   `flush()`, or every {@link SUBMIT_EVERY} dispatches (to keep the GPU fed). Nothing inside a
 *   training step waits for the GPU.
 * - **Uniform params in a ring.** Each dispatch's small parameter block is copied into a host
 *   staging area at a 256-byte-aligned offset; at submit time the used part is written to a
 *   few reusable uniform buffers with one `writeBuffer` each. No GPUBuffer per dispatch.
 * - **Synchronous dispatch, asynchronous errors.** Ops return tensors synchronously, so
 *   pipelines are created with the synchronous `createComputePipeline` inside a validation
 *   error scope; the scope resolves later and a WGSL error is stored, named after the kernel,
 *   and thrown by the next runtime call (or awaited with {@link GpuRuntime.checkErrors}).
 *   `createComputePipelineAsync` would need every op to be async.
 * - **Big buffers.** A buffer may exceed one binding (maxStorageBufferBindingSize, 128 MiB on
 *   lavapipe). Kernels then bind sub-ranges ({@link GpuRuntime.range}); binding more than
 *   {@link GpuRuntime.maxBindingBytes} throws, naming the kernel.
 * - **Large grids.** More than 65,535 workgroups in one dimension are silently dropped by the
 *   driver; {@link GpuRuntime.dispatch} folds them into a 2-D grid.
 *
 * Memory, the kernel cache and the command stream share the one `GpuRuntime` object's state
 * (the open pass, the uniform ring, the pool). What kernels share beyond it (chunking, index
 * math) is in gpu/chunks.ts.
 *
 * @module
 */

import type { Backend, DType, Storage } from "../backend/backend.ts";
import { BufferPool, type GpuMemoryStats } from "./pool.ts";

/** Dispatches recorded before the runtime submits on its own. */
export const SUBMIT_EVERY = 128;

/** Largest workgroup count per grid dimension (WebGPU's default and lavapipe's limit). */
const MAX_GRID = 65535;

/** Bytes reserved per dispatch in the uniform ring (covers minUniformBufferOffsetAlignment). */
const UNIFORM_SLOT = 256;

/** Bytes of one uniform ring buffer. */
const UNIFORM_CHUNK = 64 * 1024;

/** Invocations per workgroup of the one-element-per-invocation kernels. */
export const WORKGROUP_SIZE = 256;

/** Workgroups that cover `n` elements at {@link WORKGROUP_SIZE} per workgroup. */
export function workgroupsFor(n: number): number {
  return Math.ceil(n / WORKGROUP_SIZE);
}

/**
 * WGSL expression: the linear index of the current workgroup, from the builtins `wid`
 * (workgroup_id) and `nwg` (num_workgroups) of a grid that {@link GpuRuntime.dispatch} may
 * have folded into 2-D.
 */
export const WORKGROUP_INDEX = "(wid.x + wid.y * nwg.x)";

/**
 * The WGSL header of a one-element-per-invocation kernel: declares `main` with the builtins
 * and computes `i`, the element index, from the (possibly folded 2-D) grid.
 */
export const ELEMENT_MAIN = `@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = ${WORKGROUP_INDEX} * ${WORKGROUP_SIZE}u + lid;`;

/** Device memory: `length` elements of float32 or int32 (4 bytes each) in a pooled buffer. */
export class GpuStorage implements Storage {
  /** Set by {@link GpuRuntime.free}; any later use throws. */
  freed = false;

  /** Wraps `buffer` (byte size >= max(16, length*4), a multiple of 16). */
  constructor(
    readonly backend: Backend,
    readonly dtype: DType,
    readonly length: number,
    readonly buffer: GPUBuffer,
  ) {}
}

/** A sub-range of a storage, `length` elements from element `offset`, bound as its own array. */
export interface GpuRange {
  /** The whole storage. */
  readonly storage: GpuStorage;
  /** First element; offset*4 is a multiple of minStorageBufferOffsetAlignment. */
  readonly offset: number;
  /** Elements in the range. */
  readonly length: number;
}

/**
 * An rgba32float texture bound to a kernel: `"sampled"` (read with `textureLoad` from a
 * `texture_2d<f32>`; inputs only) or `"storage"` (a `texture_storage_2d<rgba32float, write>`;
 * outputs only). The software matmul reads its operands this way (gpu/kernels/matmul.ts).
 */
export interface GpuTextureBinding {
  /** The texture. */
  readonly texture: GPUTexture;
  /** How the kernel sees it. */
  readonly mode: "sampled" | "storage";
}

/** What a kernel binding can be: a whole storage, a range of one, or a texture. */
export type GpuBinding = GpuStorage | GpuRange | GpuTextureBinding;

function isTexture(binding: GpuBinding): binding is GpuTextureBinding {
  return "texture" in binding;
}

/** A WGSL compute shader with entry point `main`. `name` appears in every error about it. */
export interface GpuKernel {
  /** Name used in error messages and in the pipeline cache key. */
  name: string;
  /** WGSL source. */
  code: string;
}

/** Options of a {@link GpuRuntime}. */
export interface GpuRuntimeOptions {
  /**
   * Largest binding in bytes; default and maximum `device.limits.maxStorageBufferBindingSize`.
   * Tests lower it (e.g. 1 << 16) so that the chunked paths for big buffers run on small shapes.
   */
  maxBindingBytes?: number;
  /** The backend that owns the storages this runtime creates (set later by gpu/backend.ts). */
  backend?: Backend;
}

interface CompiledKernel {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** Packs parameter words for a uniform block: u32 by default, `{f32}` or `{i32}` otherwise; padded to 16 bytes. */
export function packParams(words: (number | { f32: number } | { i32: number })[]): ArrayBuffer {
  const buffer = new ArrayBuffer(Math.max(16, Math.ceil(words.length / 4) * 16));
  const view = new DataView(buffer);
  words.forEach((word, i) => {
    if (typeof word === "number") {
      if (!Number.isInteger(word) || word < 0 || word > 0xffffffff) {
        throw new RangeError(`packParams: word ${i} = ${word} is not a u32`);
      }
      view.setUint32(i * 4, word, true);
    } else if ("f32" in word) {
      view.setFloat32(i * 4, word.f32, true);
    } else {
      view.setInt32(i * 4, word.i32, true);
    }
  });
  return buffer;
}

/**
 * The device, its kernels and its command stream. Dispatches are recorded into one compute
 * pass and submitted only on a read, a host write, `flush()` or every {@link SUBMIT_EVERY}
 * dispatches, so a training step never waits for the GPU. Pipelines are created
 * synchronously (ops return tensors synchronously); a WGSL validation error is reported by
 * the next runtime call, named after its kernel, or awaited with {@link GpuRuntime.checkErrors}.
 * Buffers larger than one binding are bound in ranges ({@link GpuRuntime.range}), and grids
 * over 65,535 workgroups are folded into two dimensions.
 */
export class GpuRuntime {
  /** The logical device. */
  readonly device: GPUDevice;
  /** What the adapter says it is. */
  readonly adapterInfo: GPUAdapterInfo;
  /** llvmpipe / lavapipe / a fallback adapter: kernels pick their software fast path. */
  readonly isSoftware: boolean;
  /** Largest storage binding in bytes (see {@link GpuRuntimeOptions.maxBindingBytes}). */
  readonly maxBindingBytes: number;
  /** Largest buffer in bytes (`device.limits.maxBufferSize`). */
  readonly maxBufferBytes: number;
  /** Alignment of a storage binding's byte offset. */
  readonly storageOffsetAlignment: number;
  /** The backend whose storages this runtime makes. */
  backend: Backend | null;

  readonly #pool: BufferPool;
  readonly #kernels = new Map<string, CompiledKernel>();
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #recorded = 0;
  readonly #uniformBuffers: GPUBuffer[] = [];
  readonly #uniformHost = new Uint8Array(UNIFORM_CHUNK);
  #uniformChunk = 0;
  #uniformUsed = 0;
  #error: Error | null = null;
  #lost: string | null = null;
  #flags: GpuStorage | null = null;
  #flagsPending = false;
  readonly #flagMessages = new Map<number, (words: Int32Array) => string>();
  readonly #pendingScopes: Promise<void>[] = [];
  readonly #fillKernel: GpuKernel = {
    name: "fill",
    code: `
@group(0) @binding(0) var<storage, read_write> y: array<u32>;
struct Params { n: u32, bits: u32 }
@group(0) @binding(1) var<uniform> params: Params;
${ELEMENT_MAIN}
  if (i < params.n) { y[i] = params.bits; }
}`,
  };

  /** Wraps an acquired device; `gpu/device.ts` does the acquiring. */
  constructor(
    device: GPUDevice,
    adapterInfo: GPUAdapterInfo,
    isSoftware: boolean,
    options: GpuRuntimeOptions = {},
  ) {
    this.device = device;
    this.adapterInfo = adapterInfo;
    this.isSoftware = isSoftware;
    const limit = device.limits.maxStorageBufferBindingSize;
    this.maxBindingBytes = Math.min(limit, options.maxBindingBytes ?? limit);
    this.maxBufferBytes = device.limits.maxBufferSize;
    this.storageOffsetAlignment = device.limits.minStorageBufferOffsetAlignment;
    this.backend = options.backend ?? null;
    this.#pool = new BufferPool(device, this.maxBufferBytes);
    device.addEventListener("uncapturederror", (event) => {
      const error = (event as GPUUncapturedErrorEvent).error;
      this.#error ??= new Error(`gpu: uncaptured WebGPU error: ${error.message}`);
    });
    device.lost.then((info) => {
      this.#lost = lostMessage(info.reason, info.message);
    });
  }

  // ---- errors ------------------------------------------------------------------------------

  /** Throws the first error reported since the last check (device lost, WGSL, validation). */
  #throwIfBroken(): void {
    if (this.#lost) throw new Error(this.#lost);
    if (this.#error) {
      const error = this.#error;
      this.#error = null;
      throw error;
    }
  }

  /**
   * Waits for every pending pipeline validation and the queue, then throws the first error
   * seen (a WGSL error names its kernel, a kernel's flag names its op). Tests call it to fail
   * on any uncaptured error.
   */
  async checkErrors(): Promise<void> {
    this.flush();
    await Promise.all(this.#pendingScopes.splice(0));
    await this.#settle(this.device.queue.onSubmittedWorkDone());
    this.#throwIfBroken();
    await this.#checkFlags();
  }

  /**
   * Awaits `work`; when it fails, gives a device loss a moment to be reported, so that the
   * error names the loss rather than the validation error it caused.
   */
  async #settle<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (error) {
      await Promise.race([this.device.lost, new Promise((resolve) => setTimeout(resolve, 50))]);
      this.#throwIfBroken();
      throw error;
    }
  }

  /**
   * The flag words kernels write when they meet bad data (a label out of range) that they
   * cannot report synchronously: [code, three words of detail], int32, 0 while all is well.
   * A kernel that may set code `code` binds this storage (as `array<atomic<i32>, 4>`) and
   * the runtime, at the next read or sync, throws `describe(words)` if the code was set. The
   * check rides along with the read (the four words are copied into its staging buffer).
   */
  flags(code: number, describe: (words: Int32Array) => string): GpuStorage {
    this.#flagMessages.set(code, describe);
    this.#flags ??= this.zeros("int32", 4);
    this.#flagsPending = true;
    return this.#flags;
  }

  /** Reads the flag words if a kernel since the last check may have set them. */
  async #checkFlags(): Promise<void> {
    if (this.#flagsPending && this.#flags) await this.read(this.#flags);
  }

  /** Throws the flagged error in `words` (and clears the flags), if any. */
  #throwIfFlagged(words: Int32Array): void {
    if (words[0] === 0 || !this.#flags) return;
    this.device.queue.writeBuffer(this.#flags.buffer, 0, new Int32Array(4));
    this.device.queue.submit([]);
    const describe = this.#flagMessages.get(words[0]);
    throw new Error(describe ? describe(words) : `gpu: a kernel raised flag ${words[0]}`);
  }

  // ---- memory ------------------------------------------------------------------------------

  /** New storage from the pool; contents undefined. */
  alloc(dtype: DType, length: number): GpuStorage {
    this.#throwIfBroken();
    if (dtype === "float64") throw new TypeError("gpu: float64 is not supported; use float32");
    if (!Number.isInteger(length) || length < 0) {
      throw new RangeError(`gpu.alloc: length must be a non-negative integer, got ${length}`);
    }
    const bytes = Math.max(16, Math.ceil(length * 4 / 16) * 16);
    if (bytes > this.maxBufferBytes) {
      throw new RangeError(
        `gpu.alloc: a ${dtype} tensor of ${length} elements needs ${bytes} bytes, over the ` +
          `device's maxBufferSize of ${this.maxBufferBytes} bytes`,
      );
    }
    if (!this.backend) throw new Error("gpu: runtime has no backend attached");
    return new GpuStorage(this.backend, dtype, length, this.#pool.acquire(bytes));
  }

  /** New storage with every element's bits set to `bits` (0 for zeros). */
  fillBits(dtype: DType, length: number, bits: number): GpuStorage {
    const out = this.alloc(dtype, length);
    // In binding-sized chunks: fc6's velocity (151 MB) is larger than one binding may be.
    const chunk = this.chunkElements();
    for (let offset = 0; offset < length; offset += chunk) {
      const size = Math.min(chunk, length - offset);
      const target = size === length ? out : this.range(out, offset, size);
      this.dispatch(
        this.#fillKernel,
        [],
        [target],
        packParams([size, bits >>> 0]),
        workgroupsFor(size),
      );
    }
    return out;
  }

  /** New zero-filled storage. */
  zeros(dtype: DType, length: number): GpuStorage {
    return this.fillBits(dtype, length, 0);
  }

  /** Copies host data into `target` (same byte length or less), ordered after recorded work. */
  write(target: GpuStorage, data: Float32Array | Int32Array): void {
    this.#check(target, "write");
    // queue.writeBuffer runs before any command buffer submitted later, so work recorded but
    // not yet submitted (which may read this pooled buffer's previous contents) goes first.
    this.flush();
    this.device.queue.writeBuffer(target.buffer, 0, data as Float32Array<ArrayBuffer>);
    // An (empty) submit releases the staging memory of writeBuffer (gpu/README.md, "Memory").
    this.device.queue.submit([]);
  }

  /** Returns storage to the pool; using it afterwards throws. */
  free(storage: GpuStorage): void {
    if (storage.freed) return;
    storage.freed = true;
    this.#pool.release(storage.buffer);
  }

  /** Reads storage back to the host; several reads started together overlap. */
  async read(source: GpuStorage): Promise<Float32Array | Int32Array> {
    this.#check(source, "read");
    this.#endPass();
    const bytes = source.length * 4;
    // The flag words travel in the same staging buffer, after the data.
    const flagsAt = Math.ceil(bytes / 16) * 16;
    const withFlags = this.#flagsPending && this.#flags !== null;
    this.#flagsPending = false;
    const staging = this.device.createBuffer({
      size: Math.max(16, flagsAt + (withFlags ? 16 : 0)),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const encoder = this.#encoder ?? this.device.createCommandEncoder();
    this.#encoder = null;
    if (bytes > 0) {
      encoder.copyBufferToBuffer(source.buffer, 0, staging, 0, Math.ceil(bytes / 4) * 4);
    }
    if (withFlags) encoder.copyBufferToBuffer(this.#flags!.buffer, 0, staging, flagsAt, 16);
    this.#submit(encoder);
    let copy: ArrayBuffer, flags: Int32Array | null = null;
    try {
      await this.#settle(staging.mapAsync(GPUMapMode.READ));
      // One mapped range for both: WebGPU refuses a second, overlapping getMappedRange.
      const mapped = staging.getMappedRange();
      copy = mapped.slice(0, bytes);
      if (withFlags) flags = new Int32Array(mapped.slice(flagsAt, flagsAt + 16));
      staging.unmap();
    } finally {
      staging.destroy();
    }
    this.#throwIfBroken();
    if (flags) this.#throwIfFlagged(flags);
    return source.dtype === "int32" ? new Int32Array(copy) : new Float32Array(copy);
  }

  /** A pooled rgba32float texture (storage + sampled); release it with {@link releaseTexture}. */
  acquireTexture(width: number, height: number): GPUTexture {
    this.#throwIfBroken();
    return this.#pool.acquireTexture(width, height);
  }

  /** Returns a texture to the pool; work recorded earlier that uses it stays ordered before reuse. */
  releaseTexture(texture: GPUTexture): void {
    this.#pool.releaseTexture(texture);
  }

  /** Memory counters of the buffer pool. */
  memoryStats(): GpuMemoryStats {
    return this.#pool.stats();
  }

  /** Destroys the pooled (free) buffers after submitting recorded work. */
  trim(): void {
    this.flush();
    this.#pool.trim();
  }

  /** A binding of `length` elements of `storage` from element `offset` (see {@link GpuRange}). */
  range(storage: GpuStorage, offset: number, length: number): GpuRange {
    if (offset < 0 || length < 0 || offset + length > storage.length) {
      throw new RangeError(
        `gpu.range: [${offset}, ${offset + length}) outside storage of ${storage.length}`,
      );
    }
    if ((offset * 4) % this.storageOffsetAlignment !== 0) {
      throw new RangeError(
        `gpu.range: byte offset ${offset * 4} is not a multiple of ${this.storageOffsetAlignment}`,
      );
    }
    return { storage, offset, length };
  }

  /**
   * Elements per chunk when a kernel streams over a buffer in ranges: the largest count whose
   * bytes fit one binding and whose byte size keeps every chunk offset aligned.
   */
  chunkElements(): number {
    const align = Math.max(256, this.storageOffsetAlignment) / 4;
    return Math.floor(this.maxBindingBytes / 4 / align) * align;
  }

  #check(storage: GpuStorage, what: string): void {
    this.#throwIfBroken();
    if (storage.freed) {
      throw new Error(`gpu.${what}: storage of ${storage.length} elements was freed`);
    }
  }

  // ---- kernels -----------------------------------------------------------------------------

  #compile(
    kernel: GpuKernel,
    inputs: readonly GpuBinding[],
    outputs: readonly GpuBinding[],
    uniform: boolean,
  ): CompiledKernel {
    // One letter per binding: r(ead) / w(rite) storage, s(ampled) / t(exture storage).
    const kinds = [...inputs, ...outputs].map((b, i) =>
      isTexture(b) ? (b.mode === "sampled" ? "s" : "t") : i < inputs.length ? "r" : "w"
    ).join("");
    const key = `${kernel.name}|${kinds}|${uniform}|${kernel.code}`;
    const cached = this.#kernels.get(key);
    if (cached) return cached;
    const entries: GPUBindGroupLayoutEntry[] = [...kinds].map((kind, binding) => {
      const visibility = GPUShaderStage.COMPUTE;
      if (kind === "s") {
        return { binding, visibility, texture: { sampleType: "unfilterable-float" } };
      }
      if (kind === "t") {
        return {
          binding,
          visibility,
          storageTexture: { access: "write-only", format: "rgba32float" },
        };
      }
      return {
        binding,
        visibility,
        buffer: { type: kind === "r" ? "read-only-storage" : "storage" },
      };
    });
    if (uniform) {
      entries.push({
        binding: kinds.length,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "uniform" },
      });
    }
    const device = this.device;
    device.pushErrorScope("validation");
    const layout = device.createBindGroupLayout({ label: kernel.name, entries });
    const module = device.createShaderModule({ label: kernel.name, code: kernel.code });
    const pipeline = device.createComputePipeline({
      label: kernel.name,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    this.#pendingScopes.push(
      device.popErrorScope().then((error) => {
        if (error) {
          this.#error ??= new Error(
            `gpu kernel "${kernel.name}" failed to compile: ${error.message}`,
          );
        }
      }),
    );
    const compiled = { pipeline, layout };
    this.#kernels.set(key, compiled);
    return compiled;
  }

  /**
   * Records one compute dispatch. Bindings in order: inputs (read-only storage), outputs
   * (read_write storage), then the params as one uniform block if given. A `workgroups`
   * count over 65,535 is folded into a 2-D grid: kernels compute their linear workgroup index
   * as {@link WORKGROUP_INDEX} and ignore indices past their element count.
   */
  dispatch(
    kernel: GpuKernel,
    inputs: readonly GpuBinding[],
    outputs: readonly GpuBinding[],
    params: ArrayBuffer | null,
    workgroups: number,
  ): void {
    if (workgroups <= MAX_GRID) {
      this.dispatch3(kernel, inputs, outputs, params, [workgroups, 1, 1]);
      return;
    }
    const rows = Math.ceil(workgroups / MAX_GRID);
    this.dispatch3(kernel, inputs, outputs, params, [Math.ceil(workgroups / rows), rows, 1]);
  }

  /** Records one dispatch over an explicit grid (each dimension at most 65,535). */
  dispatch3(
    kernel: GpuKernel,
    inputs: readonly GpuBinding[],
    outputs: readonly GpuBinding[],
    params: ArrayBuffer | null,
    grid: [number, number, number],
  ): void {
    this.#throwIfBroken();
    if (grid.some((g) => !Number.isInteger(g) || g < 0 || g > MAX_GRID)) {
      throw new RangeError(
        `gpu kernel "${kernel.name}": grid [${grid}] has a dimension outside 0..${MAX_GRID}`,
      );
    }
    if (grid[0] * grid[1] * grid[2] === 0) return;
    const { pipeline, layout } = this.#compile(kernel, inputs, outputs, params !== null);
    const entries: GPUBindGroupEntry[] = [...inputs, ...outputs].map((binding, i) => ({
      binding: i,
      resource: this.#resource(kernel, binding),
    }));
    if (params !== null) {
      entries.push({ binding: entries.length, resource: this.#uniformSlot(kernel, params) });
    }
    const bindGroup = this.device.createBindGroup({ layout, entries });
    const pass = this.#openPass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    if (++this.#recorded >= SUBMIT_EVERY) this.flush();
  }

  #resource(kernel: GpuKernel, binding: GpuBinding): GPUBindingResource {
    if (isTexture(binding)) return binding.texture.createView();
    const whole = binding instanceof GpuStorage;
    const storage = whole ? binding : binding.storage;
    if (storage.freed) {
      throw new Error(
        `gpu kernel "${kernel.name}": a bound storage of ${storage.length} elements was freed`,
      );
    }
    const offset = whole ? 0 : binding.offset * 4;
    const size = whole
      ? storage.buffer.size
      : Math.max(16, Math.ceil(binding.length * 4 / 16) * 16);
    // A range's rounded size may run past the end of the buffer for the last chunk.
    const bound = Math.min(size, storage.buffer.size - offset);
    if (bound > this.maxBindingBytes) {
      throw new RangeError(
        `gpu kernel "${kernel.name}": binding ${bound} bytes (a storage of ${storage.length} ` +
          `elements) exceeds maxBindingBytes ${this.maxBindingBytes}; the kernel must split it into ranges`,
      );
    }
    return { buffer: storage.buffer, offset, size: bound };
  }

  #uniformSlot(kernel: GpuKernel, params: ArrayBuffer): GPUBufferBinding {
    if (params.byteLength > UNIFORM_SLOT || params.byteLength % 16 !== 0) {
      throw new RangeError(
        `gpu kernel "${kernel.name}": params of ${params.byteLength} bytes; use packParams (at most ${UNIFORM_SLOT})`,
      );
    }
    if (this.#uniformUsed + UNIFORM_SLOT > UNIFORM_CHUNK) this.#stageUniformChunk();
    const offset = this.#uniformUsed;
    this.#uniformHost.set(new Uint8Array(params), offset);
    this.#uniformUsed += UNIFORM_SLOT;
    while (this.#uniformBuffers.length <= this.#uniformChunk) {
      this.#uniformBuffers.push(this.device.createBuffer({
        label: "uniform ring",
        size: UNIFORM_CHUNK,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      }));
    }
    return { buffer: this.#uniformBuffers[this.#uniformChunk], offset, size: params.byteLength };
  }

  /** Writes the used part of the current uniform chunk to its buffer and moves to the next. */
  #stageUniformChunk(): void {
    if (this.#uniformUsed === 0) return;
    // The write is queued now, before the submit of the commands that read it.
    this.device.queue.writeBuffer(
      this.#uniformBuffers[this.#uniformChunk],
      0,
      this.#uniformHost,
      0,
      this.#uniformUsed,
    );
    this.#uniformChunk++;
    this.#uniformUsed = 0;
  }

  #openPass(): GPUComputePassEncoder {
    if (!this.#pass) {
      this.#encoder ??= this.device.createCommandEncoder();
      this.#pass = this.#encoder.beginComputePass();
    }
    return this.#pass;
  }

  #endPass(): void {
    this.#pass?.end();
    this.#pass = null;
  }

  #submit(encoder: GPUCommandEncoder): void {
    this.#stageUniformChunk();
    this.device.queue.submit([encoder.finish()]);
    // Uniform buffers can be rewritten now: later writeBuffers are ordered after this submit.
    this.#uniformChunk = 0;
    this.#recorded = 0;
  }

  /** Submits everything recorded so far (does not wait for it). */
  flush(): void {
    this.#endPass();
    if (this.#encoder) {
      const encoder = this.#encoder;
      this.#encoder = null;
      this.#submit(encoder);
    }
  }

  /** Submits recorded work and resolves when the GPU has finished it (for benchmarks). */
  async sync(): Promise<void> {
    this.flush();
    await this.#settle(this.device.queue.onSubmittedWorkDone());
    this.#throwIfBroken();
    await this.#checkFlags();
  }
}

/**
 * What every call says once the device is gone (a driver reset, a GPU timeout, `destroy()`):
 * why, and what to do. Tensors on the device cannot be recovered, but checkpoints on disk are.
 */
export function lostMessage(reason: string, message: string): string {
  return `gpu: the WebGPU device was lost (reason: ${reason}${
    message ? `; ${message}` : ""
  }), and every tensor on it with it. A training run's last checkpoint on disk is intact: ` +
    `rerun with --resume to continue from it, or with --device cpu to continue on the CPU. ` +
    `In a program of your own, acquire a new device with initWebGPU() and move the tensors again.`;
}
