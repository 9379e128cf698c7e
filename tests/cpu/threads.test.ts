/**
 * The cpu device's thread pool (cpu/kernels/tasks.ts, gemm.ts, gemm_worker.ts): the conv2d
 * kernels give the same bits on 1, 2 and 3 threads, forward and both gradients, on odd shapes
 * (both SIMD tiers, groups 1 and 2, strides 1 and 2); the whole AlexNet-mini training step gives
 * the same bits on 1 and 2 threads; and a program that trained ends by itself (idle workers
 * close themselves). The gemm's threads are tested in tests/cpu/gemm_threads.test.ts and
 * tests/cpu/gemm.test.ts; agreement with the reference in tests/cpu/conv2d.test.ts.
 */
import assert from "node:assert/strict";
import { conv2dParams } from "../../tensor/ops/conv2d.ts";
import {
  conv2dBackwardInputWasm,
  conv2dBackwardWeightWasm,
  conv2dForwardWasm,
} from "../../cpu/kernels/conv2d.ts";
import {
  bestSimdTier,
  gemm,
  getThreads,
  setThreadBackoff,
  setThreads,
  type SimdTier,
} from "../../cpu/kernels/gemm.ts";
import {
  lrnBackwardWasm,
  lrnForwardWasm,
  maxPool2dBackwardWasm,
  maxPool2dForwardWasm,
  reluBackwardWasm,
  reluWasm,
} from "../../cpu/kernels/layers.ts";
import { pool2dParams } from "../../tensor/ops/pool.ts";
import { crossEntropy, fromArray, SGD } from "../../mod.ts";
import { alexnetMini } from "../../models/alexnet.ts";
import { Rng } from "../../tensor/random.ts";

// The workers must take part however busy the machine is (the back-off would keep them idle).
setThreadBackoff(false);

const simdTiers: SimdTier[] = bestSimdTier() === "relaxed-simd"
  ? ["simd", "relaxed-simd"]
  : bestSimdTier() === "simd"
  ? ["simd"]
  : [];

function random(rng: Rng, length: number): Float32Array {
  return new Float32Array(length).map(() => rng.normal());
}

/** Odd shapes big enough to be split (over 2^22 flops per call). */
const shapes = [
  { x: [5, 7, 29, 31], w: [22, 7, 5, 5], stride: 1, padding: 2, groups: 1 },
  { x: [3, 10, 33, 27], w: [26, 5, 3, 3], stride: 1, padding: 1, groups: 2 },
  { x: [4, 6, 45, 41], w: [18, 3, 5, 5], stride: 2, padding: 1, groups: 2 },
  // The weight gradient in three batch slices of 4, 4 and 1 images (WEIGHT_DEPTH_BLOCK).
  { x: [9, 3, 30, 30], w: [10, 3, 3, 3], stride: 1, padding: 1, groups: 1 },
  // One small image: on several threads the pixel blocks shrink (pixelBlock), same bits.
  { x: [1, 64, 13, 13], w: [96, 32, 3, 3], stride: 1, padding: 1, groups: 2 },
];

/** Forward, input gradient (both methods) and weight gradient of every shape, on `tier`. */
function convOutputs(tier: SimdTier): Float32Array[] {
  const out: Float32Array[] = [];
  shapes.forEach((s, i) => {
    const rng = new Rng(100 + i);
    const p = conv2dParams(s.x, s.w, s.stride, s.padding, s.groups);
    const x = random(rng, p.n * p.c * p.h * p.w);
    const weight = random(rng, p.o * (p.c / p.groups) * p.kh * p.kw);
    const bias = random(rng, p.o);
    const dy = random(rng, p.n * p.o * p.outH * p.outW);
    const y = new Float32Array(dy.length);
    conv2dForwardWasm(x, weight, bias, p, y, tier);
    const dxDilated = new Float32Array(x.length), dxScatter = new Float32Array(x.length);
    conv2dBackwardInputWasm(dy, weight, p, dxDilated, tier, "dilated");
    conv2dBackwardInputWasm(dy, weight, p, dxScatter, tier, "scatter");
    const dw = new Float32Array(weight.length);
    conv2dBackwardWeightWasm(dy, x, p, dw, tier);
    out.push(y, dxDilated, dxScatter, dw);
  });
  return out;
}

Deno.test("conv2d kernels give the same bits on 1, 2 and 3 threads", async () => {
  try {
    for (const tier of simdTiers) {
      await setThreads(1);
      const serial = convOutputs(tier);
      for (const threads of [2, 3]) {
        await setThreads(threads);
        assert.equal(getThreads(), threads);
        const parallel = convOutputs(tier);
        parallel.forEach((array, i) =>
          assert.deepEqual(array, serial[i], `${tier}, ${threads} threads, output ${i}`)
        );
      }
    }
  } finally {
    await setThreads("auto");
  }
});

/** Matrix-vector products (one row or one column of C), every layout, and few-row products. */
function gemvOutputs(): Float32Array[] {
  const rng = new Rng(9);
  const rows = 1031, k = 4099; // outputs, depth: odd, over 2^22 flops
  const out: Float32Array[] = [];
  for (const byRow of [true, false]) {
    for (const trans of [false, true]) {
      const matrix = random(rng, rows * k), vector = random(rng, k);
      const c = random(rng, rows); // accumulate into it
      gemm({
        transA: byRow ? false : trans,
        transB: byRow ? trans : false,
        m: byRow ? 1 : rows,
        n: byRow ? rows : 1,
        k,
        a: byRow ? vector : matrix,
        aOffset: 0,
        lda: byRow ? k : (trans ? rows : k),
        b: byRow ? matrix : vector,
        bOffset: 0,
        ldb: byRow ? (trans ? k : rows) : 1,
        c,
        cOffset: 0,
        ldc: byRow ? rows : 1,
        accumulate: true,
      });
      out.push(c);
    }
  }
  // A few rows of C times Bᵀ (a linear layer at batch 5): dot products, split over C's columns.
  for (const transA of [false, true]) {
    const m = 5, a = random(rng, m * k), b = random(rng, rows * k), c = random(rng, m * rows);
    gemm({
      transA,
      transB: true,
      m,
      n: rows,
      k,
      a,
      aOffset: 0,
      lda: transA ? m : k,
      b,
      bOffset: 0,
      ldb: k,
      c,
      cOffset: 0,
      ldc: rows,
      accumulate: true,
    });
    out.push(c);
  }
  return out;
}

Deno.test("matrix-vector and few-row products give the same bits on 1, 2 and 3 threads", async () => {
  try {
    await setThreads(1);
    const serial = gemvOutputs();
    for (const threads of [2, 3]) {
      await setThreads(threads);
      gemvOutputs().forEach((array, i) =>
        assert.deepEqual(array, serial[i], `${threads} threads, layout ${i}`)
      );
    }
  } finally {
    await setThreads("auto");
  }
});

/** ReLU, LRN and max-pool outputs and gradients on odd sizes big enough to be split. */
function layerOutputs(): (Float32Array | Int32Array)[] {
  const rng = new Rng(5);
  const n = 1_048_583, x = random(rng, n), dy = random(rng, n);
  const y = new Float32Array(n), dx = new Float32Array(n);
  reluWasm(x, y);
  reluBackwardWasm(x, dy, dx);
  const lrn = { n: 7, c: 19, h: 23, w: 29, size: 5, alpha: 1e-4, beta: 0.75, k: 2 };
  const length = lrn.n * lrn.c * lrn.h * lrn.w;
  const lx = random(rng, length), ldy = random(rng, length);
  const ly = new Float32Array(length), ldx = new Float32Array(length);
  lrnForwardWasm(lx, lrn, ly);
  lrnBackwardWasm(lx, ldy, lrn, ldx);
  // One image of more than a task's elements: split into runs of its pixels.
  const big = { n: 1, c: 37, h: 43, w: 47, size: 5, alpha: 1e-4, beta: 0.75, k: 2 };
  const bx = random(rng, 37 * 43 * 47), bdy = random(rng, bx.length);
  const by = new Float32Array(bx.length), bdx = new Float32Array(bx.length);
  lrnForwardWasm(bx, big, by);
  lrnBackwardWasm(bx, bdy, big, bdx);
  const p = pool2dParams("maxPool2d", [6, 41, 63, 71], 3, 2, 0);
  const px = random(rng, 6 * 41 * 63 * 71);
  const py = new Float32Array(6 * 41 * p.outH * p.outW), argmax = new Int32Array(py.length);
  maxPool2dForwardWasm(px, p, py, argmax);
  const pdx = new Float32Array(px.length);
  maxPool2dBackwardWasm(random(rng, py.length), argmax, p, pdx);
  return [y, dx, ly, ldx, by, bdx, py, argmax, pdx];
}

Deno.test("relu, LRN and max-pool kernels give the same bits on 1, 2 and 3 threads", async () => {
  if (simdTiers.length === 0) return;
  try {
    await setThreads(1);
    const serial = layerOutputs();
    for (const threads of [2, 3]) {
      await setThreads(threads);
      layerOutputs().forEach((array, i) =>
        assert.deepEqual(array, serial[i], `${threads} threads, output ${i}`)
      );
    }
  } finally {
    await setThreads("auto");
  }
});

/** Loss and every parameter after two SGD steps of AlexNet-mini (groups 2), batch 24. */
function trainTwoSteps(): Float32Array[] {
  const model = alexnetMini({ seed: 3 });
  model.train();
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const rng = new Rng(7);
  const losses: number[] = [];
  for (let step = 0; step < 2; step++) {
    using x = fromArray(random(rng, 24 * 28 * 28), [24, 1, 28, 28]);
    using y = fromArray(new Int32Array(24).map(() => rng.int(10)), [24]);
    optimizer.zeroGrad();
    using loss = crossEntropy(model.forward(x), y);
    loss.backward();
    optimizer.step();
    losses.push(loss.dataSync()[0]);
  }
  return [new Float32Array(losses), ...model.parameters().map((p) => p.dataSync() as Float32Array)];
}

Deno.test("an AlexNet-mini training step gives the same bits on 1 and 2 threads", async () => {
  if (simdTiers.length === 0) return;
  try {
    await setThreads(1);
    const serial = trainTwoSteps();
    await setThreads(2);
    const parallel = trainTwoSteps();
    parallel.forEach((array, i) => assert.deepEqual(array, serial[i], `array ${i}`));
  } finally {
    await setThreads("auto");
  }
});

Deno.test("a program that trained on several threads ends by itself", async () => {
  const script = new URL("../support/scripts/train_one_step.ts", import.meta.url);
  // A bound far above the run's seconds: without the idle shutdown the program never ends.
  const signal = AbortSignal.timeout(120_000);
  const command = new Deno.Command("deno", {
    args: ["run", "--allow-read", "--allow-env", script.pathname],
    stdout: "piped",
    stderr: "piped",
    signal,
  });
  const { code, stdout, stderr } = await command.output();
  const text = new TextDecoder().decode(stdout);
  assert.equal(code, 0, `the script failed or was killed: ${new TextDecoder().decode(stderr)}`);
  const match = text.match(/threads (\d+) loss ([\d.]+)/);
  assert.ok(match, `unexpected output: ${text}`);
  if (typeof SharedArrayBuffer === "function" && navigator.hardwareConcurrency > 1) {
    assert.ok(Number(match[1]) > 1, `expected every core by default, ran on ${match[1]}`);
  }
});
