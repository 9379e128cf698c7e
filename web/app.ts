/**
 * The page: starts the training worker, draws what it reports (loss and accuracy curves, the
 * conv1 filters), and sends it pause/resume and the learner's drawing to classify.
 *
 * URL parameters (all optional): `steps` (stop after N steps; default 0, never), `batch`
 * (default 32, at most 1000), `lr` (default 0.02, as `deno task train-alexnet`), `testEvery`
 * (default 50 steps), `device=cpu` (skip WebGPU).
 *
 * `globalThis.training` holds what the page has seen so far, for the console and the tests.
 *
 * @module
 */

/// <reference lib="dom" />

import type { FromWorker, ToWorker, TrainOptions } from "./protocol.ts";
import { drawFilterTiles } from "./filters.ts";

/** What the page has seen so far. */
interface TrainingState {
  device: string | null;
  losses: number[];
  accuracies: number[];
  tests: { step: number; accuracy: number }[];
  filterUpdates: number;
  done: boolean;
  error: string | null;
}

const state: TrainingState = {
  device: null,
  losses: [],
  accuracies: [],
  tests: [],
  filterUpdates: 0,
  done: false,
  error: null,
};
(globalThis as { training?: TrainingState }).training = state;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function readOptions(): TrainOptions {
  const params = new URLSearchParams(location.search);
  const number = (name: string, fallback: number) => {
    const value = Number(params.get(name) ?? fallback);
    if (!Number.isFinite(value) || value < 0) {
      throw new Error(`URL parameter ${name} must be a number >= 0, got ${params.get(name)}`);
    }
    return value;
  };
  return {
    batchSize: Math.min(1000, Math.max(1, Math.floor(number("batch", 32)))),
    lr: number("lr", 0.02),
    maxSteps: Math.floor(number("steps", 0)),
    testEvery: Math.max(1, Math.floor(number("testEvery", 50))),
    testImages: 500,
    device: (["cpu", "gpu"] as const).find((d) => d === params.get("device")) ?? "auto",
  };
}

// ---- curves ---------------------------------------------------------------------------------

interface Series {
  points: [number, number][];
  color: string;
  dots?: boolean;
}

/** Draws curves on `canvas` over x in [1, xMax] and y in [yMin, yMax], with a labelled grid. */
function plot(canvas: HTMLCanvasElement, series: Series[], yMin: number, yMax: number): void {
  const ctx = canvas.getContext("2d")!;
  const { width, height } = canvas;
  const left = 40, bottom = 20, top = 8, right = 8;
  const xMax = Math.max(10, ...series.flatMap((s) => s.points.map(([x]) => x)));
  const px = (x: number) => left + ((x - 1) / Math.max(1, xMax - 1)) * (width - left - right);
  const py = (y: number) =>
    top +
    (1 - (Math.min(Math.max(y, yMin), yMax) - yMin) / (yMax - yMin)) * (height - top - bottom);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#666";
  ctx.strokeStyle = "#eee";
  for (let i = 0; i <= 4; i++) {
    const y = yMin + (i / 4) * (yMax - yMin);
    ctx.beginPath();
    ctx.moveTo(left, py(y));
    ctx.lineTo(width - right, py(y));
    ctx.stroke();
    ctx.fillText(y.toFixed(yMax > 2 ? 1 : 2), 4, py(y) + 4);
  }
  ctx.fillText(`step ${xMax}`, width - right - 60, height - 5);
  for (const s of series) {
    ctx.strokeStyle = ctx.fillStyle = s.color;
    ctx.beginPath();
    s.points.forEach(([x, y], i) => {
      if (s.dots) ctx.fillRect(px(x) - 2, py(y) - 2, 5, 5);
      else if (i === 0) ctx.moveTo(px(x), py(y));
      else ctx.lineTo(px(x), py(y));
    });
    if (!s.dots) ctx.stroke();
  }
}

/** Mean of the last `window` values at each point: a readable curve from noisy batches. */
function smooth(values: number[], window = 10): [number, number][] {
  return values.map((_, i) => {
    const from = Math.max(0, i - window + 1);
    const part = values.slice(from, i + 1);
    return [i + 1, part.reduce((a, b) => a + b, 0) / part.length];
  });
}

function drawCurves(): void {
  const raw = (values: number[]) => values.map((v, i) => [i + 1, v] as [number, number]);
  const lossMax = Math.max(2.5, ...state.losses.slice(0, 5));
  plot(
    $("loss"),
    [
      { points: raw(state.losses), color: "#ccc" },
      { points: smooth(state.losses), color: "#c0392b" },
    ],
    0,
    lossMax,
  );
  plot(
    $("accuracy"),
    [
      { points: smooth(state.accuracies), color: "#999" },
      { points: state.tests.map((t) => [t.step, t.accuracy]), color: "#3a7bd5", dots: true },
    ],
    0,
    1,
  );
}

// ---- filters --------------------------------------------------------------------------------

/** Draws each conv1 filter [out, in, k, k] as a k×k grey tile, scaled to its own min..max. */
function drawFilters(weights: Float32Array, shape: number[]): void {
  const [out, inChannels, kh, kw] = shape;
  const canvas = $<HTMLCanvasElement>("filters");
  const columns = 8, rows = Math.ceil(out / columns);
  const scale = Math.floor(
    Math.min(canvas.width / (columns * (kw + 1)), canvas.height / (rows * (kh + 1))),
  );
  // The first input channel (conv1 of AlexNet-mini sees one, grayscale).
  const size = inChannels * kh * kw;
  const filters = Array.from(
    { length: out },
    (_, f) => weights.subarray(f * size, f * size + kh * kw),
  );
  drawFilterTiles(canvas, filters, kh, kw, columns, scale, (w, i) => [w[i], w[i], w[i]]);
}

// ---- the drawing box ------------------------------------------------------------------------

function setUpSketch(worker: Worker): void {
  const canvas = $<HTMLCanvasElement>("sketch");
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  };
  clear();
  const classify = () => {
    // Fashion-MNIST images are 28×28, light objects on black: shrink the box to that.
    const small = new OffscreenCanvas(28, 28).getContext("2d", { willReadFrequently: true })!;
    small.drawImage(canvas, 0, 0, 28, 28);
    const rgba = small.getImageData(0, 0, 28, 28).data;
    const pixels = new Float32Array(28 * 28);
    for (let i = 0; i < pixels.length; i++) {
      pixels[i] = (0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]) / 255;
    }
    const message: ToWorker = { type: "predict", pixels };
    worker.postMessage(message, [pixels.buffer]);
  };
  let drawing = false;
  const at = (event: PointerEvent) => {
    const r = canvas.getBoundingClientRect();
    return [
      ((event.clientX - r.left) * canvas.width) / r.width,
      ((event.clientY - r.top) * canvas.height) / r.height,
    ];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    ctx.beginPath();
    ctx.moveTo(...(at(event) as [number, number]));
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 16;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineTo(...(at(event) as [number, number]));
    ctx.stroke();
  });
  canvas.addEventListener("pointerup", () => {
    drawing = false;
    classify();
  });
  canvas.addEventListener("dragover", (event) => event.preventDefault());
  canvas.addEventListener("drop", async (event) => {
    event.preventDefault();
    const file = event.dataTransfer?.files[0];
    if (!file) return;
    const bitmap = await createImageBitmap(file);
    clear();
    const s = Math.min(canvas.width / bitmap.width, canvas.height / bitmap.height);
    const [w, h] = [bitmap.width * s, bitmap.height * s];
    ctx.drawImage(bitmap, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
    invertIfLightBackground(ctx, canvas.width, canvas.height);
    classify();
  });
  $("clear").addEventListener("click", () => {
    clear();
    $("top5").replaceChildren();
  });
}

/** Photos of clothes are usually dark on light: invert those, so they look like the data. */
function invertIfLightBackground(ctx: CanvasRenderingContext2D, width: number, height: number) {
  const image = ctx.getImageData(0, 0, width, height);
  const d = image.data;
  let border = 0, count = 0;
  for (let x = 0; x < width; x++) {
    for (const y of [0, height - 1]) {
      border += d[4 * (y * width + x)];
      count++;
    }
  }
  if (border / count < 128) return;
  for (let i = 0; i < d.length; i += 4) {
    const g = 255 - (0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]);
    d[i] = d[i + 1] = d[i + 2] = g;
  }
  ctx.putImageData(image, 0, 0);
}

function showTop5(top: { label: string; probability: number }[]): void {
  $("top5").replaceChildren(...top.map(({ label, probability }) => {
    const item = document.createElement("li");
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round(probability * 120)}px`;
    item.append(bar, `${label} ${(100 * probability).toFixed(1)}%`);
    return item;
  }));
}

// ---- wiring ---------------------------------------------------------------------------------

function main(): void {
  const options = readOptions();
  const worker = new Worker(new URL("./train_worker.js", import.meta.url), { type: "module" });
  const send = (message: ToWorker) => worker.postMessage(message);
  let paused = false;
  const pause = $<HTMLButtonElement>("pause");
  pause.addEventListener("click", () => {
    paused = !paused;
    send({ type: paused ? "pause" : "resume" });
    pause.textContent = paused ? "Resume" : "Pause";
  });
  setUpSketch(worker);
  let frame = 0;
  const redraw = () =>
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      drawCurves();
    });
  worker.onmessage = (event: MessageEvent<FromWorker>) => {
    const m = event.data;
    switch (m.type) {
      case "ready":
        state.device = m.device;
        $("device").textContent = m.description;
        $("note").hidden = m.note === null;
        $("note").textContent = m.note ?? "";
        pause.disabled = false;
        break;
      case "status":
        $("status").textContent = m.text;
        break;
      case "step":
        state.losses.push(m.loss);
        state.accuracies.push(m.accuracy);
        $("progress").textContent = `step ${m.step}, loss ${m.loss.toFixed(3)}, ` +
          `${m.imagesPerSecond.toFixed(1)} images/s`;
        redraw();
        break;
      case "test":
        state.tests.push({ step: m.step, accuracy: m.accuracy });
        redraw();
        break;
      case "filters":
        state.filterUpdates++;
        drawFilters(m.weights, m.shape);
        $("filters-step").textContent = `(step ${m.step})`;
        break;
      case "prediction":
        showTop5(m.top);
        break;
      case "done":
        state.done = true;
        $("status").textContent = `done: ${m.steps} steps (reload to train again)`;
        break;
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
  send({ type: "start", options });
}

main();
