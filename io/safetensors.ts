/**
 * Reading and writing safetensors files, the tensor format shared by PyTorch, JAX and the
 * Hugging Face hub.
 *
 * Layout of a file:
 *
 *     [8 bytes]  N, the header length, unsigned 64-bit little-endian
 *     [N bytes]  UTF-8 JSON object, padded with spaces:
 *                { "__metadata__": { string: string },               (optional)
 *                  "name": { "dtype": "F32", "shape": [2, 3],
 *                            "data_offsets": [begin, end] }, ... }
 *     [rest]     the data buffer; each tensor's bytes are data[begin, end), row-major,
 *                little-endian
 *
 * The reader treats the file as untrusted input and applies the rules of the reference
 * implementation (huggingface/safetensors, Rust): the header must start with "{", every byte
 * of the data buffer belongs to exactly one tensor (no overlaps, no gaps, nothing trailing),
 * and each tensor's byte range is exactly product(shape) * itemsize. Every allocation is
 * bounded by the file's own size, so a lying header cannot make the reader allocate more
 * memory than the file occupies, and headers are limited to {@link MAX_HEADER_BYTES} (8 MB,
 * where the reference allows 100 MB), so decoding one costs at most a couple of seconds and
 * a few hundred MB.
 *
 * The writer reproduces the reference's byte layout: tensors ordered by dtype (widest
 * first) then name, packed with no gaps, header padded to 8 bytes. Widest-first packing after
 * an 8-aligned header puts every tensor at an offset that is a multiple of its item size, so
 * readers that map the file can view tensors in place.
 *
 * The writer sits beside the reader whose rules it must satisfy. Most of the code is the
 * reader's validation of untrusted headers: one check per rule above, each with an error that
 * names the tensor and the field.
 *
 * @module
 */

import { writeFileAtomic } from "./atomic.ts";
import { checkArgument } from "../tensor/options.ts";

/** The dtypes tessera reads and writes. */
export type SafetensorsDtype = "F32" | "F64" | "I32" | "U8";

/** One tensor: its dtype, its shape (`[]` for a scalar) and its row-major elements. */
export type TensorEntry = {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | Uint8Array;
};

type TypedArrayConstructor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int32ArrayConstructor
  | Uint8ArrayConstructor;

// `rank` follows the order of the reference's Dtype enum; its writer sorts by it, descending.
const DTYPES: Record<
  SafetensorsDtype,
  { itemsize: number; array: TypedArrayConstructor; rank: number }
> = {
  F64: { itemsize: 8, array: Float64Array, rank: 3 },
  F32: { itemsize: 4, array: Float32Array, rank: 2 },
  I32: { itemsize: 4, array: Int32Array, rank: 1 },
  U8: { itemsize: 1, array: Uint8Array, rank: 0 },
};

// Valid safetensors dtypes that tessera has no typed array for; named so the error can say
// "unsupported" rather than "unknown".
const UNSUPPORTED_DTYPES = new Set(
  "BOOL F4 F6_E2M3 F6_E3M2 I8 F8_E5M2 F8_E4M3 F8_E8M0 I16 U16 F16 BF16 U32 I64 U64 C64".split(" "),
);

/**
 * The largest header tessera decodes, in bytes. The reference allows 100 MB, but decoding a
 * header costs about 10 bytes of memory per header byte whatever the parser (every tensor
 * becomes a few JavaScript objects), so a hostile 100 MB header of empty tensors would take
 * gigabytes. Real headers are far smaller (AlexNet's checkpoint: 3 KB; a 7B-parameter language
 * model: under 100 KB).
 */
export const MAX_HEADER_BYTES = 8_000_000;

const EMPTY = {
  F64: new Float64Array(0),
  F32: new Float32Array(0),
  I32: new Int32Array(0),
  U8: new Uint8Array(0),
} as const;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDtype(value: string): value is SafetensorsDtype {
  return Object.hasOwn(DTYPES, value);
}

/** "151 MB", "1.5 KB", "12 bytes": sizes in error messages, decimal units. */
function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} bytes`;
  const units = ["KB", "MB", "GB", "TB", "PB"];
  let value = bytes;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${Number(value.toPrecision(3))} ${units[unit]}`;
}

function formatShape(shape: readonly unknown[]): string {
  return `[${shape.join(",")}]`;
}

/** Element count of `shape`, or `undefined` when its byte size cannot be a real file. */
function elementCount(shape: readonly number[], itemsize: number): number | undefined {
  if (shape.includes(0)) return 0;
  let count = 1;
  for (const dim of shape) {
    count *= dim;
    if (count * itemsize > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return count;
}

// Plain assignment of the key "__proto__" would change the prototype instead of storing it.
function defineOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function entriesOf(
  tensors: Record<string, TensorEntry> | Map<string, TensorEntry>,
): [string, TensorEntry][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}

// Code-unit order, not localeCompare: the bytes must not depend on the machine's locale.
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Serializes tensors (and optional string metadata) to safetensors bytes. The output depends
 * only on the contents, not on insertion order, and matches what the reference writer
 * produces for the same tensors. Throws if an entry's data does not match its dtype or shape.
 */
export function encodeSafetensors(
  tensors: Record<string, TensorEntry> | Map<string, TensorEntry>,
  metadata?: Record<string, string>,
): Uint8Array {
  checkArgument("encodeSafetensors", "tensors", tensors, "object");
  if (metadata !== undefined) checkArgument("encodeSafetensors", "metadata", metadata, "object");
  const entries = entriesOf(tensors);
  for (const [name, entry] of entries) checkEntryForWrite(name, entry);
  entries.sort(([nameA, a], [nameB, b]) =>
    DTYPES[b.dtype].rank - DTYPES[a.dtype].rank || compareNames(nameA, nameB)
  );

  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    const sorted: Record<string, string> = {};
    for (const [key, value] of Object.entries(metadata).sort(([a], [b]) => compareNames(a, b))) {
      if (typeof value !== "string") {
        throw new TypeError(
          `encodeSafetensors: metadata['${key}'] must be a string, got ${typeof value}`,
        );
      }
      defineOwn(sorted, key, value);
    }
    header.__metadata__ = sorted;
  }
  let offset = 0;
  for (const [name, entry] of entries) {
    const end = offset + entry.data.byteLength;
    defineOwn(header, name, {
      dtype: entry.dtype,
      shape: entry.shape,
      data_offsets: [offset, end],
    });
    offset = end;
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);

  let position = 8 + headerLength;
  for (const [, entry] of entries) {
    writeLittleEndian(entry, out, view, position);
    position += entry.data.byteLength;
  }
  return out;
}

function checkEntryForWrite(name: string, entry: TensorEntry): void {
  if (name === "__metadata__") {
    throw new Error(`encodeSafetensors: '__metadata__' is reserved and cannot name a tensor`);
  }
  if (!isPlainObject(entry) || typeof entry.dtype !== "string" || !isDtype(entry.dtype)) {
    const dtype = isPlainObject(entry) ? String(entry.dtype) : String(entry);
    throw new Error(
      `encodeSafetensors: tensor '${name}' has dtype ${dtype}; expected one of F32, F64, I32, U8`,
    );
  }
  const { array, itemsize } = DTYPES[entry.dtype];
  if (!Array.isArray(entry.shape) || !entry.shape.every(isNonNegativeInteger)) {
    throw new Error(
      `encodeSafetensors: tensor '${name}' has shape ${
        JSON.stringify(entry.shape)
      }; expected an array of non-negative integers`,
    );
  }
  if (!(entry.data instanceof array)) {
    throw new Error(
      `encodeSafetensors: tensor '${name}' is ${entry.dtype}, so its data must be a ${array.name}, got ${
        entry.data?.constructor?.name ?? typeof entry.data
      }`,
    );
  }
  const count = elementCount(entry.shape, itemsize);
  if (count !== entry.data.length) {
    throw new Error(
      `encodeSafetensors: tensor '${name}' has shape ${
        formatShape(entry.shape)
      } (${count} elements) but its data holds ${entry.data.length} elements`,
    );
  }
}

function writeLittleEndian(
  entry: TensorEntry,
  out: Uint8Array,
  view: DataView,
  position: number,
): void {
  const { data } = entry;
  if (LITTLE_ENDIAN_HOST || entry.dtype === "U8") {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
    return;
  }
  for (let i = 0; i < data.length; i++) {
    const at = position + i * data.BYTES_PER_ELEMENT;
    if (entry.dtype === "F64") view.setFloat64(at, data[i], true);
    else if (entry.dtype === "F32") view.setFloat32(at, data[i], true);
    else view.setInt32(at, data[i], true);
  }
}

/**
 * Parses safetensors bytes. The input is untrusted: any malformation (a header length past
 * the end of the file, a header that is not a UTF-8 JSON object, a missing or mistyped field,
 * an unknown or unsupported dtype, offsets that overlap, leave gaps or leave the buffer, a byte
 * count that disagrees with the shape, non-string metadata) throws an `Error` whose message
 * starts with `name`. Each tensor's data is copied into its own, aligned typed array (empty
 * tensors share one zero-length array per dtype).
 *
 * Cost: time and memory grow linearly with the header (no per-tensor work beyond its own
 * entry; only tensors that hold bytes are sorted), and the header is capped at
 * {@link MAX_HEADER_BYTES}, so a hostile header costs at most a couple of seconds and a few
 * hundred MB (bench/safetensors_header.ts measures it).
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  name = "<memory>",
): { tensors: Map<string, TensorEntry>; metadata: Record<string, string> } {
  checkArgument("decodeSafetensors", "bytes", bytes, "bytes");
  const fail = (problem: string): never => {
    throw new Error(`${name}: ${problem}`);
  };
  if (bytes.length < 8) {
    fail(`file is ${bytes.length} bytes, too short to hold the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  checkHeaderLength(declared, fail);
  const headerLength = Number(declared);
  if (8 + headerLength > bytes.length) {
    fail(`header length ${headerLength} bytes runs past the end of the ${bytes.length}-byte file`);
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      bytes.subarray(8, dataStart),
    );
  } catch {
    return fail(`header is not valid UTF-8`);
  }
  // The reference refuses leading whitespace or a BOM; a file it cannot read is not portable.
  if (!text.startsWith("{")) fail(`header does not start with '{'`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    return fail(`header is not valid JSON (${error instanceof Error ? error.message : error})`);
  }
  if (!isPlainObject(header)) fail(`header is JSON but not an object`);
  const fields = header as Record<string, unknown>;

  let metadata: Record<string, string> = {};
  const keys = Object.keys(fields);
  const pending: PendingTensor[] = [];
  let sorted = true;
  for (const key of keys) {
    if (key === "__metadata__") {
      metadata = parseMetadata(fields[key], fail);
      continue;
    }
    const tensor = parseEntry(key, fields[key], name, fail);
    if (pending.length > 0 && compareNames(pending[pending.length - 1].name, key) > 0) {
      sorted = false;
    }
    pending.push(tensor);
  }
  checkCoverage(pending, dataLength, fail);

  // Entries come out in name order, independent of the order in the file.
  if (!sorted) pending.sort((a, b) => compareNames(a.name, b.name));
  const tensors = new Map<string, TensorEntry>();
  for (const tensor of pending) {
    tensors.set(tensor.name, {
      dtype: tensor.dtype,
      shape: tensor.shape,
      data: readLittleEndian(
        tensor,
        bytes.subarray(dataStart + tensor.begin, dataStart + tensor.end),
      ),
    });
  }
  return { tensors, metadata };
}

function checkHeaderLength(declared: bigint, fail: (problem: string) => never): void {
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    fail(
      `header length ${declared} bytes exceeds tessera's ${formatBytes(MAX_HEADER_BYTES)} limit ` +
        `(about ${Math.round(MAX_HEADER_BYTES / 60 / 1000)} thousand tensors); ` +
        `the file is corrupt, or too many tensors were saved into one file (split it)`,
    );
  }
}

type PendingTensor = {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
};

/**
 * Every byte of the data buffer must belong to exactly one tensor, as in the reference: sorted
 * by (begin, end), each tensor begins where the previous one ended. Only tensors that hold
 * bytes are sorted; an empty one (begin == end) must sit on a boundary between them (or at 0,
 * or at the end), which is where the reference's walk over all tensors accepts it.
 */
function checkCoverage(
  pending: PendingTensor[],
  dataLength: number,
  fail: (problem: string) => never,
): void {
  const filled: PendingTensor[] = [];
  for (const tensor of pending) {
    if (tensor.end > dataLength) {
      fail(
        `tensor '${tensor.name}' has data_offsets [${tensor.begin},${tensor.end}] but the data buffer is only ${dataLength} bytes`,
      );
    }
    if (tensor.end > tensor.begin) filled.push(tensor);
  }
  filled.sort((a, b) => a.begin - b.begin);
  const boundaries = new Set<number>([0]);
  let covered = 0;
  let previous: PendingTensor | undefined;
  for (const tensor of filled) {
    if (tensor.begin < covered) {
      fail(
        `tensor '${tensor.name}' (data_offsets [${tensor.begin},${tensor.end}]) overlaps tensor '${
          previous!.name
        }' (data_offsets [${previous!.begin},${previous!.end}])`,
      );
    }
    if (tensor.begin > covered) {
      fail(
        `data bytes [${covered},${tensor.begin}) belong to no tensor (gap before tensor '${tensor.name}')`,
      );
    }
    covered = tensor.end;
    boundaries.add(covered);
    previous = tensor;
  }
  if (covered < dataLength) {
    fail(`data bytes [${covered},${dataLength}) at the end of the file belong to no tensor`);
  }
  for (const tensor of pending) {
    if (tensor.begin === tensor.end && !boundaries.has(tensor.begin)) {
      const inside = filled.find((t) => t.begin < tensor.begin && tensor.begin < t.end)!;
      fail(
        `tensor '${tensor.name}' (data_offsets [${tensor.begin},${tensor.end}]) overlaps tensor '${inside.name}' (data_offsets [${inside.begin},${inside.end}])`,
      );
    }
  }
}

function parseMetadata(value: unknown, fail: (problem: string) => never): Record<string, string> {
  // serde reads a null `__metadata__` as "no metadata"; accept it the same way.
  if (value === null) return {};
  if (!isPlainObject(value)) fail(`__metadata__ must be an object of strings`);
  const metadata: Record<string, string> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    if (typeof item !== "string") {
      fail(`__metadata__['${key}'] must be a string, got ${JSON.stringify(item)}`);
    }
    defineOwn(metadata, key, item);
  }
  return metadata;
}

function isNonNegativeIntegerArray(value: unknown): value is number[] {
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) if (!isNonNegativeInteger(value[i])) return false;
  return true;
}

// Called once per tensor, so it allocates nothing beyond the tensor's own record.
function parseEntry(
  key: string,
  value: unknown,
  file: string,
  fail: (problem: string) => never,
): PendingTensor {
  if (!isPlainObject(value)) {
    fail(`tensor '${key}' must be an object with dtype, shape, data_offsets`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (dtype === undefined) fail(`tensor '${key}' is missing "dtype"`);
  if (shape === undefined) fail(`tensor '${key}' is missing "shape"`);
  if (offsets === undefined) fail(`tensor '${key}' is missing "data_offsets"`);
  if (typeof dtype !== "string") {
    fail(`tensor '${key}' has dtype ${JSON.stringify(dtype)}, not a string`);
  }
  const dtypeName = dtype as string;
  if (!isDtype(dtypeName)) {
    if (UNSUPPORTED_DTYPES.has(dtypeName)) {
      throw new Error(
        `unsupported dtype ${dtypeName} for tensor '${key}' in ${file} (tessera reads F32, F64, I32, U8)`,
      );
    }
    fail(`tensor '${key}' has unknown dtype ${JSON.stringify(dtypeName)}`);
  }
  const { itemsize } = DTYPES[dtypeName as SafetensorsDtype];
  if (!isNonNegativeIntegerArray(shape)) {
    fail(
      `tensor '${key}' has shape ${
        JSON.stringify(shape)
      }; expected an array of non-negative integers`,
    );
  }
  const dims = shape as number[];
  if (
    !isNonNegativeIntegerArray(offsets) || offsets.length !== 2 || offsets[0] > offsets[1]
  ) {
    fail(
      `tensor '${key}' has data_offsets ${
        JSON.stringify(offsets)
      }; expected [begin, end], two non-negative integers with begin <= end`,
    );
  }
  const begin = (offsets as number[])[0], end = (offsets as number[])[1];
  const count = elementCount(dims, itemsize);
  if (count === undefined || count * itemsize !== end - begin) {
    const size = count === undefined ? "too large to address" : formatBytes(count * itemsize);
    fail(
      `tensor '${key}' has shape ${
        formatShape(dims)
      } (${size} as ${dtypeName}) but data_offsets cover ${end - begin} bytes`,
    );
  }
  // The parsed JSON array is not shared with anything else, so it becomes the entry's shape.
  return { name: key, dtype: dtypeName as SafetensorsDtype, shape: dims, begin, end };
}

function readLittleEndian(
  tensor: PendingTensor,
  source: Uint8Array,
): Float32Array | Float64Array | Int32Array | Uint8Array {
  const { array, itemsize } = DTYPES[tensor.dtype];
  const count = source.length / itemsize;
  // One shared zero-length array per dtype: it holds nothing that could be modified, and a
  // header of a million empty tensors must not cost a million buffers.
  if (count === 0) return EMPTY[tensor.dtype];
  // A fresh buffer is aligned for any element size even when the file's offset is not.
  if (LITTLE_ENDIAN_HOST || tensor.dtype === "U8") return new array(source.slice().buffer);
  const view = new DataView(source.buffer, source.byteOffset, source.byteLength);
  const out = new array(count);
  for (let i = 0; i < count; i++) {
    if (tensor.dtype === "F64") out[i] = view.getFloat64(i * 8, true);
    else if (tensor.dtype === "F32") out[i] = view.getFloat32(i * 4, true);
    else out[i] = view.getInt32(i * 4, true);
  }
  return out;
}

/** Writes tensors to `path` as safetensors, atomically: a failure leaves any old file intact. */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, TensorEntry> | Map<string, TensorEntry>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/**
 * Reads and decodes the safetensors file at `path`; decode errors name the path. The header
 * length is checked before the rest of the file is read, so an oversized header is rejected
 * at once.
 */
export async function loadSafetensors(
  path: string,
): Promise<{ tensors: Map<string, TensorEntry>; metadata: Record<string, string> }> {
  const file = await Deno.open(path, { read: true });
  try {
    const head = new Uint8Array(8);
    let got = 0;
    while (got < 8) {
      const n = await file.read(head.subarray(got));
      if (n === null) break;
      got += n;
    }
    if (got === 8) {
      checkHeaderLength(new DataView(head.buffer).getBigUint64(0, true), (problem) => {
        throw new Error(`${path}: ${problem}`);
      });
    }
  } finally {
    file.close();
  }
  return decodeSafetensors(await Deno.readFile(path), path);
}
