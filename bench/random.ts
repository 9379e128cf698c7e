/**
 * The benchmarks' inputs: float32 values in [-0.5, 0.5) from a 32-bit linear congruential
 * generator, cheap enough to fill hundreds of megabytes and the same for a seed everywhere.
 *
 * @module
 */

/** `length` float32 values in [-0.5, 0.5), determined by `seed`. */
export function randomFloat32(length: number, seed: number): Float32Array {
  const values = new Float32Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = state / 2 ** 32 - 0.5;
  }
  return values;
}
