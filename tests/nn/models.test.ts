import "../../mod.ts"; // registers the CPU backend, as in any program using tessera
import assert from "node:assert/strict";
import {
  alexnet,
  alexnetMini,
  type AlexNetOptions,
  alexnetTorchvision,
} from "../../models/alexnet.ts";
import type { Sequential } from "../../nn/layers.ts";
import { noGrad } from "../../tensor/autograd.ts";
import { randn } from "../../tensor/tensor.ts";
import { crossEntropy } from "../../tensor/ops/softmax.ts";

/** Runs the model child by child and checks each output shape against summary()'s row. */
function assertSummaryMatchesForward(model: Sequential, inputShape: number[]): void {
  const rows = model.summary(inputShape, { print: false }).rows;
  noGrad(() => {
    let x = randn(inputShape, { seed: 1 });
    model.children().forEach(([name, layer], i) => {
      x = layer.forward(x);
      assert.equal(rows[i].name, name);
      assert.deepEqual([...x.shape], rows[i].outputShape, name);
    });
  });
}

Deno.test("alexnet(): summary() reproduces the paper's parameter counts, and a forward agrees", () => {
  const model = alexnet();
  const report = model.summary([1, 3, 227, 227], { print: false });
  const params = Object.fromEntries(
    report.rows.filter((r) => r.parameters).map((r) => [r.name, r.parameters]),
  );
  assert.deepEqual(params, {
    conv1: 34_944,
    conv2: 307_456,
    conv3: 885_120,
    conv4: 663_936,
    conv5: 442_624,
    fc6: 37_752_832,
    fc7: 16_781_312,
    fc8: 4_097_000,
  });
  assert.equal(report.totalParameters, 60_965_224);
  assert.equal(report.totalMultiplyAdds, 724_406_816);
  assert.match(report.text, /\(0\.72 GMAC\)/);
  const shapes = Object.fromEntries(report.rows.map((r) => [r.name, r.outputShape]));
  assert.deepEqual(shapes.conv1, [1, 96, 55, 55]);
  assert.deepEqual(shapes.pool1, [1, 96, 27, 27]);
  assert.deepEqual(shapes.pool2, [1, 256, 13, 13]);
  assert.deepEqual(shapes.pool5, [1, 256, 6, 6]);
  assert.deepEqual(shapes.fc8, [1, 1000]);
  // One real forward at batch 1 (about a second on the CPU) checks every propagated shape.
  assertSummaryMatchesForward(model.eval(), [1, 3, 227, 227]);
});

Deno.test("alexnetTorchvision(): torchvision's names, 61,100,840 parameters", () => {
  const model = alexnetTorchvision();
  const names = [...model.namedParameters().keys()];
  const layers = [
    "features.0",
    "features.3",
    "features.6",
    "features.8",
    "features.10",
    "classifier.1",
    "classifier.4",
    "classifier.6",
  ];
  assert.deepEqual(names, layers.flatMap((l) => [`${l}.weight`, `${l}.bias`]));
  const report = model.summary([1, 3, 224, 224], { print: false });
  assert.equal(report.totalParameters, 61_100_840);
  assert.deepEqual(report.rows.find((r) => r.name === "features.12")!.outputShape, [1, 256, 6, 6]);
  // Without dropout the classifier keeps its indices (Identity placeholders).
  const noDropout = alexnetTorchvision({ dropout: false, numClasses: 10 });
  assert.deepEqual([...noDropout.namedParameters().keys()].slice(-2), [
    "classifier.6.weight",
    "classifier.6.bias",
  ]);
  assert.deepEqual(noDropout.outputShape([2, 3, 224, 224]), [2, 10]);
});

// Ablations of the mini model: [options, input size, fc6 input features]. The flatten size is
// propagated, never hard-coded: 28 -> 13 -> 6 -> 2 with 3/2 pooling, 28 -> 14 -> 7 -> 3 with 2/2.
const miniCases: [string, AlexNetOptions, number, number][] = [
  ["default (28x28, overlapping pools)", {}, 28, 64 * 2 * 2],
  ["plain 2/2 pooling", { pool: "plain" }, 28, 64 * 3 * 3],
  ["32x32 RGB (CIFAR-10)", { inputSize: 32, inChannels: 3 }, 32, 64 * 3 * 3],
  ["32x32 RGB, plain pooling", { inputSize: 32, inChannels: 3, pool: "plain" }, 32, 64 * 4 * 4],
  [
    "groups 1, no LRN, no dropout, tanh",
    { groups: 1, lrn: false, dropout: false, activation: "tanh" },
    28,
    256,
  ],
];

for (const [name, options, size, fcIn] of miniCases) {
  Deno.test(`alexnetMini ${name}: fc6 takes ${fcIn} features; forward and backward run`, () => {
    const model = alexnetMini(options);
    const channels = options.inChannels ?? 1;
    const fc6 = model.namedParameters().get("fc6.weight")!;
    assert.deepEqual([...fc6.shape], [256, fcIn]);
    assertSummaryMatchesForward(model, [2, channels, size, size]);
    const loss = crossEntropy(model.forward(randn([2, channels, size, size], { seed: 2 })), [3, 7]);
    loss.backward();
    assert.ok(model.parameters().every((p) => p.grad !== null), "every parameter got a gradient");
  });
}

Deno.test("alexnetMini ablation switches change the layers they name", () => {
  const layerTypes = (options: AlexNetOptions) =>
    alexnetMini(options).children().map(([name, m]) => `${name}:${m.constructor.name}`);
  const full = layerTypes({});
  assert.ok(full.includes("norm1:LocalResponseNorm") && full.includes("drop6:Dropout"));
  assert.ok(!layerTypes({ lrn: false }).some((l) => l.startsWith("norm")));
  assert.ok(!layerTypes({ dropout: false }).some((l) => l.startsWith("drop")));
  assert.ok(layerTypes({ activation: "tanh" }).includes("tanh1:Tanh"));
  const grouped = alexnetMini().namedParameters(),
    ungrouped = alexnetMini({ groups: 1 }).namedParameters();
  assert.deepEqual([...grouped.get("conv2.weight")!.shape], [64, 16, 5, 5]);
  assert.deepEqual([...ungrouped.get("conv2.weight")!.shape], [64, 32, 5, 5]);
  assert.deepEqual(
    [...grouped.get("conv3.weight")!.shape],
    [96, 64, 3, 3],
    "conv3 is never grouped",
  );
  assert.throws(
    () => alexnetMini({ pool: "big" as "plain" }),
    /pool must be "overlap", "plain" or "plain-matched", got "big"/,
  );
  assert.throws(() => alexnetMini({ inputSize: 8 }), /MaxPool2d/);
});

Deno.test("models are reproducible from their seed", () => {
  const a = alexnetMini({ seed: 3 }).namedParameters().get("conv1.weight")!.dataSync();
  const b = alexnetMini({ seed: 3 }).namedParameters().get("conv1.weight")!.dataSync();
  const c = alexnetMini({ seed: 4 }).namedParameters().get("conv1.weight")!.dataSync();
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});
