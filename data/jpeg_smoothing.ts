/**
 * libjpeg's block smoothing for progressive JPEGs whose scans stop before every coefficient is
 * exact (jdcoefct.c decompress_smooth_data, libjpeg-turbo 2.1; see `jpeg.ts`). PIL leaves it on,
 * so a progressive file whose last scans never refine the low-frequency AC coefficients (or
 * never send them at all) is decoded by PIL with estimates in their place; this file makes the
 * same estimates.
 *
 * The idea (JPEG standard, section K.8): a smooth image's low-frequency AC coefficients can be
 * predicted from the DC values of the neighbouring blocks, e.g. a horizontal DC gradient means
 * a nonzero coefficient (0, 1). libjpeg looks at a 5x5 window of DC values around each block and
 * predicts the first 9 AC coefficients in zig-zag order, each as a weighted sum of the window
 * (the tables below) times the DC quantiser, divided by 256 times the coefficient's quantiser,
 * rounded half away from zero. A prediction replaces a coefficient only if it is still zero
 * and not known to be exact, and it is capped below 2^Al when Al bits were still missing.
 * When no AC coefficient was sent at all, a stronger Gaussian-like set of weights is used and
 * the DC value itself is smoothed too.
 *
 * The window's edges follow libjpeg exactly: rows and columns past the image repeat the edge,
 * and near the top and bottom libjpeg's buffering of iMCU rows (v_samp_factor block rows each)
 * makes the row two away repeat the row one away in some places where a real row exists; the
 * row choice below reproduces that.
 *
 * @module
 */

import type { Frame, FrameComponent } from "./jpeg_markers.ts";
import { NATURAL_ORDER } from "./jpeg_markers.ts";
import { idctBlock, type SamplePlane } from "./jpeg_pixels.ts";

/**
 * Weights over the 5x5 DC window (rows above to below, columns left to right) for each of the
 * first 9 AC coefficients (zig-zag 1..9): [when some AC data was sent, when none was].
 */
const AC_WEIGHTS: [number[] | undefined, number[]][] = [
  [ // 1: (0, 1)
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -7, 50, 0, -50, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [-1, -1, 0, 1, 1, -3, 13, 0, -13, 3, -3, 38, 0, -38, 3, -3, 13, 0, -13, 3, -1, -1, 0, 1, 1],
  ],
  [ // 2: (1, 0)
    [0, 0, -7, 0, 0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0, -50, 0, 0, 0, 0, 7, 0, 0],
    [-1, -3, -3, -3, -1, -1, 13, 38, 13, -1, 0, 0, 0, 0, 0, 1, -13, -38, -13, 1, 1, 3, 3, 3, 1],
  ],
  [ // 3: (2, 0)
    [0, 0, -1, 0, 0, 0, 0, 13, 0, 0, 0, 0, -24, 0, 0, 0, 0, 13, 0, 0, 0, 0, -1, 0, 0],
    [0, 0, 1, 0, 0, 0, 2, 7, 2, 0, 0, -5, -14, -5, 0, 0, 2, 7, 2, 0, 0, 0, 1, 0, 0],
  ],
  [ // 4: (1, 1)
    [0, -1, 0, 1, 0, -1, 10, 0, -10, 1, 0, 0, 0, 0, 0, 1, -10, 0, 10, -1, 0, 1, 0, -1, 0],
    [-1, 0, 0, 0, 1, 0, 9, 0, -9, 0, 0, 0, 0, 0, 0, 0, -9, 0, 9, 0, 1, 0, 0, 0, -1],
  ],
  [ // 5: (0, 2)
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, 13, -24, 13, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 2, -5, 2, 0, 1, 7, -14, 7, 1, 0, 2, -5, 2, 0, 0, 0, 0, 0, 0],
  ],
  [ // 6: (0, 3), only when no AC data was sent
    undefined,
    [0, 0, 0, 0, 0, 0, 1, 0, -1, 0, 0, 2, 0, -2, 0, 0, 1, 0, -1, 0, 0, 0, 0, 0, 0],
  ],
  [ // 7: (1, 2)
    undefined,
    [0, 0, 0, 0, 0, 0, 1, -3, 1, 0, 0, 0, 0, 0, 0, 0, -1, 3, -1, 0, 0, 0, 0, 0, 0],
  ],
  [ // 8: (2, 1)
    undefined,
    [0, 0, 0, 0, 0, 0, 1, 0, -1, 0, 0, -3, 0, 3, 0, 0, 1, 0, -1, 0, 0, 0, 0, 0, 0],
  ],
  [ // 9: (3, 0)
    undefined,
    [0, 0, 0, 0, 0, 0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, -1, -2, -1, 0, 0, 0, 0, 0, 0],
  ],
];

/** Weights of the smoothed DC when no AC data was sent. */
const DC_WEIGHTS = [
  -2,
  -6,
  -8,
  -6,
  -2,
  -6,
  6,
  42,
  6,
  -6,
  -8,
  42,
  152,
  42,
  -8,
  -6,
  6,
  42,
  6,
  -6,
  -2,
  -6,
  -8,
  -6,
  -2,
];

/**
 * True when libjpeg would smooth this progressive frame (jdcoefct.c smoothing_ok): every
 * component's DC and first 9 AC quantisers nonzero, every DC at least partly sent, and some
 * of the first 9 AC coefficients of some component not exact.
 */
export function needsSmoothing(frame: Frame): boolean {
  if (!frame.progressive) return false;
  let useful = false;
  for (const c of frame.components) {
    const q = c.quant!;
    if (q[0] === 0) return false;
    for (let k = 1; k <= 9; k++) if (q[NATURAL_ORDER[k]] === 0) return false;
    if (c.coefficientBits[0] < 0) return false;
    for (let k = 1; k <= 9; k++) if (c.coefficientBits[k] !== 0) useful = true;
  }
  return useful;
}

/** `sum * Q00 / (256 Q)` rounded half away from zero, capped below 2^Al when Al > 0. */
function estimate(sum: number, q00: number, q: number, al: number): number {
  const num = q00 * sum;
  let pred = Math.floor((q * 128 + Math.abs(num)) / (q * 256));
  if (al > 0 && pred >= 1 << al) pred = (1 << al) - 1;
  return num >= 0 ? pred : -pred;
}

/** The block rows libjpeg takes as the window's 5 rows around block row `b` (see header). */
function windowRows(component: FrameComponent, totalImcuRows: number, b: number): number[] {
  const v = component.v, imcu = Math.floor(b / v), row = b % v, lastImcu = totalImcuRows - 1;
  const rowsHere = imcu < lastImcu ? v : component.heightInBlocks % v || v;
  const prev = row > 0 || imcu > 0 ? b - 1 : b;
  const prevPrev = row > 1 || imcu > 1 ? b - 2 : prev;
  const next = row < rowsHere - 1 || imcu < lastImcu ? b + 1 : b;
  const nextNext = row < rowsHere - 2 || imcu + 1 < lastImcu ? b + 2 : next;
  return [prevPrev, prev, b, next, nextNext];
}

/**
 * Calls `visit(block, col)` for each block of block row `b` with a smoothed copy of its
 * coefficients (64, natural order), as libjpeg hands them to the IDCT.
 */
export function smoothRow(
  frame: Frame,
  component: FrameComponent,
  b: number,
  visit: (block: Int16Array, col: number) => void,
): void {
  const coefficients = component.coefficients!, quant = component.quant!;
  const bits = component.coefficientBits, perLine = component.blocksPerLine;
  const noAc = bits.subarray(1, 10).every((value) => value === -1);
  const rows = windowRows(component, frame.mcusPerColumn, b);
  const dcAt = (row: number, col: number) => coefficients[(row * perLine + col) * 64];
  // The DC window as libjpeg's sliding registers: column 0 fills the whole window at first.
  const window = new Float64Array(25);
  rows.forEach((row, r) => window.fill(dcAt(row, 0), 5 * r, 5 * r + 5));
  const block = new Int16Array(64), last = component.widthInBlocks - 1;
  for (let col = 0; col <= last; col++) {
    if (col === 0 && col < last) rows.forEach((row, r) => window[5 * r + 3] = dcAt(row, 1));
    if (col + 1 < last) rows.forEach((row, r) => window[5 * r + 4] = dcAt(row, col + 2));
    block.set(coefficients.subarray((b * perLine + col) * 64, (b * perLine + col + 1) * 64));
    for (let k = 1; k <= 9; k++) {
      const weights = AC_WEIGHTS[k - 1][noAc ? 1 : 0], position = NATURAL_ORDER[k];
      if (!weights || bits[k] === 0 || block[position] !== 0) continue;
      block[position] = estimate(dot(weights, window), quant[0], quant[position], bits[k]);
    }
    if (noAc) block[0] = estimate(dot(DC_WEIGHTS, window), quant[0], quant[0], 0);
    visit(block, col);
    for (let r = 0; r < 5; r++) window.copyWithin(5 * r, 5 * r + 1, 5 * r + 5);
  }
}

function dot(weights: number[], window: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < 25; i++) sum += weights[i] * window[i];
  return sum;
}

/** A component's samples as `componentSamples` gives them, from smoothed blocks. */
export function smoothedSamples(frame: Frame, component: FrameComponent): SamplePlane {
  const stride = component.widthInBlocks * 8;
  const data = new Uint8Array(stride * component.heightInBlocks * 8);
  for (let b = 0; b < component.heightInBlocks; b++) {
    smoothRow(frame, component, b, (block, col) => {
      idctBlock(block, 0, component.quant!, data, b * 8 * stride + col * 8, stride);
    });
  }
  return { data, stride, width: component.width, height: component.height };
}
