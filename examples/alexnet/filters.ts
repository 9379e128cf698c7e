/**
 * The paper's Figure 3 for the AlexNet example: the first convolutional layer's filters as a
 * grid of image tiles, as PNG bytes (one SVG rectangle per weight, rasterised by svg.ts).
 *
 * As a command, `deno task filters --weights FILE [--out PNG]` draws conv1 of a torchvision
 * AlexNet weights file (`.pth` or `.safetensors`; torchvision's has 64 filters of 11x11x3):
 *
 * ```sh
 * deno task filters --weights ~/.cache/tessera/torchvision/alexnet-owt-7be5be79.pth
 * # wrote runs/imagenet/conv1_filters.png: 64 filters 11x11x3 of features.0.weight
 * ```
 *
 * @module
 */

import { writeFileAtomic } from "../../io/atomic.ts";
import { parseFlags, UsageError } from "./config.ts";
import { readWeightsFile } from "./pretrained.ts";
import { css, type Rgb, svgToPng } from "./svg.ts";

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

/** Checks the arguments of {@link filterGridPng}; returns the options with defaults. */
function filterGridLayout(
  weights: Float32Array,
  shape: [number, number, number, number],
  options: FilterGridOptions,
) {
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
  const { scale = 4, gap = 2, groups = 1 } = options;
  if (!Number.isInteger(groups) || groups < 1 || filters % groups !== 0) {
    throw new RangeError(
      `filterGridPng: groups must be a positive divisor of ${filters} filters, got ${groups}`,
    );
  }
  const columns = options.columns ?? Math.min(16, filters / groups);
  const limits = [["scale", scale, 1], ["columns", columns, 1], ["gap", gap, 0]] as const;
  for (const [name, value, least] of limits) {
    if (!Number.isInteger(value) || value < least) {
      throw new RangeError(`filterGridPng: ${name} must be an integer >= ${least}, got ${value}`);
    }
  }
  return { scale, gap, groups, columns, size };
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
  const { scale, gap, groups, columns, size } = filterGridLayout(weights, shape, options);
  const [filters, channels, kernelHeight, kernelWidth] = shape;
  const perGroup = filters / groups;
  const tileWidth = kernelWidth * scale, tileHeight = kernelHeight * scale;
  const blockHeight = Math.ceil(perGroup / columns) * (tileHeight + gap);
  const width = gap + columns * (tileWidth + gap);
  const height = gap + groups * blockHeight + (groups - 1) * 4 * gap;
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" shape-rendering="crispEdges">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  const plane = kernelHeight * kernelWidth;
  for (let o = 0; o < filters; o++) {
    const filter = weights.subarray(o * size, (o + 1) * size);
    // Each filter is stretched to its own [min, max], as in Figure 3: filters differ in scale
    // by orders of magnitude, and a shared range would leave most tiles flat gray. Min and max
    // are over all channels together so an RGB filter keeps its hue.
    const values = channels === 3 || channels === 1
      ? filter
      : meanOverChannels(filter, channels, plane);
    const finite = [...values].filter(Number.isFinite);
    const min = Math.min(...finite), range = Math.max(...finite) - min;
    // A constant (or all-NaN) filter has no contrast to show: mid-gray.
    const toByte = (v: number) =>
      range > 0 && Number.isFinite(v) ? Math.round((v - min) / range * 255) : 128;
    const group = Math.floor(o / perGroup), index = o % perGroup;
    const tileX = gap + (index % columns) * (tileWidth + gap);
    const tileY = gap + group * (blockHeight + 4 * gap) +
      Math.floor(index / columns) * (tileHeight + gap);
    for (let at = 0; at < plane; at++) {
      const color: Rgb = channels === 3
        ? [toByte(values[at]), toByte(values[plane + at]), toByte(values[2 * plane + at])]
        : [toByte(values[at]), toByte(values[at]), toByte(values[at])];
      const x = tileX + (at % kernelWidth) * scale,
        y = tileY + Math.floor(at / kernelWidth) * scale;
      svg.push(`<rect x="${x}" y="${y}" width="${scale}" height="${scale}" fill="${css(color)}"/>`);
    }
  }
  svg.push("</svg>");
  return svgToPng(svg.join("\n"));
}

/** `[C, KH, KW]` to `[KH, KW]`: the channel mean, for filters that are neither gray nor RGB. */
function meanOverChannels(filter: Float32Array, channels: number, plane: number): Float32Array {
  const mean = new Float32Array(plane);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < plane; i++) mean[i] += filter[c * plane + i] / channels;
  }
  return mean;
}

/** The conv1 weights of a torchvision-layout state dict (`features.0.weight`) as a PNG grid. */
export async function conv1FiltersPng(
  weightsPath: string,
  options: FilterGridOptions = {},
): Promise<{ png: Uint8Array; shape: [number, number, number, number] }> {
  const state = await readWeightsFile(weightsPath);
  const conv1 = state.get("features.0.weight");
  const names = [...state.keys()].slice(0, 4).join(", ");
  const data = conv1 === undefined
    ? undefined
    : "dataSync" in conv1
    ? conv1.dataSync()
    : conv1.data;
  for (const t of state.values()) if ("dispose" in t) t.dispose();
  if (conv1 === undefined || data === undefined || conv1.shape.length !== 4) {
    throw new Error(
      `--weights ${weightsPath}: no 4-d "features.0.weight" (conv1 of torchvision's AlexNet); ` +
        `names in the file: ${names}, ...`,
    );
  }
  const shape = [...conv1.shape] as [number, number, number, number];
  return {
    png: filterGridPng(Float32Array.from(data as ArrayLike<number>), shape, options),
    shape,
  };
}

const HELP = `Draw conv1's filters of a torchvision AlexNet as the paper's Figure 3.

Usage: deno task filters --weights FILE [--out PNG] [--scale N]

  --weights FILE  .pth/.pt (torch.save) or .safetensors state_dict in torchvision's layout
  --out PNG       where to write (default runs/imagenet/conv1_filters.png)
  --scale N       pixels per weight (default 6)
`;

if (import.meta.main) {
  try {
    const { values } = parseFlags({
      args: Deno.args,
      options: {
        weights: { type: "string" },
        out: { type: "string" },
        scale: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help) {
      console.log(HELP);
      Deno.exit(0);
    }
    if (values.weights === undefined) throw new UsageError("--weights FILE is required");
    const scale = Number(values.scale ?? 6);
    if (!Number.isInteger(scale) || scale < 1) {
      throw new UsageError(`--scale must be an integer >= 1; got "${values.scale}"`);
    }
    const out = values.out ?? "runs/imagenet/conv1_filters.png";
    const { png, shape } = await conv1FiltersPng(values.weights, { scale });
    const dir = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) : ".";
    await Deno.mkdir(dir, { recursive: true });
    await writeFileAtomic(out, png);
    console.log(
      `wrote ${out}: ${shape[0]} filters ${shape[2]}x${shape[3]}x${shape[1]} of features.0.weight`,
    );
  } catch (error) {
    const usage = error instanceof UsageError;
    console.error(`filters: ${(error as Error).message}${usage ? " (see --help)" : ""}`);
    Deno.exit(usage ? 2 : 1);
  }
}
