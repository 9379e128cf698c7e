/**
 * Modules, SGD and checkpoints on the WebGPU backend: `Module.to("gpu")` moves every
 * parameter, a GPU training run follows the CPU one (same init, same dropout masks: the mask
 * is a counter hash of the seed), and checkpoints move between devices bit-exactly.
 * Skipped without an adapter (see gpu_helpers.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { gpuTest } from "../support/gpu_helpers.ts";
import { alexnetMini } from "../../models/alexnet.ts";
import { SGD } from "../../optim/sgd.ts";
import { loadCheckpoint, saveCheckpoint } from "../../io/checkpoint.ts";
import type { Sequential } from "../../nn/layers.ts";
import { fromArray, type Tensor } from "../../tensor/tensor.ts";
import { crossEntropy } from "../../tensor/ops/softmax.ts";
import { Rng } from "../../tensor/random.ts";

function batch(device: string): { x: Tensor; labels: Int32Array } {
  const rng = new Rng(42);
  const x = new Float32Array(4 * 28 * 28);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  return { x: fromArray(x, [4, 1, 28, 28], { device }), labels: Int32Array.from([1, 5, 7, 9]) };
}

async function trainSteps(
  model: Sequential,
  sgd: SGD,
  device: string,
  steps: number,
): Promise<number[]> {
  const { x, labels } = batch(device);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    sgd.zeroGrad();
    const loss = crossEntropy(model.forward(x), labels);
    loss.backward();
    sgd.step();
    losses.push(await loss.item());
  }
  return losses;
}

gpuTest("Module.to('gpu'): parameters move; GPU training follows the CPU run", async () => {
  const cpu = alexnetMini({ seed: 5 });
  const gpu = await alexnetMini({ seed: 5 }).to("gpu");
  for (const [name, p] of gpu.namedParameters()) {
    assert.equal(p.device, "gpu", name);
    assert.ok(p.requiresGrad && p.isKept && p.node === null, name);
  }
  const options = { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 };
  const cpuLosses = await trainSteps(cpu, new SGD(cpu.parameters(), options), "cpu", 3);
  const gpuLosses = await trainSteps(gpu, new SGD(gpu.parameters(), options), "gpu", 3);
  cpuLosses.forEach((l, i) => {
    assert.ok(
      Math.abs(gpuLosses[i] - l) < 1e-3 * Math.max(1, Math.abs(l)),
      `step ${i}: gpu ${gpuLosses[i]}, cpu ${l}`,
    );
  });
  for (const [name, p] of gpu.namedParameters()) {
    const onGpu = await p.data(), onCpu = cpu.namedParameters().get(name)!.dataSync();
    let worst = 0;
    for (let i = 0; i < onGpu.length; i++) worst = Math.max(worst, Math.abs(onGpu[i] - onCpu[i]));
    assert.ok(worst < 1e-4, `${name} after 3 steps: max |gpu - cpu| = ${worst}`);
  }
  await gpu.to("cpu");
  assert.ok(gpu.parameters().every((p) => p.device === "cpu"));
});

gpuTest("checkpoints move between GPU and CPU bit-exactly (weights and velocities)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/gpu.safetensors`;
  const source = await alexnetMini({ seed: 1 }).to("gpu");
  const sgd = new SGD(source.parameters(), { lr: 0.01, momentum: 0.9 });
  await trainSteps(source, sgd, "gpu", 2);
  await saveCheckpoint(path, { model: source, optimizer: sgd, metadata: { step: 2 } });

  for (const device of ["cpu", "gpu"]) {
    const target = await alexnetMini({ seed: 2 }).to(device);
    const targetSgd = new SGD(target.parameters(), { lr: 0.5, momentum: 0.9 });
    const { step } = await loadCheckpoint(path, { model: target, optimizer: targetSgd });
    assert.equal(step, 2);
    assert.equal(targetSgd.lr, 0.01);
    for (const [name, p] of source.namedParameters()) {
      const q = target.namedParameters().get(name)!;
      assert.equal(q.device, device);
      assert.deepEqual(await q.data(), await p.data(), `${device} ${name}`);
      assert.deepEqual(
        await targetSgd.velocity(q)!.data(),
        await sgd.velocity(p)!.data(),
        `${device} velocity ${name}`,
      );
    }
  }
  await Deno.remove(dir, { recursive: true });
});
