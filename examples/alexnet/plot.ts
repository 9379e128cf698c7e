/**
 * Pictures for the AlexNet example, as PNG bytes: training curves, run comparisons and the
 * paper's Figure 3 (the first convolutional layer's filters).
 *
 * Everything is drawn from first principles on an RGBA pixel buffer (lines by Bresenham's
 * algorithm, text from a built-in 5x7 bitmap font) so the example needs no font file and no
 * native code. The PNG encoder is imagescript's pure-JavaScript one (`imagescript/png/node.js`);
 * importing `"imagescript"` itself would load a native addon and need `--allow-ffi` (see
 * data/codecs.ts).
 *
 * @module
 */

import pngJs from "imagescript/png/node.js";

/** An sRGB colour, each channel in [0, 255]. */
export type Rgb = [number, number, number];

/** One line of a {@link lineChartPng}. */
export interface ChartSeries {
  /** Legend entry. */
  name: string;
  /** `[x, y]` pairs in drawing order; a non-finite coordinate breaks the line there. */
  points: [number, number][];
  /** Line colour; default: the next colour of a 10-colour palette (matplotlib's tab10). */
  color?: Rgb;
  /** Which y axis the series is measured against; default "left". */
  axis?: "left" | "right";
  /** Draw the line dashed (e.g. test metrics next to solid training metrics); default false. */
  dashed?: boolean;
}

/** Options of {@link lineChartPng}. */
export interface LineChartOptions {
  /** Drawn centred above the plot; "" for none. */
  title: string;
  /** Label under the x axis. */
  xLabel: string;
  /** The lines; empty series and non-finite points are allowed. */
  series: ChartSeries[];
  /** Image width in pixels; default 800. */
  width?: number;
  /** Image height in pixels; default 500. */
  height?: number;
  /** Label of the left y axis (drawn vertically). */
  yLabelLeft?: string;
  /** Label of the right y axis; the right axis is drawn only when a series uses it. */
  yLabelRight?: string;
  /** Fixed `[min, max]` of the left axis instead of the data's range (rounded out to ticks). */
  yRangeLeft?: [number, number];
  /** Fixed `[min, max]` of the right axis, e.g. `[0, 100]` for accuracy in percent. */
  yRangeRight?: [number, number];
}

// matplotlib's "tab10": ten colours that stay distinguishable for most colour-blind readers.
const PALETTE: Rgb[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
];
const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [30, 30, 30];
const GRID: Rgb = [225, 225, 225];

// ---------------------------------------------------------------------------------------------
// A 5x7 bitmap font: each glyph is 7 rows of 5 pixels, '#' set. Lower case is drawn as upper
// case; a character without a glyph is drawn as '?'.

const GLYPH_WIDTH = 5;
const GLYPH_HEIGHT = 7;
// One blank column between glyphs.
const GLYPH_ADVANCE = GLYPH_WIDTH + 1;

const FONT_ROWS: Record<string, string> = {
  "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
  "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
  "2": ".###. #...# ....# ...#. ..#.. .#... #####",
  "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
  "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
  "5": "##### #.... ####. ....# ....# #...# .###.",
  "6": "..##. .#... #.... ####. #...# #...# .###.",
  "7": "##### ....# ...#. ..#.. .#... .#... .#...",
  "8": ".###. #...# #...# .###. #...# #...# .###.",
  "9": ".###. #...# #...# .#### ....# ...#. .##..",
  "A": ".###. #...# #...# ##### #...# #...# #...#",
  "B": "####. #...# #...# ####. #...# #...# ####.",
  "C": ".###. #...# #.... #.... #.... #...# .###.",
  "D": "###.. #..#. #...# #...# #...# #..#. ###..",
  "E": "##### #.... #.... ####. #.... #.... #####",
  "F": "##### #.... #.... ####. #.... #.... #....",
  "G": ".###. #...# #.... #.### #...# #...# .####",
  "H": "#...# #...# #...# ##### #...# #...# #...#",
  "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
  "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
  "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
  "L": "#.... #.... #.... #.... #.... #.... #####",
  "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
  "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
  "O": ".###. #...# #...# #...# #...# #...# .###.",
  "P": "####. #...# #...# ####. #.... #.... #....",
  "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
  "R": "####. #...# #...# ####. #.#.. #..#. #...#",
  "S": ".#### #.... #.... .###. ....# ....# ####.",
  "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
  "U": "#...# #...# #...# #...# #...# #...# .###.",
  "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
  "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
  "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
  "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
  "Z": "##### ....# ...#. ..#.. .#... #.... #####",
  ".": "..... ..... ..... ..... ..... .##.. .##..",
  ",": "..... ..... ..... ..... .##.. ..#.. .#...",
  "%": "##... ##..# ...#. ..#.. .#... #..## ...##",
  "-": "..... ..... ..... .###. ..... ..... .....",
  "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
  "=": "..... ..... ##### ..... ##### ..... .....",
  ":": "..... .##.. .##.. ..... .##.. .##.. .....",
  "/": "..... ....# ...#. ..#.. .#... #.... .....",
  "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
  ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
  "_": "..... ..... ..... ..... ..... ..... #####",
  "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
  " ": "..... ..... ..... ..... ..... ..... .....",
};

/** Glyph pixels as 7 rows of 5 booleans, parsed once. */
const FONT: Map<string, boolean[][]> = new Map(
  Object.entries(FONT_ROWS).map(([char, rows]) => [
    char,
    rows.split(" ").map((row) => [...row].map((pixel) => pixel === "#")),
  ]),
);

function glyphOf(char: string): boolean[][] {
  return FONT.get(char.toUpperCase()) ?? FONT.get("?")!;
}

/** Width in pixels of `text` drawn at integer `scale` (no trailing gap). */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * GLYPH_ADVANCE - 1) * scale;
}

// ---------------------------------------------------------------------------------------------
// The canvas: RGBA bytes, row-major, plus an optional clip rectangle for series lines.

interface Canvas {
  width: number;
  height: number;
  rgba: Uint8Array;
}

/** Inclusive pixel rectangle. */
interface Rect {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

function createCanvas(width: number, height: number, background: Rgb): Canvas {
  const rgba = new Uint8Array(4 * width * height);
  for (let i = 0; i < width * height; i++) {
    rgba[4 * i] = background[0];
    rgba[4 * i + 1] = background[1];
    rgba[4 * i + 2] = background[2];
    rgba[4 * i + 3] = 255;
  }
  return { width, height, rgba };
}

function setPixel(canvas: Canvas, x: number, y: number, color: Rgb, clip?: Rect): void {
  if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return;
  if (clip && (x < clip.left || x > clip.right || y < clip.top || y > clip.bottom)) return;
  const i = 4 * (y * canvas.width + x);
  canvas.rgba[i] = color[0];
  canvas.rgba[i + 1] = color[1];
  canvas.rgba[i + 2] = color[2];
}

function fillRect(canvas: Canvas, x: number, y: number, w: number, h: number, color: Rgb): void {
  for (let row = y; row < y + h; row++) {
    for (let col = x; col < x + w; col++) setPixel(canvas, col, row, color);
  }
}

/**
 * Draws `text` with its top-left corner at (x, y). `direction: "up"` rotates it 90 degrees
 * counter-clockwise (for y-axis labels): (x, y) is then the bottom-left corner of the text.
 */
function drawText(
  canvas: Canvas,
  text: string,
  x: number,
  y: number,
  scale: number,
  color: Rgb,
  direction: "right" | "up" = "right",
): void {
  [...text].forEach((char, index) => {
    const glyph = glyphOf(char);
    const along = index * GLYPH_ADVANCE * scale;
    for (let row = 0; row < GLYPH_HEIGHT; row++) {
      for (let col = 0; col < GLYPH_WIDTH; col++) {
        if (!glyph[row][col]) continue;
        const u = along + col * scale; // along the baseline
        const v = row * scale; // down from the top of the glyph
        if (direction === "right") fillRect(canvas, x + u, y + v, scale, scale, color);
        else fillRect(canvas, x + v, y - u - scale + 1, scale, scale, color);
      }
    }
  });
}

/**
 * Liang-Barsky: the part of the segment inside `clip`, or null. Clipping before rasterizing
 * keeps Bresenham from walking millions of off-screen pixels for a wild value.
 */
function clipSegment(
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  clip: Rect,
): [number, number, number, number] | null {
  const dx = x1 - x0;
  const dy = y1 - y0;
  let t0 = 0;
  let t1 = 1;
  const edges: [number, number][] = [
    [-dx, x0 - clip.left],
    [dx, clip.right - x0],
    [-dy, y0 - clip.top],
    [dy, clip.bottom - y0],
  ];
  for (const [p, q] of edges) {
    if (p === 0) {
      if (q < 0) return null;
      continue;
    }
    const t = q / p;
    if (p < 0) t0 = Math.max(t0, t);
    else t1 = Math.min(t1, t);
    if (t0 > t1) return null;
  }
  return [x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy];
}

/** How a line is stroked; `dash` counts pixels walked, so dashes run on across segments. */
interface Stroke {
  color: Rgb;
  thickness: number;
  /** `[on, off]` lengths in pixels, or null for solid. */
  dash: [number, number] | null;
  walked: number;
}

/** Bresenham's line, each pixel stamped as a `thickness`-wide square. */
function drawLine(
  canvas: Canvas,
  from: [number, number],
  to: [number, number],
  stroke: Stroke,
  clip?: Rect,
): void {
  let x0 = Math.round(from[0]);
  let y0 = Math.round(from[1]);
  const x1 = Math.round(to[0]);
  const y1 = Math.round(to[1]);
  const dx = Math.abs(x1 - x0);
  const dy = -Math.abs(y1 - y0);
  const stepX = x0 < x1 ? 1 : -1;
  const stepY = y0 < y1 ? 1 : -1;
  const offset = Math.floor((stroke.thickness - 1) / 2);
  let error = dx + dy;
  for (;;) {
    const period = stroke.dash ? stroke.dash[0] + stroke.dash[1] : 1;
    if (!stroke.dash || stroke.walked % period < stroke.dash[0]) {
      for (let i = 0; i < stroke.thickness; i++) {
        for (let j = 0; j < stroke.thickness; j++) {
          setPixel(canvas, x0 - offset + i, y0 - offset + j, stroke.color, clip);
        }
      }
    }
    if (x0 === x1 && y0 === y1) break;
    stroke.walked++;
    const doubled = 2 * error;
    if (doubled >= dy) {
      error += dy;
      x0 += stepX;
    }
    if (doubled <= dx) {
      error += dx;
      y0 += stepY;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Axes.

/** Evenly spaced axis ticks whose step is 1, 2 or 5 times a power of ten. */
export interface Ticks {
  /** Axis minimum: the data minimum rounded down to a multiple of `step`. */
  min: number;
  /** Axis maximum: the data maximum rounded up to a multiple of `step`. */
  max: number;
  /** Distance between ticks. */
  step: number;
  /** `min, min + step, ..., max`. */
  values: number[];
}

/**
 * "Nice" ticks covering [min, max] with about `target` intervals. A degenerate range (one
 * value, or no finite data) is widened so that a single point still gets an axis.
 */
export function niceTicks(min: number, max: number, target = 5): Ticks {
  if (!Number.isFinite(min) || !Number.isFinite(max)) [min, max] = [0, 1];
  if (min > max) [min, max] = [max, min];
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    [min, max] = [min - pad, max + pad];
  }
  const rough = (max - min) / target;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const residual = rough / magnitude;
  const step = (residual <= 1 ? 1 : residual <= 2 ? 2 : residual <= 5 ? 5 : 10) * magnitude;
  // A relative epsilon so that max = 3 * 0.1 = 0.30000000000000004 does not add a tick.
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const values: number[] = [];
  for (let i = first; i <= last; i++) values.push(Number((i * step).toPrecision(12)));
  return { min: values[0], max: values[values.length - 1], step, values };
}

function formatTick(value: number, step: number): string {
  if (Math.abs(value) < step * 1e-9) value = 0;
  const largest = Math.max(Math.abs(value), step);
  if (step < 1e-4 || largest >= 1e7) return value.toExponential(1);
  return value.toFixed(Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
}

function finiteRange(series: ChartSeries[], coordinate: 0 | 1): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (const s of series) {
    for (const point of s.points) {
      const v = point[coordinate];
      if (!Number.isFinite(v)) continue;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  }
  return [min, max];
}

function checkSize(op: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 64 || value > 8192) {
    throw new RangeError(`${op}: ${name} must be an integer in [64, 8192], got ${value}`);
  }
}

function encodeRgba(canvas: Canvas): Uint8Array {
  const encoder = pngJs as {
    encode(
      data: Uint8Array,
      options: { width: number; height: number; channels: number; level: number },
    ): Uint8Array;
  };
  // Deflate level 6 (zlib's default): charts are mostly flat colour and shrink about 50-fold;
  // imagescript's default, 0, stores the pixels uncompressed.
  return encoder.encode(canvas.rgba, {
    width: canvas.width,
    height: canvas.height,
    channels: 4,
    level: 6,
  });
}

// ---------------------------------------------------------------------------------------------
// Line charts.

/**
 * A line chart as PNG bytes: white background, a title, x and y axes with about five "nice"
 * ticks (1, 2 or 5 times a power of ten) and light grid lines, 2-pixel lines, a legend under
 * the x label, and a second y axis on the right for series with `axis: "right"` (loss on the
 * left, accuracy in percent on the right, say). Non-finite points break a line; a point with
 * no finite neighbour is drawn as a small square, so a one-point series is still visible.
 * Text is upper case (the built-in bitmap font has no lower case).
 */
export function lineChartPng(options: LineChartOptions): Uint8Array {
  const width = options.width ?? 800;
  const height = options.height ?? 500;
  checkSize("lineChartPng", "width", width);
  checkSize("lineChartPng", "height", height);
  const canvas = createCanvas(width, height, WHITE);

  // Text scale grows with the image so that a 1600x1000 chart reads like an 800x500 one.
  const scale = Math.max(1, Math.round(Math.min(width, height) / 250));
  const titleScale = scale + 1;
  const pad = 4 * scale;
  const textHeight = GLYPH_HEIGHT * scale;
  const tickLength = 3 * scale;
  const thickness = Math.max(2, scale);

  const styled = options.series.map((s, i) => ({
    ...s,
    color: s.color ?? PALETTE[i % PALETTE.length],
    axis: s.axis ?? "left",
  }));
  const leftSeries = styled.filter((s) => s.axis === "left");
  const rightSeries = styled.filter((s) => s.axis === "right");
  const hasRight = rightSeries.length > 0;
  const hasLeft = leftSeries.length > 0 || !hasRight;

  const xTicks = niceTicks(...finiteRange(styled, 0));
  const leftTicks = niceTicks(...(options.yRangeLeft ?? finiteRange(leftSeries, 1)));
  const rightTicks = niceTicks(...(options.yRangeRight ?? finiteRange(rightSeries, 1)));
  const labelsOf = (ticks: Ticks) => ticks.values.map((v) => formatTick(v, ticks.step));
  const xLabels = labelsOf(xTicks);
  const leftLabels = labelsOf(leftTicks);
  const rightLabels = labelsOf(rightTicks);
  const widest = (labels: string[]) => Math.max(0, ...labels.map((l) => textWidth(l, scale)));

  // Legend entries: a short stroke of the series' line, then its name; rows wrap.
  const swatchWidth = 8 * pad;
  const entryWidth = (name: string) => swatchWidth + pad + textWidth(name, scale) + 3 * pad;

  const sideWidth = (labels: string[], axisLabel: string | undefined) =>
    pad + (axisLabel ? textHeight + 2 * pad : 0) + widest(labels) + pad + tickLength;
  const left = hasLeft ? sideWidth(leftLabels, options.yLabelLeft) : 4 * pad;
  const rightMargin = hasRight
    ? sideWidth(rightLabels, options.yLabelRight)
    : Math.max(4 * pad, textWidth(xLabels[xLabels.length - 1], scale) / 2 + pad);
  const plotWidth = width - left - rightMargin;

  const legendRows: (typeof styled)[] = [];
  let rowWidth = Infinity;
  for (const s of styled) {
    if (rowWidth + entryWidth(s.name) > plotWidth) {
      legendRows.push([]);
      rowWidth = 0;
    }
    legendRows[legendRows.length - 1].push(s);
    rowWidth += entryWidth(s.name);
  }
  const legendRowHeight = textHeight + 2 * pad;

  const top = 2 * pad + (options.title ? GLYPH_HEIGHT * titleScale + 2 * pad : 0);
  const bottomMargin = tickLength + pad + textHeight + 2 * pad +
    (options.xLabel ? textHeight + 2 * pad : 0) + legendRows.length * legendRowHeight + pad;
  const plot: Rect = {
    left,
    top,
    right: width - rightMargin - 1,
    bottom: height - bottomMargin - 1,
  };
  if (plot.right - plot.left < 16 || plot.bottom - plot.top < 16) {
    throw new RangeError(
      `lineChartPng: a ${width}x${height} image leaves no room for the plot ` +
        `(${legendRows.length} legend rows, ${styled.length} series); make it larger`,
    );
  }

  const toX = (x: number) =>
    plot.left + (x - xTicks.min) / (xTicks.max - xTicks.min) * (plot.right - plot.left);
  const toY = (y: number, ticks: Ticks) =>
    plot.bottom - (y - ticks.min) / (ticks.max - ticks.min) * (plot.bottom - plot.top);

  // Grid lines for the x ticks and for the primary y axis' ticks, under everything else.
  const gridTicks = hasLeft ? leftTicks : rightTicks;
  for (const v of xTicks.values) {
    fillRect(canvas, Math.round(toX(v)), plot.top, 1, plot.bottom - plot.top + 1, GRID);
  }
  for (const v of gridTicks.values) {
    fillRect(canvas, plot.left, Math.round(toY(v, gridTicks)), plot.right - plot.left + 1, 1, GRID);
  }

  // Series, clipped to the plot rectangle.
  for (const s of styled) {
    const ticks = s.axis === "left" ? leftTicks : rightTicks;
    const stroke: Stroke = {
      color: s.color,
      thickness,
      dash: s.dashed ? [6 * thickness, 4 * thickness] : null,
      walked: 0,
    };
    const pixels = s.points.map(([x, y]): [number, number] | null =>
      Number.isFinite(x) && Number.isFinite(y) ? [toX(x), toY(y, ticks)] : null
    );
    pixels.forEach((p, i) => {
      if (!p) return;
      const next = pixels[i + 1];
      if (next) {
        const clipped = clipSegment(p[0], p[1], next[0], next[1], plot);
        if (clipped) {
          drawLine(canvas, [clipped[0], clipped[1]], [clipped[2], clipped[3]], stroke, plot);
        }
      } else if (!pixels[i - 1]) {
        const [x, y] = [Math.round(p[0]), Math.round(p[1])];
        for (let dy = -thickness; dy <= thickness; dy++) {
          for (let dx = -thickness; dx <= thickness; dx++) {
            setPixel(canvas, x + dx, y + dy, s.color, plot);
          }
        }
      }
    });
  }

  // Frame, ticks and tick labels.
  const frame: Stroke = { color: INK, thickness: 1, dash: null, walked: 0 };
  drawLine(canvas, [plot.left, plot.top], [plot.right, plot.top], frame);
  drawLine(canvas, [plot.left, plot.bottom], [plot.right, plot.bottom], frame);
  drawLine(canvas, [plot.left, plot.top], [plot.left, plot.bottom], frame);
  drawLine(canvas, [plot.right, plot.top], [plot.right, plot.bottom], frame);
  xTicks.values.forEach((v, i) => {
    const x = Math.round(toX(v));
    fillRect(canvas, x, plot.bottom + 1, 1, tickLength, INK);
    const label = xLabels[i];
    drawText(
      canvas,
      label,
      x - Math.floor(textWidth(label, scale) / 2),
      plot.bottom + tickLength + pad,
      scale,
      INK,
    );
  });
  const drawYAxis = (ticks: Ticks, labels: string[], side: "left" | "right", title?: string) => {
    ticks.values.forEach((v, i) => {
      const y = Math.round(toY(v, ticks));
      const labelTop = y - Math.floor(textHeight / 2);
      if (side === "left") {
        fillRect(canvas, plot.left - tickLength, y, tickLength, 1, INK);
        const labelLeft = plot.left - tickLength - pad - textWidth(labels[i], scale);
        drawText(canvas, labels[i], labelLeft, labelTop, scale, INK);
      } else {
        fillRect(canvas, plot.right + 1, y, tickLength, 1, INK);
        drawText(canvas, labels[i], plot.right + tickLength + pad, labelTop, scale, INK);
      }
    });
    if (!title) return;
    const centre = Math.round((plot.top + plot.bottom) / 2 + textWidth(title, scale) / 2);
    const x = side === "left" ? pad : width - pad - textHeight;
    drawText(canvas, title, x, centre, scale, INK, "up");
  };
  if (hasLeft) drawYAxis(leftTicks, leftLabels, "left", options.yLabelLeft);
  if (hasRight) drawYAxis(rightTicks, rightLabels, "right", options.yLabelRight);

  // Title, x label, legend.
  const centredX = (text: string, s: number) =>
    Math.round((plot.left + plot.right) / 2 - textWidth(text, s) / 2);
  if (options.title) {
    drawText(canvas, options.title, centredX(options.title, titleScale), 2 * pad, titleScale, INK);
  }
  let y = plot.bottom + tickLength + pad + textHeight + 2 * pad;
  if (options.xLabel) {
    drawText(canvas, options.xLabel, centredX(options.xLabel, scale), y, scale, INK);
    y += textHeight + 2 * pad;
  }
  for (const row of legendRows) {
    let x = plot.left;
    for (const s of row) {
      const lineY = y + Math.floor(textHeight / 2);
      const stroke: Stroke = {
        color: s.color,
        thickness,
        dash: s.dashed ? [3 * thickness, 2 * thickness] : null,
        walked: 0,
      };
      drawLine(canvas, [x, lineY], [x + swatchWidth - 1, lineY], stroke);
      drawText(canvas, s.name, x + swatchWidth + pad, y, scale, INK);
      x += entryWidth(s.name);
    }
    y += legendRowHeight;
  }
  return encodeRgba(canvas);
}

/** One record of a training log; absent fields are skipped, NaN fields break the line. */
export interface TrainingMetrics {
  /** Epoch (may be fractional for records logged mid-epoch). */
  epoch: number;
  /** Global optimizer step, used as the x coordinate when `x: "step"`. */
  step?: number;
  /** Mean training loss (cross-entropy). */
  trainLoss?: number;
  /** Mean loss on the held-out set. */
  testLoss?: number;
  /** Fraction correct in [0, 1] (or percent, see `accuracyUnit`). */
  trainAccuracy?: number;
  /** Fraction correct in [0, 1] (or percent, see `accuracyUnit`). */
  testAccuracy?: number;
}

/** Options of {@link trainingCurvesPng}. */
export interface TrainingCurvesOptions {
  /** Default "TRAINING". */
  title?: string;
  /** The x coordinate: `epoch` (default) or `step` (records without a step are skipped). */
  x?: "epoch" | "step";
  /** Whether accuracies in the records are fractions (default) or already percent. */
  accuracyUnit?: "fraction" | "percent";
  /** Image width in pixels; default 800. */
  width?: number;
  /** Image height in pixels; default 500. */
  height?: number;
}

/**
 * Training curves as PNG bytes: train and test loss on the left axis (blue), train and test
 * accuracy in percent on the right axis (orange, from 0 to 100), train solid and test dashed.
 * Records may mix kinds (per-step losses, per-epoch test accuracy): each curve takes the
 * records where its field is present.
 */
export function trainingCurvesPng(
  metrics: TrainingMetrics[],
  options: TrainingCurvesOptions = {},
): Uint8Array {
  const xField = options.x ?? "epoch";
  const percent = (options.accuracyUnit ?? "fraction") === "fraction" ? 100 : 1;
  const curve = (field: keyof TrainingMetrics, factor: number): [number, number][] =>
    metrics
      .filter((m) => m[field] !== undefined && m[xField] !== undefined)
      .map((m) => [m[xField]!, m[field]! * factor]);
  const blue = PALETTE[0];
  const orange = PALETTE[1];
  const candidates: ChartSeries[] = [
    { name: "train loss", points: curve("trainLoss", 1), color: blue },
    { name: "test loss", points: curve("testLoss", 1), color: blue, dashed: true },
    { name: "train acc", points: curve("trainAccuracy", percent), color: orange, axis: "right" },
    {
      name: "test acc",
      points: curve("testAccuracy", percent),
      color: orange,
      axis: "right",
      dashed: true,
    },
  ];
  return lineChartPng({
    title: options.title ?? "TRAINING",
    xLabel: xField,
    series: candidates.filter((s) => s.points.length > 0),
    yLabelLeft: "loss",
    yLabelRight: "accuracy %",
    yRangeRight: [0, 100],
    width: options.width,
    height: options.height,
  });
}

/**
 * Several runs of one metric on one axis (an ablation: with and without LRN, say), one colour
 * per run, as PNG bytes.
 */
export function comparisonChartPng(
  runs: { name: string; points: [number, number][] }[],
  options: { title: string; xLabel: string; yLabel: string; width?: number; height?: number },
): Uint8Array {
  return lineChartPng({
    title: options.title,
    xLabel: options.xLabel,
    yLabelLeft: options.yLabel,
    series: runs.map((run) => ({ name: run.name, points: run.points })),
    width: options.width,
    height: options.height,
  });
}

// ---------------------------------------------------------------------------------------------
// Filters (the paper's Figure 3).

/** Options of {@link filterGridPng}. */
export interface FilterGridOptions {
  /** Each weight becomes a `scale` x `scale` block (nearest neighbour); default 4. */
  scale?: number;
  /** Tiles per row; default min(16, filters per group), Figure 3's 16 columns. */
  columns?: number;
  /** White pixels around and between tiles; default 2. */
  gap?: number;
  /**
   * Filter groups drawn as separate blocks of rows, with `4 * gap` white rows between blocks;
   * default 1. `groups: 2` shows the paper's two GPUs: filters [0, O/2) on top, [O/2, O) below
   * (section 3.2, Figure 3).
   */
  groups?: number;
}

/**
 * The first convolutional layer's filters as a grid of image tiles, as PNG bytes, after the
 * paper's Figure 3. Weights are `[O, C, KH, KW]` row-major. A tile is RGB when C = 3,
 * grayscale when C = 1, and the mean over channels otherwise.
 *
 * Layout (for tests and for cropping): with `tileW = KW * scale`, `tileH = KH * scale`,
 * `perGroup = O / groups`, `rows = ceil(perGroup / columns)` and
 * `blockH = rows * (tileH + gap)`, filter `o = g * perGroup + i` has its top-left pixel at
 * `x = gap + (i % columns) * (tileW + gap)`,
 * `y = gap + g * (blockH + 4 * gap) + floor(i / columns) * (tileH + gap)`.
 */
export function filterGridPng(
  weights: Float32Array,
  shape: [number, number, number, number],
  options: FilterGridOptions = {},
): Uint8Array {
  const [filters, channels, kernelHeight, kernelWidth] = shape;
  if (shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new RangeError(`filterGridPng: shape must be 4 positive integers, got [${shape}]`);
  }
  const size = channels * kernelHeight * kernelWidth;
  if (weights.length !== filters * size) {
    throw new RangeError(
      `filterGridPng: shape [${shape}] needs ${filters * size} weights, got ${weights.length}`,
    );
  }
  const scale = options.scale ?? 4;
  const gap = options.gap ?? 2;
  const groups = options.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1 || filters % groups !== 0) {
    throw new RangeError(
      `filterGridPng: groups must be a positive divisor of ${filters} filters, got ${groups}`,
    );
  }
  const perGroup = filters / groups;
  const columns = options.columns ?? Math.min(16, perGroup);
  for (
    const [name, value, least] of [["scale", scale, 1], ["columns", columns, 1], [
      "gap",
      gap,
      0,
    ]] as const
  ) {
    if (!Number.isInteger(value) || value < least) {
      throw new RangeError(`filterGridPng: ${name} must be an integer >= ${least}, got ${value}`);
    }
  }

  const tileWidth = kernelWidth * scale;
  const tileHeight = kernelHeight * scale;
  const rows = Math.ceil(perGroup / columns);
  const blockHeight = rows * (tileHeight + gap);
  const groupGap = 4 * gap;
  const width = gap + columns * (tileWidth + gap);
  const height = gap + groups * blockHeight + (groups - 1) * groupGap;
  const canvas = createCanvas(width, height, WHITE);

  const plane = kernelHeight * kernelWidth;
  for (let o = 0; o < filters; o++) {
    const filter = weights.subarray(o * size, (o + 1) * size);
    // Each filter is stretched to its own [min, max], as in Figure 3: filters differ in scale
    // by orders of magnitude, and a shared range would leave most tiles flat gray. Min and max
    // are over all channels together so an RGB filter keeps its hue.
    const values = channels === 3 || channels === 1
      ? filter
      : meanOverChannels(filter, channels, plane);
    let min = Infinity;
    let max = -Infinity;
    for (const v of values) {
      if (!Number.isFinite(v)) continue;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    const range = max - min;
    // A constant (or all-NaN) filter has no contrast to show: mid-gray.
    const toByte = (v: number) =>
      range > 0 && Number.isFinite(v) ? Math.round((v - min) / range * 255) : 128;

    const group = Math.floor(o / perGroup);
    const index = o % perGroup;
    const tileX = gap + (index % columns) * (tileWidth + gap);
    const tileY = gap + group * (blockHeight + groupGap) +
      Math.floor(index / columns) * (tileHeight + gap);
    for (let ky = 0; ky < kernelHeight; ky++) {
      for (let kx = 0; kx < kernelWidth; kx++) {
        const at = ky * kernelWidth + kx;
        const color: Rgb = channels === 3
          ? [toByte(values[at]), toByte(values[plane + at]), toByte(values[2 * plane + at])]
          : [toByte(values[at]), toByte(values[at]), toByte(values[at])];
        fillRect(canvas, tileX + kx * scale, tileY + ky * scale, scale, scale, color);
      }
    }
  }
  return encodeRgba(canvas);
}

/** `[C, KH, KW]` to `[KH, KW]`: the channel mean, for filters that are neither gray nor RGB. */
function meanOverChannels(filter: Float32Array, channels: number, plane: number): Float32Array {
  const mean = new Float32Array(plane);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < plane; i++) mean[i] += filter[c * plane + i] / channels;
  }
  return mean;
}
