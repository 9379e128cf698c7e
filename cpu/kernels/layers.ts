/**
 * The layer kernels of the cpu device, run on the engine's memory and thread pool: ReLU and its
 * gradient (relu.ts), LRN forward and backward for β = 0.75 (lrn.ts), max-pooling forward and
 * backward (pool2d.ts). Each call copies its operands into the shared memory, runs one job whose tasks
 * are runs of elements, images or planes (layer_tasks.ts), and copies the result out. Same
 * results as the reference loops they stand beside (tests/cpu/layers.test.ts), on any number
 * of threads.
 *
 * @module
 */

import type { LrnParams, Pool2dParams } from "../../backend/backend.ts";
import { engineFor, type GemmEngine, simdTier } from "./gemm.ts";
import { floatWord, LRN, POOL, RELU } from "./layer_tasks.ts";
import { CONTROL_BYTES, KINDS, newJob, setWords } from "./tasks.ts";

export { lrnWasmSupports } from "./lrn.ts";

/** Elements per relu task; images or planes per task are sized to about as many. */
const TASK_ELEMENTS = 1 << 15;

/** The engine of the current tier; null while a browser compiles it (then: the reference). */
export function layerEngine(): GemmEngine | null {
  const tier = simdTier();
  return tier === null ? null : engineFor(tier);
}

function engine(): GemmEngine {
  const m = layerEngine();
  if (m === null) throw new Error("cpu kernels: still compiling; await setCpuOptions({})");
  return m;
}

/** Byte addresses of arrays of the given float counts, 64-byte aligned after the control area. */
function regions(m: GemmEngine, counts: number[]): number[] {
  const at: number[] = [];
  let end = CONTROL_BYTES;
  for (const count of counts) {
    at.push(end);
    end += Math.ceil((count * 4) / 64) * 64;
  }
  m.reserve(end, "cpu kernels");
  return at;
}

const view = (m: GemmEngine, at: number, n: number) => new Float32Array(m.memory.buffer, at, n);

/** Runs relu (dy null) or its gradient on the pool. */
function reluJob(x: Float32Array, dy: Float32Array | null, out: Float32Array): void {
  const m = engine(), n = x.length;
  const [xAt, dyAt, outAt] = regions(m, [n, dy ? n : 0, n]);
  view(m, xAt, n).set(x);
  if (dy) view(m, dyAt, n).set(dy.subarray(0, n));
  const job = newJob(KINDS.relu, Math.ceil(n / TASK_ELEMENTS));
  const values = { x: xAt, dy: dyAt, out: outAt, n, perTask: TASK_ELEMENTS, backward: dy ? 1 : 0 };
  setWords(job, RELU, values);
  m.run(job, 4 * n);
  out.set(view(m, outAt, n));
}

/** y = relu(x) for float32 arrays of equal length. */
export function reluWasm(x: Float32Array, y: Float32Array): void {
  reluJob(x, null, y);
}

/** dx = x > 0 ? dy : 0 for float32 arrays of equal length. */
export function reluBackwardWasm(x: Float32Array, dy: Float32Array, dx: Float32Array): void {
  reluJob(x, dy, dx);
}

const windowOf = (p: LrnParams) => [Math.floor(p.size / 2), Math.floor((p.size - 1) / 2)];

/** Runs LRN forward (dy null) or backward on the pool, a run of images per task. */
function lrnJob(x: Float32Array, dy: Float32Array | null, p: LrnParams, out: Float32Array): void {
  const m = engine();
  const item = p.c * p.h * p.w, length = p.n * item;
  const scratchBytes = dy ? Math.ceil((2 * item * 4) / 64) * 64 : 0;
  const [xAt, dyAt, outAt, scratch] = regions(m, [
    length,
    dy ? length : 0,
    length,
    (m.scratchSpaces * scratchBytes) / 4,
  ]);
  view(m, xAt, length).set(x.subarray(0, length));
  if (dy) view(m, dyAt, length).set(dy.subarray(0, length));
  const perTask = Math.max(1, Math.floor(TASK_ELEMENTS / Math.max(item, 1)));
  const job = newJob(KINDS.lrn, Math.ceil(p.n / perTask), scratch, scratchBytes);
  const [below, above] = windowOf(p);
  const values = {
    x: xAt,
    out: outAt,
    dy: dyAt,
    items: p.n,
    C: p.c,
    P: p.h * p.w,
    below,
    above,
    alpha: floatWord(p.alpha),
    k: floatWord(p.k),
    factor: floatWord(2 * p.alpha * p.beta),
    perTask,
    backward: dy ? 1 : 0,
  };
  setWords(job, LRN, values);
  m.run(job, 10 * p.size * length);
  out.set(view(m, outAt, length));
}

/** y = lrn(x) for float32 x [N, C, H, W] with β = 0.75, as `lrnForwardCpu`. */
export function lrnForwardWasm(x: Float32Array, p: LrnParams, y: Float32Array): void {
  lrnJob(x, null, p, y);
}

/** dx of lrn for float32 x, dy [N, C, H, W] with β = 0.75, as `lrnBackwardCpu`. */
export function lrnBackwardWasm(
  x: Float32Array,
  dy: Float32Array,
  p: LrnParams,
  dx: Float32Array,
): void {
  lrnJob(x, dy, p, dx);
}

/** A pool job (forward or backward) of p: its sizes, and a run of planes per task. */
function poolJob(p: Pool2dParams) {
  const planes = p.n * p.c, inLength = planes * p.h * p.w, outLength = planes * p.outH * p.outW;
  const perTask = Math.max(1, Math.floor(TASK_ELEMENTS / Math.max(p.h * p.w, 1)));
  const job = newJob(KINDS.pool, Math.ceil(planes / perTask));
  return { planes, inLength, outLength, perTask, job };
}

/**
 * Max pooling of float32 x [N, C, H, W] into y and argmax [N, C, outH, outW] (flat index
 * h·W + w of the winner in its plane), as `maxPool2dForwardCpu`; a run of planes per task.
 */
export function maxPool2dForwardWasm(
  x: Float32Array,
  p: Pool2dParams,
  y: Float32Array,
  argmax: Int32Array,
): void {
  const m = engine();
  const { planes, inLength, outLength, perTask, job } = poolJob(p);
  const [xAt, yAt, argmaxAt] = regions(m, [inLength, outLength, outLength]);
  view(m, xAt, inLength).set(x.subarray(0, inLength));
  const values = {
    x: xAt,
    y: yAt,
    argmax: argmaxAt,
    planes,
    H: p.h,
    W: p.w,
    KH: p.kh,
    KW: p.kw,
    Sh: p.strideH,
    Sw: p.strideW,
    padH: p.padH,
    padW: p.padW,
    outH: p.outH,
    outW: p.outW,
    perTask,
    backward: 0,
    dy: 0,
    dx: 0,
  };
  setWords(job, POOL, values);
  m.run(job, 2 * outLength * p.kh * p.kw);
  y.set(view(m, yAt, outLength));
  argmax.set(new Int32Array(m.memory.buffer, argmaxAt, outLength));
}

/**
 * dx of max pooling: dy [N, C, outH, outW] added to the winners `argmax` recorded by the
 * forward, as `maxPool2dBackwardCpu` (same float32 sums in the same order); a run of planes
 * per task.
 */
export function maxPool2dBackwardWasm(
  dy: Float32Array,
  argmax: Int32Array,
  p: Pool2dParams,
  dx: Float32Array,
): void {
  const m = engine();
  const { planes, inLength, outLength, perTask, job } = poolJob(p);
  const [dyAt, argmaxAt, dxAt] = regions(m, [outLength, outLength, inLength]);
  view(m, dyAt, outLength).set(dy.subarray(0, outLength));
  new Int32Array(m.memory.buffer, argmaxAt, outLength).set(argmax.subarray(0, outLength));
  const values: Partial<Record<keyof typeof POOL, number>> = {
    argmax: argmaxAt,
    planes,
    H: p.h,
    W: p.w,
    outH: p.outH,
    outW: p.outW,
    perTask,
    backward: 1,
    dy: dyAt,
    dx: dxAt,
  };
  setWords(job, POOL, values);
  m.run(job, 4 * (inLength + outLength));
  dx.set(view(m, dxAt, inLength));
}
