/**
 * Every options object of the public API is checked by one mechanism (tensor/options.ts): each
 * options-taking function or constructor declares its keys with `declareOptions`, and the
 * table below calls each one with an unknown key. The completeness test fails when a declared
 * op has no row here (or a row names an op that declares nothing), so a new options-taking
 * function cannot skip the check. The key lists are tied to their options types at compile
 * time: the `@ts-expect-error` lines below must be type errors, which `deno test` and
 * `deno task check` (that type-checks this file) verify.
 */

import assert from "node:assert/strict";
import {
  AvgPool2d,
  avgPool2d,
  backward,
  Conv2d,
  conv2d,
  CosineAnnealing,
  crossEntropy,
  customOp,
  declareOptions,
  Dropout,
  dropout,
  eye,
  fromArray,
  full,
  gradcheck,
  init,
  initWebGPU,
  Linear,
  linspace,
  loadCheckpoint,
  loadTorch,
  LocalResponseNorm,
  localResponseNorm,
  MaxPool2d,
  maxPool2d,
  ones,
  onesLike,
  optionRegistry,
  rand,
  randn,
  ReduceLROnPlateau,
  saveCheckpoint,
  setCpuOptions,
  SGD,
  StepLR,
  sum,
  tensor,
  zeros,
  zerosLike,
} from "../mod.ts";
import { arange } from "../tensor/factories.ts";
import {
  DataLoader,
  downloadFashionMnist,
  type Eigen3,
  fashionMnistSpec,
  type ImageDataset,
  loadFashionMnist,
  loadImageFolder,
  paperEvalSpec,
  paperTrainSpec,
  pcaJitter,
  pcaShift,
  Rng,
} from "../data/mod.ts";
import { alexnet, alexnetMini, alexnetTorchvision, figure1Net } from "../models/alexnet.ts";
import { classify } from "../models/alexnet_pretrained.ts";

type Options = Record<string, unknown>;

/** The library's declarations, taken before the last test declares its own stand-in op. */
const DECLARED = optionRegistry();
// deno-lint-ignore no-explicit-any
type Call = (options: any) => unknown;

const x = tensor([[1, 2], [3, 4]]);
const image = zeros([1, 1, 4, 4]);
const dataset: ImageDataset = {
  images: new Uint8Array(4),
  shape: [1, 1, 2, 2],
  labels: new Int32Array([0]),
  classNames: ["only"],
};
const eigen: Eigen3 = {
  values: [1, 1, 1],
  vectors: [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
};
const rgb = { data: new Float32Array(3), channels: 3, height: 1, width: 1 };
const sgd = () => new SGD(new Linear(2, 2, { rng: 1 }).parameters(), { lr: 0.1 });
const lossOf = () => sum(tensor([1, 2], { requiresGrad: true }));
const path = "/tmp/tessera-options-never-written.safetensors";
const model = new Linear(2, 2, { rng: 1 });

/** One call per declared op: `call(options)` passes `options` where the op takes them. */
const CALLS: Record<string, Call> = {
  fromArray: (o) => fromArray([1], [1], o),
  tensor: (o) => tensor([1], o),
  full: (o) => full([1], 0, o),
  zeros: (o) => zeros([1], o),
  ones: (o) => ones([1], o),
  zerosLike: (o) => zerosLike(zeros([1]), o),
  onesLike: (o) => onesLike(zeros([1]), o),
  arange: (o) => arange(0, 2, 1, o),
  linspace: (o) => linspace(0, 1, 2, o),
  eye: (o) => eye(2, 2, o),
  rand: (o) => rand([1], o),
  randn: (o) => randn([1], o),
  "Tensor.to": (o) => x.to(o),
  backward: (o) => backward(lossOf(), undefined, o),
  gradcheck: (o) => gradcheck((a) => sum(a), [tensor([1], { dtype: "float64" })], o),
  conv2d: (o) => conv2d(image, ones([1, 1, 3, 3]), null, o),
  maxPool2d: (o) => maxPool2d(image, { kernelSize: 2, ...o }),
  avgPool2d: (o) => avgPool2d(image, { kernelSize: 2, ...o }),
  localResponseNorm: (o) => localResponseNorm(image, o),
  dropout: (o) => dropout(x, o),
  crossEntropy: (o) => crossEntropy(x, [0, 1], o),
  Conv2d: (o) => new Conv2d(1, 1, 3, o),
  Linear: (o) => new Linear(2, 2, o),
  LocalResponseNorm: (o) => new LocalResponseNorm(o),
  MaxPool2d: (o) => new MaxPool2d({ kernelSize: 2, ...o }),
  AvgPool2d: (o) => new AvgPool2d({ kernelSize: 2, ...o }),
  Dropout: (o) => new Dropout(0.5, o),
  "Module.to": (o) => model.to(o),
  "Module.loadStateDict": (o) => model.loadStateDict(model.stateDict(), o),
  "Module.summary": (o) => model.summary([1, 2], o),
  "init.kaimingNormal": (o) => init.kaimingNormal(zeros([2, 2]), o),
  "init.kaimingUniform": (o) => init.kaimingUniform(zeros([2, 2]), o),
  "init.xavierNormal": (o) => init.xavierNormal(zeros([2, 2]), o),
  "init.xavierUniform": (o) => init.xavierUniform(zeros([2, 2]), o),
  SGD: (o) => new SGD(model.parameters(), { lr: 0.1, ...o }),
  "SGD group": (o) => new SGD([{ params: model.parameters(), ...o }], { lr: 0.1 }),
  StepLR: (o) => new StepLR(sgd(), { stepSize: 1, ...o }),
  ReduceLROnPlateau: (o) => new ReduceLROnPlateau(sgd(), o),
  CosineAnnealing: (o) => new CosineAnnealing(sgd(), { tMax: 2, ...o }),
  DataLoader: (o) => new DataLoader(dataset, { batchSize: 1, ...o }),
  paperTrainSpec: (o) => paperTrainSpec({ meanImage: new Float32Array(3), eigen }, o),
  paperEvalSpec: (o) => paperEvalSpec({ meanImage: new Float32Array(3), eigen }, o),
  fashionMnistSpec: (o) => fashionMnistSpec(o),
  pcaShift: (o) => pcaShift(eigen, new Rng(1), o),
  pcaJitter: (o) => pcaJitter(rgb, eigen, new Rng(1), o),
  loadImageFolder: (o) => loadImageFolder("/nonexistent-tessera-folder", o),
  loadFashionMnist: (o) => loadFashionMnist(o),
  downloadFashionMnist: (o) => downloadFashionMnist(o),
  saveCheckpoint: (o) => saveCheckpoint(path, { model, ...o }),
  loadCheckpoint: (o) => loadCheckpoint(path, { model, ...o }),
  alexnet: (o) => alexnet(o),
  alexnetMini: (o) => alexnetMini(o),
  alexnetTorchvision: (o) => alexnetTorchvision(o),
  figure1Net: (o) => figure1Net(o),
  loadTorch: (o) => loadTorch(new Uint8Array(0), o),
  // The options are checked before a net is needed or a GPU adapter is asked for.
  classify: (o) => classify(undefined as never, rgb as never, o),
  initWebGPU: (o) => initWebGPU(o),
  setCpuOptions: (o) => setCpuOptions(o),
  customOp: (o) => customOp({ name: "same", forward: (a) => a, backward: (g) => [g], ...o }),
};

/** Runs `call` and returns its error (thrown at once or as a rejected promise), or fails. */
async function errorOf(call: () => unknown, what: string): Promise<Error> {
  try {
    await call();
  } catch (error) {
    return error as Error;
  }
  assert.fail(`${what}: no error`);
}

Deno.test("options completeness: every op that declares option keys has a row, and only those", () => {
  const declared = [...DECLARED.keys()].sort();
  assert.deepEqual(Object.keys(CALLS).sort(), declared);
});

Deno.test("every options-taking op rejects an unknown key, naming the op, the key and the options", async () => {
  for (const [op, keys] of DECLARED) {
    const error = await errorOf(() => CALLS[op]({ bogusKey: 1 }), op);
    assert.ok(error instanceof TypeError, `${op}: ${error}`);
    const opName = op.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    assert.match(
      error.message,
      new RegExp(`${opName}(\\([^)]*\\)| \\d+)?: unknown option "bogusKey"`),
    );
    for (const key of keys) assert.ok(error.message.includes(key), `${op}: ${key} not listed`);
  }
});

Deno.test("PyTorch spellings and typos get the camelCase name tessera uses", async () => {
  const cases: [string, () => unknown, RegExp][] = [
    ["drop_last", () => CALLS.DataLoader({ drop_last: true }), /did you mean dropLast\?/],
    ["num_workers", () => CALLS.DataLoader({ num_workers: 2 }), /did you mean workers\?/],
    ["numWorkers", () => CALLS.DataLoader({ numWorkers: 2 }), /did you mean workers\?/],
    ["label_smoothing", () => CALLS.crossEntropy({ label_smoothing: 0.1 }), /labelSmoothing\?/],
    ["ignore_index", () => CALLS.crossEntropy({ ignore_index: 0 }), /did you mean ignoreIndex\?/],
    ["count_include_pad", () => CALLS.avgPool2d({ count_include_pad: false }), /countIncludePad\?/],
    ["ceil_mode", () => CALLS.MaxPool2d({ ceil_mode: true }), /did you mean ceilMode\?/],
    ["requires_grad", () => zeros([1], { requires_grad: true } as never), /requiresGrad\?/],
    ["misspelt training", () => dropout(x, { trainig: false } as never), /did you mean training\?/],
    ["weight_decay", () => CALLS.SGD({ weight_decay: 0.1 }), /did you mean weightDecay\?/],
  ];
  for (const [what, call, message] of cases) {
    assert.match((await errorOf(call, what)).message, message, what);
  }
});

Deno.test("a positional dtype, null, or a non-object where options go is a clear error", async () => {
  const cases: [string, () => unknown, RegExp][] = [
    ["zeros dtype", () => zeros([2], "float64" as never), /zeros: .*pass \{ dtype: "float64" \}/],
    ["randn dtype", () => randn([2], "float64" as never), /randn: .*\{ dtype: "float64" \}/],
    ["ones device", () => ones([2], "cpu" as never), /ones: .*\{ device: "cpu" \}/],
    ["zeros null", () => zeros([2], null as never), /zeros: options must be an object .* got null/],
    ["conv2d null", () => conv2d(image, ones([1, 1, 3, 3]), null, null as never), /conv2d: .*null/],
    ["Linear number", () => new Linear(2, 2, 3 as never), /Linear: options must be an object/],
    ["crossEntropy array", () => crossEntropy(x, [0, 1], [] as never), /crossEntropy: .*array/],
    ["MaxPool2d(3)", () => new MaxPool2d(3 as never), /write \{ kernelSize: 3 \}/],
    [
      "conv2d options third",
      () => conv2d(image, ones([1, 1, 3, 3]), { padding: 1 } as never),
      /options go fourth/,
    ],
    ["Tensor.to null", () => x.to(null as never), /to: expects a device/],
    [
      "initWebGPU NaN",
      () => initWebGPU({ maxBindingBytes: NaN }),
      /initWebGPU: maxBindingBytes must be an integer >= 4 \(bytes\), got NaN/,
    ],
    ["initWebGPU name", () => initWebGPU({ name: "" }), /initWebGPU: name must be a non-empty/],
  ];
  for (const [what, call, message] of cases) {
    assert.match((await errorOf(call, what)).message, message, what);
  }
});

/** A stand-in options interface for the compile-time tie (declared only in this test). */
interface TieOptions {
  size?: number;
  gamma?: number;
}

Deno.test("a key list must name exactly the keys of its options type (checked by deno check)", () => {
  const declare = declareOptions<TieOptions>();
  assert.deepEqual(declare("test.tie", ["size", "gamma"]), ["size", "gamma"]);
  // The same declaration again is allowed; a different list for the same op throws at run time.
  assert.deepEqual(declare("test.tie", ["size", "gamma"]), ["size", "gamma"]);
  // @ts-expect-error a key of the interface is missing from the list (valid options refused)
  assert.throws(() => declare("test.tie", ["size"]), /declared twice with different keys/);
  // @ts-expect-error a key the interface does not have (an option the op would ignore)
  assert.throws(() => declare("test.tie", ["size", "gamma", "momentum"]), /declared twice/);
  assert.equal(optionRegistry().has("test.tie"), true);
});
