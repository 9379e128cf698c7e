import assert from "node:assert/strict";
import { type FloatArray, gemm as referenceGemm, type GemmArgs } from "../../tensor/ops/gemm.ts";
import {
  bestSimdTier,
  gemm,
  getThreads,
  setSimdTier,
  setThreads,
  shutdownThreads,
} from "../../cpu/kernels/gemm.ts";
import { Rng } from "../../tensor/random.ts";

/** C = op(A)·op(B) (+ C) by the definition, in float64. */
function naiveGemm(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: FloatArray,
  aOffset: number,
  lda: number,
  b: FloatArray,
  bOffset: number,
  ldb: number,
  c: Float64Array,
  cOffset: number,
  ldc: number,
  accumulate: boolean,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = accumulate ? c[cOffset + i * ldc + j] : 0;
      for (let p = 0; p < k; p++) {
        const aValue = transA ? a[aOffset + p * lda + i] : a[aOffset + i * lda + p];
        const bValue = transB ? b[bOffset + j * ldb + p] : b[bOffset + p * ldb + j];
        sum += aValue * bValue;
      }
      c[cOffset + i * ldc + j] = sum;
    }
  }
}

/** The tiers this engine runs: the reference always, SIMD and relaxed SIMD where they compile. */
const tiersHere = (["reference", "simd", "relaxed-simd"] as const).slice(
  0,
  [null, "simd", "relaxed-simd"].indexOf(bestSimdTier()) + 1,
);

/** gemm on one tier: the reference of tensor/ops/gemm.ts, or the cpu device's on a SIMD tier. */
function gemmOn(tier: typeof tiersHere[number], args: GemmArgs<FloatArray>): void {
  if (tier === "reference") return referenceGemm(args);
  setSimdTier(tier);
  try {
    gemm(args);
  } finally {
    setSimdTier("auto");
  }
}

function randomArray(rng: Rng, length: number): Float64Array {
  const values = new Float64Array(length);
  for (let i = 0; i < length; i++) values[i] = rng.uniform() * 2 - 1;
  return values;
}

interface Case {
  m: number;
  n: number;
  k: number;
  /** Extra row stride beyond the stored width, and leading elements before each matrix. */
  pad: number;
  accumulate: boolean;
}

const cases: Case[] = [
  { m: 1, n: 1, k: 1, pad: 0, accumulate: false },
  { m: 7, n: 7, k: 7, pad: 0, accumulate: false },
  { m: 33, n: 7, k: 65, pad: 3, accumulate: true },
  { m: 65, n: 33, k: 7, pad: 0, accumulate: true },
  { m: 1, n: 65, k: 33, pad: 5, accumulate: false },
  { m: 64, n: 64, k: 300, pad: 0, accumulate: false }, // k spans two KC blocks
  { m: 130, n: 9, k: 2, pad: 1, accumulate: true }, // m spans two MC blocks
  { m: 5, n: 1030, k: 3, pad: 2, accumulate: false }, // n spans two NC blocks
  { m: 3, n: 4, k: 0, pad: 0, accumulate: false }, // empty product zeroes C
  { m: 3, n: 4, k: 0, pad: 0, accumulate: true }, // ... or leaves it alone
];

// float32 runs on every tier this engine has (the WebAssembly kernels and the reference);
// float64 always runs on the reference.
const dtypeTiers = [
  ...tiersHere.map((tier) => ["float32", tier] as const),
  ["float64", "reference"] as const,
];
for (const [dtype, tier] of dtypeTiers) {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      Deno.test(`gemm ${dtype} (${tier}) transA=${transA} transB=${transB} matches the naive loop`, () => {
        const rng = new Rng(17);
        const make = (values: Float64Array): FloatArray =>
          dtype === "float32" ? new Float32Array(values) : new Float64Array(values);
        for (const { m, n, k, pad, accumulate } of cases) {
          const lda = (transA ? m : k) + pad;
          const ldb = (transB ? k : n) + pad;
          const ldc = n + pad;
          const aRows = transA ? k : m;
          const bRows = transB ? n : k;
          const a = make(randomArray(rng, pad + aRows * lda));
          const b = make(randomArray(rng, pad + bRows * ldb));
          const initialC = randomArray(rng, pad + m * ldc);
          const c = make(initialC);
          // The reference sees exactly the (possibly rounded) inputs that gemm sees.
          const expected = new Float64Array(c);
          naiveGemm(
            transA,
            transB,
            m,
            n,
            k,
            a,
            pad,
            lda,
            b,
            pad,
            ldb,
            expected,
            pad,
            ldc,
            accumulate,
          );
          gemmOn(tier, {
            transA,
            transB,
            m,
            n,
            k,
            a,
            aOffset: pad,
            lda,
            b,
            bOffset: pad,
            ldb,
            c,
            cOffset: pad,
            ldc,
            accumulate,
          });
          const tolerance = dtype === "float32" ? 1e-5 * Math.max(1, Math.sqrt(k)) : 1e-12;
          for (let i = 0; i < c.length; i++) {
            const row = Math.floor((i - pad) / ldc);
            const col = (i - pad) % ldc;
            const inside = i >= pad && row < m && col < n;
            const want = inside
              ? expected[i]
              : c instanceof Float32Array
              ? Math.fround(initialC[i])
              : initialC[i];
            const where = `m=${m} n=${n} k=${k} pad=${pad} accumulate=${accumulate} index ${i}`;
            if (!inside) assert.equal(c[i], want, `${where}: wrote outside C`);
            else assert.ok(Math.abs(c[i] - want) <= tolerance, `${where}: ${c[i]} vs ${want}`);
          }
        }
      });
    }
  }
}

// The reference sums in float64 and keeps the 1e-5 bound it always met. The SIMD tiers sum in
// float32, four lanes per output, sequentially over k: rounding errors random-walk to ~u·k·|x|
// on uniform[-1, 1] data (u = 2^-24), measured 4.3e-5 here; they are held to the worst-case
// float32 bound of tests/cpu/gemm.test.ts instead, (k + 2)·u·Σ|a||b|.
for (const tier of tiersHere) {
  Deno.test(`gemm float32 (${tier}) stays accurate on a large product (1000-term dot products)`, () => {
    const rng = new Rng(3);
    const m = 37, n = 41, k = 1000;
    const a = new Float32Array(randomArray(rng, m * k));
    const b = new Float32Array(randomArray(rng, k * n));
    const c = new Float32Array(m * n);
    const expected = new Float64Array(m * n);
    const magnitude = new Float64Array(m * n); // Σ_p |a[i,p]·b[p,j]|
    naiveGemm(false, false, m, n, k, a, 0, k, b, 0, n, expected, 0, n, false);
    naiveGemm(
      false,
      false,
      m,
      n,
      k,
      a.map(Math.abs),
      0,
      k,
      b.map(Math.abs),
      0,
      n,
      magnitude,
      0,
      n,
      false,
    );
    gemmOn(tier, {
      transA: false,
      transB: false,
      m,
      n,
      k,
      a,
      aOffset: 0,
      lda: k,
      b,
      bOffset: 0,
      ldb: n,
      c,
      cOffset: 0,
      ldc: n,
      accumulate: false,
    });
    const u = 2 ** -24;
    for (let i = 0; i < c.length; i++) {
      const tolerance = tier === "reference" ? 1e-5 : (k + 2) * u * magnitude[i];
      assert.ok(Math.abs(c[i] - expected[i]) < tolerance, `${tier} index ${i}`);
    }
  });
}

Deno.test("gemm rejects mixed dtypes, bad sizes and operands that do not fit", () => {
  const f32 = new Float32Array(16);
  const f64 = new Float64Array(16);
  assert.throws(
    () =>
      gemm({
        transA: false,
        transB: false,
        m: 4,
        n: 4,
        k: 4,
        a: f32,
        aOffset: 0,
        lda: 4,
        b: f64,
        bOffset: 0,
        ldb: 4,
        c: f32,
        cOffset: 0,
        ldc: 4,
        accumulate: false,
      }),
    /gemm: a, b and c must share one dtype, got Float32Array, Float64Array and Float32Array/,
  );
  assert.throws(
    () =>
      gemm({
        transA: false,
        transB: false,
        m: -1,
        n: 4,
        k: 4,
        a: f32,
        aOffset: 0,
        lda: 4,
        b: f32,
        bOffset: 0,
        ldb: 4,
        c: f32,
        cOffset: 0,
        ldc: 4,
        accumulate: false,
      }),
    /gemm: m must be a non-negative integer, got -1/,
  );
  assert.throws(
    () =>
      gemm({
        transA: false,
        transB: false,
        m: 4,
        n: 4,
        k: 4,
        a: f32,
        aOffset: 0,
        lda: 3,
        b: f32,
        bOffset: 0,
        ldb: 4,
        c: f32,
        cOffset: 0,
        ldc: 4,
        accumulate: false,
      }),
    /gemm: lda=3 is smaller than the 4 columns of stored a/,
  );
  assert.throws(
    () =>
      gemm({
        transA: false,
        transB: true,
        m: 4,
        n: 5,
        k: 4,
        a: f32,
        aOffset: 0,
        lda: 4,
        b: f32,
        bOffset: 0,
        ldb: 4,
        c: f32,
        cOffset: 0,
        ldc: 5,
        accumulate: false,
      }),
    /gemm: b is 5x4 with ldb=4 from offset 0, needing 20 elements, but has 16/,
  );
  assert.throws(
    () =>
      gemm({
        transA: false,
        transB: false,
        m: 4,
        n: 4,
        k: 4,
        a: f32,
        aOffset: 1,
        lda: 4,
        b: f32,
        bOffset: 0,
        ldb: 4,
        c: f32,
        cOffset: 0,
        ldc: 4,
        accumulate: false,
      }),
    /gemm: a is 4x4 with lda=4 from offset 1, needing 17 elements, but has 16/,
  );
});

// Starting the worker reads its module file: run with --allow-read (deno task test does).
const canStartWorker = (await Deno.permissions.query({ name: "read" })).state === "granted";

Deno.test({
  name: "gemm with two threads matches one thread bit for bit, all transposes",
  ignore: !canStartWorker,
}, async () => {
  const rng = new Rng(5);
  // Tall and wide products, both above the threading threshold.
  const problems = [[203, 97, 1001], [65, 301, 999]].flatMap(([m, n, k]) =>
    [false, true].flatMap((transA) =>
      [false, true].map((transB) => {
        const a = new Float32Array(m * k);
        const b = new Float32Array(k * n);
        a.set(randomArray(rng, m * k));
        b.set(randomArray(rng, k * n));
        return { m, n, k, transA, transB, a, b };
      })
    )
  );
  const run = () =>
    problems.map(({ m, n, k, transA, transB, a, b }) => {
      const c = new Float32Array(m * n).fill(1);
      const lda = transA ? m : k, ldb = transB ? k : n;
      gemm({
        transA,
        transB,
        m,
        n,
        k,
        a,
        aOffset: 0,
        lda,
        b,
        bOffset: 0,
        ldb,
        c,
        cOffset: 0,
        ldc: n,
        accumulate: true,
      });
      return c;
    });
  await setThreads(1);
  const serial = run();
  try {
    for (const threads of [2, 3]) {
      await setThreads(threads);
      assert.equal(getThreads(), threads);
      assert.deepEqual(run(), serial);
    }
  } finally {
    shutdownThreads();
    assert.equal(getThreads(), 1);
    await setThreads("auto");
  }
});
