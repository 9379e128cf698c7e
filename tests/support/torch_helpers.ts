/**
 * Builders of torch.save files for the tests of io/torch.ts: raw pickle bytes from opcodes,
 * the legacy layout around an object pickle, and zip archives (stored entries, as PyTorch
 * writes them, with or without zip64 records), so a test can state exactly which bytes it
 * feeds the reader.
 *
 * @module
 */

import { crc32 } from "../../io/zip.ts";

export const FIXTURES = new URL("../fixtures/torch/", import.meta.url);

/** The path of fixture `name`, as errors name it. */
export function fixture(name: string): string {
  return new URL(name, FIXTURES).pathname;
}

/** Bytes from parts: a number is one byte, a string its character codes (latin1), arrays as is. */
export function bytes(...parts: (number | string | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "number") out.push(part);
    else if (typeof part === "string") { for (const c of part) out.push(c.charCodeAt(0)); }
    else for (const b of part) out.push(b);
  }
  return new Uint8Array(out);
}

/** Little-endian bytes of an unsigned integer. */
export function le(value: number | bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let v = BigInt(value);
  for (let i = 0; i < size; i++, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** A protocol-2 BINUNICODE string opcode. */
export function str(text: string): Uint8Array {
  const utf8 = new TextEncoder().encode(text);
  return bytes("X", le(utf8.length, 4), utf8);
}

const MAGIC = bytes(0x80, 2, 0x8a, 10, le(0x1950a86a20f9469cfc6cn, 10), ".");
const PROTOCOL = bytes(0x80, 2, "M", le(1001, 2), ".");
const SYS_INFO = bytes(0x80, 2, "}(", str("little_endian"), 0x88, "u.");

/**
 * A legacy-format file: magic number, protocol, sys_info (little-endian unless `header`
 * replaces them), `object` (a pickle), the pickled key list `keys`, then `storages` raw.
 */
export function legacyFile(
  object: Uint8Array,
  keys: Uint8Array = bytes(0x80, 2, "]."),
  storages: Uint8Array = new Uint8Array(0),
  header: Uint8Array = bytes(MAGIC, PROTOCOL, SYS_INFO),
): Uint8Array {
  return bytes(header, object, keys, storages);
}

export const LEGACY_HEADER = { MAGIC, PROTOCOL, SYS_INFO };

/** A zip archive of stored entries, with the zip64 end records PyTorch writes when `zip64`. */
export function zipArchive(entries: [string, Uint8Array][], zip64 = true): Uint8Array {
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const encoded = new TextEncoder().encode(name);
    const crc = le(crc32(data), 4);
    const size = le(data.length, 4);
    const local = bytes(
      le(0x04034b50, 4),
      le(20, 2),
      le(0, 2),
      le(0, 2),
      le(0, 4),
      crc,
      size,
      size,
      le(encoded.length, 2),
      le(0, 2),
      encoded,
      data,
    );
    centrals.push(bytes(
      le(0x02014b50, 4),
      le(20, 2),
      le(20, 2),
      le(0, 2),
      le(0, 2),
      le(0, 4),
      crc,
      size,
      size,
      le(encoded.length, 2),
      le(0, 2),
      le(0, 2),
      le(0, 2),
      le(0, 2),
      le(0, 4),
      le(offset, 4),
      encoded,
    ));
    locals.push(local);
    offset += local.length;
  }
  const directory = bytes(...centrals);
  const count = entries.length;
  const end = bytes(
    le(0x06054b50, 4),
    le(0, 2),
    le(0, 2),
    le(count, 2),
    le(count, 2),
    le(directory.length, 4),
    le(offset, 4),
    le(0, 2),
  );
  if (!zip64) return bytes(...locals, directory, end);
  const zip64End = bytes(
    le(0x06064b50, 4),
    le(44, 8),
    le(45, 2),
    le(45, 2),
    le(0, 4),
    le(0, 4),
    le(count, 8),
    le(count, 8),
    le(directory.length, 8),
    le(offset, 8),
  );
  const locator = bytes(le(0x07064b50, 4), le(0, 4), le(offset + directory.length, 8), le(1, 4));
  return bytes(...locals, directory, zip64End, locator, end);
}
