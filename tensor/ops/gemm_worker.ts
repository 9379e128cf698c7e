/**
 * The second thread of {@link gemm}: receives one shared flag at startup, then sub-problems
 * whose arrays live on SharedArrayBuffers, computes them with the same serial kernel and
 * flips the flag so the blocked main thread wakes. Started by setThreads(2) in gemm.ts.
 *
 * @module
 */

import { gemmF32Serial } from "./gemm.ts";

/** A sub-problem of gemm, the arguments of gemmF32Serial by name. */
interface GemmTask {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  a: Float32Array;
  aOffset: number;
  lda: number;
  b: Float32Array;
  bOffset: number;
  ldb: number;
  c: Float32Array;
  cOffset: number;
  ldc: number;
  accumulate: boolean;
}

const WORKER_DONE = 1;
const WORKER_FAILED = 2;

let flag: Int32Array | null = null;

self.onmessage = (event: MessageEvent<GemmTask | { flag: Int32Array }>) => {
  const data = event.data;
  if ("flag" in data) {
    flag = data.flag;
    self.postMessage("ready");
    return;
  }
  let outcome = WORKER_DONE;
  try {
    gemmF32Serial(
      data.transA,
      data.transB,
      data.m,
      data.n,
      data.k,
      data.a,
      data.aOffset,
      data.lda,
      data.b,
      data.bOffset,
      data.ldb,
      data.c,
      data.cOffset,
      data.ldc,
      data.accumulate,
    );
  } catch (error) {
    console.error("gemm worker:", error);
    outcome = WORKER_FAILED;
  }
  Atomics.store(flag!, 0, outcome);
  Atomics.notify(flag!, 0);
};
