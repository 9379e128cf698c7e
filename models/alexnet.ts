/**
 * Three AlexNets and the small net of Figure 1:
 *
 * - {@link alexnet}: the paper's network (Krizhevsky et al. 2012, section 3.5, Figure 2),
 *   with Caffe's layer names (conv1, norm1, pool1, ..., fc8) so `summary()` reads like the
 *   paper's table.
 * - {@link alexnetTorchvision}: torchvision's `alexnet`, the later "One weird trick" variant
 *   (Krizhevsky 2014), with its state_dict names, so its pretrained weights load unchanged.
 * - {@link alexnetMini}: the paper's architecture scaled down for 28x28 Fashion-MNIST or
 *   32x32 CIFAR-10, small enough to train on a CPU.
 * - {@link figure1Net}: the small unregularised conv net of the paper's Figure 1 (ReLU vs tanh).
 *
 * Ablation options switch off, one at a time, the things the paper credits (section 3):
 * ReLU vs tanh (3.1), the two-GPU grouping (3.2; `oneGpu` builds the one-GPU net it was
 * compared with), LRN (3.3), overlapping pooling (3.4) and dropout (4.2). The first fully connected layer's input size is never hard-coded: the
 * convolutional part's output shape is propagated from the input size, so every combination
 * fits.
 *
 * @module
 */

import {
  AdaptiveAvgPool2d,
  Conv2d,
  Dropout,
  Flatten,
  Identity,
  Linear,
  LocalResponseNorm,
  MaxPool2d,
  ReLU,
  Sequential,
  Tanh,
} from "../nn/layers.ts";
import type { Module } from "../nn/module.ts";
import { alexnetInit, heInit, xavierNormal, zeros } from "../nn/init.ts";
import { Rng } from "../tensor/random.ts";
import { checkOptions, declareOptions } from "../tensor/options.ts";
import { sizeOf } from "../tensor/shape.ts";
// This module is an entry point of the package (`@tessera/tessera/alexnet`): like mod.ts, it
// loads cpu/mod.ts, which registers the CPU backend, so the builders work without mod.ts.
import "../cpu/mod.ts";

/** The ablation switches shared by every variant. */
export interface AblationOptions {
  /** Nonlinearity after each conv and hidden fc layer (default "relu": section 3.1). */
  activation?: "relu" | "tanh";
  /** Dropout p = 0.5 in the fc hidden layers (default true: section 4.2). */
  dropout?: boolean;
  /**
   * "overlap": 3x3 windows, stride 2 (default: section 3.4); "plain": 2x2, stride 2;
   * "plain-matched": 2x2, stride 2, with the padding of the conv before each pool lowered until
   * the pooled maps have the overlapping net's sizes (the paper's "equivalent dimensions":
   * 28 -> 13 -> 6 -> 2 in the mini; on the paper's 55, 27 and 13 nothing changes).
   */
  pool?: "overlap" | "plain" | "plain-matched";
  /** Input channels (default 3, RGB; 1 for grayscale). */
  inChannels?: number;
  /** Output classes. */
  numClasses?: number;
  /** Seed of the initialisation and of the dropout layers' mask generators (default 0). */
  seed?: number;
}

/** Options of {@link alexnet} and {@link alexnetMini}. */
export interface AlexNetOptions extends AblationOptions {
  /** Local response normalization after conv1 and conv2 (default true: section 3.3). */
  lrn?: boolean;
  /** LRN's alpha convention (default "averaged", what cuda-convnet2 ran; see LocalResponseNorm). */
  lrnAlphaScaling?: "averaged" | "per-term";
  /** Groups of conv2, conv4, conv5: 2 is the paper's two-GPU split (default 2: section 3.2). */
  groups?: 1 | 2;
  /**
   * The paper's one-GPU comparison net (section 3.2 and its footnote 2): half the kernels in
   * conv1-conv4, one group everywhere; conv5 and the fc layers keep their size "to make the two
   * nets have approximately the same number of parameters". Default false. Needs groups 1 or
   * unset.
   */
  oneGpu?: boolean;
  /** Height = width of the input images; sizes the first fc layer. */
  inputSize?: number;
  /** Width of fc6 and fc7 (default: the variant's, 4096 or 256 in the mini). */
  hidden?: number;
  /** LRN's alpha (default 1e-4, the paper's). */
  lrnAlpha?: number;
  /** "paper": N(0, 0.01²), biases 1/0 (section 5); "he": Kaiming normal; "pytorch": U(±1/sqrt(fanIn)). */
  init?: "paper" | "he" | "pytorch";
}

/** Options of {@link alexnetTorchvision}. */
export interface AlexNetTorchvisionOptions extends AblationOptions {
  /** "pytorch" (default: torchvision keeps the layers' default init), "paper" or "he". */
  init?: "paper" | "he" | "pytorch";
  /**
   * Units of fc6 and fc7 (default 4096, torchvision's). Smaller values give the same layer
   * names with a small classifier, e.g. for tests that write a weights file in this layout.
   */
  hidden?: number;
}

const ABLATION_KEYS = [
  "activation",
  "dropout",
  "pool",
  "inChannels",
  "numClasses",
  "seed",
] as const;
const ALEXNET_KEYS = [
  ...ABLATION_KEYS,
  "lrn",
  "lrnAlphaScaling",
  "groups",
  "oneGpu",
  "inputSize",
  "hidden",
  "lrnAlpha",
  "init",
] as const;
const MODEL_KEYS = {
  alexnet: declareOptions<AlexNetOptions>()("alexnet", ALEXNET_KEYS),
  alexnetMini: declareOptions<AlexNetOptions>()("alexnetMini", ALEXNET_KEYS),
  alexnetTorchvision: declareOptions<AlexNetTorchvisionOptions>()("alexnetTorchvision", [
    ...ABLATION_KEYS,
    "init",
    "hidden",
  ]),
  figure1Net: declareOptions<Figure1NetOptions>()("figure1Net", [
    "activation",
    "inChannels",
    "inputSize",
    "numClasses",
    "seed",
    "init",
  ]),
};

/** One convolutional layer of a variant. */
interface ConvSpec {
  out: number;
  kernel: number;
  stride: number;
  padding: number;
  /** Whether the layer is split in two groups (when the model's `groups` is 2). */
  split: boolean;
}

/** The numbers that distinguish the paper's network from the mini one. */
interface VariantSpec {
  convs: [ConvSpec, ConvSpec, ConvSpec, ConvSpec, ConvSpec];
  hidden: number;
  inputSize: number;
  inChannels: number;
  numClasses: number;
  init: "paper" | "he" | "pytorch";
}

// Section 3.5: "The first convolutional layer filters the 224x224x3 input image with 96
// kernels of size 11x11x3 with a stride of 4 pixels". 11x11/4 without padding yields the
// paper's 55x55 only from 227x227, Caffe's choice, which we follow (torchvision instead keeps
// 224 and pads by 2). conv3 sees both halves (groups 1): "the kernels of layer three take
// input from all kernel maps in layer two".
const PAPER: VariantSpec = {
  convs: [
    { out: 96, kernel: 11, stride: 4, padding: 0, split: false },
    { out: 256, kernel: 5, stride: 1, padding: 2, split: true },
    { out: 384, kernel: 3, stride: 1, padding: 1, split: false },
    { out: 384, kernel: 3, stride: 1, padding: 1, split: true },
    { out: 256, kernel: 3, stride: 1, padding: 1, split: true },
  ],
  hidden: 4096,
  inputSize: 227,
  inChannels: 3,
  numClasses: 1000,
  init: "paper",
};

// The paper's layout at about 1/3 of its widths for 28x28 inputs; "same" padding in every
// conv so the three 3/2 poolings take 28 -> 13 -> 6 -> 2. He init by default: with the
// paper's N(0, 0.01²) each layer scales the signal by about 0.01 * sqrt(fanIn) (0.05 for
// conv1, 0.16 for the fc layers), so after eight layers the logits carry ~1e-6 of the input,
// the softmax is uniform and the gradient reaching conv1 is as small; LRN with k = 2 divides
// by another 2^0.75 = 1.7 since its sum is negligible at that scale. On a small data set the
// net sits at chance. Kaiming's sqrt(2 / fanIn) keeps the variance constant through each
// ReLU layer (He et al. 2015).
const MINI: VariantSpec = {
  convs: [
    { out: 32, kernel: 5, stride: 1, padding: 2, split: false },
    { out: 64, kernel: 5, stride: 1, padding: 2, split: true },
    { out: 96, kernel: 3, stride: 1, padding: 1, split: false },
    { out: 96, kernel: 3, stride: 1, padding: 1, split: true },
    { out: 64, kernel: 3, stride: 1, padding: 1, split: true },
  ],
  hidden: 256,
  inputSize: 28,
  inChannels: 1,
  numClasses: 10,
  init: "he",
};

function activationLayer(kind: "relu" | "tanh" | undefined): Module {
  if (kind === undefined || kind === "relu") return new ReLU();
  if (kind === "tanh") return new Tanh();
  throw new RangeError(`alexnet: activation must be "relu" or "tanh", got ${JSON.stringify(kind)}`);
}

function poolLayer(kind: "overlap" | "plain" | "plain-matched" | undefined): MaxPool2d {
  if (kind === undefined || kind === "overlap") return new MaxPool2d({ kernelSize: 3, stride: 2 });
  if (kind === "plain" || kind === "plain-matched") {
    return new MaxPool2d({ kernelSize: 2, stride: 2 });
  }
  throw new RangeError(
    `alexnet: pool must be "overlap", "plain" or "plain-matched", got ${JSON.stringify(kind)}`,
  );
}

/**
 * The padding of a conv before a pool for "plain-matched": the largest padding, at most the
 * layer's own, whose 2x2/2 pooled output has the size the 3x3/2 pooled output has with the
 * layer's own padding (`size` is the conv's input side).
 */
function matchedPadding(size: number, conv: { kernel: number; padding: number }): number {
  const convOut = (p: number) => size + 2 * p - conv.kernel + 1;
  const target = Math.floor((convOut(conv.padding) - 3) / 2) + 1;
  for (let p = conv.padding; p >= 0; p--) {
    if (Math.floor(convOut(p) / 2) === target) return p;
  }
  throw new RangeError(
    `alexnet: pool "plain-matched" finds no padding of a ${conv.kernel}x${conv.kernel} conv on ` +
      `${size}x${size} maps that gives ${target}x${target} after 2x2/2 pooling`,
  );
}

function checkInit(init: string): "paper" | "he" | "pytorch" {
  if (init === "paper" || init === "he" || init === "pytorch") return init;
  throw new RangeError(
    `alexnet: init must be "paper", "he" or "pytorch", got ${JSON.stringify(init)}`,
  );
}

/** Applies a model-level scheme; "pytorch" is what the layers drew when they were built. */
function initialise(model: Module, init: "paper" | "he" | "pytorch", rng: Rng): void {
  if (init === "paper") alexnetInit(model, rng);
  else if (init === "he") heInit(model, rng);
}

/** Builds the paper's layout with Caffe's names from a variant's numbers and the options. */
function buildAlexNet(spec: VariantSpec, options: AlexNetOptions): Sequential {
  const oneGpu = options.oneGpu ?? false;
  if (oneGpu && options.groups === 2) {
    throw new RangeError("alexnet: oneGpu is the paper's net without groups; got groups 2 with it");
  }
  const groups = oneGpu ? 1 : options.groups ?? 2;
  if (groups !== 1 && groups !== 2) {
    throw new RangeError(`alexnet: groups must be 1 or 2, got ${groups}`);
  }
  const inChannels = options.inChannels ?? spec.inChannels;
  const inputSize = options.inputSize ?? spec.inputSize;
  const numClasses = options.numClasses ?? spec.numClasses;
  const rng = new Rng(options.seed ?? 0);
  const init = checkInit(options.init ?? spec.init);
  // Layers draw PyTorch's default only when no model-level scheme will overwrite it.
  const weights = { rng, initialize: init === "pytorch" };
  const lrn = options.lrn ?? true;
  // size 5, alpha 1e-4, beta 0.75, k 2 (section 3.3). The trap: cuda-convnet2 divided alpha
  // by size, so the winning network used 2e-5 per squared term; "averaged" reproduces that.
  const norm = () =>
    new LocalResponseNorm({
      alpha: options.lrnAlpha ?? 1e-4,
      alphaScaling: options.lrnAlphaScaling ?? "averaged",
    });

  // Caffe's names (relu1, ...), or tanh1, ... in the tanh ablation.
  const activationName = options.activation ?? "relu";
  const layers: Record<string, Module> = {};
  let channels = inChannels;
  let size = inputSize; // the side of the maps entering each layer
  spec.convs.forEach((conv, i) => {
    const n = i + 1;
    // Footnote 2 of section 3.2: the one-GPU net halves every conv layer but the last.
    const out = oneGpu && n <= 4 ? conv.out / 2 : conv.out;
    const pooled = n <= 2 || n === 5;
    const padding = pooled && options.pool === "plain-matched" && conv.stride === 1
      ? matchedPadding(size, conv)
      : conv.padding;
    size = Math.floor((size + 2 * padding - conv.kernel) / conv.stride) + 1;
    const window = (options.pool ?? "overlap") === "overlap" ? 3 : 2;
    if (pooled) size = Math.floor((size - window) / 2) + 1;
    layers[`conv${n}`] = new Conv2d(channels, out, conv.kernel, {
      stride: conv.stride,
      padding,
      groups: conv.split ? groups : 1,
      ...weights,
    });
    channels = out;
    layers[`${activationName}${n}`] = activationLayer(options.activation);
    // Section 3.3: normalization after the ReLU of the first two layers; section 3.4: pooling
    // after both normalizations and after conv5.
    if (n <= 2 && lrn) layers[`norm${n}`] = norm();
    if (n <= 2 || n === 5) layers[`pool${n}`] = poolLayer(options.pool);
  });
  layers.flatten = new Flatten();
  let shape = [1, inChannels, inputSize, inputSize];
  for (const layer of Object.values(layers)) shape = layer.outputShape(shape);
  const flat = sizeOf(shape.slice(1));

  const dropout = options.dropout ?? true;
  const hidden = options.hidden ?? spec.hidden;
  if (!Number.isInteger(hidden) || hidden < 1) {
    throw new RangeError(`alexnet: hidden must be a positive integer, got ${hidden}`);
  }
  let width = flat;
  for (const n of [6, 7]) {
    layers[`fc${n}`] = new Linear(width, hidden, weights);
    width = hidden;
    layers[`${activationName}${n}`] = activationLayer(options.activation);
    // Section 4.2: "We use dropout in the first two fully-connected layers". The mask seed is
    // drawn with or without dropout, so a net without it starts from the very same weights.
    const dropSeed = rng.nextU32();
    if (dropout) layers[`drop${n}`] = new Dropout(0.5, { seed: dropSeed });
  }
  layers.fc8 = new Linear(width, numClasses, weights);

  const model = new Sequential(layers);
  initialise(model, init, rng);
  return model;
}

/**
 * The paper's AlexNet (section 3.5, Figure 2) with Caffe's layer names (conv1, norm1, pool1,
 * ..., fc8): 60,965,224 parameters, 0.72 G multiply-adds per image. It takes 227x227 inputs:
 * the paper says 224, but conv1's 11x11 kernels at stride 4 give its 55x55 maps only from 227
 * (Caffe's choice; torchvision pads 224 instead). Paper init by default: N(0, 0.01²), biases 1
 * in conv2, conv4, conv5 and the hidden fc layers, 0 elsewhere (section 5).
 *
 * @example The paper's network, checked without running it
 * ```ts
 * import assert from "node:assert/strict";
 * import { alexnet } from "./alexnet.ts";
 *
 * const model = alexnet(); // 1000 ImageNet classes, RGB 227x227
 * assert.equal(model.parameterCount(), 60_965_224);
 * assert.deepEqual(model.outputShape([1, 3, 227, 227]), [1, 1000]); // no kernel runs
 * model.summary([1, 3, 227, 227]); // prints the paper's table: layer, output shape, parameters
 * ```
 */
export function alexnet(options?: AlexNetOptions): Sequential {
  return buildAlexNet(PAPER, checkOptions("alexnet", options, MODEL_KEYS.alexnet));
}

/**
 * AlexNet-mini for 28x28 (default) or 32x32 inputs (`inputSize: 32, inChannels: 3`):
 * conv 32-64-96-96-64 with the paper's LRN, overlapping pooling and grouping, fc 256-256,
 * small enough to train on a CPU. He init by default: with the paper's N(0, 0.01²) each layer
 * scales the signal by about 0.01 · sqrt(fanIn), so after eight layers the logits carry about
 * 1e-6 of the input and a small network sits at chance; Kaiming's sqrt(2 / fanIn) keeps the
 * variance through each ReLU layer (He et al. 2015).
 *
 * @example One training step on 28x28 images
 * ```ts
 * import assert from "node:assert/strict";
 * import { crossEntropy, randn, SGD } from "../mod.ts";
 * import { alexnetMini } from "./alexnet.ts";
 *
 * const model = alexnetMini({ inChannels: 1, numClasses: 10, seed: 1 }); // Fashion-MNIST
 * const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
 * const images = randn([4, 1, 28, 28], { seed: 2 }); // a batch [N, 1, 28, 28]
 * const logits = model.forward(images);
 * assert.deepEqual(logits.shape, [4, 10]);
 * const loss = crossEntropy(logits, [0, 1, 2, 3]);
 * assert.ok(Number.isFinite(await loss.item()));
 * const before = model.parameters()[0].dataSync().slice(); // conv1's weight
 * optimizer.zeroGrad();
 * loss.backward();
 * optimizer.step();
 * assert.notDeepEqual(model.parameters()[0].dataSync(), before); // the step moved it
 * ```
 */
export function alexnetMini(options?: AlexNetOptions): Sequential {
  return buildAlexNet(MINI, checkOptions("alexnetMini", options, MODEL_KEYS.alexnetMini));
}

/** Options of {@link figure1Net}. */
export interface Figure1NetOptions {
  /** Nonlinearity after every layer but the last (default "relu"; Figure 1 compares "tanh"). */
  activation?: "relu" | "tanh";
  /** Input channels (default 1). */
  inChannels?: number;
  /** Height = width of the input images (default 28). */
  inputSize?: number;
  /** Output classes (default 10). */
  numClasses?: number;
  /** Seed of the initialisation (default 0). */
  seed?: number;
  /**
   * "he" (default, for both activations, so the two nets start alike), "xavier" (Glorot and
   * Bengio's normal form, N(0, 2 / (fanIn + fanOut)), the scale designed for tanh) or
   * "pytorch".
   */
  init?: "he" | "xavier" | "pytorch";
}

/**
 * The network of the paper's Figure 1 in miniature: "a four-layer convolutional neural
 * network" with no regularisation (no dropout, no LRN), here conv 5x5 16 - pool 2 - conv 5x5
 * 32 - pool 2 - fc 128 - fc classes, about 3.3 M multiply-adds per 28x28 image, so a ReLU
 * and a tanh net can each be trained several times on a CPU.
 *
 * @example
 * ```ts
 * const net = figure1Net({ activation: "tanh" }); // [N, 1, 28, 28] -> [N, 10]
 * ```
 */
export function figure1Net(options?: Figure1NetOptions): Sequential {
  options = checkOptions("figure1Net", options, MODEL_KEYS.figure1Net);
  const rng = new Rng(options.seed ?? 0);
  const init = options.init ?? "he";
  if (init !== "he" && init !== "xavier" && init !== "pytorch") {
    throw new RangeError(
      `figure1Net: init must be "he", "xavier" or "pytorch", got ${JSON.stringify(init)} ` +
        "(the paper's scheme is for AlexNet)",
    );
  }
  const weights = { rng, initialize: init === "pytorch" };
  const inChannels = options.inChannels ?? 1;
  const inputSize = options.inputSize ?? 28;
  const name = options.activation ?? "relu";
  const layers: Record<string, Module> = {
    conv1: new Conv2d(inChannels, 16, 5, { padding: 2, ...weights }),
    [`${name}1`]: activationLayer(options.activation),
    pool1: new MaxPool2d({ kernelSize: 2, stride: 2 }),
    conv2: new Conv2d(16, 32, 5, { padding: 2, ...weights }),
    [`${name}2`]: activationLayer(options.activation),
    pool2: new MaxPool2d({ kernelSize: 2, stride: 2 }),
    flatten: new Flatten(),
  };
  let shape = [1, inChannels, inputSize, inputSize];
  for (const layer of Object.values(layers)) shape = layer.outputShape(shape);
  layers.fc3 = new Linear(sizeOf(shape.slice(1)), 128, weights);
  layers[`${name}3`] = activationLayer(options.activation);
  layers.fc4 = new Linear(128, options.numClasses ?? 10, weights);
  const model = new Sequential(layers);
  if (init === "xavier") xavierInit(model, rng);
  else initialise(model, init, rng);
  return model;
}

/** Glorot-normal weights and zero biases for every conv and linear layer, in forward order. */
function xavierInit(model: Module, rng: Rng): void {
  for (const [, layer] of model.namedModules()) {
    const own = layer.localParameters();
    const weight = own.get("weight");
    if (weight === undefined || (weight.rank !== 2 && weight.rank !== 4)) continue;
    xavierNormal(weight, { rng });
    const bias = own.get("bias");
    if (bias) zeros(bias);
  }
}

/**
 * torchvision's `alexnet` (One weird trick, 2014: 64-192-384-256-256, no LRN, no groups,
 * adaptive 6x6 pooling, dropout before fc6 and fc7), for 224x224 inputs, with torchvision's
 * names: `features.{0,3,6,8,10}`, `classifier.{1,4,6}`. With `dropout: false` the dropout
 * slots hold an Identity, so the classifier's indices (and names) stay torchvision's.
 *
 * @example torchvision's names and shapes
 * ```ts
 * import assert from "node:assert/strict";
 * import { alexnetTorchvision } from "./alexnet.ts";
 *
 * const model = alexnetTorchvision();
 * assert.deepEqual(model.outputShape([1, 3, 224, 224]), [1, 1000]);
 * // torchvision's state_dict names, so its pretrained weights (as safetensors) load unchanged.
 * const names = [...model.namedParameters().keys()];
 * assert.equal(names[0], "features.0.weight");
 * assert.equal(names.at(-1), "classifier.6.bias");
 * ```
 */
export function alexnetTorchvision(options?: AlexNetTorchvisionOptions): Sequential {
  options = checkOptions("alexnetTorchvision", options, MODEL_KEYS.alexnetTorchvision);
  const rng = new Rng(options.seed ?? 0);
  const init = checkInit(options.init ?? "pytorch");
  const weights = { rng, initialize: init === "pytorch" };
  const inChannels = options.inChannels ?? 3;
  const act = () => activationLayer(options.activation);
  const pool = () => poolLayer(options.pool);
  const features = new Sequential([
    new Conv2d(inChannels, 64, 11, { stride: 4, padding: 2, ...weights }),
    act(),
    pool(),
    new Conv2d(64, 192, 5, { padding: 2, ...weights }),
    act(),
    pool(),
    new Conv2d(192, 384, 3, { padding: 1, ...weights }),
    act(),
    new Conv2d(384, 256, 3, { padding: 1, ...weights }),
    act(),
    new Conv2d(256, 256, 3, { padding: 1, ...weights }),
    act(),
    pool(),
  ]);
  // The mask seed is drawn with or without dropout: both nets start from the same weights.
  const drop = () => {
    const seed = rng.nextU32();
    return (options.dropout ?? true) ? new Dropout(0.5, { seed }) : new Identity();
  };
  const hidden = options.hidden ?? 4096;
  if (!Number.isInteger(hidden) || hidden < 1) {
    throw new RangeError(`alexnetTorchvision: hidden must be an integer >= 1, got ${hidden}`);
  }
  const classifier = new Sequential([
    drop(),
    new Linear(256 * 6 * 6, hidden, weights),
    act(),
    drop(),
    new Linear(hidden, hidden, weights),
    act(),
    new Linear(hidden, options.numClasses ?? 1000, weights),
  ]);
  const model = new Sequential({
    features,
    avgpool: new AdaptiveAvgPool2d(6),
    flatten: new Flatten(),
    classifier,
  });
  initialise(model, init, rng);
  return model;
}
