/**
 * The CPU-vs-GPU parity table for the spatial ops: conv2d, pooling and LRN (the dense ops'
 * cases are in parity_cases.ts). One line per case; the runner (gpu_parity.test.ts) checks the
 * forward output and every input gradient.
 *
 * Shapes are small and do not divide the kernels' blocking (4 output channels × 4 columns per
 * invocation, 64 invocations per workgroup). Tolerances: a conv output or gradient is a sum of
 * up to a few thousand products in a different order on each side, so rtol 1e-4 / atol 1e-5
 * (float32 rounding grows with the number of terms); pooling is exact up to one division;
 * LRN adds pow(), whose float32 result differs from the CPU's float64 by a few ulp.
 *
 * @module
 */

import type { Tensor } from "../tensor/tensor.ts";
import type { InputSpec, ParityCase } from "./parity_cases.ts";
import { conv2d } from "../tensor/ops/conv2d.ts";
import { adaptiveAvgPool2d, avgPool2d, maxPool2d } from "../tensor/ops/pool.ts";
import { localResponseNorm } from "../tensor/ops/lrn.ts";
import { affine } from "../tensor/ops/elementwise.ts";

const f = (...shape: number[]): InputSpec => ({ shape });
/** Sums of many products (convolutions). */
const SUMS = { rtol: 1e-4, atol: 1e-5 };
/** pow() in float32 on the GPU against float64 on the CPU. */
const POW = { rtol: 2e-4, atol: 2e-5 };

/** x·3 makes |x| up to 3, so alpha·Σx² is comparable to k and the normalizer matters. */
const big = (x: Tensor) => affine(x, 3, 0);

/** The spatial ops' cases. */
export const spatialCases: ParityCase[] = [
  // conv2d: batch 1 and 3, groups 1 and 2, strides 1, 2 and 4, padding 0/1/2, with and without bias
  {
    name: "conv2d 3x3 pad 1 bias, batch 1",
    inputs: [f(1, 3, 7, 9), f(5, 3, 3, 3), f(5)],
    fn: (x, w, b) => conv2d(x, w, b, { padding: 1 }),
    ...SUMS,
  },
  {
    name: "conv2d 3x3 pad 0 no bias, batch 3",
    inputs: [f(3, 4, 6, 5), f(6, 4, 3, 3)],
    fn: (x, w) => conv2d(x, w),
    ...SUMS,
  },
  {
    name: "conv2d groups 2, 3x2 pad [2,0]",
    inputs: [f(3, 4, 6, 5), f(6, 2, 3, 2), f(6)],
    fn: (x, w, b) => conv2d(x, w, b, { padding: [2, 0], groups: 2 }),
    ...SUMS,
  },
  {
    name: "conv2d 11x11 stride 4 pad 2 (AlexNet conv1, 23x23)",
    inputs: [f(2, 3, 23, 23), f(7, 3, 11, 11), f(7)],
    fn: (x, w, b) => conv2d(x, w, b, { stride: 4, padding: 2 }),
    ...SUMS,
  },
  {
    name: "conv2d 11x11 stride 4 pad 0, batch 1",
    inputs: [f(1, 3, 23, 23), f(4, 3, 11, 11)],
    fn: (x, w) => conv2d(x, w, null, { stride: 4 }),
    ...SUMS,
  },
  {
    name: "conv2d 11x11 stride 2 pad 1, batch 3",
    inputs: [f(3, 3, 19, 17), f(5, 3, 11, 11), f(5)],
    fn: (x, w, b) => conv2d(x, w, b, { stride: 2, padding: 1 }),
    ...SUMS,
  },
  {
    name: "conv2d stride [2,3] pad [1,2]",
    inputs: [f(2, 2, 8, 8), f(3, 2, 3, 3), f(3)],
    fn: (x, w, b) => conv2d(x, w, b, { stride: [2, 3], padding: [1, 2] }),
    ...SUMS,
  },
  {
    name: "conv2d AlexNet conv2 (groups 2, 5x5 pad 2), small",
    inputs: [f(2, 8, 9, 9), f(10, 4, 5, 5), f(10)],
    fn: (x, w, b) => conv2d(x, w, b, { padding: 2, groups: 2 }),
    ...SUMS,
  },
  {
    name: "conv2d AlexNet conv4 (groups 2, 3x3 pad 1), small",
    inputs: [f(3, 12, 6, 6), f(12, 6, 3, 3), f(12)],
    fn: (x, w, b) => conv2d(x, w, b, { padding: 1, groups: 2 }),
    ...SUMS,
  },
  {
    name: "conv2d stride 2, rows wider than a strip (8 columns)",
    inputs: [f(1, 2, 9, 40), f(3, 2, 3, 3), f(3)],
    fn: (x, w, b) => conv2d(x, w, b, { stride: 2, padding: 1 }),
    ...SUMS,
  },
  {
    name: "conv2d 1x1",
    inputs: [f(2, 5, 4, 3), f(7, 5, 1, 1)],
    fn: (x, w) => conv2d(x, w),
    ...SUMS,
  },
  // pooling
  {
    name: "maxPool2d 3x3/2 overlapping, 13x13",
    inputs: [f(2, 3, 13, 13)],
    fn: (x) => maxPool2d(x, { kernelSize: 3, stride: 2 }),
  },
  {
    name: "maxPool2d 3x3/2 pad 1, 9x7, batch 1",
    inputs: [f(1, 2, 9, 7)],
    fn: (x) => maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 }),
  },
  {
    name: "maxPool2d 2x2 default stride, batch 3",
    inputs: [f(3, 2, 8, 10)],
    fn: (x) => maxPool2d(x, { kernelSize: 2 }),
  },
  {
    name: "avgPool2d 3x3/2 pad 1",
    inputs: [f(2, 3, 11, 9)],
    fn: (x) => avgPool2d(x, { kernelSize: 3, stride: 2, padding: 1 }),
  },
  { name: "avgPool2d 2x2", inputs: [f(1, 4, 6, 6)], fn: (x) => avgPool2d(x, { kernelSize: 2 }) },
  {
    name: "adaptiveAvgPool2d 7→3 (overlapping bins)",
    inputs: [f(2, 3, 7, 7)],
    fn: (x) => adaptiveAvgPool2d(x, 3),
  },
  {
    name: "adaptiveAvgPool2d 6→6 (identity)",
    inputs: [f(2, 4, 6, 6)],
    fn: (x) => adaptiveAvgPool2d(x, 6),
  },
  {
    name: "adaptiveAvgPool2d 13x10→[6,4]",
    inputs: [f(1, 2, 13, 10)],
    fn: (x) => adaptiveAvgPool2d(x, [6, 4]),
  },
  // LRN (paper section 3.3): both alpha conventions, odd and even windows
  {
    name: "lrn size 5 averaged",
    inputs: [f(2, 7, 5, 6)],
    fn: (x) => localResponseNorm(big(x), { size: 5, alpha: 0.5 }),
    ...POW,
  },
  {
    name: "lrn size 5 per-term",
    inputs: [f(2, 7, 5, 6)],
    fn: (x) => localResponseNorm(big(x), { size: 5, alpha: 0.1, alphaScaling: "per-term" }),
    ...POW,
  },
  {
    name: "lrn size 4 averaged",
    inputs: [f(1, 6, 4, 3)],
    fn: (x) => localResponseNorm(big(x), { size: 4, alpha: 0.4, beta: 0.75, k: 1 }),
    ...POW,
  },
  {
    name: "lrn size 4 per-term",
    inputs: [f(3, 5, 3, 3)],
    fn: (x) => localResponseNorm(big(x), { size: 4, alpha: 0.1, alphaScaling: "per-term" }),
    ...POW,
  },
];
