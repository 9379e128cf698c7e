/**
 * torchvision's ImageNet-trained AlexNet for the commands (predict, filters, figure4): where
 * its weights come from and how a weights file becomes a model. The model itself, its class
 * probabilities and its last hidden layer live in `models/alexnet_pretrained.ts`, shared with
 * the web page.
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

import { type HostTensor, loadSafetensors, type Tensor, writeFileAtomic } from "../../mod.ts";
import { sha256Hex } from "../../data/mod.ts";
import { loadTorch } from "../../io/torch.ts";
import { checkOptions, declareOptions } from "../../tensor/options.ts";
import {
  ALEXNET_MAX_BYTES,
  alexnetFromStateDict,
  type PretrainedAlexNet,
} from "../../models/alexnet_pretrained.ts";
import { tryWebGPU } from "./device.ts";

export {
  classify,
  classProbabilities,
  disposePretrained,
  lastHiddenLayer,
  type PretrainedAlexNet,
} from "../../models/alexnet_pretrained.ts";

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

const DOWNLOAD_WEIGHTS_KEYS = declareOptions<DownloadWeightsOptions>()("downloadWeights", [
  "url",
  "sha256Prefix",
  "cacheDir",
  "onProgress",
]);

/**
 * Returns the path of torchvision's AlexNet weights in the cache, downloading them first when
 * absent. The download is held in memory, its SHA-256 checked against the prefix, and only
 * then written (atomically: a temp file renamed), so the cache never holds a partial or
 * corrupt file. A cached file is trusted if its name matches: delete it to download again.
 */
export async function downloadWeights(options: DownloadWeightsOptions = {}): Promise<string> {
  checkOptions("downloadWeights", options, DOWNLOAD_WEIGHTS_KEYS);
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
  const total = Number.isInteger(length) && length > 0 ? length : null;
  const bytes = await receive(response.body, url, total, options.onProgress);
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

/** The most a download may hold in memory: torchvision's AlexNet is 233 MB. */
const MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024;

/**
 * Reads a response body into one buffer: preallocated when the server says the length (so
 * the file is held once, not twice), refused when it sends more or less than it said, or more
 * than {@link MAX_DOWNLOAD_BYTES}.
 */
async function receive(
  body: ReadableStream<Uint8Array>,
  url: string,
  total: number | null,
  onProgress?: (received: number, total: number | null) => void,
): Promise<Uint8Array> {
  const fail = (problem: string): never => {
    throw new Error(`--download: ${url} ${problem}; nothing was saved, try again`);
  };
  if (total !== null && total > MAX_DOWNLOAD_BYTES) fail(`announces ${total} bytes`);
  let buffer = new Uint8Array(total ?? 1 << 20);
  let received = 0;
  try {
    for await (const chunk of body) {
      if (received + chunk.length > (total ?? MAX_DOWNLOAD_BYTES)) {
        fail(
          total === null
            ? `sent over ${MAX_DOWNLOAD_BYTES} bytes`
            : `sent more than ${total} bytes`,
        );
      }
      if (received + chunk.length > buffer.length) {
        const grown = new Uint8Array(Math.max(2 * buffer.length, received + chunk.length));
        grown.set(buffer.subarray(0, received));
        buffer = grown;
      }
      buffer.set(chunk, received);
      received += chunk.length;
      onProgress?.(received, total);
    }
  } catch (error) {
    if ((error as Error).message.startsWith("--download:")) throw error;
    fail(`broke off after ${received} bytes (${(error as Error).message})`);
  }
  if (total !== null && received !== total) fail(`sent ${received} bytes of ${total}`);
  return buffer.subarray(0, received);
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
  if (lower.endsWith(".pth") || lower.endsWith(".pt")) {
    return await loadTorch(path, { maxBytes: ALEXNET_MAX_BYTES });
  }
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

/**
 * {@link readWeightsFile}, then `alexnetFromStateDict` (models/alexnet_pretrained.ts) on
 * `device` ("gpu" brings WebGPU up first, or says why it cannot).
 */
export async function loadPretrained(
  path: string,
  device: "cpu" | "gpu" = "cpu",
): Promise<PretrainedAlexNet> {
  if (device === "gpu") {
    const { backend, why } = await tryWebGPU();
    if (!backend) throw new Error(`--device gpu: ${why}`);
  }
  const state = await readWeightsFile(path);
  try {
    return await alexnetFromStateDict(state, `--weights ${path}`, device);
  } finally {
    for (const t of state.values()) if ("dispose" in t) t.dispose();
  }
}
