/**
 * Which device the page trains on, chosen the way the command line does
 * (examples/alexnet/device.ts): `?device=cpu` and `?device=gpu` force one; otherwise the page
 * does not trust WebGPU's mere presence. A software adapter (SwiftShader, lavapipe: the
 * adapter says `isFallbackAdapter`, or names a CPU renderer) draws on the processor through a
 * GPU emulation, far slower than the CPU backend's WebAssembly kernels, so the page trains on
 * the CPU. With a hardware adapter it times one training step of AlexNet-mini on each device
 * (after one warm-up step) and keeps the faster. The reason is returned for the page to show.
 *
 * The CPU backend runs on every core when the page is cross-origin isolated
 * (SharedArrayBuffer), its workers loaded from the bundled `gemm_worker.js`; else on one.
 *
 * @module
 */

import {
  cpuOptions,
  crossEntropy,
  fromArray,
  initWebGPU,
  isWebGPUAvailable,
  setCpuOptions,
  SGD,
} from "../mod.ts";
import { alexnetMini } from "../models/alexnet.ts";
import { Rng } from "../tensor/random.ts";

/** The device chosen, as the page shows it, and why (null: nothing worth saying). */
export interface DeviceChoice {
  device: "gpu" | "cpu";
  description: string;
  note: string | null;
}

/** Images per probe step: enough to be representative, short on a slow device. */
const PROBE_BATCH = 16;

/** Readies the CPU backend on every core where the page may share memory; its description. */
async function prepareCpu(workerUrl: URL): Promise<string> {
  if (globalThis.crossOriginIsolated) await setCpuOptions({ threads: "auto", workerUrl });
  const { threads } = cpuOptions();
  return `CPU backend, ${threads} thread${threads === 1 ? "" : "s"}`;
}

/** Images per second of one AlexNet-mini training step on `device`, after one warm-up step. */
export async function probeTrainingStep(device: "gpu" | "cpu"): Promise<number> {
  const model = await alexnetMini({ seed: 0 }).to(device);
  model.train();
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const rng = new Rng(0);
  const images = new Float32Array(PROBE_BATCH * 28 * 28).map(() => rng.normal());
  const labels = new Int32Array(PROBE_BATCH).map(() => rng.int(10));
  let seconds = 0;
  for (let step = 0; step < 2; step++) {
    const started = performance.now();
    using x = fromArray(images, [PROBE_BATCH, 1, 28, 28], { device });
    using y = fromArray(labels, [PROBE_BATCH], { device });
    optimizer.zeroGrad();
    using loss = crossEntropy(model.forward(x), y);
    loss.backward();
    optimizer.step();
    await loss.item(); // waits for the device to finish the step
    seconds = (performance.now() - started) / 1000;
  }
  optimizer.dispose();
  for (const p of model.parameters()) p.dispose();
  return PROBE_BATCH / seconds;
}

/**
 * Picks the training device for `requested` ("auto", "cpu", "gpu"); `workerUrl` is the bundled
 * worker script of the CPU backend's threads. Throws when `?device=gpu` finds no adapter.
 */
export async function chooseDevice(
  requested: "auto" | "cpu" | "gpu",
  workerUrl: URL,
): Promise<DeviceChoice> {
  const cpu = async (note: string | null): Promise<DeviceChoice> => ({
    device: "cpu",
    description: await prepareCpu(workerUrl),
    note,
  });
  if (requested === "cpu") return cpu("CPU chosen by ?device=cpu");
  if (!(await isWebGPUAvailable())) {
    if (requested === "gpu") {
      throw new Error("?device=gpu: this browser has no WebGPU adapter (navigator.gpu gives none)");
    }
    return cpu(
      "navigator.gpu is missing (or has no adapter): training on the CPU backend. " +
        "Chrome and Edge have WebGPU; elsewhere enable it in the settings.",
    );
  }
  const gpu = await initWebGPU();
  const info = gpu.runtime.adapterInfo;
  const adapter = [info.vendor, info.architecture, info.description].filter(Boolean).join(" ") ||
    "adapter";
  const onGpu = (note: string | null): DeviceChoice => ({
    device: "gpu",
    description: `WebGPU: ${adapter}`,
    note,
  });
  const kind = gpu.runtime.isSoftware ? "a software adapter" : "a hardware adapter";
  if (requested === "gpu") return onGpu(`WebGPU (${kind}) chosen by ?device=gpu`);
  if (gpu.runtime.isSoftware) {
    return cpu(
      `The WebGPU adapter (${adapter}) is a software renderer, which emulates a GPU on the ` +
        "processor: the CPU backend's WebAssembly kernels train faster, so the page uses them. " +
        "?device=gpu forces WebGPU.",
    );
  }
  const description = await prepareCpu(workerUrl);
  const cpuRate = await probeTrainingStep("cpu"), gpuRate = await probeTrainingStep("gpu");
  const rates = `one probe step each: WebGPU ${gpuRate.toFixed(0)} images/s, ` +
    `${description} ${cpuRate.toFixed(0)} images/s`;
  if (gpuRate >= cpuRate) return onGpu(`WebGPU is faster (${rates}).`);
  return { device: "cpu", description, note: `The CPU is faster here (${rates}).` };
}
