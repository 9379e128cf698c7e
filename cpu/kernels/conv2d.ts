/**
 * The fast float32 conv2d of the CPU backend: the three sums of `tensor/ops/conv2d.ts` (read
 * that file first: it has the math and the reference loops these kernels are proven against)
 * turned into matrix products on the WebAssembly gemm microkernels of `cpu/kernels/gemm_kernels.ts`.
 *
 * The file holds the TypeScript that drives the op's three fast kernels; the WebAssembly they
 * call (the packers and the scatter) is emitted by `conv2d_kernels.ts`, and the blocks the
 * threads share are run by `conv2d_tasks.ts`.
 *
 * Per group g (x_g: the group's C/G input channels, w_g: its O/G filters, K = C/G·KH·KW taps,
 * M = N·H'·W' output pixels of the whole batch), with col[q, k] the im2col matrix (row q an
 * output pixel, column k a tap (c, u, v), value x[n, c, i·sh − ph + u, j·sw − pw + v] or 0):
 *
 *     forward           Y_gᵀ [M, O/G] = col [M, K] · w_gᵀ [K, O/G]
 *     backward weight   dw_gᵀ [K, O/G] = colᵀ [K, M] · dY_gᵀ [M, O/G]
 *     backward input    dX_gᵀ [N·H·W, C/G] = col' [N·H·W, K'] · w'_g [K', C/G]
 *
 * The backward to the input is the forward convolution of dy with the kernel flipped and
 * transposed (w'[c, o, u, v] = w[o, c, KH−1−u, KW−1−v], K' = O/G·KH·KW), padding KH−1−ph, and dy
 * dilated by the stride (zeros between its pixels): no col2im scatter, no zero-filled buffer.
 * That product wastes its work in two cases, which take a product and a scatter instead
 * (`conv2dBackwardInputScatter`: dcol = w_gᵀ · dY_g, then col2im adds each tap into dx): a
 * strided layer, where all but one of every Sh·Sw dilated taps reads a hole, and a narrow one,
 * where C/G is below the microkernel's 8 columns (a first layer's input gradient: saliency
 * maps, adversarial examples; training never needs it).
 *
 * **im2col straight into packed panels.** col is never materialised. The source (x, or dy for
 * the input gradient) is first copied once into planes with zero borders (`pad`; a layer
 * without padding reads it where it is), so every tap is in range: `packPixels` then writes an
 * MC × KC block of col in the microkernel's panel order (MR pixels per depth step) with one load
 * per element, at the pixel's window corner plus the tap's offset (16-byte moves where a panel's
 * pixels are neighbours in a row of a stride-1 layer: then a tap's MR values are consecutive),
 * and `packTaps` writes colᵀ blocks (MR taps per depth step) for the weight gradient the same
 * way (four neighbouring pixels at once there, transposed in registers). Each element of col is
 * packed once per call; the weights are packed once per call with the gemm's own packer, by the
 * product's first tasks (one per group and k-block, on every thread). Where no padded copy fits
 * (the input gradient of a strided layer: dilation holes; or padding wider than the kernel)
 * `packPixelsGeneral` checks each tap and reads a zero kept at address 0 through `select`.
 *
 * The products run on the gemm module's `macro` (MR × 8 register tiles, edge tiles, fused
 * multiply-add where relaxed SIMD exists), sharing one `WebAssembly.Memory` with the packers:
 * the gemm engine's, whose thread pool runs the tasks of conv2d_tasks.ts (blocks of output
 * pixels; for the weight gradient blocks of taps × channels, each summed over a batch slice
 * in one fixed order, so every thread count gives the same bits). Outputs leave through `scatter` (forward, backward input: [pixel, channel]
 * tiles back to NCHW, plus the bias) or a transpose (weight gradient, small).  Operands that
 * live in the engine's memory (the cpu device's tensors) are read and written in place, others
 * copied in and out (operands.ts); the caller (cpu/backend.ts) has checked the array lengths.
 *
 * Accuracy: float32 sums (KC-long fused multiply-adds, then one float32 add per k-block), where
 * the reference sums in float64: see tests/cpu/conv2d.test.ts for the bound. The weight
 * gradient's depth is the whole batch (N·H'·W', growing with the input), so
 * {@link conv2dBackwardWeightWasm} runs it on batch slices of at most WEIGHT_DEPTH_BLOCK depth
 * (whole images) and adds the slices' float32 results in float64: no float32 running sum grows
 * with the batch.
 *
 * @module
 */

import type { Conv2dParams } from "../../backend/backend.ts";
import { type SimdTier, TILE } from "./gemm_kernels.ts";
import { engineFor, type GemmEngine } from "./gemm.ts";
import { KC, PAD, PIX, WGT } from "./conv2d_tasks.ts";
import { HEADER, KINDS, newJob, setWords, ZERO_AT } from "./tasks.ts";
import { placeOperands } from "./operands.ts";

/** Pixels (or taps) per packed A block, in MR-row panels: MC × KC floats stay in L2. */
const MC_PANELS = 20;
/** The fewest panels a pixel block is cut to when a small image leaves too few tasks. */
const MIN_PANELS = 4;
/** Tasks per thread a pixel product aims at: enough that no thread waits long for the last. */
const TASKS_PER_THREAD = 4;
/** Elements per convPad task (a few hundred KiB of copying: worth a thread's wake-up). */
const PAD_TASK_ELEMENTS = 1 << 16;

// ---------------------------------------------------------------------------------------------
// Memory and jobs

/**
 * The engine of `tier` (cpu/kernels/gemm.ts): the gemm and conv modules on one memory, and
 * its thread pool. Null while a browser compiles it (the backend then runs the reference).
 */
export function convEngine(tier: SimdTier): GemmEngine | null {
  return engineFor(tier);
}

function machine(tier: SimdTier): GemmEngine {
  const engine = engineFor(tier);
  if (engine === null) {
    throw new Error(
      `conv2d (wasm): the ${tier} kernels are still compiling; await setCpuOptions({})`,
    );
  }
  return engine;
}

/** Byte size rounded up to a 64-byte cache line. */
const line = (bytes: number) => Math.ceil(bytes / 64) * 64;

// ---------------------------------------------------------------------------------------------
// The three kernels

/**
 * The source of a pixel product: `src` (byte address of the group's first channel in image 0)
 * holds images of `imageStride` elements, planes H × W, read through KH × KW taps at stride
 * Sh × Sw. `padded`: the planes already carry their zero borders (packPixels); otherwise the
 * general packer applies padH × padW and the dilation Dh × Dw itself. `group`: bytes from one
 * group's first channel to the next's.
 */
interface Source {
  src: number;
  group: number;
  padded: boolean;
  imageStride: number;
  H: number;
  W: number;
  KH: number;
  KW: number;
  Sh: number;
  Sw: number;
  padH: number;
  padW: number;
  Dh: number;
  Dw: number;
}

/** What a pixel product computes, for every group, and where its output goes. */
interface PixelProduct {
  groups: number;
  /** Output grid: outH × outW pixels per image, `images` images. */
  outH: number;
  outW: number;
  images: number;
  /** Taps per output pixel (K) and output channels of a group (cols). */
  K: number;
  cols: number;
  /**
   * Byte address of group 0's weights, [cols, K] (element (col, k) at 4·(col·K + k)), and bytes
   * from one group's to the next's; where they go packed (one group's follow every K·cols8
   * floats), packed by the job's first tasks.
   */
  weights: number;
  weightsGroup: number;
  packedB: number;
  /** Output: group 0's first channel, bytes between groups, image stride (elements). */
  dst: number;
  dstGroup: number;
  dstImageStride: number;
  /** Bias of group 0's first channel, bytes per channel (0 reads a zero), bytes per group. */
  bias: number;
  biasStep: number;
  biasGroup: number;
}

/** Scratch bytes one thread needs for a pixel product with `cols` output channels. */
const pixelScratch = (tier: SimdTier, cols: number) => {
  const mc = TILE[tier].mr * MC_PANELS;
  return line(4 * (mc * KC + mc * cols));
};

/**
 * Pixels per task of a product over M pixels: MC_PANELS panels, or on several threads fewer
 * (down to MIN_PANELS) when whole blocks would leave fewer than TASKS_PER_THREAD tasks per
 * thread (a 13 × 13 map at batch 1 is two blocks). A block only shares out the work: each
 * output's sum runs in the same order whatever the block, so the bits do not change.
 */
function pixelBlock(m: GemmEngine, M: number, groups: number): number {
  const mr = TILE[m.tier].mr;
  if (m.threads === 1) return mr * MC_PANELS;
  const blocks = Math.ceil((TASKS_PER_THREAD * m.threads) / groups);
  const panels = Math.ceil(Math.ceil(M / mr) / blocks);
  return mr * Math.min(MC_PANELS, Math.max(MIN_PANELS, panels));
}

/**
 * out[pixel, col] = Σ_k col[pixel, k] · B[k, col] for every group, one task per group and
 * block of MC pixels (conv2d_tasks.ts), scattered to NCHW. `scratch`: the threads' spaces of
 * {@link pixelScratch} bytes each.
 */
function pixelProduct(m: GemmEngine, s: Source, g: PixelProduct, scratch: number) {
  const M = g.images * g.outH * g.outW, mc = pixelBlock(m, M, g.groups);
  const qBlocks = Math.ceil(M / mc), packTasks = g.groups * Math.ceil(g.K / KC);
  const job = newJob(
    KINDS.convPixels,
    packTasks + g.groups * qBlocks,
    scratch,
    pixelScratch(m.tier, g.cols),
  );
  job[HEADER.barrier] = packTasks;
  const values: Record<keyof typeof PIX, number> = {
    src: s.src,
    padded: s.padded ? 1 : 0,
    imageStride: s.imageStride,
    H: s.H,
    W: s.W,
    KH: s.KH,
    KW: s.KW,
    Sh: s.Sh,
    Sw: s.Sw,
    padH: s.padH,
    padW: s.padW,
    Dh: s.Dh,
    Dw: s.Dw,
    outH: g.outH,
    outW: g.outW,
    images: g.images,
    K: g.K,
    cols: g.cols,
    weights: g.weights,
    packedB: g.packedB,
    dst: g.dst,
    dstImageStride: g.dstImageStride,
    bias: g.bias,
    biasStep: g.biasStep,
    srcGroup: s.group,
    weightsGroup: g.weightsGroup,
    packedBGroup: 4 * g.K * Math.ceil(g.cols / 8) * 8,
    dstGroup: g.dstGroup,
    biasGroup: g.biasGroup,
    qBlocks,
    mc,
  };
  setWords(job, PIX, values);
  m.run(job, 2 * M * g.K * g.cols * g.groups);
}

/**
 * Copies the `planes` H × W planes at `at.raw` into zero-bordered planes at `at.padded` (a
 * convPad job, split over the threads).
 */
function pad(
  m: GemmEngine,
  planes: number,
  H: number,
  W: number,
  padH: number,
  padW: number,
  at: { raw: number; padded: number },
) {
  const perTask = Math.max(1, Math.floor(PAD_TASK_ELEMENTS / (H * W)));
  const job = newJob(KINDS.convPad, Math.ceil(planes / perTask));
  const values = { src: at.raw, dst: at.padded, planes, H, W, padH, padW, perTask };
  setWords(job, PAD, values);
  m.run(job, 8 * planes * (H + 2 * padH) * (W + 2 * padW));
}

/**
 * y = conv2d(x, weight) + bias on the wasm kernels of `tier`; same contract as
 * `conv2dForwardCpu` for float32 arrays.
 */
export function conv2dForwardWasm(
  x: Float32Array,
  weight: Float32Array,
  bias: Float32Array | null,
  p: Conv2dParams,
  y: Float32Array,
  tier: SimdTier,
): void {
  const m = machine(tier);
  const inGroup = p.c / p.groups, outGroup = p.o / p.groups;
  const K = inGroup * p.kh * p.kw, P = p.outH * p.outW;
  const [Hp, Wp] = [p.h + 2 * p.padH, p.w + 2 * p.padW];
  const packedGroup = K * Math.ceil(outGroup / 8) * 8;
  const unpadded = p.padH === 0 && p.padW === 0;
  const { at, finish } = placeOperands(m, "conv2d", {
    raw: { read: x, length: p.n * p.c * p.h * p.w },
    padded: unpadded ? 0 : p.n * p.c * Hp * Wp,
    w: { read: weight, length: p.o * K },
    bias: bias ? { read: bias, length: p.o } : 0,
    y: { write: y, length: p.n * p.o * P },
    packedB: p.groups * packedGroup,
    scratch: (m.scratchSpaces * pixelScratch(tier, outGroup)) / 4,
  });
  if (!unpadded) pad(m, p.n * p.c, p.h, p.w, p.padH, p.padW, at);
  const source: Source = {
    src: unpadded ? at.raw : at.padded,
    group: 4 * inGroup * Hp * Wp,
    padded: true,
    imageStride: p.c * Hp * Wp,
    H: Hp,
    W: Wp,
    KH: p.kh,
    KW: p.kw,
    Sh: p.strideH,
    Sw: p.strideW,
    padH: 0,
    padW: 0,
    Dh: 1,
    Dw: 1,
  };
  pixelProduct(m, source, {
    groups: p.groups,
    outH: p.outH,
    outW: p.outW,
    images: p.n,
    K,
    cols: outGroup,
    weights: at.w,
    weightsGroup: 4 * outGroup * K,
    packedB: at.packedB,
    dst: at.y,
    dstGroup: 4 * outGroup * P,
    dstImageStride: p.o * P,
    bias: bias ? at.bias : ZERO_AT,
    biasStep: bias ? 4 : 0,
    biasGroup: bias ? 4 * outGroup : 0,
  }, at.scratch);
  finish();
}

/** How {@link conv2dBackwardInputWasm} computes dx; "auto" picks by the layer's shape. */
export type BackwardInputMethod = "auto" | "dilated" | "scatter";

/**
 * dx = ∂L/∂x from dy and the weight on the wasm kernels of `tier`: the forward convolution of
 * dy (dilated by the stride) with w' (flipped, transposed), or for strided and narrow layers a
 * product and a scatter; see the module comment. `method` forces one (tests prove both on
 * every shape). Same contract as `conv2dBackwardInputCpu` for float32 arrays.
 */
export function conv2dBackwardInputWasm(
  dy: Float32Array,
  weight: Float32Array,
  p: Conv2dParams,
  dx: Float32Array,
  tier: SimdTier,
  method: BackwardInputMethod = "auto",
): void {
  const inGroup = p.c / p.groups, outGroup = p.o / p.groups;
  const wasteful = p.strideH > 1 || p.strideW > 1 || inGroup < TILE[tier].nr;
  const m = machine(tier);
  if (method === "scatter" || (method === "auto" && wasteful)) {
    return conv2dBackwardInputScatter(dy, weight, p, dx, m);
  }
  const taps = p.kh * p.kw, K = outGroup * taps, P = p.outH * p.outW;
  // dy is read with padding KH − 1 − padH: pad it once when that is a real padding and no
  // stride dilates it; otherwise the general packer skips the holes and the borders itself.
  const [padH, padW] = [p.kh - 1 - p.padH, p.kw - 1 - p.padW];
  const padded = p.strideH === 1 && p.strideW === 1 && padH >= 0 && padW >= 0;
  const [Hp, Wp] = padded ? [p.outH + 2 * padH, p.outW + 2 * padW] : [p.outH, p.outW];
  const packedGroup = K * Math.ceil(inGroup / 8) * 8;
  const { at, finish } = placeOperands(m, "conv2d", {
    raw: { read: dy, length: p.n * p.o * P },
    padded: padded ? p.n * p.o * Hp * Wp : 0,
    flipped: p.groups * inGroup * K,
    dx: { write: dx, length: p.n * p.c * p.h * p.w },
    packedB: p.groups * packedGroup,
    scratch: (m.scratchSpaces * pixelScratch(tier, inGroup)) / 4,
  });
  if (padded) pad(m, p.n * p.o, p.outH, p.outW, padH, padW, at);
  const flipped = new Float32Array(m.memory.buffer, at.flipped, p.groups * inGroup * K);
  for (let group = 0; group < p.groups; group++) {
    // w'[c, o, u, v] = w[o, c, KH−1−u, KW−1−v] for this group's filters.
    for (let c = 0; c < inGroup; c++) {
      for (let o = 0; o < outGroup; o++) {
        const from = ((group * outGroup + o) * inGroup + c) * taps + taps - 1;
        const to = ((group * inGroup + c) * outGroup + o) * taps;
        for (let t = 0; t < taps; t++) flipped[to + t] = weight[from - t];
      }
    }
  }
  const source: Source = {
    src: padded ? at.padded : at.raw,
    group: 4 * outGroup * Hp * Wp,
    padded,
    imageStride: p.o * Hp * Wp,
    H: Hp,
    W: Wp,
    KH: p.kh,
    KW: p.kw,
    Sh: 1,
    Sw: 1,
    padH,
    padW,
    Dh: p.strideH,
    Dw: p.strideW,
  };
  pixelProduct(m, source, {
    groups: p.groups,
    outH: p.h,
    outW: p.w,
    images: p.n,
    K,
    cols: inGroup,
    weights: at.flipped,
    weightsGroup: 4 * inGroup * K,
    packedB: at.packedB,
    dst: at.dx,
    dstGroup: 4 * inGroup * p.h * p.w,
    dstImageStride: p.c * p.h * p.w,
    bias: ZERO_AT,
    biasStep: 0,
    biasGroup: 0,
  }, at.scratch);
  finish();
}

/**
 * dx as a product and a scatter (col2im), per image n and group g, with K = C/G·KH·KW taps and
 * P = H'·W' pixels:
 *
 *     dcol [K, P] = w_gᵀ [K, O/G] · dy_ng [O/G, P]
 *     dx[n, c, i·Sh − padH + u, j·Sw − padW + v] += dcol[(c, u, v), (i, j)]   (inside the image)
 *
 * Every multiply-add is a useful one (no dilation holes), and the product is K rows by P
 * columns however few channels the input has.
 */
function conv2dBackwardInputScatter(
  dy: Float32Array,
  weight: Float32Array,
  p: Conv2dParams,
  dx: Float32Array,
  engine: GemmEngine,
): void {
  const inGroup = p.c / p.groups, outGroup = p.o / p.groups;
  const K = inGroup * p.kh * p.kw, P = p.outH * p.outW, plane = p.h * p.w;
  const dcol = new Float32Array(K * P);
  dx.fill(0, 0, p.n * p.c * plane);
  for (let n = 0; n < p.n; n++) {
    for (let g = 0; g < p.groups; g++) {
      engine.gemm({
        transA: true,
        transB: false,
        m: K,
        n: P,
        k: outGroup,
        a: weight,
        aOffset: g * outGroup * K,
        lda: K,
        b: dy,
        bOffset: (n * p.o + g * outGroup) * P,
        ldb: P,
        c: dcol,
        cOffset: 0,
        ldc: P,
        accumulate: false,
      });
      scatterTaps(dcol, dx, (n * p.c + g * inGroup) * plane, inGroup, p);
    }
  }
}

/** col2im: adds tap row (c, u, v) of dcol to the pixels of channel c it read in the forward. */
function scatterTaps(
  dcol: Float32Array,
  dx: Float32Array,
  base: number,
  channels: number,
  p: Conv2dParams,
): void {
  const P = p.outH * p.outW, plane = p.h * p.w;
  for (let c = 0; c < channels; c++) {
    for (let u = 0; u < p.kh; u++) {
      for (let v = 0; v < p.kw; v++) {
        const row = ((c * p.kh + u) * p.kw + v) * P;
        // Output columns j whose input column j·Sw − padW + v lies in [0, W).
        const j0 = Math.max(0, Math.ceil((p.padW - v) / p.strideW));
        const j1 = Math.min(p.outW, Math.floor((p.w - 1 + p.padW - v) / p.strideW) + 1);
        for (let i = 0; i < p.outH; i++) {
          const y = i * p.strideH - p.padH + u;
          if (y < 0 || y >= p.h) continue;
          const from = row + i * p.outW, to = base + c * plane + y * p.w - p.padW + v;
          for (let j = j0; j < j1; j++) dx[to + j * p.strideW] += dcol[from + j];
        }
      }
    }
  }
}

/**
 * dw = ∂L/∂weight from dy and x on the wasm kernels of `tier`: dw_gᵀ = colᵀ · dY_gᵀ with the
 * batch as the depth. The batch is cut into slices of whole images, at most
 * {@link WEIGHT_DEPTH_BLOCK} output pixels deep (one image when an image is deeper); each task
 * is one slice's block of MC taps by a block of channels of one group (conv2d_tasks.ts), summed
 * over the slice in float32 in one fixed order, into the slice's own copy of C; the slices'
 * results are then added in float64, in slice order. One job for the whole batch, so every
 * thread count gives the same bits. Same contract as `conv2dBackwardWeightCpu` for float32
 * arrays.
 */
export function conv2dBackwardWeightWasm(
  dy: Float32Array,
  x: Float32Array,
  p: Conv2dParams,
  dw: Float32Array,
  tier: SimdTier,
): void {
  const m = machine(tier);
  const inGroup = p.c / p.groups, outGroup = p.o / p.groups;
  const K = inGroup * p.kh * p.kw, P = p.outH * p.outW, M = p.n * P;
  const sliceImages = Math.max(1, Math.floor(WEIGHT_DEPTH_BLOCK / Math.max(1, P)));
  const slices = Math.max(1, Math.ceil(p.n / sliceImages)), cLength = p.groups * K * outGroup;
  const [Hp, Wp] = [p.h + 2 * p.padH, p.w + 2 * p.padW];
  const mc = TILE[tier].mr * MC_PANELS, rowBlocks = Math.ceil(K / mc);
  // Enough tasks to keep several threads busy: split the channels when the slices and taps
  // are few (each block of channels packs its taps again). The split depends on the shape
  // alone, and no split changes any sum's order.
  const panels = Math.ceil(outGroup / 8);
  const wanted = Math.min(panels, Math.max(1, Math.ceil(8 / (slices * p.groups * rowBlocks))));
  const colBlock = Math.ceil(panels / wanted) * 8, colBlocks = Math.ceil(outGroup / colBlock);
  const scratchBytes = line(4 * (mc * KC + KC * colBlock));
  const unpadded = p.padH === 0 && p.padW === 0;
  const { at, finish } = placeOperands(m, "conv2d", {
    raw: { read: x, length: p.n * p.c * p.h * p.w },
    padded: unpadded ? 0 : p.n * p.c * Hp * Wp,
    dy: { read: dy, length: p.n * p.o * P },
    c: slices * cLength,
    scratch: (m.scratchSpaces * scratchBytes) / 4,
  });
  if (!unpadded) pad(m, p.n * p.c, p.h, p.w, p.padH, p.padW, at);
  const c = new Float32Array(m.memory.buffer, at.c, slices * cLength);
  if (M === 0) c.fill(0);
  const tasks = slices * p.groups * rowBlocks * colBlocks;
  const job = newJob(KINDS.convWeight, tasks, at.scratch, scratchBytes);
  const values: Record<keyof typeof WGT, number> = {
    src: unpadded ? at.raw : at.padded,
    srcGroup: 4 * inGroup * Hp * Wp,
    imageStride: p.c * Hp * Wp,
    Hp,
    Wp,
    KH: p.kh,
    KW: p.kw,
    Sh: p.strideH,
    Sw: p.strideW,
    outH: p.outH,
    outW: p.outW,
    images: p.n,
    sliceImages,
    dy: at.dy,
    dyGroup: 4 * outGroup * P,
    dyImageStride: p.o * P,
    K,
    cols: outGroup,
    c: at.c,
    cGroup: 4 * K * outGroup,
    cSlice: 4 * cLength,
    groups: p.groups,
    rowBlocks,
    colBlocks,
    colBlock,
    mc,
  };
  setWords(job, WGT, values);
  m.run(job, 2 * M * K * p.o);
  finish();
  // dw[group·O/G + o, k] = Σ over slices, in order and in float64, of C_slice,group[k, o]
  const cView = new Float32Array(m.memory.buffer, at.c, slices * cLength);
  for (let group = 0; group < p.groups; group++) {
    const from = group * K * outGroup;
    for (let o = 0; o < outGroup; o++) {
      const row = (group * outGroup + o) * K;
      for (let k = 0; k < K; k++) {
        const cell = from + k * outGroup + o;
        if (slices === 1) {
          dw[row + k] = cView[cell];
          continue;
        }
        let total = 0;
        for (let slice = 0; slice < slices; slice++) total += cView[slice * cLength + cell];
        dw[row + k] = total;
      }
    }
  }
}

/**
 * The longest weight-gradient depth (N·H'·W' of one slice) summed in float32 before a float64
 * partial sum; a single image deeper than this is one slice of its own.
 */
export const WEIGHT_DEPTH_BLOCK = 4096;
