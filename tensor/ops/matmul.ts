/**
 * Matrix products: `matmul` (2-D and batched) and `linear` (PyTorch's `x · Wᵀ + b`).
 *
 * For Y = A · B with upstream gradient G = dL/dY:
 *
 *     dL/dA = G · Bᵀ        dL/dB = Aᵀ · G
 *
 * (each entry Y[i,j] = Σ_k A[i,k] B[k,j] touches A[i,k] with weight B[k,j]). The backend's
 * matmul takes transpose flags, so backward never materializes a transposed copy. The CPU
 * kernel is `gemm` in gemm.ts.
 *
 * @module
 */

import type { MatmulParams, TypedArray } from "../../backend/backend.ts";
import { type Tensor, wrap } from "../tensor.ts";
import { formatShape, sameShape } from "../shape.ts";
import { checkFloat, deviceOf, record } from "./op.ts";
import { sum } from "./reduce.ts";
import { gemm } from "./gemm.ts";

/** CPU: batched matmul with the backend's conventions, one {@link gemm} per batch entry. */
export function matmulCpu(a: TypedArray, b: TypedArray, p: MatmulParams, out: TypedArray): void {
  const { batch, m, k, n, transA, transB, strideA, strideB } = p;
  for (let i = 0; i < batch; i++) {
    gemm({
      transA,
      transB,
      m,
      n,
      k,
      a: a as Float32Array,
      aOffset: i * strideA,
      lda: transA ? m : k,
      b: b as Float32Array,
      bOffset: i * strideB,
      ldb: transB ? k : n,
      c: out as Float32Array,
      cOffset: i * m * n,
      ldc: n,
      accumulate: false,
    });
  }
}

function product(
  a: Tensor,
  b: Tensor,
  transA: boolean,
  transB: boolean,
  outBatch: readonly number[],
): Tensor {
  const [m, k] = transA
    ? [a.shape[a.rank - 1], a.shape[a.rank - 2]]
    : [a.shape[a.rank - 2], a.shape[a.rank - 1]];
  const n = transB ? b.shape[b.rank - 2] : b.shape[b.rank - 1];
  const batch = outBatch.reduce((x, y) => x * y, 1);
  const p: MatmulParams = {
    batch,
    m,
    k,
    n,
    transA,
    transB,
    strideA: a.rank === 2 ? 0 : m * k,
    strideB: b.rank === 2 ? 0 : k * n,
  };
  return wrap(a.backend.matmul(a.storage, b.storage, p), [...outBatch, m, n]);
}

/**
 * Matrix product of the last two axes: [m, k] · [k, n] -> [m, n]; leading (batch) axes must
 * match, or one operand may be 2-D and is then shared by every batch entry.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  deviceOf("matmul", a, b);
  checkFloat("matmul", a);
  checkFloat("matmul", b);
  const fail = () =>
    new RangeError(`matmul: cannot multiply ${formatShape(a.shape)} by ${formatShape(b.shape)}`);
  if (a.rank < 2 || b.rank < 2 || a.shape[a.rank - 1] !== b.shape[b.rank - 2]) throw fail();
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  if (batchA.length && batchB.length && !sameShape(batchA, batchB)) throw fail();
  if (a.dtype !== b.dtype) throw new TypeError(`matmul: dtypes differ (${a.dtype} and ${b.dtype})`);
  const batch = batchA.length ? batchA : batchB;
  const y = product(a, b, false, false, batch);
  return record("matmul", y, [a, b], (g) => {
    // dA = G · Bᵀ, dB = Aᵀ · G; an operand shared across the batch sums its batch of gradients.
    let da = product(g, b, false, true, batch);
    let db = product(a, g, true, false, batch);
    if (a.rank === 2 && batch.length) da = sum(da, batch.map((_, i) => i));
    if (b.rank === 2 && batch.length) db = sum(db, batch.map((_, i) => i));
    return [da, db];
  });
}

/**
 * A fully connected layer: x [N, in] · weightᵀ [in, out] + bias [out] -> [N, out], with the
 * weight stored [out, in] as in PyTorch.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const backend = deviceOf("linear", ...inputs);
  if (x.rank !== 2 || weight.rank !== 2 || x.shape[1] !== weight.shape[1]) {
    throw new RangeError(
      `linear: input ${formatShape(x.shape)} does not match weight ${
        formatShape(weight.shape)
      } ([out, in])`,
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new RangeError(
      `linear: bias ${formatShape(bias.shape)} does not match weight ${formatShape(weight.shape)}`,
    );
  }
  const xw = product(x, weight, false, true, []);
  let y = xw;
  if (bias) {
    y = wrap(
      backend.binary("add", xw.storage, xw.shape, bias.storage, bias.shape, xw.shape),
      xw.shape,
    );
    xw.dispose();
  }
  return record("linear", y, inputs, (g) => [
    product(g, weight, false, false, []), // dx = G · W        [N, in]
    product(g, x, true, false, []), //       dW = Gᵀ · x       [out, in]
    bias ? sum(g, 0) : null, //              db = Σ_n G[n, :]  [out]
  ]);
}
