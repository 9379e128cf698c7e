/**
 * JPEG entropy decoding: Huffman codes to quantised DCT coefficients (see `jpeg.ts` for the
 * whole pipeline), for sequential and progressive scans, as libjpeg's jdhuff.c and jdphuff.c
 * do it.
 *
 * The coded data is a bit stream, most significant bit first, in which a 0xFF byte is followed
 * by a stuffed 0x00 (so that FF xx with xx != 0 is always a marker). Each coefficient is coded
 * as a Huffman symbol, then that many raw bits:
 *
 * - DC (coefficient 0): the symbol is a size s, the s bits the difference from the previous
 *   block's DC of the same component (DC prediction, reset at each restart marker).
 * - AC (1..63, in zig-zag order): the symbol packs a run of zeros (high nibble) and a size
 *   (low nibble); 0x00 ends the block (EOB), 0xF0 is sixteen zeros (ZRL).
 * - A value of size s is read as s bits v and "extended": v if its top bit is set, else
 *   v - 2^s + 1 (so sizes code the ranges +-[2^(s-1), 2^s - 1]).
 *
 * Progressive files send the same coefficients over several scans: a scan codes either the DC
 * of one or more components, or one band Ss..Se of one component's AC coefficients; "first"
 * scans (Ah = 0) send values shifted right by Al, "refinement" scans (Ah > 0) send the next
 * lower bit (one bit per already-nonzero coefficient, plus newly nonzero ones of size 1). AC
 * scans also code runs of blocks that end immediately (EOBRUN).
 *
 * Corrupt data is handled as libjpeg handles it where PIL still returns an image: data that
 * runs into a marker is padded with zero bits, the scan's following MCUs (up to the next
 * restart) are left as they are, and a wrong restart marker is resynchronised as
 * jpeg_resync_to_restart does. A file that ends inside a scan is truncated and refused, as
 * PIL refuses it. A corrupt Huffman code is refused too (libjpeg warns and substitutes 0).
 *
 * @module
 */

import {
  type Frame,
  type FrameComponent,
  JpegError,
  Marker,
  NATURAL_ORDER,
} from "./jpeg_markers.ts";

/** Codes up to this many bits are found with one table lookup; longer ones by length. */
const LOOKUP_BITS = 9;

/**
 * A Huffman table, decoded as libjpeg does: `lookup` maps the next 9 bits to
 * (code length << 8) | symbol for codes of up to 9 bits (0: a longer code); longer codes are
 * canonical, so a code of length l is valid when it is at most `maxCode[l]`, and its symbol is
 * `symbols[code + offset[l]]`.
 */
export interface HuffmanTable {
  lookup: Uint16Array;
  maxCode: Int32Array;
  offset: Int32Array;
  symbols: Uint8Array;
}

/** Builds a table from a DHT's 16 code-length counts and its symbols. */
export function buildHuffmanTable(
  counts: Uint8Array,
  symbols: Uint8Array,
  isDc: boolean,
  name: string,
): HuffmanTable {
  const lookup = new Uint16Array(1 << LOOKUP_BITS);
  const maxCode = new Int32Array(17).fill(-1), offset = new Int32Array(17);
  let code = 0, k = 0;
  for (let length = 1; length <= 16; length++) {
    offset[length] = k - code;
    for (let i = 0; i < counts[length - 1]; i++, k++) {
      // Canonical codes: consecutive within a length, doubled when the length grows.
      if (code >= 1 << length) throw new JpegError(name, "Huffman table (DHT) is over-full");
      const symbol = symbols[k];
      if (isDc && symbol > 15) throw new JpegError(name, `DC Huffman symbol ${symbol} (max 15)`);
      if (length <= LOOKUP_BITS) {
        const first = code << (LOOKUP_BITS - length);
        lookup.fill((length << 8) | symbol, first, first + (1 << (LOOKUP_BITS - length)));
      }
      maxCode[length] = code++;
    }
    code <<= 1;
  }
  return { lookup, maxCode, offset, symbols: symbols.slice() };
}

/** Reads a DHT segment into the DC and AC table slots. */
export function readHuffmanTables(
  bytes: Uint8Array,
  at: number,
  end: number,
  dc: (HuffmanTable | undefined)[],
  ac: (HuffmanTable | undefined)[],
  name: string,
): void {
  while (at < end) {
    const kind = bytes[at] >> 4, index = bytes[at] & 15;
    if (kind > 1 || index > 3) {
      throw new JpegError(name, `Huffman table class ${kind} index ${index} (DHT)`);
    }
    if (at + 17 > end) throw new JpegError(name, "Huffman table (DHT) too short");
    const counts = bytes.subarray(at + 1, at + 17);
    const total = counts.reduce((sum, n) => sum + n, 0);
    if (total > 256 || at + 17 + total > end) {
      throw new JpegError(name, `Huffman table (DHT) with ${total} symbols does not fit`);
    }
    const table = buildHuffmanTable(
      counts,
      bytes.subarray(at + 17, at + 17 + total),
      kind === 0,
      name,
    );
    (kind === 0 ? dc : ac)[index] = table;
    at += 17 + total;
  }
}

/** The entropy-coded bits of one scan, with byte unstuffing and marker detection. */
export class BitReader {
  /** Up to 32 pending bits; the lowest `count` bits of `buffer` are unread. */
  private buffer = 0;
  count = 0;
  /** Zero bits appended after a marker was met; consuming them means data ran out. */
  padded = 0;
  /** True once the file ended with no marker: the scan is truncated. */
  ended = false;

  constructor(private readonly bytes: Uint8Array, public position: number) {}

  /** Tops the buffer up to more than 24 bits, stopping at markers (then zero bits follow). */
  private fill(): void {
    const bytes = this.bytes;
    while (this.count <= 24) {
      let byte = 0;
      if (this.padded > 0 || this.position >= bytes.length) {
        if (this.padded === 0 && this.position >= bytes.length) this.ended = true;
        this.padded += 8;
      } else if (bytes[this.position] !== 0xff) {
        byte = bytes[this.position++];
      } else {
        // FF 00 is a data byte FF; FF FF... are fill bytes before a marker or a FF 00.
        let next = this.position + 1;
        while (next < bytes.length && bytes[next] === 0xff) next++;
        if (next >= bytes.length) {
          this.ended = true;
          this.padded += 8;
        } else if (bytes[next] === 0) {
          byte = 0xff;
          this.position = next + 1;
        } else {
          this.position = next - 1; // at the marker's last FF
          this.padded += 8;
        }
      }
      this.buffer = (this.buffer << 8) | byte;
      this.count += 8;
    }
  }

  /** The next `n` (1..16) bits as an unsigned number. */
  bits(n: number): number {
    if (this.count < n) this.fill();
    this.count -= n;
    return (this.buffer >>> this.count) & ((1 << n) - 1);
  }

  bit(): number {
    return this.bits(1);
  }

  /** The next Huffman symbol of `table`. */
  symbol(table: HuffmanTable, name: string): number {
    if (this.count < 16) this.fill();
    const next16 = (this.buffer >>> (this.count - 16)) & 0xffff;
    const entry = table.lookup[next16 >> (16 - LOOKUP_BITS)];
    if (entry !== 0) {
      this.count -= entry >> 8;
      return entry & 0xff;
    }
    for (let length = LOOKUP_BITS + 1; length <= 16; length++) {
      const code = next16 >> (16 - length);
      if (code <= table.maxCode[length]) {
        this.count -= length;
        return table.symbols[code + table.offset[length]];
      }
    }
    throw new JpegError(name, "corrupt entropy-coded data (bad Huffman code)");
  }

  /** `s` raw bits, extended to a signed value (s = 0 gives 0). */
  signed(s: number): number {
    if (s === 0) return 0;
    const v = this.bits(s);
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  }

  /** True when the last MCU needed bits beyond the data (libjpeg's insufficient_data). */
  ranOut(): boolean {
    return this.count < this.padded;
  }

  /** Drops buffered bits (at a restart or the scan's end) and finds the next marker. */
  nextMarker(): number {
    this.buffer = this.count = this.padded = 0;
    const bytes = this.bytes;
    // Skip anything up to FF xx (xx not 00 or FF), as libjpeg skips extraneous bytes.
    while (this.position + 1 < bytes.length) {
      const next = bytes[this.position + 1];
      if (bytes[this.position] === 0xff && next !== 0 && next !== 0xff) return next;
      this.position++;
    }
    this.position = bytes.length;
    return -1;
  }
}

/** One component of a scan, with its tables. */
export interface ScanComponent {
  component: FrameComponent;
  dc?: HuffmanTable;
  ac?: HuffmanTable;
}

/** A scan header (SOS) with the decoding state it needs. */
export interface Scan {
  components: ScanComponent[];
  /** Spectral band and successive-approximation bits (sequential scans: 0, 63, 0, 0). */
  start: number;
  end: number;
  high: number;
  low: number;
  restartInterval: number;
  /** Set after decoding: whether the data ran out before the scan's last MCU. */
  ranOut?: boolean;
}

/** Decodes one block of a sequential scan into `out` at `at` (64 coefficients). */
function sequentialBlock(
  reader: BitReader,
  sc: ScanComponent,
  out: Int16Array,
  at: number,
  predictions: Float64Array,
  index: number,
  name: string,
): void {
  const s = reader.symbol(sc.dc!, name);
  predictions[index] += reader.signed(s);
  out[at] = predictions[index];
  for (let k = 1; k < 64; k++) {
    const rs = reader.symbol(sc.ac!, name), r = rs >> 4, size = rs & 15;
    if (size === 0) {
      if (r !== 15) break; // end of block
      k += 15; // sixteen zeros (ZRL)
      continue;
    }
    k += r;
    out[at + NATURAL_ORDER[k]] = reader.signed(size);
  }
}

/** Progressive DC scan of one block: first (difference << Al) or refinement (one bit). */
function dcBlock(
  reader: BitReader,
  scan: Scan,
  sc: ScanComponent,
  out: Int16Array,
  at: number,
  predictions: Float64Array,
  index: number,
  name: string,
): void {
  if (scan.high === 0) {
    const s = reader.symbol(sc.dc!, name);
    predictions[index] += reader.signed(s);
    out[at] = predictions[index] * (1 << scan.low);
  } else if (reader.bit()) {
    out[at] |= 1 << scan.low;
  }
}

/** Progressive AC first scan of one block; returns the remaining EOB run. */
function acFirstBlock(
  reader: BitReader,
  scan: Scan,
  table: HuffmanTable,
  out: Int16Array,
  at: number,
  eobRun: number,
  name: string,
): number {
  if (eobRun > 0) return eobRun - 1;
  for (let k = scan.start; k <= scan.end; k++) {
    const rs = reader.symbol(table, name), r = rs >> 4, size = rs & 15;
    if (size !== 0) {
      k += r;
      out[at + NATURAL_ORDER[k]] = reader.signed(size) * (1 << scan.low);
    } else if (r === 15) {
      k += 15;
    } else {
      // EOBr: this block and 2^r + (r bits) - 1 more end here.
      return (1 << r) + (r > 0 ? reader.bits(r) : 0) - 1;
    }
  }
  return 0;
}

/** Adds a correction bit to a nonzero coefficient: 1 means its magnitude grows by 2^Al. */
function refine(reader: BitReader, out: Int16Array, position: number, p1: number): void {
  const coef = out[position];
  if (reader.bit() && (coef & p1) === 0) out[position] = coef >= 0 ? coef + p1 : coef - p1;
}

/** Progressive AC refinement scan of one block; returns the remaining EOB run. */
function acRefineBlock(
  reader: BitReader,
  scan: Scan,
  table: HuffmanTable,
  out: Int16Array,
  at: number,
  eobRun: number,
  name: string,
): number {
  const p1 = 1 << scan.low;
  let k = scan.start;
  if (eobRun === 0) {
    for (; k <= scan.end; k++) {
      const rs = reader.symbol(table, name);
      let r = rs >> 4, value = 0;
      if ((rs & 15) !== 0) {
        value = reader.bit() ? p1 : -p1; // a newly nonzero coefficient, size 1
      } else if (r !== 15) {
        eobRun = (1 << r) + (r > 0 ? reader.bits(r) : 0);
        break;
      }
      // Skip r zero coefficients, refining the nonzero ones met on the way.
      do {
        const position = at + NATURAL_ORDER[k];
        if (out[position] !== 0) refine(reader, out, position, p1);
        else if (--r < 0) break;
        k++;
      } while (k <= scan.end);
      if (value !== 0) out[at + NATURAL_ORDER[k]] = value;
    }
  }
  if (eobRun > 0) {
    for (; k <= scan.end; k++) {
      const position = at + NATURAL_ORDER[k];
      if (out[position] !== 0) refine(reader, out, position, p1);
    }
    eobRun--;
  }
  return eobRun;
}

/**
 * Finds the restart marker RST`expected` where a restart interval ends, and returns whether
 * the data has run out. A wrong marker is handled as libjpeg's jpeg_resync_to_restart does:
 * an earlier restart or an invalid marker is skipped; a later restart (one or two ahead) or
 * another marker is left in place, so the next MCU is decoded from zero bits and the rest of
 * the scan is left as it is; a restart further off is taken as the expected one.
 */
function restart(reader: BitReader, expected: number, runOut: boolean): boolean {
  for (let marker = reader.nextMarker(); marker >= 0; marker = reader.nextMarker()) {
    const isRestart = marker >= Marker.RST0 && marker <= Marker.RST7;
    const n = marker - Marker.RST0;
    const behind = isRestart && (n === ((expected - 1) & 7) || n === ((expected - 2) & 7));
    const ahead = isRestart && (n === ((expected + 1) & 7) || n === ((expected + 2) & 7));
    if (marker < Marker.SOF0 || behind) {
      reader.position += 2; // skip it and look at the next marker
    } else if (!isRestart || ahead) {
      return runOut;
    } else {
      reader.position += 2; // the expected restart (or one too far off to judge)
      return false;
    }
  }
  return runOut; // the file ended: the next MCU finds that out
}

/**
 * Decodes one scan starting at `position` (just after the SOS header) into the components'
 * coefficient arrays; returns the position of the marker that follows the scan.
 */
export function decodeScan(
  bytes: Uint8Array,
  position: number,
  frame: Frame,
  scan: Scan,
  name: string,
): number {
  const reader = new BitReader(bytes, position);
  const single = scan.components.length === 1;
  const first = scan.components[0].component;
  const mcusPerLine = single ? first.widthInBlocks : frame.mcusPerLine;
  const mcuCount = mcusPerLine * (single ? first.heightInBlocks : frame.mcusPerColumn);
  const predictions = new Float64Array(scan.components.length);
  let eobRun = 0, runOut = false, restartNumber = 0;
  for (let mcu = 0; mcu < mcuCount; mcu++) {
    if (scan.restartInterval > 0 && mcu > 0 && mcu % scan.restartInterval === 0) {
      // Restart: a byte-aligned RSTn marker; predictions and the EOB run start again.
      runOut = restart(reader, restartNumber, runOut);
      restartNumber = (restartNumber + 1) & 7;
      predictions.fill(0);
      eobRun = 0;
    }
    if (runOut) continue;
    const row = Math.floor(mcu / mcusPerLine), col = mcu % mcusPerLine;
    for (let i = 0; i < scan.components.length; i++) {
      const sc = scan.components[i], c = sc.component;
      const out = c.coefficients!;
      const blocksH = single ? 1 : c.h, blocksV = single ? 1 : c.v;
      for (let v = 0; v < blocksV; v++) {
        for (let h = 0; h < blocksH; h++) {
          const blockRow = row * blocksV + v, blockCol = col * blocksH + h;
          const at = (blockRow * c.blocksPerLine + blockCol) * 64;
          if (!frame.progressive) {
            sequentialBlock(reader, sc, out, at, predictions, i, name);
          } else if (scan.start === 0) {
            dcBlock(reader, scan, sc, out, at, predictions, i, name);
          } else if (scan.high === 0) {
            eobRun = acFirstBlock(reader, scan, sc.ac!, out, at, eobRun, name);
          } else {
            eobRun = acRefineBlock(reader, scan, sc.ac!, out, at, eobRun, name);
          }
        }
      }
    }
    if (reader.ended) throw new JpegError(name, "truncated: the file ends inside a scan");
    if (reader.ranOut()) runOut = true;
  }
  scan.ranOut = runOut;
  const marker = reader.nextMarker();
  if (marker < 0) throw new JpegError(name, "truncated: no marker after the last scan");
  return reader.position;
}
