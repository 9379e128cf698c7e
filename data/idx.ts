/**
 * The IDX file format (LeCun's MNIST format, also used by Fashion-MNIST).
 *
 * Layout, all integers big-endian:
 *
 * ```
 * bytes 0-1   0x00 0x00                         magic
 * byte  2     dtype: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
 * byte  3     number of dimensions d
 * 4 .. 4+4d   d sizes, u32 each                 e.g. [60000, 28, 28]
 * then        the values, row-major, big-endian
 * ```
 *
 * The official files are gzipped (`*-ubyte.gz`); the reader detects the gzip magic `1f 8b`
 * and decompresses with the platform's `DecompressionStream`, so no dependency is needed.
 *
 * @module
 */

import { writeFileAtomic } from "../io/atomic.ts";
import { checkArgument } from "../tensor/options.ts";

/** The element types an IDX file can hold, named after their typed arrays. */
export type IdxDtype = "uint8" | "int8" | "int16" | "int32" | "float32" | "float64";

/** The typed array each {@link IdxDtype} decodes to. */
export type IdxData =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Int32Array
  | Float32Array
  | Float64Array;

/** A decoded IDX file: its element type, its dimensions and its values in row-major order. */
export interface IdxArray {
  /** Element type, from byte 2 of the header. */
  dtype: IdxDtype;
  /** Dimension sizes, e.g. `[60000, 28, 28]` for the training images. */
  dims: number[];
  /** The values, native-endian, `dims.reduce(*)` of them. */
  data: IdxData;
}

const DTYPE_CODES: Record<IdxDtype, number> = {
  uint8: 0x08,
  int8: 0x09,
  int16: 0x0b,
  int32: 0x0c,
  float32: 0x0d,
  float64: 0x0e,
};

const DTYPE_SIZES: Record<IdxDtype, number> = {
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  float32: 4,
  float64: 8,
};

function dtypeFromCode(code: number): IdxDtype | undefined {
  return (Object.keys(DTYPE_CODES) as IdxDtype[]).find((d) => DTYPE_CODES[d] === code);
}

function dtypeOf(data: IdxData): IdxDtype {
  if (data instanceof Uint8Array) return "uint8";
  if (data instanceof Int8Array) return "int8";
  if (data instanceof Int16Array) return "int16";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof Float32Array) return "float32";
  return "float64";
}

/** True when `bytes` starts with the gzip magic number `1f 8b` (RFC 1952, section 2.3.1). */
export function isGzip(bytes: Uint8Array): boolean {
  checkArgument("isGzip", "bytes", bytes, "bytes");
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Decompresses a gzip stream; a corrupt or truncated stream is an error naming `name`. */
export async function gunzip(bytes: Uint8Array, name = "<bytes>"): Promise<Uint8Array> {
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new DecompressionStream("gzip"),
    );
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (error) {
    throw new Error(`${name}: not a valid gzip stream (${(error as Error).message})`);
  }
}

/** Compresses `bytes` with gzip (`CompressionStream`), for writing `*.gz` IDX files. */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function describeData(dims: number[]): string {
  if (dims.length >= 3) return "pixel data";
  if (dims.length === 1) return "label data";
  return "data";
}

/**
 * Parses IDX bytes (gzipped or not). `name` is only used in error messages, which say what
 * was expected and what was found, e.g.
 * `train-images-idx3-ubyte.gz: expected 47040000 bytes of pixel data for [60000, 28, 28], found 1200`.
 */
export async function parseIdx(bytes: Uint8Array, name = "<bytes>"): Promise<IdxArray> {
  checkArgument("parseIdx", "bytes", bytes, "bytes");
  const raw = isGzip(bytes) ? await gunzip(bytes, name) : bytes;
  if (raw.length < 4) {
    throw new Error(`${name}: expected an IDX header of at least 4 bytes, found ${raw.length}`);
  }
  if (raw[0] !== 0 || raw[1] !== 0) {
    const hex = Array.from(raw.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new Error(`${name}: bad IDX magic number: expected 00 00 <dtype> <ndim>, found ${hex}`);
  }
  const dtype = dtypeFromCode(raw[2]);
  if (dtype === undefined) {
    throw new Error(
      `${name}: unknown IDX dtype byte 0x${raw[2].toString(16).padStart(2, "0")} ` +
        `(expected one of 08, 09, 0b, 0c, 0d, 0e)`,
    );
  }
  const ndim = raw[3];
  if (ndim === 0) throw new Error(`${name}: IDX header declares 0 dimensions`);
  const headerBytes = 4 + 4 * ndim;
  if (raw.length < headerBytes) {
    throw new Error(
      `${name}: expected a ${headerBytes}-byte header for ${ndim} dimensions, found ${raw.length} bytes`,
    );
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const size = DTYPE_SIZES[dtype];
  const expected = count * size;
  const found = raw.length - headerBytes;
  if (found !== expected) {
    throw new Error(
      `${name}: expected ${expected} bytes of ${describeData(dims)} for [${dims.join(", ")}], ` +
        `found ${found}`,
    );
  }
  return { dtype, dims, data: decodeValues(view, headerBytes, count, dtype) };
}

function decodeValues(view: DataView, offset: number, count: number, dtype: IdxDtype): IdxData {
  switch (dtype) {
    case "uint8":
      return new Uint8Array(
        view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + count),
      );
    case "int8":
      return new Int8Array(
        view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + count),
      );
    case "int16": {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(offset + 2 * i, false);
      return out;
    }
    case "int32": {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(offset + 4 * i, false);
      return out;
    }
    case "float32": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + 4 * i, false);
      return out;
    }
    case "float64": {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(offset + 8 * i, false);
      return out;
    }
  }
}

/** Reads and parses an IDX file (gzipped or not); errors name `path`. */
export async function readIdxFile(path: string): Promise<IdxArray> {
  return parseIdx(await Deno.readFile(path), path);
}

/**
 * Encodes an IDX file. The dtype follows the typed array; `dims` must multiply to its length.
 */
export function encodeIdx(dims: number[], data: IdxData): Uint8Array {
  checkArgument("encodeIdx", "dims", dims, "array");
  checkArgument("encodeIdx", "data", data, "array");
  const count = dims.reduce((a, b) => a * b, 1);
  if (dims.length === 0 || dims.length > 255 || dims.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new RangeError(`encodeIdx: dims must be 1-255 non-negative integers, got [${dims}]`);
  }
  if (count !== data.length) {
    throw new RangeError(
      `encodeIdx: dims [${dims.join(", ")}] hold ${count} values, data has ${data.length}`,
    );
  }
  const dtype = dtypeOf(data);
  const headerBytes = 4 + 4 * dims.length;
  const out = new Uint8Array(headerBytes + count * DTYPE_SIZES[dtype]);
  const view = new DataView(out.buffer);
  out[2] = DTYPE_CODES[dtype];
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  if (data instanceof Uint8Array || data instanceof Int8Array) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.length), headerBytes);
    return out;
  }
  for (let i = 0; i < count; i++) {
    const at = headerBytes + i * DTYPE_SIZES[dtype];
    switch (dtype) {
      case "int16":
        view.setInt16(at, data[i], false);
        break;
      case "int32":
        view.setInt32(at, data[i], false);
        break;
      case "float32":
        view.setFloat32(at, data[i], false);
        break;
      case "float64":
        view.setFloat64(at, data[i], false);
        break;
    }
  }
  return out;
}

/**
 * Writes an IDX file, gzipped when `path` ends in `.gz`. Atomic: a crash leaves the old file
 * or the new one, never half of one.
 */
export async function writeIdxFile(path: string, dims: number[], data: IdxData): Promise<void> {
  checkArgument("writeIdxFile", "path", path, "string");
  const encoded = encodeIdx(dims, data);
  await writeFileAtomic(path, path.endsWith(".gz") ? await gzip(encoded) : encoded);
}
