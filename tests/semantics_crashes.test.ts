/**
 * Internal crashes become messages: every exported function and class of the package (mod.ts,
 * data/mod.ts, models/alexnet.ts: the entry points of deno.json, and models/alexnet_pretrained.ts,
 * which the examples use), and every method of its main objects, is called with
 * missing, undefined, null and wrong-typed arguments. Each call may succeed or throw, but an
 * error must be an Error whose message is the library's own, never a JavaScript engine's
 * ("Cannot destructure", "is not iterable", "Invalid array length", "Cannot read properties
 * of", "is not a function"). No call gets a string first argument, so nothing is written.
 */

import assert from "node:assert/strict";
import * as main from "../mod.ts";
import * as data from "../data/mod.ts";
import * as models from "../models/alexnet.ts";
import * as pretrained from "../models/alexnet_pretrained.ts";

const ENGINE_MESSAGE =
  /Cannot destructure|is not iterable|Invalid array length|Cannot read properties|is not a function|undefined is not|Maximum call stack|Cannot convert|not an object|Invalid typed array length|is not a constructor|Cannot access|Array buffer allocation failed/;

/** Exports left out: they reach the network, start threads or need a GPU (gpu tests cover them). */
const SKIP = new Set([
  "downloadFashionMnist",
  "loadFashionMnist",
  "initWebGPU",
  "setThreads",
  "shutdownThreads",
  "prepareGemm",
  "isWebGPUAvailable",
  "GpuRuntime",
  "GpuBackend",
  "GpuStorage",
  "gpuMemoryStats",
  "Pool2d", // abstract
]);

const ARGUMENT_LISTS = (): unknown[][] => [
  [],
  [undefined],
  [null],
  [null, null],
  [{}],
  [1.5, -1],
  [[1, 2], "x"],
  [main.tensor([1, 2]), null],
  [main.tensor([1, 2]), -1],
  [main.tensor([[1, 2]]), {}, null],
];

function show(args: unknown[]): string {
  return args.map((a) =>
    a instanceof main.Tensor ? `Tensor${JSON.stringify(a.shape)}` : String(JSON.stringify(a))
  ).join(", ");
}

/** Calls `run` and returns an engine-message failure description, or null. */
async function engineCrash(what: string, run: () => unknown): Promise<string | null> {
  try {
    const result = run();
    if (result instanceof Promise) await result;
  } catch (error) {
    if (!(error instanceof Error)) return `${what}: threw a non-Error ${String(error)}`;
    if (ENGINE_MESSAGE.test(error.message)) return `${what}: ${error.message}`;
  }
  return null;
}

const isClass = (f: unknown) =>
  typeof f === "function" && /^class\s/.test(Function.prototype.toString.call(f));

Deno.test("every exported function and class answers bad arguments with the library's own message", async () => {
  const crashes: string[] = [];
  let calls = 0;
  for (
    const [where, mod] of [
      ["mod", main],
      ["data", data],
      ["models", models],
      ["pretrained", pretrained],
    ] as const
  ) {
    for (const [name, value] of Object.entries(mod)) {
      if (typeof value !== "function" || SKIP.has(name)) continue;
      for (const args of ARGUMENT_LISTS()) {
        // A model builder given no options (or {}) builds a whole AlexNet: a valid call, slow.
        if (
          where === "models" &&
          (args[0] === undefined ||
            args.length === 1 && args[0] instanceof Object && Object.keys(args[0]).length === 0)
        ) continue;
        calls++;
        // deno-lint-ignore no-explicit-any
        const f = value as any;
        const crash = await engineCrash(
          `${where}.${name}(${show(args)})`,
          () => isClass(f) ? new f(...args) : f(...args),
        );
        if (crash) crashes.push(crash);
      }
    }
  }
  assert.ok(calls > 1000, `${calls} calls`);
  assert.deepEqual(crashes, []);
});

Deno.test("every method of the main objects answers bad arguments with the library's own message", async () => {
  const sgd = () => new main.SGD([main.tensor([1], { requiresGrad: true })], { lr: 0.1 });
  const makers: [string, () => object][] = [
    ["Tensor", () => main.tensor([[1, 2], [3, 4]], { requiresGrad: true })],
    ["Linear", () => new main.Linear(2, 2, { rng: 1 })],
    ["Conv2d", () => new main.Conv2d(1, 1, 3, { rng: 1 })],
    ["Sequential", () => new main.Sequential([new main.Linear(2, 2, { rng: 1 }), new main.ReLU()])],
    ["SGD", sgd],
    ["StepLR", () => new main.StepLR(sgd(), { stepSize: 1 })],
    ["ReduceLROnPlateau", () => new main.ReduceLROnPlateau(sgd())],
    ["CosineAnnealing", () => new main.CosineAnnealing(sgd(), { tMax: 2 })],
    ["Dropout", () => new main.Dropout(0.5, { seed: 1 })],
    ["LocalResponseNorm", () => new main.LocalResponseNorm()],
    ["MaxPool2d", () => new main.MaxPool2d({ kernelSize: 2 })],
    ["AvgPool2d", () => new main.AvgPool2d({ kernelSize: 2 })],
    ["AdaptiveAvgPool2d", () => new main.AdaptiveAvgPool2d([1, 1])],
    ["Rng", () => new main.Rng(1)],
    ["DataLoader", () =>
      new data.DataLoader({
        images: new Uint8Array(4),
        shape: [1, 1, 2, 2],
        labels: new Int32Array([0]),
        classNames: ["a"],
      }, { batchSize: 1 })],
  ];
  const crashes: string[] = [];
  for (const [kind, make] of makers) {
    const names = new Set<string>();
    for (
      let p = Object.getPrototypeOf(make());
      p && p !== Object.prototype;
      p = Object.getPrototypeOf(p)
    ) {
      for (const name of Object.getOwnPropertyNames(p)) {
        const descriptor = Object.getOwnPropertyDescriptor(p, name)!;
        if (name !== "constructor" && typeof descriptor.value === "function") names.add(name);
      }
    }
    for (const name of names) {
      for (const args of ARGUMENT_LISTS()) {
        const target = make() as Record<string, (...a: unknown[]) => unknown>;
        const crash = await engineCrash(`${kind}.${name}(${show(args)})`, async () => {
          const result = target[name](...args);
          // An epoch iterator runs only when iterated.
          const iterable = result as AsyncIterable<unknown> | undefined;
          if (iterable && typeof iterable[Symbol.asyncIterator] === "function") {
            for await (const _ of iterable) break;
          }
          return await result;
        });
        if (crash) crashes.push(crash);
      }
    }
  }
  assert.deepEqual(crashes, []);
});

Deno.test("the crashes named in issue 18 are messages now", () => {
  const dataset = {
    images: new Uint8Array(4),
    shape: [1, 1, 2, 2] as [number, number, number, number],
    labels: new Int32Array([0]),
    classNames: ["a"],
  };
  const cases: [string, () => unknown, RegExp][] = [
    [
      "DataLoader without options",
      () => new data.DataLoader(dataset, undefined as never),
      /DataLoader: expects options with at least a batch size/,
    ],
    [
      "summary() without a shape",
      () => new main.Linear(2, 2).summary(undefined as never),
      /Module.summary: expects the input shape/,
    ],
    [
      "split(x, -1)",
      () => main.split(main.tensor([1, 2]), -1),
      /split: the number of parts must be a positive integer, got -1/,
    ],
    [
      "null options",
      () => main.crossEntropy(main.tensor([[1, 2]]), [0], null as never),
      /crossEntropy: options must be an object .* got null/,
    ],
  ];
  for (const [what, call, message] of cases) assert.throws(call, message, what);
});

Deno.test("the exports merged since the first sweep name the argument they were given", async () => {
  const cases: [string, () => unknown, RegExp][] = [
    ["imagenetEval()", () => data.imagenetEval(undefined as never), /imagenetEval: image must be/],
    ["topK(null)", () => data.topK(null as never), /topK: probabilities must be an array/],
    ["datasetStats({})", () => data.datasetStats({} as never), /datasetStats: expects a dataset/],
    ["decodeJpeg()", () => data.decodeJpeg(undefined as never, "x.jpg"), /decodeJpeg: bytes must/],
    ["record()", () => main.record(undefined as never, null as never, [], () => []), /record: op/],
    ["loadTorch()", () => main.loadTorch(undefined as never), /loadTorch: source must be/],
    [
      "centerCropTorchvision(image, 0)",
      () =>
        data.centerCropTorchvision(
          { data: new Uint8Array(3), channels: 3, height: 1, width: 1 },
          0,
        ),
      /centerCropTorchvision: size must be a positive integer \(pixels\), got 0/,
    ],
  ];
  for (const [what, call, message] of cases) {
    await assert.rejects(async () => await call(), message, what);
  }
});
