/**
 * Weight initialisers. Each one overwrites a tensor in place (with `backend.write`, so it
 * works on any device and the tensor stays the same parameter) and returns it. Without a
 * random source they draw from the global generator (`manualSeed` restarts it), so two calls
 * give different values; pass an `Rng` to draw from a stream of yours, or a number (a seed)
 * to get the same values every time.
 *
 * Fans follow PyTorch (`torch.nn.init._calculate_fan_in_and_fan_out`): for a weight
 * `[out, in, ...kernel]`, fanIn = in * prod(kernel) and fanOut = out * prod(kernel). For a
 * grouped convolution `in` is already `inChannels / groups`, so fanIn counts the inputs one
 * output actually sees.
 *
 * Model-level schemes: {@link alexnetInit} (the paper's, section 5) and {@link heInit}
 * (Kaiming normal weights, zero biases: what AlexNet-mini needs to learn at all).
 *
 * @module
 */

import type { Tensor } from "../tensor/tensor.ts";
import type { TypedArray } from "../backend/backend.ts";
import { formatShape } from "../tensor/shape.ts";
import { generator, type Rng } from "../tensor/random.ts";
import type { Module } from "./module.ts";
import { checkOptions, declareOptions } from "../tensor/options.ts";

const INIT_KEYS = {
  kaimingNormal: declareOptions<KaimingOptions>()("init.kaimingNormal", ["gain", "mode", "rng"]),
  kaimingUniform: declareOptions<KaimingOptions>()("init.kaimingUniform", ["gain", "mode", "rng"]),
  xavierUniform: declareOptions<XavierOptions>()("init.xavierUniform", ["gain", "rng"]),
  xavierNormal: declareOptions<XavierOptions>()("init.xavierNormal", ["gain", "rng"]),
};

/** A random source: a shared generator (advanced) or a seed for a fresh one. */
export type RandomSource = Rng | number;

function rngOf(source: RandomSource | undefined): Rng {
  return generator(source);
}

function checkFinite(op: string, values: Record<string, number>): void {
  for (const [name, value] of Object.entries(values)) {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new RangeError(`${op}: ${name} must be a finite number, got ${String(value)}`);
    }
  }
}

/** A host array of `t`'s element type and size. */
function hostArrayFor(t: Tensor): TypedArray {
  if (t.dtype === "float64") return new Float64Array(t.size);
  if (t.dtype === "int32") {
    throw new TypeError("init: cannot fill an int32 tensor with real-valued samples");
  }
  return new Float32Array(t.size);
}

/** Overwrites `t` with `values` on its own device. */
function write(t: Tensor, values: TypedArray): Tensor {
  t.backend.write(t.storage, values);
  return t;
}

/** Fills `t` with `value`. */
export function constant(t: Tensor, value: number): Tensor {
  return write(t, hostArrayFor(t).fill(value));
}

/** Fills `t` with zeros. */
export function zeros(t: Tensor): Tensor {
  return constant(t, 0);
}

/**
 * Samples from N(mean, std²), in pairs by Marsaglia's polar method: no trigonometry (unlike
 * Box-Muller), which matters for AlexNet's 61M weights.
 */
export function normal(t: Tensor, mean = 0, std = 1, rng?: RandomSource): Tensor {
  checkFinite("init.normal", { mean, std });
  const source = rngOf(rng);
  const values = hostArrayFor(t);
  for (let i = 0; i < values.length; i += 2) {
    let x: number, y: number, s: number;
    do {
      x = source.nextU32() / 2147483648 - 1;
      y = source.nextU32() / 2147483648 - 1;
      s = x * x + y * y;
    } while (s >= 1 || s === 0);
    const scale = std * Math.sqrt((-2 * Math.log(s)) / s);
    values[i] = mean + x * scale;
    if (i + 1 < values.length) values[i + 1] = mean + y * scale;
  }
  return write(t, values);
}

/** Samples uniformly from [low, high). */
export function uniform(t: Tensor, low = 0, high = 1, rng?: RandomSource): Tensor {
  checkFinite("init.uniform", { low, high });
  const source = rngOf(rng);
  const values = hostArrayFor(t);
  const width = (high - low) / 4294967296;
  for (let i = 0; i < values.length; i++) values[i] = low + width * source.nextU32();
  return write(t, values);
}

/**
 * Fan-in and fan-out of a weight `[out, in, ...kernel]`, as PyTorch counts them: fanIn =
 * in · kH · kW (the inputs each output sums over) and fanOut = out · kH · kW. For a grouped
 * convolution `in` is already the per-group count, so fanIn is what one output really sees.
 */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) {
    throw new RangeError(
      `fans: a weight needs at least 2 dimensions [out, in, ...], got ${formatShape(shape)}`,
    );
  }
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

/**
 * The gain that keeps activations' variance constant through a nonlinearity
 * (`torch.nn.init.calculate_gain`): 1 for linear, sqrt(2) for ReLU (He et al. 2015, eq. 10:
 * ReLU zeroes half the variance), 5/3 for tanh (PyTorch's empirical value).
 */
export function gain(nonlinearity: "linear" | "relu" | "tanh"): number {
  switch (nonlinearity) {
    case "linear":
      return 1;
    case "relu":
      return Math.SQRT2;
    case "tanh":
      return 5 / 3;
  }
}

/** Options of the Kaiming (He) initialisers. */
export interface KaimingOptions {
  /** Nonlinearity gain (default sqrt(2), ReLU's: He et al. 2015). */
  gain?: number;
  /** Which fan to preserve: forward activations ("fanIn", default, as in PyTorch) or gradients. */
  mode?: "fanIn" | "fanOut";
  /** Random source (default: the global generator). */
  rng?: RandomSource;
}

/**
 * He et al. 2015, "Delving deep into rectifiers": N(0, std²) with std = gain / sqrt(fan), so
 * a ReLU network keeps the variance of its activations from layer to layer.
 */
export function kaimingNormal(t: Tensor, options?: KaimingOptions): Tensor {
  options = checkOptions("init.kaimingNormal", options, INIT_KEYS.kaimingNormal);
  const { fanIn, fanOut } = fans(t.shape);
  const std = (options.gain ?? Math.SQRT2) / Math.sqrt(options.mode === "fanOut" ? fanOut : fanIn);
  return normal(t, 0, std, options.rng);
}

/** He et al. 2015, uniform form: U(-b, b) with b = gain * sqrt(3 / fan) (same variance). */
export function kaimingUniform(t: Tensor, options?: KaimingOptions): Tensor {
  options = checkOptions("init.kaimingUniform", options, INIT_KEYS.kaimingUniform);
  const { fanIn, fanOut } = fans(t.shape);
  const fan = options.mode === "fanOut" ? fanOut : fanIn;
  const bound = (options.gain ?? Math.SQRT2) * Math.sqrt(3 / fan);
  return uniform(t, -bound, bound, options.rng);
}

/** Options of the Xavier (Glorot) initialisers. */
export interface XavierOptions {
  /** Nonlinearity gain (default 1: Glorot and Bengio 2010 derive it for linear units). */
  gain?: number;
  /** Random source (default: the global generator). */
  rng?: RandomSource;
}

/**
 * Glorot and Bengio 2010, "Understanding the difficulty of training deep feedforward neural
 * networks", eq. 16: U(-b, b) with b = gain * sqrt(6 / (fanIn + fanOut)).
 */
export function xavierUniform(t: Tensor, options?: XavierOptions): Tensor {
  options = checkOptions("init.xavierUniform", options, INIT_KEYS.xavierUniform);
  const { fanIn, fanOut } = fans(t.shape);
  const bound = (options.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(t, -bound, bound, options.rng);
}

/** Glorot and Bengio 2010, normal form: N(0, std²) with std = gain * sqrt(2 / (fanIn + fanOut)). */
export function xavierNormal(t: Tensor, options?: XavierOptions): Tensor {
  options = checkOptions("init.xavierNormal", options, INIT_KEYS.xavierNormal);
  const { fanIn, fanOut } = fans(t.shape);
  const std = (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut));
  return normal(t, 0, std, options.rng);
}

/**
 * PyTorch's default for `nn.Conv2d` and `nn.Linear` (`reset_parameters`):
 * kaiming_uniform with a = sqrt(5), which works out to U(-1/sqrt(fanIn), 1/sqrt(fanIn)) for
 * the weight, and the same bound for the bias.
 */
export function pytorchDefault(weight: Tensor, bias: Tensor | null, rng?: RandomSource): void {
  const source = rngOf(rng);
  const bound = 1 / Math.sqrt(fans(weight.shape).fanIn);
  uniform(weight, -bound, bound, source);
  if (bias) uniform(bias, -bound, bound, source);
}

/** The layers of `model` that carry a weight: convolutions (rank-4 weight) and linears (rank 2). */
function weightedLayers(model: Module): {
  convolutions: [string, Module][];
  linears: [string, Module][];
} {
  const convolutions: [string, Module][] = [];
  const linears: [string, Module][] = [];
  for (const [name, module] of model.namedModules()) {
    const weight = module.localParameters().get("weight");
    if (weight?.rank === 4) convolutions.push([name, module]);
    else if (weight?.rank === 2) linears.push([name, module]);
  }
  return { convolutions, linears };
}

/**
 * The paper's initialisation (section 5): every weight from N(0, 0.01²); biases 1 in the
 * second, fourth and fifth convolutional layers and in the fully connected hidden layers
 * ("this initialization accelerates the early stages of learning by providing the ReLUs
 * with positive inputs"), 0 in the others (conv1, conv3, the output layer). Layers are found
 * in forward order, so it fits any AlexNet-shaped model: exactly five convolutions, then
 * linear layers of which all but the last are hidden.
 */
export function alexnetInit(model: Module, rng?: RandomSource): Module {
  const source = rngOf(rng);
  const { convolutions, linears } = weightedLayers(model);
  if (convolutions.length !== 5 || linears.length < 1) {
    throw new Error(
      `alexnetInit: expected 5 convolutions and at least 1 linear layer, found ${convolutions.length} (${
        convolutions.map(([n]) => n).join(", ")
      }) and ${linears.length}`,
    );
  }
  const biasOne = new Set<Module>([
    convolutions[1][1],
    convolutions[3][1],
    convolutions[4][1],
    ...linears.slice(0, -1).map(([, m]) => m),
  ]);
  for (const [, layer] of [...convolutions, ...linears]) {
    const own = layer.localParameters();
    normal(own.get("weight")!, 0, 0.01, source);
    const bias = own.get("bias");
    if (bias) constant(bias, biasOne.has(layer) ? 1 : 0);
  }
  return model;
}

/**
 * Kaiming normal weights (fan in, ReLU gain) and zero biases for every convolution and linear
 * layer (He et al. 2015): what AlexNet-mini needs to leave chance level in its first epoch.
 */
export function heInit(model: Module, rng?: RandomSource): Module {
  const source = rngOf(rng);
  const { convolutions, linears } = weightedLayers(model);
  for (const [, layer] of [...convolutions, ...linears]) {
    const own = layer.localParameters();
    kaimingNormal(own.get("weight")!, { rng: source });
    const bias = own.get("bias");
    if (bias) zeros(bias);
  }
  return model;
}
