/**
 * The tasks of one fast gemm (cpu/kernels/gemm.ts prepares the job, tasks.ts shares it among
 * the threads): task t below the barrier packs one k-block of op(A) (t even) or op(B) (t odd),
 * every later task computes one MC × NC block of C over all k-blocks.
 *
 * @module
 */

import { type GemmExports, type SimdTier, TILE } from "./gemm_kernels.ts";
import { BODY, HEADER } from "./tasks.ts";

/** Depth of one k-block: a B panel (256 × 8 floats = 8 KiB) stays in the 32 KiB L1. */
export const KC = 256;
/** Columns of C per task: 512 keeps tasks many enough to balance two threads. */
export const NC = 512;
/** Rows of C per task, 20 tiles tall: the A block (MC × KC floats, 80-120 KiB) stays in L2. */
export const mcOf = (tier: SimdTier) => TILE[tier].mr * 20;

/**
 * The gemm's descriptor words after the common header (tasks.ts): the header's total counts
 * packing and compute tasks, its barrier is the number of packing tasks.
 */
export const J = {
  m: BODY + 0,
  n: BODY + 1,
  k: BODY + 2,
  transA: BODY + 3,
  transB: BODY + 4,
  a: BODY + 5,
  lda: BODY + 6,
  b: BODY + 7,
  ldb: BODY + 8,
  c: BODY + 9,
  ldc: BODY + 10,
  accumulate: BODY + 11,
  packedA: BODY + 12,
  packedB: BODY + 13,
  mPad: BODY + 14,
  nPad: BODY + 15,
  kBlocks: BODY + 16,
  rowBlocks: BODY + 17,
  mc: BODY + 18,
  unpackedB: BODY + 19,
} as const;

/** Runs task `t` of the job in `job` (an Int32Array view of the descriptor). */
export function runGemmTask(ex: GemmExports, job: Int32Array, t: number): void {
  const k = job[J.k];
  if (t < job[HEADER.barrier]) {
    const p0 = (t >> 1) * KC, kc = Math.min(KC, k - p0);
    if ((t & 1) === 0) {
      // op(A)(i, p) = A[i·lda + p], or A[p·lda + i] when transposed.
      const lda = job[J.lda], trans = job[J.transA];
      const rowStride = (trans ? 1 : lda) * 4, depthStride = (trans ? lda : 1) * 4;
      const dst = job[J.packedA] + p0 * job[J.mPad] * 4;
      ex.packA(job[J.a] + p0 * depthStride, rowStride, depthStride, job[J.m], kc, dst);
    } else if (!job[J.unpackedB]) {
      // op(B)(p, j) = B[p·ldb + j], or B[j·ldb + p]; packed with j as the panel's row.
      const ldb = job[J.ldb], trans = job[J.transB];
      const rowStride = (trans ? ldb : 1) * 4, depthStride = (trans ? 1 : ldb) * 4;
      const dst = job[J.packedB] + p0 * job[J.nPad] * 4;
      ex.packB(job[J.b] + p0 * depthStride, rowStride, depthStride, job[J.n], kc, dst);
    }
    return;
  }
  const u = t - job[HEADER.barrier], mc = job[J.mc];
  const i0 = (u % job[J.rowBlocks]) * mc, j0 = Math.floor(u / job[J.rowBlocks]) * NC;
  const rows = Math.min(mc, job[J.m] - i0), cols = Math.min(NC, job[J.n] - j0);
  const ldc = job[J.ldc];
  for (let kb = 0; kb < job[J.kBlocks]; kb++) {
    const p0 = kb * KC, kc = Math.min(KC, k - p0);
    const a = job[J.packedA] + (p0 * job[J.mPad] + i0 * kc) * 4;
    const load = job[J.accumulate] || kb > 0 ? 1 : 0;
    const c = job[J.c] + (i0 * ldc + j0) * 4;
    if (job[J.unpackedB]) {
      const ldb = job[J.ldb];
      ex.macro(a, job[J.b] + (p0 * ldb + j0) * 4, c, ldc * 4, rows, cols, kc, load, ldb * 4);
    } else {
      const b = job[J.packedB] + (p0 * job[J.nPad] + j0 * kc) * 4;
      ex.macro(a, b, c, ldc * 4, rows, cols, kc, load, 0);
    }
  }
}

/**
 * A matrix-vector product's descriptor words (gemm.ts's #gemv): `dot` picks gemvDot (rows of M
 * contiguous) or gemvAxpy (columns contiguous); ld is M's stride in elements; each task takes
 * `perTask` outputs, a multiple of 16, so every output runs the same code path (the axpy's
 * 16-, 4- and 1-wide loops) as on one thread.
 */
export const GEMV = {
  dot: BODY + 0,
  m: BODY + 1,
  ld: BODY + 2,
  rows: BODY + 3,
  k: BODY + 4,
  x: BODY + 5,
  y: BODY + 6,
  load: BODY + 7,
  perTask: BODY + 8,
} as const;

/** Runs task `t` of a gemv job: outputs [t·perTask, (t+1)·perTask). */
export function runGemvTask(ex: GemmExports, job: Int32Array, t: number): void {
  const i0 = t * job[GEMV.perTask], rows = Math.min(job[GEMV.perTask], job[GEMV.rows] - i0);
  const ld = job[GEMV.ld], dot = job[GEMV.dot] === 1;
  const m = job[GEMV.m] + 4 * (dot ? i0 * ld : i0);
  const gemv = dot ? ex.gemvDot : ex.gemvAxpy;
  gemv(m, ld * 4, rows, job[GEMV.k], job[GEMV.x], job[GEMV.y] + 4 * i0, job[GEMV.load]);
}

/**
 * A few-row product's descriptor words (gemm.ts's #skinnyDot: C[m × n] (+)= A·Wᵀ, m ≤ 8),
 * strides in bytes; each task takes `perTask` columns of C (rows of W), each computed alone.
 */
export const SKINNY = {
  a: BODY + 0,
  lda: BODY + 1,
  m: BODY + 2,
  w: BODY + 3,
  ldw: BODY + 4,
  n: BODY + 5,
  k: BODY + 6,
  c: BODY + 7,
  ldc: BODY + 8,
  load: BODY + 9,
  perTask: BODY + 10,
} as const;

/** Runs task `t` of a skinny job: columns [t·perTask, (t+1)·perTask) of C. */
export function runSkinnyTask(ex: GemmExports, job: Int32Array, t: number): void {
  const j0 = t * job[SKINNY.perTask], n = Math.min(job[SKINNY.perTask], job[SKINNY.n] - j0);
  const w = job[SKINNY.w] + j0 * job[SKINNY.ldw];
  const [a, lda, m, ldw, k] = [SKINNY.a, SKINNY.lda, SKINNY.m, SKINNY.ldw, SKINNY.k]
    .map((word) => job[word]);
  ex.skinnyDot(a, lda, m, w, ldw, n, k, job[SKINNY.c] + 4 * j0, job[SKINNY.ldc], job[SKINNY.load]);
}
