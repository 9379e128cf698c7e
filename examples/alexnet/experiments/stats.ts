/**
 * The statistics behind the experiments (ablate.ts, figure1.ts): mean and sample standard
 * deviation over seeds, and Welch's t interval for a difference of two means.
 *
 * Welch (1947): for samples a (n_a values, variance s_a²) and b, the difference of means
 * d = mean(b) - mean(a) has standard error se = sqrt(s_a²/n_a + s_b²/n_b) and, approximately,
 * d / se follows Student's t with the Welch-Satterthwaite degrees of freedom
 *
 *   df = se⁴ / ((s_a²/n_a)² / (n_a - 1) + (s_b²/n_b)² / (n_b - 1)),
 *
 * so d ± t(0.975, df) · se is a 95% interval. It does not assume equal variances, which
 * ablation variants need not have. Student's t quantile comes from its CDF (the regularized
 * incomplete beta function, evaluated by its continued fraction) inverted by bisection.
 *
 * @module
 */

/** Arithmetic mean; throws on an empty sample. */
export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("stats.mean: the sample is empty");
  let total = 0;
  for (const v of values) total += v;
  return total / values.length;
}

/** Sample standard deviation (divisor n - 1); NaN for a single value. */
export function standardDeviation(values: readonly number[]): number {
  const m = mean(values);
  if (values.length < 2) return NaN;
  let squares = 0;
  for (const v of values) squares += (v - m) ** 2;
  return Math.sqrt(squares / (values.length - 1));
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, nine coefficients: about 15 significant digits). */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let sum = c[0];
  for (let i = 1; i < 9; i++) sum += c[i] / (x + i);
  const t = x + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** The continued fraction of the incomplete beta function (modified Lentz's method). */
function betaFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1, d = 1 - ((a + b) * x) / (a + 1);
  d = 1 / (Math.abs(d) < tiny ? tiny : d);
  let h = d;
  for (let m = 1; m <= 300; m++) {
    for (const even of [true, false]) {
      const numerator = even
        ? (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m))
        : -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
      d = 1 + numerator * d;
      d = 1 / (Math.abs(d) < tiny ? tiny : d);
      c = 1 + numerator / c;
      if (Math.abs(c) < tiny) c = tiny;
      h *= d * c;
      if (!even && Math.abs(d * c - 1) < 1e-15) return h;
    }
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b), for 0 <= x <= 1. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(
    logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x),
  );
  // The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
  return x < (a + 1) / (a + b + 2)
    ? (front * betaFraction(a, b, x)) / a
    : 1 - (front * betaFraction(b, a, 1 - x)) / b;
}

/** P(T <= t) for Student's t with `df` degrees of freedom (df > 0, not necessarily whole). */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`stats.studentTCdf: df must be positive, got ${df}`);
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The quantile t(p, df) of Student's t: P(T <= t) = p, for 0 < p < 1. */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) {
    throw new RangeError(`stats.studentTQuantile: p must be in (0, 1), got ${p}`);
  }
  if (!(df > 0)) throw new RangeError(`stats.studentTQuantile: df must be positive, got ${df}`);
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let low = 0, high = 1;
  while (studentTCdf(high, df) < p) high *= 2; // df = 1, p = 0.999: high reaches 512
  for (let i = 0; i < 200 && high - low > 1e-12 * high; i++) {
    const middle = (low + high) / 2;
    if (studentTCdf(middle, df) < p) low = middle;
    else high = middle;
  }
  return (low + high) / 2;
}

/** A difference of means with its confidence interval. */
export interface Difference {
  /** mean(b) - mean(a). */
  estimate: number;
  /** Lower end of the interval (NaN when either sample has fewer than 2 values). */
  low: number;
  /** Upper end. */
  high: number;
  /** Welch-Satterthwaite degrees of freedom (Infinity when both samples have no spread). */
  df: number;
}

/**
 * The standard error of mean(b) - mean(a) from each sample's own variance, and its
 * Welch-Satterthwaite degrees of freedom (each sample needs at least 2 values).
 */
function welchError(a: readonly number[], b: readonly number[]): { se: number; df: number } {
  const va = standardDeviation(a) ** 2 / a.length;
  const vb = standardDeviation(b) ** 2 / b.length;
  const df = (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  return { se: Math.sqrt(va + vb), df };
}

/**
 * Welch's interval for mean(b) - mean(a) at `confidence` (default 0.95). Each sample needs at
 * least 2 values for an interval; with fewer, low and high are NaN. Two samples without spread
 * give the point itself.
 *
 * @example
 * ```ts
 * const d = welchInterval([1, 2, 3], [4, 5, 6]); // 3, from 0.733 to 5.267 (df 4)
 * ```
 */
export function welchInterval(
  a: readonly number[],
  b: readonly number[],
  confidence = 0.95,
): Difference {
  if (!(confidence > 0 && confidence < 1)) {
    throw new RangeError(`stats.welchInterval: confidence must be in (0, 1), got ${confidence}`);
  }
  const estimate = mean(b) - mean(a);
  if (a.length < 2 || b.length < 2) return { estimate, low: NaN, high: NaN, df: NaN };
  const { se, df } = welchError(a, b);
  if (se === 0) return { estimate, low: estimate, high: estimate, df: Infinity };
  const half = studentTQuantile(1 - (1 - confidence) / 2, df) * se;
  return { estimate, low: estimate - half, high: estimate + half, df };
}

/**
 * The paired interval for mean(b - a) at `confidence` (default 0.95): Student's t on the
 * differences b[i] - a[i] (n - 1 degrees of freedom). Needs equal lengths; with fewer than 2
 * pairs, low and high are NaN.
 */
export function pairedInterval(
  a: readonly number[],
  b: readonly number[],
  confidence = 0.95,
): Difference {
  if (a.length !== b.length) {
    throw new RangeError(`stats.pairedInterval: ${a.length} values against ${b.length}`);
  }
  const d = a.map((x, i) => b[i] - x);
  const estimate = mean(d);
  if (d.length < 2) return { estimate, low: NaN, high: NaN, df: NaN };
  const half = studentTQuantile(1 - (1 - confidence) / 2, d.length - 1) *
    standardDeviation(d) / Math.sqrt(d.length);
  return { estimate, low: estimate - half, high: estimate + half, df: d.length - 1 };
}

/** How a measured difference relates to the direction a paper reports. */
export type Verdict = "agrees" | "disagrees" | "inconclusive";

/**
 * Compares an interval with the direction the paper reports (+1: the paper says the value
 * goes up, -1: down). The interval must exclude 0 on the paper's side to agree, on the other
 * side to disagree; anything else (including no interval) is inconclusive.
 */
export function verdict(difference: { low: number; high: number }, paperSign: 1 | -1): Verdict {
  const { low, high } = difference;
  if (Number.isNaN(low) || Number.isNaN(high)) return "inconclusive";
  if (paperSign * low > 0 && paperSign * high > 0) return "agrees";
  if (paperSign * low < 0 && paperSign * high < 0) return "disagrees";
  return "inconclusive";
}

/** Two-sided p-value of a difference whose interval came from Student's t (Welch or paired). */
export function pValue(a: readonly number[], b: readonly number[], paired: boolean): number {
  let t: number, df: number;
  if (paired) {
    const d = a.map((x, i) => b[i] - x);
    if (d.length < 2) return NaN;
    const se = standardDeviation(d) / Math.sqrt(d.length);
    t = mean(d) / se;
    df = d.length - 1;
  } else {
    if (a.length < 2 || b.length < 2) return NaN;
    const welch = welchError(a, b);
    t = (mean(b) - mean(a)) / welch.se;
    df = welch.df;
  }
  if (Number.isNaN(t)) return mean(b) === mean(a) ? 1 : 0; // no spread at all
  if (!Number.isFinite(t)) return 0;
  return 2 * (1 - studentTCdf(Math.abs(t), df));
}

/**
 * Holm's step-down procedure (Holm 1979) over `pValues` at family-wise level `alpha`: sorted
 * ascending, the i-th smallest (i = 0, 1, ...) is rejected while p <= alpha / (m - i); the
 * first that is not stops it. Returns, in input order, whether each is rejected and the level
 * alpha / (m - i) it was (or would have been) tested at. NaN p-values are never rejected and
 * count in m.
 */
export function holm(
  pValues: readonly number[],
  alpha = 0.05,
): { rejected: boolean; level: number }[] {
  const m = pValues.length;
  const order = [...pValues.keys()].sort((i, j) => {
    const [a, b] = [pValues[i], pValues[j]];
    return Number.isNaN(a) ? 1 : Number.isNaN(b) ? -1 : a - b;
  });
  const out: { rejected: boolean; level: number }[] = new Array(m);
  let stopped = false;
  order.forEach((index, rank) => {
    const level = alpha / (m - rank);
    const p = pValues[index];
    if (stopped || !(p <= level)) stopped = true;
    out[index] = { rejected: !stopped, level };
  });
  return out;
}

/**
 * The smallest true difference a two-sided t test at level `alpha` detects with probability
 * `power`, for `n` seeds per arm and standard deviation `sd` (of each arm for "welch", of the
 * per-seed differences for "paired"): (t(1 - alpha/2, df) + t(power, df)) · sd · sqrt(k / n),
 * k = 2 and df = 2n - 2 (two arms, equal spread), or k = 1 and df = n - 1 (paired). The
 * textbook approximation with the noncentral t replaced by the central one (e.g. Cohen 1988,
 * ch. 2; Julious 2004, Stat. Med. 23:1921, eq. 3).
 */
export function minimumDetectableEffect(
  n: number,
  sd: number,
  design: "welch" | "paired",
  alpha = 0.05,
  power = 0.8,
): number {
  if (!(n >= 2)) return NaN;
  const df = design === "paired" ? n - 1 : 2 * n - 2;
  const k = design === "paired" ? 1 : 2;
  return (studentTQuantile(1 - alpha / 2, df) + studentTQuantile(power, df)) * sd *
    Math.sqrt(k / n);
}

/** The fewest seeds (at least 2) whose {@link minimumDetectableEffect} is at most `effect`. */
export function seedsFor(
  effect: number,
  sd: number,
  design: "welch" | "paired",
  alpha = 0.05,
  power = 0.8,
): number {
  if (!(effect > 0 && sd >= 0)) {
    throw new RangeError(`stats.seedsFor: effect must be > 0 and sd >= 0, got ${effect}, ${sd}`);
  }
  let n = 2;
  while (minimumDetectableEffect(n, sd, design, alpha, power) > effect) {
    if (++n > 10_000) throw new RangeError(`stats.seedsFor: more than 10,000 seeds needed`);
  }
  return n;
}
