/**
 * What the kernels share beyond the runtime: splitting work larger than one storage binding
 * into chunks, and the WGSL index of an invocation.
 *
 * A tensor larger than one binding (128 MiB on lavapipe: fc6's weight is 151 MB, AlexNet's
 * conv1 output at batch 128 is 148 MB) is processed a piece at a time:
 * - elementwise kernels take consecutive element ranges ({@link forEachChunk});
 * - kernels that work per sample (conv2d, pooling, LRN) take a few samples at a time
 *   ({@link batchChunks}, {@link bindSamples}, or both at once: {@link dispatchSamples}).
 *
 * @module
 */

import {
  type GpuBinding,
  type GpuKernel,
  type GpuRuntime,
  type GpuStorage,
  packParams,
  WORKGROUP_INDEX,
  workgroupsFor,
} from "./runtime.ts";

/**
 * Runs `body(offset, length)` over consecutive chunks of `[0, length)` small enough that every
 * operand's range fits one binding, with offsets aligned for storage bindings.
 */
export function forEachChunk(
  rt: GpuRuntime,
  length: number,
  body: (offset: number, length: number) => void,
): void {
  const chunk = rt.chunkElements();
  if (length <= chunk) {
    body(0, length);
    return;
  }
  for (let offset = 0; offset < length; offset += chunk) {
    body(offset, Math.min(chunk, length - offset));
  }
}

/**
 * y = kernel(x) element by element, into a new storage of `dtype` (x's by default): one
 * dispatch per chunk ({@link forEachChunk}), binding the chunk of x and of y and the uniform
 * params `paramsOf(n, offset)` for its n elements.
 */
export function mapChunks(
  rt: GpuRuntime,
  kernel: GpuKernel,
  x: GpuStorage,
  paramsOf: (n: number, offset: number) => ArrayBuffer,
  dtype: GpuStorage["dtype"] = x.dtype,
): GpuStorage {
  const y = rt.alloc(dtype, x.length);
  forEachChunk(rt, x.length, (offset, n) => {
    rt.dispatch(
      kernel,
      [rt.range(x, offset, n)],
      [rt.range(y, offset, n)],
      paramsOf(n, offset),
      workgroupsFor(n),
    );
  });
  return y;
}

/** Samples `[start, start + count)` of a batched tensor. */
export interface BatchChunk {
  /** First sample. */
  start: number;
  /** Samples in the chunk. */
  count: number;
}

/**
 * Splits `n` samples into chunks such that each tensor's slice (`perSample[i]` elements per
 * sample) fits one binding, and into at least `minChunks` chunks when `n` allows. Throws,
 * naming `kernel`, when one sample alone is too large.
 */
export function batchChunks(
  rt: GpuRuntime,
  kernel: string,
  n: number,
  perSample: readonly number[],
  minChunks = 1,
): BatchChunk[] {
  // A chunk's binding starts at an aligned offset up to one alignment before its first element.
  const slack = Math.max(256, rt.storageOffsetAlignment);
  const largest = Math.max(...perSample);
  const fit = Math.floor((rt.maxBindingBytes - slack) / (largest * 4));
  if (fit < 1) {
    throw new RangeError(
      `${kernel}: one sample needs ${
        largest * 4
      } bytes, over the ${rt.maxBindingBytes}-byte storage binding limit`,
    );
  }
  const chunks = Math.max(Math.ceil(n / fit), Math.min(n, minChunks));
  const size = Math.ceil(n / chunks);
  const out: BatchChunk[] = [];
  for (let start = 0; start < n; start += size) {
    out.push({ start, count: Math.min(size, n - start) });
  }
  return out;
}

/**
 * Binds samples `chunk` of a tensor with `perSample` elements per sample. Returns the binding
 * and the element offset of the chunk's first element inside it (binding offsets must be
 * aligned; the kernel adds the remainder).
 */
export function bindSamples(
  rt: GpuRuntime,
  storage: GpuStorage,
  perSample: number,
  chunk: BatchChunk,
): { binding: GpuBinding; offset: number } {
  const first = chunk.start * perSample, length = chunk.count * perSample;
  // The whole buffer when it fits one binding (a pooled buffer may be larger than the tensor).
  if (first === 0 && storage.buffer.size <= rt.maxBindingBytes) {
    return { binding: storage, offset: 0 };
  }
  const align = Math.max(256, rt.storageOffsetAlignment) / 4;
  const aligned = Math.floor(first / align) * align;
  return { binding: rt.range(storage, aligned, first - aligned + length), offset: first - aligned };
}

/** A tensor bound by {@link dispatchSamples}: its storage and its elements per sample. */
export interface SampleOperand {
  storage: GpuStorage;
  perSample: number;
}

/**
 * Runs a per-sample kernel over a batch of `n` samples in chunks ({@link batchChunks}): the
 * bindings are [inputs..., outputs...], each bound to the chunk's samples ({@link bindSamples});
 * the params are [invocations, offset of each binding]; and there are `invocationsPerSample`
 * invocations per sample, in workgroups of `workgroupSize`.
 */
export function dispatchSamples(
  rt: GpuRuntime,
  kernel: GpuKernel,
  n: number,
  inputs: SampleOperand[],
  outputs: SampleOperand[],
  invocationsPerSample: number,
  workgroupSize: number,
): void {
  const all = [...inputs, ...outputs];
  for (const chunk of batchChunks(rt, kernel.name, n, all.map((b) => b.perSample))) {
    const bound = all.map((b) => bindSamples(rt, b.storage, b.perSample, chunk));
    const invocations = chunk.count * invocationsPerSample;
    rt.dispatch(
      kernel,
      bound.slice(0, inputs.length).map((b) => b.binding),
      bound.slice(inputs.length).map((b) => b.binding),
      packParams([invocations, ...bound.map((b) => b.offset)]),
      Math.ceil(invocations / workgroupSize),
    );
  }
}

/**
 * Most iterations one invocation's loops may run in total. The software adapter silently ends
 * an invocation after about 65,535 (gpu/README.md, "Limits"), so kernels whose loops follow a
 * size the user chooses split the work below this or refuse it ({@link checkLoop}).
 */
export const MAX_LOOP = 16384;

/** Throws, naming the kernel, `what` and `advice`, when a loop would run past {@link MAX_LOOP}. */
export function checkLoop(kernel: string, what: string, iterations: number, advice: string): void {
  if (iterations > MAX_LOOP) {
    throw new RangeError(
      `${kernel}: ${what} = ${iterations} loop iterations per invocation, over the GPU kernels' ` +
        `${MAX_LOOP}; ${advice}`,
    );
  }
}

/** Throws unless every index a kernel computes stays below 2^31 (it uses i32 arithmetic). */
export function checkIndexRange(kernel: string, what: string, value: number): void {
  if (value >= 2 ** 31) {
    throw new RangeError(`${kernel}: ${what} = ${value} overflows the kernel's 32-bit indices`);
  }
}

/**
 * WGSL function `linearIndex(wid, nwg, lid)`: the index of the current invocation, for
 * kernels of `workgroupSize` invocations per workgroup, in a grid the runtime may have folded
 * into 2-D (see `GpuRuntime.dispatch`).
 */
export function linearIndexWgsl(workgroupSize: number): string {
  return `fn linearIndex(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return ${WORKGROUP_INDEX} * ${workgroupSize}u + lid;
}`;
}
