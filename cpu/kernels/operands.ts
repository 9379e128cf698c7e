/**
 * Where one kernel call finds its operands in the engine's WebAssembly memory. A tensor the
 * cpu device allocated lives in that memory (cpu/kernels/heap.ts), and the kernel reads or
 * writes it where it is; any other array (a float32 array a caller made, a tensor the heap had
 * no room for) is copied into the call's scratch before the job, and an output copied out
 * after it. The kernels cannot tell the difference: they get byte addresses either way.
 *
 * An output used in place must not overlap an input used in place (the job would read what it
 * already wrote); it is then copied like any other array. {@link copyStats} counts the copies.
 *
 * @module
 */

import type { TypedArray } from "../../backend/backend.ts";

/** The engine side of a call: its memory, heap and scratch. */
export interface OperandMemory {
  readonly memory: WebAssembly.Memory;
  /** The byte address of `bytes` of scratch for this call (throws naming `op` when over the limit). */
  scratch(bytes: number, op: string): number;
  /** Whether `array` lives in this memory (then its byteOffset is its address). */
  holds(array: TypedArray): boolean;
}

/** A range of an array: `length` elements from `offset` (default 0). */
interface Range {
  offset?: number;
  length: number;
}

/**
 * How a call uses an operand: reads it, writes all of it, reads then writes it (C += A·B), or
 * a number: that many 4-byte elements of scratch for the kernel's own use.
 */
export type Operand =
  | (Range & { read: TypedArray })
  | (Range & { write: TypedArray })
  | (Range & { update: TypedArray })
  | number;

/**
 * Copies of operands into WebAssembly memory and of outputs out of it: milliseconds and bytes
 * since the last reset, and the milliseconds of the latest call alone (benchmarks report them).
 */
export const copyStats = { ms: 0, bytes: 0, lastMs: 0 };

/** Byte size rounded up to a 64-byte cache line. */
const line = (bytes: number) => Math.ceil(bytes / 64) * 64;

interface Placed {
  array: TypedArray | null;
  offset: number;
  length: number;
  reads: boolean;
  writes: boolean;
  inPlace: boolean;
}

function describe(operand: Operand): Placed {
  if (typeof operand === "number") {
    return { array: null, offset: 0, length: operand, reads: false, writes: false, inPlace: false };
  }
  const array = "read" in operand
    ? operand.read
    : "write" in operand
    ? operand.write
    : operand.update;
  const reads = !("write" in operand), writes = !("read" in operand);
  return {
    array,
    offset: operand.offset ?? 0,
    length: operand.length,
    reads,
    writes,
    inPlace: false,
  };
}

const start = (p: Placed) => p.array!.byteOffset + 4 * p.offset;
/** Whether two operands in place share a byte (both are in the one memory). */
const overlaps = (a: Placed, b: Placed) =>
  start(a) < start(b) + 4 * b.length && start(b) < start(a) + 4 * a.length;

/** A view of `length` elements of the memory at `at`, of the same type as `like`. */
function viewLike(like: TypedArray, buffer: ArrayBufferLike, at: number, length: number) {
  return like instanceof Int32Array
    ? new Int32Array(buffer, at, length)
    : new Float32Array(buffer, at, length);
}

/**
 * The byte address of every operand of one call, copying in those that do not live in the
 * engine's memory; `finish()` (after the job) copies out the outputs that were copied in.
 * Operands are 4-byte elements (float32 or int32).
 */
export function placeOperands<Name extends string>(
  m: OperandMemory,
  op: string,
  operands: Record<Name, Operand>,
): { at: Record<Name, number>; finish: () => void } {
  const placed = {} as Record<Name, Placed>;
  for (const name in operands) placed[name] = describe(operands[name]);
  const all = Object.values(placed) as Placed[];
  for (const p of all) p.inPlace = p.array !== null && p.length > 0 && m.holds(p.array);
  // An output in place must not overlap an input in place.
  for (const p of all) {
    if (!p.inPlace || !p.writes) continue;
    if (all.some((q) => q !== p && q.inPlace && q.reads && overlaps(p, q))) p.inPlace = false;
  }
  let bytes = 0;
  for (const p of all) if (!p.inPlace) bytes += line(4 * p.length);
  const base = m.scratch(bytes, op);
  const at = {} as Record<Name, number>;
  let next = base;
  const started = performance.now();
  let copied = 0;
  for (const name in placed) {
    const p = placed[name];
    if (p.inPlace) {
      at[name] = start(p);
      continue;
    }
    at[name] = next;
    next += line(4 * p.length);
    if (p.array === null || !p.reads) continue;
    const view = viewLike(p.array, m.memory.buffer, at[name], p.length);
    view.set(p.array.subarray(p.offset, p.offset + p.length));
    copied += p.length;
  }
  const copyInMs = performance.now() - started;
  const finish = () => {
    const from = performance.now();
    let out = 0;
    for (const name in placed) {
      const p = placed[name];
      if (p.inPlace || p.array === null || !p.writes) continue;
      p.array.set(viewLike(p.array, m.memory.buffer, at[name], p.length), p.offset);
      out += p.length;
    }
    copyStats.lastMs = copyInMs + performance.now() - from;
    copyStats.ms += copyStats.lastMs;
    copyStats.bytes += 4 * (copied + out);
  };
  return { at, finish };
}
