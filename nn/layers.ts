/**
 * The layers AlexNet is built from, each a thin {@link Module} around one op of
 * `tensor/ops/`, with PyTorch's names, argument order and defaults unless a comment says
 * otherwise. Every layer also computes its output shape (for `summary()` and for sizing the
 * first fully connected layer) and, if it has weights, its multiply-adds. Constructors check
 * their arguments, so a NaN or fractional size fails when the layer is built, naming it.
 *
 * Every layer is here, each a short class in its own section (weights, shape-preserving,
 * pooling, regularization), read one at a time; they share the argument checks at the top. The container,
 * {@link Sequential}, is in `sequential.ts` and re-exported here, so this file is the one
 * import for building a model.
 *
 * @module
 */

import { type Tensor, zeros } from "../tensor/tensor.ts";
import { checkShape, formatShape, type Shape, sizeOf } from "../tensor/shape.ts";
import { generator, Rng, type RngState } from "../tensor/random.ts";
import { relu, tanh } from "../tensor/ops/elementwise.ts";
import { flatten } from "../tensor/ops/layout.ts";
import { linear } from "../tensor/ops/matmul.ts";
import { conv2d, conv2dParams } from "../tensor/ops/conv2d.ts";
import {
  adaptiveAvgPool2d,
  avgPool2d,
  maxPool2d,
  pool2dParams,
  poolOptions,
} from "../tensor/ops/pool.ts";
import { localResponseNorm } from "../tensor/ops/lrn.ts";
import { dropout } from "../tensor/ops/dropout.ts";
import { Module, parameter } from "./module.ts";
import { checkOptions, declareOptions } from "../tensor/options.ts";
import { pytorchDefault, type RandomSource } from "./init.ts";

export { Sequential } from "./sequential.ts";

/** A size given as one number (square) or [height, width]. */
export type Size2 = number | readonly [number, number];

/**
 * `value` as [height, width], checked: integers of at least `min`. The error names the layer,
 * the argument and the value.
 */
function pair(layer: string, name: string, value: Size2, min: number): [number, number] {
  const [a, b] = typeof value === "number" ? [value, value] : Array.isArray(value) ? value : [];
  if (!Number.isInteger(a) || !Number.isInteger(b) || a! < min || b! < min) {
    const what = min > 0 ? "positive integers" : "non-negative integers";
    throw new RangeError(
      `${layer}: ${name} must be ${what} (one number or [height, width]), got ${
        Array.isArray(value) ? `[${value.join(",")}]` : String(value)
      }`,
    );
  }
  return [a!, b!];
}

/** Throws unless `value` is an integer of at least `min`, naming the layer and argument. */
function checkInteger(layer: string, name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${layer}: ${name} must be an integer >= ${min}, got ${value}`);
  }
}

/** Throws unless `value` is a finite number, naming the layer and argument. */
function checkFinite(layer: string, name: string, value: number): void {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new RangeError(`${layer}: ${name} must be a finite number, got ${value}`);
  }
}

/**
 * Throws, naming the layer, when the input's dtype is not its weight's: a float64 input to
 * a float32 model (or the reverse) needs a cast of one or the other.
 */
function checkInputDtype(layer: Module, x: Tensor, weight: Tensor): void {
  if (x?.dtype !== undefined && x.dtype !== weight.dtype) {
    throw new TypeError(
      `${layer.constructor.name}(${layer.describe()}): the input is ${x.dtype} but the layer's weight is ${weight.dtype}; convert the input with cast(x, "${weight.dtype}") or the model with await model.to({ dtype: "${x.dtype}" })`,
    );
  }
}

/**
 * A weight of `shape` and, unless `options.bias` is false, a bias [shape[0]], both parameters
 * drawn from PyTorch's default (U(±1/sqrt(fanIn))) unless `options.initialize` is false.
 */
function weightAndBias(shape: number[], options: WeightOptions): [Tensor, Tensor | null] {
  const weight = parameter(zeros(shape));
  const bias = (options.bias ?? true) ? parameter(zeros([shape[0]])) : null;
  if (options.initialize ?? true) pytorchDefault(weight, bias, options.rng);
  return [weight, bias];
}

function checkImage(layer: string, shape: Shape): void {
  if (shape.length !== 4) {
    throw new RangeError(`${layer}: input must be [N, C, H, W], got ${formatShape(shape)}`);
  }
}

/** Shared by layers that construct weights. */
export interface WeightOptions {
  /** Whether the layer adds a learned bias (default true). */
  bias?: boolean;
  /**
   * Random source of the default initialisation: a seed (the same weights every time) or a
   * shared `Rng`; default the global generator, so two layers get different weights.
   */
  rng?: RandomSource;
  /**
   * Whether to draw PyTorch's default initialisation (default true). False leaves zeros for
   * a model-level scheme that overwrites every weight anyway (AlexNet has 61M of them).
   */
  initialize?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Layers with weights

/** Options of {@link Conv2d}. */
export interface Conv2dLayerOptions extends WeightOptions {
  /** Step between windows (default 1). */
  stride?: Size2;
  /** Zero padding on each side (default 0). */
  padding?: Size2;
  /** Channel groups (default 1; AlexNet's conv2, conv4, conv5 use 2: paper section 3.2). */
  groups?: number;
  /** Spacing between kernel taps (default 1, PyTorch's `dilation`). */
  dilation?: Size2;
}

const WEIGHT_KEYS = ["bias", "rng", "initialize"] as const;
const CONV2D_LAYER_KEYS = declareOptions<Conv2dLayerOptions>()("Conv2d", [
  "stride",
  "padding",
  "groups",
  "dilation",
  ...WEIGHT_KEYS,
]);
const LINEAR_KEYS = declareOptions<WeightOptions>()("Linear", WEIGHT_KEYS);
const LRN_LAYER_KEYS = declareOptions<LocalResponseNormOptions>()("LocalResponseNorm", [
  "size",
  "alpha",
  "beta",
  "k",
  "alphaScaling",
]);
const MAX_POOL_LAYER_KEYS = declareOptions<Pool2dLayerOptions>()("MaxPool2d", [
  "kernelSize",
  "stride",
  "padding",
  "ceilMode",
]);
const AVG_POOL_LAYER_KEYS = declareOptions<AvgPool2dLayerOptions>()("AvgPool2d", [
  ...MAX_POOL_LAYER_KEYS,
  "countIncludePad",
]);
const DROPOUT_LAYER_KEYS = declareOptions<DropoutOptions>()("Dropout", ["seed"]);

/**
 * 2-D convolution: weight [outChannels, inChannels / groups, kH, kW], bias [outChannels],
 * initialised like PyTorch's `nn.Conv2d` (U(±1/sqrt(fanIn))) until a model-level scheme
 * overwrites it.
 *
 * @example AlexNet's first two convolutions
 * ```ts
 * import assert from "node:assert/strict";
 * import { Conv2d, randn } from "../mod.ts";
 *
 * // AlexNet's conv1: 96 filters of 11x11 over RGB, stride 4 (paper section 3.5).
 * const conv1 = new Conv2d(3, 96, 11, { stride: 4 });
 * assert.deepEqual(conv1.weight.shape, [96, 3, 11, 11]);
 * assert.deepEqual(conv1.outputShape([1, 3, 227, 227]), [1, 96, 55, 55]);
 * // Grouped, as conv2 on two GPUs: each output sees 48 of the 96 input channels.
 * const conv2 = new Conv2d(96, 256, 5, { padding: 2, groups: 2 });
 * assert.deepEqual(conv2.weight.shape, [256, 48, 5, 5]);
 * assert.deepEqual(conv2.forward(randn([1, 96, 13, 13], { seed: 1 })).shape, [1, 256, 13, 13]);
 * ```
 */
export class Conv2d extends Module {
  /** Kernel size [kH, kW]. */
  readonly kernelSize: [number, number];
  /** Stride [vertical, horizontal]. */
  readonly stride: [number, number];
  /** Padding [vertical, horizontal]. */
  readonly padding: [number, number];
  /** Channel groups. */
  readonly groups: number;
  /** Dilation [vertical, horizontal]. */
  readonly dilation: [number, number];

  /** Creates the layer and its parameters. */
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Size2,
    options?: Conv2dLayerOptions,
  ) {
    super();
    options = checkOptions("Conv2d", options, CONV2D_LAYER_KEYS);
    checkInteger("Conv2d", "inChannels", inChannels, 1);
    checkInteger("Conv2d", "outChannels", outChannels, 1);
    this.kernelSize = pair("Conv2d", "kernelSize", kernelSize, 1);
    this.stride = pair("Conv2d", "stride", options.stride ?? 1, 1);
    this.padding = pair("Conv2d", "padding", options.padding ?? 0, 0);
    this.dilation = pair("Conv2d", "dilation", options.dilation ?? 1, 1);
    this.groups = options.groups ?? 1;
    checkInteger("Conv2d", "groups", this.groups, 1);
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new RangeError(
        `Conv2d: inChannels ${inChannels} and outChannels ${outChannels} must both be divisible by groups ${this.groups}`,
      );
    }
    const [kh, kw] = this.kernelSize;
    const [weight, bias] = weightAndBias([outChannels, inChannels / this.groups, kh, kw], options);
    this.registerParameter("weight", weight);
    this.registerParameter("bias", bias);
  }

  /** [outChannels, inChannels / groups, kH, kW]. */
  get weight(): Tensor {
    return this.getParameter("weight");
  }

  /** [outChannels], or null without bias. */
  get bias(): Tensor | null {
    return this.getOptionalParameter("bias");
  }

  /** y = conv2d(x, weight) + bias. */
  forward(x: Tensor): Tensor {
    checkInputDtype(this, x, this.weight);
    if (x?.shape !== undefined) this.outputShape(x.shape); // names this layer on a wrong shape
    return conv2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      groups: this.groups,
      dilation: this.dilation,
    });
  }

  /** [N, outChannels, outH, outW]. */
  outputShape(inputShape: Shape): number[] {
    checkShape(`${this.constructor.name}.outputShape`, inputShape);
    checkImage("Conv2d", inputShape);
    const c = inputShape[1];
    if (c !== this.inChannels) {
      throw new RangeError(
        `Conv2d(${this.describe()}): input ${
          formatShape(inputShape)
        } has ${c} channels, expected ${this.inChannels}`,
      );
    }
    const p = conv2dParams(
      inputShape,
      this.weight.shape,
      this.stride,
      this.padding,
      this.groups,
      this.dilation,
    );
    return [p.n, p.o, p.outH, p.outW];
  }

  /** N * outChannels * outH * outW * (inChannels / groups) * kH * kW. */
  override multiplyAdds(inputShape: Shape): number {
    const perOutput = (this.inChannels / this.groups) * this.kernelSize[0] * this.kernelSize[1];
    return sizeOf(this.outputShape(inputShape)) * perOutput;
  }

  /** `3->96, 11x11/4, pad 2, groups 2`. */
  override describe(): string {
    const [kh, kw] = this.kernelSize, [sh, sw] = this.stride, [ph, pw] = this.padding;
    const stride = sh === sw ? `${sh}` : `${sh}x${sw}`;
    const parts = [`${this.inChannels}->${this.outChannels}`, `${kh}x${kw}/${stride}`];
    if (ph || pw) parts.push(`pad ${ph === pw ? ph : `${ph}x${pw}`}`);
    if (this.groups !== 1) parts.push(`groups ${this.groups}`);
    const [dh, dw] = this.dilation;
    if (dh !== 1 || dw !== 1) parts.push(`dilation ${dh === dw ? dh : `${dh}x${dw}`}`);
    if (!this.bias) parts.push("no bias");
    return parts.join(", ");
  }
}

/**
 * Fully connected layer y = x · weightᵀ + bias, weight [outFeatures, inFeatures] as in
 * PyTorch (so torchvision weights load unchanged), initialised like `nn.Linear`.
 *
 * @example y = x · weightᵀ + bias
 * ```ts
 * import assert from "node:assert/strict";
 * import { Linear, tensor } from "../mod.ts";
 *
 * const fc = new Linear(3, 2);
 * assert.deepEqual(fc.weight.shape, [2, 3]); // [out, in], as PyTorch
 * const y = fc.forward(tensor([[1, 0, 0], [0, 1, 0]])); // [N=2, in=3] -> [2, 2]
 * assert.deepEqual(y.shape, [2, 2]);
 * // The first row picks the weights' first column, plus the bias.
 * const w = fc.weight.dataSync(), b = fc.bias!.dataSync();
 * assert.ok(Math.abs(y.dataSync()[0] - (w[0] + b[0])) < 1e-6);
 * ```
 */
export class Linear extends Module {
  /** Creates the layer and its parameters. */
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options?: WeightOptions,
  ) {
    super();
    options = checkOptions("Linear", options, LINEAR_KEYS);
    checkInteger("Linear", "inFeatures", inFeatures, 1);
    checkInteger("Linear", "outFeatures", outFeatures, 1);
    const [weight, bias] = weightAndBias([outFeatures, inFeatures], options);
    this.registerParameter("weight", weight);
    this.registerParameter("bias", bias);
  }

  /** [outFeatures, inFeatures]. */
  get weight(): Tensor {
    return this.getParameter("weight");
  }

  /** [outFeatures], or null without bias. */
  get bias(): Tensor | null {
    return this.getOptionalParameter("bias");
  }

  /** x [N, in] -> [N, out]. */
  forward(x: Tensor): Tensor {
    checkInputDtype(this, x, this.weight);
    if (x?.shape !== undefined && (x.rank !== 2 || x.shape[1] !== this.inFeatures)) {
      throw new RangeError(
        `Linear(${this.describe()}): input must be [N, ${this.inFeatures}], got ${
          formatShape(x.shape)
        }${x.rank > 2 ? "; flatten it first (Flatten layer or x.flatten())" : ""}`,
      );
    }
    return linear(x, this.weight, this.bias);
  }

  /** [N, outFeatures]. */
  outputShape(inputShape: Shape): number[] {
    checkShape(`${this.constructor.name}.outputShape`, inputShape);
    if (inputShape.length !== 2 || inputShape[1] !== this.inFeatures) {
      throw new RangeError(
        `Linear(${this.describe()}): input must be [N, ${this.inFeatures}], got ${
          formatShape(inputShape)
        }`,
      );
    }
    return [inputShape[0], this.outFeatures];
  }

  /** N * in * out. */
  override multiplyAdds(inputShape: Shape): number {
    return this.outputShape(inputShape)[0] * this.inFeatures * this.outFeatures;
  }

  /** `9216->4096`. */
  override describe(): string {
    return `${this.inFeatures}->${this.outFeatures}${this.bias ? "" : ", no bias"}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Shape-preserving layers

/** max(x, 0), the paper's nonlinearity (section 3.1). */
export class ReLU extends Module {
  /** relu(x). */
  forward(x: Tensor): Tensor {
    return relu(x);
  }
  /** Same as the input. */
  outputShape(inputShape: Shape): number[] {
    checkShape(`${this.constructor.name}.outputShape`, inputShape);
    return [...inputShape];
  }
}

/** tanh(x): the saturating nonlinearity the paper compares ReLU against (section 3.1, Figure 1). */
export class Tanh extends Module {
  /** tanh(x). */
  forward(x: Tensor): Tensor {
    return tanh(x);
  }
  /** Same as the input. */
  outputShape(inputShape: Shape): number[] {
    checkShape(`${this.constructor.name}.outputShape`, inputShape);
    return [...inputShape];
  }
}

/** Returns its input: a placeholder that keeps a Sequential's child indices (and names) stable. */
export class Identity extends Module {
  /** x itself. */
  forward(x: Tensor): Tensor {
    return x;
  }
  /** Same as the input. */
  outputShape(inputShape: Shape): number[] {
    checkShape(`${this.constructor.name}.outputShape`, inputShape);
    return [...inputShape];
  }
}

/** Options of {@link LocalResponseNorm}. */
export interface LocalResponseNormOptions {
  /** Channels in the window (default 5: paper section 3.3, n = 5). */
  size?: number;
  /** Scale (default 1e-4: paper section 3.3); see `alphaScaling` for how it is applied. */
  alpha?: number;
  /** Exponent (default 0.75: paper section 3.3). */
  beta?: number;
  /** Additive constant (default 2: paper section 3.3; PyTorch's default is 1). */
  k?: number;
  /**
   * How `alpha` weighs each squared term. "averaged" (default): alpha / size per term, what
   * cuda-convnet2 (`scale /= size`), Caffe and PyTorch compute, so the network that won used
   * 2e-5 per term. "per-term": alpha per term, the paper's formula read literally (and
   * TensorFlow's convention). The trap: the paper's text and its code disagree by a factor 5.
   */
  alphaScaling?: "averaged" | "per-term";
}

/**
 * Local response normalization across channels (paper section 3.3).
 *
 * @example AlexNet's norm1
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalResponseNorm, randn } from "../mod.ts";
 *
 * const norm1 = new LocalResponseNorm(); // size 5, alpha 1e-4, beta 0.75, k 2: section 3.3
 * const x = randn([1, 96, 55, 55], { seed: 1 });
 * const y = norm1.forward(x);
 * assert.deepEqual(y.shape, x.shape);
 * // With k = 2 and small activations, each value shrinks by about 2^0.75.
 * assert.ok(Math.abs(y.dataSync()[0] * 2 ** 0.75 - x.dataSync()[0]) < 1e-3);
 * ```
 */
export class LocalResponseNorm extends Module {
  /** Channels in the window. */
  readonly size: number;
  /** Scale, applied according to `alphaScaling`. */
  readonly alpha: number;
  /** Exponent. */
  readonly beta: number;
  /** Additive constant. */
  readonly k: number;
  /** Convention for alpha. */
  readonly alphaScaling: "averaged" | "per-term";

  /** Creates the layer (no parameters). */
  constructor(options?: LocalResponseNormOptions) {
    super();
    options = checkOptions("LocalResponseNorm", options, LRN_LAYER_KEYS);
    this.size = options.size ?? 5;
    this.alpha = options.alpha ?? 1e-4;
    this.beta = options.beta ?? 0.75;
    this.k = options.k ?? 2;
    this.alphaScaling = options.alphaScaling ?? "averaged";
    checkInteger("LocalResponseNorm", "size", this.size, 1);
    checkFinite("LocalResponseNorm", "alpha", this.alpha);
    checkFinite("LocalResponseNorm", "beta", this.beta);
    checkFinite("LocalResponseNorm", "k", this.k);
    if (this.alphaScaling !== "averaged" && this.alphaScaling !== "per-term") {
      throw new RangeError(
        `LocalResponseNorm: alphaScaling must be "averaged" or "per-term", got ${
          JSON.stringify(this.alphaScaling)
        }`,
      );
    }
  }

  /** b = a / (k + alpha' sum a²)^beta over the channel window. */
  forward(x: Tensor): Tensor {
    return localResponseNorm(x, {
      size: this.size,
      alpha: this.alpha,
      beta: this.beta,
      k: this.k,
      alphaScaling: this.alphaScaling,
    });
  }

  /** Same as the input, which must be [N, C, H, W]. */
  outputShape(inputShape: Shape): number[] {
    checkShape(`${this.constructor.name}.outputShape`, inputShape);
    checkImage("LocalResponseNorm", inputShape);
    return [...inputShape];
  }

  /** `size 5, alpha 1e-4 (averaged), beta 0.75, k 2`. */
  override describe(): string {
    return `size ${this.size}, alpha ${this.alpha} (${this.alphaScaling}), beta ${this.beta}, k ${this.k}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Pooling

/** Options of {@link MaxPool2d} and {@link AvgPool2d}. */
export interface Pool2dLayerOptions {
  /** Window size (AlexNet: 3, "overlapping pooling", paper section 3.4). */
  kernelSize: Size2;
  /** Step between windows (default kernelSize, as in PyTorch; AlexNet: 2). */
  stride?: Size2;
  /** Implicit padding on each side (default 0). */
  padding?: Size2;
  /** Round the output size up, adding a last partial window (default false, PyTorch's `ceil_mode`). */
  ceilMode?: boolean;
}

/** Options of {@link AvgPool2d}. */
export interface AvgPool2dLayerOptions extends Pool2dLayerOptions {
  /** Padded cells count in the divisor (default true, PyTorch's `count_include_pad`). */
  countIncludePad?: boolean;
}

/** What max and average pooling share: the window, its stride and padding. */
export abstract class Pool2d extends Module {
  /** Window [height, width]. */
  readonly kernelSize: [number, number];
  /** Stride [vertical, horizontal]. */
  readonly stride: [number, number];
  /** Padding [vertical, horizontal]. */
  readonly padding: [number, number];
  /** Whether the output size rounds up (PyTorch's ceil_mode). */
  readonly ceilMode: boolean;

  /** Creates the layer (no parameters); `keys` are the options the subclass accepts. */
  constructor(options: Pool2dLayerOptions, keys: readonly string[]) {
    super();
    const layer = new.target.name;
    poolOptions(layer, options, keys);
    this.kernelSize = pair(layer, "kernelSize", options.kernelSize, 1);
    this.stride = pair(layer, "stride", options.stride ?? options.kernelSize, 1);
    this.padding = pair(layer, "padding", options.padding ?? 0, 0);
    this.ceilMode = options.ceilMode ?? false;
    if (typeof this.ceilMode !== "boolean") {
      throw new TypeError(`${layer}: ceilMode must be true or false, got ${String(this.ceilMode)}`);
    }
  }

  /** The options of the pooling op. */
  protected get opOptions(): {
    kernelSize: [number, number];
    stride: [number, number];
    padding: [number, number];
    ceilMode: boolean;
  } {
    const { kernelSize, stride, padding, ceilMode } = this;
    return { kernelSize, stride, padding, ceilMode };
  }

  /** [N, C, outH, outW]; the op's own validation names a bad configuration. */
  outputShape(inputShape: Shape): number[] {
    checkShape(`${this.constructor.name}.outputShape`, inputShape);
    const { kernelSize, stride, padding, ceilMode } = this.opOptions;
    const layer = this.constructor.name;
    const p = pool2dParams(layer, inputShape, kernelSize, stride, padding, ceilMode);
    return [p.n, p.c, p.outH, p.outW];
  }

  /** `3x3/2`. */
  override describe(): string {
    const [kh, kw] = this.kernelSize, [sh, sw] = this.stride, [ph, pw] = this.padding;
    const pad = ph || pw ? `, pad ${ph === pw ? ph : `${ph}x${pw}`}` : "";
    const ceil = this.ceilMode ? ", ceil" : "";
    return `${kh}x${kw}/${sh === sw ? sh : `${sh}x${sw}`}${pad}${ceil}`;
  }
}

/**
 * Max pooling; 3x3 windows with stride 2 overlap, as in the paper (section 3.4).
 *
 * @example AlexNet's overlapping pooling
 * ```ts
 * import assert from "node:assert/strict";
 * import { MaxPool2d } from "../mod.ts";
 *
 * const pool = new MaxPool2d({ kernelSize: 3, stride: 2 }); // overlapping windows
 * assert.deepEqual(pool.outputShape([1, 96, 55, 55]), [1, 96, 27, 27]);
 * ```
 */
export class MaxPool2d extends Pool2d {
  /** Creates the layer (no parameters). */
  constructor(options: Pool2dLayerOptions) {
    super(options, MAX_POOL_LAYER_KEYS);
  }

  /** The maximum of each window. */
  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.opOptions);
  }
}

/** Average pooling; padded cells count as zeros unless `countIncludePad: false` (PyTorch's rule). */
export class AvgPool2d extends Pool2d {
  /** Whether padded cells count in the divisor. */
  readonly countIncludePad: boolean;

  /** Creates the layer (no parameters). */
  constructor(options: AvgPool2dLayerOptions) {
    super(options, AVG_POOL_LAYER_KEYS);
    this.countIncludePad = options.countIncludePad ?? true;
    if (typeof this.countIncludePad !== "boolean") {
      throw new TypeError(
        `AvgPool2d: countIncludePad must be true or false, got ${String(this.countIncludePad)}`,
      );
    }
  }

  /** The mean of each window. */
  forward(x: Tensor): Tensor {
    return avgPool2d(x, { ...this.opOptions, countIncludePad: this.countIncludePad });
  }
}

/**
 * Average pooling to a fixed output size (PyTorch's bins); torchvision's AlexNet puts a
 * 6x6 one before the classifier so any input of at least 63x63 fits fc6.
 */
export class AdaptiveAvgPool2d extends Module {
  /** Output [height, width]. */
  readonly outputSize: [number, number];

  /** Creates the layer. */
  constructor(outputSize: Size2) {
    super();
    this.outputSize = pair("AdaptiveAvgPool2d", "outputSize", outputSize, 1);
  }

  /** Averages each bin. */
  forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }

  /** [N, C, outH, outW]. */
  outputShape(inputShape: Shape): number[] {
    checkShape(`${this.constructor.name}.outputShape`, inputShape);
    checkImage("AdaptiveAvgPool2d", inputShape);
    return [inputShape[0], inputShape[1], ...this.outputSize];
  }

  /** `6x6`. */
  override describe(): string {
    return `${this.outputSize[0]}x${this.outputSize[1]}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Regularization and reshaping

/** Options of {@link Dropout}. */
export interface DropoutOptions {
  /**
   * Seed of the layer's own generator of mask seeds (an integer in [0, 2^32)); default a seed
   * drawn from the global generator, so two layers drop different elements.
   */
  seed?: number;
}

/**
 * Inverted dropout (paper section 4.2, p = 0.5 in fc6 and fc7): in training mode each
 * forward draws a fresh u32 mask seed from the layer's own `Rng`, and the op zeroes each
 * element with probability p and scales the survivors by 1 / (1 - p); in eval mode it is the
 * identity (the paper instead multiplied test outputs by 0.5: the same expectation).
 * The generator's state is saved in checkpoints, so a resumed run draws the same masks.
 *
 * @example Training and evaluation
 * ```ts
 * import assert from "node:assert/strict";
 * import { Dropout, ones } from "../mod.ts";
 *
 * const drop = new Dropout(0.5, { seed: 1 });
 * const x = ones([8, 100]);
 * const y = drop.forward(x).dataSync(); // training mode: a fresh mask each call
 * assert.ok(y.some((v) => v === 0) && y.some((v) => v === 2));
 * drop.eval(); // evaluation: the identity
 * assert.equal(drop.forward(x), x);
 * ```
 */
export class Dropout extends Module {
  #rng: Rng;

  /** Creates the layer; p is the probability of dropping an element (default 0.5: paper 4.2). */
  constructor(readonly p = 0.5, options?: DropoutOptions) {
    super();
    options = checkOptions("Dropout", options, DROPOUT_LAYER_KEYS);
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p must be in [0, 1), got ${p}`);
    this.#rng = new Rng(options.seed ?? generator().nextU32());
  }

  /** Drops elements in training mode; returns x unchanged in eval mode. */
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return dropout(x, { p: this.p, seed: this.#rng.nextU32(), training: true });
  }

  /** Same as the input. */
  outputShape(inputShape: Shape): number[] {
    checkShape(`${this.constructor.name}.outputShape`, inputShape);
    return [...inputShape];
  }

  /** The mask-seed generator's state. */
  override rngState(): RngState {
    return this.#rng.state();
  }

  /** Continues the mask-seed sequence from a saved state. */
  override loadRngState(state: RngState): void {
    this.#rng = Rng.fromState(state);
  }

  /** `p 0.5`. */
  override describe(): string {
    return `p ${this.p}`;
  }
}

/** Flattens axes `startAxis..` into one: [N, C, H, W] -> [N, C*H*W] (a view, no copy). */
export class Flatten extends Module {
  /** Creates the layer (default startAxis 1: keep the batch axis; negative counts from the end). */
  constructor(readonly startAxis = 1) {
    super();
    if (!Number.isInteger(startAxis)) {
      throw new RangeError(`Flatten: startAxis must be an integer, got ${startAxis}`);
    }
  }

  /** flatten(x, startAxis). */
  forward(x: Tensor): Tensor {
    return flatten(x, this.startAxis);
  }

  /** [...shape[0:startAxis], prod(shape[startAxis:])]. */
  outputShape(inputShape: Shape): number[] {
    checkShape(`${this.constructor.name}.outputShape`, inputShape);
    const rank = inputShape.length;
    if (this.startAxis < -rank || this.startAxis >= rank) {
      throw new RangeError(
        `Flatten: startAxis ${this.startAxis} is out of range for ${formatShape(inputShape)}`,
      );
    }
    const start = this.startAxis < 0 ? this.startAxis + rank : this.startAxis;
    return [...inputShape.slice(0, start), sizeOf(inputShape.slice(start))];
  }
}
