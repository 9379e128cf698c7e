/**
 * GPU-vs-reference parity: one table of cases (parity/cases_dense.ts, parity/cases_spatial.ts), each
 * run on the reference device ("ref", the plain kernels of tensor/ops/) and on the GPU with the
 * same inputs and the same seeded upstream gradient; the forward output and every input
 * gradient must agree within |gpu − ref| <= atol + rtol·|ref|.
 *
 * The table runs three times: on the default device; with the shared-memory tiled matmul
 * forced (the real-GPU kernel, otherwise unused on a software adapter); and the chunked cases
 * on a device whose binding limit is forced down to 64 KiB, so the paths for buffers larger
 * than one binding run on small shapes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fromArray, type Tensor } from "../../tensor/tensor.ts";
import { sgdUpdateCpu } from "../../tensor/ops/sgd.ts";
import type { SgdParams } from "../../backend/backend.ts";
import { setMatmulPath } from "../../gpu/kernels/matmul.ts";
import { chunkedCases, denseCases, inputValues, type ParityCase } from "./cases_dense.ts";
import { spatialCases } from "./cases_spatial.ts";
import { gpuTest } from "../support/gpu_helpers.ts";
import { assertClose } from "../support/close.ts";

const CHUNKED = { name: "gpu-chunked", maxBindingBytes: 1 << 16 };

interface Result {
  output: Float32Array | Int32Array;
  grads: (Float32Array | Int32Array | null)[];
}

async function run(
  c: ParityCase,
  device: string,
  values: (Float32Array | Int32Array)[],
): Promise<Result> {
  const xs: Tensor[] = c.inputs.map((spec, i) =>
    fromArray(values[i], spec.shape, { device, requiresGrad: spec.kind !== "labels" })
  );
  const out = c.fn(...xs);
  const output = await out.data() as Float32Array | Int32Array;
  let grads: (Float32Array | Int32Array | null)[] = xs.map(() => null);
  if (out.requiresGrad && out.dtype === "float32") {
    const upstream = inputValues({ shape: [...out.shape] }, 999);
    out.backward(fromArray(upstream, out.shape, { device }));
    grads = await Promise.all(
      xs.map(async (x) => x.grad ? await x.grad.data() as Float32Array : null),
    );
  }
  for (const x of xs) {
    x.grad?.dispose();
    x.dispose();
  }
  out.dispose();
  return { output, grads };
}

/** GPU values against the reference device's, with the case's tolerances. */
function compare(c: ParityCase, what: string, gpu: ArrayLike<number>, cpu: ArrayLike<number>) {
  assertClose(gpu, cpu, {
    rtol: c.rtol ?? 1e-5,
    atol: c.atol ?? 1e-5,
    what: `${c.name}: ${what} (GPU vs ref)`,
  });
}

async function checkCase(c: ParityCase, device: string, caseIndex: number): Promise<void> {
  const values = c.inputs.map((spec, i) => inputValues(spec, caseIndex * 16 + i + 1));
  const cpu = await run(c, "ref", values);
  const gpu = await run(c, device, values);
  compare(c, "output", gpu.output, cpu.output);
  cpu.grads.forEach((expected, i) => {
    if (expected === null) {
      assert.equal(gpu.grads[i], null, `${c.name}: input ${i} has a gradient on the GPU only`);
    } else {
      assert.ok(gpu.grads[i], `${c.name}: input ${i} has no gradient on the GPU`);
      compare(c, `grad of input ${i}`, gpu.grads[i]!, expected);
    }
  });
}

async function checkTable(
  cases: readonly ParityCase[],
  device: string,
  t: Deno.TestContext,
): Promise<void> {
  for (const [i, c] of cases.entries()) {
    await t.step(c.name, () => checkCase(c, device, i));
  }
}

const allCases = [...denseCases, ...spatialCases];

Deno.test("parity table has unique case names", () => {
  const names = [...allCases, ...chunkedCases].map((c) => c.name);
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), []);
});

Deno.test({
  name: "gpu parity: every case",
  ignore: !(await import("../support/gpu_helpers.ts")).gpuAvailable,
  async fn(t) {
    const { getGpu } = await import("../support/gpu_helpers.ts");
    const gpu = await getGpu();
    await checkTable(allCases, "gpu", t);
    await gpu.runtime.checkErrors();
  },
});

Deno.test({
  name: "gpu parity: matmul cases with the shared-memory tiled kernel",
  ignore: !(await import("../support/gpu_helpers.ts")).gpuAvailable,
  async fn(t) {
    const { getGpu } = await import("../support/gpu_helpers.ts");
    const gpu = await getGpu();
    setMatmulPath("tiled");
    try {
      await checkTable(denseCases.filter((c) => /matmul|linear/.test(c.name)), "gpu", t);
    } finally {
      setMatmulPath("auto");
    }
    await gpu.runtime.checkErrors();
  },
});

for (const path of ["auto", "tiled"] as const) {
  Deno.test({
    name: `gpu parity: buffers larger than one binding (64 KiB limit, ${path} matmul)`,
    ignore: !(await import("../support/gpu_helpers.ts")).gpuAvailable,
    async fn(t) {
      const { getGpu } = await import("../support/gpu_helpers.ts");
      const gpu = await getGpu(CHUNKED);
      setMatmulPath(path);
      try {
        await checkTable(chunkedCases, CHUNKED.name, t);
      } finally {
        setMatmulPath("auto");
      }
      await gpu.runtime.checkErrors();
    },
  });
}

const SGD_RULES: SgdParams[] = [
  { lr: 0.01, momentum: 0.9, weightDecay: 5e-4, rule: "paper" },
  { lr: 0.1, momentum: 0.9, weightDecay: 1e-4, rule: "pytorch" },
];

for (const p of SGD_RULES) {
  for (const device of [{}, CHUNKED]) {
    const n = device === CHUNKED ? 40_003 : 1_001;
    gpuTest(`gpu parity: sgdUpdate ${p.rule} rule, ${n} weights`, async (gpu) => {
      const w = inputValues({ shape: [n] }, 1) as Float32Array;
      const g = inputValues({ shape: [n] }, 2) as Float32Array;
      const v = inputValues({ shape: [n] }, 3) as Float32Array;
      const [gw, gg, gv] = [w, g, v].map((a) => gpu.fromArray(a));
      for (let step = 0; step < 3; step++) {
        gpu.sgdUpdate(gw, gg, gv, p);
        sgdUpdateCpu(w, g, v, p);
      }
      const c: ParityCase = {
        name: `sgd ${p.rule}`,
        inputs: [],
        fn: (x) => x,
        rtol: 1e-5,
        atol: 1e-6,
      };
      compare(c, "weight", await gpu.read(gw), w);
      compare(c, "velocity", await gpu.read(gv), v);
      for (const s of [gw, gg, gv]) gpu.free(s);
    }, device);
  }
}
