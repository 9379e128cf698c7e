/**
 * The parity table in the browser: the cases of tests/parity/cases_dense.ts and
 * tests/parity/cases_spatial.ts (the same cases the Deno suite runs), each computed on the
 * reference device "ref" (the plain kernels of tensor/ops/) and on this browser's WebGPU,
 * compared with the case's tolerances.
 *
 * Runs like tests/parity/gpu.test.ts: every case on the default device, the matmul cases
 * again with the shared-memory tiled kernel, and the chunked cases on a device whose binding
 * limit is forced down to 64 KiB (with both matmul kernels).
 *
 * `globalThis.parity` holds the results, for the console and the tests.
 *
 * @module
 */

/// <reference lib="dom" />

import { fromArray, initWebGPU, setCpuOptions, type Tensor } from "../mod.ts";
import { setMatmulPath } from "../gpu/kernels/matmul.ts";
import {
  chunkedCases,
  denseCases,
  inputValues,
  type ParityCase,
} from "../tests/parity/cases_dense.ts";
import { closeMismatch } from "../tests/support/close.ts";
import { spatialCases } from "../tests/parity/cases_spatial.ts";

/** One case's outcome: `message` names the first disagreement. */
interface CaseResult {
  run: string;
  name: string;
  ok: boolean;
  message: string;
  /** Largest |gpu − cpu| / (atol + rtol·|cpu|) over the output and gradients (≤ 1 agrees). */
  worst: number;
}

const parity = {
  adapter: "",
  results: [] as CaseResult[],
  done: false,
  error: null as string | null,
};
(globalThis as { parity?: typeof parity }).parity = parity;

interface Computed {
  output: ArrayLike<number>;
  grads: (ArrayLike<number> | null)[];
}

async function compute(
  c: ParityCase,
  device: string,
  values: (Float32Array | Int32Array)[],
): Promise<Computed> {
  const xs: Tensor[] = c.inputs.map((spec, i) =>
    fromArray(values[i], spec.shape, { device, requiresGrad: spec.kind !== "labels" })
  );
  const out = c.fn(...xs);
  const output = await out.data();
  let grads: (ArrayLike<number> | null)[] = xs.map(() => null);
  if (out.requiresGrad && out.dtype === "float32") {
    const upstream = inputValues({ shape: [...out.shape] }, 999);
    out.backward(fromArray(upstream, out.shape, { device }));
    grads = await Promise.all(xs.map(async (x) => x.grad ? await x.grad.data() : null));
  }
  for (const x of xs) {
    x.grad?.dispose();
    x.dispose();
  }
  out.dispose();
  return { output, grads };
}

/** How close the GPU came to the reference in the case being checked, in units of its tolerance. */
let worstRatio = 0;

/** Why the GPU's values are not close to the reference's (the suite's one comparison), or null. */
function mismatch(
  c: ParityCase,
  what: string,
  gpu: ArrayLike<number>,
  cpu: ArrayLike<number>,
): string | null {
  const rtol = c.rtol ?? 1e-5, atol = c.atol ?? 1e-5;
  const problem = closeMismatch(gpu, cpu, { rtol, atol, what: `${what} (GPU vs ref)` });
  if (problem === null) {
    // For the table only: the largest difference as a fraction of its tolerance.
    for (let i = 0; i < cpu.length; i++) {
      const tolerance = atol + rtol * Math.abs(cpu[i]);
      const ratio = Math.abs(gpu[i] - cpu[i]) / tolerance;
      if (tolerance > 0 && ratio > worstRatio) worstRatio = ratio;
    }
  }
  return problem;
}

async function checkCase(c: ParityCase, device: string, caseIndex: number): Promise<string | null> {
  const values = c.inputs.map((spec, i) => inputValues(spec, caseIndex * 16 + i + 1));
  const cpu = await compute(c, "ref", values);
  const gpu = await compute(c, device, values);
  const problems = [mismatch(c, "output", gpu.output, cpu.output)];
  cpu.grads.forEach((expected, i) => {
    const got = gpu.grads[i];
    if (expected === null) {
      if (got !== null) problems.push(`input ${i} has a gradient on the GPU only`);
    } else if (got === null) {
      problems.push(`input ${i} has no gradient on the GPU`);
    } else {
      problems.push(mismatch(c, `grad of input ${i}`, got, expected));
    }
  });
  return problems.find((p) => p !== null) ?? null;
}

function show(result: CaseResult): void {
  parity.results.push(result);
  const row = document.createElement("tr");
  const verdict = result.ok
    ? `ok (${(100 * result.worst).toFixed(0)}% of the tolerance)`
    : result.message;
  for (const text of [result.run, result.name, verdict]) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  if (!result.ok) row.className = "fail";
  document.getElementById("rows")!.append(row);
}

async function runTable(
  run: string,
  cases: readonly ParityCase[],
  device: string,
  check: () => Promise<void>,
): Promise<void> {
  // Seeds follow each case's position in the list run, as in the Deno suite.
  for (const [i, c] of cases.entries()) {
    let message: string | null;
    worstRatio = 0;
    try {
      message = await checkCase(c, device, i);
      await check();
    } catch (error) {
      message = `threw: ${(error as Error).message}`;
    }
    show({ run, name: c.name, ok: message === null, message: message ?? "", worst: worstRatio });
  }
}

async function main(): Promise<void> {
  // The CPU side runs the same float32 gemm as under Deno from the first case: a browser's main
  // thread compiles its WebAssembly only asynchronously.
  await setCpuOptions({});
  const gpu = await initWebGPU();
  const chunked = await initWebGPU({ name: "gpu-chunked", maxBindingBytes: 1 << 16 });
  const info = gpu.runtime.adapterInfo;
  parity.adapter = `${info.vendor} ${info.architecture} ${info.description}`.trim();
  document.getElementById("adapter")!.textContent = `WebGPU adapter: ${parity.adapter}`;
  const checkGpu = () => gpu.runtime.checkErrors();
  const checkChunked = () => chunked.runtime.checkErrors();
  await runTable("gpu", [...denseCases, ...spatialCases], "gpu", checkGpu);
  setMatmulPath("tiled");
  try {
    const matmuls = denseCases.filter((c) => /matmul|linear/.test(c.name));
    await runTable("gpu, tiled matmul", matmuls, "gpu", checkGpu);
    await runTable("64 KiB bindings, tiled matmul", chunkedCases, "gpu-chunked", checkChunked);
  } finally {
    setMatmulPath("auto");
  }
  await runTable("64 KiB bindings", chunkedCases, "gpu-chunked", checkChunked);
  const failed = parity.results.filter((r) => !r.ok).length;
  document.getElementById("summary")!.textContent = `${
    parity.results.length - failed
  } agree, ${failed} disagree`;
}

main().catch((error: Error) => {
  parity.error = error.message;
  document.getElementById("summary")!.textContent = `error: ${error.message}`;
}).finally(() => parity.done = true);
