/**
 * The one float comparison of the test suite: |actual − expected| <= atol + rtol·|expected|
 * elementwise (NaN matches only NaN, an infinity only the same infinity). Pure TypeScript, no Deno API and no test harness, so the
 * same check runs in `deno test` and in a browser page.
 *
 * @module
 */

/** Tolerances of {@link assertClose}, and what the values are (named in the failure). */
export interface CloseOptions {
  /** Relative tolerance (default 1e-5). */
  rtol?: number;
  /** Absolute tolerance (default 1e-6). */
  atol?: number;
  /** Names the values in the failure message (default "values"). */
  what?: string;
}

/**
 * Why `actual` is not close to `expected` (length, or the worst element with both values and
 * the tolerances), or null when it is. Numbers compare as one-element arrays.
 */
export function closeMismatch(
  actual: ArrayLike<number> | number,
  expected: ArrayLike<number> | number,
  { rtol = 1e-5, atol = 1e-6, what = "values" }: CloseOptions = {},
): string | null {
  const a = typeof actual === "number" ? [actual] : actual;
  const e = typeof expected === "number" ? [expected] : expected;
  if (a.length !== e.length) return `${what}: length ${a.length} != expected ${e.length}`;
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    // An infinity matches only the same infinity (Inf − Inf and rtol·Inf are NaN, not a miss).
    const infinite = !Number.isFinite(e[i]) && !Number.isNaN(e[i]);
    const excess = infinite
      ? (a[i] === e[i] ? 0 : Infinity)
      : Math.abs(a[i] - e[i]) - (atol + rtol * Math.abs(e[i]));
    if (excess > worstExcess || Number.isNaN(a[i]) !== Number.isNaN(e[i])) {
      worst = i;
      worstExcess = Number.isNaN(excess) ? Infinity : excess;
    }
  }
  if (worst < 0) return null;
  return `${what}: element ${worst} is ${a[worst]}, expected ${
    e[worst]
  } (rtol ${rtol}, atol ${atol})`;
}

/** Throws {@link closeMismatch}'s message unless `actual` is close to `expected`. */
export function assertClose(
  actual: ArrayLike<number> | number,
  expected: ArrayLike<number> | number,
  options: CloseOptions = {},
): void {
  const mismatch = closeMismatch(actual, expected, options);
  if (mismatch !== null) throw new Error(mismatch);
}
