/**
 * The ImageNet page's worker: turns a dropped weights file (`.pth`/`.pt` read by
 * `loadTorchBytes`, or `.safetensors`) into torchvision's AlexNet on WebGPU (or the CPU
 * backend), then classifies the photos the page sends with torchvision's evaluation
 * transform (`data/imagenet.ts`), answering with the top-5. Messages are handled one at a
 * time, in order, so photos dropped with the weights wait for them.
 *
 * @module
 */

/// <reference lib="webworker" />

import { cpuOptions, initWebGPU, isWebGPUAvailable, setCpuOptions } from "../mod.ts";
import type { HostTensor, Tensor } from "../mod.ts";
import { loadTorchBytes } from "../io/torch.ts";
import { decodeSafetensors } from "../io/safetensors.ts";
import {
  ALEXNET_MAX_BYTES,
  alexnetFromStateDict,
  classify,
  disposePretrained,
  type PretrainedAlexNet,
} from "../models/alexnet_pretrained.ts";
import type { FromImagenetWorker, ToImagenetWorker } from "./imagenet_protocol.ts";

function post(message: FromImagenetWorker, transfer: Transferable[] = []): void {
  self.postMessage(message, transfer);
}

let device: "gpu" | "cpu" = "cpu";
let net: PretrainedAlexNet | null = null;

/** WebGPU when the browser has it (unless `?device=cpu`), else the CPU backend. */
async function start(choice: "auto" | "cpu"): Promise<void> {
  if (choice === "auto" && await isWebGPUAvailable()) {
    const info = (await initWebGPU()).runtime.adapterInfo;
    const description = [info.vendor, info.architecture, info.description].filter(Boolean)
      .join(" ");
    device = "gpu";
    post({ type: "ready", device, description: `WebGPU: ${description || "adapter"}` });
    return;
  }
  if (self.crossOriginIsolated) {
    await setCpuOptions({
      threads: 2,
      workerUrl: new URL("./gemm_worker.js", import.meta.url),
    });
  }
  const { threads } = cpuOptions();
  post({
    type: "ready",
    device: "cpu",
    description: `CPU backend, ${threads} thread${threads === 1 ? "" : "s"}` +
      (choice === "auto" ? " (no WebGPU in this browser)" : ""),
  });
}

/** The state dict of a dropped file, by its extension. */
async function readStateDict(name: string, bytes: Uint8Array) {
  if (/\.(pth|pt)$/i.test(name)) {
    return await loadTorchBytes(bytes, { name, maxBytes: ALEXNET_MAX_BYTES });
  }
  if (/\.safetensors$/i.test(name)) {
    const state = new Map<string, Tensor | HostTensor>();
    for (const [key, entry] of decodeSafetensors(bytes, name).tensors) {
      if (entry.dtype !== "F32" && entry.dtype !== "F64") {
        throw new Error(`${name}: tensor "${key}" is ${entry.dtype}; weights are floats`);
      }
      state.set(key, entry as HostTensor);
    }
    return state;
  }
  throw new Error(`${name}: expected a .pth, .pt or .safetensors AlexNet weights file`);
}

async function loadWeights(name: string, bytes: Uint8Array): Promise<void> {
  post({ type: "status", text: `reading ${name} (${(bytes.length / 1e6).toFixed(1)} MB)…` });
  const state = await readStateDict(name, bytes);
  try {
    const loaded = await alexnetFromStateDict(state, name, device);
    if (net) disposePretrained(net);
    net = loaded;
  } finally {
    for (const t of state.values()) if ("dispose" in t) t.dispose();
  }
  const conv1 = net.model.namedParameters().get("features.0.weight")!;
  const weights = new Float32Array(await conv1.data());
  post({
    type: "loaded",
    name,
    parameters: net.model.parameterCount(),
    classes: net.classNames.length,
    filters: { shape: [...conv1.shape], weights },
  }, [weights.buffer]);
}

async function handle(message: ToImagenetWorker): Promise<void> {
  if (message.type === "start") return await start(message.device);
  if (message.type === "weights") {
    return await loadWeights(message.name, new Uint8Array(message.bytes));
  }
  if (net === null) {
    throw new Error(`${message.name}: drop an AlexNet weights file (.pth or .safetensors) first`);
  }
  const started = performance.now();
  const image = { data: message.rgb, channels: 3, height: message.height, width: message.width };
  const top = await classify(net, image, { crops: message.crops });
  post({
    type: "prediction",
    id: message.id,
    name: message.name,
    top: top.map(({ className, probability }) => ({ className, probability })),
    seconds: (performance.now() - started) / 1000,
  });
}

// One message at a time, in arrival order.
let queue = Promise.resolve();
self.onmessage = (event: MessageEvent<ToImagenetWorker>) => {
  const message = event.data;
  queue = queue.then(() => handle(message)).catch((error: Error) =>
    post({
      type: "error",
      message: error.message,
      id: message.type === "classify" ? message.id : undefined,
    })
  );
};
