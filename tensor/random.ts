/**
 * Seeded random numbers. Two kinds, both reproducible from a seed:
 *
 * - {@link Rng}: a sequential generator (xoshiro128**) for initialisation, shuffling and
 *   augmentation. Its whole state is four 32-bit words, so a checkpoint can store it and a
 *   resumed run continues with exactly the same numbers.
 * - {@link counterHash}: a counter-based hash, `random(seed, index)`. Element `i` of a dropout
 *   mask depends only on `(seed, i)`, so the CPU and the GPU draw the same mask, and backward
 *   recomputes it instead of storing it. The WGSL twin lives in `gpu/kernels/dropout.ts`.
 *
 * ## The global generator
 *
 * As in PyTorch, everything random that is not given a seed draws from one global generator:
 * `randn`, `rand`, the default initialisation of `Linear` and `Conv2d`, the `init.*`
 * functions, `dropout` and the `Dropout` layer's stream of mask seeds. So two `new Linear(8, 8)`
 * differ, and `randn([3])` twice gives two different draws. `manualSeed(n)` restarts it: a
 * script that calls `manualSeed(0)` first produces the same numbers on every run. An explicit
 * `seed` (or `rng`) option bypasses the global generator and always gives the same values.
 *
 * To resume a run exactly, save {@link getRngState} in the checkpoint and pass it to
 * {@link setRngState} before continuing (the generator is four 32-bit words).
 *
 * @module
 */

import { checkArgument } from "./options.ts";

/** Integer hash with good avalanche ("lowbias32", Chris Wellons); a bijection on u32. */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Counter-based random u32 for element `index` of stream `seed`:
 * `mix32(mix32(index ^ mix32(seed)) + seed)`. Every operation is u32 arithmetic, so WGSL
 * computes the same bits.
 */
export function counterHash(seed: number, index: number): number {
  return mix32((mix32((index ^ mix32(seed >>> 0)) >>> 0) + (seed >>> 0)) >>> 0);
}

/** Uniform float in [0, 1) from the top 24 bits of {@link counterHash} (exact in float32). */
export function counterUniform(seed: number, index: number): number {
  return (counterHash(seed, index) >>> 8) / 16777216;
}

/** The four 32-bit words of an {@link Rng}: enough to resume its sequence exactly. */
export type RngState = [number, number, number, number];

/**
 * Sequential seeded PRNG (xoshiro128**, Blackman and Vigna 2018), seeded through splitmix32
 * so that nearby seeds give unrelated streams.
 */
export class Rng {
  #s: Uint32Array = new Uint32Array(4);
  #spareNormal: number | null = null;

  /** Creates a generator; the same seed (an integer in [0, 2^32)) always yields the same sequence. */
  constructor(seed = 0) {
    checkSeed("Rng", seed);
    let z = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      this.#s[i] = mix32(z);
    }
    if (this.#s.every((w) => w === 0)) this.#s[0] = 1;
  }

  /** Next uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n > 0) || !Number.isInteger(n)) {
      throw new RangeError(`Rng.int: n must be a positive integer, got ${n}`);
    }
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal sample (Box-Muller, both values used). */
  normal(mean = 0, std = 1): number {
    if (this.#spareNormal !== null) {
      const z = this.#spareNormal;
      this.#spareNormal = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spareNormal = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** Shuffles `array` in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    checkArgument("Rng.shuffle", "array", array, "array");
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /** A permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** The generator's state; pass it to {@link Rng.fromState} to continue the sequence. */
  state(): RngState {
    if (this.#spareNormal !== null) {
      // A cached Box-Muller value is not part of the four words: drop it so that the saved
      // state and the live generator continue identically.
      this.#spareNormal = null;
    }
    return [this.#s[0], this.#s[1], this.#s[2], this.#s[3]];
  }

  /** Restores a generator saved with {@link Rng.state}. */
  static fromState(state: RngState): Rng {
    if (
      !Array.isArray(state) || state.length !== 4 ||
      state.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff)
    ) {
      throw new RangeError(`Rng.fromState: expected four u32 words, got ${JSON.stringify(state)}`);
    }
    const rng = new Rng(0);
    rng.#s.set(state);
    return rng;
  }
}

/**
 * Throws unless `seed` is an integer in [0, 2^32): a larger, negative or fractional seed would
 * otherwise be wrapped silently onto another seed's sequence.
 */
export function checkSeed(op: string, seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`${op}: seed must be an integer in [0, 4294967295], got ${seed}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The global generator

/** Seed of the global generator when no `manualSeed` was called (fixed, as in PyTorch). */
const DEFAULT_SEED = 0;

let global = new Rng(DEFAULT_SEED);

/**
 * Restarts the global generator from `seed` (an integer in [0, 2^32)), like
 * `torch.manual_seed`: every random factory, layer initialisation and dropout mask drawn
 * afterwards without its own seed is then the same on every run.
 *
 * @example Reproducible runs
 * ```ts
 * import assert from "node:assert/strict";
 * import { Linear, manualSeed, randn } from "../mod.ts";
 *
 * manualSeed(42);
 * const a = randn([3]);
 * const layerA = new Linear(4, 2);
 * manualSeed(42); // restart: the same draws again, in the same order
 * assert.deepEqual(randn([3]).dataSync(), a.dataSync());
 * assert.deepEqual(new Linear(4, 2).weight.dataSync(), layerA.weight.dataSync());
 * // Between restarts every draw is fresh: two layers get different weights.
 * assert.notDeepEqual(new Linear(4, 2).weight.dataSync(), layerA.weight.dataSync());
 * ```
 */
export function manualSeed(seed: number): void {
  checkSeed("manualSeed", seed);
  global = new Rng(seed);
}

/**
 * The global generator's state (four u32 words), like `torch.get_rng_state`: store it in a
 * checkpoint so that a resumed run draws exactly the numbers an uninterrupted one would.
 */
export function getRngState(): RngState {
  return global.state();
}

/** Restores a state returned by {@link getRngState} (validated: four u32 words). */
export function setRngState(state: RngState): void {
  checkArgument("setRngState", "state", state, "array");
  global = Rng.fromState(state);
}

/**
 * The generator that a random source names: `rng` itself, a fresh one for a seed, or the
 * global generator when both are undefined. The global one is for the library's own draws;
 * users restart it with {@link manualSeed}.
 */
export function generator(source?: Rng | number): Rng {
  if (source === undefined) return global;
  return typeof source === "number" ? new Rng(source) : source;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
