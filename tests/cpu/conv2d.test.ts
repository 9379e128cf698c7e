/**
 * The WebAssembly conv2d kernels (cpu/kernels/conv2d.ts) against the reference loops of
 * tensor/ops/conv2d.ts: forward, backward to the input and backward to the weight, both SIMD
 * tiers forced, both input-gradient methods (dilated, scatter), over the one conv2d table
 * (tests/parity/cases_spatial.ts: shapes that divide no tile or block, MR = 6 or 4, NR = 8,
 * KC = 256, MC = 20·MR pixels). The op-level parity test runs only the current tier; this file
 * reaches both. Then the CPU backend's dispatch.
 *
 * ## Tolerance, from float32 accumulation
 *
 * The reference sums in float64 and rounds once, so it is within half an ulp of the exact
 * sum. The wasm kernels sum in float32: each k-block of up to KC terms by multiply-adds (one
 * rounding per step, two without FMA), then one float32 add per k-block into C, then the bias.
 * The classic bound for a recursive float32 sum of products gives, per output element,
 *
 *     |fast − exact| ≤ γ · Σ |w·x|,    γ = (2·min(depth, KC) + ⌈depth / KC⌉ + 2) · u
 *
 * with u = 2⁻²⁴ the float32 unit roundoff and Σ |w·x| the sum of the magnitudes of the terms,
 * which the test computes exactly by running the reference on |x| and |w| (and |bias|). The
 * factor 2 covers the unfused tier. A wrong tap, a dropped term or a misplaced output misses
 * this bound by orders of magnitude (one term is about Σ|w·x| / depth ≫ γ·Σ|w·x|).
 */
import assert from "node:assert/strict";
import {
  conv2dBackwardInputCpu,
  conv2dBackwardWeightCpu,
  conv2dForwardCpu,
  type Conv2dParams,
  conv2dParams,
} from "../../tensor/ops/conv2d.ts";
import {
  conv2dBackwardInputWasm,
  conv2dBackwardWeightWasm,
  conv2dForwardWasm,
} from "../../cpu/kernels/conv2d.ts";
import { bestSimdTier, setSimdTier, type SimdTier } from "../../cpu/kernels/gemm.ts";
import { cpuBackend, type CpuStorage, refBackend } from "../../mod.ts";
import type { Backend, Storage } from "../../backend/backend.ts";
import { Rng } from "../../tensor/random.ts";
import { convCases } from "../parity/cases_spatial.ts";

const simdTiers: SimdTier[] = bestSimdTier() === "relaxed-simd"
  ? ["simd", "relaxed-simd"]
  : bestSimdTier() === "simd"
  ? ["simd"]
  : [];

const KC = 256;
const UNIT_ROUNDOFF = 2 ** -24;

/** One conv2d geometry of the shared table, its defaults filled in. */
interface Case {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  stride: number | [number, number];
  padding: number | [number, number];
  groups: number;
}

/** The one conv2d table (tests/parity/cases_spatial.ts) without dilation (the wasm kernels have none). */
const cases: Case[] = convCases.filter((c) => !c.dilation).map((c) => ({
  name: c.name,
  x: c.x,
  w: c.w,
  stride: c.stride ?? 1,
  padding: c.padding ?? 0,
  groups: c.groups ?? 1,
}));

const byName = (name: string): Case => {
  const found = cases.find((c) => c.name === name);
  if (!found) throw new Error(`no conv2d row named ${name}`);
  return found;
};

function random(rng: Rng, length: number): Float32Array {
  const values = new Float32Array(length);
  for (let i = 0; i < length; i++) values[i] = rng.uniform() * 2 - 1;
  return values;
}

const abs = (values: Float32Array) => new Float64Array(values.map(Math.abs));

/** Asserts |fast − reference| ≤ γ(depth) · magnitude + u·|reference| elementwise. */
function assertWithinBound(
  fast: Float32Array,
  reference: Float64Array,
  magnitude: Float64Array,
  depth: number,
  what: string,
) {
  const blocks = Math.ceil(depth / KC);
  const gamma = (2 * Math.min(depth, KC) + blocks + 2) * UNIT_ROUNDOFF;
  assert.equal(fast.length, reference.length, `${what}: length`);
  for (let i = 0; i < reference.length; i++) {
    const bound = gamma * magnitude[i] + UNIT_ROUNDOFF * Math.abs(reference[i]);
    const error = Math.abs(fast[i] - reference[i]);
    assert.ok(
      error <= bound,
      `${what}[${i}]: ${fast[i]} vs reference ${reference[i]}, error ${error} > bound ${bound}`,
    );
  }
}

function setup(testCase: Case, seed: number) {
  const rng = new Rng(seed);
  const p = conv2dParams(
    testCase.x,
    testCase.w,
    testCase.stride,
    testCase.padding,
    testCase.groups,
  );
  const x = random(rng, p.n * p.c * p.h * p.w);
  const w = random(rng, testCase.w.reduce((s, d) => s * d));
  const bias = random(rng, p.o);
  const dy = random(rng, p.n * p.o * p.outH * p.outW);
  return { p, x, w, bias, dy };
}

/** Depth of each product: taps per output, taps per input pixel bound, pixels per weight. */
function depths(p: Conv2dParams) {
  return {
    forward: (p.c / p.groups) * p.kh * p.kw,
    input: (p.o / p.groups) * p.kh * p.kw,
    weight: p.n * p.outH * p.outW,
  };
}

for (const tier of simdTiers) {
  for (const testCase of cases) {
    Deno.test(`wasm conv2d ${tier}: ${testCase.name} matches the reference`, () => {
      const { p, x, w, bias, dy } = setup(testCase, 7);
      const depth = depths(p);

      const y = new Float32Array(dy.length).fill(NaN); // every element must be written
      conv2dForwardWasm(x, w, bias, p, y, tier);
      const yRef = new Float64Array(dy.length), yMag = new Float64Array(dy.length);
      conv2dForwardCpu(new Float64Array(x), new Float64Array(w), new Float64Array(bias), p, yRef);
      conv2dForwardCpu(abs(x), abs(w), abs(bias), p, yMag);
      assertWithinBound(y, yRef, yMag, depth.forward, "y");

      const dxRef = new Float64Array(x.length), dxMag = new Float64Array(x.length);
      conv2dBackwardInputCpu(new Float64Array(dy), new Float64Array(w), p, dxRef);
      conv2dBackwardInputCpu(abs(dy), abs(w), p, dxMag);
      for (const method of ["dilated", "scatter"] as const) {
        const dx = new Float32Array(x.length).fill(NaN);
        conv2dBackwardInputWasm(dy, w, p, dx, tier, method);
        // scatter: an (O/G)-long product, then up to KH·KW float32 adds per pixel.
        const input = method === "dilated" ? depth.input : p.o / p.groups + p.kh * p.kw;
        assertWithinBound(dx, dxRef, dxMag, input, `dx (${method})`);
      }

      const dw = new Float32Array(w.length).fill(NaN);
      conv2dBackwardWeightWasm(dy, x, p, dw, tier);
      const dwRef = new Float64Array(w.length), dwMag = new Float64Array(w.length);
      conv2dBackwardWeightCpu(new Float64Array(dy), new Float64Array(x), p, dwRef);
      conv2dBackwardWeightCpu(abs(dy), abs(x), p, dwMag);
      assertWithinBound(dw, dwRef, dwMag, depth.weight, "dw");
    });
  }
}

Deno.test("wasm conv2d: forward without bias, and an empty batch", () => {
  for (const tier of simdTiers) {
    const { p, x, w, dy } = setup(byName("batch 3, groups 2, stride 2, pad 0"), 3);
    const y = new Float32Array(dy.length);
    conv2dForwardWasm(x, w, null, p, y, tier);
    const yRef = new Float64Array(dy.length), yMag = new Float64Array(dy.length);
    conv2dForwardCpu(new Float64Array(x), new Float64Array(w), null, p, yRef);
    conv2dForwardCpu(abs(x), abs(w), null, p, yMag);
    assertWithinBound(y, yRef, yMag, depths(p).forward, `y without bias (${tier})`);

    const empty = conv2dParams([0, 6, 11, 10], [10, 3, 3, 3], 2, 0, 2);
    const dw = new Float32Array(w.length).fill(NaN);
    conv2dBackwardWeightWasm(new Float32Array(0), new Float32Array(0), empty, dw, tier);
    assert.deepEqual(Array.from(dw), new Array(w.length).fill(0), "dw of no images is zero");
  }
});

Deno.test("CPU backend: conv2d runs the wasm kernels of the current tier, the reference for float64; ref runs the reference", () => {
  const { p, x, w, bias, dy } = setup(
    byName("groups 2, 5x5 pad 2, 13 filters per group, depth over KC"),
    5,
  );
  const store = (values: Float32Array | Float64Array) => cpuBackend.fromArray(values);
  const run = (backend: Backend = cpuBackend) => {
    const read = (s: Storage) => Array.from((s as CpuStorage).data);
    const on = (values: Float32Array) => backend.fromArray(values);
    return [
      read(backend.conv2dForward(on(x), on(w), on(bias), p)),
      read(backend.conv2dBackwardInput(on(dy), on(w), p)),
      read(backend.conv2dBackwardWeight(on(dy), on(x), p)),
    ];
  };
  try {
    for (const tier of simdTiers) {
      setSimdTier(tier);
      const y = new Float32Array(dy.length), dx = new Float32Array(x.length);
      const dw = new Float32Array(w.length);
      conv2dForwardWasm(x, w, bias, p, y, tier);
      conv2dBackwardInputWasm(dy, w, p, dx, tier);
      conv2dBackwardWeightWasm(dy, x, p, dw, tier);
      assert.deepEqual(run(), [Array.from(y), Array.from(dx), Array.from(dw)], tier);
    }
  } finally {
    setSimdTier("auto");
  }
  const y = new Float32Array(dy.length), dx = new Float32Array(x.length);
  const dw = new Float32Array(w.length);
  conv2dForwardCpu(x, w, bias, p, y);
  conv2dBackwardInputCpu(dy, w, p, dx);
  conv2dBackwardWeightCpu(dy, x, p, dw);
  assert.deepEqual(run(refBackend), [Array.from(y), Array.from(dx), Array.from(dw)], "ref");
  // float64 always takes the reference loops, whatever the tier.
  const y64 = new Float64Array(dy.length);
  conv2dForwardCpu(new Float64Array(x), new Float64Array(w), new Float64Array(bias), p, y64);
  const s = cpuBackend.conv2dForward(
    store(new Float64Array(x)),
    store(new Float64Array(w)),
    store(new Float64Array(bias)),
    p,
  );
  assert.deepEqual(Array.from((s as CpuStorage).data), Array.from(y64));
});
