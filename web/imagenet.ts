/**
 * The ImageNet page: the learner drops torchvision's AlexNet weights (`.pth` or
 * `.safetensors`) and photos; the worker (imagenet_worker.ts) loads the weights on WebGPU or
 * the CPU backend and classifies each photo; the page shows conv1's filters (Figure 3's
 * view: each filter stretched to its own range, in RGB) and each photo's top-5 as bars.
 *
 * Photos are decoded by the browser (`createImageBitmap`, which also applies EXIF
 * orientation) and sent as RGB bytes; resizing and cropping are tessera's, torchvision's
 * evaluation transform. URL parameter `device=cpu` skips WebGPU.
 *
 * `globalThis.imagenet` holds what the page has seen, for the console and the tests.
 *
 * @module
 */

/// <reference lib="dom" />

import type { FromImagenetWorker, ToImagenetWorker } from "./imagenet_protocol.ts";
import { drawFilterTiles } from "./filters.ts";

/** What the page has seen so far. */
interface ImagenetState {
  device: string | null;
  weights: string | null;
  predictions: { name: string; top: { className: string; probability: number }[] }[];
  error: string | null;
}

const state: ImagenetState = { device: null, weights: null, predictions: [], error: null };
(globalThis as { imagenet?: ImagenetState }).imagenet = state;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const worker = new Worker(new URL("./imagenet_worker.js", import.meta.url), { type: "module" });
const send = (message: ToImagenetWorker, transfer: Transferable[] = []) =>
  worker.postMessage(message, transfer);

const WEIGHTS = /\.(pth|pt|safetensors)$/i;
let nextId = 0;
/** The result cards waiting for their prediction, by message id. */
const cards = new Map<number, HTMLElement>();

/** Draws each filter `[O, C, KH, KW]` as an RGB tile stretched to its own min..max. */
function drawFilters(weights: Float32Array, shape: number[]): void {
  const [out, channels, kh, kw] = shape;
  const canvas = $<HTMLCanvasElement>("filters");
  const columns = 16, rows = Math.ceil(out / columns);
  const scale = Math.max(1, Math.floor(canvas.width / (columns * (kw + 1))));
  canvas.height = rows * (kh + 1) * scale; // as many rows as the filters need
  const plane = kh * kw, size = channels * plane;
  const filters = Array.from({ length: out }, (_, f) => weights.subarray(f * size, (f + 1) * size));
  drawFilterTiles(
    canvas,
    filters,
    kh,
    kw,
    columns,
    scale,
    (w, i) => channels === 3 ? [w[i], w[plane + i], w[2 * plane + i]] : [w[i], w[i], w[i]],
  );
}

/** A photo's RGB bytes, channels first, and a thumbnail canvas. */
async function decodePhoto(file: File) {
  const bitmap = await createImageBitmap(file);
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const plane = width * height, rgb = new Uint8Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    rgb[i] = rgba[4 * i];
    rgb[plane + i] = rgba[4 * i + 1];
    rgb[2 * plane + i] = rgba[4 * i + 2];
  }
  const thumb = document.createElement("canvas");
  const s = 112 / Math.max(width, height);
  thumb.width = Math.round(width * s);
  thumb.height = Math.round(height * s);
  thumb.getContext("2d")!.drawImage(bitmap, 0, 0, thumb.width, thumb.height);
  bitmap.close();
  return { rgb, width, height, thumb };
}

function showTop5(card: HTMLElement, top: { className: string; probability: number }[]): void {
  const list = card.querySelector("ol")!;
  list.replaceChildren(...top.map(({ className, probability }) => {
    const item = document.createElement("li");
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, Math.round(probability * 120))}px`;
    item.append(bar, `${className.split(",")[0]} ${(100 * probability).toFixed(1)}%`);
    return item;
  }));
}

/** Weights first (so photos dropped with them wait for them), then each photo. */
async function handleFiles(files: File[]): Promise<void> {
  const weights = files.filter((f) => WEIGHTS.test(f.name));
  const photos = files.filter((f) => !WEIGHTS.test(f.name));
  for (const file of weights) {
    const bytes = await file.arrayBuffer();
    $("status").textContent = `sending ${file.name} to the worker…`;
    send({ type: "weights", name: file.name, bytes }, [bytes]);
  }
  for (const file of photos) {
    const card = document.createElement("div");
    card.className = "photo";
    const caption = document.createElement("div");
    caption.textContent = file.name;
    card.append(caption, document.createElement("ol"));
    $("results").prepend(card);
    try {
      const { rgb, width, height, thumb } = await decodePhoto(file);
      caption.prepend(thumb, document.createElement("br"));
      const id = nextId++;
      cards.set(id, card);
      const crops = $<HTMLInputElement>("ten").checked ? 10 : 1;
      send({ type: "classify", id, name: file.name, rgb, width, height, crops }, [rgb.buffer]);
    } catch (error) {
      caption.append(`: cannot decode (${(error as Error).message})`);
    }
  }
}

function setUpDrop(): void {
  const zone = document.body;
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    $("drop").classList.add("over");
  });
  zone.addEventListener("dragleave", () => $("drop").classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    $("drop").classList.remove("over");
    handleFiles([...event.dataTransfer?.files ?? []]);
  });
  const input = $<HTMLInputElement>("files");
  input.addEventListener("change", () => handleFiles([...input.files ?? []]));
}

worker.onmessage = (event: MessageEvent<FromImagenetWorker>) => {
  const m = event.data;
  switch (m.type) {
    case "ready":
      state.device = m.device;
      $("device").textContent = m.description;
      break;
    case "status":
      $("status").textContent = m.text;
      break;
    case "loaded":
      state.weights = m.name;
      $("weights-name").textContent = `(${m.name}: ${m.filters.shape.join("×")})`;
      $("status").textContent = `${m.name}: ${m.parameters.toLocaleString("en-US")} ` +
        `parameters, ${m.classes} classes. Drop photos.`;
      drawFilters(m.filters.weights, m.filters.shape);
      break;
    case "prediction": {
      state.predictions.push({ name: m.name, top: m.top });
      const card = cards.get(m.id);
      cards.delete(m.id);
      if (card) showTop5(card, m.top);
      $("status").textContent = `${m.name}: ${m.seconds.toFixed(2)} s`;
      break;
    }
    case "error":
      state.error = m.message;
      $("status").textContent = `error: ${m.message}`;
      $("status").className = "fail";
      break;
  }
};
worker.onerror = (event) => {
  state.error = event.message;
  $("status").textContent = `error: ${event.message}`;
};

setUpDrop();
const device = new URLSearchParams(location.search).get("device") === "cpu" ? "cpu" : "auto";
send({ type: "start", device });
