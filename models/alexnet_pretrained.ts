/**
 * torchvision's pretrained AlexNet in tessera, given its `state_dict` (from `loadTorch`,
 * `loadTorchBytes` or a safetensors file): the model built to the dict's shapes and loaded,
 * the class probabilities of a photo (centre crop or the paper's ten crops), and the last
 * hidden layer's activations the paper's Figure 4 compares. Nothing here touches files, so
 * the web page's worker uses it as the command-line examples do.
 *
 * The layout is torchvision's (`features.{0,3,6,8,10}`, `classifier.{1,4,6}`); fc6/fc7's width
 * and the number of classes are read from the dict, so a fine-tuned AlexNet with 10 classes
 * loads too (its classes are then named by index).
 *
 * @module
 */

import type { Tensor } from "../tensor/tensor.ts";
import { fromArray } from "../tensor/tensor.ts";
import { noGrad } from "../tensor/autograd.ts";
import { softmax } from "../tensor/ops/softmax.ts";
import type { HostTensor } from "../nn/module.ts";
import type { Sequential } from "../nn/sequential.ts";
import type { ImageCHW } from "../data/dataset.ts";
import {
  type ClassProbability,
  IMAGENET_CLASSES,
  imagenetEval,
  imagenetTenCrop,
  topK,
} from "../data/imagenet.ts";
import { checkArgument, checkOptions, declareOptions } from "../tensor/options.ts";
import { alexnetTorchvision } from "./alexnet.ts";

/**
 * The memory a weights reader may spend on one AlexNet file (`loadTorch`'s `maxBytes`):
 * torchvision's AlexNet is 61.1 million float32 values, 244 MB, and 512 MiB leaves room for a
 * float64 copy's conversion while still refusing a file that claims gigabytes. `loadTorch`'s
 * own default (8 times the file's size) would refuse a small file of broadcast (stride-0)
 * tensors that legitimately expands further.
 */
export const ALEXNET_MAX_BYTES = 512 * 1024 * 1024;

/** A torchvision-layout AlexNet with its weights loaded, and the names of its outputs. */
export interface PretrainedAlexNet {
  /** The network, in eval mode, on `device`. */
  model: Sequential;
  /** One name per output unit: ImageNet's for 1000 classes, `class i` otherwise. */
  classNames: readonly string[];
  /** The device it runs on ("cpu", or "gpu" once WebGPU is initialised). */
  device: string;
}

/** Throws unless `net` is what {@link alexnetFromStateDict} returns, naming `op`. */
function checkNet(op: string, net: unknown): asserts net is PretrainedAlexNet {
  const n = net as Partial<PretrainedAlexNet> | null;
  if (
    typeof n !== "object" || n === null || typeof n.model?.forward !== "function" ||
    !Array.isArray(n.classNames) || typeof n.device !== "string"
  ) {
    throw new TypeError(
      `${op}: net must be a PretrainedAlexNet (what alexnetFromStateDict returns), got ${
        n === null || typeof n !== "object" ? String(n) : `keys ${Object.keys(n).join(", ")}`
      }`,
    );
  }
}

/** The `[rows, columns]` of a classifier layer's weight, or an error naming the layout. */
function linearShape(state: Map<string, Tensor | HostTensor>, name: string, where: string) {
  const shape = state.get(`${name}.weight`)?.shape;
  if (shape === undefined || shape.length !== 2) {
    throw new Error(
      `${where}: no 2-d tensor "${name}.weight"; this is not a torchvision AlexNet state_dict ` +
        `(names ${[...state.keys()].slice(0, 4).join(", ")}, ...)`,
    );
  }
  return shape;
}

/** Throws, naming the tensor and the element, when the dict holds NaN or Infinity. */
function checkFinite(state: Map<string, Tensor | HostTensor>, where: string): void {
  for (const [name, t] of state) {
    const data = "dataSync" in t ? t.dataSync() : t.data;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new Error(`${where}: "${name}"[${i}] is ${data[i]}; the weights are not finite`);
      }
    }
  }
}

/**
 * Builds a torchvision-layout AlexNet from a state dict and loads it strictly (every name and
 * shape must match), then moves it to `device` (WebGPU must be initialised for "gpu") in eval
 * mode. The values are copied: `state` is left as it was (free its tensors when done). Errors
 * start with `where` (the file).
 *
 * @example A state dict of the right layout (here, random weights)
 * ```ts
 * import assert from "node:assert/strict";
 * import { alexnetTorchvision } from "./alexnet.ts";
 * import { alexnetFromStateDict } from "./alexnet_pretrained.ts";
 *
 * const source = alexnetTorchvision({ hidden: 16, numClasses: 10 });
 * const net = await alexnetFromStateDict(source.stateDict(), "example");
 * assert.equal(net.classNames[3], "class 3");
 * ```
 */
export async function alexnetFromStateDict(
  state: Map<string, Tensor | HostTensor>,
  where: string,
  device = "cpu",
): Promise<PretrainedAlexNet> {
  if (!(state instanceof Map)) {
    throw new TypeError(
      `alexnetFromStateDict: state must be a Map of tensors (loadTorch's result or ` +
        `model.stateDict()), got ${state === null ? "null" : typeof state}`,
    );
  }
  checkArgument("alexnetFromStateDict", "where (the file's name, for messages)", where, "string");
  const [hidden] = linearShape(state, "classifier.1", where);
  const [numClasses] = linearShape(state, "classifier.6", where);
  checkFinite(state, where);
  const model = alexnetTorchvision({ hidden, numClasses, dropout: false });
  try {
    await model.loadStateDict(state);
  } catch (error) {
    for (const p of model.parameters()) p.dispose();
    throw new Error(`${where}: ${(error as Error).message}`);
  }
  await model.to(device);
  model.eval();
  const classNames = numClasses === IMAGENET_CLASSES.length
    ? IMAGENET_CLASSES
    : Array.from({ length: numClasses }, (_, i) => `class ${i}`);
  return { model, classNames, device };
}

/** Runs `views` ([3, 224, 224] each) as one batch through `forward`, returning host values. */
async function run(
  net: PretrainedAlexNet,
  views: ImageCHW<Float32Array>[],
  forward: (model: Sequential, x: Tensor) => Tensor,
): Promise<Float32Array> {
  const size = views[0].data.length;
  const batch = new Float32Array(views.length * size);
  views.forEach((v, i) => batch.set(v.data, i * size));
  using x = fromArray(batch, [views.length, 3, 224, 224], { device: net.device });
  using out = noGrad(() => forward(net.model, x));
  return (await out.data()) as Float32Array;
}

/**
 * The class probabilities of one RGB photo: the softmax of torchvision's centre crop
 * (`crops` 1) or the mean softmax of the paper's ten crops (`crops` 10).
 */
export async function classProbabilities(
  net: PretrainedAlexNet,
  image: ImageCHW<Uint8Array>,
  crops: 1 | 10 = 1,
): Promise<Float64Array> {
  checkNet("classProbabilities", net);
  const views = crops === 10 ? imagenetTenCrop(image) : [imagenetEval(image)];
  const values = await run(net, views, (model, x) => softmax(model.forward(x)));
  const classes = net.classNames.length;
  const mean = new Float64Array(classes);
  for (let v = 0; v < views.length; v++) {
    for (let c = 0; c < classes; c++) mean[c] += values[v * classes + c] / views.length;
  }
  return mean;
}

const CLASSIFY_KEYS = declareOptions<NonNullable<Parameters<typeof classify>[2]>>()("classify", [
  "crops",
  "top",
]);

/** The `top` (default 5) most probable classes of one photo (see {@link classProbabilities}). */
export async function classify(
  net: PretrainedAlexNet,
  image: ImageCHW<Uint8Array>,
  options: { crops?: 1 | 10; top?: number } = {},
): Promise<ClassProbability[]> {
  checkOptions("classify", options, CLASSIFY_KEYS);
  checkNet("classify", net);
  const crops = options.crops ?? 1;
  if (crops !== 1 && crops !== 10) {
    throw new RangeError(`classify: crops must be 1 or 10, got ${crops}`);
  }
  const probabilities = await classProbabilities(net, image, crops);
  return topK(probabilities, options.top ?? 5, net.classNames);
}

/**
 * The last hidden layer's activations of a photo's centre crop: fc7 after its ReLU, the
 * 4096-d vector whose Euclidean distances the paper's Figure 4 (right) ranks neighbours by.
 */
export async function lastHiddenLayer(
  net: PretrainedAlexNet,
  image: ImageCHW<Uint8Array>,
): Promise<Float32Array> {
  checkNet("lastHiddenLayer", net);
  return await run(net, [imagenetEval(image)], (model, x) => {
    // features, avgpool, flatten, then classifier up to fc7's ReLU (index 5; 6 is fc8).
    let h = model.at(2).forward(model.at(1).forward(model.at(0).forward(x)));
    const classifier = model.at(3) as Sequential;
    for (let i = 0; i <= 5; i++) h = classifier.at(i).forward(h);
    return h;
  });
}

/** Frees the model's parameters (GPU memory when on the GPU). */
export function disposePretrained(net: PretrainedAlexNet): void {
  checkNet("disposePretrained", net);
  for (const p of net.model.parameters()) p.dispose();
}
