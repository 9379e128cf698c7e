import assert from "node:assert/strict";
import { decodePng, isPng } from "../../data/codecs.ts";
import {
  comparisonChartPng,
  filterGridPng,
  lineChartPng,
  niceTicks,
  trainingCurvesPng,
} from "../../examples/alexnet/plot.ts";

type Rgb = [number, number, number];

/** Decodes PNG bytes into a pixel reader. */
async function decoded(bytes: Uint8Array) {
  assert.ok(isPng(bytes), "not a PNG");
  const { data, width, height } = await decodePng(bytes);
  const plane = width * height;
  const pixel = (x: number, y: number): Rgb => {
    const i = y * width + x;
    return [data[i], data[plane + i], data[2 * plane + i]];
  };
  /** Pixels in [x0, x1) x [y0, y1) for which `test` holds. */
  const count = (
    test: (rgb: Rgb) => boolean,
    [x0, y0, x1, y1]: [number, number, number, number],
  ): { n: number; minX: number; maxX: number } => {
    let n = 0, minX = Infinity, maxX = -Infinity;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        if (!test(pixel(x, y))) continue;
        n++;
        minX = Math.min(minX, x);
        maxX = Math.max(maxX, x);
      }
    }
    return { n, minX, maxX };
  };
  return { width, height, pixel, count };
}

/** The colour, allowing for anti-aliasing at a line's edges (palette colours differ by more). */
const isColor = (color: Rgb) => (rgb: Rgb) => rgb.every((v, i) => Math.abs(v - color[i]) <= 40);
const isDark = (rgb: Rgb) => rgb.every((v) => v < 100);

Deno.test("niceTicks: steps are 1, 2 or 5 times a power of ten and cover the data", () => {
  const cases: [number, number, number, number[]][] = [
    [0, 1, 0.2, [0, 0.2, 0.4, 0.6, 0.8, 1]],
    [0.23, 2.27, 0.5, [0, 0.5, 1, 1.5, 2, 2.5]],
    [1, 30, 10, [0, 10, 20, 30]],
    [0, 0.30000000000000004, 0.1, [0, 0.1, 0.2, 0.3]],
    [-3, 7, 2, [-4, -2, 0, 2, 4, 6, 8]],
    [5, 5, 0.2, [4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6]],
    [NaN, NaN, 0.2, [0, 0.2, 0.4, 0.6, 0.8, 1]],
    [Infinity, -Infinity, 0.2, [0, 0.2, 0.4, 0.6, 0.8, 1]],
  ];
  for (const [min, max, step, values] of cases) {
    const ticks = niceTicks(min, max);
    assert.equal(ticks.step, step, `step for [${min}, ${max}]`);
    assert.deepEqual(ticks.values, values, `ticks for [${min}, ${max}]`);
    assert.equal(ticks.min, values[0]);
    assert.equal(ticks.max, values[values.length - 1]);
  }
});

Deno.test("lineChartPng: image has the requested size", async () => {
  const series = [{ name: "a", points: [[0, 1], [1, 2]] as [number, number][] }];
  for (const [width, height] of [[800, 500], [640, 400], [1600, 1000]]) {
    const image = await decoded(lineChartPng({ title: "T", xLabel: "X", series, width, height }));
    assert.deepEqual([image.width, image.height], [width, height]);
  }
  const byDefault = await decoded(lineChartPng({ title: "T", xLabel: "X", series }));
  assert.deepEqual([byDefault.width, byDefault.height], [800, 500]);
});

Deno.test("lineChartPng: each series' colour appears in the plot area", async () => {
  const red: Rgb = [200, 0, 0];
  const green: Rgb = [0, 150, 0];
  const purple: Rgb = [120, 0, 200];
  // Two diagonals crossing the middle of the plot; the third colour is never drawn.
  const image = await decoded(lineChartPng({
    title: "",
    xLabel: "",
    series: [
      { name: "up", points: [[0, 0], [10, 10]], color: red },
      { name: "down", points: [[0, 10], [10, 0]], color: green, dashed: true },
    ],
  }));
  const middle: [number, number, number, number] = [240, 100, 560, 300];
  assert.ok(image.count(isColor(red), middle).n > 300, "red line in the middle");
  assert.ok(image.count(isColor(green), middle).n > 100, "dashed green line in the middle");
  assert.equal(image.count(isColor(purple), [0, 0, 800, 500]).n, 0);
});

Deno.test("lineChartPng: right-axis tick labels only when a series uses the right axis", async () => {
  const left = { name: "loss", points: [[0, 2], [5, 0.5]] as [number, number][] };
  const right = { ...left, name: "acc", axis: "right" as const };
  // The right margin of an 800-wide chart: right of the last x tick label's half-width.
  const rightMargin: [number, number, number, number] = [780, 40, 800, 380];
  const without = await decoded(lineChartPng({ title: "", xLabel: "", series: [left] }));
  assert.equal(without.count(isDark, rightMargin).n, 0);
  const withRight = await decoded(
    lineChartPng({ title: "", xLabel: "", series: [left, right], yLabelRight: "ACC" }),
  );
  assert.ok(withRight.count(isDark, rightMargin).n > 0);
});

Deno.test("lineChartPng: the title is dark text centred in the band above the plot", async () => {
  const title = "TRAINING";
  const series = [{ name: "a", points: [[0, 1], [1, 2]] as [number, number][] }];
  const image = await decoded(lineChartPng({ title, xLabel: "", series }));
  // At 800x500 rows [0, 45) hold only the title (18 px text), centred over the plot.
  const band = image.count(isDark, [0, 0, 800, 45]);
  assert.ok(band.n > 200, `only ${band.n} dark pixels in the title band`);
  assert.ok(band.maxX - band.minX + 1 <= 8 * 18, "band holds only the title");
  assert.ok(Math.abs((band.minX + band.maxX) / 2 - 400) < 40, "title centred");
  const untitled = await decoded(lineChartPng({ title: "", xLabel: "", series }));
  assert.equal(untitled.count(isDark, [200, 0, 600, 15]).n, 0);
});

Deno.test("lineChartPng: NaN, infinite, empty and one-point input draw without throwing", async () => {
  const orange: Rgb = [250, 120, 0];
  const cases: [string, [number, number][][]][] = [
    ["no series", []],
    ["an empty series", [[]]],
    ["all NaN", [[[NaN, NaN], [1, NaN]]]],
    ["a NaN gap", [[[0, 1], [1, NaN], [2, 3], [3, Infinity], [4, 2]]]],
    ["one point", [[[3, 0.25]]]],
  ];
  for (const [what, pointLists] of cases) {
    const bytes = lineChartPng({
      title: what,
      xLabel: "x",
      series: pointLists.map((points) => ({ name: what, points, color: orange })),
    });
    const image = await decoded(bytes);
    assert.deepEqual([image.width, image.height], [800, 500], what);
    if (what === "one point") {
      // An isolated point is a square marker in the middle of the plot (and a legend swatch).
      assert.ok(image.count(isColor(orange), [200, 80, 600, 320]).n >= 9, what);
    }
  }
});

Deno.test("lineChartPng: rejects a size outside [64, 8192]", () => {
  assert.throws(
    () => lineChartPng({ title: "", xLabel: "", series: [], width: 10, height: 500 }),
    /lineChartPng: width must be an integer in \[64, 8192\], got 10/,
  );
});

Deno.test("trainingCurvesPng: loss on the left, accuracy in percent on the right", async () => {
  const metrics = [1, 2, 3, 4, 5].map((epoch) => ({
    epoch,
    trainLoss: 2 / epoch,
    valLoss: epoch === 3 ? NaN : 2.2 / epoch,
    trainAccuracy: 0.5 + 0.08 * epoch,
    valAccuracy: 0.45 + 0.08 * epoch,
  }));
  const image = await decoded(trainingCurvesPng(metrics, { title: "RUN" }));
  assert.deepEqual([image.width, image.height], [800, 500]);
  const blue: Rgb = [31, 119, 180];
  const orange: Rgb = [255, 127, 14];
  const green: Rgb = [44, 160, 44];
  const plotArea: [number, number, number, number] = [120, 60, 680, 380];
  assert.ok(image.count(isColor(blue), plotArea).n > 300, "loss curves");
  assert.ok(image.count(isColor(orange), plotArea).n > 300, "accuracy curves");
  assert.equal(image.count(isColor(green), plotArea).n, 0, "no test series without test fields");
  // Accuracies of 0.58..0.9 on a 0-100 % axis sit in the top half of the plot.
  const accuracyRows = image.count(isColor(orange), [120, 60, 680, 220]).n;
  assert.equal(accuracyRows, image.count(isColor(orange), plotArea).n);
});

Deno.test("trainingCurvesPng: test metrics, when present, are drawn in their own colour", async () => {
  const metrics = [1, 2, 3].map((epoch) => ({
    epoch,
    trainLoss: 2 / epoch,
    valAccuracy: 0.5 + 0.1 * epoch,
    testAccuracy: 0.48 + 0.1 * epoch,
  }));
  const image = await decoded(trainingCurvesPng(metrics));
  const green: Rgb = [44, 160, 44];
  // The test accuracies (58-78 %) sit in the upper half of the plot.
  assert.ok(image.count(isColor(green), [120, 60, 680, 220]).n > 100, "test accuracy curve");
  assert.equal(image.count(isColor(green), [120, 221, 680, 380]).n, 0);
});

Deno.test("comparisonChartPng: one colour per run", async () => {
  const runs = ["full", "no lrn", "no dropout"].map((name, k) => ({
    name,
    points: [0, 1, 2, 3, 4].map((x): [number, number] => [x, 50 + 10 * x - 5 * k]),
  }));
  const image = await decoded(
    comparisonChartPng(runs, { title: "ABLATION", xLabel: "epoch", yLabel: "acc" }),
  );
  for (const color of [[31, 119, 180], [255, 127, 14], [44, 160, 44]] as Rgb[]) {
    assert.ok(image.count(isColor(color), [100, 60, 760, 380]).n > 200, `run colour ${color}`);
  }
});

Deno.test("filterGridPng: each tile shows its filter normalized to its own min/max", async () => {
  // Two 3-channel 2x2 filters with different scales: per-filter normalization maps both to
  // the full [0, 255] range. Filter 0 spans [-1, 1], filter 1 spans [10, 22].
  const filter0 = [-1, 0, 1, 0.5, /* G */ 0, 0, 0, 0, /* B */ 1, -1, 0.5, -0.5];
  const filter1 = [10, 12, 14, 16, /* G */ 18, 20, 22, 10, /* B */ 11, 13, 15, 17];
  const weights = new Float32Array([...filter0, ...filter1]);
  const scale = 3, gap = 1;
  const image = await decoded(
    filterGridPng(weights, [2, 3, 2, 2], { scale, gap, columns: 2 }),
  );
  assert.deepEqual([image.width, image.height], [1 + 2 * (6 + 1), 1 + 1 * (6 + 1)]);
  const normalized = (v: number, min: number, max: number) =>
    Math.round((v - min) / (max - min) * 255);
  for (const [o, filter, min, max] of [[0, filter0, -1, 1], [1, filter1, 10, 22]] as const) {
    const tileX = gap + o * (2 * scale + gap);
    for (let ky = 0; ky < 2; ky++) {
      for (let kx = 0; kx < 2; kx++) {
        const expected = [0, 1, 2].map((c) => normalized(filter[c * 4 + ky * 2 + kx], min, max));
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) {
            const x = tileX + kx * scale + dx, y = gap + ky * scale + dy;
            assert.deepEqual(image.pixel(x, y), expected, `filter ${o} at (${x}, ${y})`);
          }
        }
      }
    }
  }
  // Gaps are white.
  assert.deepEqual(image.pixel(0, 0), [255, 255, 255]);
  assert.deepEqual(image.pixel(7, 3), [255, 255, 255]);
});

Deno.test("filterGridPng: grayscale, channel mean, constant filters", async () => {
  // C = 1: the value itself; C = 2: the mean of the two channels; a constant filter: mid-gray.
  const cases: [string, number[], number, number[]][] = [
    ["gray", [0, 1, 2, 4], 1, [0, 64, 128, 255]],
    ["mean of 2", [0, 2, 4, 6, /* second channel */ 2, 2, 2, 2], 2, [0, 85, 170, 255]],
    ["constant", [3, 3, 3, 3], 1, [128, 128, 128, 128]],
  ];
  for (const [what, values, channels, expected] of cases) {
    const image = await decoded(
      filterGridPng(new Float32Array(values), [1, channels, 2, 2], { scale: 1, gap: 0 }),
    );
    const got = [[0, 0], [1, 0], [0, 1], [1, 1]].map(([x, y]) => image.pixel(x, y));
    assert.deepEqual(got, expected.map((v) => [v, v, v]), what);
  }
});

Deno.test("filterGridPng: groups = 2 puts the second half in a block below", async () => {
  // Four 2x2 gray filters, zero but for a bright bottom-right weight: each tile is black with
  // a white corner, so a tile drawn in the wrong place shows up as a white top-left pixel.
  const filters = 4, scale = 2, gap = 1;
  const weights = new Float32Array(filters * 4);
  for (let o = 0; o < filters; o++) weights[o * 4 + 3] = 1; // bottom-right pixel is the max
  const image = await decoded(
    filterGridPng(weights, [filters, 1, 2, 2], { scale, gap, groups: 2, columns: 2 }),
  );
  const tile = 2 * scale;
  const blockHeight = 1 * (tile + gap);
  assert.deepEqual([image.width, image.height], [
    gap + 2 * (tile + gap),
    gap + 2 * blockHeight + 4 * gap,
  ]);
  for (let o = 0; o < filters; o++) {
    const group = Math.floor(o / 2), index = o % 2;
    const x = gap + index * (tile + gap), y = gap + group * (blockHeight + 4 * gap);
    assert.deepEqual(image.pixel(x, y), [0, 0, 0], `filter ${o} top-left`);
    assert.deepEqual(image.pixel(x + tile - 1, y + tile - 1), [255, 255, 255], `filter ${o}`);
  }
  // The rows between the blocks are white.
  for (let y = gap + blockHeight; y < gap + blockHeight + 4 * gap; y++) {
    assert.deepEqual(image.pixel(gap, y), [255, 255, 255], `separator row ${y}`);
  }
});

Deno.test("filterGridPng: errors name the argument and the values", () => {
  assert.throws(
    () => filterGridPng(new Float32Array(10), [2, 3, 2, 2]),
    /filterGridPng: shape \[2,3,2,2\] needs 24 weights, got 10/,
  );
  assert.throws(
    () => filterGridPng(new Float32Array(36), [3, 3, 2, 2], { groups: 2 }),
    /groups must be a positive divisor of 3 filters, got 2/,
  );
  assert.throws(
    () => filterGridPng(new Float32Array(12), [1, 3, 2, 2], { scale: 0 }),
    /scale must be an integer >= 1, got 0/,
  );
});
