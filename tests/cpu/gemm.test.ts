/**
 * Every fast gemm kernel against the reference: both SIMD tiers, every transpose, shapes that
 * divide no tile (MR = 6 or 4, NR = 8, KC = 256, MC = 120 or 80, NC = 512), the matrix-vector
 * (m or n = 1) and few-rows (m ≤ 8) paths, one and two threads, and memory without
 * SharedArrayBuffer.
 */
import assert from "node:assert/strict";
import { gemmReference } from "../../tensor/ops/gemm.ts";
import {
  bestSimdTier,
  gemm,
  GemmEngine,
  getThreads,
  setSimdTier,
  setThreads,
  shutdownThreads,
} from "../../cpu/kernels/gemm.ts";
import type { GemmArgs } from "../../cpu/kernels/gemm.ts";
import type { SimdTier } from "../../cpu/kernels/gemm_kernels.ts";
import { setCpuOptions } from "../../mod.ts";
import { Rng } from "../../tensor/random.ts";

const simdTiers: SimdTier[] = bestSimdTier() === "relaxed-simd"
  ? ["simd", "relaxed-simd"]
  : bestSimdTier() === "simd"
  ? ["simd"]
  : [];

interface Problem {
  args: GemmArgs;
  /** C before the call. */
  initial: Float32Array;
}

function makeProblem(
  rng: Rng,
  [m, n, k]: number[],
  transA: boolean,
  transB: boolean,
  accumulate: boolean,
): Problem {
  // Row strides wider than the matrices and nonzero offsets, so that packing uses the strides.
  const lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 1, ldc = n + 2;
  const random = (length: number) => {
    const values = new Float32Array(length);
    for (let i = 0; i < length; i++) values[i] = rng.uniform() * 2 - 1;
    return values;
  };
  const a = random(2 + (transA ? k : m) * lda), b = random(1 + (transB ? n : k) * ldb);
  const c = random(3 + m * ldc);
  const args = {
    transA,
    transB,
    m,
    n,
    k,
    a,
    aOffset: 2,
    lda,
    b,
    bOffset: 1,
    ldb,
    c,
    cOffset: 3,
    ldc,
    accumulate,
  };
  return { args, initial: c.slice() };
}

/**
 * The reference result and each element's error bound. A float32 sum of k products, fused or
 * not, in any order, is within γ·Σ_p |a_ip·b_pj| of the exact sum, γ = k·u/(1 - k·u) with
 * u = 2^-24 (Higham, Accuracy and Stability of Numerical Algorithms, eq. 3.5); adding C
 * (accumulate) and rounding the reference's float64 result to float32 add at most two more u
 * of the magnitude. Hence (k + 2)·u·(Σ|a||b| + |c|), with 1% slack for γ's denominator.
 */
function expectation({ args, initial }: Problem) {
  const { m, n, k, cOffset, ldc } = args;
  const expected = initial.slice();
  gemmReference({ ...args, c: expected });
  const magnitude = new Float64Array(initial.length);
  if (args.accumulate) {
    for (let i = 0; i < initial.length; i++) magnitude[i] = Math.abs(initial[i]);
  }
  gemmReference({
    ...args,
    a: args.a.map(Math.abs),
    b: args.b.map(Math.abs),
    c: magnitude,
    accumulate: true,
  });
  const bound = (i: number) => 1.01 * (k + 2) * 2 ** -24 * magnitude[i];
  const inside = (i: number) => {
    const row = Math.floor((i - cOffset) / ldc), col = (i - cOffset) % ldc;
    return i >= cOffset && row < m && col < n;
  };
  return { expected, bound, inside };
}

function check(problem: Problem, result: Float32Array, label: string): void {
  const { expected, bound, inside } = expectation(problem);
  for (let i = 0; i < result.length; i++) {
    if (!inside(i)) {
      assert.equal(result[i], problem.initial[i], `${label}: wrote outside C at ${i}`);
    } else {
      const error = Math.abs(result[i] - expected[i]);
      assert.ok(error <= bound(i), `${label} index ${i}: ${result[i]} vs ${expected[i]}`);
    }
  }
}

/** Shapes with edges everywhere: 1-row and 1-column (matrix-vector), partial tiles, k-blocks. */
const shapes = [
  [1, 1, 1],
  [1, 67, 131],
  [67, 1, 131],
  [1, 13, 5],
  [5, 7, 13],
  [7, 5, 300],
  [13, 131, 67],
  [67, 13, 5],
  [6, 8, 1],
  [4, 8, 256],
  [12, 16, 257],
  [131, 67, 513],
  [250, 530, 70], // several MC × NC blocks of C
  [8, 67, 513], // m ≤ 8: B read in place (or dot products with Bᵀ's rows), over k-blocks
  [3, 530, 300],
];
const label = (p: Problem, tier: string) => {
  const { m, n, k, transA, transB, accumulate } = p.args;
  return `${tier} m=${m} n=${n} k=${k} transA=${transA} transB=${transB} accumulate=${accumulate}`;
};

for (const tier of simdTiers) {
  Deno.test(`wasm gemm (${tier}) matches the reference: edge shapes, all transposes`, () => {
    const rng = new Rng(11);
    setSimdTier(tier);
    try {
      for (const shape of shapes) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            for (const accumulate of [false, true]) {
              const problem = makeProblem(rng, shape, transA, transB, accumulate);
              gemm(problem.args);
              check(problem, problem.args.c, label(problem, tier));
            }
          }
        }
      }
    } finally {
      setSimdTier("auto");
    }
  });
}

Deno.test("wasm gemm: k = 0 zeroes C or leaves it, m = 0 and n = 0 write nothing", () => {
  for (const tier of simdTiers) {
    setSimdTier(tier);
    try {
      for (const [m, n, k] of [[3, 4, 0], [0, 4, 5], [3, 0, 5]]) {
        for (const accumulate of [false, true]) {
          const problem = makeProblem(new Rng(2), [m, n, k], false, false, accumulate);
          gemm(problem.args);
          check(problem, problem.args.c, label(problem, tier));
        }
      }
    } finally {
      setSimdTier("auto");
    }
  }
});

// Starting the worker reads its module file: run with --allow-read (deno task test does).
const canStartWorker = (await Deno.permissions.query({ name: "read" })).state === "granted";

Deno.test({
  name: "wasm gemm on two threads: bit-identical to one thread, both tiers, edge blocks",
  ignore: !canStartWorker || simdTiers.length === 0,
}, async () => {
  // Above the threading threshold (2^23 flops), with partial MC × NC blocks.
  const big = [[131, 530, 67], [250, 97, 1001], [203, 601, 70]];
  for (const tier of simdTiers) {
    setSimdTier(tier);
    try {
      const rng = new Rng(23);
      const problems = big.flatMap((shape) =>
        [false, true].flatMap((transA) =>
          [false, true].map((transB) => makeProblem(rng, shape, transA, transB, transA))
        )
      );
      const run = () =>
        problems.map((p) => {
          const c = p.initial.slice();
          gemm({ ...p.args, c });
          return c;
        });
      await setThreads(1);
      const serial = run();
      for (const threads of [2, 3]) {
        await setThreads(threads);
        assert.equal(getThreads(), threads);
        const parallel = run();
        for (let i = 0; i < problems.length; i++) {
          assert.deepEqual(parallel[i], serial[i], label(problems[i], tier));
          check(problems[i], parallel[i], `${label(problems[i], tier)} (${threads} threads)`);
        }
      }
    } finally {
      shutdownThreads();
      assert.equal(getThreads(), 1);
      await setThreads("auto");
      setSimdTier("auto");
    }
  }
});

Deno.test("wasm gemm without SharedArrayBuffer: an ordinary memory, one thread, right answers", async () => {
  if (simdTiers.length === 0) return;
  const global = globalThis as { SharedArrayBuffer?: unknown };
  const saved = global.SharedArrayBuffer;
  delete global.SharedArrayBuffer; // as in a browser page without cross-origin isolation
  let engine: GemmEngine;
  try {
    engine = new GemmEngine(simdTiers[0]);
  } finally {
    global.SharedArrayBuffer = saved;
  }
  assert.equal(engine.shared, false);
  assert.ok(!(engine.memory.buffer instanceof SharedArrayBuffer));
  await engine.startWorkers(); // nothing to share: stays on one thread
  assert.equal(engine.threads, 1);
  const problem = makeProblem(new Rng(4), [131, 530, 67], true, false, true);
  engine.gemm(problem.args);
  check(problem, problem.args.c, "unshared memory");
});

Deno.test("setCpuOptions names what is wrong", async () => {
  await assert.rejects(
    () => setCpuOptions({ simd: "avx512" as "simd" }),
    /setCpuOptions: simd must be one of auto, simd, relaxed-simd; got avx512/,
  );
  for (const threads of [0, 65, 2.5]) {
    await assert.rejects(
      () => setCpuOptions({ threads }),
      new RegExp(
        `setCpuOptions: threads must be "auto" or an integer from 1 to 64, got ${threads}`,
      ),
    );
  }
  await assert.rejects(
    () => setCpuOptions({ thread: 2 } as never),
    /setCpuOptions: unknown option "thread" \(did you mean threads\?\); the options are simd, threads, workerUrl/,
  );
});
