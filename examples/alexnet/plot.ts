/**
 * Pictures for the AlexNet example, as PNG bytes: training curves and run comparisons (line
 * charts, here), and the paper's Figure 3, the first convolutional layer's filters
 * (filters.ts, re-exported).
 *
 * Each picture is written as SVG text (a few lines of markup per element, easy to read and to
 * change) and rasterised by resvg (svg.ts).
 *
 * @module
 */

import { css, FONT_FAMILY, type Rgb, svgToPng } from "./svg.ts";

export { type FilterGridOptions, filterGridPng } from "./filters.ts";
export { type Rgb, svgToPng };

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
export const PALETTE: Rgb[] = [
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
const INK = "rgb(30,30,30)";
const GRID = "rgb(225,225,225)";

const escapeXml = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
/** Layout estimate of a DejaVu Sans line's width (its digits are 0.64 em wide). */
const textWidth = (text: string, fontSize: number) => text.length * 0.62 * fontSize;

/** `<text>` with its baseline at y; `anchor` says which end (or the middle) sits at x. */
function text(
  x: number,
  y: number,
  content: string,
  size: number,
  anchor: "start" | "middle" | "end" = "start",
  rotate = false,
): string {
  const at = rotate ? `transform="translate(${x} ${y}) rotate(-90)"` : `x="${x}" y="${y}"`;
  return `<text ${at} font-size="${size}" text-anchor="${anchor}" fill="${INK}">${
    escapeXml(content)
  }</text>`;
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

// ---------------------------------------------------------------------------------------------
// Line charts.

/** A series with its colour and axis resolved. */
type Styled = ChartSeries & { color: Rgb; axis: "left" | "right" };

/** The series' points as SVG: a polyline per finite run, a square for an isolated point. */
function seriesSvg(
  s: Styled,
  toX: (x: number) => number,
  toY: (y: number) => number,
  width: number,
) {
  const dash = s.dashed ? ` stroke-dasharray="${6 * width} ${4 * width}"` : "";
  const runs: [number, number][][] = [[]];
  for (const [x, y] of s.points) {
    if (Number.isFinite(x) && Number.isFinite(y)) runs[runs.length - 1].push([toX(x), toY(y)]);
    else if (runs[runs.length - 1].length > 0) runs.push([]);
  }
  return runs.filter((run) => run.length > 0).map((run) => {
    if (run.length === 1) {
      const [x, y] = run[0].map(Math.round);
      const side = 2 * width + 1;
      return `<rect x="${x - width}" y="${y - width}" width="${side}" height="${side}" ` +
        `fill="${css(s.color)}" shape-rendering="crispEdges"/>`;
    }
    const points = run.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
    return `<polyline points="${points}" fill="none" stroke="${css(s.color)}" ` +
      `stroke-width="${width}" stroke-linejoin="round"${dash}/>`;
  }).join("\n");
}

/** Sizes, ticks and the plot rectangle of a line chart (see {@link lineChartSvg}). */
function chartLayout(options: LineChartOptions) {
  const width = options.width ?? 800;
  const height = options.height ?? 500;
  checkSize("lineChartPng", "width", width);
  checkSize("lineChartPng", "height", height);

  // Sizes grow with the image so that a 1600x1000 chart reads like an 800x500 one.
  const k = Math.min(width / 800, height / 500);
  const fontSize = Math.max(9, Math.round(13 * k)), titleSize = Math.round(fontSize * 1.4);
  const pad = Math.max(3, Math.round(6 * k)), tickLength = Math.max(3, Math.round(5 * k));
  const lineWidth = Math.max(2, Math.round(2 * k));

  const styled: Styled[] = options.series.map((s, i) => ({
    ...s,
    color: s.color ?? PALETTE[i % PALETTE.length],
    axis: s.axis ?? "left",
  }));
  const hasRight = styled.some((s) => s.axis === "right");
  const hasLeft = styled.some((s) => s.axis === "left") || !hasRight;
  const ticksOf = (range: [number, number] | undefined, axis: "left" | "right") =>
    niceTicks(...(range ?? finiteRange(styled.filter((s) => s.axis === axis), 1)));
  const xTicks = niceTicks(...finiteRange(styled, 0));
  const yTicks = {
    left: ticksOf(options.yRangeLeft, "left"),
    right: ticksOf(options.yRangeRight, "right"),
  };
  const labelsOf = (ticks: Ticks) => ticks.values.map((v) => formatTick(v, ticks.step));
  const sideWidth = (ticks: Ticks, axisLabel: string | undefined) =>
    pad + (axisLabel ? fontSize + 2 * pad : 0) + tickLength + pad +
    Math.max(0, ...labelsOf(ticks).map((l) => textWidth(l, fontSize)));
  const xLabels = labelsOf(xTicks);
  const left = hasLeft ? sideWidth(yTicks.left, options.yLabelLeft) : 4 * pad;
  const right = width -
    (hasRight
      ? sideWidth(yTicks.right, options.yLabelRight)
      : Math.max(4 * pad, textWidth(xLabels[xLabels.length - 1], fontSize) / 2 + pad));

  // Legend entries (a short stroke of the line, then the name) fill rows under the x label.
  const swatch = 5 * pad;
  const entryWidth = (s: Styled) => swatch + pad + textWidth(s.name, fontSize) + 3 * pad;
  const legendRows: Styled[][] = [];
  let rowWidth = Infinity;
  for (const s of styled) {
    if (rowWidth + entryWidth(s) > right - left) legendRows.push([]), rowWidth = 0;
    legendRows[legendRows.length - 1].push(s);
    rowWidth += entryWidth(s);
  }
  const rowHeight = fontSize + 2 * pad;
  const top = options.title ? 2 * pad + titleSize + 4 * pad : 3 * pad;
  const bottom = height - (tickLength + pad + rowHeight + (options.xLabel ? rowHeight : 0) +
    legendRows.length * rowHeight + pad);
  if (right - left < 16 || bottom - top < 16) {
    throw new RangeError(
      `lineChartPng: a ${width}x${height} image leaves no room for the plot ` +
        `(${legendRows.length} legend rows, ${styled.length} series); make it larger`,
    );
  }
  const toX = (x: number) => left + (x - xTicks.min) / (xTicks.max - xTicks.min) * (right - left);
  const toYOf = (ticks: Ticks) => (y: number) =>
    bottom - (y - ticks.min) / (ticks.max - ticks.min) * (bottom - top);
  return {
    width,
    height,
    fontSize,
    titleSize,
    pad,
    tickLength,
    lineWidth,
    styled,
    hasLeft,
    hasRight,
    xTicks,
    yTicks,
    labelsOf,
    xLabels,
    left,
    right,
    swatch,
    entryWidth,
    legendRows,
    rowHeight,
    top,
    bottom,
    toX,
    toYOf,
  };
}

/** The sizes, ticks and plot rectangle of a line chart, as {@link chartLayout} works them out. */
type ChartLayout = ReturnType<typeof chartLayout>;

/** 1-pixel lines on pixel centres. */
const crisp = (v: number) => Math.round(v) + 0.5;

/**
 * A line chart as SVG text: white background, a title, x and y axes with about five "nice"
 * ticks (1, 2 or 5 times a power of ten) and light grid lines, a legend under the x label,
 * and a second y axis on the right for series with `axis: "right"` (loss on the left,
 * accuracy in percent on the right, say). Non-finite points break a line; a point with no
 * finite neighbour is drawn as a small square, so a one-point series is still visible.
 */
export function lineChartSvg(options: LineChartOptions): string {
  const layout = chartLayout(options);
  const { width, height, left, right, top, bottom } = layout;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `font-family="${FONT_FAMILY}">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<clipPath id="plot"><rect x="${left}" y="${top}" width="${right - left}" height="${
      bottom - top
    }"/></clipPath>`,
    ...plotSvg(layout),
    ...axesSvg(layout, options),
    ...captionsSvg(layout, options),
    "</svg>",
  ].join("\n");
}

/** Grid lines for the x ticks and the primary y axis' ticks, under the series (clipped to the plot). */
function plotSvg(layout: ChartLayout): string[] {
  const { styled, hasLeft, xTicks, yTicks, toX, toYOf, lineWidth } = layout;
  const { left, right, top, bottom } = layout;
  const primary = hasLeft ? yTicks.left : yTicks.right, gridY = toYOf(primary);
  const grid = [
    ...xTicks.values.map((v) => `M${crisp(toX(v))} ${top}V${bottom}`),
    ...primary.values.map((v) => `M${left} ${crisp(gridY(v))}H${right}`),
  ];
  return [
    `<path d="${grid.join("")}" stroke="${GRID}" shape-rendering="crispEdges"/>`,
    `<g clip-path="url(#plot)">`,
    ...styled.map((s) => seriesSvg(s, toX, toYOf(yTicks[s.axis]), lineWidth)),
    `</g>`,
  ];
}

/** The frame, the ticks and their labels, and the titles of the y axes. */
function axesSvg(layout: ChartLayout, options: LineChartOptions): string[] {
  const { width, fontSize, pad, tickLength, hasLeft, hasRight, xTicks, yTicks } = layout;
  const { labelsOf, xLabels, left, right, top, bottom, toX, toYOf } = layout;
  const svg: string[] = [];
  const axes = [`M${crisp(left)} ${crisp(top)}H${crisp(right)}V${crisp(bottom)}H${crisp(left)}Z`];
  const labelY = bottom + tickLength + pad + 0.8 * fontSize;
  xTicks.values.forEach((v, i) => {
    axes.push(`M${crisp(toX(v))} ${bottom}v${tickLength}`);
    svg.push(text(toX(v), labelY, xLabels[i], fontSize, "middle"));
  });
  for (const side of ["left", "right"] as const) {
    if (side === "left" ? !hasLeft : !hasRight) continue;
    const ticks = yTicks[side], toY = toYOf(ticks), labels = labelsOf(ticks);
    const edge = side === "left" ? left : right, out = side === "left" ? -1 : 1;
    ticks.values.forEach((v, i) => {
      axes.push(`M${edge} ${crisp(toY(v))}h${out * tickLength}`);
      const x = edge + out * (tickLength + pad);
      svg.push(
        text(x, toY(v) + 0.35 * fontSize, labels[i], fontSize, side === "left" ? "end" : "start"),
      );
    });
    const title = side === "left" ? options.yLabelLeft : options.yLabelRight;
    const x = side === "left" ? pad + 0.8 * fontSize : width - pad - 0.2 * fontSize;
    if (title) svg.push(text(x, (top + bottom) / 2, title, fontSize, "middle", true));
  }
  svg.push(`<path d="${axes.join("")}" stroke="${INK}" fill="none" shape-rendering="crispEdges"/>`);
  return svg;
}

/** The title, the x label and the legend. */
function captionsSvg(layout: ChartLayout, options: LineChartOptions): string[] {
  const { fontSize, titleSize, pad, tickLength, lineWidth, left, right, bottom } = layout;
  const { swatch, entryWidth, legendRows, rowHeight } = layout;
  const svg: string[] = [];
  const centre = (left + right) / 2;
  if (options.title) {
    svg.push(text(centre, 2 * pad + 0.8 * titleSize, options.title, titleSize, "middle"));
  }
  let y = bottom + tickLength + pad + rowHeight;
  if (options.xLabel) {
    svg.push(text(centre, y + 0.8 * fontSize, options.xLabel, fontSize, "middle"));
    y += rowHeight;
  }
  for (const row of legendRows) {
    let x = left;
    for (const s of row) {
      const dash = s.dashed ? ` stroke-dasharray="${3 * lineWidth} ${2 * lineWidth}"` : "";
      svg.push(
        `<path d="M${x} ${y + fontSize / 2}h${swatch}" stroke="${css(s.color)}" ` +
          `stroke-width="${lineWidth}"${dash}/>`,
      );
      svg.push(text(x + swatch + pad, y + 0.8 * fontSize, s.name, fontSize));
      x += entryWidth(s);
    }
    y += rowHeight;
  }
  return svg;
}

/** {@link lineChartSvg} as PNG bytes. */
export function lineChartPng(options: LineChartOptions): Uint8Array {
  return svgToPng(lineChartSvg(options));
}

/** One record of a training log; absent fields are skipped, NaN fields break the line. */
export interface TrainingMetrics {
  /** Epoch (may be fractional for records logged mid-epoch). */
  epoch: number;
  /** Global optimizer step, used as the x coordinate when `x: "step"`. */
  step?: number;
  /** Mean training loss (cross-entropy). */
  trainLoss?: number;
  /** Mean loss on the validation split (what a schedule and model selection follow). */
  valLoss?: number;
  /** Mean loss on the test set (for the report only). */
  testLoss?: number;
  /** Fraction correct in [0, 1] (or percent, see `accuracyUnit`). */
  trainAccuracy?: number;
  /** Fraction correct in [0, 1] (or percent, see `accuracyUnit`). */
  valAccuracy?: number;
  /** Fraction correct in [0, 1] (or percent, see `accuracyUnit`). */
  testAccuracy?: number;
}

/** Options of {@link trainingCurvesPng}. */
export interface TrainingCurvesOptions {
  /** Default "Training". */
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
 * Training curves as PNG bytes: train and validation loss on the left axis (blue), train and
 * validation accuracy in percent on the right axis (orange, from 0 to 100), train solid and
 * validation dashed; test loss and accuracy, when present, dashed in green (the report's
 * numbers, apart from the ones that steer training). Records may mix kinds (per-step losses,
 * per-epoch evaluations): each curve takes the records where its field is present.
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
  const [blue, orange, green] = PALETTE;
  // Losses on the left axis, accuracies (in percent) on the right; training solid.
  const series = (
    name: string,
    field: keyof TrainingMetrics,
    color: Rgb,
    axis: "left" | "right",
  ): ChartSeries => ({
    name,
    points: curve(field, axis === "right" ? percent : 1),
    color,
    axis,
    dashed: !name.startsWith("train"),
  });
  const candidates = [
    series("train loss", "trainLoss", blue, "left"),
    series("val loss", "valLoss", blue, "left"),
    series("test loss", "testLoss", green, "left"),
    series("train acc", "trainAccuracy", orange, "right"),
    series("val acc", "valAccuracy", orange, "right"),
    series("test acc", "testAccuracy", green, "right"),
  ];
  return lineChartPng({
    title: options.title ?? "Training",
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
 * per run, as PNG bytes; a run with `dashed: true` is drawn dashed (the paper's Figure 1 draws
 * one network solid and the other dashed).
 */
export function comparisonChartPng(
  runs: { name: string; points: [number, number][]; dashed?: boolean; color?: Rgb }[],
  options: { title: string; xLabel: string; yLabel: string; width?: number; height?: number },
): Uint8Array {
  return lineChartPng({
    title: options.title,
    xLabel: options.xLabel,
    yLabelLeft: options.yLabel,
    series: runs,
    width: options.width,
    height: options.height,
  });
}
