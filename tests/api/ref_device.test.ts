/**
 * The reference device "ref" runs the plain kernels of tensor/ops/ for every dtype, float32
 * included: its matmul is the float64-summing reference gemm bit for bit, its ReLU, LRN and
 * max-pooling are the reference loops; and the cpu device agrees with it within float32
 * rounding (its kernels are proven against these in the wasm_*.test.ts files).
 */
import assert from "node:assert/strict";
import { fromArray, localResponseNorm, matmul, maxPool2d, relu } from "../../mod.ts";
import { gemmReference } from "../../tensor/ops/gemm.ts";
import { lrnForwardCpu } from "../../tensor/ops/lrn.ts";
import { unaryCpu } from "../../tensor/ops/elementwise.ts";
import { Rng } from "../../tensor/random.ts";
import { assertClose } from "../support/close.ts";

const rng = new Rng(31);
const random = (n: number) => Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);

Deno.test("ref: float32 matmul is the reference gemm, bit for bit; cpu agrees within rounding", async () => {
  const [m, k, n] = [37, 300, 29];
  const a = random(m * k), b = random(k * n);
  const expected = new Float32Array(m * n);
  gemmReference({
    transA: false,
    transB: false,
    m,
    n,
    k,
    a,
    aOffset: 0,
    lda: k,
    b,
    bOffset: 0,
    ldb: n,
    c: expected,
    cOffset: 0,
    ldc: n,
    accumulate: false,
  });
  const onRef = matmul(
    fromArray(a, [m, k], { device: "ref" }),
    fromArray(b, [k, n], { device: "ref" }),
  );
  assert.equal(onRef.device, "ref");
  assert.deepEqual(await onRef.data(), expected);
  const onCpu = matmul(fromArray(a, [m, k]), fromArray(b, [k, n]));
  assertClose(await onCpu.data(), expected, { rtol: 1e-5, atol: 1e-5, what: "cpu matmul vs ref" });
});

Deno.test("ref: float32 ReLU, LRN and max-pooling are the reference loops", async () => {
  const shape = [2, 7, 9, 9];
  const values = random(2 * 7 * 9 * 9);
  values[5] = NaN;
  const x = fromArray(values, shape, { device: "ref" });
  const y = new Float32Array(values.length);
  unaryCpu("relu", values, y);
  assert.deepEqual(await relu(x).data(), y);
  const p = { n: 2, c: 7, h: 9, w: 9, size: 5, alpha: 1e-4, beta: 0.75, k: 2 };
  const normalized = new Float32Array(values.length);
  const finite = values.map((v) => Number.isNaN(v) ? 0 : v);
  lrnForwardCpu(finite, p, normalized);
  const options = { size: 5, alpha: 1e-4, beta: 0.75, k: 2, alphaScaling: "per-term" as const };
  const onRef = localResponseNorm(fromArray(finite, shape, { device: "ref" }), options);
  assert.deepEqual(await onRef.data(), normalized);
  const pooled = maxPool2d(x, { kernelSize: 3, stride: 2 });
  const onCpu = maxPool2d(fromArray(values, shape), { kernelSize: 3, stride: 2 });
  assert.deepEqual(await pooled.data(), await onCpu.data()); // max-pooling selects: exact
});
