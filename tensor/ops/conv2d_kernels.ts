/**
 * CPU kernels for 2-D convolution, NCHW, PyTorch conventions (cross-correlation, no kernel
 * flip in the forward pass).
 *
 * Shapes: x [N, C, H, W], weight [O, C/G, KH, KW], bias [O], y [N, O, H', W'] with
 *
 *     H' = floor((H + 2·padH − KH) / strideH) + 1          (W' likewise)
 *     y[n, o, i, j] = bias[o] + Σ_{c ∈ group(o), u, v} w[o, c, u, v] · x[n, c, i·sh − ph + u, j·sw − pw + v]
 *
 * where group(o) is the slice of C/G input channels that output channel o sees (G = groups;
 * AlexNet's conv2, conv4 and conv5 use G = 2, the trace of its two-GPU split).
 *
 * ## Forward as a matrix product (im2col)
 *
 * For one image and one group, unfold the input into a column matrix
 * col [C/G·KH·KW, H'·W']: row (c, u, v), column (i, j) holds x[c, i·sh − ph + u, j·sw − pw + v]
 * (zero where that falls in the padding). Then the convolution is one gemm:
 *
 *     y_g [O/G, H'·W'] = W_g [O/G, C/G·KH·KW] · col [C/G·KH·KW, H'·W']
 *
 * ## Backward
 *
 * The forward is linear in x and in W, so each gradient is the adjoint of one of the two
 * factors above.
 *
 * - **dW (a correlation of x with dy).** dy_g = W_g · col, so dW_g = dy_g · colᵀ, summed over
 *   the images of the batch: dW[o, c, u, v] = Σ_{n, i, j} dy[n, o, i, j] · x[n, c, i·sh − ph + u,
 *   j·sw − pw + v], i.e. x correlated with dy used as a kernel dilated by the stride.
 * - **dx (a transposed convolution).** dcol = W_gᵀ · dy_g gives the gradient of every entry of
 *   col; each input pixel appeared in col once per (u, v) window that covered it, so col2im
 *   scatters dcol back and sums the copies. Written as a convolution, that is dy with
 *   (stride − 1) zeros inserted between its pixels (the stride becomes a dilation of the input),
 *   padded by K − 1 − pad, and correlated with the kernel flipped in u and v and transposed in
 *   (o, c); col2im computes exactly this without materialising the zeros.
 * - **dbias** = Σ_{n, i, j} dy[n, o, i, j].
 *
 * Every kernel takes Float32Array or Float64Array (float64 for finite-difference checks) and
 * allocates its scratch in the same type; the gemm underneath is {@link gemm}.
 *
 * @module
 */

import type { Conv2dParams } from "../../backend/backend.ts";
import { type FloatArray, gemm } from "./gemm.ts";

/**
 * Validates a conv2d call and derives its sizes. `xShape` is [N, C, H, W], `wShape` is
 * [O, C/groups, KH, KW]; `stride` and `padding` are one number for both axes or [h, w].
 * Throws an error naming the offending argument and value.
 */
export function conv2dParams(
  xShape: readonly number[],
  wShape: readonly number[],
  stride: number | readonly [number, number] = 1,
  padding: number | readonly [number, number] = 0,
  groups = 1,
): Conv2dParams {
  const shapeText = (shape: readonly number[]) => `[${shape.join(",")}]`;
  const isCount = (value: number) => Number.isInteger(value) && value >= 0;
  if (xShape.length !== 4 || !xShape.every(isCount)) {
    throw new RangeError(`conv2d: input must have shape [N, C, H, W], got ${shapeText(xShape)}`);
  }
  if (wShape.length !== 4 || !wShape.every(isCount)) {
    throw new RangeError(
      `conv2d: weight must have shape [O, C/groups, KH, KW], got ${shapeText(wShape)}`,
    );
  }
  const [strideH, strideW] = typeof stride === "number" ? [stride, stride] : stride;
  if (!(Number.isInteger(strideH) && strideH > 0 && Number.isInteger(strideW) && strideW > 0)) {
    throw new RangeError(`conv2d: stride must be positive integers, got ${strideH}x${strideW}`);
  }
  const [padH, padW] = typeof padding === "number" ? [padding, padding] : padding;
  if (!(isCount(padH) && isCount(padW))) {
    throw new RangeError(`conv2d: padding must be non-negative integers, got ${padH}x${padW}`);
  }
  if (!(Number.isInteger(groups) && groups > 0)) {
    throw new RangeError(`conv2d: groups must be a positive integer, got ${groups}`);
  }
  const [n, c, h, w] = xShape;
  const [o, channelsPerGroup, kh, kw] = wShape;
  if (c % groups !== 0) {
    throw new RangeError(`conv2d: groups=${groups} does not divide in_channels=${c}`);
  }
  if (o % groups !== 0) {
    throw new RangeError(`conv2d: groups=${groups} does not divide out_channels=${o}`);
  }
  if (channelsPerGroup !== c / groups) {
    throw new RangeError(
      `conv2d: weight ${shapeText(wShape)} expects ${channelsPerGroup} input channels per ` +
        `group, input ${shapeText(xShape)} has ${c / groups} (groups=${groups})`,
    );
  }
  if (kh === 0 || kw === 0) {
    throw new RangeError(`conv2d: kernel ${kh}x${kw} is empty (weight ${shapeText(wShape)})`);
  }
  const paddedH = h + 2 * padH;
  const paddedW = w + 2 * padW;
  if (kh > paddedH || kw > paddedW) {
    throw new RangeError(
      `conv2d: kernel ${kh}x${kw} is larger than padded input ${paddedH}x${paddedW}`,
    );
  }
  const outH = Math.floor((paddedH - kh) / strideH) + 1;
  const outW = Math.floor((paddedW - kw) / strideW) + 1;
  return { n, c, h, w, o, kh, kw, strideH, strideW, padH, padW, groups, outH, outW };
}

/**
 * y = conv2d(x, weight) + bias. x [N, C, H, W], weight [O, C/G, KH, KW], bias [O] or null,
 * out [N, O, H', W'] (overwritten). All arrays share one dtype.
 */
export function conv2dForward(
  x: FloatArray,
  weight: FloatArray,
  bias: FloatArray | null,
  p: Conv2dParams,
  out: FloatArray,
): void {
  checkLength("x", x, p.n * p.c * p.h * p.w);
  checkLength("weight", weight, p.o * (p.c / p.groups) * p.kh * p.kw);
  if (bias !== null) checkLength("bias", bias, p.o);
  checkLength("out", out, p.n * p.o * p.outH * p.outW);
  const { inGroup, outGroup, colRows, outPixels } = groupSizes(p);
  const direct = isPointwise(p);
  const col = direct ? x : scratch(x, colRows * outPixels);
  for (let image = 0; image < p.n; image++) {
    for (let group = 0; group < p.groups; group++) {
      const inChannel = image * p.c + group * inGroup;
      const outOffset = (image * p.o + group * outGroup) * outPixels;
      if (!direct) im2col(x, inChannel, inGroup, p, col);
      // y_g [outGroup, outPixels] = W_g [outGroup, colRows] · col [colRows, outPixels]
      gemm({
        transA: false,
        transB: false,
        m: outGroup,
        n: outPixels,
        k: colRows,
        a: weight,
        aOffset: group * outGroup * colRows,
        lda: colRows,
        b: col,
        bOffset: direct ? inChannel * outPixels : 0,
        ldb: outPixels,
        c: out,
        cOffset: outOffset,
        ldc: outPixels,
        accumulate: false,
      });
    }
    if (bias !== null) {
      for (let channel = 0; channel < p.o; channel++) {
        const start = (image * p.o + channel) * outPixels;
        const value = bias[channel];
        for (let i = start; i < start + outPixels; i++) out[i] += value;
      }
    }
  }
}

/**
 * dx = ∂L/∂x from dy = ∂L/∂y [N, O, H', W'] and weight: per image and group,
 * dcol = W_gᵀ · dy_g, then col2im. dx [N, C, H, W] is overwritten, or added to when
 * `accumulate` is true.
 */
export function conv2dBackwardInput(
  dy: FloatArray,
  weight: FloatArray,
  p: Conv2dParams,
  dx: FloatArray,
  accumulate = false,
): void {
  checkLength("dy", dy, p.n * p.o * p.outH * p.outW);
  checkLength("weight", weight, p.o * (p.c / p.groups) * p.kh * p.kw);
  checkLength("dx", dx, p.n * p.c * p.h * p.w);
  const { inGroup, outGroup, colRows, outPixels } = groupSizes(p);
  const direct = isPointwise(p);
  const dcol = direct ? dx : scratch(dx, colRows * outPixels);
  if (!accumulate && !direct) dx.fill(0, 0, p.n * p.c * p.h * p.w);
  for (let image = 0; image < p.n; image++) {
    for (let group = 0; group < p.groups; group++) {
      const inChannel = image * p.c + group * inGroup;
      // dcol [colRows, outPixels] = W_gᵀ [colRows, outGroup] · dy_g [outGroup, outPixels]
      gemm({
        transA: true,
        transB: false,
        m: colRows,
        n: outPixels,
        k: outGroup,
        a: weight,
        aOffset: group * outGroup * colRows,
        lda: colRows,
        b: dy,
        bOffset: (image * p.o + group * outGroup) * outPixels,
        ldb: outPixels,
        c: dcol,
        cOffset: direct ? inChannel * outPixels : 0,
        ldc: outPixels,
        accumulate: direct && accumulate,
      });
      if (!direct) col2im(dcol, inChannel, inGroup, p, dx);
    }
  }
}

/**
 * dW = ∂L/∂weight [O, C/G, KH, KW] from dy [N, O, H', W'] and x [N, C, H, W]: per image and
 * group, dW_g += dy_g · colᵀ, summed over the batch. dW is overwritten, or added to when
 * `accumulate` is true.
 */
export function conv2dBackwardWeight(
  dy: FloatArray,
  x: FloatArray,
  p: Conv2dParams,
  dw: FloatArray,
  accumulate = false,
): void {
  checkLength("dy", dy, p.n * p.o * p.outH * p.outW);
  checkLength("x", x, p.n * p.c * p.h * p.w);
  checkLength("dw", dw, p.o * (p.c / p.groups) * p.kh * p.kw);
  const { inGroup, outGroup, colRows, outPixels } = groupSizes(p);
  const direct = isPointwise(p);
  const col = direct ? x : scratch(x, colRows * outPixels);
  for (let image = 0; image < p.n; image++) {
    for (let group = 0; group < p.groups; group++) {
      const inChannel = image * p.c + group * inGroup;
      if (!direct) im2col(x, inChannel, inGroup, p, col);
      // dW_g [outGroup, colRows] += dy_g [outGroup, outPixels] · colᵀ [outPixels, colRows]
      gemm({
        transA: false,
        transB: true,
        m: outGroup,
        n: colRows,
        k: outPixels,
        a: dy,
        aOffset: (image * p.o + group * outGroup) * outPixels,
        lda: outPixels,
        b: col,
        bOffset: direct ? inChannel * outPixels : 0,
        ldb: outPixels,
        c: dw,
        cOffset: group * outGroup * colRows,
        ldc: colRows,
        accumulate: accumulate || image > 0,
      });
    }
  }
  if (p.n === 0 && !accumulate) dw.fill(0, 0, p.o * colRows);
}

/**
 * dbias[o] = Σ_{n, i, j} dy[n, o, i, j]. dbias [O] is overwritten, or added to when
 * `accumulate` is true.
 */
export function conv2dBackwardBias(
  dy: FloatArray,
  p: Conv2dParams,
  dbias: FloatArray,
  accumulate = false,
): void {
  checkLength("dy", dy, p.n * p.o * p.outH * p.outW);
  checkLength("dbias", dbias, p.o);
  const outPixels = p.outH * p.outW;
  for (let channel = 0; channel < p.o; channel++) {
    let sum = 0;
    for (let image = 0; image < p.n; image++) {
      const start = (image * p.o + channel) * outPixels;
      for (let i = start; i < start + outPixels; i++) sum += dy[i];
    }
    dbias[channel] = accumulate ? dbias[channel] + sum : sum;
  }
}

function groupSizes(p: Conv2dParams) {
  const inGroup = p.c / p.groups;
  return {
    inGroup,
    outGroup: p.o / p.groups,
    colRows: inGroup * p.kh * p.kw,
    outPixels: p.outH * p.outW,
  };
}

/** A 1x1 kernel with stride 1 and no padding: col is the input itself, so skip im2col. */
function isPointwise(p: Conv2dParams): boolean {
  return p.kh === 1 && p.kw === 1 && p.strideH === 1 && p.strideW === 1 && p.padH === 0 &&
    p.padW === 0;
}

function checkLength(name: string, array: FloatArray, expected: number): void {
  if (array.length < expected) {
    throw new RangeError(`conv2d: ${name} has ${array.length} elements, expected ${expected}`);
  }
}

// One column buffer per dtype, grown on demand: the kernels never re-enter each other, and
// the buffer of AlexNet's conv1 (363 x 3025 floats) is too big to reallocate per image.
let scratch32: Float32Array = new Float32Array(0);
let scratch64: Float64Array = new Float64Array(0);

function scratch(like: FloatArray, length: number): FloatArray {
  if (like instanceof Float32Array) {
    if (scratch32.length < length) scratch32 = new Float32Array(length);
    return scratch32;
  }
  if (scratch64.length < length) scratch64 = new Float64Array(length);
  return scratch64;
}

/**
 * Range of output columns j whose input column j·stride − pad + offset lies inside [0, size):
 * the padding is handled by zero-filling outside it instead of testing every pixel.
 */
function validRange(offset: number, pad: number, stride: number, size: number, out: number) {
  const first = Math.max(0, Math.ceil((pad - offset) / stride));
  const end = Math.min(out, Math.floor((size - 1 + pad - offset) / stride) + 1);
  return [first, Math.max(first, end)] as const;
}

/**
 * col[(c, u, v), (i, j)] = x[c, i·sh − ph + u, j·sw − pw + v] for the `channels` channels from
 * flat channel index `firstChannel` (image · C + channel), zero in the padding.
 */
function im2col(
  x: FloatArray,
  firstChannel: number,
  channels: number,
  p: Conv2dParams,
  col: FloatArray,
): void {
  const { h, w, kh, kw, strideH, strideW, padH, padW, outH, outW } = p;
  const outPixels = outH * outW;
  let row = 0;
  for (let channel = 0; channel < channels; channel++) {
    const plane = (firstChannel + channel) * h * w;
    for (let u = 0; u < kh; u++) {
      const [firstI, endI] = validRange(u, padH, strideH, h, outH);
      for (let v = 0; v < kw; v++, row++) {
        const [firstJ, endJ] = validRange(v, padW, strideW, w, outW);
        const rowStart = row * outPixels;
        col.fill(0, rowStart, rowStart + firstI * outW);
        col.fill(0, rowStart + endI * outW, rowStart + outPixels);
        for (let i = firstI; i < endI; i++) {
          const target = rowStart + i * outW;
          const source = plane + (i * strideH - padH + u) * w - padW + v;
          col.fill(0, target, target + firstJ);
          for (let j = firstJ; j < endJ; j++) col[target + j] = x[source + j * strideW];
          col.fill(0, target + endJ, target + outW);
        }
      }
    }
  }
}

/** The adjoint of {@link im2col}: dx[c, i·sh − ph + u, j·sw − pw + v] += dcol[(c, u, v), (i, j)]. */
function col2im(
  dcol: FloatArray,
  firstChannel: number,
  channels: number,
  p: Conv2dParams,
  dx: FloatArray,
): void {
  const { h, w, kh, kw, strideH, strideW, padH, padW, outH, outW } = p;
  const outPixels = outH * outW;
  let row = 0;
  for (let channel = 0; channel < channels; channel++) {
    const plane = (firstChannel + channel) * h * w;
    for (let u = 0; u < kh; u++) {
      const [firstI, endI] = validRange(u, padH, strideH, h, outH);
      for (let v = 0; v < kw; v++, row++) {
        const [firstJ, endJ] = validRange(v, padW, strideW, w, outW);
        const rowStart = row * outPixels;
        for (let i = firstI; i < endI; i++) {
          const source = rowStart + i * outW;
          const target = plane + (i * strideH - padH + u) * w - padW + v;
          for (let j = firstJ; j < endJ; j++) dx[target + j * strideW] += dcol[source + j];
        }
      }
    }
  }
}
