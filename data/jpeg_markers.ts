/**
 * JPEG markers: the file's table of contents, read before any pixel is decoded (see `jpeg.ts`
 * for the whole pipeline).
 *
 * A JPEG is a sequence of segments, each introduced by a two-byte marker `FF xx`; most carry a
 * big-endian length that counts itself. The ones a decoder needs:
 *
 * - SOF (start of frame): sample precision, image size, and per component its id, its sampling
 *   factors (how many 8x8 blocks it contributes to one MCU, the "minimum coded unit") and its
 *   quantisation table. SOF0/SOF1 are sequential Huffman, SOF2 progressive Huffman; the rest
 *   (lossless, hierarchical, arithmetic coding) are refused.
 * - DQT: quantisation tables, 64 values stored in zig-zag order (8 or 16 bits each).
 * - DHT: Huffman tables (see `jpeg_huffman.ts`).
 * - DRI: the restart interval, in MCUs.
 * - SOS (start of scan): which components the entropy-coded data that follows carries, their
 *   tables, and for progressive files the band of coefficients (Ss..Se) and the bit position
 *   (Ah, Al) it refines.
 * - APP0 "JFIF" and APP14 "Adobe" say how 3 components are to be read: libjpeg (and so PIL)
 *   treats them as YCbCr when JFIF is present, as RGB when Adobe's transform flag is 0 (or,
 *   without either, when the component ids are 'R', 'G', 'B'), and as YCbCr otherwise.
 *
 * Every length and offset read here is checked against the file, and every failure is a
 * {@link JpegError} naming the file.
 *
 * @module
 */

/** A JPEG the decoder cannot or will not decode; the message names the file. */
export class JpegError extends Error {
  /** An error about file `name` (or whatever names the bytes): "`name`: cannot decode JPEG: `problem`". */
  constructor(name: string, problem: string) {
    super(`${name}: cannot decode JPEG: ${problem}`);
    this.name = "JpegError";
  }
}

/** Zig-zag position -> natural (row-major) position; 16 extra entries of 63 absorb the
 * overruns a corrupt run length can cause (libjpeg pads its table the same way). */
export const NATURAL_ORDER = new Uint8Array([
  0,
  1,
  8,
  16,
  9,
  2,
  3,
  10,
  17,
  24,
  32,
  25,
  18,
  11,
  4,
  5,
  12,
  19,
  26,
  33,
  40,
  48,
  41,
  34,
  27,
  20,
  13,
  6,
  7,
  14,
  21,
  28,
  35,
  42,
  49,
  56,
  57,
  50,
  43,
  36,
  29,
  22,
  15,
  23,
  30,
  37,
  44,
  51,
  58,
  59,
  52,
  45,
  38,
  31,
  39,
  46,
  53,
  60,
  61,
  54,
  47,
  55,
  62,
  63,
  ...new Array(16).fill(63),
]);

/** Marker codes (the byte after 0xFF). */
export const Marker = {
  SOF0: 0xc0,
  SOF1: 0xc1,
  SOF2: 0xc2,
  DHT: 0xc4,
  RST0: 0xd0,
  RST7: 0xd7,
  SOI: 0xd8,
  EOI: 0xd9,
  SOS: 0xda,
  DQT: 0xdb,
  DNL: 0xdc,
  DRI: 0xdd,
  APP0: 0xe0,
  APP14: 0xee,
} as const;

/** The largest image decoded: 2^28 pixels (16384 x 16384), about 0.8 GB of RGB output. */
export const MAX_PIXELS = 2 ** 28;

/** One component of the frame, as SOF declares it plus what the decoder derives. */
export interface FrameComponent {
  id: number;
  /** Horizontal and vertical sampling factors (1..4). */
  h: number;
  v: number;
  /** Index of its quantisation table (0..3). */
  quantTable: number;
  /** Samples per row and rows of this component: ceil(image size * factor / max factor). */
  width: number;
  height: number;
  /** Blocks actually covering the component (a single-component scan visits these). */
  widthInBlocks: number;
  heightInBlocks: number;
  /** Blocks stored per row and column: whole MCUs, as an interleaved scan visits them. */
  blocksPerLine: number;
  blocksPerColumn: number;
  /** Dequantisation is done in the IDCT; coefficients are stored quantised, 64 per block. */
  coefficients?: Int16Array;
  /** The quant table as it was at the component's first scan (libjpeg latches it there). */
  quant?: Uint16Array;
  /** Per coefficient, the Al of the last scan that coded it; -1 before any (progressive). */
  coefficientBits: Int8Array;
}

export interface Frame {
  progressive: boolean;
  width: number;
  height: number;
  components: FrameComponent[];
  maxH: number;
  maxV: number;
  mcusPerLine: number;
  mcusPerColumn: number;
}

/** A big-endian uint16 at `at`, refusing to read past `end`. */
export function uint16(bytes: Uint8Array, at: number, end: number, name: string): number {
  if (at + 2 > end) throw new JpegError(name, `segment ends early at byte ${at}`);
  return (bytes[at] << 8) | bytes[at + 1];
}

/** The refused SOF types, by marker, with what they are. */
const REFUSED_FRAMES: Record<number, string> = {
  0xc3: "lossless (SOF3) JPEG",
  0xc5: "hierarchical (SOF5) JPEG",
  0xc6: "hierarchical progressive (SOF6) JPEG",
  0xc7: "hierarchical lossless (SOF7) JPEG",
  0xc9: "arithmetic-coded (SOF9) JPEG",
  0xca: "arithmetic-coded progressive (SOF10) JPEG",
  0xcb: "arithmetic-coded lossless (SOF11) JPEG",
  0xcd: "arithmetic-coded hierarchical (SOF13) JPEG",
  0xce: "arithmetic-coded hierarchical (SOF14) JPEG",
  0xcf: "arithmetic-coded hierarchical lossless (SOF15) JPEG",
};

/** Why a frame marker cannot be decoded, or undefined for SOF0/1/2. */
export function refusedFrame(marker: number): string | undefined {
  return REFUSED_FRAMES[marker];
}

/** Reads SOF0/1/2 (`at` is just past the length field, `end` is the segment's end). */
export function readFrame(
  bytes: Uint8Array,
  at: number,
  end: number,
  progressive: boolean,
  name: string,
): Frame {
  if (end - at < 6) throw new JpegError(name, "frame header (SOF) too short");
  const precision = bytes[at];
  if (precision !== 8) {
    throw new JpegError(name, `${precision}-bit samples are not supported (only 8-bit)`);
  }
  const height = uint16(bytes, at + 1, end, name);
  const width = uint16(bytes, at + 3, end, name);
  const count = bytes[at + 5];
  if (height === 0) {
    throw new JpegError(name, "height 0 in the frame header (DNL-defined height is not supported)");
  }
  if (width === 0) throw new JpegError(name, "width 0 in the frame header");
  if (width * height > MAX_PIXELS) {
    throw new JpegError(name, `${width}x${height} is more than ${MAX_PIXELS} pixels`);
  }
  if (count === 4) throw new JpegError(name, "4-component (CMYK/YCCK) JPEGs are not supported");
  if (count !== 1 && count !== 3) {
    throw new JpegError(name, `${count} components (only 1, grayscale, or 3, colour)`);
  }
  if (end - at < 6 + 3 * count) throw new JpegError(name, "frame header (SOF) too short");
  const components: FrameComponent[] = [];
  for (let i = 0; i < count; i++) {
    const p = at + 6 + 3 * i;
    const h = bytes[p + 1] >> 4, v = bytes[p + 1] & 15, quantTable = bytes[p + 2];
    if (h < 1 || h > 4 || v < 1 || v > 4) {
      throw new JpegError(name, `component ${i} has sampling factors ${h}x${v} (1..4 allowed)`);
    }
    if (quantTable > 3) throw new JpegError(name, `component ${i} uses quant table ${quantTable}`);
    components.push({
      id: bytes[p],
      h,
      v,
      quantTable,
      width: 0,
      height: 0,
      widthInBlocks: 0,
      heightInBlocks: 0,
      blocksPerLine: 0,
      blocksPerColumn: 0,
      coefficientBits: new Int8Array(64).fill(-1),
    });
  }
  const maxH = Math.max(...components.map((c) => c.h));
  const maxV = Math.max(...components.map((c) => c.v));
  const mcusPerLine = Math.ceil(width / (8 * maxH));
  const mcusPerColumn = Math.ceil(height / (8 * maxV));
  let blocksInMcu = 0;
  for (const c of components) {
    if (maxH % c.h !== 0 || maxV % c.v !== 0) {
      throw new JpegError(
        name,
        `sampling factors ${c.h}x${c.v} do not divide the largest ${maxH}x${maxV}`,
      );
    }
    c.width = Math.ceil((width * c.h) / maxH);
    c.height = Math.ceil((height * c.v) / maxV);
    c.widthInBlocks = Math.ceil(c.width / 8);
    c.heightInBlocks = Math.ceil(c.height / 8);
    c.blocksPerLine = mcusPerLine * c.h;
    c.blocksPerColumn = mcusPerColumn * c.v;
    blocksInMcu += c.h * c.v;
  }
  // libjpeg's limit (D_MAX_BLOCKS_IN_MCU) for an interleaved MCU.
  if (count > 1 && blocksInMcu > 10) {
    throw new JpegError(name, `${blocksInMcu} blocks per MCU (at most 10)`);
  }
  return { progressive, width, height, components, maxH, maxV, mcusPerLine, mcusPerColumn };
}

/** Reads a DQT segment into `tables` (natural order, 64 values each). */
export function readQuantTables(
  bytes: Uint8Array,
  at: number,
  end: number,
  tables: (Uint16Array | undefined)[],
  name: string,
): void {
  while (at < end) {
    const precision = bytes[at] >> 4, index = bytes[at] & 15;
    const size = precision === 0 ? 1 : 2;
    if (precision > 1) throw new JpegError(name, `quant table precision ${precision}`);
    if (index > 3) throw new JpegError(name, `quant table index ${index} (0..3 allowed)`);
    if (at + 1 + 64 * size > end) throw new JpegError(name, "quant table (DQT) too short");
    const table = new Uint16Array(64);
    for (let k = 0; k < 64; k++) {
      const p = at + 1 + k * size;
      table[NATURAL_ORDER[k]] = size === 1 ? bytes[p] : (bytes[p] << 8) | bytes[p + 1];
    }
    tables[index] = table;
    at += 1 + 64 * size;
  }
}

/** How libjpeg reads 3 components: as YCbCr (converted to RGB) or as RGB already. */
export function threeComponentsAreRgb(
  frame: Frame,
  sawJfif: boolean,
  adobeTransform: number | undefined,
): boolean {
  if (sawJfif) return false;
  if (adobeTransform !== undefined) return adobeTransform === 0;
  const [a, b, c] = frame.components.map((component) => component.id);
  return a === 0x52 && b === 0x47 && c === 0x42; // 'R', 'G', 'B'
}

/** True for an APP0 segment that is a JFIF header (libjpeg wants at least 14 data bytes). */
export function isJfif(bytes: Uint8Array, at: number, end: number): boolean {
  return end - at >= 14 && bytes[at] === 0x4a && bytes[at + 1] === 0x46 &&
    bytes[at + 2] === 0x49 && bytes[at + 3] === 0x46 && bytes[at + 4] === 0;
}

/** The transform flag of an APP14 "Adobe" segment (12+ data bytes), or undefined. */
export function adobeTransform(bytes: Uint8Array, at: number, end: number): number | undefined {
  const adobe = end - at >= 12 && bytes[at] === 0x41 && bytes[at + 1] === 0x64 &&
    bytes[at + 2] === 0x6f && bytes[at + 3] === 0x62 && bytes[at + 4] === 0x65;
  return adobe ? bytes[at + 11] : undefined;
}
