/**
 * The experiments' statistics (examples/alexnet/experiments/stats.ts) against values from SciPy 1.17
 * (`scipy.stats.t.ppf`, `t.cdf`, `ttest_ind(..., equal_var=False).confidence_interval()`),
 * and the verdict rule of the ablation table.
 */

import assert from "node:assert/strict";
import {
  holm,
  mean,
  minimumDetectableEffect,
  pairedInterval,
  pValue,
  seedsFor,
  standardDeviation,
  studentTCdf,
  studentTQuantile,
  verdict,
  welchInterval,
} from "../../examples/alexnet/experiments/stats.ts";

const close = (actual: number, expected: number, tolerance: number, what: string) =>
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `${what}: ${actual}, expected ${expected} ± ${tolerance}`,
  );

Deno.test("stats: mean and sample standard deviation", () => {
  assert.equal(mean([1, 2, 3, 4]), 2.5);
  close(standardDeviation([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7), 1e-12, "sd");
  assert.ok(Number.isNaN(standardDeviation([3])));
  assert.throws(() => mean([]), /stats\.mean: the sample is empty/);
});

Deno.test("stats: Student's t quantiles and CDF match SciPy", () => {
  // [df, t.ppf(0.975, df)]
  const cases: [number, number][] = [
    [1, 12.706204736174694],
    [2, 4.302652729749462],
    [4, 2.7764451051977934],
    [4.5, 2.6589123472044034],
    [10, 2.228138851986274],
    [30, 2.0422724563012378],
    [1e6, 1.959966356814107],
  ];
  for (const [df, expected] of cases) {
    close(studentTQuantile(0.975, df), expected, 1e-7 * expected, `t(0.975, ${df})`);
    close(studentTQuantile(0.025, df), -expected, 1e-7 * expected, `t(0.025, ${df})`);
  }
  close(studentTCdf(1.5, 3), 0.8847080673775886, 1e-10, "cdf(1.5, 3)");
  close(studentTCdf(-2, 7.3), 0.041970519667051565, 1e-10, "cdf(-2, 7.3)");
  assert.throws(() => studentTQuantile(1, 3), /p must be in \(0, 1\)/);
  assert.throws(() => studentTCdf(1, 0), /df must be positive/);
});

Deno.test("stats: Welch's interval matches SciPy's, and degenerate samples are explicit", () => {
  const d = welchInterval([1, 2, 3], [4, 5, 6]);
  assert.equal(d.estimate, 3);
  close(d.df, 4, 1e-12, "df");
  close(d.low, 3 - 2.7764451051977934 * Math.sqrt(2 / 3), 1e-7, "low");
  close(d.high, 3 + 2.7764451051977934 * Math.sqrt(2 / 3), 1e-7, "high");
  // Unequal sizes and variances: ttest_ind([.14, .19, .20, .18], [.12, .15, .11], equal_var=False)
  const e = welchInterval([0.12, 0.15, 0.11], [0.14, 0.19, 0.2, 0.18]);
  close(e.df, 4.937445329676824, 1e-9, "df");
  close(e.low, 0.0048643064738883995, 1e-8, "low");
  close(e.high, 0.09680236019277823, 1e-8, "high");
  // One value: an estimate but no interval. No spread at all: the point itself.
  const one = welchInterval([1], [2, 3]);
  assert.equal(one.estimate, 1.5);
  assert.ok(Number.isNaN(one.low) && Number.isNaN(one.high));
  assert.deepEqual(welchInterval([1, 1], [2, 2]), { estimate: 1, low: 1, high: 1, df: Infinity });
  assert.throws(() => welchInterval([1, 2], [3, 4], 1.2), /confidence must be in \(0, 1\)/);
});

Deno.test("stats: the verdict needs the interval to exclude 0 on one side", () => {
  const cases: [[number, number], 1 | -1, string][] = [
    [[0.5, 2], 1, "agrees"],
    [[-2, -0.5], 1, "disagrees"],
    [[-0.5, 2], 1, "inconclusive"],
    [[0, 2], 1, "inconclusive"],
    [[-2, -0.5], -1, "agrees"],
    [[0.5, 2], -1, "disagrees"],
    [[NaN, NaN], 1, "inconclusive"],
  ];
  for (const [[low, high], sign, expected] of cases) {
    assert.equal(verdict({ low, high }, sign), expected, `[${low}, ${high}] vs ${sign}`);
  }
});

Deno.test("stats: the paired interval matches SciPy's ttest_rel / ttest_1samp", () => {
  const d = pairedInterval([0, 0, 0, 0], [1, 2, 3, 5]);
  assert.equal(d.estimate, 2.75);
  close(d.low, 0.03246911620398496, 1e-8, "low");
  close(d.high, 5.467530883796015, 1e-8, "high");
  const e = pairedInterval([1.2, 0.85, 1.49], [0.78, 0.9, 1.0]);
  close(e.low, -1.016146440711664, 1e-8, "low");
  close(e.high, 0.4428131073783307, 1e-8, "high");
  assert.equal(e.df, 2);
  assert.ok(Number.isNaN(pairedInterval([1], [2]).low));
  assert.throws(() => pairedInterval([1, 2], [3]), /2 values against 1/);
});

// Reference values written by tests/fixtures/experiments_stats.py (SciPy 1.10.1).
const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/experiments_stats.json", import.meta.url)),
);

Deno.test("stats: two-sided p-values match SciPy's ttest_ind (Welch) and ttest_rel", () => {
  close(pValue(fixture.a, fixture.b, false), fixture.welchP, 1e-9, "Welch p");
  close(pValue(fixture.a, fixture.b, true), fixture.pairedP, 1e-9, "paired p");
  assert.ok(Number.isNaN(pValue([1], [2], false)));
});

Deno.test("stats: Holm's step-down rejects what the by-hand reference rejects", () => {
  const out = holm(fixture.holm.p);
  assert.deepEqual(out.map((o) => o.rejected), fixture.holm.rejected);
  // Sorted: 0.005 at 0.05/5, 0.01 at 0.05/4, 0.03 at 0.05/3 fails and stops the rest.
  assert.deepEqual(out.map((o) => o.level), [0.05 / 4, 0.05 / 2, 0.05 / 3, 0.05 / 5, 0.05 / 1]);
  assert.deepEqual(holm([0.001, 0.04, 0.011]).map((o) => o.rejected), [true, true, true]);
  // After the stop nothing is rejected: 0.026 > 0.05/2 stops it, 0.03 <= 0.05/1 is not rejected.
  assert.deepEqual(holm([0.001, 0.03, 0.026]).map((o) => o.rejected), [true, false, false]);
  assert.deepEqual(holm([NaN, 0.001]).map((o) => o.rejected), [false, true]);
});

Deno.test("stats: minimum detectable effect and seed counts match SciPy's t quantiles", () => {
  for (const [n, sd, design, alpha, expected] of fixture.mde) {
    close(minimumDetectableEffect(n, sd, design, alpha), expected, 1e-8, `MDE ${n} ${design}`);
  }
  // The figure: 3 seeds at sd 0.6 detect ~1.8 points at 80% power.
  close(minimumDetectableEffect(3, 0.6, "welch"), 1.82, 0.005, "3 seeds");
  // The approximation is within 0.01 of the exact (noncentral t) power at its own MDE.
  close(fixture.exactPowerAtMde, 0.8, 0.011, "exact power");
  const n = seedsFor(1, 0.93, "welch", 0.05 / 7);
  assert.ok(minimumDetectableEffect(n, 0.93, "welch", 0.05 / 7) <= 1);
  assert.ok(minimumDetectableEffect(n - 1, 0.93, "welch", 0.05 / 7) > 1);
  assert.equal(seedsFor(10, 0.1, "paired"), 2);
});
