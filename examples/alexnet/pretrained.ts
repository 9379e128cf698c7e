/**
 * torchvision's ImageNet-trained AlexNet in tessera: where its weights come from, how a weights
 * file becomes a model, and what predict, filters and figure4 ask of it (class probabilities,
 * the last hidden layer's 4096 activations).
 *
 * A weights file is a torchvision-layout `state_dict` (`features.{0,3,6,8,10}`,
 * `classifier.{1,4,6}`): torchvision's own `alexnet-owt-7be5be79.pth`, any `.pth`/`.pt` that
 * `torch.save(model.state_dict())` wrote, or a safetensors copy. The model is built from the
 * file's shapes: fc6/fc7's width and the number of classes are read from it, so a fine-tuned
 * AlexNet with 10 classes loads too (its classes are then named by index).
 *
 * `--download` fetches torchvision's file from download.pytorch.org into the cache folder
 * (`$XDG_CACHE_HOME/tessera/torchvision`, else `~/.cache/tessera/torchvision`), checking its
 * SHA-256: torchvision names its files after the digest's first eight hex digits
 * (`7be5be79`), so a digest that does not start with them is a corrupt or substituted file.
 *
 * @module
 */

import {
  fromArray,
  type HostTensor,
  loadSafetensors,
  type Module,
  noGrad,
  type Sequential,
  softmax,
  type Tensor,
  writeFileAtomic,
} from "../../mod.ts";
import { alexnetTorchvision } from "../../models/alexnet.ts";
import { sha256Hex } from "../../data/mod.ts";
import type { ImageCHW } from "../../data/dataset.ts";
import {
  type ClassProbability,
  IMAGENET_CLASSES,
  imagenetEval,
  imagenetTenCrop,
  topK,
} from "../../data/imagenet.ts";
import { loadTorch } from "../../io/torch.ts";
import { tryWebGPU } from "./device.ts";
import { allFinite } from "./learner.ts";

/** torchvision's AlexNet_Weights.IMAGENET1K_V1 file. */
export const TORCHVISION_ALEXNET = {
  url: "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
  file: "alexnet-owt-7be5be79.pth",
  /** The first hex digits of the file's SHA-256 (torchvision's naming rule). */
  sha256Prefix: "7be5be79",
} as const;

/** `$XDG_CACHE_HOME/tessera/torchvision`, else `$HOME/.cache/tessera/torchvision`. */
export function weightsCacheDir(): string {
  const env = (name: string) => {
    try {
      return Deno.env.get(name) || undefined;
    } catch {
      return undefined;
    }
  };
  const xdg = env("XDG_CACHE_HOME"), home = env("HOME");
  if (xdg) return `${xdg}/tessera/torchvision`;
  if (home) return `${home}/.cache/tessera/torchvision`;
  throw new Error("--download: neither XDG_CACHE_HOME nor HOME is set; pass --weights FILE");
}

/** Options of {@link downloadWeights}. */
export interface DownloadWeightsOptions {
  /** Where to fetch from (tests use a 127.0.0.1 server); default {@link TORCHVISION_ALEXNET}'s. */
  url?: string;
  /** The file's required SHA-256 prefix; default the one in torchvision's file name. */
  sha256Prefix?: string;
  /** The folder to keep it in; default {@link weightsCacheDir}. */
  cacheDir?: string;
  /** Called as bytes arrive (`total` is null when the server sends no length). */
  onProgress?: (received: number, total: number | null) => void;
}

/**
 * Returns the path of torchvision's AlexNet weights in the cache, downloading them first when
 * absent. The download is held in memory, its SHA-256 checked against the prefix, and only
 * then written (atomically: a temp file renamed), so the cache never holds a partial or
 * corrupt file. A cached file is trusted if its name matches: delete it to download again.
 */
export async function downloadWeights(options: DownloadWeightsOptions = {}): Promise<string> {
  const url = options.url ?? TORCHVISION_ALEXNET.url;
  const prefix = options.sha256Prefix ?? TORCHVISION_ALEXNET.sha256Prefix;
  const dir = options.cacheDir ?? weightsCacheDir();
  const name = new URL(url).pathname.split("/").pop() || TORCHVISION_ALEXNET.file;
  const path = `${dir}/${name}`;
  if ((await Deno.stat(path).catch(() => null))?.isFile) return path;
  const response = await fetch(url);
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new Error(`--download: ${url} answered ${response.status} ${response.statusText}`);
  }
  const length = Number(response.headers.get("content-length"));
  const total = Number.isFinite(length) && length > 0 ? length : null;
  const chunks: Uint8Array[] = [];
  let received = 0;
  for await (const chunk of response.body) {
    chunks.push(chunk);
    received += chunk.length;
    options.onProgress?.(received, total);
  }
  if (total !== null && received !== total) {
    throw new Error(`--download: ${url} sent ${received} bytes of ${total}; try again`);
  }
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) bytes.set(chunk, (at += chunk.length) - chunk.length);
  const digest = await sha256Hex(bytes);
  if (!digest.startsWith(prefix)) {
    throw new Error(
      `--download: ${url} has SHA-256 ${digest}, which does not start with ${prefix} as its ` +
        `name promises: the download is corrupt or not torchvision's file; nothing was saved`,
    );
  }
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(path, bytes);
  return path;
}

/** A one-line progress bar on stderr: `[#####.....] 117.3 / 233.1 MB`. */
export function progressBar(label: string): (received: number, total: number | null) => void {
  const encoder = new TextEncoder();
  let last = -1;
  return (received, total) => {
    const mb = (n: number) => (n / 1e6).toFixed(1);
    const fraction = total ? received / total : 0;
    const tick = total ? Math.floor(fraction * 200) : Math.floor(received / 1e6);
    if (tick === last && received !== total) return;
    last = tick;
    const bar = total
      ? `[${"#".repeat(Math.round(fraction * 30)).padEnd(30, ".")}] ${mb(received)} / ${
        mb(total)
      } MB`
      : `${mb(received)} MB`;
    Deno.stderr.writeSync(encoder.encode(`\r${label} ${bar}${received === total ? "\n" : ""}`));
  };
}

/** Reads a weights file by its extension: `.pth`/`.pt` (torch.save) or `.safetensors`. */
export async function readWeightsFile(path: string): Promise<Map<string, Tensor | HostTensor>> {
  const lower = path.toLowerCase();
  if (lower.endsWith(".pth") || lower.endsWith(".pt")) return await loadTorch(path);
  if (lower.endsWith(".safetensors")) {
    const state = new Map<string, HostTensor>();
    for (const [name, entry] of (await loadSafetensors(path)).tensors) {
      if (entry.dtype !== "F32" && entry.dtype !== "F64") {
        throw new Error(
          `--weights ${path}: tensor "${name}" is ${entry.dtype}; weights are floats`,
        );
      }
      state.set(name, entry as HostTensor);
    }
    return state;
  }
  throw new Error(
    `--weights ${path}: unknown file type; expected .pth or .pt (torch.save) or .safetensors`,
  );
}

/** A torchvision-layout AlexNet with its weights loaded, and the names of its outputs. */
export interface PretrainedAlexNet {
  /** The network, in eval mode, on the requested device. */
  model: Sequential;
  /** One name per output unit: ImageNet's for 1000 classes, `class i` otherwise. */
  classNames: readonly string[];
  /** The device it runs on. */
  device: "cpu" | "gpu";
}

/** The state dict's `[rows, columns]` of a classifier layer, or an error naming the layout. */
function linearShape(state: Map<string, Tensor | HostTensor>, name: string, where: string) {
  const shape = state.get(`${name}.weight`)?.shape;
  if (shape === undefined || shape.length !== 2) {
    throw new Error(
      `${where}: no 2-d tensor "${name}.weight"; this is not a torchvision AlexNet state_dict ` +
        `(names ${[...state.keys()].slice(0, 4).join(", ")}, ...)`,
    );
  }
  return shape;
}

/**
 * Builds a torchvision-layout AlexNet from a state dict (read with {@link readWeightsFile})
 * and loads it, strictly: every name and shape must match. fc6/fc7's width and the number of
 * classes come from the file.
 */
export async function alexnetFromStateDict(
  state: Map<string, Tensor | HostTensor>,
  where: string,
  device: "cpu" | "gpu" = "cpu",
): Promise<PretrainedAlexNet> {
  const [hiddenUnits] = linearShape(state, "classifier.1", where);
  const [numClasses] = linearShape(state, "classifier.6", where);
  const model = alexnetTorchvision({ hiddenUnits, numClasses, dropout: false });
  try {
    await model.loadStateDict(state);
  } catch (error) {
    throw new Error(`${where}: ${(error as Error).message}`);
  } finally {
    // loadTorch's tensors were copied into the model's parameters.
    for (const t of state.values()) if ("dispose" in t) t.dispose();
  }
  if (!await allFinite(model.parameters())) {
    throw new Error(`${where} holds weights that are not finite (NaN or Infinity)`);
  }
  if (device === "gpu") {
    const { backend, why } = await tryWebGPU();
    if (!backend) throw new Error(`--device gpu: ${why}`);
  }
  await model.to(device);
  model.eval();
  const classNames = numClasses === IMAGENET_CLASSES.length
    ? IMAGENET_CLASSES
    : Array.from({ length: numClasses }, (_, i) => `class ${i}`);
  return { model, classNames, device };
}

/** {@link readWeightsFile} then {@link alexnetFromStateDict}. */
export async function loadPretrained(
  path: string,
  device: "cpu" | "gpu" = "cpu",
): Promise<PretrainedAlexNet> {
  return alexnetFromStateDict(await readWeightsFile(path), `--weights ${path}`, device);
}

/** Runs `views` ([3, 224, 224] each) as one batch through `layers`, returning host values. */
async function run(
  net: PretrainedAlexNet,
  views: ImageCHW<Float32Array>[],
  forward: (model: Sequential, x: Tensor) => Tensor,
): Promise<Float32Array> {
  const size = views[0].data.length;
  const batch = new Float32Array(views.length * size);
  views.forEach((v, i) => batch.set(v.data, i * size));
  using x = fromArray(batch, [views.length, 3, 224, 224], { device: net.device });
  using out = noGrad(() => forward(net.model, x));
  return (await out.data()) as Float32Array;
}

/**
 * The class probabilities of one photo: the softmax of the centre crop (`crops` 1,
 * torchvision's evaluation) or the mean softmax of the paper's ten crops (`crops` 10).
 */
export async function classProbabilities(
  net: PretrainedAlexNet,
  image: ImageCHW<Uint8Array>,
  crops: 1 | 10 = 1,
): Promise<Float64Array> {
  const views = crops === 10 ? imagenetTenCrop(image) : [imagenetEval(image)];
  const values = await run(net, views, (model, x) => softmax(model.forward(x)));
  const classes = net.classNames.length;
  const mean = new Float64Array(classes);
  for (let v = 0; v < views.length; v++) {
    for (let c = 0; c < classes; c++) mean[c] += values[v * classes + c] / views.length;
  }
  return mean;
}

/** The `top` most probable classes of one photo (see {@link classProbabilities}). */
export async function classify(
  net: PretrainedAlexNet,
  image: ImageCHW<Uint8Array>,
  options: { crops?: 1 | 10; top?: number } = {},
): Promise<ClassProbability[]> {
  const probabilities = await classProbabilities(net, image, options.crops ?? 1);
  return topK(probabilities, options.top ?? 5, net.classNames);
}

/**
 * The last hidden layer's activations of a photo's centre crop: fc7 after its ReLU, the
 * 4096-d vector whose Euclidean distances the paper's Figure 4 (right) ranks neighbours by.
 */
export async function lastHiddenLayer(
  net: PretrainedAlexNet,
  image: ImageCHW<Uint8Array>,
): Promise<Float32Array> {
  return await run(net, [imagenetEval(image)], (model, x) => {
    // features, avgpool, flatten, then classifier up to fc7's ReLU (index 5; 6 is fc8).
    let h = model.at(2).forward(model.at(1).forward(model.at(0).forward(x)));
    const classifier = model.at(3) as Sequential;
    for (let i = 0; i <= 5; i++) h = classifier.at(i).forward(h);
    return h;
  });
}

/** Frees the model's parameters (GPU memory when on the GPU). */
export function disposePretrained(net: PretrainedAlexNet): void {
  for (const p of (net.model as Module).parameters()) p.dispose();
}
