/**
 * The tasks of the fast conv2d (cpu/kernels/conv2d.ts prepares each job; tasks.ts shares it
 * among the threads). Three kinds, each task an independent block of the output:
 *
 * - `convPad`: a run of planes copied into zero-bordered planes (the packers' source).
 * - `convPixels` (forward, and the input gradient as a forward convolution of dy): first, before
 *   the barrier, one task per group and k-block packs that block of the group's weights into
 *   the gemm's B panels; then one task per group and block of MC output pixels, all its
 *   channels: pack im2col blocks, multiply with the group's packed weights over every k-block,
 *   scatter the tile to NCHW.
 * - `convWeight` (weight gradient): one batch slice's block of MC taps by a block of output
 *   channels of one group, summed over every pixel of the slice in KC-pixel steps into the
 *   slice's own C, in the same order whichever thread runs it and however many threads there
 *   are.
 *
 * @module
 */

import type { GemmExports } from "./gemm_kernels.ts";
import type { ConvExports } from "./conv2d_kernels.ts";
import { bodyWords, HEADER, threadScratch } from "./tasks.ts";

/** Depth of a packed block (an A panel and a B panel of KC steps fit in L1). */
export const KC = 256;

/** The two modules a conv task calls, instantiated on the same memory. */
export interface ConvKernels {
  gemm: GemmExports;
  conv: ConvExports;
}

/** convPad: `planes` H × W planes at src to zero-bordered ones at dst, `perTask` per task. */
export const PAD = bodyWords(
  ["src", "dst", "planes", "H", "W", "padH", "padW", "perTask"] as const,
);

/**
 * convPixels: the source (see conv2d.ts's Source), the product (PixelProduct), the byte
 * distance between groups in source, weights, packed weights, output and bias, and the pixel
 * blocks. The header's barrier is the number of packing tasks (groups × k-blocks).
 */
export const PIX = bodyWords(
  [
    "src",
    "padded",
    "imageStride",
    "H",
    "W",
    "KH",
    "KW",
    "Sh",
    "Sw",
    "padH",
    "padW",
    "Dh",
    "Dw",
    "outH",
    "outW",
    "images",
    "K",
    "cols",
    "weights",
    "packedB",
    "dst",
    "dstImageStride",
    "bias",
    "biasStep",
    "srcGroup",
    "weightsGroup",
    "packedBGroup",
    "dstGroup",
    "biasGroup",
    "qBlocks",
    "mc",
  ] as const,
);

/**
 * convWeight: the padded x (Hp × Wp planes), dy, the C matrix [K, cols] per group and per
 * batch slice of `sliceImages` images (the slice's transposed weight gradient), the blocks of
 * MC taps and of colBlock channels.
 */
export const WGT = bodyWords(
  [
    "src",
    "srcGroup",
    "imageStride",
    "Hp",
    "Wp",
    "KH",
    "KW",
    "Sh",
    "Sw",
    "outH",
    "outW",
    "images",
    "sliceImages",
    "dy",
    "dyGroup",
    "dyImageStride",
    "K",
    "cols",
    "c",
    "cGroup",
    "cSlice",
    "groups",
    "rowBlocks",
    "colBlocks",
    "colBlock",
    "mc",
  ] as const,
);

/** Task t of a convPad job. */
export function runPadTask(k: ConvKernels, job: Int32Array, t: number): void {
  const first = t * job[PAD.perTask], planes = Math.min(job[PAD.perTask], job[PAD.planes] - first);
  const H = job[PAD.H], W = job[PAD.W], padH = job[PAD.padH], padW = job[PAD.padW];
  const src = job[PAD.src] + 4 * first * H * W;
  const dst = job[PAD.dst] + 4 * first * (H + 2 * padH) * (W + 2 * padW);
  k.conv.pad(src, dst, planes, H, W, padH, padW);
}

/**
 * Task t of a convPixels job: below the barrier, one group's k-block of weights packed (the
 * weights of a group: element (col, k) at 4·(col·K + k) bytes); then one group's block of MC
 * output pixels.
 */
export function runPixelTask(k: ConvKernels, job: Int32Array, t: number, thread: number): void {
  const K = job[PIX.K], cols = job[PIX.cols], colsPadded = Math.ceil(cols / 8) * 8;
  const packTasks = job[HEADER.barrier], kBlocks = Math.ceil(K / KC);
  if (t < packTasks) {
    const group = Math.floor(t / kBlocks), k0 = (t % kBlocks) * KC;
    const weights = job[PIX.weights] + group * job[PIX.weightsGroup] + 4 * k0;
    const packed = job[PIX.packedB] + group * job[PIX.packedBGroup] + 4 * k0 * colsPadded;
    k.gemm.packB(weights, 4 * K, 4, cols, Math.min(KC, K - k0), packed);
    return;
  }
  const qBlocks = job[PIX.qBlocks], mc = job[PIX.mc];
  const group = Math.floor((t - packTasks) / qBlocks), q0 = ((t - packTasks) % qBlocks) * mc;
  const outW = job[PIX.outW], P = job[PIX.outH] * outW, M = job[PIX.images] * P;
  const rows = Math.min(mc, M - q0);
  const a = threadScratch(job, thread), c = a + 4 * mc * KC;
  const src = job[PIX.src] + group * job[PIX.srcGroup];
  const packedB = job[PIX.packedB] + group * job[PIX.packedBGroup];
  for (let k0 = 0; k0 < K; k0 += KC) {
    const kc = Math.min(KC, K - k0);
    const block = [a, src, q0, rows, k0, kc, job[PIX.imageStride], job[PIX.H], job[PIX.W]];
    block.push(job[PIX.KH], job[PIX.KW], job[PIX.Sh], job[PIX.Sw]);
    if (job[PIX.padded]) k.conv.packPixels(...block, P, outW);
    else {
      const general = [job[PIX.padH], job[PIX.padW], job[PIX.Dh], job[PIX.Dw]];
      k.conv.packPixelsGeneral(...block, ...general, P, outW);
    }
    k.gemm.macro(a, packedB + 4 * k0 * colsPadded, c, 4 * cols, rows, cols, kc, k0 > 0 ? 1 : 0);
  }
  const dst = job[PIX.dst] + group * job[PIX.dstGroup];
  const bias = job[PIX.bias] + group * job[PIX.biasGroup];
  const imageStride = job[PIX.dstImageStride];
  k.conv.scatter(c, 4 * cols, q0, rows, cols, dst, P, imageStride, bias, job[PIX.biasStep]);
}

/**
 * Task t of a convWeight job: one slice's block of MC taps × colBlock channels of one group,
 * over every pixel of the slice's images.
 */
export function runWeightTask(k: ConvKernels, job: Int32Array, t: number, thread: number): void {
  const rowBlocks = job[WGT.rowBlocks], perGroup = rowBlocks * job[WGT.colBlocks];
  const perSlice = perGroup * job[WGT.groups];
  const slice = Math.floor(t / perSlice), inSlice = t % perSlice;
  const group = Math.floor(inSlice / perGroup), r = inSlice % perGroup;
  const mc = job[WGT.mc],
    k0 = (r % rowBlocks) * mc,
    o0 = Math.floor(r / rowBlocks) * job[WGT.colBlock];
  const K = job[WGT.K], cols = job[WGT.cols];
  const rows = Math.min(mc, K - k0), blockCols = Math.min(job[WGT.colBlock], cols - o0);
  const outH = job[WGT.outH], outW = job[WGT.outW], P = outH * outW;
  const first = slice * job[WGT.sliceImages];
  const M = Math.min(job[WGT.sliceImages], job[WGT.images] - first) * P;
  const a = threadScratch(job, thread), b = a + 4 * mc * KC;
  const src = job[WGT.src] + 4 * first * job[WGT.imageStride] + group * job[WGT.srcGroup];
  const dy = job[WGT.dy] + 4 * first * job[WGT.dyImageStride] + group * job[WGT.dyGroup] +
    4 * o0 * P;
  const c = job[WGT.c] + slice * job[WGT.cSlice] + group * job[WGT.cGroup] + 4 * (k0 * cols + o0);
  for (let q0 = 0; q0 < M; q0 += KC) {
    const kc = Math.min(KC, M - q0);
    k.conv.packGrad(b, dy, q0, kc, blockCols, P, job[WGT.dyImageStride]);
    const taps = [job[WGT.imageStride], job[WGT.Hp], job[WGT.Wp], job[WGT.KH], job[WGT.KW]];
    k.conv.packTaps(a, src, k0, rows, q0, kc, ...taps, job[WGT.Sh], job[WGT.Sw], outH, outW);
    k.gemm.macro(a, b, c, 4 * cols, rows, blockCols, kc, q0 > 0 ? 1 : 0);
  }
}
