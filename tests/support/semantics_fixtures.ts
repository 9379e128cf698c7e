/**
 * Reads the PyTorch fixtures of tests/fixtures/semantics/ (written by
 * tools/semantics_fixtures.py): tensors are `{shape, data}` with NaN and infinities as strings.
 *
 * @module
 */

import { fromArray, type Tensor } from "../../mod.ts";

/** A fixture tensor: shape and row-major values. */
export interface FixtureTensor {
  shape: number[];
  data: (number | string)[];
}

/** The values of a fixture tensor as numbers ("nan", "inf", "-inf" decoded). */
export function numbers(t: FixtureTensor | (number | string)[]): number[] {
  const data = Array.isArray(t) ? t : t.data;
  return data.map((v) =>
    v === "nan" ? NaN : v === "inf" ? Infinity : v === "-inf" ? -Infinity : Number(v)
  );
}

/** A fixture tensor as a float64 (or `dtype`) CPU tensor. */
export function toTensor(
  t: FixtureTensor,
  options: { dtype?: "float32" | "float64"; requiresGrad?: boolean } = {},
): Tensor {
  return fromArray(Float64Array.from(numbers(t)), t.shape, {
    dtype: options.dtype ?? "float64",
    requiresGrad: options.requiresGrad,
  });
}

/** The cases of fixture file `name` (e.g. "pool.json"). */
export function fixture<T>(name: string): T[] {
  const url = new URL(`../fixtures/semantics/${name}`, import.meta.url);
  return JSON.parse(Deno.readTextFileSync(url)).cases as T[];
}
