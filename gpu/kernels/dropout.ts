/**
 * WGSL for inverted dropout, with the counter-based hash of tensor/random.ts ported bit for
 * bit: `counterHash(seed, i) = mix32(mix32(i ^ mix32(seed)) + seed)`, all u32 arithmetic
 * (WGSL's u32 `*` wraps like `Math.imul`, `>>` on u32 is JS's `>>>`). So the GPU draws exactly
 * the CPU's mask, forward and backward, and tests compare masks for equality.
 *
 * The keep test `counterUniform(seed, i) >= p` is done in integers: with h = hash >> 8 (24
 * bits), h / 2^24 >= p  <=>  h >= ceil(p · 2^24), which is exact, whereas comparing against
 * a float32 p would differ from the float64 CPU test whenever p is not a float32.
 *
 * @module
 */

import {
  ELEMENT_MAIN,
  type GpuKernel,
  type GpuRuntime,
  type GpuStorage,
  packParams,
} from "../runtime.ts";
import { mapChunks } from "../chunks.ts";

/** WGSL twins of `mix32` and `counterHash` (tensor/random.ts). */
export const COUNTER_HASH_WGSL = `
fn mix32(value: u32) -> u32 {
  var x = value;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}
fn counterHash(seed: u32, index: u32) -> u32 {
  return mix32(mix32(index ^ mix32(seed)) + seed);
}`;

const dropoutKernel: GpuKernel = {
  name: "dropout",
  code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;
struct Params { n: u32, seed: u32, threshold: u32, scale: f32, offset: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${COUNTER_HASH_WGSL}
${ELEMENT_MAIN}
  if (i >= params.n) { return; }
  // offset: the index of this chunk's first element in the whole tensor.
  let keep = (counterHash(params.seed, params.offset + i) >> 8u) >= params.threshold;
  ys[i] = select(0.0, xs[i] * params.scale, keep);
}`,
};

/** y[i] = x[i] · fround(1 / (1 − p)) where counterUniform(seed, i) >= p, else 0. */
export function dropoutGpu(rt: GpuRuntime, x: GpuStorage, p: number, seed: number): GpuStorage {
  const threshold = Math.ceil(p * 16777216);
  const scale = 1 / (1 - p); // rounded to float32 by packParams, as dropoutCpu does
  return mapChunks(
    rt,
    dropoutKernel,
    x,
    (n, offset) => packParams([n, seed >>> 0, threshold, { f32: scale }, offset]),
  );
}
