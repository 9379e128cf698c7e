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
 * @module
 */

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

  /** Creates a generator; the same seed always yields the same sequence. */
  constructor(seed = 0) {
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
    if (state.length !== 4 || state.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff)) {
      throw new RangeError(`Rng.fromState: expected four u32 words, got ${JSON.stringify(state)}`);
    }
    const rng = new Rng(0);
    rng.#s.set(state);
    return rng;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
