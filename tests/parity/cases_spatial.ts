/**
 * The parity tables of the spatial ops: conv2d, pooling and LRN (the dense ops' cases are in
 * cases_dense.ts). Each op family has one table of geometries; the builders turn a row into an
 * op-level case (run on every device against the reference by devices.test.ts, which checks the
 * forward output and every input gradient). conv2d has one table for everything: the same rows
 * check the reference loops against the definition (tests/ops/conv2d.test.ts), the WebAssembly
 * kernels per SIMD tier (tests/cpu/conv2d.test.ts) and the WGSL kernels directly, also with a
 * binding limit small enough to split the batch into chunks (tests/gpu/spatial.test.ts).
 *
 * Shapes are small and do not divide the kernels' blocking (4 output channels × 4 columns per
 * invocation, 64 invocations per workgroup). Tolerances: a conv output or gradient is a sum of
 * up to a few thousand products in a different order on each side, so rtol 1e-4 / atol 1e-5
 * (float32 rounding grows with the number of terms); pooling is exact up to one division;
 * LRN adds pow(), whose float32 result differs from the CPU's float64 by a few ulp.
 *
 * Pure data and builder functions (no Deno API, no test harness): a browser page runs the same
 * tables.
 *
 * @module
 */

import type { Tensor } from "../../tensor/tensor.ts";
import type { InputSpec, ParityCase } from "./cases_dense.ts";
import { conv2d } from "../../tensor/ops/conv2d.ts";
import { adaptiveAvgPool2d, avgPool2d, maxPool2d } from "../../tensor/ops/pool.ts";
import { localResponseNorm, type LrnAlphaScaling } from "../../tensor/ops/lrn.ts";
import { affine } from "../../tensor/ops/elementwise.ts";

const f = (...shape: number[]): InputSpec => ({ shape });
/** Sums of many products (convolutions). */
export const SUMS = { rtol: 1e-4, atol: 1e-5 };
/** pow() in float32 on the GPU against float64 on the CPU. */
const POW = { rtol: 2e-4, atol: 2e-5 };

/** x·3 makes |x| up to 3, so alpha·Σx² is comparable to k and the normalizer matters. */
export const LRN_INPUT_SCALE = 3;
const big = (x: Tensor) => affine(x, LRN_INPUT_SCALE, 0);

type Shape4 = [number, number, number, number];

// ---- conv2d ---------------------------------------------------------------------------------

/** One conv2d geometry. */
export interface ConvCase {
  /** Names the case in failures. */
  name: string;
  /** Input shape [N, C, H, W]. */
  x: Shape4;
  /** Weight shape [O, C/groups, KH, KW]. */
  w: Shape4;
  /** Stride (default 1). */
  stride?: number | [number, number];
  /** Padding (default 0). */
  padding?: number | [number, number];
  /** Channel groups (default 1). */
  groups?: number;
  /** Dilation (default 1). */
  dilation?: number | [number, number];
  /** Whether a bias [O] is added. */
  bias: boolean;
}

/** Batch 1 and 3, groups 1 and 2, strides 1, 2 and 4, padding 0/1/2, with and without bias. */
export const convCases: ConvCase[] = [
  { name: "3x3 pad 1 bias, batch 1", x: [1, 3, 7, 9], w: [5, 3, 3, 3], padding: 1, bias: true },
  { name: "3x3 pad 0 no bias, batch 3", x: [3, 4, 6, 5], w: [6, 4, 3, 3], bias: false },
  {
    name: "groups 2, 3x2 pad [2,0]",
    x: [3, 4, 6, 5],
    w: [6, 2, 3, 2],
    padding: [2, 0],
    groups: 2,
    bias: true,
  },
  {
    name: "groups 2, 3x2 pad [2,0], no bias",
    x: [3, 4, 6, 5],
    w: [6, 2, 3, 2],
    padding: [2, 0],
    groups: 2,
    bias: false,
  },
  {
    name: "11x11 stride 4 pad 2 (AlexNet conv1, 23x23)",
    x: [2, 3, 23, 23],
    w: [7, 3, 11, 11],
    stride: 4,
    padding: 2,
    bias: true,
  },
  {
    name: "11x11 stride 4 pad 0, batch 1",
    x: [1, 3, 23, 23],
    w: [4, 3, 11, 11],
    stride: 4,
    bias: false,
  },
  {
    name: "11x11 stride 2 pad 1, batch 3",
    x: [3, 3, 19, 17],
    w: [5, 3, 11, 11],
    stride: 2,
    padding: 1,
    bias: true,
  },
  { name: "11x11 stride 2 pad 0", x: [2, 3, 19, 17], w: [4, 3, 11, 11], stride: 2, bias: false },
  {
    name: "stride [2,3] pad [1,2]",
    x: [2, 2, 8, 8],
    w: [3, 2, 3, 3],
    stride: [2, 3],
    padding: [1, 2],
    bias: true,
  },
  {
    name: "stride [2,3] pad [1,2], batch 1",
    x: [1, 2, 8, 8],
    w: [3, 2, 3, 3],
    stride: [2, 3],
    padding: [1, 2],
    bias: true,
  },
  {
    name: "AlexNet conv2 (groups 2, 5x5 pad 2), small",
    x: [2, 8, 9, 9],
    w: [10, 4, 5, 5],
    padding: 2,
    groups: 2,
    bias: true,
  },
  {
    name: "groups 2, 5x5 pad 2, 3 channels per group",
    x: [2, 6, 9, 8],
    w: [10, 3, 5, 5],
    padding: 2,
    groups: 2,
    bias: true,
  },
  {
    name: "AlexNet conv4 (groups 2, 3x3 pad 1), small",
    x: [3, 12, 6, 6],
    w: [12, 6, 3, 3],
    padding: 1,
    groups: 2,
    bias: true,
  },
  // Padding past KH − 1: the transposed convolution's padding is negative.
  { name: "2x2 pad 2 (past KH − 1)", x: [1, 2, 4, 5], w: [3, 2, 2, 2], padding: 2, bias: false },
  { name: "5x5 pad 2, one channel", x: [2, 1, 12, 12], w: [9, 1, 5, 5], padding: 2, bias: true },
  // A 4x3 kernel: the weight gradient's last group of kernel rows is partial.
  { name: "4x3 kernel pad 1", x: [2, 3, 9, 10], w: [5, 3, 4, 3], padding: 1, bias: true },
  // Rows wider than one 8-column strip, with strides 2 and 4.
  {
    name: "stride 2, rows wider than a strip (8 columns)",
    x: [1, 2, 9, 40],
    w: [3, 2, 3, 3],
    stride: 2,
    padding: 1,
    bias: true,
  },
  {
    name: "stride 2, 21x40",
    x: [1, 2, 21, 40],
    w: [3, 2, 3, 3],
    stride: 2,
    padding: 1,
    bias: true,
  },
  { name: "stride 4, 11x47", x: [2, 3, 11, 47], w: [5, 3, 11, 11], stride: 4, bias: false },
  { name: "1x1", x: [2, 5, 4, 3], w: [7, 5, 1, 1], bias: false },
  // The blocking of the WebAssembly kernels (MR = 6 or 4, NR = 8, KC = 256, MC = 20·MR pixels):
  // depth over KC, more pixels than MC, odd filters per group (run per SIMD tier by
  // tests/cpu/conv2d.test.ts as well).
  {
    name: "batch 3, groups 2, stride 2, pad 0",
    x: [3, 6, 11, 10],
    w: [10, 3, 3, 3],
    stride: 2,
    groups: 2,
    bias: true,
  },
  {
    name: "11x11 stride 4 pad 2 (conv1-like, depth over KC)",
    x: [3, 5, 27, 23],
    w: [13, 5, 11, 11],
    stride: 4,
    padding: 2,
    bias: true,
  },
  {
    name: "groups 2, 5x5 pad 2, 13 filters per group, depth over KC",
    x: [1, 34, 9, 9],
    w: [26, 17, 5, 5],
    padding: 2,
    groups: 2,
    bias: true,
  },
  { name: "1x1 pointwise, batch 3", x: [3, 7, 5, 6], w: [9, 7, 1, 1], bias: true },
  { name: "1x1 pointwise groups 5", x: [1, 5, 3, 3], w: [5, 1, 1, 1], groups: 5, bias: true },
  {
    name: "kernel covers the whole padded input",
    x: [3, 3, 4, 5],
    w: [4, 3, 5, 6],
    padding: 1,
    bias: true,
  },
  {
    name: "padding wider than the kernel",
    x: [3, 2, 5, 5],
    w: [3, 2, 1, 1],
    padding: 2,
    bias: true,
  },
  {
    name: "mixed stride and padding, 3x2 kernel",
    x: [3, 3, 10, 9],
    w: [7, 3, 3, 2],
    stride: [2, 1],
    padding: [1, 2],
    bias: true,
  },
  {
    name: "many pixel blocks (M = 675 > MC, > KC)",
    x: [3, 4, 15, 15],
    w: [20, 4, 3, 3],
    padding: 1,
    bias: true,
  },
  {
    name: "groups 2, stride 2, pad 1, batch 1",
    x: [1, 6, 9, 8],
    w: [4, 3, 3, 3],
    stride: 2,
    padding: 1,
    groups: 2,
    bias: true,
  },
  // dilation (PyTorch's `dilation`): taps spaced apart
  {
    name: "3x3 dilation 2 pad 2",
    x: [2, 3, 9, 8],
    w: [4, 3, 3, 3],
    padding: 2,
    dilation: 2,
    bias: true,
  },
  {
    name: "3x2 dilation [2,3] stride 2 groups 2",
    x: [1, 4, 11, 12],
    w: [6, 2, 3, 2],
    stride: 2,
    padding: [1, 2],
    groups: 2,
    dilation: [2, 3],
    bias: false,
  },
];

/**
 * Batches of 16 whose tensors, under a 64 KiB binding limit, span several bindings (x of one
 * sample is 3·23·23·4 = 6.3 KB): run by tests/gpu/spatial.test.ts on such a device.
 */
export const convChunkedCases: ConvCase[] = [
  { name: "chunked 5x5", x: [16, 3, 23, 23], w: [8, 3, 5, 5], padding: 2, bias: true },
  {
    name: "chunked 11x11 stride 4 groups 2",
    x: [16, 4, 23, 23],
    w: [6, 2, 11, 11],
    stride: 4,
    padding: 1,
    groups: 2,
    bias: false,
  },
  // (C/g)·KH·KW < 64: the weight gradient reads dy in place, at a chunk's unaligned offset.
  {
    name: "chunked 3x3, dy read in place",
    x: [16, 2, 23, 23],
    w: [5, 2, 3, 3],
    padding: 1,
    bias: false,
  },
];

/** The op-level parity case of a conv2d geometry. */
export function convParityCase(c: ConvCase): ParityCase {
  const { stride = 1, padding = 0, groups = 1, dilation = 1 } = c;
  return {
    name: `conv2d ${c.name}`,
    inputs: [f(...c.x), f(...c.w), ...(c.bias ? [f(c.w[0])] : [])],
    fn: (x, w, b) => conv2d(x, w, b ?? null, { stride, padding, groups, dilation }),
    ...SUMS,
  };
}

// ---- pooling --------------------------------------------------------------------------------

/** One pooling window geometry, run as max and as average pooling. */
export interface PoolCase {
  /** Input shape [N, C, H, W]. */
  shape: Shape4;
  /** Window size. */
  kernel: number;
  /** Stride. */
  stride: number;
  /** Padding. */
  padding: number;
}

/** Overlapping and plain windows, padding, batch 1 and more. */
export const poolCases: PoolCase[] = [
  { shape: [2, 3, 13, 13], kernel: 3, stride: 2, padding: 0 }, // AlexNet's overlapping pooling
  { shape: [1, 2, 9, 7], kernel: 3, stride: 2, padding: 1 },
  { shape: [3, 2, 8, 10], kernel: 2, stride: 2, padding: 0 },
  { shape: [1, 1, 11, 11], kernel: 5, stride: 3, padding: 2 },
  { shape: [2, 3, 11, 9], kernel: 3, stride: 2, padding: 1 },
  { shape: [1, 4, 6, 6], kernel: 2, stride: 2, padding: 0 },
];

/** A batch spanning several 64 KiB bindings, for tests/gpu/spatial.test.ts. */
export const poolChunkedCase: PoolCase = {
  shape: [9, 8, 27, 27],
  kernel: 3,
  stride: 2,
  padding: 0,
};

/** Names a pooling geometry. */
export function poolName(c: PoolCase): string {
  return `${c.shape.join("x")} ${c.kernel}x${c.kernel}/${c.stride} pad ${c.padding}`;
}

/** The op-level parity cases of a pooling geometry: max and average pooling. */
export function poolParityCases(c: PoolCase): ParityCase[] {
  const options = { kernelSize: c.kernel, stride: c.stride, padding: c.padding };
  return [
    { name: `maxPool2d ${poolName(c)}`, inputs: [f(...c.shape)], fn: (x) => maxPool2d(x, options) },
    { name: `avgPool2d ${poolName(c)}`, inputs: [f(...c.shape)], fn: (x) => avgPool2d(x, options) },
  ];
}

/** Pooling options: windows past the padded input (ceilMode), padding outside the divisor. */
export const poolOptionCases: ParityCase[] = [
  {
    name: "maxPool2d ceilMode 2x3x10x9 3x3/2",
    inputs: [f(2, 3, 10, 9)],
    fn: (x) => maxPool2d(x, { kernelSize: 3, stride: 2, ceilMode: true }),
  },
  {
    name: "avgPool2d ceilMode pad 1 2x2x8x7 3x3/2",
    inputs: [f(2, 2, 8, 7)],
    fn: (x) => avgPool2d(x, { kernelSize: 3, stride: 2, padding: 1, ceilMode: true }),
  },
  {
    name: "avgPool2d countIncludePad false pad 1 1x3x7x6 3x3/2",
    inputs: [f(1, 3, 7, 6)],
    fn: (x) => avgPool2d(x, { kernelSize: 3, stride: 2, padding: 1, countIncludePad: false }),
  },
  {
    name: "avgPool2d ceilMode, countIncludePad false 2x2x9x10 [3,2]/[2,3] pad 1",
    inputs: [f(2, 2, 9, 10)],
    fn: (x) =>
      avgPool2d(x, {
        kernelSize: [3, 2],
        stride: [2, 3],
        padding: 1,
        ceilMode: true,
        countIncludePad: false,
      }),
  },
];

/** Adaptive average pooling: an input shape and the output size [outH, outW]. */
export interface AdaptivePoolCase {
  /** Input shape [N, C, H, W]. */
  shape: Shape4;
  /** Output height and width. */
  out: [number, number];
}

/** Overlapping bins, identity, bins of one row, more bins than rows. */
export const adaptivePoolCases: AdaptivePoolCase[] = [
  { shape: [2, 3, 7, 7], out: [3, 3] },
  { shape: [2, 4, 6, 6], out: [6, 6] },
  { shape: [2, 3, 6, 6], out: [6, 6] },
  { shape: [1, 2, 13, 10], out: [6, 4] },
  { shape: [2, 3, 13, 10], out: [6, 4] },
  { shape: [2, 3, 5, 3], out: [7, 2] },
];

/** The op-level parity case of an adaptive pooling geometry. */
export function adaptivePoolParityCase(c: AdaptivePoolCase): ParityCase {
  return {
    name: `adaptiveAvgPool2d ${c.shape.join("x")}→${c.out.join("x")}`,
    inputs: [f(...c.shape)],
    fn: (x) => adaptiveAvgPool2d(x, c.out),
  };
}

// ---- LRN ------------------------------------------------------------------------------------

/** One local response normalization (paper section 3.3), applied to x·{@link LRN_INPUT_SCALE}. */
export interface LrnCase {
  /** Input shape [N, C, H, W]. */
  shape: Shape4;
  /** Channels in the window. */
  size: number;
  /** alpha, in the convention of `alphaScaling`. */
  alpha: number;
  /** Exponent (default 0.75). */
  beta?: number;
  /** Additive constant (default 2). */
  k?: number;
  /** "per-term": alpha multiplies each squared term (the kernels' own convention); "averaged": alpha / size does. */
  alphaScaling: LrnAlphaScaling;
}

/** Both alpha conventions, odd and even windows, a window of one. */
export const lrnCases: LrnCase[] = [
  { shape: [2, 7, 5, 6], size: 5, alpha: 0.5, alphaScaling: "averaged" },
  { shape: [2, 7, 5, 6], size: 5, alpha: 0.1, alphaScaling: "per-term" },
  { shape: [1, 6, 4, 3], size: 4, alpha: 0.4, beta: 0.75, k: 1, alphaScaling: "averaged" },
  { shape: [3, 5, 3, 3], size: 4, alpha: 0.1, alphaScaling: "per-term" },
  { shape: [2, 7, 5, 6], size: 4, alpha: 0.1, alphaScaling: "per-term" },
  { shape: [2, 7, 5, 6], size: 1, alpha: 0.1, alphaScaling: "per-term" },
];

/** Names an LRN case. */
export function lrnName(c: LrnCase): string {
  return `lrn ${c.shape.join("x")} size ${c.size} ${c.alphaScaling} alpha ${c.alpha}`;
}

/** The op-level parity case of an LRN case. */
export function lrnParityCase(c: LrnCase): ParityCase {
  const { size, alpha, beta = 0.75, k = 2, alphaScaling } = c;
  return {
    name: lrnName(c),
    inputs: [f(...c.shape)],
    fn: (x) => localResponseNorm(big(x), { size, alpha, beta, k, alphaScaling }),
    ...POW,
  };
}

/** conv2d's op-level cases. */
export const conv2dCases: ParityCase[] = convCases.map(convParityCase);

/** Pooling's op-level cases: max, average (with the options) and adaptive average pooling. */
export const poolingCases: ParityCase[] = [
  ...poolCases.flatMap(poolParityCases),
  ...poolOptionCases,
  ...adaptivePoolCases.map(adaptivePoolParityCase),
];

/** LRN's op-level cases. */
export const lrnParityCases: ParityCase[] = lrnCases.map(lrnParityCase);

/** The spatial ops' op-level cases. */
export const spatialCases: ParityCase[] = [...conv2dCases, ...poolingCases, ...lrnParityCases];
