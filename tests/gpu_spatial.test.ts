/**
 * Kernel-level tests of the spatial WGSL kernels (gpu/kernels/conv2d.ts, pool2d.ts, lrn.ts)
 * against the CPU reference kernels on the same data. The op-level CPU-vs-GPU comparison,
 * gradients included, is the parity table in tests/parity_cases_spatial.ts; these tests also
 * reach paths the table cannot: the batch chunking for tensors larger than one binding (run
 * here with a 64 KiB binding limit) and the split of the weight gradient over batch chunks.
 *
 * Skips with a message when no WebGPU adapter exists, except in CI (CI=true), where it fails.
 */

import assert from "node:assert/strict";
import type { Backend, Conv2dParams, Pool2dParams } from "../backend/backend.ts";
import { acquireRuntime } from "../gpu/device.ts";
import type { GpuRuntime, GpuStorage } from "../gpu/runtime.ts";
import {
  conv2dBackwardInputGpu,
  conv2dBackwardWeightGpu,
  conv2dForwardGpu,
} from "../gpu/kernels/conv2d.ts";
import {
  adaptiveAvgPool2dBackwardGpu,
  adaptiveAvgPool2dForwardGpu,
  avgPool2dBackwardGpu,
  avgPool2dForwardGpu,
  maxPool2dBackwardGpu,
  maxPool2dForwardGpu,
} from "../gpu/kernels/pool2d.ts";
import { lrnBackwardGpu, lrnForwardGpu } from "../gpu/kernels/lrn.ts";
import {
  conv2dBackwardInputCpu,
  conv2dBackwardWeightCpu,
  conv2dForwardCpu,
  conv2dParams,
} from "../tensor/ops/conv2d.ts";
import {
  adaptiveAvgPool2dBackwardCpu,
  adaptiveAvgPool2dForwardCpu,
  avgPool2dBackwardCpu,
  avgPool2dForwardCpu,
  maxPool2dBackwardCpu,
  maxPool2dForwardCpu,
  pool2dParams,
} from "../tensor/ops/pool.ts";
import { lrnBackwardCpu, lrnForwardCpu } from "../tensor/ops/lrn.ts";
import { Rng } from "../tensor/random.ts";

const hasGpu = typeof navigator !== "undefined" && navigator.gpu !== undefined &&
  (await navigator.gpu.requestAdapter()) !== null;
if (!hasGpu && Deno.env.get("CI") === "true") {
  throw new Error("gpu_spatial: CI=true but no WebGPU adapter");
}
if (!hasGpu) console.warn("gpu_spatial.test.ts: no WebGPU adapter, skipping");

/** Runtimes by binding limit, created lazily and shared by the tests of this file. */
const runtimes = new Map<number, Promise<GpuRuntime>>();
function runtime(maxBindingBytes = 0): Promise<GpuRuntime> {
  if (!runtimes.has(maxBindingBytes)) {
    runtimes.set(
      maxBindingBytes,
      acquireRuntime(maxBindingBytes ? { maxBindingBytes } : {}).then((rt) => {
        // Kernel-level tests need storages, not a Backend: any owner object will do.
        rt.backend = { name: "gpu-kernel-test" } as Backend;
        return rt;
      }),
    );
  }
  return runtimes.get(maxBindingBytes)!;
}

function gpuTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: !hasGpu, fn });
}

function upload(rt: GpuRuntime, data: Float32Array | Int32Array): GpuStorage {
  const storage = rt.alloc(data instanceof Int32Array ? "int32" : "float32", data.length);
  rt.write(storage, data);
  return storage;
}

async function download(rt: GpuRuntime, storage: GpuStorage): Promise<Float32Array | Int32Array> {
  const data = await rt.read(storage);
  rt.free(storage);
  await rt.checkErrors();
  return data;
}

function random(length: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length }, () => (rng.uniform() * 2 - 1) * scale);
}

function assertClose(
  what: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  rtol = 1e-4,
  atol = 1e-5,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= atol + rtol * Math.abs(want[i]))) {
      assert.fail(`${what}: element ${i}: gpu ${got[i]} vs cpu ${want[i]}`);
    }
  }
}

// ---- conv2d ---------------------------------------------------------------------------------

interface ConvCase {
  x: [number, number, number, number];
  w: [number, number, number, number];
  stride: number | [number, number];
  padding: number | [number, number];
  groups: number;
  bias: boolean;
}

const convCases: ConvCase[] = [
  { x: [1, 3, 7, 9], w: [5, 3, 3, 3], stride: 1, padding: 1, groups: 1, bias: true },
  { x: [3, 4, 6, 5], w: [6, 2, 3, 2], stride: 1, padding: [2, 0], groups: 2, bias: false },
  { x: [2, 3, 23, 23], w: [7, 3, 11, 11], stride: 4, padding: 2, groups: 1, bias: true },
  { x: [2, 3, 19, 17], w: [4, 3, 11, 11], stride: 2, padding: 0, groups: 1, bias: false },
  { x: [2, 6, 9, 8], w: [10, 3, 5, 5], stride: 1, padding: 2, groups: 2, bias: true },
  { x: [1, 2, 8, 8], w: [3, 2, 3, 3], stride: [2, 3], padding: [1, 2], groups: 1, bias: true },
  // Padding past KH − 1: the transposed convolution's padding is negative.
  { x: [1, 2, 4, 5], w: [3, 2, 2, 2], stride: 1, padding: 2, groups: 1, bias: false },
  { x: [2, 1, 12, 12], w: [9, 1, 5, 5], stride: 1, padding: 2, groups: 1, bias: true },
  // A 4x3 kernel: the weight gradient's last group of kernel rows is partial.
  { x: [2, 3, 9, 10], w: [5, 3, 4, 3], stride: 1, padding: 1, groups: 1, bias: true },
  // Rows wider than one 8-column strip, with strides 2 and 4.
  { x: [1, 2, 21, 40], w: [3, 2, 3, 3], stride: 2, padding: 1, groups: 1, bias: true },
  { x: [2, 3, 11, 47], w: [5, 3, 11, 11], stride: 4, padding: 0, groups: 1, bias: false },
];

async function checkConv(rt: GpuRuntime, c: ConvCase, label: string): Promise<void> {
  const p: Conv2dParams = conv2dParams(c.x, c.w, c.stride, c.padding, c.groups);
  const x = random(c.x.reduce((a, b) => a * b), 1), w = random(c.w.reduce((a, b) => a * b), 2);
  const bias = c.bias ? random(p.o, 3) : null;
  const dy = random(p.n * p.o * p.outH * p.outW, 4);
  const y = new Float32Array(dy.length),
    dx = new Float32Array(x.length),
    dw = new Float32Array(w.length);
  conv2dForwardCpu(x, w, bias, p, y);
  conv2dBackwardInputCpu(dy, w, p, dx);
  conv2dBackwardWeightCpu(dy, x, p, dw);
  const [xg, wg, dyg] = [upload(rt, x), upload(rt, w), upload(rt, dy)];
  const bg = bias ? upload(rt, bias) : null;
  const name = `${label} x ${c.x} w ${c.w} stride ${c.stride} pad ${c.padding} groups ${c.groups}`;
  assertClose(`${name}: forward`, await download(rt, conv2dForwardGpu(rt, xg, wg, bg, p)), y);
  assertClose(`${name}: dx`, await download(rt, conv2dBackwardInputGpu(rt, dyg, wg, p)), dx);
  assertClose(`${name}: dw`, await download(rt, conv2dBackwardWeightGpu(rt, dyg, xg, p)), dw);
  for (const s of [xg, wg, dyg, bg]) if (s) rt.free(s);
}

gpuTest("conv2d kernels match the CPU: strides 1/2/4, padding, groups, bias", async () => {
  const rt = await runtime();
  for (const c of convCases) await checkConv(rt, c, "conv2d");
});

gpuTest("conv2d kernels split a batch larger than one binding into chunks", async () => {
  // 64 KiB bindings: x of one sample is 3·23·23·4 = 6.3 KB, so 16 samples need 2+ chunks.
  const rt = await runtime(1 << 16);
  await checkConv(rt, {
    x: [16, 3, 23, 23],
    w: [8, 3, 5, 5],
    stride: 1,
    padding: 2,
    groups: 1,
    bias: true,
  }, "chunked");
  await checkConv(rt, {
    x: [16, 4, 23, 23],
    w: [6, 2, 11, 11],
    stride: 4,
    padding: 1,
    groups: 2,
    bias: false,
  }, "chunked");
  // (C/g)·KH·KW < 64: the weight gradient reads dy in place, at a chunk's unaligned offset.
  await checkConv(rt, {
    x: [16, 2, 23, 23],
    w: [5, 2, 3, 3],
    stride: 1,
    padding: 1,
    groups: 1,
    bias: false,
  }, "chunked");
});

gpuTest("conv2d kernels name the kernel when one sample exceeds a binding", async () => {
  const rt = await runtime(1 << 16);
  const p = conv2dParams([1, 1, 200, 200], [1, 1, 3, 3]);
  const x = rt.alloc("float32", 200 * 200), w = rt.alloc("float32", 9);
  assert.throws(
    () => conv2dForwardGpu(rt, x, w, null, p),
    /conv2d_forward: one sample needs \d+ bytes, over the 65536-byte storage binding limit/,
  );
  rt.free(x);
  rt.free(w);
});

// ---- pooling --------------------------------------------------------------------------------

const poolCases: {
  shape: [number, number, number, number];
  kernel: number;
  stride: number;
  padding: number;
}[] = [
  { shape: [2, 3, 13, 13], kernel: 3, stride: 2, padding: 0 }, // AlexNet's overlapping pooling
  { shape: [1, 2, 9, 7], kernel: 3, stride: 2, padding: 1 },
  { shape: [3, 2, 8, 10], kernel: 2, stride: 2, padding: 0 },
  { shape: [1, 1, 11, 11], kernel: 5, stride: 3, padding: 2 },
];

async function checkPool(
  rt: GpuRuntime,
  c: typeof poolCases[number],
  ties: boolean,
): Promise<void> {
  const p: Pool2dParams = pool2dParams("test", c.shape, c.kernel, c.stride, c.padding);
  const size = c.shape.reduce((a, b) => a * b), outSize = p.n * p.c * p.outH * p.outW;
  // Rounded values make ties, which must resolve to the first maximum like the CPU.
  const x = ties ? random(size, 5).map((v) => Math.round(v * 2)) : random(size, 5);
  const dy = random(outSize, 6);
  const name = `pool ${c.shape} k${c.kernel} s${c.stride} p${c.padding}${ties ? " ties" : ""}`;
  const y = new Float32Array(outSize),
    argmax = new Int32Array(outSize),
    dx = new Float32Array(size);
  maxPool2dForwardCpu(x, p, y, argmax);
  maxPool2dBackwardCpu(dy, argmax, p, dx);
  const xg = upload(rt, x), dyg = upload(rt, dy);
  const max = maxPool2dForwardGpu(rt, xg, p);
  assert.deepEqual(await download(rt, max.argmax), argmax, `${name}: argmax`);
  assertClose(`${name}: max forward`, await download(rt, max.y), y, 0, 0);
  const argmaxGpu = upload(rt, argmax);
  assertClose(
    `${name}: max backward`,
    await download(rt, maxPool2dBackwardGpu(rt, dyg, argmaxGpu, p)),
    dx,
  );
  rt.free(argmaxGpu);
  avgPool2dForwardCpu(x, p, y);
  avgPool2dBackwardCpu(dy, p, dx);
  assertClose(`${name}: avg forward`, await download(rt, avgPool2dForwardGpu(rt, xg, p)), y);
  assertClose(`${name}: avg backward`, await download(rt, avgPool2dBackwardGpu(rt, dyg, p)), dx);
  rt.free(xg);
  rt.free(dyg);
}

gpuTest("pooling kernels match the CPU: overlapping windows, padding, ties", async () => {
  const rt = await runtime();
  for (const c of poolCases) {
    await checkPool(rt, c, false);
    await checkPool(rt, c, true);
  }
});

gpuTest("pooling kernels split a batch larger than one binding into chunks", async () => {
  await checkPool(await runtime(1 << 16), {
    shape: [9, 8, 27, 27],
    kernel: 3,
    stride: 2,
    padding: 0,
  }, true);
});

gpuTest(
  "adaptive average pooling matches the CPU (PyTorch bins, overlapping and identity)",
  async () => {
    const rt = await runtime();
    for (const [h, w, outH, outW] of [[7, 7, 3, 3], [6, 6, 6, 6], [13, 10, 6, 4], [5, 3, 7, 2]]) {
      const p = { n: 2, c: 3, h, w, outH, outW };
      const x = random(2 * 3 * h * w, 7), dy = random(2 * 3 * outH * outW, 8);
      const y = new Float32Array(dy.length), dx = new Float32Array(x.length);
      adaptiveAvgPool2dForwardCpu(x, p, y);
      adaptiveAvgPool2dBackwardCpu(dy, p, dx);
      const xg = upload(rt, x), dyg = upload(rt, dy);
      assertClose(
        `adaptive ${h}x${w}→${outH}x${outW} forward`,
        await download(rt, adaptiveAvgPool2dForwardGpu(rt, xg, p)),
        y,
      );
      assertClose(
        `adaptive ${h}x${w}→${outH}x${outW} backward`,
        await download(rt, adaptiveAvgPool2dBackwardGpu(rt, dyg, p)),
        dx,
      );
      rt.free(xg);
      rt.free(dyg);
    }
  },
);

// ---- LRN ------------------------------------------------------------------------------------

gpuTest("LRN kernels match the CPU: sizes 5 and 4, a normalizer far from k", async () => {
  for (const [maxBinding, n] of [[0, 2], [1 << 16, 12]]) {
    const rt = await runtime(maxBinding);
    for (const size of [5, 4, 1]) {
      // alpha 0.1 and |x| up to 3 make alpha·Σx² comparable to k, so the normalizer matters.
      const p = { n, c: 7, h: 5, w: 6, size, alpha: 0.1, beta: 0.75, k: 2 };
      const count = n * 7 * 5 * 6;
      const x = random(count, 9, 3), dy = random(count, 10);
      const y = new Float32Array(count), dx = new Float32Array(count);
      lrnForwardCpu(x, p, y);
      lrnBackwardCpu(x, dy, p, dx);
      const xg = upload(rt, x), dyg = upload(rt, dy);
      assertClose(`lrn size ${size} forward`, await download(rt, lrnForwardGpu(rt, xg, p)), y);
      assertClose(
        `lrn size ${size} backward`,
        await download(rt, lrnBackwardGpu(rt, xg, dyg, p)),
        dx,
        1e-4,
        1e-5,
      );
      rt.free(xg);
      rt.free(dyg);
    }
  }
});
