/**
 * Kernel-level tests of the spatial WGSL kernels (gpu/kernels/conv2d.ts, pool2d.ts, lrn.ts)
 * against the CPU reference kernels on the same data, over the same tables as the op-level
 * parity test (tests/parity/cases_spatial.ts). They also reach paths the op level cannot: the
 * batch chunking for tensors larger than one binding (run here with a 64 KiB binding limit),
 * the split of the weight gradient over batch chunks, and ties in max pooling.
 *
 * Skips with a message when no WebGPU adapter exists, except in CI (CI=true), where it fails.
 */

import assert from "node:assert/strict";
import type { Backend, Conv2dParams, Pool2dParams } from "../../backend/backend.ts";
import { acquireRuntime } from "../../gpu/device.ts";
import type { GpuRuntime, GpuStorage } from "../../gpu/runtime.ts";
import {
  conv2dBackwardInputGpu,
  conv2dBackwardWeightGpu,
  conv2dForwardGpu,
} from "../../gpu/kernels/conv2d.ts";
import {
  adaptiveAvgPool2dBackwardGpu,
  adaptiveAvgPool2dForwardGpu,
  avgPool2dBackwardGpu,
  avgPool2dForwardGpu,
  maxPool2dBackwardGpu,
  maxPool2dForwardGpu,
} from "../../gpu/kernels/pool2d.ts";
import { lrnBackwardGpu, lrnForwardGpu } from "../../gpu/kernels/lrn.ts";
import {
  conv2dBackwardInputCpu,
  conv2dBackwardWeightCpu,
  conv2dForwardCpu,
  conv2dParams,
} from "../../tensor/ops/conv2d.ts";
import {
  adaptiveAvgPool2dBackwardCpu,
  adaptiveAvgPool2dForwardCpu,
  avgPool2dBackwardCpu,
  avgPool2dForwardCpu,
  maxPool2dBackwardCpu,
  maxPool2dForwardCpu,
  pool2dParams,
} from "../../tensor/ops/pool.ts";
import { lrnBackwardCpu, lrnForwardCpu } from "../../tensor/ops/lrn.ts";
import { Rng } from "../../tensor/random.ts";
import { assertClose } from "../support/close.ts";
import {
  adaptivePoolCases,
  type ConvCase,
  convCases,
  convChunkedCases,
  LRN_INPUT_SCALE,
  lrnCases,
  lrnName,
  type PoolCase,
  poolCases,
  poolChunkedCase,
  poolName,
  SUMS,
} from "../parity/cases_spatial.ts";
import { gpuAvailable } from "../support/gpu_helpers.ts";

// The one GPU detection of the suite: skipped without an adapter, except in CI (CI=true).
const hasGpu = gpuAvailable;

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

/** GPU kernel output against the CPU kernel's, conv tolerances unless given. */
function assertKernelClose(
  what: string,
  gpu: ArrayLike<number>,
  cpu: ArrayLike<number>,
  tol = SUMS,
) {
  assertClose(gpu, cpu, { ...tol, what });
}

// ---- conv2d ---------------------------------------------------------------------------------

async function checkConv(rt: GpuRuntime, c: ConvCase, label: string): Promise<void> {
  const p: Conv2dParams = conv2dParams(
    c.x,
    c.w,
    c.stride ?? 1,
    c.padding ?? 0,
    c.groups ?? 1,
    c.dilation ?? 1,
  );
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
  const name = `${label} ${c.name}`;
  assertKernelClose(`${name}: forward`, await download(rt, conv2dForwardGpu(rt, xg, wg, bg, p)), y);
  assertKernelClose(`${name}: dx`, await download(rt, conv2dBackwardInputGpu(rt, dyg, wg, p)), dx);
  assertKernelClose(`${name}: dw`, await download(rt, conv2dBackwardWeightGpu(rt, dyg, xg, p)), dw);
  for (const s of [xg, wg, dyg, bg]) if (s) rt.free(s);
}

gpuTest("conv2d kernels match the CPU: strides 1/2/4, padding, groups, bias", async () => {
  const rt = await runtime();
  for (const c of convCases) await checkConv(rt, c, "conv2d");
});

gpuTest("conv2d kernels split a batch larger than one binding into chunks", async () => {
  const rt = await runtime(1 << 16);
  for (const c of convChunkedCases) await checkConv(rt, c, "conv2d");
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

async function checkPool(
  rt: GpuRuntime,
  c: PoolCase,
  ties: boolean,
): Promise<void> {
  const p: Pool2dParams = pool2dParams("test", c.shape, c.kernel, c.stride, c.padding);
  const size = c.shape.reduce((a, b) => a * b), outSize = p.n * p.c * p.outH * p.outW;
  // Rounded values make ties, which must resolve to the first maximum like the CPU.
  const x = ties ? random(size, 5).map((v) => Math.round(v * 2)) : random(size, 5);
  const dy = random(outSize, 6);
  const name = `pool ${poolName(c)}${ties ? " ties" : ""}`;
  const y = new Float32Array(outSize),
    argmax = new Int32Array(outSize),
    dx = new Float32Array(size);
  maxPool2dForwardCpu(x, p, y, argmax);
  maxPool2dBackwardCpu(dy, argmax, p, dx);
  const xg = upload(rt, x), dyg = upload(rt, dy);
  const max = maxPool2dForwardGpu(rt, xg, p);
  assert.deepEqual(await download(rt, max.argmax), argmax, `${name}: argmax`);
  assertKernelClose(`${name}: max forward`, await download(rt, max.y), y, { rtol: 0, atol: 0 });
  const argmaxGpu = upload(rt, argmax);
  assertKernelClose(
    `${name}: max backward`,
    await download(rt, maxPool2dBackwardGpu(rt, dyg, argmaxGpu, p)),
    dx,
  );
  rt.free(argmaxGpu);
  avgPool2dForwardCpu(x, p, y);
  avgPool2dBackwardCpu(dy, p, dx);
  assertKernelClose(`${name}: avg forward`, await download(rt, avgPool2dForwardGpu(rt, xg, p)), y);
  assertKernelClose(
    `${name}: avg backward`,
    await download(rt, avgPool2dBackwardGpu(rt, dyg, p)),
    dx,
  );
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
  await checkPool(await runtime(1 << 16), poolChunkedCase, true);
});

gpuTest(
  "adaptive average pooling matches the CPU (PyTorch bins, overlapping and identity)",
  async () => {
    const rt = await runtime();
    for (const { shape: [n, c, h, w], out: [outH, outW] } of adaptivePoolCases) {
      const p = { n, c, h, w, outH, outW };
      const x = random(n * c * h * w, 7), dy = random(n * c * outH * outW, 8);
      const y = new Float32Array(dy.length), dx = new Float32Array(x.length);
      adaptiveAvgPool2dForwardCpu(x, p, y);
      adaptiveAvgPool2dBackwardCpu(dy, p, dx);
      const xg = upload(rt, x), dyg = upload(rt, dy);
      assertKernelClose(
        `adaptive ${n}x${c}x${h}x${w}→${outH}x${outW} forward`,
        await download(rt, adaptiveAvgPool2dForwardGpu(rt, xg, p)),
        y,
      );
      assertKernelClose(
        `adaptive ${n}x${c}x${h}x${w}→${outH}x${outW} backward`,
        await download(rt, adaptiveAvgPool2dBackwardGpu(rt, dyg, p)),
        dx,
      );
      rt.free(xg);
      rt.free(dyg);
    }
  },
);

// ---- LRN ------------------------------------------------------------------------------------

gpuTest("LRN kernels match the CPU: sizes 5, 4 and 1, a normalizer far from k", async () => {
  // The kernels take alpha per squared term: the table's per-term rows, as they are and with a
  // batch of 12 spanning several 64 KiB bindings.
  for (const c of lrnCases.filter((c) => c.alphaScaling === "per-term")) {
    for (const [maxBinding, n] of [[0, c.shape[0]], [1 << 16, 12]]) {
      const rt = await runtime(maxBinding);
      const [, channels, h, w] = c.shape;
      const p = {
        n,
        c: channels,
        h,
        w,
        size: c.size,
        alpha: c.alpha,
        beta: c.beta ?? 0.75,
        k: c.k ?? 2,
      };
      const count = n * channels * h * w;
      const x = random(count, 9, LRN_INPUT_SCALE), dy = random(count, 10);
      const y = new Float32Array(count), dx = new Float32Array(count);
      lrnForwardCpu(x, p, y);
      lrnBackwardCpu(x, dy, p, dx);
      const xg = upload(rt, x), dyg = upload(rt, dy);
      const name = `${lrnName(c)}, batch ${n}`;
      assertKernelClose(`${name} forward`, await download(rt, lrnForwardGpu(rt, xg, p)), y);
      assertKernelClose(`${name} backward`, await download(rt, lrnBackwardGpu(rt, xg, dyg, p)), dx);
      rt.free(xg);
      rt.free(dyg);
    }
  }
});
