/**
 * General matrix multiply, the one CPU kernel under matmul and linear:
 *
 *     C[m×n] (+)= op(A)[m×k] · op(B)[k×n]        row-major, op(X) = Xᵀ when its flag is set
 *
 * This file holds the reference, {@link gemmReference}: the plain loops, summing in float64,
 * that every fast kernel is proven against; and {@link gemm}, which checks the arguments and
 * runs it. The reference device "ref" multiplies with it (through `matmulCpu` in matmul.ts);
 * the cpu device sends float32 products to the WebAssembly SIMD kernels of
 * cpu/kernels/gemm.ts instead, and its tests prove them against this file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gemm } from "./gemm.ts";
 *
 * // [[1, 2], [3, 4]] · [[5], [6]] = [[17], [39]]
 * const a = new Float32Array([1, 2, 3, 4]), b = new Float32Array([5, 6]);
 * const c = new Float32Array(2);
 * gemm({
 *   transA: false, transB: false, m: 2, n: 1, k: 2,
 *   a, aOffset: 0, lda: 2, b, bOffset: 0, ldb: 1, c, cOffset: 0, ldc: 1,
 *   accumulate: false,
 * });
 * assert.deepEqual([...c], [17, 39]);
 * ```
 *
 * @module
 */

/** The element types gemm accepts; a, b and c of one call must share one of them. */
export type FloatArray = Float32Array | Float64Array;

/** C[m×n] (+)= op(A)[m×k] · op(B)[k×n], row-major; the arguments of gemm by name. */
export interface GemmArgs<T extends Float32Array | Float64Array = Float32Array> {
  /** op(A) = Aᵀ: A is stored k×m (row stride lda ≥ m) instead of m×k (lda ≥ k). */
  transA: boolean;
  /** op(B) = Bᵀ: B is stored n×k (ldb ≥ k) instead of k×n (ldb ≥ n). */
  transB: boolean;
  m: number;
  n: number;
  k: number;
  a: T;
  aOffset: number;
  lda: number;
  b: T;
  bOffset: number;
  ldb: number;
  c: T;
  cOffset: number;
  /** Row stride of C, ≥ n. */
  ldc: number;
  /** Add the product to C instead of overwriting it. */
  accumulate: boolean;
}

/**
 * C[m×n] (+)= op(A)[m×k] · op(B)[k×n], row-major. op(A) = A when `transA` is false (A stored
 * m×k, row stride `lda` ≥ k) and Aᵀ when true (A stored k×m, `lda` ≥ m); likewise B (k×n or
 * n×k with row stride `ldb`). C is m×n with row stride `ldc` ≥ n. Each matrix starts at its
 * offset. With `accumulate` false C is overwritten, otherwise the product is added to it.
 * a, b and c must all be Float32Array or all Float64Array. Elements of C's rows beyond n
 * (between rows when ldc > n) are never written.
 */
export function gemm(args: GemmArgs<FloatArray>): void {
  checkGemmArgs(args);
  gemmReference(args);
}

/** Throws unless the arguments describe a product that fits its arrays, naming the one that does not. */
export function checkGemmArgs(args: GemmArgs<FloatArray>): void {
  const { transA, transB, m, n, k, a, b, c } = args;
  checkSize("m", m);
  checkSize("n", n);
  checkSize("k", k);
  checkOperand("a", a, args.aOffset, args.lda, transA ? k : m, transA ? m : k);
  checkOperand("b", b, args.bOffset, args.ldb, transB ? n : k, transB ? k : n);
  checkOperand("c", c, args.cOffset, args.ldc, m, n);
  const f32 = a instanceof Float32Array && b instanceof Float32Array && c instanceof Float32Array;
  const f64 = a instanceof Float64Array && b instanceof Float64Array && c instanceof Float64Array;
  if (!f32 && !f64) {
    throw new TypeError(
      `gemm: a, b and c must share one dtype, got ${a?.constructor.name}, ` +
        `${b?.constructor.name} and ${c?.constructor.name}`,
    );
  }
}

/**
 * The reference: for each row i of C, sum op(A)(i, p)·op(B)(p, :) over p into a float64 row,
 * then store it. The p-then-j order reads B along its rows (unless transposed); float64 sums
 * make it the more accurate side of every comparison. No argument checks: call {@link gemm}.
 */
export function gemmReference(args: GemmArgs<FloatArray>): void {
  const { transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc } = args;
  // op(A)(i, p) = a[aOffset + i·aRowStep + p·aDepthStep], op(B)(p, j) likewise.
  const aRowStep = transA ? 1 : lda, aDepthStep = transA ? lda : 1;
  const bDepthStep = transB ? 1 : ldb, bColStep = transB ? ldb : 1;
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    const cRow = cOffset + i * ldc;
    for (let j = 0; j < n; j++) row[j] = args.accumulate ? c[cRow + j] : 0;
    for (let p = 0; p < k; p++) {
      const aValue = a[aOffset + i * aRowStep + p * aDepthStep];
      const bRow = bOffset + p * bDepthStep;
      for (let j = 0; j < n; j++) row[j] += aValue * b[bRow + j * bColStep];
    }
    for (let j = 0; j < n; j++) c[cRow + j] = row[j];
  }
}

function checkSize(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`gemm: ${name} must be a non-negative integer, got ${value}`);
  }
}

/** Checks that a rows×cols matrix with row stride ld starting at offset fits in the array. */
function checkOperand(
  name: string,
  array: FloatArray,
  offset: number,
  ld: number,
  rows: number,
  cols: number,
): void {
  if (!Number.isInteger(offset) || offset < 0) {
    throw new RangeError(`gemm: ${name}Offset must be a non-negative integer, got ${offset}`);
  }
  if (!Number.isInteger(ld) || ld < cols) {
    throw new RangeError(
      `gemm: ld${name}=${ld} is smaller than the ${cols} columns of stored ${name}`,
    );
  }
  if (rows === 0 || cols === 0) return;
  const needed = offset + (rows - 1) * ld + cols;
  if (needed > array.length) {
    throw new RangeError(
      `gemm: ${name} is ${rows}x${cols} with ld${name}=${ld} from offset ${offset}, ` +
        `needing ${needed} elements, but has ${array.length}`,
    );
  }
}
