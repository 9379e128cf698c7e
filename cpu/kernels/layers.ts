/**
 * The layer kernels of the cpu device, run on the engine's memory and thread pool: ReLU and its
 * gradient (relu.ts), LRN forward and backward for β = 0.75 (lrn.ts), max-pooling forward and
 * backward (pool2d.ts), the SGD update (sgd.ts), and binary arithmetic, dropout and the block
 * sums of a reduction (elementwise.ts). Each call finds its operands in the shared memory (in
 * place for the cpu device's tensors, copied otherwise: operands.ts), runs one job whose tasks
 * are runs of elements, images, planes or blocks (layer_tasks.ts), and leaves the result in its
 * output. Same results as the reference loops they stand beside (tests/cpu/layers.test.ts,
 * tests/cpu/elementwise.test.ts), on any number of threads.
 *
 * @module
 */

import type { LrnParams, Pool2dParams, SgdParams } from "../../backend/backend.ts";
import { mix32 } from "../../tensor/random.ts";
import { engineFor, type GemmEngine, simdTier } from "./gemm.ts";
import {
  BINARY,
  doubleWords,
  DROPOUT,
  floatWord,
  LRN,
  POOL,
  RELU,
  SGD,
  SUM_BLOCKS,
} from "./layer_tasks.ts";
import { BINARY_KERNEL_OPS, type BinaryKernelOp } from "./elementwise.ts";
import { KINDS, newJob, setWords } from "./tasks.ts";
import { placeOperands } from "./operands.ts";

export { lrnWasmSupports } from "./lrn.ts";

/** Elements per relu task; images or planes per task are sized to about as many. */
const TASK_ELEMENTS = 1 << 15;
/**
 * The work of one element of a pass over memory, in the flops `run` weighs against the cost of
 * waking the threads: a pass of a quarter million floats or more is shared. A pooling window's
 * cell (a load, a compare, a select) counts as one element.
 */
const PASS_FLOPS = 16;

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
  m.run(job, PASS_FLOPS * n);
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

/**
 * Runs LRN forward (dy null) or backward on the pool: a run of images per task, or, for an
 * image of more than a task's elements, runs of its pixels (a multiple of 4) per task.
 */
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
  const P = p.h * p.w, split = Math.max(1, Math.floor(item / TASK_ELEMENTS));
  const chunk = Math.max(4, Math.ceil(P / split / 4) * 4), chunks = Math.ceil(P / chunk);
  const tasks = chunks > 1 ? p.n * chunks : Math.ceil(p.n / perTask);
  const job = newJob(KINDS.lrn, tasks, at.scratch, scratchBytes);
  const [below, above] = windowOf(p);
  const values = {
    x: at.x,
    out: at.out,
    dy: at.dy,
    items: p.n,
    C: p.c,
    P,
    below,
    above,
    alpha: floatWord(p.alpha),
    k: floatWord(p.k),
    factor: floatWord(2 * p.alpha * p.beta),
    perTask,
    chunks,
    chunk,
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
  m.run(job, PASS_FLOPS * outLength * p.kh * p.kw);
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
  m.run(job, PASS_FLOPS * (inLength + outLength));
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
  m.run(job, PASS_FLOPS * n);
  finish();
}

/**
 * How a broadcast binary operation reads its operands, when the wasm kernels can run it: both
 * operands whole (`repeated` 0), or one whole and the other (`repeated` 1: a, 2: b) read at
 * element ⌊i / inner⌋ mod period for output element i.
 */
export interface RepeatPattern {
  repeated: 0 | 1 | 2;
  inner: number;
  period: number;
}

/** Runs shorter than this go to the reference (a call per run would cost more than it does). */
const MIN_RUN = 8;

/**
 * The {@link RepeatPattern} of `shape` broadcast to `outShape`: the axes where it has its own
 * extent (not 1) must be one run of the output's axes (axes of extent 1 aside); null otherwise.
 */
function repeatOf(shape: readonly number[], outShape: readonly number[]) {
  const offset = outShape.length - shape.length;
  const big = outShape.map((d, i) => (d > 1 ? i : -1)).filter((i) => i >= 0);
  const own = big.filter((i) => i >= offset && shape[i - offset] === outShape[i]);
  if (own.length > 0 && big.indexOf(own.at(-1)!) - big.indexOf(own[0]) !== own.length - 1) {
    return null; // two runs of own axes, with a repeated axis between them
  }
  const lo = own.length > 0 ? own[0] : 0, hi = own.length > 0 ? own.at(-1)! + 1 : 0;
  const product = (from: number, to: number) => outShape.slice(from, to).reduce((n, d) => n * d, 1);
  return { inner: product(hi, outShape.length), period: product(lo, hi) };
}

/** The pattern of `a op b` broadcast to `outShape`, or null where the reference should run it. */
export function repeatPattern(
  aShape: readonly number[],
  bShape: readonly number[],
  outShape: readonly number[],
): RepeatPattern | null {
  const size = (shape: readonly number[]) => shape.reduce((n, d) => n * d, 1);
  const n = size(outShape), aWhole = size(aShape) === n, bWhole = size(bShape) === n;
  if (aWhole && bWhole) return { repeated: 0, inner: 1, period: n };
  if (!aWhole && !bWhole) return null;
  const repeat = repeatOf(aWhole ? bShape : aShape, outShape);
  if (repeat === null || (repeat.inner === 1 ? repeat.period : repeat.inner) < MIN_RUN) return null;
  return { repeated: aWhole ? 2 : 1, ...repeat };
}

/** out = a op b for float32 arrays read as `pattern` says ({@link repeatPattern}), as `binaryCpu`. */
export function binaryWasm(
  op: BinaryKernelOp,
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  pattern: RepeatPattern,
): void {
  const m = engine(), n = out.length;
  const { at, finish } = placeOperands(m, op, {
    a: { read: a, length: a.length },
    b: { read: b, length: b.length },
    out: { write: out, length: n },
  });
  const job = newJob(KINDS.binary, Math.ceil(n / TASK_ELEMENTS));
  const values = {
    ...at,
    n,
    perTask: TASK_ELEMENTS,
    op: BINARY_KERNEL_OPS.indexOf(op),
    ...pattern,
  };
  setWords(job, BINARY, values);
  m.run(job, PASS_FLOPS * n);
  finish();
}

/** y = inverted dropout of float32 x with probability p and mask seed `seed`, as `dropoutCpu`. */
export function dropoutWasm(x: Float32Array, p: number, seed: number, y: Float32Array): void {
  const m = engine(), n = x.length;
  const { at, finish } = placeOperands(m, "dropout", {
    x: { read: x, length: n },
    out: { write: y, length: n },
  });
  const job = newJob(KINDS.dropout, Math.ceil(n / TASK_ELEMENTS));
  const values = {
    ...at,
    n,
    perTask: TASK_ELEMENTS,
    seed: seed | 0,
    mixedSeed: mix32(seed >>> 0) | 0,
    threshold: Math.ceil(p * 2 ** 24),
    scale: floatWord(1 / (1 - p)),
  };
  setWords(job, DROPOUT, values);
  m.run(job, 2 * PASS_FLOPS * n);
  finish();
}

/**
 * blocks[b] = the float64 sum of x[b·inner .. (b+1)·inner − 1] in order, for float32 x, as
 * `sumBlocksCpu`; a run of blocks per task.
 */
export function sumBlocksWasm(x: Float32Array, inner: number, blocks: Float64Array): void {
  const m = engine(), count = blocks.length;
  const { at, finish } = placeOperands(m, "sum", {
    x: { read: x, length: count * inner },
    out: 2 * count,
  });
  const perTask = Math.max(1, Math.floor(TASK_ELEMENTS / Math.max(inner, 1)));
  const job = newJob(KINDS.sumBlocks, Math.ceil(count / perTask));
  setWords(job, SUM_BLOCKS, { ...at, blocks: count, inner, perTask });
  m.run(job, PASS_FLOPS * count * inner);
  blocks.set(new Float64Array(m.memory.buffer, at.out, count));
  finish();
}
