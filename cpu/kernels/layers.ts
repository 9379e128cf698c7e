/**
 * The layer kernels of the cpu device, run on the engine's memory and thread pool: ReLU and its
 * gradient (relu.ts), LRN forward and backward for β = 0.75 (lrn.ts), max-pooling forward and
 * backward (pool2d.ts), and the SGD update (sgd.ts). Each call finds its operands in the shared memory (in place for the cpu
 * device's tensors, copied otherwise: operands.ts), runs one job whose tasks are runs of
 * elements, images or planes (layer_tasks.ts), and leaves the result in its output. Same
 * results as the reference loops they stand beside (tests/cpu/layers.test.ts), on any number
 * of threads.
 *
 * @module
 */

import type { LrnParams, Pool2dParams, SgdParams } from "../../backend/backend.ts";
import { engineFor, type GemmEngine, simdTier } from "./gemm.ts";
import { doubleWords, floatWord, LRN, POOL, RELU, SGD } from "./layer_tasks.ts";
import { KINDS, newJob, setWords } from "./tasks.ts";
import { placeOperands } from "./operands.ts";

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

/** Runs relu (dy null) or its gradient on the pool. */
function reluJob(x: Float32Array, dy: Float32Array | null, out: Float32Array): void {
  const m = engine(), n = x.length;
  const { at, finish } = placeOperands(m, "relu", {
    x: { read: x, length: n },
    dy: dy ? { read: dy, length: n } : 0,
    out: { write: out, length: n },
  });
  const job = newJob(KINDS.relu, Math.ceil(n / TASK_ELEMENTS));
  const values = { ...at, n, perTask: TASK_ELEMENTS, backward: dy ? 1 : 0 };
  setWords(job, RELU, values);
  m.run(job, 4 * n);
  finish();
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
  const { at, finish } = placeOperands(m, "lrn", {
    x: { read: x, length },
    dy: dy ? { read: dy, length } : 0,
    out: { write: out, length },
    scratch: (m.scratchSpaces * scratchBytes) / 4,
  });
  const perTask = Math.max(1, Math.floor(TASK_ELEMENTS / Math.max(item, 1)));
  const job = newJob(KINDS.lrn, Math.ceil(p.n / perTask), at.scratch, scratchBytes);
  const [below, above] = windowOf(p);
  const values = {
    x: at.x,
    out: at.out,
    dy: at.dy,
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
  finish();
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
  const { at, finish } = placeOperands(m, "maxPool2d", {
    x: { read: x, length: inLength },
    y: { write: y, length: outLength },
    argmax: { write: argmax, length: outLength },
  });
  const values = {
    ...at,
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
  finish();
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
  const { at, finish } = placeOperands(m, "maxPool2d", {
    dy: { read: dy, length: outLength },
    argmax: { read: argmax, length: outLength },
    dx: { write: dx, length: inLength },
  });
  const values: Partial<Record<keyof typeof POOL, number>> = {
    ...at,
    planes,
    H: p.h,
    W: p.w,
    outH: p.outH,
    outW: p.outW,
    perTask,
    backward: 1,
  };
  setWords(job, POOL, values);
  m.run(job, 4 * (inLength + outLength));
  finish();
}

/**
 * One SGD update of float32 w and v in place from g (`p.rule`), as `sgdUpdateCpu` bit for bit
 * (sgd.ts); a run of weights per task.
 */
export function sgdUpdateWasm(
  w: Float32Array,
  g: Float32Array,
  v: Float32Array,
  p: SgdParams,
): void {
  const m = engine(), n = w.length;
  const { at, finish } = placeOperands(m, "sgdUpdate", {
    w: { update: w, length: n },
    g: { read: g, length: n },
    v: { update: v, length: n },
  });
  const job = newJob(KINDS.sgd, Math.ceil(n / TASK_ELEMENTS));
  const pytorch = p.rule !== "paper";
  const [momentum, momentumHigh] = doubleWords(p.momentum);
  const [decay, decayHigh] = doubleWords(pytorch ? p.weightDecay : p.weightDecay * p.lr);
  const [lr, lrHigh] = doubleWords(p.lr);
  const values = {
    ...at,
    n,
    perTask: TASK_ELEMENTS,
    pytorch: pytorch ? 1 : 0,
    momentum,
    momentumHigh,
    decay,
    decayHigh,
    lr,
    lrHigh,
  };
  setWords(job, SGD, values);
  m.run(job, 6 * n);
  finish();
}
