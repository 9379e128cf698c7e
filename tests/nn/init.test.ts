import "../../mod.ts"; // registers the CPU backend, as in any program using tessera
import assert from "node:assert/strict";
import * as init from "../../nn/init.ts";
import { Conv2d, Linear, Sequential } from "../../nn/layers.ts";
import { zeros } from "../../tensor/tensor.ts";
import { Rng } from "../../tensor/random.ts";
import { alexnetMini } from "../../models/alexnet.ts";

function moments(
  values: ArrayLike<number>,
): { mean: number; std: number; min: number; max: number } {
  let sum = 0, sumSq = 0, min = Infinity, max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    sumSq += values[i] * values[i];
    min = Math.min(min, values[i]);
    max = Math.max(max, values[i]);
  }
  const mean = sum / values.length;
  return { mean, std: Math.sqrt(sumSq / values.length - mean * mean), min, max };
}

// Weight [out 64, in 32, 3, 3]: fanIn = 32 * 9 = 288, fanOut = 64 * 9 = 576.
const SHAPE = [64, 32, 3, 3];
const FAN_IN = 288, FAN_OUT = 576;

// name, initialiser, expected std, bound (uniform families only)
const cases: [string, (t: ReturnType<typeof zeros>) => void, number, number | null][] = [
  ["normal(0, 0.01)", (t) => init.normal(t, 0, 0.01, 1), 0.01, null],
  ["uniform(-0.5, 0.5)", (t) => init.uniform(t, -0.5, 0.5, 1), 1 / Math.sqrt(12), 0.5],
  ["kaimingNormal", (t) => init.kaimingNormal(t, { rng: 1 }), Math.sqrt(2 / FAN_IN), null],
  [
    "kaimingNormal fanOut",
    (t) => init.kaimingNormal(t, { mode: "fanOut", rng: 1 }),
    Math.sqrt(2 / FAN_OUT),
    null,
  ],
  [
    "kaimingUniform",
    (t) => init.kaimingUniform(t, { rng: 1 }),
    Math.sqrt(2 / FAN_IN),
    Math.SQRT2 * Math.sqrt(3 / FAN_IN),
  ],
  [
    "xavierUniform",
    (t) => init.xavierUniform(t, { rng: 1 }),
    Math.sqrt(2 / (FAN_IN + FAN_OUT)),
    Math.sqrt(6 / (FAN_IN + FAN_OUT)),
  ],
  [
    "xavierNormal",
    (t) => init.xavierNormal(t, { rng: 1 }),
    Math.sqrt(2 / (FAN_IN + FAN_OUT)),
    null,
  ],
];

for (const [name, fill, std, bound] of cases) {
  Deno.test(`init.${name}: mean 0, std ${std.toPrecision(3)}${bound ? `, within ±${bound.toPrecision(3)}` : ""}`, () => {
    const t = zeros(SHAPE);
    fill(t);
    const m = moments(t.dataSync());
    // 18,432 samples: the sample std is within ~1% of the true one, the mean within 3 std/sqrt(n).
    assert.ok(Math.abs(m.mean) < 3 * std / Math.sqrt(t.size), `mean ${m.mean}`);
    assert.ok(Math.abs(m.std / std - 1) < 0.03, `std ${m.std}, expected ${std}`);
    if (bound !== null) assert.ok(m.min >= -bound && m.max < bound, `range [${m.min}, ${m.max}]`);
    else assert.ok(m.max > 3 * std, "normal tails reach past 3 std");
  });
}

Deno.test("init: seeded (same seed, same values; a shared Rng advances); constant and zeros", () => {
  const a = init.normal(zeros([100]), 0, 1, 5).dataSync();
  const b = init.normal(zeros([100]), 0, 1, 5).dataSync();
  assert.deepEqual(a, b);
  const rng = new Rng(5);
  const first = init.normal(zeros([100]), 0, 1, rng).dataSync();
  const second = init.normal(zeros([100]), 0, 1, rng).dataSync();
  assert.deepEqual(first, a);
  assert.notDeepEqual(second, first);
  assert.ok(init.constant(zeros([3]), 1.5).dataSync().every((v) => v === 1.5));
  assert.ok(init.zeros(init.constant(zeros([3]), 2)).dataSync().every((v) => v === 0));
  assert.deepEqual(init.fans([10, 4]), { fanIn: 4, fanOut: 10 });
  assert.throws(() => init.fans([3]), /at least 2 dimensions/);
  assert.equal(init.gain("relu"), Math.SQRT2);
});

Deno.test("alexnetInit: N(0, 0.01²) weights; biases 1 in conv2, conv4, conv5, fc6, fc7, else 0", () => {
  const model = alexnetMini({ init: "paper" });
  const biasOne = new Set(["conv2", "conv4", "conv5", "fc6", "fc7"]);
  for (const [name, p] of model.namedParameters()) {
    const [layer, kind] = name.split(".");
    const values = p.dataSync();
    if (kind === "bias") {
      const expected = biasOne.has(layer) ? 1 : 0;
      assert.ok(values.every((v) => v === expected), `${name} should be all ${expected}`);
    } else if (p.size > 5000) {
      const m = moments(values);
      assert.ok(Math.abs(m.std / 0.01 - 1) < 0.05, `${name}: std ${m.std}`);
    }
  }
  const fourConvs = new Sequential([new Conv2d(1, 1, 1), new Linear(1, 1)]);
  assert.throws(() => init.alexnetInit(fourConvs), /expected 5 convolutions .* found 1 \(0\)/);
});

Deno.test("heInit: Kaiming normal weights, zero biases", () => {
  const model = alexnetMini({ init: "he" });
  const conv3 = model.namedParameters().get("conv3.weight")!;
  const m = moments(conv3.dataSync());
  assert.ok(Math.abs(m.std / Math.sqrt(2 / (64 * 9)) - 1) < 0.03, `conv3 std ${m.std}`);
  for (const [name, p] of model.namedParameters()) {
    if (name.endsWith(".bias")) assert.ok(p.dataSync().every((v) => v === 0), name);
  }
});
