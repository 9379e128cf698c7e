/**
 * The OpInfo table is complete: every function and class mod.ts exports is either an op with
 * a row in tests/opinfo/table.ts (every sample category considered: samples, or a stated reason
 * it does not apply) or listed below as not an op, with the reason; and every options key an
 * op declares (tensor/options.ts, optionRegistry()) is passed by at least one of its samples.
 * A new export or a new options key fails here until it has rows.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as tessera from "../../mod.ts";
import { CATEGORIES } from "./sample.ts";
import { OPINFO } from "./table.ts";

/** mod.ts exports that are not ops computing tensors, each with the reason. */
const NOT_OPS: Record<string, string> = {
  // classes: layers and containers are built from the ops (tests/nn/), storages and backends are
  // the device contract (tests/api/, tests/cpu/, tests/gpu/), Rng is the generator (tests/api/)
  AdaptiveAvgPool2d: "layer class over adaptiveAvgPool2d (tests/nn/layers.test.ts)",
  AvgPool2d: "layer class over avgPool2d (tests/nn/layers.test.ts)",
  Conv2d: "layer class over conv2d (tests/nn/layers.test.ts)",
  Dropout: "layer class over dropout (tests/nn/layers.test.ts)",
  Flatten: "layer class over flatten (tests/nn/layers.test.ts)",
  Identity: "layer class, no computation",
  Linear: "layer class over linear (tests/nn/layers.test.ts)",
  LocalResponseNorm: "layer class over localResponseNorm (tests/nn/layers.test.ts)",
  MaxPool2d: "layer class over maxPool2d (tests/nn/layers.test.ts)",
  Pool2d: "base class of the pooling layers",
  ReLU: "layer class over relu (tests/nn/layers.test.ts)",
  Tanh: "layer class over tanh (tests/nn/layers.test.ts)",
  Module: "module base class (tests/nn/module.test.ts)",
  Sequential: "container class (tests/nn/module.test.ts)",
  CosineAnnealing: "learning-rate schedule, no tensor (tests/optim/schedules.test.ts)",
  ReduceLROnPlateau: "learning-rate schedule, no tensor (tests/optim/schedules.test.ts)",
  StepLR: "learning-rate schedule, no tensor (tests/optim/schedules.test.ts)",
  Tensor: "the tensor class; its methods delegate to the ops (tests/api/pytorch.test.ts)",
  CpuStorage: "device storage class (tests/cpu/)",
  GpuBackend: "device backend class (tests/gpu/)",
  GpuRuntime: "GPU dispatch runtime (tests/gpu/)",
  GpuStorage: "device storage class (tests/gpu/)",
  Rng: "random generator (tests/api/random.test.ts); rand/randn are its ops",
  TorchLoadError: "error class of loadTorch (tests/io/torch_load.test.ts)",
  // registries, settings and autograd machinery
  getBackend: "device registry (tests/api/backend_registry.test.ts)",
  registerBackend: "device registry (tests/api/backend_registry.test.ts)",
  unregisterBackend: "device registry (tests/api/backend_registry.test.ts)",
  cpuOptions: "cpu device settings (tests/cpu/)",
  setCpuOptions: "cpu device settings (tests/cpu/)",
  initWebGPU: "GPU device setup (tests/gpu/)",
  isWebGPUAvailable: "GPU device probe (tests/gpu/)",
  gpuMemoryStats: "GPU memory statistics (tests/gpu/memory.test.ts)",
  backward: "autograd driver (tests/ops/autograd.test.ts)",
  isGradEnabled: "autograd mode (tests/semantics/autograd.test.ts)",
  noGrad: "autograd mode (tests/semantics/autograd.test.ts)",
  withGradEnabled: "autograd mode (tests/semantics/autograd.test.ts)",
  scope: "tensor lifetime scope (tests/api/)",
  gradcheck: "checks ops, is not one (tests/ops/, tests/semantics/)",
  customOp: "defines ops (tests/ops/custom.test.ts)",
  record: "defines ops (tests/ops/custom.test.ts)",
  checkOptions: "options checking (tests/options_checked.test.ts)",
  declareOptions: "options checking (tests/options_checked.test.ts)",
  optionRegistry: "options checking (this file, tests/options_checked.test.ts)",
  conv2dParams: "conv2d's shape arithmetic (tests/ops/conv2d.test.ts)",
  parameter: "marks a tensor as a module parameter (tests/nn/module.test.ts)",
  buildSummary: "module summary text (tests/nn/)",
  formatCount: "number formatting for summaries (tests/nn/)",
  // randomness helpers on numbers, not tensors
  counterHash: "integer hash of the counter-based RNG (tests/ops/dropout.test.ts)",
  counterUniform: "number from the counter-based RNG (tests/ops/dropout.test.ts)",
  mix32: "integer mixing function of the RNG (tests/api/random.test.ts)",
  manualSeed: "global generator seed (tests/api/random.test.ts)",
  getRngState: "global generator state (tests/api/random.test.ts)",
  setRngState: "global generator state (tests/api/random.test.ts)",
  // files
  saveCheckpoint: "file I/O (tests/io/checkpoint.test.ts)",
  loadCheckpoint: "file I/O (tests/io/checkpoint.test.ts)",
  saveSafetensors: "file I/O (tests/io/safetensors.test.ts)",
  loadSafetensors: "file I/O (tests/io/safetensors.test.ts)",
  encodeSafetensors: "bytes I/O (tests/io/safetensors.test.ts)",
  decodeSafetensors: "bytes I/O (tests/io/safetensors.test.ts)",
  loadTorch: "file I/O (tests/io/torch_load.test.ts)",
  loadTorchBytes: "bytes I/O (tests/io/torch_load.test.ts)",
  writeFileAtomic: "file I/O (tests/io/atomic.test.ts)",
  writeTextFileAtomic: "file I/O (tests/io/atomic.test.ts)",
};

/**
 * Options registry entries that are not ops of the table (constructors, methods, files): their
 * unknown keys are checked by tests/options_checked.test.ts, their values by their own tests.
 */
const OPTIONS_ELSEWHERE: Record<string, string> = {
  "backward": "autograd driver (tests/ops/autograd.test.ts: retainGraph)",
  "Tensor.to": "a method (tests/api/, tests/nn/gpu.test.ts)",
  "gradcheck": "checks ops (tests/semantics/, tests/ops/)",
  "Module.loadStateDict": "a method (tests/nn/module.test.ts)",
  "Module.to": "a method (tests/nn/gpu.test.ts)",
  "Module.summary": "a method (tests/nn/)",
  "init.kaimingNormal": "initialiser (tests/nn/init.test.ts)",
  "init.kaimingUniform": "initialiser (tests/nn/init.test.ts)",
  "init.xavierUniform": "initialiser (tests/nn/init.test.ts)",
  "init.xavierNormal": "initialiser (tests/nn/init.test.ts)",
  "Conv2d": "layer class (tests/nn/layers.test.ts)",
  "Linear": "layer class (tests/nn/layers.test.ts)",
  "LocalResponseNorm": "layer class (tests/nn/layers.test.ts)",
  "MaxPool2d": "layer class (tests/nn/layers.test.ts)",
  "AvgPool2d": "layer class (tests/nn/layers.test.ts)",
  "Dropout": "layer class (tests/nn/layers.test.ts)",
  "StepLR": "schedule (tests/optim/schedules.test.ts)",
  "ReduceLROnPlateau": "schedule (tests/optim/schedules.test.ts)",
  "CosineAnnealing": "schedule (tests/optim/schedules.test.ts)",
  "saveCheckpoint": "file I/O (tests/io/checkpoint.test.ts)",
  "loadCheckpoint": "file I/O (tests/io/checkpoint.test.ts)",
  "loadTorch": "file I/O (tests/io/torch_load.test.ts)",
  "setCpuOptions": "cpu device settings (tests/cpu/)",
  "initWebGPU": "GPU device setup (tests/gpu/, tests/options_checked.test.ts)",
  "customOp": "defines ops (tests/ops/custom.test.ts)",
  "SGD group": "a parameter group of SGD (tests/optim/sgd.test.ts)",
};

const exported = Object.entries(tessera)
  .filter(([, value]) => typeof value === "function")
  .map(([name]) => name)
  .sort();
const rows = new Map(OPINFO.map((info) => [info.op, info]));

Deno.test("opinfo completeness: every exported op has a row, every other export a reason", () => {
  const missing = exported.filter((name) => !rows.has(name) && !(name in NOT_OPS));
  assert.deepEqual(missing, [], `exports with neither OpInfo rows nor a reason in NOT_OPS`);
  const both = exported.filter((name) => rows.has(name) && name in NOT_OPS);
  assert.deepEqual(both, [], "listed as an op and as not an op");
  const stale = [...Object.keys(NOT_OPS), ...rows.keys()].filter((n) => !exported.includes(n));
  assert.deepEqual(stale, [], "listed but not exported by mod.ts");
  assert.equal(new Set(OPINFO.map((i) => i.op)).size, OPINFO.length, "one row per op");
});

Deno.test("opinfo completeness: every row considers every category", () => {
  for (const info of OPINFO) {
    for (const category of CATEGORIES) {
      const samples = info.samples[category];
      assert.ok(samples, `${info.op}: category ${category} is neither sampled nor declared`);
      if (Array.isArray(samples)) {
        assert.ok(samples.length > 0, `${info.op}: category ${category} has an empty list`);
      } else {
        assert.ok(samples.notApplicable.length > 0, `${info.op}: ${category} needs a reason`);
      }
    }
    assert.ok(Array.isArray(info.samples.errors), `${info.op}: the error contract needs rows`);
  }
});

Deno.test("opinfo completeness: every options key of an op is exercised by a sample", () => {
  const registry = tessera.optionRegistry();
  const ops = new Map(OPINFO.filter((i) => i.optionsOf).map((i) => [i.optionsOf!, i]));
  for (const [name, keys] of registry) {
    const info = ops.get(name);
    if (!info) {
      assert.ok(name in OPTIONS_ELSEWHERE, `options of ${name}: no OpInfo row and no reason`);
      continue;
    }
    const used = new Set(
      Object.values(info.samples).flatMap((s) => Array.isArray(s) ? s : [])
        .flatMap((s) => s.options ?? []),
    );
    const unused = keys.filter((key) => !used.has(key));
    assert.deepEqual(unused, [], `options of ${name} that no sample passes`);
  }
  for (const name of [...ops.keys(), ...Object.keys(OPTIONS_ELSEWHERE)]) {
    assert.ok(registry.has(name), `${name} is listed but declares no options`);
  }
});
