/**
 * The paper's Figure 4 from a torchvision AlexNet weights file, as two PNGs:
 *
 * - left half (`figure4_top5.png`): each photo (the 224x224 crop the network sees) with its
 *   five most probable ImageNet classes as bars, as the figure's eight test images;
 * - right half (`figure4_neighbours.png`): each query photo, then the images of a folder
 *   whose last-hidden-layer activations (fc7 after its ReLU, 4096 numbers) are nearest to the
 *   query's in Euclidean distance, closest first. The paper: "If two images produce feature
 *   activation vectors with a small Euclidean separation, we can say that the higher levels
 *   of the neural network consider them to be similar" (section 6.1).
 *
 * ```sh
 * deno task figure4 --weights alexnet-owt-7be5be79.pth --folder photos/ query1.jpg query2.jpg
 * # wrote runs/imagenet/figure4_top5.png and runs/imagenet/figure4_neighbours.png
 * ```
 *
 * The paper marks the correct label of each test image in red; photos here have no label, so
 * every bar is drawn alike.
 *
 * @module
 */

import { decodeImage } from "../../data/mod.ts";
import { encodePng } from "../../data/codecs.ts";
import type { ImageCHW } from "../../data/dataset.ts";
import { type ClassProbability, imagenetEvalBytes } from "../../data/imagenet.ts";
import { resizeBilinearAntialias } from "../../data/transforms.ts";
import { writeFileAtomic } from "../../io/atomic.ts";
import { checkOptions, declareOptions } from "../../tensor/options.ts";
import { cropsFlag, deviceFlag, parseFlags, parseNumberFlag, UsageError } from "./config.ts";
import {
  classify,
  disposePretrained,
  lastHiddenLayer,
  loadPretrained,
  type PretrainedAlexNet,
} from "./pretrained.ts";
import { svgToPng } from "./svg.ts";

const INK = "#222";
const BAR = "#3a7bd5";
const escapeXml = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** An RGB image as an SVG `<image>` (an embedded PNG), `size` pixels square. */
function imageSvg(image: ImageCHW<Uint8Array>, x: number, y: number, size: number): string {
  const small = resizeBilinearAntialias(image, size, size);
  const png = encodePng(small);
  let binary = "";
  for (let i = 0; i < png.length; i += 0x8000) {
    binary += String.fromCharCode(...png.subarray(i, i + 0x8000));
  }
  return `<image x="${x}" y="${y}" width="${size}" height="${size}" ` +
    `href="data:image/png;base64,${btoa(binary)}"/>`;
}

/** ImageNet names list synonyms ("tabby, tabby cat"): the first, cut to `max` characters. */
function shortName(name: string, max = 24): string {
  const first = name.split(",")[0];
  return first.length > max ? `${first.slice(0, max - 1)}…` : first;
}

/** One photo of the left half: what the network saw and its top classes. */
export interface Top5Panel {
  /** Caption (the file name). */
  title: string;
  /** The 224x224 crop the network saw (`imagenetEvalBytes`). */
  image: ImageCHW<Uint8Array>;
  /** Its most probable classes, most probable first. */
  top: ClassProbability[];
}

/** Figure 4, left: one panel per photo, `columns` per row, the top classes as bars under it. */
export function top5Png(panels: Top5Panel[], columns = 4): Uint8Array {
  if (panels.length === 0) throw new RangeError("top5Png: no photos to draw");
  const thumb = 144, barWidth = 150, line = 17, pad = 12;
  const panelWidth = Math.max(thumb, barWidth + 60) + pad;
  const rows = Math.max(...panels.map((p) => p.top.length));
  const panelHeight = 18 + thumb + 6 + rows * line + pad;
  const perRow = Math.min(columns, panels.length);
  const width = pad + perRow * panelWidth,
    height = pad + Math.ceil(panels.length / perRow) * panelHeight;
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  panels.forEach((panel, i) => {
    const x = pad + (i % perRow) * panelWidth, y = pad + Math.floor(i / perRow) * panelHeight;
    svg.push(
      `<text x="${x}" y="${y + 12}" font-size="12" fill="${INK}">${
        escapeXml(shortName(panel.title, 30))
      }</text>`,
    );
    svg.push(imageSvg(panel.image, x, y + 18, thumb));
    panel.top.forEach(({ className, probability }, k) => {
      const top = y + 18 + thumb + 6 + k * line;
      const length = Math.max(1, Math.round(probability * barWidth));
      svg.push(`<rect x="${x}" y="${top}" width="${barWidth}" height="${line - 3}" fill="#eee"/>`);
      svg.push(`<rect x="${x}" y="${top}" width="${length}" height="${line - 3}" fill="${BAR}"/>`);
      svg.push(
        `<text x="${x + 3}" y="${top + 11}" font-size="11" fill="${INK}">${
          escapeXml(shortName(className))
        }</text>`,
        `<text x="${x + barWidth + 4}" y="${top + 11}" font-size="11" fill="${INK}">${
          (100 * probability).toFixed(1)
        }%</text>`,
      );
    });
  });
  svg.push("</svg>");
  return svgToPng(svg.join("\n"));
}

/** One neighbour: its index in the database and its Euclidean distance to the query. */
export interface Neighbour {
  /** Index into the database. */
  index: number;
  /** Euclidean distance of the two activation vectors. */
  distance: number;
}

/**
 * The `k` database vectors nearest to each query in Euclidean distance, closest first (ties:
 * lower index first). Indices listed in `exclude[q]` are skipped for query `q` (the query's
 * own file, when it is in the folder too).
 */
export function nearestNeighbours(
  queries: Float32Array[],
  database: Float32Array[],
  k: number,
  exclude: Set<number>[] = [],
): Neighbour[][] {
  return queries.map((query, q) => {
    const found: Neighbour[] = [];
    database.forEach((vector, index) => {
      if (exclude[q]?.has(index)) return;
      if (vector.length !== query.length) {
        throw new RangeError(
          `nearestNeighbours: query ${q} has ${query.length} values, database ${index} has ` +
            `${vector.length}`,
        );
      }
      let sum = 0;
      for (let i = 0; i < query.length; i++) sum += (query[i] - vector[i]) ** 2;
      found.push({ index, distance: Math.sqrt(sum) });
    });
    found.sort((a, b) => a.distance - b.distance || a.index - b.index);
    return found.slice(0, k);
  });
}

/** One row of the right half: a query and its nearest images. */
export interface NeighbourRow {
  /** The query's crop. */
  query: ImageCHW<Uint8Array>;
  /** The neighbours' crops and distances, closest first. */
  neighbours: { image: ImageCHW<Uint8Array>; distance: number }[];
}

/** Figure 4, right: one row per query, the query first, then its neighbours with distances. */
export function neighboursPng(rows: NeighbourRow[]): Uint8Array {
  if (rows.length === 0) throw new RangeError("neighboursPng: no queries to draw");
  const thumb = 112, pad = 10, gap = 24, caption = 16;
  const columns = 1 + Math.max(...rows.map((r) => r.neighbours.length));
  const width = pad + gap + columns * (thumb + pad);
  const rowHeight = thumb + caption + pad;
  const height = pad + 18 + rows.length * rowHeight;
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${pad}" y="${pad + 11}" font-size="12" fill="${INK}">query</text>`,
    `<text x="${pad + thumb + pad + gap}" y="${pad + 11}" font-size="12" fill="${INK}">` +
    `nearest by Euclidean distance of the last hidden layer (4096 activations), closest first` +
    `</text>`,
  ];
  rows.forEach((row, r) => {
    const y = pad + 18 + r * rowHeight;
    svg.push(imageSvg(row.query, pad, y, thumb));
    row.neighbours.forEach(({ image, distance }, n) => {
      const x = pad + gap + (n + 1) * (thumb + pad);
      svg.push(imageSvg(image, x, y, thumb));
      svg.push(
        `<text x="${x + thumb / 2}" y="${y + thumb + 12}" font-size="11" text-anchor="middle" ` +
          `fill="${INK}">d = ${distance.toPrecision(3)}</text>`,
      );
    });
  });
  svg.push("</svg>");
  return svgToPng(svg.join("\n"));
}

/** Options of {@link figure4}. */
export interface Figure4Options {
  /** The weights file (.pth or .safetensors). */
  weights: string;
  /** Photos: the left half's, and the right half's queries. */
  photos: string[];
  /** The folder to search for neighbours (every JPEG and PNG inside, recursively). */
  folder?: string;
  /** Neighbours per query (default 6, the paper's). */
  neighbours?: number;
  /** 1 (default) or 10 crops for the top-5 bars. */
  crops?: 1 | 10;
  /** "cpu" (default) or "gpu". */
  device?: "cpu" | "gpu";
}

/** What {@link figure4} made. */
export interface Figure4Result {
  /** The left half. */
  top5: Uint8Array;
  /** The right half (null without a folder). */
  neighbours: Uint8Array | null;
  /** The folder's images, in the order the neighbour indices refer to. */
  folderFiles: string[];
  /** Per query photo, its nearest folder images. */
  nearest: Neighbour[][];
}

/** The JPEG and PNG files under `dir`, sorted by path. */
async function imageFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir.replace(/\/$/, "")}/${entry.name}`;
    if (entry.isDirectory) files.push(...await imageFiles(path));
    else if (entry.isFile && /\.(jpe?g|png)$/i.test(entry.name)) files.push(path);
  }
  return files.sort();
}

/** Decodes and crops every file; errors name the file. */
async function crops(files: string[]): Promise<ImageCHW<Uint8Array>[]> {
  const out = [];
  for (const file of files) out.push(await decodeImage(await Deno.readFile(file), file));
  return out;
}

const FIGURE4_KEYS = declareOptions<Figure4Options>()("figure4", [
  "weights",
  "photos",
  "folder",
  "neighbours",
  "crops",
  "device",
]);

/** Builds both halves of Figure 4 (see the module's documentation). */
export async function figure4(options: Figure4Options): Promise<Figure4Result> {
  checkOptions("figure4", options, FIGURE4_KEYS);
  if (options.photos.length === 0) throw new UsageError("no photos given");
  const k = options.neighbours ?? 6;
  const net: PretrainedAlexNet = await loadPretrained(options.weights, options.device ?? "cpu");
  try {
    const photos = await crops(options.photos);
    const panels: Top5Panel[] = [];
    for (const [i, image] of photos.entries()) {
      const top = await classify(net, image, { crops: options.crops ?? 1 });
      const title = options.photos[i].split("/").pop()!;
      panels.push({ title, image: imagenetEvalBytes(image), top });
    }
    const top5 = top5Png(panels);
    if (options.folder === undefined) {
      return { top5, neighbours: null, folderFiles: [], nearest: [] };
    }
    const folderFiles = await imageFiles(options.folder);
    if (folderFiles.length === 0) {
      throw new Error(`--folder ${options.folder}: no .jpg, .jpeg or .png files inside`);
    }
    const folderImages = await crops(folderFiles);
    const database = [];
    for (const image of folderImages) database.push(await lastHiddenLayer(net, image));
    const queries = [];
    for (const image of photos) queries.push(await lastHiddenLayer(net, image));
    const real = async (f: string) => await Deno.realPath(f).catch(() => f);
    const folderReal = await Promise.all(folderFiles.map(real));
    const exclude = await Promise.all(options.photos.map(async (photo) => {
      const path = await real(photo);
      return new Set(folderReal.flatMap((f, i) => (f === path ? [i] : [])));
    }));
    const nearest = nearestNeighbours(queries, database, k, exclude);
    const neighbours = neighboursPng(nearest.map((found, q) => ({
      query: imagenetEvalBytes(photos[q]),
      neighbours: found.map(({ index, distance }) => ({
        image: imagenetEvalBytes(folderImages[index]),
        distance,
      })),
    })));
    return { top5, neighbours, folderFiles, nearest };
  } finally {
    disposePretrained(net);
  }
}

const HELP = `The paper's Figure 4 from a torchvision AlexNet weights file.

Usage: deno task figure4 --weights FILE [--folder DIR] [--neighbours N] [--crops 1|10]
                         [--device cpu|gpu] [--out DIR] PHOTO...

  --weights FILE   .pth/.pt (torch.save) or .safetensors state_dict in torchvision's layout
  --folder DIR     images to search for each PHOTO's nearest neighbours (right half)
  --neighbours N   neighbours per photo (default 6, the paper's)
  --crops N        1 (default): centre crop; 10: the paper's ten crops, for the top-5 bars
  --out DIR        where to write figure4_top5.png and figure4_neighbours.png
                   (default runs/imagenet)
`;

/** Parses figure4's command line; throws {@link UsageError}; null for --help. */
export function parseFigure4Args(args: string[]): (Figure4Options & { out: string }) | null {
  const { values, positionals } = parseFlags({
    args,
    allowPositionals: true,
    options: {
      weights: { type: "string" },
      folder: { type: "string" },
      neighbours: { type: "string" },
      crops: { type: "string" },
      device: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  if (values.weights === undefined) throw new UsageError("--weights FILE is required");
  if (positionals.length === 0) throw new UsageError("no photos given");
  const crops = cropsFlag(values.crops === undefined ? 1 : Number(values.crops), values.crops);
  const device = deviceFlag(values.device);
  const neighbours = values.neighbours === undefined
    ? 6
    : parseNumberFlag("neighbours", values.neighbours, { integer: true, min: 1 });
  return {
    weights: values.weights,
    photos: positionals,
    folder: values.folder,
    neighbours,
    crops,
    device,
    out: values.out ?? "runs/imagenet",
  };
}

if (import.meta.main) {
  try {
    const command = parseFigure4Args(Deno.args);
    if (command === null) {
      console.log(HELP);
      Deno.exit(0);
    }
    const { out: _, ...options } = command;
    const result = await figure4(options);
    await Deno.mkdir(command.out, { recursive: true });
    await writeFileAtomic(`${command.out}/figure4_top5.png`, result.top5);
    console.log(`wrote ${command.out}/figure4_top5.png (${command.photos.length} photos)`);
    if (result.neighbours) {
      await writeFileAtomic(`${command.out}/figure4_neighbours.png`, result.neighbours);
      console.log(
        `wrote ${command.out}/figure4_neighbours.png (nearest of ${result.folderFiles.length} ` +
          `images in ${command.folder})`,
      );
    }
  } catch (error) {
    const usage = error instanceof UsageError;
    console.error(`figure4: ${(error as Error).message}${usage ? " (see --help)" : ""}`);
    Deno.exit(usage ? 2 : 1);
  }
}
