/**
 * Choosing the device for a run. A hardware GPU always wins. A software WebGPU adapter
 * (Mesa's lavapipe, which runs shaders on the CPU) may or may not beat the CPU backend,
 * depending on the model and the machine, so `auto` measures: it times one training step of
 * the run's own model and batch size on each device (after a warm-up step that compiles the
 * shaders) and picks the faster.
 *
 * @module
 */

import {
  type Backend,
  crossEntropy,
  fromArray,
  getBackend,
  initWebGPU,
  type Module,
  Rng,
  SGD,
} from "../../mod.ts";

/** The chosen device and the sentence that explains the choice. */
export interface DeviceChoice {
  /** "cpu" or "gpu". */
  device: "cpu" | "gpu";
  /** Why, for the first line of the run's output. */
  reason: string;
}

/** Tries to bring up WebGPU; returns the backend, or null with the reason. */
export async function tryWebGPU(): Promise<{ backend: Backend | null; why: string }> {
  try {
    return { backend: await initWebGPU(), why: "" };
  } catch (error) {
    return { backend: null, why: (error as Error).message };
  }
}

/** Seconds per training step of `makeModel()` on `device` at `batch` (median of `steps` after one warm-up). */
export async function timeTrainingStep(
  makeModel: () => Module,
  inputShape: readonly number[],
  classes: number,
  device: string,
  steps = 2,
): Promise<number> {
  const model = await makeModel().to(device);
  model.train();
  const optimizer = new SGD(model.parameters(), { lr: 1e-3, momentum: 0.9 });
  const rng = new Rng(0);
  const size = inputShape.reduce((a, b) => a * b, 1);
  const images = new Float32Array(size).map(() => rng.normal());
  const labels = new Int32Array(inputShape[0]).map(() => rng.int(classes));
  const times: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const start = performance.now();
    using x = fromArray(images, inputShape, { device });
    using y = fromArray(labels, [inputShape[0]], { device });
    optimizer.zeroGrad();
    using loss = crossEntropy(model.forward(x), y);
    loss.backward();
    optimizer.step();
    await loss.item(); // waits for the device to finish the step
    if (i > 0) times.push((performance.now() - start) / 1000);
  }
  optimizer.dispose();
  for (const p of model.parameters()) p.dispose();
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Picks the device for `requested` ("auto", "cpu", "gpu"), measuring when the GPU is software. */
export async function chooseDevice(
  requested: "auto" | "cpu" | "gpu",
  makeModel: () => Module,
  inputShape: readonly number[],
  classes: number,
): Promise<DeviceChoice> {
  if (requested === "cpu") return { device: "cpu", reason: "requested with --device cpu" };
  const { backend, why } = await tryWebGPU();
  if (requested === "gpu") {
    if (!backend) throw new Error(`--device gpu: ${why}`);
    return { device: "gpu", reason: `requested with --device gpu (${describeAdapter(backend)})` };
  }
  if (!backend) return { device: "cpu", reason: `no WebGPU adapter (${why})` };
  const runtime = (backend as unknown as { runtime?: { isSoftware: boolean } }).runtime;
  if (runtime && !runtime.isSoftware) {
    return { device: "gpu", reason: `hardware GPU: ${describeAdapter(backend)}` };
  }
  // One timed step each, after a warm-up step (which compiles the GPU's shaders).
  const gpuSeconds = await timeTrainingStep(makeModel, inputShape, classes, "gpu", 1);
  const cpuSeconds = await timeTrainingStep(makeModel, inputShape, classes, "cpu", 1);
  const faster = gpuSeconds < cpuSeconds ? "gpu" : "cpu";
  const ratio = Math.max(gpuSeconds, cpuSeconds) / Math.min(gpuSeconds, cpuSeconds);
  return {
    device: faster,
    reason:
      `software WebGPU adapter (${describeAdapter(backend)}): one step of batch ${
        inputShape[0]
      } took ` +
      `${(gpuSeconds * 1000).toFixed(0)} ms on gpu, ${(cpuSeconds * 1000).toFixed(0)} ms on cpu; ` +
      `${faster} is ${ratio.toFixed(1)}x faster`,
  };
}

/** "lavapipe (llvmpipe ...)" style adapter description. */
export function describeAdapter(backend: Backend): string {
  const info = (backend as unknown as { runtime?: { adapterInfo?: GPUAdapterInfo } }).runtime
    ?.adapterInfo;
  if (!info) return backend.name;
  // Software adapters report a numeric vendor id; the description names the driver.
  return info.description || info.device || info.vendor || "unknown adapter";
}

/** The registered backend for a device name (after {@link chooseDevice}). */
export function backendFor(device: string): Backend {
  return getBackend(device);
}
