/**
 * Reading zip archives, as much of the format as `torch.save` files need (PyTorch >= 1.6
 * writes a zip whose entries are the pickled object and one raw record per storage).
 *
 * Layout, read from the end (APPNOTE.TXT, sections 4.3.6 to 4.3.16):
 *
 *     local header 1, data 1, local header 2, data 2, ...      the entries
 *     central directory: one header per entry                  name, method, sizes, CRC-32,
 *                                                              offset of the local header
 *     [zip64 end of central directory + its locator]           64-bit counts and offsets
 *     end of central directory (22 bytes + comment)            where the directory is
 *
 * PyTorch's writer (miniz) stores entries uncompressed, pads each local header so the data
 * starts on a 64-byte boundary, and always writes the zip64 records. An archive re-packed by
 * another tool may deflate its entries; those are inflated with the platform's
 * `DecompressionStream("deflate-raw")`, which is why reading an entry is asynchronous.
 *
 * The archive is untrusted: every offset and length is checked against the bytes before it is
 * used, entries must be unencrypted, on one disk, stored or deflated, with unique names, and
 * an entry's data must match its CRC-32. A deflated entry is inflated into a buffer of its
 * declared size and refused the moment it produces more (a zip bomb); the caller bounds the
 * declared sizes it accepts. Every problem is a {@link ZipError}.
 *
 * @module
 */

/** A malformed or unsupported zip archive; the message names the entry or record. */
export class ZipError extends Error {
  /** `message` names the entry or record and the problem. */
  constructor(message: string) {
    super(message);
    this.name = "ZipError";
  }
}

/** One entry of the central directory. */
export interface ZipEntry {
  /** The entry's path inside the archive, e.g. `archive/data/0`. */
  readonly name: string;
  /** 0: stored, 8: deflated. */
  readonly method: 0 | 8;
  /** Bytes of the entry's data as it lies in the archive. */
  readonly compressedSize: number;
  /** Bytes of the entry's content (what {@link readZipEntry} returns). */
  readonly size: number;
  /** CRC-32 of the content. */
  readonly crc32: number;
  /** Where the entry's (possibly compressed) data starts in the archive. */
  readonly dataOffset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const EOCD_SIZE = 22;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;

/** True if `bytes` starts like a zip archive (a local file header). */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 3 &&
    bytes[3] === 4;
}

/** Reads the central directory of the archive `bytes`: its entries by name. */
export function readZipDirectory(bytes: Uint8Array): Map<string, ZipEntry> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = findEndOfDirectory(bytes, view);
  let count = view.getUint16(end + 10, true);
  let directorySize = view.getUint32(end + 12, true);
  let directoryOffset = view.getUint32(end + 16, true);
  if (view.getUint16(end + 4, true) !== 0 || view.getUint16(end + 6, true) !== 0) {
    throw new ZipError("the archive spans several disks, which is not supported");
  }
  const locator = end - 20;
  if (locator >= 0 && view.getUint32(locator, true) === ZIP64_LOCATOR) {
    ({ count, directorySize, directoryOffset } = readZip64End(view, locator));
  }
  if (directoryOffset + directorySize > end) {
    throw new ZipError(
      `the central directory (${directorySize} bytes at offset ${directoryOffset}) runs past its end record at ${end}`,
    );
  }
  // Each header takes at least 46 bytes, so the count cannot ask for more work than the bytes.
  if (count * CENTRAL_SIZE > directorySize) {
    throw new ZipError(
      `the end record declares ${count} entries, more than a ${directorySize}-byte central directory holds`,
    );
  }
  const entries = new Map<string, ZipEntry>();
  let at = directoryOffset;
  for (let i = 0; i < count; i++) {
    const entry = readCentralHeader(bytes, view, at, directoryOffset + directorySize);
    if (entries.has(entry.name)) {
      throw new ZipError(`entry ${quote(entry.name)} appears twice in the central directory`);
    }
    entries.set(entry.name, entry.value);
    at = entry.next;
  }
  return entries;
}

function findEndOfDirectory(bytes: Uint8Array, view: DataView): number {
  if (bytes.length < EOCD_SIZE) {
    throw new ZipError(`${bytes.length} bytes cannot hold a zip end-of-directory record`);
  }
  // The record is the last thing in the file but for a comment of at most 65,535 bytes.
  const lowest = Math.max(0, bytes.length - EOCD_SIZE - 0xffff);
  for (let at = bytes.length - EOCD_SIZE; at >= lowest; at--) {
    if (view.getUint32(at, true) !== EOCD) continue;
    if (at + EOCD_SIZE + view.getUint16(at + 20, true) === bytes.length) return at;
  }
  throw new ZipError("no end-of-central-directory record (the archive is truncated or not a zip)");
}

function readZip64End(view: DataView, locator: number) {
  const offset = safeUint64(view, locator + 8, "zip64 end record offset");
  if (offset + 56 > locator || view.getUint32(offset, true) !== ZIP64_EOCD) {
    throw new ZipError(
      `the zip64 locator points at offset ${offset}, where no zip64 end record is`,
    );
  }
  if (view.getUint32(offset + 16, true) !== 0 || view.getUint32(offset + 20, true) !== 0) {
    throw new ZipError("the archive spans several disks, which is not supported");
  }
  return {
    count: safeUint64(view, offset + 32, "zip64 entry count"),
    directorySize: safeUint64(view, offset + 40, "zip64 central directory size"),
    directoryOffset: safeUint64(view, offset + 48, "zip64 central directory offset"),
  };
}

function safeUint64(view: DataView, at: number, what: string): number {
  const value = view.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(`${what} ${value} is too large`);
  return Number(value);
}

function readCentralHeader(bytes: Uint8Array, view: DataView, at: number, limit: number) {
  if (at + CENTRAL_SIZE > limit || view.getUint32(at, true) !== CENTRAL) {
    throw new ZipError(`no central directory header at offset ${at}`);
  }
  const flags = view.getUint16(at + 8, true);
  const method = view.getUint16(at + 10, true);
  const nameLength = view.getUint16(at + 28, true);
  const extraLength = view.getUint16(at + 30, true);
  const next = at + CENTRAL_SIZE + nameLength + extraLength + view.getUint16(at + 32, true);
  if (next > limit) throw new ZipError(`the central directory header at offset ${at} is truncated`);
  const name = new TextDecoder().decode(
    bytes.subarray(at + CENTRAL_SIZE, at + CENTRAL_SIZE + nameLength),
  );
  if (flags & 1) throw new ZipError(`entry ${quote(name)} is encrypted`);
  if (method !== 0 && method !== 8) {
    throw new ZipError(
      `entry ${
        quote(name)
      } uses compression method ${method}; only stored (0) and deflated (8) are read`,
    );
  }
  const sizes = {
    size: view.getUint32(at + 24, true),
    compressedSize: view.getUint32(at + 20, true),
    localOffset: view.getUint32(at + 42, true),
  };
  readZip64Extra(view, at + CENTRAL_SIZE + nameLength, extraLength, sizes, name);
  if (method === 0 && sizes.size !== sizes.compressedSize) {
    throw new ZipError(
      `stored entry ${
        quote(name)
      } declares ${sizes.size} bytes of content but ${sizes.compressedSize} bytes of data`,
    );
  }
  const dataOffset = localDataOffset(bytes, view, sizes.localOffset, name);
  if (dataOffset + sizes.compressedSize > bytes.length) {
    throw new ZipError(
      `entry ${
        quote(name)
      } (${sizes.compressedSize} bytes at offset ${dataOffset}) runs past the end of the ${bytes.length}-byte archive`,
    );
  }
  const value: ZipEntry = {
    name,
    method,
    compressedSize: sizes.compressedSize,
    size: sizes.size,
    crc32: view.getUint32(at + 16, true),
    dataOffset,
  };
  return { name, value, next };
}

/** Replaces the 32-bit fields that are 0xFFFFFFFF with the zip64 extra field's 64-bit ones. */
function readZip64Extra(
  view: DataView,
  start: number,
  length: number,
  sizes: { size: number; compressedSize: number; localOffset: number },
  name: string,
): void {
  const fields = (["size", "compressedSize", "localOffset"] as const).filter((f) =>
    sizes[f] === 0xffffffff
  );
  if (fields.length === 0) return;
  for (let at = start; at + 4 <= start + length;) {
    const id = view.getUint16(at, true);
    const size = view.getUint16(at + 2, true);
    if (at + 4 + size > start + length) break;
    if (id === 1) {
      if (size < fields.length * 8) break;
      fields.forEach((field, i) => {
        sizes[field] = safeUint64(view, at + 4 + 8 * i, `entry ${quote(name)} zip64 ${field}`);
      });
      return;
    }
    at += 4 + size;
  }
  throw new ZipError(`entry ${quote(name)} needs a zip64 extra field for its ${fields.join(", ")}`);
}

function localDataOffset(bytes: Uint8Array, view: DataView, at: number, name: string): number {
  if (at + LOCAL_SIZE > bytes.length || view.getUint32(at, true) !== LOCAL) {
    throw new ZipError(`entry ${quote(name)}: no local header at offset ${at}`);
  }
  const nameLength = view.getUint16(at + 26, true);
  const start = at + LOCAL_SIZE + nameLength + view.getUint16(at + 28, true);
  if (start > bytes.length) {
    throw new ZipError(`entry ${quote(name)}: its local header is truncated`);
  }
  const localName = new TextDecoder().decode(
    bytes.subarray(at + LOCAL_SIZE, at + LOCAL_SIZE + nameLength),
  );
  if (localName !== name) {
    throw new ZipError(`entry ${quote(name)}: its local header names ${quote(localName)}`);
  }
  return start;
}

/**
 * The content of `entry`: a view into `bytes` for a stored entry, a new buffer for a deflated
 * one. Checks the CRC-32; a deflated entry that inflates to more or fewer bytes than its
 * declared size is refused, without ever holding more than that size.
 */
export async function readZipEntry(bytes: Uint8Array, entry: ZipEntry): Promise<Uint8Array> {
  const data = bytes.subarray(entry.dataOffset, entry.dataOffset + entry.compressedSize);
  const content = entry.method === 0 ? data : await inflate(data, entry);
  const crc = crc32(content);
  if (crc !== entry.crc32) {
    throw new ZipError(
      `entry ${quote(entry.name)} is corrupt: its CRC-32 is ${hex(crc)}, the directory says ${
        hex(entry.crc32)
      }`,
    );
  }
  return content;
}

async function inflate(data: Uint8Array, entry: ZipEntry): Promise<Uint8Array> {
  const out = new Uint8Array(entry.size);
  let filled = 0;
  const reader = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("deflate-raw"),
  )
    .getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (filled + value.length > entry.size) {
        throw new ZipError(
          `entry ${
            quote(entry.name)
          } inflates past its declared ${entry.size} bytes (a zip bomb, or a corrupt archive)`,
        );
      }
      out.set(value, filled);
      filled += value.length;
    }
  } catch (error) {
    if (error instanceof ZipError) throw error;
    throw new ZipError(
      `entry ${quote(entry.name)} holds corrupt deflate data (${describe(error)})`,
    );
  } finally {
    reader.cancel().catch(() => {});
  }
  if (filled !== entry.size) {
    throw new ZipError(
      `entry ${
        quote(entry.name)
      } inflates to ${filled} bytes, but the directory says ${entry.size}`,
    );
  }
  return out;
}

/** `'name'` for a message: control characters escaped, cut to about 60 characters. */
function quote(name: string): string {
  const short = name.length > 60 ? `${name.slice(0, 57)}...` : name;
  return `'${JSON.stringify(short).slice(1, -1)}'`;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

let crcTables: Uint32Array[] | undefined;

/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zip stores it. "Slicing by 8"
 * (Intel, 2006): eight tables, so each step folds eight bytes into the remainder with eight
 * lookups instead of eight dependent one-byte steps; the result is the one-byte loop's.
 */
export function crc32(bytes: Uint8Array): number {
  const t = crcTables ??= makeCrcTables();
  let crc = 0xffffffff;
  let i = 0;
  for (const end = bytes.length - 8; i <= end; i += 8) {
    const low = crc ^ (bytes[i] | bytes[i + 1] << 8 | bytes[i + 2] << 16 | bytes[i + 3] << 24);
    crc = t[7][low & 0xff] ^ t[6][(low >>> 8) & 0xff] ^ t[5][(low >>> 16) & 0xff] ^
      t[4][low >>> 24] ^ t[3][bytes[i + 4]] ^ t[2][bytes[i + 5]] ^ t[1][bytes[i + 6]] ^
      t[0][bytes[i + 7]];
  }
  for (; i < bytes.length; i++) crc = t[0][(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** t[0] is the one-byte table; t[k][n] is t[0] advanced by k more zero bytes. */
function makeCrcTables(): Uint32Array[] {
  const t = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[0][n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) t[k][n] = t[0][t[k - 1][n] & 0xff] ^ (t[k - 1][n] >>> 8);
  }
  return t;
}
