/**
 * Every device against the reference: one table per op family (cases_dense.ts,
 * cases_spatial.ts), each row run on the reference device "ref" in float64 (from the same
 * float32 inputs, so the reference is the exact answer to within float64 rounding) and on every
 * fast device in float32 ("cpu": the WebAssembly kernels and the reference for the rest; "gpu":
 * WGSL on WebGPU), with the same seeded upstream gradient. The forward output and every input
 * gradient must agree within |device − ref| <= atol + rtol·|ref|, the row's tolerance: the
 * family's float32 error bound (a few ulp for one rounding, more for sums of many terms and for
 * transcendental functions, exact for dropout's masks up to the rounding of the scale).
 *
 * The cpu device runs with its kernel outputs filled with NaN before the kernel writes them
 * (`setPoisonOutputs`: it skips zeroing an output its kernel writes in full), so an element a
 * kernel leaves unwritten fails its row.
 *
 * Each row is one test step with one sub-step per device ("cpu vs ref", "gpu vs ref"), so the
 * output names both. Without a WebGPU adapter the GPU sub-steps are skipped, except in CI
 * (CI=true), where tests/support/gpu_helpers.ts fails the run.
 *
 * The GPU also runs the matmul rows with the shared-memory tiled kernel forced (the real-GPU
 * kernel, otherwise unused on a software adapter), and the chunked rows on a device whose
 * binding limit is forced down to 64 KiB, so the paths for buffers larger than one binding run
 * on small shapes. SGD's update rule (a kernel, not an autograd op) has its own table.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fromArray, type Tensor } from "../../tensor/tensor.ts";
import { sgdUpdateCpu } from "../../tensor/ops/sgd.ts";
import { getBackend } from "../../tensor/tensor.ts";
import type { SgdParams, TypedArray } from "../../backend/backend.ts";
import { setMatmulPath } from "../../gpu/kernels/matmul.ts";
import { setPoisonOutputs } from "../../cpu/backend.ts";
import {
  chunkedCases,
  dropoutCases,
  elementwiseCases,
  inputValues,
  layoutCases,
  matmulCases,
  type ParityCase,
  reduceCases,
  softmaxCases,
} from "./cases_dense.ts";
import { conv2dCases, lrnParityCases, poolingCases } from "./cases_spatial.ts";
import { getGpu, gpuAvailable } from "../support/gpu_helpers.ts";
import { assertClose } from "../support/close.ts";

const CHUNKED = { name: "gpu-chunked", maxBindingBytes: 1 << 16 };

/** The op families' tables, each run on every device. */
export const FAMILIES: readonly [string, readonly ParityCase[]][] = [
  ["elementwise", elementwiseCases],
  ["reduce", reduceCases],
  ["layout", layoutCases],
  ["matmul", matmulCases],
  ["softmax and crossEntropy", softmaxCases],
  ["dropout", dropoutCases],
  ["conv2d", conv2dCases],
  ["pooling", poolingCases],
  ["lrn", lrnParityCases],
];

interface Result {
  output: TypedArray;
  grads: (TypedArray | null)[];
}

/** The row's float32 values, widened to float64 for the reference. */
function widen(values: Float32Array | Int32Array): Float64Array | Int32Array {
  return values instanceof Float32Array ? Float64Array.from(values) : values;
}

/** Runs a row on `device`; on the cpu device with its unzeroed outputs poisoned (NaN). */
async function run(c: ParityCase, device: string, values: TypedArray[]): Promise<Result> {
  setPoisonOutputs(device === "cpu");
  try {
    return await runRow(c, device, values);
  } finally {
    setPoisonOutputs(false);
  }
}

async function runRow(c: ParityCase, device: string, values: TypedArray[]): Promise<Result> {
  const xs: Tensor[] = c.inputs.map((spec, i) =>
    fromArray(values[i], spec.shape, { device, requiresGrad: spec.kind !== "labels" })
  );
  const out = c.fn(...xs);
  const output = await out.data();
  let grads: (TypedArray | null)[] = xs.map(() => null);
  if (out.requiresGrad && (out.dtype === "float32" || out.dtype === "float64")) {
    const upstream = inputValues({ shape: [...out.shape] }, 999) as Float32Array;
    const dy = out.dtype === "float64" ? widen(upstream) : upstream;
    out.backward(fromArray(dy, out.shape, { device }));
    grads = await Promise.all(xs.map((x) => x.grad ? x.grad.data() : null));
  }
  for (const x of xs) {
    x.grad?.dispose();
    x.dispose();
  }
  out.dispose();
  return { output, grads };
}

/** A device's result against the reference's, with the row's tolerances. */
function compare(c: ParityCase, device: string, got: Result, ref: Result): void {
  const options = (what: string) => ({
    rtol: c.rtol ?? 1e-5,
    atol: c.atol ?? 1e-5,
    what: `${c.name}: ${what} (${device} vs ref)`,
  });
  assertClose(got.output, ref.output, options("output"));
  ref.grads.forEach((expected, i) => {
    if (expected === null) {
      assert.equal(got.grads[i], null, `${c.name}: input ${i} has a gradient on ${device} only`);
    } else {
      assert.ok(got.grads[i], `${c.name}: input ${i} has no gradient on ${device}`);
      assertClose(got.grads[i]!, expected, options(`grad of input ${i}`));
    }
  });
}

/** Runs a table: the reference once per row, then one sub-step per device. */
async function checkTable(
  t: Deno.TestContext,
  cases: readonly ParityCase[],
  devices: readonly string[],
): Promise<void> {
  for (const [index, c] of cases.entries()) {
    await t.step(c.name, async (row) => {
      const values = c.inputs.map((spec, i) => inputValues(spec, index * 16 + i + 1));
      const ref = await run(c, "ref", values.map(widen));
      for (const device of devices) {
        await row.step({
          name: `${device} vs ref`,
          ignore: device.startsWith("gpu") && !gpuAvailable,
          fn: async () => compare(c, device, await run(c, device, values), ref),
        });
      }
    });
  }
}

/** Acquires the GPU devices (when present) and fails on any GPU error they reported. */
async function withGpus<T>(fn: () => Promise<T>, names = ["gpu"]): Promise<T> {
  if (!gpuAvailable) return await fn();
  const gpus = await Promise.all(names.map((name) => getGpu(name === "gpu" ? {} : CHUNKED)));
  const result = await fn();
  for (const gpu of gpus) await gpu.runtime.checkErrors();
  return result;
}

Deno.test("parity tables have unique row names", () => {
  const names = [...FAMILIES.flatMap(([, cases]) => cases), ...chunkedCases].map((c) => c.name);
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), []);
});

for (const [family, cases] of FAMILIES) {
  Deno.test(`parity ${family}: cpu and gpu against ref (float64)`, (t) =>
    withGpus(() => checkTable(t, cases, ["cpu", "gpu"])));
}

Deno.test("parity matmul: gpu with the shared-memory tiled kernel against ref", async (t) => {
  setMatmulPath("tiled");
  try {
    await withGpus(() => checkTable(t, matmulCases, ["gpu"]));
  } finally {
    setMatmulPath("auto");
  }
});

for (const path of ["auto", "tiled"] as const) {
  Deno.test(`parity: buffers larger than one binding (64 KiB limit, ${path} matmul)`, async (t) => {
    setMatmulPath(path);
    try {
      const devices = path === "auto" ? ["cpu", CHUNKED.name] : [CHUNKED.name];
      await withGpus(() => checkTable(t, chunkedCases, devices), [CHUNKED.name]);
    } finally {
      setMatmulPath("auto");
    }
  });
}

// ---- SGD's update rule: a kernel of every device, three steps from the same state ----------

const SGD_ROWS: SgdParams[] = [
  { lr: 0.01, momentum: 0.9, weightDecay: 5e-4, rule: "paper" },
  { lr: 0.1, momentum: 0.9, weightDecay: 1e-4, rule: "pytorch" },
  { lr: 0.05, momentum: 0, weightDecay: 0, rule: "pytorch" },
];

async function sgdOn(device: string, n: number, p: SgdParams): Promise<TypedArray[]> {
  const backend = getBackend(device);
  const [w, g, v] = [1, 2, 3].map((seed) =>
    backend.fromArray(inputValues({ shape: [n] }, seed) as Float32Array)
  );
  for (let step = 0; step < 3; step++) backend.sgdUpdate(w, g, v, p);
  const result = [await backend.read(w), await backend.read(v)];
  for (const s of [w, g, v]) backend.free(s);
  return result;
}

Deno.test("parity sgd update: cpu and gpu against the float64 rule", async (t) => {
  await withGpus(async () => {
    for (const p of SGD_ROWS) {
      for (const n of [1_001, 40_003]) {
        await t.step(
          `sgd ${p.rule} lr ${p.lr} momentum ${p.momentum}, ${n} weights`,
          async (row) => {
            const [w, g, v] = [1, 2, 3].map((seed) => widen(inputValues({ shape: [n] }, seed)));
            for (let step = 0; step < 3; step++) sgdUpdateCpu(w, g, v, p);
            const devices = n > 10_000 ? ["cpu", "gpu", CHUNKED.name] : ["cpu", "gpu"];
            for (const device of devices) {
              await row.step({
                name: `${device} vs ref`,
                ignore: device.startsWith("gpu") && !gpuAvailable,
                async fn() {
                  const [gw, gv] = await sgdOn(device, n, p);
                  const what = (name: string) => `sgd ${p.rule}: ${name} (${device} vs ref)`;
                  assertClose(gw, w, { rtol: 1e-5, atol: 1e-6, what: what("weight") });
                  assertClose(gv, v, { rtol: 1e-5, atol: 1e-6, what: what("velocity") });
                },
              });
            }
          },
        );
      }
    }
  }, gpuAvailable ? ["gpu", CHUNKED.name] : []);
});
