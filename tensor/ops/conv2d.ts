/**
 * 2-D convolution, NCHW, PyTorch conventions (cross-correlation: no kernel flip in the
 * forward pass). Shapes: x [N, C, H, W], weight [O, C/G, KH, KW], bias [O], y [N, O, H', W']:
 *
 *     H' = floor((H + 2·padH − dh·(KH − 1) − 1) / strideH) + 1          (W' likewise)
 *     y[n, o, i, j] = bias[o] + Σ_{c ∈ group(o), u, v} w[o, c, u, v] · x[n, c, i·sh − ph + u·dh, j·sw − pw + v·dw]
 *
 * where dh, dw are the dilations (default 1: neighbouring taps; 2 spreads the kernel's taps two
 * pixels apart, covering a (2·KH − 1)-tall window with KH·KW weights, PyTorch's `dilation`).
 *
 * where group(o) is the slice of C/G input channels that output channel o sees (G = groups;
 * AlexNet's conv2, conv4 and conv5 use G = 2, the trace of its two-GPU split, paper section
 * 3.2) and x is zero outside [0, H) × [0, W) (the padding).
 *
 * ## Backward
 *
 * y is linear in x and in w, and each product w[o, c, u, v] · x[n, c, y, x'] in the sum above
 * sends dy[n, o, i, j] to both factors' gradients:
 *
 * - **dx, a transposed convolution.** Input pixel (y, x') was read by output (i, j) through
 *   kernel tap (u, v) exactly when y = i·sh − ph + u·dh and x' = j·sw − pw + v·dw, so
 *
 *       dx[n, c, y, x'] = Σ_{o ∈ group(c), u, v} w[o, c, u, v] · dy[n, o, (y + ph − u·dh) / sh, (x' + pw − v·dw) / sw]
 *
 *   over the taps where both quotients are whole numbers inside the output. Seen as a
 *   convolution: dy with (stride − 1) zeros between its pixels, correlated with the kernel
 *   flipped in u and v and transposed in (o, c).
 * - **dw, a correlation of x with dy**, summed over the batch:
 *
 *       dw[o, c, u, v] = Σ_{n, i, j} dy[n, o, i, j] · x[n, c, i·sh − ph + u·dh, j·sw − pw + v·dw]
 *
 * - **dbias** = Σ_{n, i, j} dy[n, o, i, j]: the op computes it with `sum`.
 *
 * ## The kernels
 *
 * The kernels below (`*Cpu`) are the reference, run by the reference device "ref": the three
 * sums written as plain loops, each output element gathered in a float64 local and stored once.
 * They take Float32Array or Float64Array (float64 for finite-difference checks). They are the
 * oracle that the fast kernels are proven against: `cpu/kernels/conv2d.ts` (the same sums as
 * matrix products, im2col into packed panels and SIMD microkernels, run by the cpu device for
 * float32 without dilation) and `gpu/kernels/conv2d.ts` (WGSL). Error bound: each output is one
 * float64 sum of at most C/G·KH·KW (forward, backward input) or N·H'·W' (weight) products,
 * rounded once to the output type, so float32 results are within 2^-24 relative of the exact
 * float64 sum plus float64's n·2^-53 accumulation error.
 *
 * @module
 */

import type { Conv2dParams } from "../../backend/backend.ts";
import { Tensor, wrap } from "../tensor.ts";
import { formatShape } from "../shape.ts";
import { checkFloat, deviceOf, record } from "./op.ts";
import { sum } from "./reduce.ts";
import { checkArgument, checkOptions, declareOptions } from "../options.ts";

export type { Conv2dParams };

/** The element types the CPU kernels accept; all arrays of one call share one. */
export type FloatArray = Float32Array | Float64Array;

/**
 * Validates a conv2d call and derives its sizes. `xShape` is [N, C, H, W], `wShape` is
 * [O, C/groups, KH, KW]; `stride` and `padding` are one number for both axes or [h, w].
 * Throws an error naming the offending argument and value.
 *
 * @example
 * ```ts
 * const p = conv2dParams([8, 3, 227, 227], [96, 3, 11, 11], 4, 0, 1);
 * console.log(p.outH, p.outW); // 55 55
 * ```
 */
export function conv2dParams(
  xShape: readonly number[],
  wShape: readonly number[],
  stride: number | readonly [number, number] = 1,
  padding: number | readonly [number, number] = 0,
  groups = 1,
  dilation: number | readonly [number, number] = 1,
): Conv2dParams {
  checkArgument("conv2dParams", "xShape", xShape, "array");
  checkArgument("conv2dParams", "wShape", wShape, "array");
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
  const [dilationH, dilationW] = typeof dilation === "number" ? [dilation, dilation] : dilation;
  if (
    !(Number.isInteger(dilationH) && dilationH > 0 && Number.isInteger(dilationW) && dilationW > 0)
  ) {
    throw new RangeError(
      `conv2d: dilation must be positive integers, got ${dilationH}x${dilationW}`,
    );
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
  // The span a dilated kernel covers: dilation·(K − 1) + 1 input cells.
  const spanH = dilationH * (kh - 1) + 1, spanW = dilationW * (kw - 1) + 1;
  if (spanH > paddedH || spanW > paddedW) {
    const dilated = dilationH > 1 || dilationW > 1
      ? ` (kernel ${kh}x${kw} with dilation ${dilationH}x${dilationW})`
      : "";
    throw new RangeError(
      `conv2d: kernel ${spanH}x${spanW}${dilated} is larger than padded input ${paddedH}x${paddedW}`,
    );
  }
  const outH = Math.floor((paddedH - spanH) / strideH) + 1;
  const outW = Math.floor((paddedW - spanW) / strideW) + 1;
  return {
    n,
    c,
    h,
    w,
    o,
    kh,
    kw,
    strideH,
    strideW,
    padH,
    padW,
    groups,
    outH,
    outW,
    dilationH,
    dilationW,
  };
}

/** Throws unless every array of a conv2d kernel call holds at least as many values as `p` needs. */
export function checkConv2dArrays(p: Conv2dParams, arrays: Record<string, ArrayLike<number>>) {
  const expected: Record<string, number> = {
    x: p.n * p.c * p.h * p.w,
    dx: p.n * p.c * p.h * p.w,
    weight: p.o * (p.c / p.groups) * p.kh * p.kw,
    dw: p.o * (p.c / p.groups) * p.kh * p.kw,
    bias: p.o,
    y: p.n * p.o * p.outH * p.outW,
    dy: p.n * p.o * p.outH * p.outW,
  };
  for (const [name, array] of Object.entries(arrays)) {
    if (array.length < expected[name]) {
      throw new RangeError(
        `conv2d: ${name} has ${array.length} elements, expected ${expected[name]}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// CPU reference kernels

/**
 * CPU reference: y = conv2d(x, weight) + bias, the first sum of the module comment.
 * y [N, O, H', W'] is overwritten; `bias` may be null.
 */
export function conv2dForwardCpu(
  x: FloatArray,
  weight: FloatArray,
  bias: FloatArray | null,
  p: Conv2dParams,
  y: FloatArray,
): void {
  checkConv2dArrays(p, bias ? { x, weight, bias, y } : { x, weight, y });
  const { n: batch, c: channels, h, w, o: outChannels, kh, kw, outH, outW } = p;
  const inGroup = channels / p.groups, outGroup = outChannels / p.groups;
  for (let n = 0; n < batch; n++) {
    for (let o = 0; o < outChannels; o++) {
      const firstChannel = Math.floor(o / outGroup) * inGroup;
      for (let i = 0; i < outH; i++) {
        for (let j = 0; j < outW; j++) {
          let total = bias ? bias[o] : 0;
          for (let c = 0; c < inGroup; c++) {
            for (let u = 0; u < kh; u++) {
              const row = i * p.strideH - p.padH + u * p.dilationH;
              if (row < 0 || row >= h) continue;
              for (let v = 0; v < kw; v++) {
                const col = j * p.strideW - p.padW + v * p.dilationW;
                if (col < 0 || col >= w) continue;
                total += weight[((o * inGroup + c) * kh + u) * kw + v] *
                  x[((n * channels + firstChannel + c) * h + row) * w + col];
              }
            }
          }
          y[((n * outChannels + o) * outH + i) * outW + j] = total;
        }
      }
    }
  }
}

/**
 * CPU reference: dx = ∂L/∂x [N, C, H, W] (overwritten) from dy [N, O, H', W'] and the
 * weight, the transposed convolution of the module comment.
 */
export function conv2dBackwardInputCpu(
  dy: FloatArray,
  weight: FloatArray,
  p: Conv2dParams,
  dx: FloatArray,
): void {
  checkConv2dArrays(p, { dy, weight, dx });
  const { n: batch, c: channels, h, w, o: outChannels, kh, kw, outH, outW } = p;
  const inGroup = channels / p.groups, outGroup = outChannels / p.groups;
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < channels; c++) {
      const group = Math.floor(c / inGroup), cInGroup = c - group * inGroup;
      for (let row = 0; row < h; row++) {
        for (let col = 0; col < w; col++) {
          let total = 0;
          for (let o = group * outGroup; o < (group + 1) * outGroup; o++) {
            for (let u = 0; u < kh; u++) {
              const iTimesStride = row + p.padH - u * p.dilationH; // = i · strideH when tap u read this row
              const i = iTimesStride / p.strideH;
              if (iTimesStride < 0 || i >= outH || !Number.isInteger(i)) continue;
              for (let v = 0; v < kw; v++) {
                const jTimesStride = col + p.padW - v * p.dilationW;
                const j = jTimesStride / p.strideW;
                if (jTimesStride < 0 || j >= outW || !Number.isInteger(j)) continue;
                total += weight[((o * inGroup + cInGroup) * kh + u) * kw + v] *
                  dy[((n * outChannels + o) * outH + i) * outW + j];
              }
            }
          }
          dx[((n * channels + c) * h + row) * w + col] = total;
        }
      }
    }
  }
}

/**
 * CPU reference: dw = ∂L/∂weight [O, C/G, KH, KW] (overwritten) from dy [N, O, H', W'] and
 * x [N, C, H, W], the correlation of the module comment, summed over the batch.
 */
export function conv2dBackwardWeightCpu(
  dy: FloatArray,
  x: FloatArray,
  p: Conv2dParams,
  dw: FloatArray,
): void {
  checkConv2dArrays(p, { dy, x, dw });
  const { n: batch, c: channels, h, w, o: outChannels, kh, kw, outH, outW } = p;
  const inGroup = channels / p.groups, outGroup = outChannels / p.groups;
  for (let o = 0; o < outChannels; o++) {
    const firstChannel = Math.floor(o / outGroup) * inGroup;
    for (let c = 0; c < inGroup; c++) {
      for (let u = 0; u < kh; u++) {
        for (let v = 0; v < kw; v++) {
          let total = 0;
          for (let n = 0; n < batch; n++) {
            for (let i = 0; i < outH; i++) {
              const row = i * p.strideH - p.padH + u * p.dilationH;
              if (row < 0 || row >= h) continue;
              for (let j = 0; j < outW; j++) {
                const col = j * p.strideW - p.padW + v * p.dilationW;
                if (col < 0 || col >= w) continue;
                total += dy[((n * outChannels + o) * outH + i) * outW + j] *
                  x[((n * channels + firstChannel + c) * h + row) * w + col];
              }
            }
          }
          dw[((o * inGroup + c) * kh + u) * kw + v] = total;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Op

/** Options of {@link conv2d}. */
export interface Conv2dOptions {
  /** Step between windows, one number or [vertical, horizontal] (default 1). */
  stride?: number | readonly [number, number];
  /** Zero padding on each side, one number or [vertical, horizontal] (default 0). */
  padding?: number | readonly [number, number];
  /** Channel groups: input and output channels split into `groups` independent convolutions (default 1). */
  groups?: number;
  /** Spacing between kernel taps, one number or [vertical, horizontal] (default 1, PyTorch's `dilation`). */
  dilation?: number | readonly [number, number];
}

const CONV2D_KEYS = declareOptions<Conv2dOptions>()("conv2d", [
  "stride",
  "padding",
  "groups",
  "dilation",
]);

/**
 * 2-D convolution of x [N, C, H, W] with weight [O, C/groups, KH, KW] plus optional bias [O].
 *
 * @example Sums over windows
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2d, ones, tensor } from "../../mod.ts";
 *
 * // A 3x3 image and a 2x2 kernel of ones: each output is the sum of a 2x2 window.
 * const image = tensor([[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]]); // [N=1, C=1, H=3, W=3]
 * const kernel = ones([1, 1, 2, 2]); // [out=1, in=1, kH=2, kW=2]
 * const y = conv2d(image, kernel);
 * assert.deepEqual(y.shape, [1, 1, 2, 2]);
 * assert.deepEqual([...y.dataSync()], [12, 16, 24, 28]);
 * // Padding 1 keeps a 3x3 kernel's output at the input size.
 * assert.deepEqual(conv2d(image, ones([4, 1, 3, 3]), null, { padding: 1 }).shape, [1, 4, 3, 3]);
 * ```
 */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options?: Conv2dOptions,
): Tensor {
  const opts = checkOptions("conv2d", options, CONV2D_KEYS);
  if (bias !== null && bias !== undefined && !(bias instanceof Tensor)) {
    throw new TypeError(
      `conv2d: the third argument is the bias (a Tensor or null); options go fourth: conv2d(x, weight, null, ${
        JSON.stringify(bias)
      })`,
    );
  }
  bias ??= null;
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const backend = deviceOf("conv2d", ...inputs);
  for (const t of inputs) checkFloat("conv2d", t);
  for (const [name, t] of [["weight", weight], ["bias", bias]] as const) {
    if (t && t.dtype !== x.dtype) {
      throw new TypeError(
        `conv2d: the input is ${x.dtype} but the ${name} is ${t.dtype}; convert one with cast(x, "${t.dtype}")`,
      );
    }
  }
  if (x.rank !== 4) {
    throw new RangeError(`conv2d: input must be [N, C, H, W], got ${formatShape(x.shape)}`);
  }
  if (weight.rank !== 4) {
    throw new RangeError(
      `conv2d: weight must be [O, C/groups, KH, KW], got ${formatShape(weight.shape)}`,
    );
  }
  const p = conv2dParams(
    x.shape,
    weight.shape,
    opts.stride ?? 1,
    opts.padding ?? 0,
    opts.groups ?? 1,
    opts.dilation ?? 1,
  );
  if (bias && (bias.rank !== 1 || bias.shape[0] !== p.o)) {
    throw new RangeError(
      `conv2d: bias ${formatShape(bias.shape)} does not match ${p.o} output channels`,
    );
  }
  const y = wrap(backend.conv2dForward(x.storage, weight.storage, bias?.storage ?? null, p), [
    p.n,
    p.o,
    p.outH,
    p.outW,
  ]);
  return record("conv2d", y, inputs, (g) => [
    x.requiresGrad
      ? wrap(backend.conv2dBackwardInput(g.storage, weight.storage, p), x.shape)
      : null,
    weight.requiresGrad
      ? wrap(backend.conv2dBackwardWeight(g.storage, x.storage, p), weight.shape)
      : null,
    bias?.requiresGrad ? sum(g, [0, 2, 3]) : null,
  ]);
}
