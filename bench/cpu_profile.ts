/**
 * Where one CPU training step spends its time, kernel by kernel: every method of the CPU
 * backend is wrapped in a timer (the CPU kernels are synchronous, so wall time per call is the
 * kernel's time), then one AlexNet-mini step at batch 128 and one paper-AlexNet step at batch 8
 * run after a warm-up step (`--batch` changes both batch sizes). With `--infer`, the same for inference: eval mode under noGrad, the
 * forward pass alone.
 *
 *     deno run --allow-read bench/cpu_profile.ts [mini|alexnet] [--steps N] [--threads N] [--infer]
 *       [--batch N]
 *
 * Conv calls are split by layer shape (`conv2dForward 1x28x28 k5`), since each layer is a
 * different gemm shape. The machine is shared: read the shares, not the absolute times alone.
 *
 * @module
 */

import { cpuBackend } from "../cpu/mod.ts";
import { getThreads, setThreads } from "../cpu/kernels/gemm.ts";
import type { Conv2dParams } from "../backend/backend.ts";
import { fromArray } from "../tensor/tensor.ts";
import { noGrad } from "../tensor/autograd.ts";
import { crossEntropy } from "../tensor/ops/softmax.ts";
import { Rng } from "../tensor/random.ts";
import { SGD } from "../optim/sgd.ts";
import { alexnet, alexnetMini } from "../models/alexnet.ts";
import type { Module } from "../nn/module.ts";

/** Accumulated milliseconds and call counts per kernel label. */
export type Profile = Map<string, { ms: number; calls: number }>;

function label(method: string, args: unknown[]): string {
  if (method.startsWith("conv2d")) {
    const p = args[args.length - 1] as Conv2dParams;
    return `${method} ${p.c}x${p.h}x${p.w} k${p.kh} s${p.strideH} g${p.groups} -> ${p.o}`;
  }
  if (method === "unary" || method === "unaryBackward" || method === "binary") {
    return `${method} ${args[0]}`;
  }
  return method;
}

/** Wraps every CPU backend method in a timer; returns the profile and a function that unwraps. */
export function instrumentCpu(): { profile: Profile; restore: () => void } {
  const profile: Profile = new Map();
  const target = cpuBackend as unknown as Record<string, unknown>;
  // The contract's methods, on the cpu backend's class and the reference class it extends
  // (its protected helpers, which allocate and unwrap storage, are left alone).
  const helpers = ["constructor", "allocate", "array", "create", "like"];
  const names = new Set<string>();
  for (
    let p = Object.getPrototypeOf(cpuBackend);
    p !== Object.prototype;
    p = Object.getPrototypeOf(p)
  ) {
    for (const n of Object.getOwnPropertyNames(p)) {
      if (!helpers.includes(n) && typeof p[n] === "function") names.add(n);
    }
  }
  for (const name of names) {
    const original = target[name] as (...args: unknown[]) => unknown;
    target[name] = function (this: unknown, ...args: unknown[]) {
      const start = performance.now();
      const result = original.apply(this, args);
      const key = label(name, args);
      const entry = profile.get(key) ?? { ms: 0, calls: 0 };
      entry.ms += performance.now() - start;
      entry.calls++;
      profile.set(key, entry);
      return result;
    };
  }
  return { profile, restore: () => names.forEach((n) => delete target[n]) };
}

/** Runs `steps` training steps of `model` (after one warm-up step) and returns mean ms per step. */
export async function profileStep(
  model: Module,
  inputShape: number[],
  classes: number,
  profile: Profile,
  steps = 1,
  infer = false,
): Promise<number> {
  if (infer) return profileInference(model, inputShape, profile, steps);
  model.train();
  const optimizer = new SGD(model.parameters(), { lr: 1e-3, momentum: 0.9, weightDecay: 5e-4 });
  const rng = new Rng(0);
  const images = new Float32Array(inputShape.reduce((a, b) => a * b, 1)).map(() => rng.normal());
  const labels = new Int32Array(inputShape[0]).map(() => rng.int(classes));
  let total = 0;
  for (let i = 0; i <= steps; i++) {
    if (i === 1) profile.clear();
    const start = performance.now();
    using x = fromArray(images, inputShape);
    using y = fromArray(labels, [inputShape[0]]);
    optimizer.zeroGrad();
    using loss = crossEntropy(model.forward(x), y);
    loss.backward();
    optimizer.step();
    await loss.item();
    if (i > 0) total += performance.now() - start;
  }
  optimizer.dispose();
  return total / steps;
}

/** Runs `steps` inference passes (eval mode, noGrad) after a warm-up; mean ms per pass. */
async function profileInference(
  model: Module,
  inputShape: number[],
  profile: Profile,
  steps: number,
): Promise<number> {
  model.eval();
  const rng = new Rng(0);
  const images = new Float32Array(inputShape.reduce((a, b) => a * b, 1)).map(() => rng.normal());
  let total = 0;
  for (let i = 0; i <= steps; i++) {
    if (i === 1) profile.clear();
    const start = performance.now();
    using x = fromArray(images, inputShape);
    using logits = noGrad(() => model.forward(x));
    await logits.data();
    if (i > 0) total += performance.now() - start;
  }
  return total / steps;
}

/** Prints a profile as a markdown table, largest first, ms per step. */
export function printProfile(title: string, profile: Profile, stepMs: number, steps: number) {
  const rows = [...profile.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const kernelMs = rows.reduce((s, [, e]) => s + e.ms, 0) / steps;
  console.log(
    `\n### ${title}: ${stepMs.toFixed(0)} ms per step, kernels ${kernelMs.toFixed(0)} ms\n`,
  );
  console.log("| kernel | ms/step | share | calls/step |\n|---|---|---|---|");
  for (const [key, e] of rows) {
    const ms = e.ms / steps, calls = +(e.calls / steps).toFixed(1);
    if (ms < 0.05 * stepMs / 100) continue;
    console.log(`| ${key} | ${ms.toFixed(1)} | ${(100 * ms / stepMs).toFixed(1)}% | ${calls} |`);
  }
  console.log(
    `| (outside kernels: autograd, allocation of tensors) | ${(stepMs - kernelMs).toFixed(1)} | ${
      (100 * (stepMs - kernelMs) / stepMs).toFixed(1)
    }% | |`,
  );
}

if (import.meta.main) {
  const which = Deno.args.find((a) => a === "mini" || a === "alexnet");
  const stepsAt = Deno.args.indexOf("--steps");
  const steps = stepsAt >= 0 ? Number(Deno.args[stepsAt + 1]) : 1;
  const threadsAt = Deno.args.indexOf("--threads");
  const infer = Deno.args.includes("--infer"), what = infer ? "inference" : "step";
  const batchAt = Deno.args.indexOf("--batch");
  const batch = (fallback: number) => batchAt >= 0 ? Number(Deno.args[batchAt + 1]) : fallback;
  await setThreads(threadsAt >= 0 ? Number(Deno.args[threadsAt + 1]) : "auto");
  console.log(`${getThreads()} thread(s)`);
  const { profile } = instrumentCpu();
  if (which !== "alexnet") {
    const n = batch(128);
    const ms = await profileStep(alexnetMini(), [n, 1, 28, 28], 10, profile, steps, infer);
    printProfile(`AlexNet-mini, batch ${n}, ${what}`, profile, ms, steps);
    console.log(`\n${(n / (ms / 1000)).toFixed(1)} images/s`);
  }
  if (which !== "mini") {
    const n = batch(8);
    const ms = await profileStep(alexnet(), [n, 3, 227, 227], 1000, profile, steps, infer);
    printProfile(`AlexNet (paper, 227 px), batch ${n}, ${what}`, profile, ms, steps);
    console.log(`\n${(n / (ms / 1000)).toFixed(2)} images/s`);
  }
}
