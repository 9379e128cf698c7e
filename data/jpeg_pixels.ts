/**
 * From quantised DCT coefficients to RGB pixels, with libjpeg-turbo's integer arithmetic so
 * the bytes equal what PIL decodes (see `jpeg.ts` for the whole pipeline):
 *
 * 1. Inverse DCT, libjpeg's "islow" (jidctint.c, the default JDCT_ISLOW): the Loeffler-
 *    Ligtenberg-Moschytz 8-point IDCT on columns then rows in fixed point. Constants are
 *    cosines scaled by 2^13 (CONST_BITS); the column pass keeps 2 extra fraction bits
 *    (PASS1_BITS); the row pass removes them and the 8x scale of the 2-D transform (3 bits),
 *    rounding half up, adds 128 and clamps to 0..255 through libjpeg's range-limit table
 *    (which wraps values far out of range rather than clamping them).
 * 2. Chroma upsampling (jdsample.c, "fancy" upsampling, on by default): a 2x enlargement
 *    weights the nearer input sample 3/4 and the further 1/4 (a triangle filter), with
 *    rounding biases that alternate between output columns/rows so errors do not drift one
 *    way; 2x2 applies it vertically then horizontally in one step (sums of 16ths). Edges
 *    repeat the outermost sample. Components 2 samples wide or narrower, and other ratios,
 *    are enlarged by repetition, as libjpeg does.
 * 3. YCbCr to RGB (jdcolor.c): R = Y + 1.402 Cr', G = Y - 0.34414 Cb' - 0.71414 Cr',
 *    B = Y + 1.772 Cb' (Cb' = Cb - 128), with the products in tables of 16-bit fixed point
 *    and rounded as libjpeg rounds them.
 *
 * @module
 */

import type { FrameComponent } from "./jpeg_markers.ts";

// IDCT constants: round(x * 2^13) (jidctint.c's FIX_ values).
const CONST_BITS = 13, PASS1_BITS = 2;
const FIX_0_298631336 = 2446, FIX_0_390180644 = 3196, FIX_0_541196100 = 4433;
const FIX_0_765366865 = 6270, FIX_0_899976223 = 7373, FIX_1_175875602 = 9633;
const FIX_1_501321110 = 12299, FIX_1_847759065 = 15137, FIX_1_961570560 = 16069;
const FIX_2_053119869 = 16819, FIX_2_562915447 = 20995, FIX_3_072711026 = 25172;

/** Rounds x / 2^n half up, exactly for any safe integer (libjpeg's DESCALE). */
function descale(x: number, n: number): number {
  return Math.floor((x + 2 ** (n - 1)) / 2 ** n);
}

/**
 * libjpeg's range limit for the IDCT output x (before +128), indexed by x & 1023: maps
 * -128..127 to 0..255, clamps 128..511 to 255 and -512..-129 to 0 (values beyond wrap, as in
 * libjpeg, which masks to 10 bits rather than testing the range).
 */
const RANGE_LIMIT = Uint8Array.from(
  { length: 1024 },
  (_, m) => m < 128 ? m + 128 : m < 512 ? 255 : m < 896 ? 0 : m - 896,
);

/**
 * One 1-D pass of the islow IDCT: reads 8 values `input[start + k * step]` (k = 0..7, natural
 * order) and writes the 8 outputs, still multiplied by 2^CONST_BITS, to `out[0..8)`.
 */
function idct8(input: Float64Array, start: number, step: number, out: Float64Array): void {
  const i0 = input[start], i1 = input[start + step], i2 = input[start + 2 * step];
  const i3 = input[start + 3 * step], i4 = input[start + 4 * step];
  const i5 = input[start + 5 * step], i6 = input[start + 6 * step];
  const i7 = input[start + 7 * step];
  // Even part: inputs 0, 2, 4, 6.
  const z1 = (i2 + i6) * FIX_0_541196100;
  const tmp2e = z1 - i6 * FIX_1_847759065;
  const tmp3e = z1 + i2 * FIX_0_765366865;
  const tmp0e = (i0 + i4) * 2 ** CONST_BITS;
  const tmp1e = (i0 - i4) * 2 ** CONST_BITS;
  const tmp10 = tmp0e + tmp3e, tmp13 = tmp0e - tmp3e;
  const tmp11 = tmp1e + tmp2e, tmp12 = tmp1e - tmp2e;
  // Odd part: inputs 7, 5, 3, 1.
  const z5 = (i7 + i3 + i5 + i1) * FIX_1_175875602;
  const za = (i7 + i1) * -FIX_0_899976223, zb = (i5 + i3) * -FIX_2_562915447;
  const zc = (i7 + i3) * -FIX_1_961570560 + z5, zd = (i5 + i1) * -FIX_0_390180644 + z5;
  const tmp0 = i7 * FIX_0_298631336 + za + zc;
  const tmp1 = i5 * FIX_2_053119869 + zb + zd;
  const tmp2 = i3 * FIX_3_072711026 + zb + zc;
  const tmp3 = i1 * FIX_1_501321110 + za + zd;
  out[0] = tmp10 + tmp3;
  out[7] = tmp10 - tmp3;
  out[1] = tmp11 + tmp2;
  out[6] = tmp11 - tmp2;
  out[2] = tmp12 + tmp1;
  out[5] = tmp12 - tmp1;
  out[3] = tmp13 + tmp0;
  out[4] = tmp13 - tmp0;
}

/** Scratch buffers of the IDCT (one decode at a time: JavaScript is single-threaded). */
const dequantised = new Float64Array(64), workspace = new Float64Array(64);
const transformed = new Float64Array(8);

/**
 * The islow IDCT of one block: `coefficients[at..at+64)` (quantised, natural order) times
 * `quant`, into `plane` from `offset` with row stride `stride`.
 */
export function idctBlock(
  coefficients: Int16Array,
  at: number,
  quant: Uint16Array,
  plane: Uint8Array,
  offset: number,
  stride: number,
): void {
  for (let k = 0; k < 64; k++) dequantised[k] = coefficients[at + k] * quant[k];
  // Pass 1: columns, keeping PASS1_BITS fraction bits; `| 0` is C's cast to a 32-bit int.
  for (let x = 0; x < 8; x++) {
    let acZero = true;
    for (let y = 1; y < 8; y++) if (dequantised[8 * y + x] !== 0) acZero = false;
    if (acZero) { // a flat column: every output is the DC term (as the full formula gives)
      const dc = (dequantised[x] * 2 ** PASS1_BITS) | 0;
      for (let y = 0; y < 8; y++) workspace[8 * y + x] = dc;
      continue;
    }
    idct8(dequantised, x, 8, transformed);
    for (let y = 0; y < 8; y++) {
      workspace[8 * y + x] = descale(transformed[y], CONST_BITS - PASS1_BITS) | 0;
    }
  }
  // Pass 2: rows, removing PASS1_BITS and the factor 8, then +128 and the range limit.
  for (let y = 0; y < 8; y++) {
    const row = offset + y * stride;
    let acZero = true;
    for (let x = 1; x < 8; x++) if (workspace[8 * y + x] !== 0) acZero = false;
    if (acZero) {
      const flat = RANGE_LIMIT[descale(workspace[8 * y], PASS1_BITS + 3) & 1023];
      for (let x = 0; x < 8; x++) plane[row + x] = flat;
      continue;
    }
    idct8(workspace, 8 * y, 1, transformed);
    for (let x = 0; x < 8; x++) {
      plane[row + x] = RANGE_LIMIT[descale(transformed[x], CONST_BITS + PASS1_BITS + 3) & 1023];
    }
  }
}

/** A component's samples after the IDCT: `stride` per row, `width` x `height` meaningful. */
export interface SamplePlane {
  data: Uint8Array;
  stride: number;
  width: number;
  height: number;
}

/** Runs the IDCT over every block of a component that covers its samples. */
export function componentSamples(component: FrameComponent, quant: Uint16Array): SamplePlane {
  const stride = component.widthInBlocks * 8;
  const data = new Uint8Array(stride * component.heightInBlocks * 8);
  const coefficients = component.coefficients!;
  for (let row = 0; row < component.heightInBlocks; row++) {
    for (let col = 0; col < component.widthInBlocks; col++) {
      const at = (row * component.blocksPerLine + col) * 64;
      idctBlock(coefficients, at, quant, data, row * 8 * stride + col * 8, stride);
    }
  }
  return { data, stride, width: component.width, height: component.height };
}

/**
 * Enlarges a component by (scaleX, scaleY) to `width` x `height` (cropping the last partial
 * group), as libjpeg's jdsample.c with fancy upsampling on.
 */
export function upsample(
  plane: SamplePlane,
  scaleX: number,
  scaleY: number,
  width: number,
  height: number,
): Uint8Array {
  const fancyWide = plane.width > 2; // libjpeg's condition for h2v1 and h2v2 fancy
  if (scaleX === 2 && scaleY === 1 && fancyWide) return fancy(plane, 2, 1, width, height);
  if (scaleX === 1 && scaleY === 2) return fancy(plane, 1, 2, width, height);
  if (scaleX === 2 && scaleY === 2 && fancyWide) return fancy(plane, 2, 2, width, height);
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const source = Math.floor(y / scaleY) * plane.stride;
    for (let x = 0; x < width; x++) {
      out[y * width + x] = plane.data[source + Math.floor(x / scaleX)];
    }
  }
  return out;
}

/**
 * The triangle filter. Vertically (scaleY 2) output row 2r mixes input row r with row r - 1,
 * and row 2r + 1 mixes r with r + 1, 3:1 (rows past the edges repeat the edge row);
 * horizontally (scaleX 2) the same for columns. libjpeg's rounding biases alternate: h1v2 and
 * h2v1 add 1 to the first output of a pair and 2 to the second before dividing by 4; h2v2 adds
 * 8 and 7 before dividing the sums of 16ths by 16. (libjpeg's h2v1 copies the edge samples;
 * (4 s + 1) >> 2 and (4 s + 2) >> 2 are those copies, so one formula serves.)
 */
function fancy(
  plane: SamplePlane,
  scaleX: number,
  scaleY: number,
  width: number,
  height: number,
): Uint8Array {
  const { data, stride } = plane, last = plane.width - 1;
  const out = new Uint8Array(width * height);
  // Per input column: 3 * nearer row + 1 * further row when scaleY is 2, else the sample.
  const sums = new Int32Array(plane.width);
  for (let y = 0; y < height; y++) {
    const near = (scaleY === 2 ? y >> 1 : y) * stride;
    if (scaleY === 2) {
      const r = y >> 1;
      const far = ((y & 1) === 0 ? Math.max(r - 1, 0) : Math.min(r + 1, plane.height - 1)) * stride;
      for (let i = 0; i <= last; i++) sums[i] = 3 * data[near + i] + data[far + i];
    } else {
      sums.set(data.subarray(near, near + plane.width));
    }
    const row = y * width;
    if (scaleX === 1) { // h1v2
      const bias = (y & 1) === 0 ? 1 : 2;
      for (let x = 0; x < width; x++) out[row + x] = (sums[x] + bias) >> 2;
      continue;
    }
    const [biasEven, biasOdd, shift] = scaleY === 2 ? [8, 7, 4] : [1, 2, 2];
    for (let i = 0; i <= last; i++) {
      const nearer = 3 * sums[i];
      const previous = sums[i > 0 ? i - 1 : 0], next = sums[i < last ? i + 1 : last];
      const x = 2 * i;
      out[row + x] = (nearer + previous + biasEven) >> shift;
      if (x + 1 < width) out[row + x + 1] = (nearer + next + biasOdd) >> shift;
    }
  }
  return out;
}

// YCbCr -> RGB tables (jdcolor.c, 16-bit fixed point: FIX(x) = round(x * 2^16)).
const SCALEBITS = 16, ONE_HALF = 1 << (SCALEBITS - 1);
const fix = (x: number) => Math.floor(x * 2 ** SCALEBITS + 0.5);
const crToR = new Int32Array(256), cbToB = new Int32Array(256);
const crToG = new Int32Array(256), cbToG = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  crToR[i] = (fix(1.402) * x + ONE_HALF) >> SCALEBITS;
  cbToB[i] = (fix(1.772) * x + ONE_HALF) >> SCALEBITS;
  crToG[i] = -fix(0.71414) * x;
  cbToG[i] = -fix(0.34414) * x + ONE_HALF; // the rounding half folded in, as libjpeg does
}

const clamp = (v: number) => v < 0 ? 0 : v > 255 ? 255 : v;

/** Converts full-size Y, Cb, Cr planes to RGB planes in `out` ([3, H, W]). */
export function yccToRgb(y: Uint8Array, cb: Uint8Array, cr: Uint8Array, out: Uint8Array): void {
  const n = y.length;
  for (let i = 0; i < n; i++) {
    const luma = y[i], b = cb[i], r = cr[i];
    out[i] = clamp(luma + crToR[r]);
    out[n + i] = clamp(luma + ((cbToG[b] + crToG[r]) >> SCALEBITS));
    out[2 * n + i] = clamp(luma + cbToB[b]);
  }
}
