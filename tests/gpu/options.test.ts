/**
 * The GPU kernels of the new options (contract in backend/backend.ts): conv2d dilation
 * (forward, input and weight gradients) and pooling windows that reach past the padded input
 * (ceilMode) with average pooling's countIncludePad, each against a float64 loop written here
 * from the definitions (PyTorch's), at the kernel level: the ops layer that passes the options
 * is the semantics branch's.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Conv2dParams, Pool2dParams, Storage } from "../../backend/backend.ts";
import type { GpuBackend } from "../../gpu/backend.ts";
import type { GpuStorage } from "../../gpu/runtime.ts";
import {
  conv2dBackwardInputGpu,
  conv2dBackwardWeightGpu,
  conv2dForwardGpu,
} from "../../gpu/kernels/conv2d.ts";
import {
  avgPool2dBackwardGpu,
  avgPool2dForwardGpu,
  maxPool2dForwardGpu,
} from "../../gpu/kernels/pool2d.ts";
import { gpuTest } from "../support/gpu_helpers.ts";
import { assertClose } from "../support/close.ts";

function wave(length: number, phase: number): Float32Array {
  return Float32Array.from({ length }, (_, i) => Math.sin(i * 0.917 + phase));
}

async function read(gpu: GpuBackend, s: Storage): Promise<Float32Array | Int32Array> {
  const values = await gpu.read(s) as Float32Array | Int32Array;
  gpu.free(s);
  return values;
}

// ---- conv2d dilation ---------------------------------------------------------------------

interface ConvShape {
  n: number;
  c: number;
  h: number;
  w: number;
  o: number;
  k: [number, number];
  stride: [number, number];
  pad: [number, number];
  dilation: [number, number];
  groups: number;
}

function convParams(s: ConvShape): Conv2dParams {
  const out = (size: number, k: number, stride: number, pad: number, d: number) =>
    Math.floor((size + 2 * pad - d * (k - 1) - 1) / stride) + 1;
  return {
    n: s.n,
    c: s.c,
    h: s.h,
    w: s.w,
    o: s.o,
    kh: s.k[0],
    kw: s.k[1],
    strideH: s.stride[0],
    strideW: s.stride[1],
    padH: s.pad[0],
    padW: s.pad[1],
    groups: s.groups,
    outH: out(s.h, s.k[0], s.stride[0], s.pad[0], s.dilation[0]),
    outW: out(s.w, s.k[1], s.stride[1], s.pad[1], s.dilation[1]),
    dilationH: s.dilation[0],
    dilationW: s.dilation[1],
  };
}

/** y, dx and dw of a dilated conv2d in float64, straight from the definition. */
function convReference(p: Conv2dParams, x: Float32Array, w: Float32Array, dy: Float32Array) {
  const inPerGroup = p.c / p.groups, outPerGroup = p.o / p.groups;
  const y = new Float64Array(p.n * p.o * p.outH * p.outW);
  const dx = new Float64Array(x.length), dw = new Float64Array(w.length);
  for (let n = 0; n < p.n; n++) {
    for (let o = 0; o < p.o; o++) {
      const g = Math.floor(o / outPerGroup);
      for (let i = 0; i < p.outH; i++) {
        for (let j = 0; j < p.outW; j++) {
          const out = ((n * p.o + o) * p.outH + i) * p.outW + j;
          for (let c = 0; c < inPerGroup; c++) {
            for (let a = 0; a < p.kh; a++) {
              for (let b = 0; b < p.kw; b++) {
                const row = i * p.strideH - p.padH + a * p.dilationH;
                const col = j * p.strideW - p.padW + b * p.dilationW;
                if (row < 0 || row >= p.h || col < 0 || col >= p.w) continue;
                const at = ((n * p.c + g * inPerGroup + c) * p.h + row) * p.w + col;
                const tap = ((o * inPerGroup + c) * p.kh + a) * p.kw + b;
                y[out] += w[tap] * x[at];
                dx[at] += w[tap] * dy[out];
                dw[tap] += x[at] * dy[out];
              }
            }
          }
        }
      }
    }
  }
  return { y, dx, dw };
}

const convShapes: ConvShape[] = [
  {
    n: 2,
    c: 3,
    h: 9,
    w: 11,
    o: 4,
    k: [3, 3],
    stride: [1, 1],
    pad: [2, 2],
    dilation: [2, 2],
    groups: 1,
  },
  {
    n: 1,
    c: 4,
    h: 12,
    w: 10,
    o: 6,
    k: [3, 2],
    stride: [2, 1],
    pad: [1, 0],
    dilation: [3, 2],
    groups: 2,
  },
];

gpuTest("conv2d kernels with dilation match a float64 loop", async (gpu) => {
  const rt = gpu.runtime;
  for (const shape of convShapes) {
    const p = convParams(shape);
    const x = wave(p.n * p.c * p.h * p.w, 1), w = wave(p.o * (p.c / p.groups) * p.kh * p.kw, 2);
    const dy = wave(p.n * p.o * p.outH * p.outW, 3);
    const ref = convReference(p, x, w, dy);
    const [xg, wg, dyg] = [x, w, dy].map((a) => gpu.fromArray(a) as GpuStorage);
    const what = JSON.stringify(shape);
    const tolerance = { rtol: 1e-5, atol: 1e-5 };
    assertClose(await read(gpu, conv2dForwardGpu(rt, xg, wg, null, p)), ref.y, {
      ...tolerance,
      what: `${what}: y`,
    });
    assertClose(await read(gpu, conv2dBackwardInputGpu(rt, dyg, wg, p)), ref.dx, {
      ...tolerance,
      what: `${what}: dx`,
    });
    assertClose(await read(gpu, conv2dBackwardWeightGpu(rt, dyg, xg, p)), ref.dw, {
      ...tolerance,
      what: `${what}: dw`,
    });
    for (const s of [xg, wg, dyg]) gpu.free(s);
  }
});

// ---- pooling: windows past the padded input (ceilMode), countIncludePad ----------------------

/** Pool2dParams with PyTorch's ceilMode output size (PLAN.md). */
function poolParams(
  [n, c, h, w]: number[],
  k: number,
  stride: number,
  pad: number,
  countIncludePad: boolean,
): Pool2dParams {
  const out = (size: number) => {
    let o = Math.ceil((size + 2 * pad - k) / stride) + 1;
    if ((o - 1) * stride >= size + pad) o--;
    return o;
  };
  return {
    n,
    c,
    h,
    w,
    kh: k,
    kw: k,
    strideH: stride,
    strideW: stride,
    padH: pad,
    padW: pad,
    outH: out(h),
    outW: out(w),
    countIncludePad,
  };
}

/** Max (first maximum, its index) and average pooling in float64, PyTorch's divisor. */
function poolReference(p: Pool2dParams, x: Float32Array, dy: Float32Array) {
  const outSize = p.n * p.c * p.outH * p.outW;
  const max = new Float64Array(outSize), argmax = new Int32Array(outSize);
  const avg = new Float64Array(outSize), dx = new Float64Array(x.length);
  for (let plane = 0; plane < p.n * p.c; plane++) {
    for (let i = 0; i < p.outH; i++) {
      for (let j = 0; j < p.outW; j++) {
        const out = (plane * p.outH + i) * p.outW + j;
        const hs = i * p.strideH - p.padH, ws = j * p.strideW - p.padW;
        const he = Math.min(hs + p.kh, p.h + p.padH), we = Math.min(ws + p.kw, p.w + p.padW);
        const poolSize = (he - hs) * (we - ws);
        const [r0, r1] = [Math.max(hs, 0), Math.min(he, p.h)];
        const [c0, c1] = [Math.max(ws, 0), Math.min(we, p.w)];
        const divisor = p.countIncludePad ? poolSize : (r1 - r0) * (c1 - c0);
        let best = -Infinity, bestAt = -1, total = 0;
        for (let r = r0; r < r1; r++) {
          for (let q = c0; q < c1; q++) {
            const v = x[(plane * p.h + r) * p.w + q];
            total += v;
            if (v > best) [best, bestAt] = [v, r * p.w + q];
          }
        }
        [max[out], argmax[out], avg[out]] = [best, bestAt, total / divisor];
        for (let r = r0; r < r1; r++) {
          for (let q = c0; q < c1; q++) dx[(plane * p.h + r) * p.w + q] += dy[out] / divisor;
        }
      }
    }
  }
  return { max, argmax, avg, dx };
}

gpuTest("pooling clips ceilMode windows; avg divisor follows countIncludePad", async (gpu) => {
  const rt = gpu.runtime;
  const cases: [number[], number, number, number][] = [
    [[2, 3, 7, 7], 3, 2, 1], // ceil: the last window starts at row 5 and reaches row 8
    [[1, 2, 6, 9], 2, 2, 1], // ceil adds a window starting in the right padding? no: clipped
    [[1, 1, 5, 5], 3, 3, 0], // the last window overlaps the input by 2 of 3 rows
  ];
  for (const [shape, k, stride, pad] of cases) {
    for (const countIncludePad of [true, false]) {
      const p = poolParams(shape, k, stride, pad, countIncludePad);
      const x = wave(shape.reduce((a, b) => a * b), 4);
      const dy = wave(p.n * p.c * p.outH * p.outW, 5);
      const ref = poolReference(p, x, dy);
      const xg = gpu.fromArray(x) as GpuStorage, dyg = gpu.fromArray(dy) as GpuStorage;
      const what = `${shape} k${k} s${stride} p${pad} countIncludePad=${countIncludePad}`;
      const tolerance = { rtol: 1e-5, atol: 1e-6 };
      const pooled = maxPool2dForwardGpu(rt, xg, p);
      assertClose(await read(gpu, pooled.y), ref.max, { ...tolerance, what: `${what}: max` });
      assert.deepEqual(await read(gpu, pooled.argmax), ref.argmax, `${what}: argmax`);
      assertClose(await read(gpu, avgPool2dForwardGpu(rt, xg, p)), ref.avg, {
        ...tolerance,
        what: `${what}: avg`,
      });
      assertClose(await read(gpu, avgPool2dBackwardGpu(rt, dyg, p)), ref.dx, {
        ...tolerance,
        what: `${what}: avg backward`,
      });
      gpu.free(xg);
      gpu.free(dyg);
    }
  }
});
