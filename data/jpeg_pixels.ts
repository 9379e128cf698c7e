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
 * libjpeg's range limit for the IDCT output x (before +128): masks x to 10 bits, then maps
 * -128..127 to 0..255, clamps 128..383 to 255 and -384..-129 to 0 (and wraps beyond).
 */
function rangeLimit(x: number): number {
  const m = x & 1023;
  return m < 128 ? m + 128 : m < 512 ? 255 : m < 896 ? 0 : m - 896;
}

/**
 * One 1-D pass of the islow IDCT over 8 values `v` (natural order), writing the 8 outputs
 * unscaled (still multiplied by 2^CONST_BITS) into `out`.
 */
function idct8(v: Float64Array, out: Float64Array): void {
  // Even part: inputs 0, 2, 4, 6.
  const z1 = (v[2] + v[6]) * FIX_0_541196100;
  const tmp2e = z1 - v[6] * FIX_1_847759065;
  const tmp3e = z1 + v[2] * FIX_0_765366865;
  const tmp0e = (v[0] + v[4]) * 2 ** CONST_BITS;
  const tmp1e = (v[0] - v[4]) * 2 ** CONST_BITS;
  const tmp10 = tmp0e + tmp3e, tmp13 = tmp0e - tmp3e;
  const tmp11 = tmp1e + tmp2e, tmp12 = tmp1e - tmp2e;
  // Odd part: inputs 7, 5, 3, 1.
  const i7 = v[7], i5 = v[5], i3 = v[3], i1 = v[1];
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
const column = new Float64Array(8), transformed = new Float64Array(8);
const workspace = new Int32Array(64);

/**
 * The islow IDCT of one block: `coefficients[at..at+64)` (quantised, natural order) times
 * `quant`, into `plane` at (x, y) with row stride `stride`.
 */
export function idctBlock(
  coefficients: Int16Array,
  at: number,
  quant: Uint16Array,
  plane: Uint8Array,
  offset: number,
  stride: number,
): void {
  // Pass 1: columns, keeping PASS1_BITS fraction bits; the workspace is C's int (32 bits).
  for (let x = 0; x < 8; x++) {
    let acZero = true;
    for (let y = 1; y < 8; y++) if (coefficients[at + 8 * y + x] !== 0) acZero = false;
    if (acZero) { // a flat column: every output is the DC term (as the full formula gives)
      const dc = coefficients[at + x] * quant[x] * 2 ** PASS1_BITS;
      for (let y = 0; y < 8; y++) workspace[8 * y + x] = dc;
      continue;
    }
    for (let y = 0; y < 8; y++) column[y] = coefficients[at + 8 * y + x] * quant[8 * y + x];
    idct8(column, transformed);
    for (let y = 0; y < 8; y++) {
      workspace[8 * y + x] = descale(transformed[y], CONST_BITS - PASS1_BITS);
    }
  }
  // Pass 2: rows, removing PASS1_BITS and the factor 8, then +128 and the range limit.
  for (let y = 0; y < 8; y++) {
    const row = offset + y * stride;
    let acZero = true;
    for (let x = 1; x < 8; x++) if (workspace[8 * y + x] !== 0) acZero = false;
    if (acZero) {
      plane.fill(rangeLimit(descale(workspace[8 * y], PASS1_BITS + 3)), row, row + 8);
      continue;
    }
    for (let x = 0; x < 8; x++) column[x] = workspace[8 * y + x];
    idct8(column, transformed);
    for (let x = 0; x < 8; x++) {
      plane[row + x] = rangeLimit(descale(transformed[x], CONST_BITS + PASS1_BITS + 3));
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
 * The triangle filter. Vertically (scaleY 2) output row 2r mixes input row r with r - 1 and
 * row 2r + 1 mixes r with r + 1, 3:1 (edge rows repeat); horizontally the same for columns.
 * Biases follow libjpeg: 1D h2v1 and h1v2 round with +1 (first output) and +2 (second),
 * 2D h2v2 with +8 and +7 on sums of 16ths, and the outermost columns of h2v1 and h2v2 copy
 * the (vertically mixed) edge sample.
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
    const r = scaleY === 2 ? y >> 1 : y;
    const near = r * stride;
    if (scaleY === 2) {
      const other = (y & 1) === 0 ? Math.max(r - 1, 0) : Math.min(r + 1, plane.height - 1);
      for (let i = 0; i <= last; i++) sums[i] = 3 * data[near + i] + data[other * stride + i];
    } else {
      sums.set(data.subarray(near, near + plane.width));
    }
    const row = y * width;
    if (scaleX === 1) { // h1v2: (3 near + 1 far + bias) / 4, bias 1 above, 2 below
      const bias = (y & 1) === 0 ? 1 : 2;
      for (let x = 0; x < width; x++) out[row + x] = (sums[x] + bias) >> 2;
      continue;
    }
    for (let x = 0; x < width; x++) {
      const i = x >> 1, even = (x & 1) === 0;
      if (scaleY === 1) { // h2v1: (3 nearer + 1 further + bias) / 4
        const s = sums[i];
        if (even) out[row + x] = i === 0 ? s : (3 * s + sums[i - 1] + 1) >> 2;
        else out[row + x] = i === last ? s : (3 * s + sums[i + 1] + 2) >> 2;
      } else if (even) { // h2v2: sums are 4ths, the result 16ths
        out[row + x] = i === 0 ? (4 * sums[0] + 8) >> 4 : (3 * sums[i] + sums[i - 1] + 8) >> 4;
      } else {
        out[row + x] = i === last
          ? (4 * sums[last] + 7) >> 4
          : (3 * sums[i] + sums[i + 1] + 7) >> 4;
      }
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
