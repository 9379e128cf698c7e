/**
 * From a torch storage's raw bytes to the values of one tensor: the strided view a tensor is
 * (`x[i, j] = storage[offset + i * stride[0] + j * stride[1]]`), copied out row-major, and
 * torch's element types converted to tessera's three.
 *
 *     torch dtype             tessera dtype   conversion
 *     float32                 float32         none
 *     float64                 float64         none
 *     float16, bfloat16       float32         exact: every half value is a float32 value
 *     int64                   int32           exact, or an error naming the tensor and value
 *     int32, int16, int8      int32           exact
 *     uint8                   int32           exact (0..255, never a float pixel scale)
 *     bool                    int32           0 or 1
 *
 * int32 rather than float32 for the small integer types: they are counts, indices and masks
 * (BatchNorm's `num_batches_tracked` is an int64 scalar), and int32 keeps integer semantics;
 * `loadStateDict` converts to a parameter's float type when it copies.
 *
 * A view is first simplified ("coalesced", as in PyTorch's TensorIterator): dimensions of size
 * 1 are dropped and neighbours that step through memory as one are merged, so a contiguous
 * tensor of any rank becomes a single run and is copied with one `set`; a transposed matrix is
 * two dimensions, read one strided run per row.
 *
 * @module
 */

import { quote } from "./pickle.ts";

/** The element types a torch storage may hold that this reader accepts. */
export type TorchDtype =
  | "float32"
  | "float64"
  | "float16"
  | "bfloat16"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint8"
  | "bool";

/** Bytes per element of each dtype. */
export const ITEMSIZE: Record<TorchDtype, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** The tessera dtype each torch dtype becomes. */
export const OUTPUT_DTYPE: Record<TorchDtype, "float32" | "float64" | "int32"> = {
  float32: "float32",
  float64: "float64",
  float16: "float32",
  bfloat16: "float32",
  int64: "int32",
  int32: "int32",
  int16: "int32",
  int8: "int32",
  uint8: "int32",
  bool: "int32",
};

/** Bytes per element of the converted values. */
export function outputItemsize(dtype: TorchDtype): number {
  return OUTPUT_DTYPE[dtype] === "float64" ? 8 : 4;
}

/** A tensor's view of its storage, in elements. */
export interface StridedView {
  /** Size of each dimension, outermost first. */
  shape: readonly number[];
  /** Elements between neighbours along each dimension. */
  stride: readonly number[];
  /** The storage element of the first value. */
  offset: number;
}

/** An error in the values themselves (an int64 outside int32); the caller names the file. */
export class ConversionError extends Error {}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** True on the little-endian machines (every browser and Deno target) this reader runs on. */
export function isLittleEndianHost(): boolean {
  return LITTLE_ENDIAN_HOST;
}

let halfTable: Float32Array | undefined;

/** float16 bit pattern -> float32 value, all 65,536 of them (exact: IEEE half is a subset). */
function halfToFloat(): Float32Array {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    halfTable[bits] = exponent === 0
      ? sign * fraction * 2 ** -24 // subnormal
      : exponent === 31
      ? (fraction ? NaN : sign * Infinity)
      : sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }
  return halfTable;
}

/** Shape and strides with size-1 dimensions dropped and contiguous neighbours merged. */
export function coalesce(view: StridedView): { shape: number[]; stride: number[] } {
  const shape: number[] = [];
  const stride: number[] = [];
  for (let d = 0; d < view.shape.length; d++) {
    if (view.shape[d] === 1) continue;
    const last = shape.length - 1;
    if (last >= 0 && stride[last] === view.stride[d] * view.shape[d]) {
      shape[last] *= view.shape[d];
      stride[last] = view.stride[d];
    } else {
      shape.push(view.shape[d]);
      stride.push(view.stride[d]);
    }
  }
  if (shape.length === 0) return { shape: [1], stride: [1] };
  return { shape, stride };
}

/**
 * Calls `run(start, step, count, at)` for each row of the view's innermost (coalesced)
 * dimension: `count` elements starting at storage element `start`, `step` apart, written to
 * output elements `at..at+count`. The outer dimensions are walked with an odometer, not a
 * recursion.
 */
function forEachRun(
  view: StridedView,
  run: (start: number, step: number, count: number, at: number) => void,
): void {
  const { shape, stride } = coalesce(view);
  const inner = shape.length - 1;
  const index = new Array<number>(inner).fill(0);
  const total = shape.reduce((a, b) => a * b, 1);
  let start = view.offset;
  for (let at = 0; at < total; at += shape[inner]) {
    run(start, stride[inner], shape[inner], at);
    for (let d = inner - 1; d >= 0; d--) {
      index[d]++;
      start += stride[d];
      if (index[d] < shape[d]) break;
      start -= stride[d] * shape[d];
      index[d] = 0;
    }
  }
}

/** An aligned typed view of `bytes` (a copy only when `bytes` is misaligned for `itemsize`). */
function aligned<T>(
  bytes: Uint8Array,
  itemsize: number,
  make: (buffer: ArrayBuffer, byteOffset: number, length: number) => T,
): T {
  const source = bytes.byteOffset % itemsize === 0 ? bytes : bytes.slice();
  return make(source.buffer as ArrayBuffer, source.byteOffset, source.byteLength / itemsize);
}

/**
 * The values of `view` over a storage whose raw little-endian bytes are `bytes`, row-major, in
 * the tessera dtype: a view into `bytes` when they already lie there in that form (contiguous,
 * aligned, float32, float64 or int32), else a new array, so the caller copies the result
 * (`fromArray` does) before it lets go of `bytes`. The caller has checked that the view stays
 * inside the storage. `name` labels a value error.
 */
export function readView(
  bytes: Uint8Array,
  dtype: TorchDtype,
  view: StridedView,
  name: string,
): Float32Array | Float64Array | Int32Array {
  const count = view.shape.reduce((a, b) => a * b, 1);
  if (dtype === "float32" || dtype === "float64" || dtype === "int32") {
    const Type = dtype === "float32"
      ? Float32Array
      : dtype === "float64"
      ? Float64Array
      : Int32Array;
    const size = Type.BYTES_PER_ELEMENT;
    if (count === 0) return new Type(0);
    const { stride } = coalesce(view);
    if (stride.length === 1 && stride[0] === 1) {
      // Contiguous: the bytes themselves when aligned (PyTorch's zip aligns every record to
      // 64 bytes), else one byte copy (legacy files align nothing).
      const start = bytes.byteOffset + view.offset * size;
      if (start % size === 0) return new Type(bytes.buffer as ArrayBuffer, start, count);
      const out = new Type(count);
      new Uint8Array(out.buffer).set(
        bytes.subarray(start - bytes.byteOffset, start - bytes.byteOffset + count * size),
      );
      return out;
    }
    const out = new Type(count);
    const source = aligned(bytes, size, (b, o, n) => new Type(b, o, n));
    forEachRun(view, (start, step, n, at) => {
      if (step === 1) out.set(source.subarray(start, start + n), at);
      else for (let i = 0; i < n; i++) out[at + i] = source[start + i * step];
    });
    return out;
  }
  if (dtype === "float16" || dtype === "bfloat16") return readHalf(bytes, dtype, view, count);
  if (dtype === "int64") return readInt64(bytes, view, count, name);
  const source = dtype === "int16"
    ? aligned(bytes, 2, (b, o, n) => new Int16Array(b, o, n))
    : dtype === "int8"
    ? new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    : bytes;
  const out = new Int32Array(count);
  if (count === 0) return out;
  const isBool = dtype === "bool";
  forEachRun(view, (start, step, n, at) => {
    for (let i = 0; i < n; i++) {
      const value = source[start + i * step];
      out[at + i] = isBool ? (value !== 0 ? 1 : 0) : value;
    }
  });
  return out;
}

function readHalf(
  bytes: Uint8Array,
  dtype: "float16" | "bfloat16",
  view: StridedView,
  count: number,
): Float32Array {
  const source = aligned(bytes, 2, (b, o, n) => new Uint16Array(b, o, n));
  const out = new Float32Array(count);
  if (count === 0) return out;
  if (dtype === "bfloat16") {
    // bfloat16 is the top half of a float32: shifting the bits back is the exact value.
    const bits = new Uint32Array(out.buffer);
    forEachRun(view, (start, step, n, at) => {
      for (let i = 0; i < n; i++) bits[at + i] = source[start + i * step] << 16;
    });
    return out;
  }
  const table = halfToFloat();
  forEachRun(view, (start, step, n, at) => {
    for (let i = 0; i < n; i++) out[at + i] = table[source[start + i * step]];
  });
  return out;
}

function readInt64(bytes: Uint8Array, view: StridedView, count: number, name: string): Int32Array {
  // Each int64 is two int32 words, low first (little-endian); it fits in int32 exactly when
  // the high word is the low word's sign extension.
  const words = aligned(bytes, 4, (b, o, n) => new Int32Array(b, o, n));
  const out = new Int32Array(count);
  if (count === 0) return out;
  forEachRun(view, (start, step, n, at) => {
    for (let i = 0; i < n; i++) {
      const element = start + i * step;
      const low = words[2 * element];
      const high = words[2 * element + 1];
      if (high !== low >> 31) {
        const value = (BigInt(high) << 32n) | BigInt(low >>> 0);
        throw new ConversionError(
          `tensor ${quote(name)} is int64 and its element ${
            at + i
          } (row-major) is ${value}, outside int32's range; tessera's integer tensors are int32`,
        );
      }
      out[at + i] = low;
    }
  });
  return out;
}
