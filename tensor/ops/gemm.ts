/**
 * General matrix multiply, the one CPU kernel under matmul, linear and conv2d (via im2col):
 *
 *     C[m×n] (+)= op(A)[m×k] · op(B)[k×n]        row-major, op(X) = Xᵀ when its flag is set
 *
 * This file holds the reference, {@link gemmReference}: the plain loops, summing in float64,
 * that every fast kernel is proven against; and the dispatch, {@link gemm}, which checks the
 * arguments once and sends float32 products to the WebAssembly SIMD kernels of wasm/gemm.ts
 * when the JavaScript engine compiles them (relaxed SIMD's fused multiply-add, else SIMD
 * multiply + add), and everything else (float64, or an engine without SIMD) to the reference.
 *
 * The blocked, register-tiled TypeScript gemm that used to live here is gone: plain JavaScript
 * has no SIMD and no FMA and peaked at ~5.5 GFLOP/s here, against 45-50 for the WebAssembly
 * kernels, and every engine that runs tessera (Deno, Node, current browsers) has WebAssembly
 * SIMD. Without SIMD the reference is slower (~1 GFLOP/s) but still correct.
 *
 * @example
 * ```ts
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
 * ```
 *
 * @module
 */

import { engineFor, type GemmArgs, gemmTier } from "../../wasm/gemm.ts";

export type { GemmArgs, GemmTier } from "../../wasm/gemm.ts";
export {
  bestGemmTier,
  gemmTier,
  getThreads,
  prepareGemm,
  setGemmTier,
  setThreads,
  shutdownThreads,
} from "../../wasm/gemm.ts";

/** The element types gemm accepts; a, b and c of one call must share one of them. */
export type FloatArray = Float32Array | Float64Array;

/**
 * C[m×n] (+)= op(A)[m×k] · op(B)[k×n], row-major. op(A) = A when `transA` is false (A stored
 * m×k, row stride `lda` ≥ k) and Aᵀ when true (A stored k×m, `lda` ≥ m); likewise B (k×n or
 * n×k with row stride `ldb`). C is m×n with row stride `ldc` ≥ n. Each matrix starts at its
 * offset. With `accumulate` false C is overwritten, otherwise the product is added to it.
 * a, b and c must all be Float32Array or all Float64Array. Elements of C's rows beyond n
 * (between rows when ldc > n) are never written.
 */
export function gemm(args: GemmArgs<FloatArray>): void {
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
  const tier = gemmTier();
  const engine = f32 && tier !== "reference" ? engineFor(tier) : null;
  if (engine === null) gemmReference(args);
  else if (k <= DEPTH_BLOCK) engine.gemm(args as GemmArgs<Float32Array>);
  else gemmInDepthBlocks(args as GemmArgs<Float32Array>, (block) => engine.gemm(block));
}

/**
 * The longest depth the float32 kernels sum in one call. The wasm kernels keep float32 sums
 * (KC-long blocks added in float32), so a depth growing with the input (a weight gradient over
 * a large batch) would grow a float32 running sum without bound; deeper products are cut into
 * blocks of this depth whose results are added in float64. The error is then bounded by
 * DEPTH_BLOCK·2^-24 ≈ 2.4e-4 relative to Σ|products| whatever the depth (the reference,
 * summing in float64, by k·2^-53 plus the final rounding).
 */
export const DEPTH_BLOCK = 4096;

/** C (+)= op(A)·op(B) as a float64 sum of products over depth blocks of {@link DEPTH_BLOCK}. */
function gemmInDepthBlocks(
  args: GemmArgs<Float32Array>,
  run: (block: GemmArgs<Float32Array>) => void,
): void {
  const { m, n, k, c, cOffset, ldc } = args;
  const total = new Float64Array(m * n);
  if (args.accumulate) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) total[i * n + j] = c[cOffset + i * ldc + j];
    }
  }
  const part = new Float32Array(m * n);
  const aDepthStep = args.transA ? args.lda : 1, bDepthStep = args.transB ? 1 : args.ldb;
  for (let p0 = 0; p0 < k; p0 += DEPTH_BLOCK) {
    run({
      ...args,
      k: Math.min(DEPTH_BLOCK, k - p0),
      aOffset: args.aOffset + p0 * aDepthStep,
      bOffset: args.bOffset + p0 * bDepthStep,
      c: part,
      cOffset: 0,
      ldc: n,
      accumulate: false,
    });
    for (let i = 0; i < total.length; i++) total[i] += part[i];
  }
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) c[cOffset + i * ldc + j] = total[i * n + j];
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

/**
 * A zeroed Float32Array of `length` elements on an ordinary ArrayBuffer. gemm copies its
 * operands into WebAssembly memory itself, so tensors need no special storage; this stays for
 * the callers that allocate scratch through it.
 */
export function allocF32(length: number): Float32Array {
  return new Float32Array(length);
}
