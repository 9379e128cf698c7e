/**
 * The WebAssembly binary arithmetic, dropout and block sums (cpu/kernels/elementwise.ts)
 * against the reference loops of tensor/ops/elementwise.ts, dropout.ts and reduce.ts, bit for
 * bit: each kernel rounds exactly where its reference does (see that module's header), so any
 * difference is a bug. Values include NaN, ±Infinity, −0, subnormals and float32's extremes;
 * lengths include 0, 1, ragged tails and more than one task (32,768 elements). Then the broadcast
 * patterns the kernels take and refuse, and the cpu device on 1, 2 and 3 threads.
 */
import assert from "node:assert/strict";
import { binaryCpu } from "../../tensor/ops/elementwise.ts";
import { dropoutCpu } from "../../tensor/ops/dropout.ts";
import { reduceCpu, sumBlocksCpu } from "../../tensor/ops/reduce.ts";
import { binaryWasm, dropoutWasm, repeatPattern, sumBlocksWasm } from "../../cpu/kernels/layers.ts";
import { BINARY_KERNEL_OPS } from "../../cpu/kernels/elementwise.ts";
import { bestSimdTier, setThreads } from "../../cpu/kernels/gemm.ts";
import { Rng } from "../../tensor/random.ts";
import { dropout, fromArray, sum } from "../../mod.ts";
import { add, mul } from "../../tensor/ops/elementwise.ts";

const simd = bestSimdTier() !== null;

/** Float32 values of every kind: ordinary, tiny, huge, ±Infinity, NaN, −0, subnormal. */
function values(rng: Rng, length: number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = (rng.uniform() * 2 - 1) * 10 ** (rng.int(13) - 6);
  const specials = [NaN, Infinity, -Infinity, -0, 0, 3.4e38, -3.4e38, 1e-45, -1e-40, 1.2e-38];
  for (let i = 0; i < length; i += 7) out[i] = specials[rng.int(specials.length)];
  return out;
}

function assertIdentical(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      assert.fail(`${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
    }
  }
}

const size = (shape: number[]) => shape.reduce((n, d) => n * d, 1);

/** [a's shape, b's shape, the output's shape]: whole operands, bias over rows, value per plane. */
const SHAPES: [number[], number[], number[]][] = [
  ...[0, 1, 3, 4, 5, 131, 70_001].map((n) => [[n], [n], [n]] as [number[], number[], number[]]),
  [[2, 1, 3], [6], [2, 1, 3]], // equal sizes, different shapes: whole operands
  [[128, 10], [10], [128, 10]], // a linear layer's bias
  [[33, 257], [1, 257], [33, 257]],
  [[9], [7, 9], [7, 9]], // a repeated
  [[3, 64, 13, 13], [64, 1, 1], [3, 64, 13, 13]], // a value per plane
  [[64, 1, 1], [3, 64, 13, 13], [3, 64, 13, 13]],
  [[5, 8, 1, 11], [8, 1, 1], [5, 8, 1, 11]], // an axis of extent 1 inside the run
  [[4, 3, 19], [1], [4, 3, 19]], // one value for all
  [[1], [2, 40_000], [2, 40_000]],
  [[4, 3, 8], [4, 3, 1], [4, 3, 8]], // inner 8, period 12
];

Deno.test({ name: "wasm add, sub, mul, div match binaryCpu bit for bit", ignore: !simd }, () => {
  const rng = new Rng(1);
  for (const [aShape, bShape, outShape] of SHAPES) {
    const pattern = repeatPattern(aShape, bShape, outShape);
    assert.ok(pattern, `${aShape} op ${bShape} runs on the kernels`);
    const a = values(rng, size(aShape)), b = values(rng, size(bShape));
    for (const op of BINARY_KERNEL_OPS) {
      const out = new Float32Array(size(outShape)).fill(7), expected = out.slice();
      binaryWasm(op, a, b, out, pattern);
      binaryCpu(op, a, aShape, b, bShape, outShape, expected);
      assertIdentical(out, expected, `${op} ${aShape} ${bShape}`);
    }
  }
});

Deno.test("repeatPattern: the broadcasts the kernels read, and those left to the reference", () => {
  assert.deepEqual(repeatPattern([6, 4], [6, 4], [6, 4]), { repeated: 0, inner: 1, period: 24 });
  assert.deepEqual(repeatPattern([128, 10], [10], [128, 10]), {
    repeated: 2,
    inner: 1,
    period: 10,
  });
  assert.deepEqual(repeatPattern([64, 1, 1], [2, 64, 13, 13], [2, 64, 13, 13]), {
    repeated: 1,
    inner: 169,
    period: 64,
  });
  assert.deepEqual(repeatPattern([5, 8, 1, 11], [8, 1, 1], [5, 8, 1, 11]), {
    repeated: 2,
    inner: 11,
    period: 8,
  });
  assert.deepEqual(repeatPattern([4, 3, 19], [], [4, 3, 19]), {
    repeated: 2,
    inner: 228,
    period: 1,
  });
  // Both operands repeated (an outer sum), own axes in two runs, runs shorter than 8: reference.
  assert.equal(repeatPattern([5, 1], [1, 9], [5, 9]), null);
  assert.equal(repeatPattern([3, 1, 9], [3, 4, 9], [3, 4, 9]), null);
  assert.equal(repeatPattern([100, 3], [3], [100, 3]), null);
  assert.equal(repeatPattern([3, 4, 5], [3, 4, 1], [3, 4, 5]), null);
});

Deno.test({ name: "wasm dropout matches dropoutCpu bit for bit", ignore: !simd }, () => {
  const rng = new Rng(2);
  // p·2^24 whole (0.5) and not; the smallest and largest p; seeds at the ends of u32.
  const ps = [0.5, 0.1, 1 / 3, 0.9, 0, 2 ** -24, 1e-9, 1 - 2 ** -24, 0.999999];
  const seeds = [0, 1, 1234, 0x7fffffff, 0x80000000, 0xffffffff];
  for (const length of [0, 1, 3, 4, 5, 4099, 70_001]) {
    const x = values(rng, length);
    for (const p of ps) {
      for (const seed of seeds) {
        const y = new Float32Array(length).fill(7), expected = y.slice();
        dropoutWasm(x, p, seed, y);
        dropoutCpu(x, p, seed, expected);
        assertIdentical(y, expected, `dropout p=${p} seed=${seed} (${length})`);
      }
    }
  }
});

Deno.test({ name: "wasm block sums match sumBlocksCpu bit for bit", ignore: !simd }, () => {
  const rng = new Rng(3);
  for (const inner of [1, 2, 3, 4, 5, 36, 169, 784]) {
    for (const count of [0, 1, 3, 4, 5, 9, 129]) {
      // Terms of 13 orders of magnitude: the float64 sum depends on the order of its terms.
      const x = values(rng, count * inner);
      const blocks = new Float64Array(count).fill(7), expected = blocks.slice();
      sumBlocksWasm(x, inner, blocks);
      sumBlocksCpu(x, inner, expected);
      assertIdentical(blocks, expected, `sumBlocks ${count} x ${inner}`);
    }
  }
  // Enough blocks for several tasks, and reduceCpu with the wasm blocks over a bias's axes.
  const shape = [67, 33, 7, 9], x = values(rng, size(shape));
  const out = new Float32Array(33), expected = new Float32Array(33);
  reduceCpu(
    "sum",
    x,
    shape,
    [0, 2, 3],
    out,
    (x, inner, blocks) => sumBlocksWasm(x as Float32Array, inner, blocks),
  );
  reduceCpu("sum", x, shape, [0, 2, 3], expected);
  assertIdentical(out, expected, "sum over [0, 2, 3]");
});

/** A conv-sized activation, a bias per channel and a value per pixel of a plane. */
function deviceInputs() {
  const rng = new Rng(4), shape = [16, 64, 13, 13];
  const x = values(rng, size(shape)).map((v) => Math.max(-10, Math.min(10, v)));
  return { shape, x, bias: values(rng, 64), plane: values(rng, 169) };
}

/** Bias add, a product with a repeated plane, a bias gradient and dropout on the cpu device. */
function deviceOutputs(): Float32Array[] {
  const { shape, x, bias, plane } = deviceInputs();
  using xt = fromArray(x, shape), bt = fromArray(bias, [64, 1, 1]), pt = fromArray(plane, [13, 13]);
  using y = add(xt, bt);
  using scaled = mul(y, pt);
  using grad = sum(xt, [0, 2, 3]);
  using dropped = dropout(xt, { p: 0.5, seed: 99 });
  return [y, scaled, grad, dropped].map((t) => t.dataSync() as Float32Array);
}

Deno.test({
  name: "elementwise kernels on the cpu device: the reference's bits on 1, 2 and 3 threads",
  ignore: !simd,
}, async () => {
  const { shape, x, bias, plane } = deviceInputs(), n = x.length;
  const reference = [n, n, 64, n].map((length) => new Float32Array(length));
  binaryCpu("add", x, shape, bias, [64, 1, 1], shape, reference[0]);
  binaryCpu("mul", reference[0], shape, plane, [13, 13], shape, reference[1]);
  reduceCpu("sum", x, shape, [0, 2, 3], reference[2]);
  dropoutCpu(x, 0.5, 99, reference[3]);
  try {
    for (const threads of [1, 2, 3]) {
      await setThreads(threads);
      deviceOutputs().forEach((array, i) =>
        assertIdentical(array, reference[i], `${threads} threads, output ${i}`)
      );
    }
  } finally {
    await setThreads("auto");
  }
});
