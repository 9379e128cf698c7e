/**
 * Matrix products: `matmul` (2-D, batched with broadcasting, vectors) and `linear`
 * (PyTorch's `x · Wᵀ + b`).
 *
 * For Y = A · B with upstream gradient G = dL/dY:
 *
 *     dL/dA = G · Bᵀ        dL/dB = Aᵀ · G
 *
 * (each entry Y[i,j] = Σ_k A[i,k] B[k,j] touches A[i,k] with weight B[k,j]). The backend's
 * matmul takes transpose flags, so backward never materializes a transposed copy. The
 * reference kernel is `gemm` in gemm.ts.
 *
 * @module
 */

import type { MatmulParams, TypedArray } from "../../backend/backend.ts";
import { type Tensor, wrap } from "../tensor.ts";
import { broadcastShapes, formatShape, sameShape } from "../shape.ts";
import { checkFloat, deviceOf, record } from "./op.ts";
import { sum } from "./reduce.ts";
import { broadcastTo } from "./elementwise.ts";
import { reshape } from "./layout.ts";
import { type FloatArray, gemm, type GemmArgs } from "./gemm.ts";

/**
 * CPU: batched matmul with the backend's conventions, one {@link gemm} per batch entry. The
 * reference device uses the reference gemm; the cpu device passes its WebAssembly one as
 * `product`.
 */
export function matmulCpu(
  a: TypedArray,
  b: TypedArray,
  p: MatmulParams,
  out: TypedArray,
  product: (args: GemmArgs<FloatArray>) => void = gemm,
): void {
  const { batch, m, k, n, transA, transB, strideA, strideB } = p;
  for (let i = 0; i < batch; i++) {
    product({
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
 * Matrix product with `torch.matmul`'s rules: [m, k] · [k, n] -> [m, n] on the last two axes;
 * the leading (batch) axes broadcast ([2,1,5,7] · [3,7,4] -> [2,3,5,4]); a 1-D operand is a
 * vector (a row on the left, a column on the right) whose axis is removed from the result.
 *
 * An operand whose batch axes are smaller than the result's is repeated with `broadcastTo`,
 * whose backward sums the gradient back over the repeats; a 2-D operand is instead reused by
 * the kernel for every batch entry (stride 0), and its gradient summed over the batch.
 *
 * @example A matrix product
 * ```ts
 * import assert from "node:assert/strict";
 * import { matmul, ones, tensor } from "../../mod.ts";
 *
 * const a = tensor([[1, 2], [3, 4]]); // [2, 2]
 * const b = tensor([[5], [6]]); // [2, 1]
 * const c = matmul(a, b); // [2, 1]
 * assert.deepEqual(c.shape, [2, 1]);
 * assert.deepEqual([...c.dataSync()], [1 * 5 + 2 * 6, 3 * 5 + 4 * 6]);
 * // Batch dimensions broadcast as in torch.matmul: [2, 1, 5, 7] by [3, 7, 4] is [2, 3, 5, 4].
 * assert.deepEqual(matmul(ones([2, 1, 5, 7]), ones([3, 7, 4])).shape, [2, 3, 5, 4]);
 * ```
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  deviceOf("matmul", a, b);
  checkFloat("matmul", a);
  checkFloat("matmul", b);
  if (a.dtype !== b.dtype) {
    throw new TypeError(
      `matmul: dtypes differ (${a.dtype} and ${b.dtype}); convert one with cast(x, "${a.dtype}")`,
    );
  }
  if (a.rank === 0 || b.rank === 0) {
    throw new RangeError(
      `matmul: cannot multiply ${formatShape(a.shape)} by ${
        formatShape(b.shape)
      }: a scalar has no matrix product; use mul`,
    );
  }
  if (a.rank === 1 || b.rank === 1) return vectorProduct(a, b);
  const [m, k] = a.shape.slice(-2), [k2, n] = b.shape.slice(-2);
  if (k !== k2) {
    throw new RangeError(
      `matmul: cannot multiply ${formatShape(a.shape)} by ${
        formatShape(b.shape)
      }: the inner dimensions ${k} and ${k2} differ`,
    );
  }
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  let batch: number[];
  try {
    batch = broadcastShapes("matmul", batchA, batchB);
  } catch {
    throw new RangeError(
      `matmul: cannot multiply ${formatShape(a.shape)} by ${formatShape(b.shape)}: batch axes ${
        formatShape(batchA)
      } and ${formatShape(batchB)} do not broadcast`,
    );
  }
  const fit = (t: Tensor, own: readonly number[], rows: number, cols: number) =>
    t.rank === 2 || sameShape(own, batch) ? t : broadcastTo(t, [...batch, rows, cols]);
  const a3 = fit(a, batchA, m, k), b3 = fit(b, batchB, k, n);
  const y = product(a3, b3, false, false, batch);
  return record("matmul", y, [a3, b3], (g) => {
    // dA = G · Bᵀ, dB = Aᵀ · G; an operand shared across the batch sums its batch of gradients.
    let da = product(g, b3, false, true, batch);
    let db = product(a3, g, true, false, batch);
    if (a3.rank === 2 && batch.length) da = sum(da, batch.map((_, i) => i));
    if (b3.rank === 2 && batch.length) db = sum(db, batch.map((_, i) => i));
    return [da, db];
  });
}

/** matmul with a 1-D operand: made 2-D, multiplied, and the added axis removed again. */
function vectorProduct(a: Tensor, b: Tensor): Tensor {
  const a2 = a.rank === 1 ? reshape(a, [1, a.shape[0]]) : a;
  const b2 = b.rank === 1 ? reshape(b, [b.shape[0], 1]) : b;
  const y = matmul(a2, b2);
  const shape = y.shape.filter((_, i) =>
    !((a.rank === 1 && i === y.rank - 2) || (b.rank === 1 && i === y.rank - 1))
  );
  return reshape(y, shape);
}

/**
 * A fully connected layer: x [N, in] · weightᵀ [in, out] + bias [out] -> [N, out], with the
 * weight stored [out, in] as in PyTorch.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const backend = deviceOf("linear", ...inputs);
  checkFloat("linear", x);
  for (const [name, t] of [["weight", weight], ["bias", bias]] as const) {
    if (t && t.dtype !== x.dtype) {
      throw new TypeError(
        `linear: the input is ${x.dtype} but the ${name} is ${t.dtype}; convert the input with cast(x, "${t.dtype}") or the model with model.to({ dtype: "${x.dtype}" })`,
      );
    }
  }
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
