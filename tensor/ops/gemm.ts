/**
 * General matrix multiply, the one CPU kernel under matmul, linear and conv2d (via im2col):
 *
 *     C[m×n] (+)= op(A)[m×k] · op(B)[k×n]        row-major, op(X) = Xᵀ when its flag is set
 *
 * The float64 path is a plain strided triple loop: it only serves finite-difference gradient
 * checks, where clarity beats speed. The float32 path is the fast one, built like GotoBLAS /
 * BLIS, scaled down to what V8 can do without SIMD:
 *
 * - **Packing.** A block of op(B) (KC × NC) is copied into NR-wide column panels and a block of
 *   op(A) (MC × KC) into MR-tall row panels, both into Float64Arrays, laid out in the exact
 *   order the microkernel reads them (unit stride, whatever the transposes). Float64 packs
 *   let the kernel load doubles directly instead of widening a float32 on every load; panels
 *   at the ragged edges are zero-padded so the kernel never branches on size.
 * - **Microkernel** MR × NR = 4 × 4: sixteen accumulators held in locals, eight loads per
 *   sixteen multiply-adds. Measured at 1024³, interleaved in one process on this (noisy, ±30%)
 *   machine: 4×8 and 3×4 tied with 4×4 (x64 has only 16 XMM registers, so a 4×8 tile's 32
 *   accumulators spill and it gains nothing from its better load ratio); 2×8, 2×4 and 1×8
 *   were 10-30% slower (more loads per multiply-add); unrolling the depth loop by two was
 *   slower still; float32 packs lost to float64 packs. 4×4 is the simplest of the fastest.
 * - **Blocking.** KC = 256: one A panel (4 × 256 doubles = 8 KiB) plus one B panel (8 KiB)
 *   sit in the 32 KiB L1 while the kernel streams them. MC = 128: the packed A block
 *   (128 × 256 doubles = 256 KiB) stays in the 512 KiB L2 and is reused by every B panel.
 *   NC = 1024: the packed B block (2 MiB) lives in L3 and is reused by every A block.
 *   Accumulating a KC-long dot product in doubles before one float32 store is also slightly
 *   more accurate than a float32 running sum.
 *
 * The second core is used only when a, b and c all live on SharedArrayBuffers and
 * {@link setThreads}(2) was called: see the threading section at the end of the file.
 *
 * @module
 */

/** The element types gemm accepts; a, b and c of one call must share one of them. */
export type FloatArray = Float32Array | Float64Array;

/** Microkernel tile height (rows of C per kernel call). */
const MR = 4;
/** Microkernel tile width (columns of C per kernel call). */
const NR = 4;
/** Depth of one packed block: an A panel plus a B panel fill half of the 32 KiB L1. */
const KC = 256;
/** Rows of op(A) packed at once: 128 × 256 doubles fill half of the 512 KiB L2. */
const MC = 128;
/** Columns of op(B) packed at once: 256 × 1024 doubles (2 MiB) live in L3. */
const NC = 1024;

/**
 * C[m×n] (+)= op(A)[m×k] · op(B)[k×n], row-major. op(A) = A when `transA` is false (A stored
 * m×k, row stride `lda` ≥ k) and Aᵀ when true (A stored k×m, `lda` ≥ m); likewise B (k×n or
 * n×k with row stride `ldb`). C is m×n with row stride `ldc` ≥ n. Each matrix starts at its
 * offset. With `accumulate` false C is overwritten, otherwise the product is added to it.
 * a, b and c must all be Float32Array or all Float64Array.
 */
export function gemm(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: FloatArray,
  aOffset: number,
  lda: number,
  b: FloatArray,
  bOffset: number,
  ldb: number,
  c: FloatArray,
  cOffset: number,
  ldc: number,
  accumulate: boolean,
): void {
  checkSize("m", m);
  checkSize("n", n);
  checkSize("k", k);
  checkOperand("a", a, aOffset, lda, transA ? k : m, transA ? m : k);
  checkOperand("b", b, bOffset, ldb, transB ? n : k, transB ? k : n);
  checkOperand("c", c, cOffset, ldc, m, n);
  if (m === 0 || n === 0) return;
  if (a instanceof Float32Array && b instanceof Float32Array && c instanceof Float32Array) {
    gemmF32(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, accumulate);
  } else if (
    a instanceof Float64Array && b instanceof Float64Array && c instanceof Float64Array
  ) {
    gemmF64(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, accumulate);
  } else {
    throw new TypeError(
      `gemm: a, b and c must share one dtype, got ${a.constructor.name}, ` +
        `${b.constructor.name} and ${c.constructor.name}`,
    );
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

/** Reference path for float64: strided i-p-j loops, the inner loop runs along a row of C. */
function gemmF64(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float64Array,
  aOffset: number,
  lda: number,
  b: Float64Array,
  bOffset: number,
  ldb: number,
  c: Float64Array,
  cOffset: number,
  ldc: number,
  accumulate: boolean,
): void {
  // op(A)(i, p) = a[aOffset + i * aRowStep + p * aDepthStep], and op(B)(p, j) likewise.
  const aRowStep = transA ? 1 : lda;
  const aDepthStep = transA ? lda : 1;
  const bDepthStep = transB ? 1 : ldb;
  const bColStep = transB ? ldb : 1;
  for (let i = 0; i < m; i++) {
    const cRow = cOffset + i * ldc;
    if (!accumulate) c.fill(0, cRow, cRow + n);
    for (let p = 0; p < k; p++) {
      const aValue = a[aOffset + i * aRowStep + p * aDepthStep];
      if (aValue === 0) continue;
      const bRow = bOffset + p * bDepthStep;
      for (let j = 0; j < n; j++) c[cRow + j] += aValue * b[bRow + j * bColStep];
    }
  }
}

// Packed operand scratch, grown on demand and reused: gemm never re-enters itself.
let packedA = new Float64Array(MC * KC);
let packedB = new Float64Array(KC * NR);
/** Destination of edge tiles: the kernel always writes a full MR×NR tile. */
const edgeTile = new Float32Array(MR * NR);

function gemmF32(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  aOffset: number,
  lda: number,
  b: Float32Array,
  bOffset: number,
  ldb: number,
  c: Float32Array,
  cOffset: number,
  ldc: number,
  accumulate: boolean,
): void {
  const splittable = Math.max(m, n) >= 2 * Math.max(MR, NR);
  if (worker !== null && splittable && 2 * m * n * k >= PARALLEL_MIN_FLOPS && isShared(a, b, c)) {
    gemmF32Parallel(
      transA,
      transB,
      m,
      n,
      k,
      a,
      aOffset,
      lda,
      b,
      bOffset,
      ldb,
      c,
      cOffset,
      ldc,
      accumulate,
    );
  } else {
    gemmF32Serial(
      transA,
      transB,
      m,
      n,
      k,
      a,
      aOffset,
      lda,
      b,
      bOffset,
      ldb,
      c,
      cOffset,
      ldc,
      accumulate,
    );
  }
}

/**
 * The single-threaded blocked float32 gemm, without argument checks. Internal: exported only
 * for gemm_worker.ts; call {@link gemm}.
 */
export function gemmF32Serial(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  aOffset: number,
  lda: number,
  b: Float32Array,
  bOffset: number,
  ldb: number,
  c: Float32Array,
  cOffset: number,
  ldc: number,
  accumulate: boolean,
): void {
  if (!accumulate) {
    for (let i = 0; i < m; i++) c.fill(0, cOffset + i * ldc, cOffset + i * ldc + n);
  }
  if (k === 0) return;
  const packedBSize = Math.min(KC, k) * roundUp(Math.min(NC, n), NR);
  if (packedB.length < packedBSize) packedB = new Float64Array(packedBSize);
  const packedASize = Math.min(KC, k) * roundUp(Math.min(MC, m), MR);
  if (packedA.length < packedASize) packedA = new Float64Array(packedASize);
  const pa = packedA;
  const pb = packedB;
  for (let colBlock = 0; colBlock < n; colBlock += NC) {
    const blockCols = Math.min(NC, n - colBlock);
    for (let depthBlock = 0; depthBlock < k; depthBlock += KC) {
      const depth = Math.min(KC, k - depthBlock);
      if (transB) packBTransposed(b, bOffset, ldb, depthBlock, depth, colBlock, blockCols, pb);
      else packB(b, bOffset, ldb, depthBlock, depth, colBlock, blockCols, pb);
      for (let rowBlock = 0; rowBlock < m; rowBlock += MC) {
        const blockRows = Math.min(MC, m - rowBlock);
        if (transA) packATransposed(a, aOffset, lda, rowBlock, blockRows, depthBlock, depth, pa);
        else packA(a, aOffset, lda, rowBlock, blockRows, depthBlock, depth, pa);
        for (let col = 0; col < blockCols; col += NR) {
          const tileCols = Math.min(NR, blockCols - col);
          const bPanel = col * depth;
          for (let row = 0; row < blockRows; row += MR) {
            const tileRows = Math.min(MR, blockRows - row);
            const cIndex = cOffset + (rowBlock + row) * ldc + colBlock + col;
            if (tileRows === MR && tileCols === NR) {
              kernel4x4(depth, pa, row * depth, pb, bPanel, c, cIndex, ldc);
            } else {
              edgeTile.fill(0);
              kernel4x4(depth, pa, row * depth, pb, bPanel, edgeTile, 0, NR);
              for (let i = 0; i < tileRows; i++) {
                for (let j = 0; j < tileCols; j++) c[cIndex + i * ldc + j] += edgeTile[i * NR + j];
              }
            }
          }
        }
      }
    }
  }
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

/**
 * The register tile: c[4×4 at cIndex, row stride ldc] += (A panel)·(B panel) over `depth`.
 * A panel: depth × MR doubles, column p of the tile's rows at aIndex + p*MR; B panel likewise
 * with NR. Sixteen accumulators in locals; only the final += touches C.
 */
function kernel4x4(
  depth: number,
  pa: Float64Array,
  aIndex: number,
  pb: Float64Array,
  bIndex: number,
  c: Float32Array,
  cIndex: number,
  ldc: number,
): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  let ai = aIndex;
  let bi = bIndex;
  for (let p = 0; p < depth; p++) {
    const a0 = pa[ai], a1 = pa[ai + 1], a2 = pa[ai + 2], a3 = pa[ai + 3];
    const b0 = pb[bi], b1 = pb[bi + 1], b2 = pb[bi + 2], b3 = pb[bi + 3];
    c00 += a0 * b0;
    c01 += a0 * b1;
    c02 += a0 * b2;
    c03 += a0 * b3;
    c10 += a1 * b0;
    c11 += a1 * b1;
    c12 += a1 * b2;
    c13 += a1 * b3;
    c20 += a2 * b0;
    c21 += a2 * b1;
    c22 += a2 * b2;
    c23 += a2 * b3;
    c30 += a3 * b0;
    c31 += a3 * b1;
    c32 += a3 * b2;
    c33 += a3 * b3;
    ai += MR;
    bi += NR;
  }
  let r = cIndex;
  c[r] += c00;
  c[r + 1] += c01;
  c[r + 2] += c02;
  c[r + 3] += c03;
  r += ldc;
  c[r] += c10;
  c[r + 1] += c11;
  c[r + 2] += c12;
  c[r + 3] += c13;
  r += ldc;
  c[r] += c20;
  c[r + 1] += c21;
  c[r + 2] += c22;
  c[r + 3] += c23;
  r += ldc;
  c[r] += c30;
  c[r + 1] += c31;
  c[r + 2] += c32;
  c[r + 3] += c33;
}

/** Packs A[rows, depth] (A stored m×k) into MR-row panels: panel q, element (i, p) at q*MR*depth + p*MR + i. */
function packA(
  a: Float32Array,
  aOffset: number,
  lda: number,
  rowStart: number,
  rows: number,
  depthStart: number,
  depth: number,
  pa: Float64Array,
): void {
  for (let panelRow = 0; panelRow < rows; panelRow += MR) {
    const panel = panelRow * depth;
    const panelRows = Math.min(MR, rows - panelRow);
    for (let i = 0; i < MR; i++) {
      if (i >= panelRows) {
        for (let p = 0; p < depth; p++) pa[panel + p * MR + i] = 0;
        continue;
      }
      const source = aOffset + (rowStart + panelRow + i) * lda + depthStart;
      for (let p = 0; p < depth; p++) pa[panel + p * MR + i] = a[source + p];
    }
  }
}

/** Packs Aᵀ's block (A stored k×m, so a row of the panel is contiguous in memory). */
function packATransposed(
  a: Float32Array,
  aOffset: number,
  lda: number,
  rowStart: number,
  rows: number,
  depthStart: number,
  depth: number,
  pa: Float64Array,
): void {
  for (let panelRow = 0; panelRow < rows; panelRow += MR) {
    const panel = panelRow * depth;
    const panelRows = Math.min(MR, rows - panelRow);
    for (let p = 0; p < depth; p++) {
      const source = aOffset + (depthStart + p) * lda + rowStart + panelRow;
      const target = panel + p * MR;
      for (let i = 0; i < panelRows; i++) pa[target + i] = a[source + i];
      for (let i = panelRows; i < MR; i++) pa[target + i] = 0;
    }
  }
}

/** Packs B[depth, cols] (B stored k×n) into NR-column panels: panel q, (p, j) at q*NR*depth + p*NR + j. */
function packB(
  b: Float32Array,
  bOffset: number,
  ldb: number,
  depthStart: number,
  depth: number,
  colStart: number,
  cols: number,
  pb: Float64Array,
): void {
  for (let panelCol = 0; panelCol < cols; panelCol += NR) {
    const panel = panelCol * depth;
    const panelCols = Math.min(NR, cols - panelCol);
    for (let p = 0; p < depth; p++) {
      const source = bOffset + (depthStart + p) * ldb + colStart + panelCol;
      const target = panel + p * NR;
      for (let j = 0; j < panelCols; j++) pb[target + j] = b[source + j];
      for (let j = panelCols; j < NR; j++) pb[target + j] = 0;
    }
  }
}

/** Packs Bᵀ's block (B stored n×k, so a column of the panel is contiguous in memory). */
function packBTransposed(
  b: Float32Array,
  bOffset: number,
  ldb: number,
  depthStart: number,
  depth: number,
  colStart: number,
  cols: number,
  pb: Float64Array,
): void {
  for (let panelCol = 0; panelCol < cols; panelCol += NR) {
    const panel = panelCol * depth;
    const panelCols = Math.min(NR, cols - panelCol);
    for (let j = 0; j < NR; j++) {
      if (j >= panelCols) {
        for (let p = 0; p < depth; p++) pb[panel + p * NR + j] = 0;
        continue;
      }
      const source = bOffset + (colStart + panelCol + j) * ldb + depthStart;
      for (let p = 0; p < depth; p++) pb[panel + p * NR + j] = b[source + p];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Threading. Deno lets the main thread block in Atomics.wait, so gemm can stay synchronous:
// the main thread posts the worker its half of C, computes the other half, then waits on a
// shared flag. Typed arrays are only shared (not copied) by postMessage when they live on a
// SharedArrayBuffer, hence allocF32 and the isShared test. C is split along its longer side
// so both halves keep whole MR×NR tiles; each thread packs its own operand blocks.
//
// Whether it pays depends on the second core being free. On the shared 2-vCPU test machine,
// with other jobs running, two threads ran gemm and AlexNet's convolutions at 0.8x-1.5x the
// one-thread rate (bench/cpu_bench.ts with --allow-read prints both), so one thread stays the
// default.

/**
 * Products below this many flops (about 10 ms of work) stay on one thread: the postMessage
 * round trip is 0.05-2 ms, and more when the worker's core is busy with something else.
 */
const PARALLEL_MIN_FLOPS = 2 ** 25;

/** flag[0] while the worker computes; it stores 1 (done) or WORKER_FAILED, see gemm_worker.ts. */
const WORKER_BUSY = 0;
const WORKER_FAILED = 2;

let worker: Worker | null = null;
let workerFlag: Int32Array | null = null;

/**
 * Uses 1 thread (the default) or 2: the main thread and one persistent worker. With 2, gemm
 * splits large products whose a, b and c all live on SharedArrayBuffers (see
 * {@link allocF32}); anything else still runs on one thread. Asynchronous because the worker
 * only finishes starting while the main thread's event loop runs (a synchronous Atomics.wait
 * for its handshake timed out), so it must be awaited once before gemm may block on it.
 * Call {@link shutdownThreads} (or setThreads(1)) before the program should exit: a live
 * worker keeps the process running.
 */
export async function setThreads(threads: 1 | 2): Promise<void> {
  if (threads !== 1 && threads !== 2) {
    throw new RangeError(`setThreads: threads must be 1 or 2, got ${threads}`);
  }
  if (threads === 1) {
    shutdownThreads();
    return;
  }
  if (worker !== null) return;
  starting ??= startWorker().finally(() => starting = null);
  await starting;
}

/** The pending start, so that two overlapping setThreads(2) calls share one worker. */
let starting: Promise<void> | null = null;

async function startWorker(): Promise<void> {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const started = new Worker(new URL("./gemm_worker.ts", import.meta.url), { type: "module" });
  const ready = new Promise<void>((resolve, reject) => {
    started.onmessage = () => resolve();
    started.onerror = (event) => {
      event.preventDefault();
      reject(new Error(`setThreads: the gemm worker failed to start: ${event.message}`));
    };
  });
  started.postMessage({ flag });
  try {
    await ready;
  } catch (error) {
    started.terminate();
    throw error;
  }
  started.onmessage = null;
  worker = started;
  workerFlag = flag;
}

/** Number of threads gemm may use: 1, or 2 after {@link setThreads}(2). */
export function getThreads(): 1 | 2 {
  return worker === null ? 1 : 2;
}

/** Terminates the gemm worker, if any, and returns to one thread. Safe to call twice. */
export function shutdownThreads(): void {
  worker?.terminate();
  worker = null;
  workerFlag = null;
}

/**
 * A zeroed Float32Array of `length` elements, on a SharedArrayBuffer while two threads are
 * enabled so that gemm can hand it to the worker, on an ordinary ArrayBuffer otherwise.
 */
export function allocF32(length: number): Float32Array {
  if (worker === null) return new Float32Array(length);
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}

function isShared(a: Float32Array, b: Float32Array, c: Float32Array): boolean {
  return a.buffer instanceof SharedArrayBuffer && b.buffer instanceof SharedArrayBuffer &&
    c.buffer instanceof SharedArrayBuffer;
}

function gemmF32Parallel(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  aOffset: number,
  lda: number,
  b: Float32Array,
  bOffset: number,
  ldb: number,
  c: Float32Array,
  cOffset: number,
  ldc: number,
  accumulate: boolean,
): void {
  // The worker takes the second half: rows [split, m) or columns [split, n) of C, expressed
  // as a smaller gemm by moving the offsets of op(A) or op(B) and of C.
  const byRows = m >= n;
  const split = byRows ? roundUp(Math.ceil(m / 2), MR) : roundUp(Math.ceil(n / 2), NR);
  const flag = workerFlag!;
  Atomics.store(flag, 0, WORKER_BUSY);
  worker!.postMessage({
    transA,
    transB,
    m: byRows ? m - split : m,
    n: byRows ? n : n - split,
    k,
    a,
    aOffset: byRows ? aOffset + (transA ? split : split * lda) : aOffset,
    lda,
    b,
    bOffset: byRows ? bOffset : bOffset + (transB ? split * ldb : split),
    ldb,
    c,
    cOffset: cOffset + (byRows ? split * ldc : split),
    ldc,
    accumulate,
  });
  gemmF32Serial(
    transA,
    transB,
    byRows ? split : m,
    byRows ? n : split,
    k,
    a,
    aOffset,
    lda,
    b,
    bOffset,
    ldb,
    c,
    cOffset,
    ldc,
    accumulate,
  );
  Atomics.wait(flag, 0, WORKER_BUSY);
  if (Atomics.load(flag, 0) === WORKER_FAILED) throw new Error("gemm: the worker thread failed");
}
