/**
 * Tensors that live in the kernels' WebAssembly memory (cpu/kernels/heap.ts, operands.ts):
 * the heap's blocks, and every wasm kernel run with its operands in place, copied, and mixed,
 * giving the same bits. A kernel that read an operand at the wrong address, wrote past its
 * output or forgot to copy an output out would fail here; so would an output used in place
 * over an input it still reads.
 */
import assert from "node:assert/strict";
import { GUARD_BYTES, Heap, heapOf } from "../../cpu/kernels/heap.ts";
import { bestSimdTier, engineFor, gemm, type GemmEngine } from "../../cpu/kernels/gemm.ts";
import {
  lrnBackwardWasm,
  lrnForwardWasm,
  maxPool2dBackwardWasm,
  maxPool2dForwardWasm,
  reluBackwardWasm,
  reluWasm,
  sgdUpdateWasm,
} from "../../cpu/kernels/layers.ts";
import {
  conv2dBackwardInputWasm,
  conv2dBackwardWeightWasm,
  conv2dForwardWasm,
} from "../../cpu/kernels/conv2d.ts";
import { conv2dParams } from "../../tensor/ops/conv2d.ts";
import { pool2dParams } from "../../tensor/ops/pool.ts";
import { cpuBackend, type CpuStorage, fromArray, relu } from "../../mod.ts";
import { Rng } from "../../tensor/random.ts";

const tier = bestSimdTier();
const simd = tier !== null;
const shared = typeof SharedArrayBuffer === "function";

function engine(): GemmEngine {
  const m = engineFor(tier!);
  assert.ok(m !== null, "the engine compiled");
  return m;
}

function random(rng: Rng, length: number): Float32Array {
  const values = new Float32Array(length).map(() => rng.normal());
  for (let i = 7; i < length; i += 101) values[i] = NaN;
  return values;
}

/** A copy of `values` in the engine's heap (what the cpu device allocates for a tensor). */
function inHeap<T extends Float32Array | Int32Array>(values: T): T {
  const dtype = values instanceof Int32Array ? "int32" : "float32";
  const array = engine().allocateTensor(dtype, values.length);
  assert.ok(array !== null, "the heap had room");
  array.set(values);
  return array as T;
}

function assertSameBits(
  actual: Float32Array | Int32Array,
  expected: ArrayLike<number>,
  what: string,
) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Object.is(actual[i], expected[i]), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/**
 * Runs `kernel` on ordinary arrays, then with every combination of operands in the heap
 * (inputs and outputs), and asserts the same outputs bit for bit. `inputs` are read, `outputs`
 * written (their fresh contents given).
 */
type Arrays = (Float32Array | Int32Array)[];

function provePlacements<In extends Arrays, Out extends Arrays>(
  what: string,
  inputs: [...In],
  outputs: [...Out],
  kernel: (inputs: In, outputs: Out) => void,
) {
  const expected = outputs.map((o) => o.slice()) as Out;
  kernel(inputs, expected);
  const operands = inputs.length + outputs.length;
  for (let mask = 1; mask < 1 << operands; mask++) {
    const place = <T extends Float32Array | Int32Array>(a: T, i: number) =>
      mask & (1 << i) ? inHeap(a) : a.slice() as T;
    const ins = inputs.map((a, i) => place(a, i)) as In;
    const outs = outputs.map((a, i) => place(a, inputs.length + i)) as Out;
    kernel(ins, outs);
    outs.forEach((o, i) =>
      assertSameBits(o, expected[i], `${what} (placement ${mask}) output ${i}`)
    );
    ins.forEach((a, i) =>
      assertSameBits(a, inputs[i], `${what} (placement ${mask}) input ${i} kept`)
    );
    for (const a of [...ins, ...outs]) if (heapOf(a)) engine().releaseTensor(a);
  }
}

Deno.test("heap: blocks are reused by size, merged when they touch, and never handed out twice", () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 64, shared: true });
  const heap = new Heap(memory, 100, 64 * 65536);
  const a = heap.allocate(1000)!, b = heap.allocate(1000)!, c = heap.allocate(3000)!;
  assert.equal(a % 64, 0, "blocks are 64-byte aligned");
  assert.ok(a >= 100, "blocks start after the reserved bytes");
  assert.equal(b - a, Heap.blockBytes(1000), "consecutive blocks");
  assert.ok(Heap.blockBytes(1000) >= 1000 + GUARD_BYTES, "every block has its guard bytes");
  heap.release(a, 1000);
  assert.equal(heap.allocate(1000), a, "a freed block serves the next request of its size");
  heap.release(a, 1000);
  heap.release(b, 1000);
  // No free block of 1500 bytes: the two that touch merge and serve it.
  const d = heap.allocate(1500, c + Heap.blockBytes(3000));
  assert.equal(d, a, "merged blocks serve a larger request under the ceiling");
  assert.throws(() => heap.release(b, 1000), /no block of .* in use/);
  assert.equal(heap.allocate(64 * 65536), null, "a request past the limit gets null");
  assert.equal(heap.usedBytes, Heap.blockBytes(3000) + Heap.blockBytes(1500));
  const view = new Float32Array(heap.buffer(), c, 10);
  assert.equal(heapOf(view), heap, "views of the memory belong to its heap");
  assert.equal(heapOf(new Float32Array(10)), null);
});

Deno.test("heap: a request with a ceiling gets no block past it, freed or new", () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 64, shared: true });
  const heap = new Heap(memory, 0, 64 * 65536);
  const size = Heap.blockBytes(4096);
  const low = heap.allocate(4096)!, high = heap.allocate(4096)!, top = heap.allocate(4096)!;
  heap.release(high, 4096);
  assert.equal(heap.allocate(4096, high), null, "the freed block ends past the ceiling");
  assert.equal(heap.allocate(4096, high + size), high, "under a higher ceiling it is reused");
  heap.release(low, 4096);
  heap.release(high, 4096);
  // Merged, low and high make one block; a smaller request under the ceiling takes its start.
  assert.equal(heap.allocate(100, low + Heap.blockBytes(100)), low);
  assert.ok(top > high);
});

Deno.test("heap: a memory that cannot grow gives null, not an engine error", () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true });
  const heap = new Heap(memory, 0, 64 * 65536); // a limit past the memory's own maximum
  assert.ok(heap.allocate(65536) !== null);
  assert.equal(heap.allocate(3 * 65536), null);
  assert.equal(heap.usedBytes, Heap.blockBytes(65536));
});

Deno.test("heap: growing the memory keeps earlier blocks readable", () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 64, shared: true });
  const heap = new Heap(memory, 0, 64 * 65536);
  const at = heap.allocate(4000)!;
  const early = new Float32Array(heap.buffer(), at, 1000).fill(2.5);
  const late = heap.allocate(20 * 65536)!;
  const after = new Float32Array(heap.buffer(), late, 10);
  assert.ok(memory.buffer.byteLength >= late + 20 * 65536, "the memory grew");
  assert.ok(early.every((v) => v === 2.5), "a view made before the growth still reads");
  assert.equal(heapOf(early), heap);
  assert.equal(heapOf(after), heap);
});

Deno.test({
  name: "wasm layer kernels: operands in place, copied and mixed give the same bits",
  ignore: !simd || !shared,
}, () => {
  const rng = new Rng(3);
  for (const length of [1, 5, 4099, 70000]) {
    const x = random(rng, length), dy = random(rng, length);
    provePlacements(
      `relu ${length}`,
      [x],
      [new Float32Array(length)],
      ([x], [y]) => reluWasm(x, y),
    );
    provePlacements(
      `relu backward ${length}`,
      [x, dy],
      [new Float32Array(length)],
      ([x, dy], [dx]) => reluBackwardWasm(x, dy, dx),
    );
  }
  const lrn = { n: 3, c: 7, h: 5, w: 3, size: 5, alpha: 1e-2, beta: 0.75, k: 2 };
  const lrnLength = 3 * 7 * 5 * 3;
  const lx = random(rng, lrnLength), ldy = random(rng, lrnLength);
  provePlacements(
    "lrn",
    [lx],
    [new Float32Array(lrnLength)],
    ([x], [y]) => lrnForwardWasm(x, lrn, y),
  );
  provePlacements(
    "lrn backward",
    [lx, ldy],
    [new Float32Array(lrnLength)],
    ([x, dy], [dx]) => lrnBackwardWasm(x, dy, lrn, dx),
  );
  const p = pool2dParams("maxPool2d", [2, 3, 13, 13], 3, 2, 0);
  const px = random(rng, 2 * 3 * 13 * 13), outLength = 2 * 3 * p.outH * p.outW;
  provePlacements(
    "max-pool",
    [px],
    [new Float32Array(outLength), new Int32Array(outLength)],
    ([x], [y, argmax]) => maxPool2dForwardWasm(x, p, y, argmax),
  );
  for (const rule of ["paper", "pytorch"] as const) {
    const p = { lr: 0.01, momentum: 0.9, weightDecay: 5e-4, rule };
    const [w, g, v] = [0, 1, 2].map(() => random(rng, 70_001));
    provePlacements(
      `sgd ${rule}`,
      [g],
      [w, v],
      ([g], [w, v]) => sgdUpdateWasm(w, g, v, p),
    );
  }
  const y = new Float32Array(outLength), argmax = new Int32Array(outLength);
  maxPool2dForwardWasm(px, p, y, argmax);
  provePlacements(
    "max-pool backward",
    [random(rng, outLength), argmax],
    [new Float32Array(px.length)],
    ([dy, argmax], [dx]) => maxPool2dBackwardWasm(dy, argmax, p, dx),
  );
});

Deno.test({
  name: "wasm conv2d: operands in place, copied and mixed give the same bits, padded or not",
  ignore: !simd || !shared,
}, () => {
  const rng = new Rng(4);
  const shapes = [
    { x: [2, 4, 9, 8], w: [6, 2, 3, 3], stride: 1, padding: 1, groups: 2 },
    { x: [3, 3, 11, 11], w: [5, 3, 4, 4], stride: 2, padding: 0, groups: 1 },
    { x: [1, 2, 7, 7], w: [9, 2, 3, 3], stride: 1, padding: 0, groups: 1 },
  ];
  for (const s of shapes) {
    const p = conv2dParams(s.x, s.w, s.stride, s.padding, s.groups);
    const x = random(rng, p.n * p.c * p.h * p.w), w = random(rng, s.w.reduce((a, b) => a * b));
    const bias = random(rng, p.o), dy = random(rng, p.n * p.o * p.outH * p.outW);
    const what = `conv2d ${s.x} k${s.w[2]} s${s.stride} p${s.padding}`;
    provePlacements(
      what,
      [x, w, bias],
      [new Float32Array(dy.length)],
      ([x, w, b], [y]) => conv2dForwardWasm(x, w, b, p, y, tier!),
    );
    provePlacements(
      `${what} dx`,
      [dy, w],
      [new Float32Array(x.length)],
      ([dy, w], [dx]) => conv2dBackwardInputWasm(dy, w, p, dx, tier!),
    );
    provePlacements(
      `${what} dw`,
      [dy, x],
      [new Float32Array(w.length)],
      ([dy, x], [dw]) => conv2dBackwardWeightWasm(dy, x, p, dw, tier!),
    );
  }
});

Deno.test({
  name: "wasm gemm: operands in place, copied and mixed give the same bits, every path",
  ignore: !simd || !shared,
}, () => {
  const rng = new Rng(5);
  // [m, n, k, transA, transB, lda pad, ldc pad, accumulate]: packed, few-row, dot and gemv paths.
  const cases: [number, number, number, boolean, boolean, number, number, boolean][] = [
    [37, 29, 41, false, false, 0, 0, false],
    [37, 29, 41, true, true, 3, 2, true],
    [5, 33, 19, false, true, 2, 1, false],
    [5, 33, 19, true, true, 0, 0, true],
    [4, 40, 12, false, false, 0, 3, false],
    [1, 70, 33, false, true, 0, 0, false],
    [50, 1, 33, true, false, 4, 5, true],
  ];
  for (const [m, n, k, transA, transB, padA, padC, accumulate] of cases) {
    const [aRows, aCols] = transA ? [k, m] : [m, k], [bRows, bCols] = transB ? [n, k] : [k, n];
    const lda = aCols + padA, ldb = bCols, ldc = n + padC;
    const a = random(rng, 2 + aRows * lda), b = random(rng, 1 + bRows * ldb);
    const c = random(rng, 3 + m * ldc);
    const what = `gemm ${m}x${n}x${k} ${transA ? "T" : "N"}${transB ? "T" : "N"} ldc ${ldc}`;
    provePlacements(what, [a, b], [c], ([a, b], [c]) =>
      gemm({
        transA,
        transB,
        m,
        n,
        k,
        a: a,
        aOffset: 2,
        lda,
        b: b,
        bOffset: 1,
        ldb,
        c: c,
        cOffset: 3,
        ldc,
        accumulate,
      }));
  }
});

Deno.test({
  name: "wasm kernels: an output in place over an input in place is computed right",
  ignore: !simd || !shared,
}, () => {
  const rng = new Rng(6);
  const x = random(rng, 4500), values = random(rng, 9000);
  const expected = new Float32Array(4500);
  reluBackwardWasm(x, values.subarray(0, 4500), expected);
  // dx overlaps the second half of dy, ahead of it: the kernel would read what it wrote.
  const block = inHeap(values);
  reluBackwardWasm(x, block.subarray(0, 4500), block.subarray(2000, 6500));
  assertSameBits(block.subarray(2000, 6500), expected, "relu backward into its own dy");
  engine().releaseTensor(block);
});

Deno.test({
  name: "cpu device: large tensors live in the heap, go back to it, and stay a reader's",
  ignore: !simd || !shared,
}, () => {
  const length = 1 << 15; // 128 KiB: in the heap
  const array = (t: { storage: unknown }) => (t.storage as CpuStorage).array;
  const x = fromArray(new Float32Array(length).fill(-2), [length]);
  const y = relu(x);
  assert.ok(heapOf(array(x)) !== null && heapOf(array(y)) !== null, "both live in the heap");
  assert.equal(heapOf(array(fromArray(new Float32Array(10), [10]))), null, "a small one does not");
  const used = engine().heap.usedBytes;
  y.dispose();
  assert.equal(engine().heap.usedBytes, used - Heap.blockBytes(4 * length), "freed to the heap");
  const seen = x.dataSync();
  x.dispose();
  const others = Array.from(
    { length: 4 },
    () => fromArray(new Float32Array(length).fill(9), [length]),
  );
  assert.ok(seen.every((v) => v === -2), "a block read through dataSync() is not reused");
  others.forEach((t) => t.dispose());
  assert.equal(cpuBackend.name, "cpu");
});
