import assert from "node:assert/strict";
import { Rng } from "../../tensor/random.ts";
import type { ImageCHW } from "../../data/dataset.ts";
import {
  compose,
  fashionMnistSpec,
  outputShape,
  paperEvalSpec,
  paperTrainSpec,
} from "../../data/pipeline.ts";
import {
  centerCrop,
  crop,
  flipHorizontal,
  horizontalFlip,
  jacobiEigen,
  normalize,
  pcaJitter,
  pcaShift,
  randomCrop,
  resizeBilinear,
  resizeShorterSide,
  subtractMean,
  tenCrop,
} from "../../data/transforms.ts";

/** A CHW image whose value encodes its position: c * 10000 + y * 100 + x. */
function positional(channels: number, height: number, width: number): ImageCHW<Float32Array> {
  const data = new Float32Array(channels * height * width);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        data[(c * height + y) * width + x] = c * 10000 + y * 100 + x;
      }
    }
  }
  return { data, channels, height, width };
}

const at = (image: ImageCHW, c: number, y: number, x: number) =>
  image.data[(c * image.height + y) * image.width + x];

function rotation(axis: number[], angle: number): number[][] {
  const n = Math.hypot(...axis),
    [x, y, z] = axis.map((v) => v / n),
    c = Math.cos(angle),
    s = Math.sin(angle);
  return [
    [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
    [y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s],
    [z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)],
  ];
}

const eigenCases: [string, number[], number[], number][] = [
  ["distinct", [0.05, 0.004, 0.001], [1, 2, 3], 0.7],
  ["ImageNet-like (fb.resnet.torch eigval^2)", [0.2175 ** 2, 0.0188 ** 2, 0.0045 ** 2], [
    -0.3,
    1,
    0.2,
  ], 1.9],
  ["repeated eigenvalue", [2, 2, 0.5], [0, 0, 1], 0.3],
  ["all equal", [1, 1, 1], [1, 0, 0], 0],
  ["negative (indefinite)", [3, -1, -4], [1, 1, 1], 2.5],
  ["already diagonal", [7, 5, 1], [1, 0, 0], 0],
];

for (const [name, values, axis, angle] of eigenCases) {
  Deno.test(`jacobiEigen: ${name}`, () => {
    // Covariance built from known eigenvectors (the columns of a rotation) and eigenvalues.
    const q = rotation(axis, angle);
    const matrix = [0, 1, 2].map((i) =>
      [0, 1, 2].map((j) => values.reduce((s, l, k) => s + q[i][k] * l * q[j][k], 0))
    );
    const { values: got, vectors } = jacobiEigen(matrix);
    assert.deepEqual(
      got.map((v) => +v.toFixed(9)),
      [...values].sort((a, b) => b - a).map((v) => +v.toFixed(9)),
    );
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const rebuilt = got.reduce((s, l, k) => s + vectors[k][i] * l * vectors[k][j], 0);
        assert.ok(
          Math.abs(rebuilt - matrix[i][j]) < 1e-12 * Math.max(1, Math.abs(values[0])),
          `V diag(l) V^T at ${i},${j}`,
        );
        const dot = vectors[i].reduce((s, v, k) => s + v * vectors[j][k], 0);
        assert.ok(Math.abs(dot - (i === j ? 1 : 0)) < 1e-12, "orthonormal");
      }
    }
    if (values[0] !== values[1] && values[1] !== values[2]) {
      const sorted = values.map((l, k) => [l, k]).sort((a, b) => b[0] - a[0]);
      sorted.forEach(([, k], r) => {
        const cos = Math.abs(
          q[0][k] * vectors[r][0] + q[1][k] * vectors[r][1] + q[2][k] * vectors[r][2],
        );
        assert.ok(Math.abs(cos - 1) < 1e-9, `eigenvector ${r} matches`);
      });
    }
  });
}

Deno.test("jacobiEigen: rejects non-symmetric and non-3x3 input", () => {
  assert.throws(() => jacobiEigen([[1, 2, 0], [0, 1, 0], [0, 0, 1]]), /not symmetric at \(0, 1\)/);
  assert.throws(() => jacobiEigen([[1, 0], [0, 1]]), /expected a 3x3 matrix/);
});

Deno.test("crops: center, corner, padded and random windows", () => {
  const image = positional(2, 6, 8);
  assert.equal(at(centerCrop(image, 4), 1, 0, 0), 10000 + 1 * 100 + 2);
  assert.equal(at(crop(image, 2, 3, 2, 2), 0, 1, 1), 304);
  const padded = crop(image, -1, -1, 3, 3);
  assert.deepEqual([at(padded, 0, 0, 0), at(padded, 0, 1, 1), at(padded, 0, 2, 2)], [0, 0, 101]);
  const rng = new Rng(3);
  for (let i = 0; i < 50; i++) {
    const out = randomCrop(image, 4, rng);
    const y = (at(out, 0, 0, 0) / 100) | 0, x = at(out, 0, 0, 0) % 100;
    assert.ok(y >= 0 && y <= 2 && x >= 0 && x <= 4);
    assert.equal(at(out, 1, 3, 3), 10000 + (y + 3) * 100 + x + 3);
  }
  assert.throws(() => centerCrop(image, 7), /crop 7x7 does not fit the 6x8 image/);
  assert.throws(
    () => randomCrop(image, 9, rng, 0),
    /crop 9x9 does not fit the 6x8 image padded by 0/,
  );
  assert.equal(randomCrop(image, 10, rng, 2).width, 10);
});

Deno.test("random crop covers all 33x33 positions of 224 in 256 (section 4.1)", () => {
  const rng = new Rng(1);
  const seen = new Set<string>();
  const image = positional(1, 256, 256);
  for (let i = 0; i < 20000 && seen.size < 33 * 33; i++) {
    const out = randomCrop({ ...image, data: image.data }, 224, rng);
    seen.add(String(out.data[0]));
  }
  assert.equal(seen.size, 33 * 33);
});

Deno.test("flip mirrors rows; horizontalFlip flips about half the time and keeps uint8", () => {
  const image = positional(3, 2, 5);
  const flipped = flipHorizontal(image);
  assert.equal(at(flipped, 2, 1, 0), 20104);
  assert.deepEqual(flipHorizontal(flipped).data, image.data);
  const rng = new Rng(9);
  const bytes: ImageCHW<Uint8Array> = {
    data: Uint8Array.of(1, 2, 3),
    channels: 1,
    height: 1,
    width: 3,
  };
  let flips = 0;
  for (let i = 0; i < 1000; i++) {
    const out = horizontalFlip(bytes, rng);
    assert.ok(out.data instanceof Uint8Array);
    if (out.data[0] === 3) flips++;
  }
  assert.ok(flips > 430 && flips < 570, `${flips} flips of 1000`);
});

Deno.test("tenCrop: four corners, center, then their mirrors", () => {
  const crops = tenCrop(positional(1, 6, 6), 4);
  assert.equal(crops.length, 10);
  assert.deepEqual(crops.slice(0, 5).map((c) => at(c, 0, 0, 0)), [0, 2, 200, 202, 101]);
  for (let k = 0; k < 5; k++) assert.deepEqual(crops[k + 5].data, flipHorizontal(crops[k]).data);
});

Deno.test("resize: bilinear at pixel centers; shorter side to 256", () => {
  const ramp: ImageCHW = { data: Float32Array.of(0, 10, 20, 30), channels: 1, height: 1, width: 4 };
  assert.deepEqual(Array.from(resizeBilinear(ramp, 1, 2).data), [5, 25]);
  assert.deepEqual(Array.from(resizeBilinear(ramp, 1, 8).data), [
    0,
    2.5,
    7.5,
    12.5,
    17.5,
    22.5,
    27.5,
    30,
  ]);
  const constant = {
    data: new Float32Array(3 * 30 * 40).fill(7),
    channels: 3,
    height: 30,
    width: 40,
  };
  assert.ok(resizeBilinear(constant, 13, 57).data.every((v) => Math.abs(v - 7) < 1e-5));
  const tall = resizeShorterSide({ ...constant, height: 40, width: 30 }, 256);
  assert.deepEqual([tall.height, tall.width], [341, 256]);
  const wide = resizeShorterSide(constant, 256);
  assert.deepEqual([wide.height, wide.width], [256, 341]);
});

Deno.test("mean subtraction and per-channel normalization", () => {
  const image: ImageCHW = { data: Uint8Array.of(10, 20, 30, 40), channels: 2, height: 1, width: 2 };
  assert.deepEqual(Array.from(subtractMean(image, Float32Array.of(1, 2, 3, 4)).data), [
    9,
    18,
    27,
    36,
  ]);
  assert.deepEqual(Array.from(normalize(image, [10, 30], [2, 5]).data), [0, 5, 0, 2]);
  assert.throws(
    () => subtractMean(image, new Float32Array(3)),
    /mean image has 3 values, image 2x1x2 has 4/,
  );
  assert.throws(() => normalize(image, [0, 0], [1, 0]), /std\[1\] must be positive, got 0/);
});

Deno.test("PCA jitter adds [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T to every pixel (section 4.1)", () => {
  const eigen = jacobiEigen([[0.06, 0.03, 0.01], [0.03, 0.05, 0.02], [0.01, 0.02, 0.04]]);
  const image = positional(3, 4, 4);
  const out = pcaJitter(image, eigen, new Rng(5));
  const reference = new Rng(5);
  const alphas = [reference.normal(0, 0.1), reference.normal(0, 0.1), reference.normal(0, 0.1)];
  for (let c = 0; c < 3; c++) {
    const shift = alphas.reduce(
      (s, alpha, k) => s + eigen.vectors[k][c] * alpha * eigen.values[k],
      0,
    );
    for (let i = 0; i < 16; i++) {
      assert.ok(Math.abs(out.data[c * 16 + i] - image.data[c * 16 + i] - shift) < 1e-2);
    }
  }
  // One draw per image: the same shift everywhere, three normals consumed.
  const scaled = pcaShift(eigen, new Rng(5), { pixelScale: 255 });
  const plain = pcaShift(eigen, new Rng(5));
  scaled.forEach((s, c) => assert.ok(Math.abs(s - 255 * plain[c]) < 1e-9));
  const sqrt = pcaShift(eigen, new Rng(5), { magnitude: "sqrtEigenvalue" });
  const expected = [0, 1, 2].map((c) =>
    alphas.reduce((s, al, k) => s + eigen.vectors[k][c] * al * Math.sqrt(eigen.values[k]), 0)
  );
  sqrt.forEach((s, c) => assert.ok(Math.abs(s - expected[c]) < 1e-12));
  assert.throws(
    () => pcaJitter(positional(1, 2, 2), eigen, new Rng(0)),
    /needs an RGB image \(3 channels\), got 1/,
  );
});

Deno.test("pipelines: same seed, same output; different seed, different output", () => {
  const stats = {
    meanImage: new Float32Array(3 * 32 * 32).fill(100),
    eigen: jacobiEigen([[0.06, 0.03, 0.01], [0.03, 0.05, 0.02], [0.01, 0.02, 0.04]]),
  };
  const image: ImageCHW<Uint8Array> = {
    data: Uint8Array.from({ length: 3 * 32 * 32 }, (_, i) => (i * 31) & 255),
    channels: 3,
    height: 32,
    width: 32,
  };
  const train = compose(paperTrainSpec(stats, { cropSize: 24 }));
  const first = train(image, new Rng(42));
  assert.deepEqual(train(image, new Rng(42)), first);
  assert.notDeepEqual(train(image, new Rng(43)), first);
  assert.deepEqual([first.length, first[0].height, first[0].width], [1, 24, 24]);
  const ten = compose(paperEvalSpec(stats, { cropSize: 24, tenCrop: true }))(image, new Rng(0));
  assert.equal(ten.length, 10);
  // 227 by default: the crop the paper's alexnet() takes.
  assert.deepEqual(outputShape(paperEvalSpec(stats, { tenCrop: true }), [3, 256, 256]), {
    shape: [3, 227, 227],
    views: 10,
  });
  assert.deepEqual(outputShape(paperTrainSpec(stats), [3, 256, 256]), {
    shape: [3, 227, 227],
    views: 1,
  });
  assert.throws(
    () => compose([{ op: "tenCrop", size: 4 }, { op: "toFloat" }]),
    /tenCrop must be the last step/,
  );
  assert.throws(() => compose([{ op: "blur" } as never]), /unknown transform op "blur"/);
});

Deno.test("Fashion-MNIST pipeline: [0, 1], normalized, optional pad-crop, flip and resize", () => {
  const image: ImageCHW<Uint8Array> = {
    data: new Uint8Array(784).fill(255),
    channels: 1,
    height: 28,
    width: 28,
  };
  const [out] = compose(fashionMnistSpec())(image, new Rng(0));
  assert.ok(out.data.every((v) => Math.abs(v - (1 - 0.2860) / 0.3530) < 1e-5));
  const [augmented] = compose(fashionMnistSpec({ padCrop: 4, flip: true }))(image, new Rng(1));
  assert.deepEqual([augmented.height, augmented.width], [28, 28]);
  assert.ok(
    augmented.data.some((v) => Math.abs(v - -0.2860 / 0.3530) < 1e-5),
    "padding shows as zeros",
  );
  const [big] = compose(fashionMnistSpec({ resize: 224 }))(image, new Rng(0));
  assert.deepEqual([big.height, big.width], [224, 224]);
});
