/**
 * The tasks of the layer kernels (ReLU, LRN, max-pooling; cpu/kernels/layers.ts prepares each
 * job, tasks.ts shares it among the threads): each task a contiguous run of the output that
 * depends on nothing else, so every thread count gives the same bits.
 *
 * - `relu`: a run of elements (a multiple of 4: the vector loop stays aligned).
 * - `lrn`: a run of images, or a run of one image's pixels (the window runs across the channels
 *   of one pixel); the backward's two per-image buffers are per-thread scratch.
 * - `pool`: a run of planes, forward or the gradient's scatter (within a plane in order).
 * - `sgd`: a run of weights (each element's update depends on its own w, g and v alone).
 * - `binary`: a run of output elements, cut where a repeated operand's run starts over.
 * - `dropout`: a run of elements (each element's mask depends on its index alone).
 * - `sumBlocks`: a run of blocks (each block summed in order by one thread).
 *
 * @module
 */

import type { ReluExports } from "./relu.ts";
import type { LrnExports } from "./lrn.ts";
import { MAX_POOL_ARGS, type PoolExports } from "./pool2d.ts";
import type { SgdExports } from "./sgd.ts";
import { BINARY_KERNEL_OPS, type ElementwiseExports } from "./elementwise.ts";
import { bodyWords, threadScratch } from "./tasks.ts";

/** The layer modules a thread has instantiated on the shared memory. */
export interface LayerKernels {
  relu: ReluExports;
  lrn: LrnExports;
  pool: PoolExports;
  sgd: SgdExports;
  elementwise: ElementwiseExports;
}

/** relu: y = relu(x), or (backward) dx = x > 0 ? dy : 0, for n floats, perTask per task. */
export const RELU = bodyWords(["x", "dy", "out", "n", "perTask", "backward"] as const);
/** lrn: items images of C planes of P pixels; alpha, k, factor are float32 bits. */
export const LRN = bodyWords(
  [
    "x",
    "out",
    "dy",
    "items",
    "C",
    "P",
    "below",
    "above",
    "alpha",
    "k",
    "factor",
    "perTask",
    "chunks",
    "chunk",
    "backward",
  ] as const,
);
/** pool: max-pooling of `planes` planes, perTask per task (maxPool's arguments first). */
export const POOL = bodyWords(
  [...MAX_POOL_ARGS, "perTask", "backward", "dy", "dx"] as const,
);

/** sgd: n weights, perTask per task; the three coefficients as float64, two words each. */
export const SGD = bodyWords(
  [
    "w",
    "g",
    "v",
    "n",
    "perTask",
    "pytorch",
    "momentum",
    "momentumHigh",
    "decay",
    "decayHigh",
    "lr",
    "lrHigh",
  ] as const,
);

/**
 * binary: out = a op b for n elements, perTask per task, op a BINARY_KERNEL_OPS index. One
 * operand may repeat (`repeated`: 0 none, 1 a, 2 b): element i then reads its element
 * ⌊i / inner⌋ mod period (a bias over rows: inner 1; a value per plane: inner = the plane).
 */
export const BINARY = bodyWords(
  ["a", "b", "out", "n", "perTask", "op", "repeated", "inner", "period"] as const,
);
/** dropout: n elements, perTask per task; threshold = ⌈p·2^24⌉, scale float32 bits. */
export const DROPOUT = bodyWords(
  ["x", "out", "n", "perTask", "seed", "mixedSeed", "threshold", "scale"] as const,
);
/** sumBlocks: `blocks` float64 sums of `inner` floats each, perTask blocks per task. */
export const SUM_BLOCKS = bodyWords(["x", "out", "blocks", "inner", "perTask"] as const);

/** A float64 stored in two descriptor words (low, high), and read back. */
const pair = new Int32Array(2), asDouble = new Float64Array(pair.buffer);
export function doubleWords(value: number): [number, number] {
  asDouble[0] = value;
  return [pair[0], pair[1]];
}
function wordsDouble(job: Int32Array, word: number): number {
  pair[0] = job[word];
  pair[1] = job[word + 1];
  return asDouble[0];
}

/** A float32 stored in a descriptor word, and read back. */
const bits = new Int32Array(1), asFloat = new Float32Array(bits.buffer);
export function floatWord(value: number): number {
  asFloat[0] = value;
  return bits[0];
}
function wordFloat(word: number): number {
  bits[0] = word;
  return asFloat[0];
}

/** Task t of a relu job. */
export function runReluTask(k: LayerKernels, job: Int32Array, t: number): void {
  const first = t * job[RELU.perTask], n = Math.min(job[RELU.perTask], job[RELU.n] - first);
  const x = job[RELU.x] + 4 * first, out = job[RELU.out] + 4 * first;
  if (job[RELU.backward]) k.relu.reluBackward(x, job[RELU.dy] + 4 * first, out, n);
  else k.relu.relu(x, out, n);
}

/** Task t of an lrn job. */
export function runLrnTask(k: LayerKernels, job: Int32Array, t: number, thread: number): void {
  const C = job[LRN.C], P = job[LRN.P], chunks = job[LRN.chunks];
  // `chunks` runs of `chunk` pixels per image (then one image per task), or whole images.
  const first = chunks > 1 ? Math.floor(t / chunks) : t * job[LRN.perTask];
  const items = chunks > 1 ? 1 : Math.min(job[LRN.perTask], job[LRN.items] - first);
  const p0 = chunks > 1 ? (t % chunks) * job[LRN.chunk] : 0;
  const pixels = chunks > 1 ? Math.min(job[LRN.chunk], P - p0) : P;
  const offset = 4 * (first * C * P + p0);
  const window = [items, C, P, pixels, job[LRN.below], job[LRN.above]];
  const alpha = wordFloat(job[LRN.alpha]), kk = wordFloat(job[LRN.k]);
  const x = job[LRN.x] + offset, out = job[LRN.out] + offset;
  if (!job[LRN.backward]) return k.lrn.lrnForward(x, out, ...window, alpha, kk);
  const scaled = threadScratch(job, thread);
  const weighted = scaled + 4 * C * P;
  const dy = job[LRN.dy] + offset;
  k.lrn.lrnBackward(x, out, ...window, alpha, kk, dy, scaled, weighted, wordFloat(job[LRN.factor]));
}

/** Task t of a pool job. */
export function runPoolTask(k: LayerKernels, job: Int32Array, t: number): void {
  const first = t * job[POOL.perTask];
  const planes = Math.min(job[POOL.perTask], job[POOL.planes] - first);
  const inPlane = job[POOL.H] * job[POOL.W], outPlane = job[POOL.outH] * job[POOL.outW];
  const argmax = job[POOL.argmax] + 4 * first * outPlane;
  if (job[POOL.backward]) {
    const dy = job[POOL.dy] + 4 * first * outPlane, dx = job[POOL.dx] + 4 * first * inPlane;
    return k.pool.maxPoolBackward(dy, argmax, dx, planes, inPlane, outPlane);
  }
  const geometry = [POOL.H, POOL.W, POOL.KH, POOL.KW, POOL.Sh, POOL.Sw, POOL.padH, POOL.padW]
    .map((word) => job[word]);
  k.pool.maxPool(
    job[POOL.x] + 4 * first * inPlane,
    job[POOL.y] + 4 * first * outPlane,
    argmax,
    planes,
    ...geometry,
    job[POOL.outH],
    job[POOL.outW],
  );
}

/** Task t of an sgd job. */
export function runSgdTask(k: LayerKernels, job: Int32Array, t: number): void {
  const first = t * job[SGD.perTask], n = Math.min(job[SGD.perTask], job[SGD.n] - first);
  const [w, g, v] = [job[SGD.w], job[SGD.g], job[SGD.v]].map((at) => at + 4 * first);
  const coefficients = [SGD.momentum, SGD.decay, SGD.lr].map((word) => wordsDouble(job, word));
  if (job[SGD.pytorch]) k.sgd.sgdPytorch(w, g, v, n, ...coefficients as [number, number, number]);
  else k.sgd.sgdPaper(w, g, v, n, ...coefficients as [number, number, number]);
}

/** Task t of a binary job: its run of the output, in pieces where a repeated operand restarts. */
export function runBinaryTask(k: LayerKernels, job: Int32Array, t: number): void {
  const first = t * job[BINARY.perTask], end = Math.min(first + job[BINARY.perTask], job[BINARY.n]);
  const op = BINARY_KERNEL_OPS[job[BINARY.op]], repeated = job[BINARY.repeated];
  const [a, b, out] = [job[BINARY.a], job[BINARY.b], job[BINARY.out]];
  if (repeated === 0) {
    return k.elementwise[`${op}VV`](a + 4 * first, b + 4 * first, out + 4 * first, end - first);
  }
  const inner = job[BINARY.inner], period = job[BINARY.period];
  // From output i: the repeated operand's element j, and the n outputs that read it (inner > 1)
  // or that read its run from j on (inner = 1).
  for (let i = first; i < end;) {
    const j = Math.floor(i / inner) % period;
    const n = Math.min(inner === 1 ? period - j : inner - (i % inner), end - i);
    const full = 4 * i, part = 4 * j;
    const form = inner === 1 ? "VV" : repeated === 1 ? "SV" : "VS";
    if (repeated === 1) k.elementwise[`${op}${form}`](a + part, b + full, out + full, n);
    else k.elementwise[`${op}${form}`](a + full, b + part, out + full, n);
    i += n;
  }
}

/** Task t of a dropout job. */
export function runDropoutTask(k: LayerKernels, job: Int32Array, t: number): void {
  const first = t * job[DROPOUT.perTask];
  const n = Math.min(job[DROPOUT.perTask], job[DROPOUT.n] - first);
  const [x, out] = [job[DROPOUT.x], job[DROPOUT.out]].map((at) => at + 4 * first);
  const hash = [DROPOUT.seed, DROPOUT.mixedSeed, DROPOUT.threshold].map((word) => job[word]);
  const scale = wordFloat(job[DROPOUT.scale]);
  k.elementwise.dropout(x, out, n, first, ...hash as [number, number, number], scale);
}

/** Task t of a sumBlocks job. */
export function runSumBlocksTask(k: LayerKernels, job: Int32Array, t: number): void {
  const first = t * job[SUM_BLOCKS.perTask], inner = job[SUM_BLOCKS.inner];
  const blocks = Math.min(job[SUM_BLOCKS.perTask], job[SUM_BLOCKS.blocks] - first);
  const x = job[SUM_BLOCKS.x] + 4 * first * inner, out = job[SUM_BLOCKS.out] + 8 * first;
  k.elementwise.sumBlocks(x, out, blocks, inner);
}
