/**
 * No silent wrong answers: each mistake a learner makes with the public API either works
 * (number-first arithmetic, integer typed arrays, negative axes) or throws an error that names
 * the op, the argument and the value. One table of mistakes, then the cases that need setup.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  AdaptiveAvgPool2d,
  add,
  affine,
  argmax,
  type Backend,
  cast,
  concat,
  Conv2d,
  conv2d,
  cpuBackend,
  CpuStorage,
  crossEntropy,
  div,
  Dropout,
  dropout,
  Flatten,
  fromArray,
  full,
  init,
  Linear,
  LocalResponseNorm,
  logSoftmax,
  manualSeed,
  matmul,
  max,
  MaxPool2d,
  maxPool2d,
  mean,
  type Module,
  mul,
  noGrad,
  ones,
  permute,
  pow,
  randn,
  registerBackend,
  ReLU,
  relu,
  reshape,
  Rng,
  Sequential,
  setRngState,
  softmax,
  stack,
  sub,
  sum,
  sumTo,
  type Tensor,
  tensor,
  unregisterBackend,
  zeros,
  zerosLike,
} from "../../mod.ts";
import { values } from "../support/helpers.ts";

const x = tensor([[1, 2, 3], [4, 5, 6]]);

/** [what, the mistake, the message it must produce]. */
const mistakes: [string, () => unknown, RegExp][] = [
  // typed arrays: converted exactly or rejected, never reinterpreted
  [
    "Uint32 above 2^24 to float32",
    () => fromArray(new Uint32Array([1, 16777217]), [2]),
    /fromArray: element 1 is 16777217, which float32 cannot hold exactly.*float64/,
  ],
  [
    "Int32 above 2^24 to float32",
    () => fromArray(new Int32Array([-16777219]), [1], { dtype: "float32" }),
    /fromArray: element 0 is -16777219, which float32 cannot hold exactly/,
  ],
  [
    "BigInt64Array",
    () => fromArray(new BigInt64Array(2) as unknown as Int32Array, [2]),
    /fromArray: BigInt64Array holds bigints/,
  ],
  [
    "DataView",
    () => fromArray(new DataView(new ArrayBuffer(8)) as unknown as Int32Array, [2]),
    /fromArray: data must be a typed array or an array of numbers, got DataView/,
  ],
  [
    "fraction to int32",
    () => fromArray(new Float32Array([1, 2.5]), [2], { dtype: "int32" }),
    /fromArray: element 1 is 2.5, which int32 cannot hold/,
  ],
  [
    "nested fraction to int32",
    () => tensor([[1, 1.5]], { dtype: "int32" }),
    /tensor: element 1 is 1.5, which int32 cannot hold/,
  ],
  ["NaN to int32", () => tensor([NaN], { dtype: "int32" }), /element 0 is NaN/],
  ["full int32 1.5", () => full([2], 1.5, { dtype: "int32" }), /full: element 0 is 1.5/],
  [
    "unknown dtype",
    () => zeros([2], { dtype: "float16" as "float32" }),
    /zeros: dtype must be .*"float16"/,
  ],
  ["shape not integer", () => zeros([2.5]), /zeros: invalid shape \[2.5\]/],
  [
    "tensor of a string",
    () => tensor("12" as unknown as number),
    /tensor: data must be .*got string 12/,
  ],
  // number-first arithmetic: works; two numbers or other values: errors naming the argument
  [
    "add two numbers",
    () => add(2, 3),
    /add: at least one operand must be a Tensor \(got the numbers 2 and 3\)/,
  ],
  [
    "mul a string",
    () => mul(x, "2" as unknown as number),
    /mul: b must be a Tensor or a number, got string 2/,
  ],
  [
    "sub undefined",
    () => sub(undefined as unknown as Tensor, x),
    /sub: a must be a Tensor or a number, got undefined/,
  ],
  ["pow negative base", () => pow(-2, x), /pow: a number base must be positive and finite.*got -2/],
  [
    "pow tensor exponent",
    () => pow(x, x as unknown as number),
    /pow: the exponent must be a number \(got a Tensor \[2,3\]\)/,
  ],
  [
    "affine NaN-typed scale",
    () => affine(x, "2" as unknown as number, 0),
    /affine: scale must be a number, got string 2/,
  ],
  [
    "dtypes differ",
    () => add(x, cast(x, "float64")),
    /add: dtypes differ \(float32 and float64\); convert one with cast/,
  ],
  [
    "int32 into exp-like op",
    () => mean(ones([2], { dtype: "int32" })),
    /mean: expected a float tensor, got int32; convert it with cast/,
  ],
  // not a tensor
  [
    "relu(undefined)",
    () => relu(undefined as unknown as Tensor),
    /relu: input must be a Tensor, got undefined/,
  ],
  [
    "matmul with an array",
    () => matmul(x, [1, 2] as unknown as Tensor),
    /matmul: input 1 must be a Tensor, got Array/,
  ],
  [
    "reshape two -1",
    () => reshape(x, [-1, -1]),
    /reshape: only one dimension of \[-1,-1\] may be -1/,
  ],
  [
    "permute numbers",
    () => permute(x, 1 as unknown as number[]),
    /permute: perm must be an array of axes, got 1/,
  ],
  // axes: honoured, negative like PyTorch, out of range named
  [
    "argmax axis 2 of rank 2",
    () => argmax(x, 2),
    /argmax: axis 2 is out of range for a tensor of rank 2 \(valid axes are -2..1\)/,
  ],
  ["argmax axis 0.5", () => argmax(x, 0.5), /argmax: axis 0.5 is out of range/],
  ["sum axis -3", () => sum(x, -3), /sum: axis -3 is out of range for a tensor of rank 2/],
  ["sum the same axis twice", () => sum(x, [0, -2]), /sum: axes \[0,-2\] name the same axis twice/],
  ["mean axis 2", () => mean(x, 2), /mean: axis 2 is out of range/],
  [
    "max axis string",
    () => max(x, "1" as unknown as number),
    /max: axes must be a number or an array of numbers, got string/,
  ],
  ["softmax axis 2", () => softmax(x, 2), /softmax: axis 2 is out of range for a tensor of rank 2/],
  ["logSoftmax axis -3", () => logSoftmax(x, -3), /logSoftmax: axis -3 is out of range/],
  ["stack axis 3", () => stack([x, x], 3), /stack: axis 3 is out of range for a tensor of rank 3/],
  [
    "stack shapes differ",
    () => stack([x, ones([3, 2])]),
    /stack: tensor 1 has shape \[3,2\], tensor 0 has \[2,3\]/,
  ],
  // matmul
  [
    "matmul inner dims",
    () => matmul(ones([2, 3]), ones([4, 5])),
    /matmul: cannot multiply \[2,3\] by \[4,5\]: the inner dimensions 3 and 4 differ/,
  ],
  [
    "matmul batch dims",
    () => matmul(ones([2, 1, 3]), ones([3, 3, 2])),
    /matmul: cannot multiply \[2,1,3\] by \[3,3,2\]: batch axes \[2\] and \[3\] do not broadcast/,
  ],
  [
    "matmul scalar",
    () => matmul(ones([]), ones([2, 2])),
    /matmul: .*a scalar has no matrix product; use mul/,
  ],
  // losses
  [
    "crossEntropy reduction",
    () => crossEntropy(x, [0, 1], { reduction: "avg" as "mean" }),
    /crossEntropy: reduction must be "mean", "sum" or "none", got "avg"/,
  ],
  [
    "crossEntropy labels object",
    () => crossEntropy(x, { 0: 1 } as unknown as number[]),
    /crossEntropy: labels must be an int32 Tensor/,
  ],
  // randomness
  [
    "randn seed 1.5",
    () => randn([2], { seed: 1.5 }),
    /randn: seed must be an integer in \[0, 4294967295\], got 1.5/,
  ],
  ["manualSeed -1", () => manualSeed(-1), /manualSeed: seed must be an integer .*got -1/],
  ["Rng 2^32", () => new Rng(2 ** 32), /Rng: seed must be an integer .*got 4294967296/],
  ["randn NaN std", () => randn([2], { std: NaN }), /randn: std must be a finite number, got NaN/],
  ["randn int32", () => randn([2], { dtype: "int32" }), /randn: samples are real numbers/],
  [
    "setRngState garbage",
    () => setRngState([1, 2, 3] as unknown as [number, number, number, number]),
    /Rng.fromState: expected four u32 words, got \[1,2,3\]/,
  ],
  ["dropout seed -1", () => dropout(x, { seed: -1 }), /dropout: seed must be a u32 integer/],
  // layers: hyperparameters checked when the layer is built
  [
    "LRN k NaN",
    () => new LocalResponseNorm({ k: NaN }),
    /LocalResponseNorm: k must be a finite number, got NaN/,
  ],
  [
    "LRN alpha Infinity",
    () => new LocalResponseNorm({ alpha: Infinity }),
    /LocalResponseNorm: alpha must be a finite number, got Infinity/,
  ],
  [
    "LRN beta undefined-ish",
    () => new LocalResponseNorm({ beta: "0.75" as unknown as number }),
    /LocalResponseNorm: beta must be a finite number, got 0.75/,
  ],
  [
    "LRN size 0",
    () => new LocalResponseNorm({ size: 0 }),
    /LocalResponseNorm: size must be an integer >= 1, got 0/,
  ],
  [
    "LRN alphaScaling",
    () => new LocalResponseNorm({ alphaScaling: "paper" as "per-term" }),
    /alphaScaling must be "averaged" or "per-term", got "paper"/,
  ],
  ["Dropout p NaN", () => new Dropout(NaN), /Dropout: p must be in \[0, 1\), got NaN/],
  [
    "MaxPool2d kernel 2.5",
    () => new MaxPool2d({ kernelSize: 2.5 }),
    /MaxPool2d: kernelSize must be positive integers .*got 2.5/,
  ],
  [
    "MaxPool2d stride NaN",
    () => new MaxPool2d({ kernelSize: 2, stride: NaN }),
    /MaxPool2d: stride must be positive integers .*got NaN/,
  ],
  [
    "MaxPool2d without options",
    () => new MaxPool2d(3 as unknown as { kernelSize: number }),
    /MaxPool2d: expects options \{ kernelSize, stride\?, padding\? \}, got 3/,
  ],
  [
    "Conv2d inChannels 1.5",
    () => new Conv2d(1.5, 2, 3),
    /Conv2d: inChannels must be an integer >= 1, got 1.5/,
  ],
  [
    "Conv2d kernel 0",
    () => new Conv2d(1, 2, 0),
    /Conv2d: kernelSize must be positive integers .*got 0/,
  ],
  [
    "Conv2d padding -1",
    () => new Conv2d(1, 2, 3, { padding: -1 }),
    /Conv2d: padding must be non-negative integers .*got -1/,
  ],
  [
    "Conv2d groups 0",
    () => new Conv2d(2, 2, 3, { groups: 0 }),
    /Conv2d: groups must be an integer >= 1, got 0/,
  ],
  [
    "Linear NaN features",
    () => new Linear(NaN, 2),
    /Linear: inFeatures must be an integer >= 1, got NaN/,
  ],
  [
    "AdaptiveAvgPool2d 0",
    () => new AdaptiveAvgPool2d(0),
    /AdaptiveAvgPool2d: outputSize must be positive integers .*got 0/,
  ],
  ["Flatten 1.5", () => new Flatten(1.5), /Flatten: startAxis must be an integer, got 1.5/],
  [
    "Sequential with a hole",
    () => new Sequential([new ReLU(), undefined as unknown as Module]),
    /Sequential: child "1" is not a Module \(got undefined\)/,
  ],
  // more of the same class, found going through the public API
  [
    "concat float32 with float64",
    () => concat([x, cast(x, "float64")]),
    /concat: dtypes differ \(float32 and float64\); convert with cast/,
  ],
  [
    "noGrad with an async callback",
    () => noGrad(async () => await Promise.resolve(relu(x))),
    /scope\/noGrad: the callback returned a Promise; they track synchronous code only/,
  ],
  [
    "backward with a float64 upstream gradient",
    () => mul(tensor([1], { requiresGrad: true }), 2).backward(tensor([1], { dtype: "float64" })),
    /backward: the upstream gradient is float64 on cpu, the tensor float32 on cpu; they must match/,
  ],
  [
    "init into an int32 tensor",
    () => init.normal(ones([2], { dtype: "int32" })),
    /init: cannot fill an int32 tensor with real-valued samples/,
  ],
  [
    "Sequential.at(1.5)",
    () => new Sequential([new ReLU(), new ReLU()]).at(1.5),
    /Sequential.at: index 1.5 out of range \(2 layers\)/,
  ],
  [
    "conv2d float64 input, float32 weight",
    () => conv2d(randn([1, 2, 5, 5], { dtype: "float64" }), randn([3, 2, 3, 3])),
    /conv2d: the input is float64 but the weight is float32/,
  ],
  [
    "maxPool2d without options",
    () => maxPool2d(randn([1, 1, 4, 4]), undefined as unknown as { kernelSize: number }),
    /maxPool2d: expects options \{ kernelSize, stride\?, padding\? \}, got undefined/,
  ],
  [
    "sumTo a shape that does not broadcast",
    () => sumTo(x, [4]),
    /sumTo: cannot broadcast \[4\] with \[2,3\]/,
  ],
  [
    "backward with an array as the gradient",
    () => mul(tensor([1], { requiresGrad: true }), 2).backward([1] as unknown as Tensor),
    /backward: the upstream gradient must be a Tensor of shape \[1\], got an array/,
  ],
  [
    "noGrad of a number",
    () => noGrad(3 as unknown as () => void),
    /scope\/noGrad: expects a function, got number 3/,
  ],
  [
    "zerosLike(undefined)",
    () => zerosLike(undefined as unknown as Tensor),
    /zerosLike: expects a Tensor, got undefined/,
  ],
];

Deno.test("each mistake throws an error naming the op, the argument and the value", () => {
  for (const [what, mistake, message] of mistakes) assert.throws(mistake, message, what);
});

Deno.test("a second backward through a released graph throws and says what to do", () => {
  const w = tensor([1, 2, 3], { requiresGrad: true });
  const loss = sum(mul(w, w));
  loss.backward();
  assert.deepEqual([...values(w.grad!)], [2, 4, 6]);
  assert.throws(
    () => loss.backward(),
    /backward: the graph through tensor \[\] was already used by an earlier backward\(\).*\{ retainGraph: true \}/,
  );
  assert.deepEqual([...values(w.grad!)], [2, 4, 6], "the failed backward changed nothing");
});

Deno.test("a kept intermediate of a released graph cannot be backpropagated through again", () => {
  const w = tensor([1, 2], { requiresGrad: true });
  const h = mul(w, 3).keep();
  sum(h).backward();
  assert.throws(() => sum(mul(h, h)).backward(), /the graph through tensor \[2\] was already used/);
});

Deno.test("retainGraph keeps the graph for a second backward, which accumulates", () => {
  const w = tensor([1, 2, 3], { requiresGrad: true });
  const h = mul(w, w);
  const loss = sum(h);
  loss.backward({ retainGraph: true });
  assert.equal(h.isDisposed, false);
  loss.backward();
  assert.deepEqual([...values(w.grad!)], [4, 8, 12]);
  assert.equal(h.isDisposed, true, "the last backward released the graph");
  // With an upstream gradient and options.
  const v = tensor([1, 2], { requiresGrad: true });
  const y = mul(v, 2);
  y.backward(tensor([1, 1]), { retainGraph: true });
  y.backward(tensor([1, 0]));
  assert.deepEqual([...values(v.grad!)], [4, 2]);
});

Deno.test("integer typed arrays become float32 with the same values, never reinterpreted bytes", () => {
  const bytes = [1, 2, 250, 255, 7, 9, 11, 13];
  const cases: [string, ArrayLike<number> & ArrayBufferView][] = [
    ["Uint8Array", new Uint8Array(bytes)],
    ["Uint8ClampedArray", new Uint8ClampedArray(bytes)],
    ["Int8Array", new Int8Array([-128, -1, 0, 1, 127, 5, 6, 7])],
    ["Uint16Array", new Uint16Array([65535, 0, 1, 2, 3, 4, 5, 6])],
    ["Int16Array", new Int16Array([-32768, 32767, 0, 1, 2, 3, 4, 5])],
    ["Uint32Array", new Uint32Array([16777216, 0, 1, 2, 3, 4, 5, 4294967295 & 0xff])],
  ];
  for (const [name, data] of cases) {
    const t = fromArray(data as Uint8Array, [8]);
    assert.equal(t.dtype, "float32", name);
    assert.ok(t.dataSync() instanceof Float32Array, `${name}: float32 storage`);
    assert.deepEqual([...t.dataSync()], [...Array.from(data)], name);
    assert.deepEqual([...tensor(data as Uint8Array).dataSync()], [...Array.from(data)], name);
  }
  const f64 = fromArray(new Uint8Array(bytes), [2, 4], { dtype: "float64" });
  assert.deepEqual([...f64.dataSync()], bytes);
  const labels = fromArray(new Uint8Array(bytes), [8], { dtype: "int32" });
  assert.ok(labels.dataSync() instanceof Int32Array);
  assert.deepEqual([...labels.dataSync()], bytes);
  assert.deepEqual([...fromArray([1, 2], [2]).dataSync()], [1, 2], "plain arrays work too");
});

Deno.test("number-first arithmetic gives the same answers as tensor-first", () => {
  const t = tensor([1, 2, 4]);
  assert.deepEqual([...values(mul(2, t))], [2, 4, 8]);
  assert.deepEqual([...values(add(2, t))], [3, 4, 6]);
  assert.deepEqual([...values(sub(2, t))], [1, 0, -2]);
  assert.deepEqual([...values(div(2, t))], [2, 1, 0.5]);
  assert.deepEqual([...values(pow(2, t))], [2, 4, 16]);
  assert.deepEqual([...values(t.mul(2))], [2, 4, 8]);
});

Deno.test("axes are honoured: argmax, sum, mean, max, softmax along any axis, negative too", () => {
  const m = tensor([[1, 9, 3], [7, 2, 8]]);
  assert.deepEqual([...values(argmax(m, 0))], [1, 0, 1]);
  assert.deepEqual(argmax(m, 0).shape, [3]);
  assert.deepEqual([...values(argmax(m, 1))], [1, 2]);
  assert.deepEqual([...values(argmax(m, -2))], [1, 0, 1]);
  assert.deepEqual(argmax(m, 0, true).shape, [1, 3]);
  assert.deepEqual([...values(argmax(m))], [1, 2], "default: the last axis");
  assert.deepEqual([...values(sum(m, -2))], [8, 11, 11]);
  assert.deepEqual([...values(max(m, -1))], [9, 8]);
  assert.deepEqual([...values(mean(m, 0))], [4, 5.5, 5.5]);
  // softmax along axis 0 normalises each column.
  const s = values(softmax(m, 0));
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(s[c] + s[3 + c] - 1) < 1e-6);
  const byTranspose = values(permute(softmax(permute(m, [1, 0]), -1), [1, 0]));
  assert.deepEqual([...s], [...byTranspose]);
});

Deno.test("dtype errors inside a model name the layer and its dotted place", () => {
  manualSeed(0);
  const linear = new Linear(8, 8);
  assert.throws(
    () => linear.forward(randn([2, 8], { dtype: "float64" })),
    /Linear\(8->8\): the input is float64 but the layer's weight is float32; convert the input with cast\(x, "float32"\) or the model with await model.to\(\{ dtype: "float64" \}\)/,
  );
  const model = new Sequential({
    features: new Sequential([new Conv2d(1, 2, 3), new ReLU(), new Flatten()]),
    classifier: new Sequential([new ReLU(), new Linear(5, 2)]),
  });
  const error = assert.throws(
    () => model.forward(randn([1, 1, 4, 4])),
    (e: Error) =>
      e instanceof RangeError &&
      /^classifier\.1 \(Linear\): Linear\(5->2\): input must be \[N, 5\], got \[1,8\]$/.test(
        e.message,
      ),
  );
  void error;
  assert.throws(
    () => model.forward(randn([1, 1, 4, 4], { dtype: "float64" })),
    /^TypeError: features\.0 \(Conv2d\): Conv2d\(1->2, 3x3\/1\): the input is float64/,
  );
  assert.throws(
    () => model.outputShape([1, 3, 4, 4]),
    /features\.0 \(Conv2d\): Conv2d\(1->2, 3x3\/1\): input \[1,3,4,4\] has 3 channels, expected 1/,
  );
  assert.throws(
    () => new Conv2d(3, 4, 3).forward(randn([1, 1, 5, 5])),
    /Conv2d\(3->4, 3x3\/1\): input \[1,1,5,5\] has 1 channels, expected 3/,
  );
  assert.throws(
    () => new Conv2d(3, 4, 3).forward(randn([3, 5, 5])),
    /Conv2d: input must be \[N, C, H, W\], got \[3,5,5\]/,
  );
  assert.throws(
    () => new Linear(4, 2).forward(randn([2, 1, 2, 2])),
    /Linear\(4->2\): input must be \[N, 4\], got \[2,1,2,2\]; flatten it first/,
  );
});

/**
 * A second device for tests without a GPU: the CPU kernels under another name, whose reads
 * resolve a few milliseconds later, as a GPU's do.
 */
function slowDevice(): Backend {
  const slow: Backend = new Proxy(cpuBackend, {
    get(target, key) {
      if (key === "name") return "slow";
      const value = Reflect.get(target, key);
      if (typeof value !== "function") return value;
      if (key === "read") {
        return async (source: CpuStorage) => {
          await new Promise((resolve) => setTimeout(resolve, 30));
          return target.read(source);
        };
      }
      return (...args: unknown[]) => {
        const out = value.apply(target, args);
        return out instanceof CpuStorage ? new CpuStorage(slow, out.data) : out;
      };
    },
  });
  return slow;
}

Deno.test("model.to from the CPU is done when it returns: no await needed before loadStateDict", async () => {
  manualSeed(0);
  const model = new Sequential([new Linear(3, 2), new ReLU()]);
  const trained = new Map([...model.stateDict()].map(([k, v]) => [k, v.add(1).detach()]));
  const slow = slowDevice();
  registerBackend(slow);
  try {
    const move = model.to("slow"); // not awaited
    assert.equal(model.parameters()[0].device, "slow", "moved inside the call");
    await model.loadStateDict(trained);
    await move;
    for (const [k, v] of model.stateDict()) {
      assert.deepEqual([...(await v.data())], [...values(trained.get(k)!)], k);
    }
    // Back to the CPU: the weights are read asynchronously, and the model is unusable meanwhile.
    const back = model.to("cpu");
    assert.throws(
      () => model.forward(ones([1, 3])),
      /^Error: 0 \(Linear\): Linear\.(weight|bias) used while model.to\("cpu"\) is still moving the weights; await the move first/,
    );
    await assert.rejects(
      model.loadStateDict(trained),
      /Sequential.parameters\(\) used while model.to\("cpu"\)/,
    );
    await back;
    assert.equal(model.parameters()[0].device, "cpu");
    assert.equal(model.forward(ones([1, 3])).shape[1], 2);
    // Mixed devices in one op are named.
    const onSlow = fromArray(new Float32Array([1]), [1], { device: "slow" });
    assert.throws(
      () => add(ones([1]), onSlow),
      /add: tensors are on different devices \(cpu and slow\); move one with await x.to\("cpu"\)/,
    );
  } finally {
    unregisterBackend("slow");
  }
});

Deno.test("model.to({ dtype: 'float64' }) converts every parameter at once; float64 input then works", async () => {
  manualSeed(1);
  const model = new Sequential([new Linear(3, 4), new ReLU(), new Linear(4, 2)]);
  const before = model.parameters().map((p) => [...values(p)]);
  void model.to({ dtype: "float64" });
  const after = model.parameters();
  after.forEach((p, i) => {
    assert.equal(p.dtype, "float64");
    assert.ok(p.requiresGrad && p.isKept, "still a parameter");
    assert.deepEqual([...values(p)], before[i]);
  });
  const y = model.forward(randn([2, 3], { dtype: "float64" }));
  assert.equal(y.dtype, "float64");
  await assert.rejects(
    model.to({ dtype: "int32" }),
    /Module.to: parameters must be float32 or float64, got dtype "int32"/,
  );
});
