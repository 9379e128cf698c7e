/**
 * Making tensors: from host values (`tensor`, `fromArray`), constants (`zeros`, `ones`,
 * `full`, `eye`), ranges (`arange`, `linspace`) and random samples (`rand`, `randn`).
 *
 * Host values are converted, never reinterpreted: any typed array of numbers is accepted
 * (a `Uint8Array` of pixels becomes float32 0..255), and a value that the requested dtype
 * cannot hold exactly (a fraction for int32, an integer above 2^24 for float32) is an error
 * that names its index, rather than a silent rounding.
 *
 * Random factories draw from the global generator of `tensor/random.ts` unless given a
 * `seed` (a fresh generator: the same values every time) or an `rng` (a generator of yours,
 * advanced by the draw).
 *
 * @module
 */

import type { DType, TypedArray } from "../backend/backend.ts";
import { type Device, getBackend, Tensor } from "./tensor.ts";
import { checkShape, formatShape, type Shape, sizeOf } from "./shape.ts";
import { checkSeed, generator, type Rng } from "./random.ts";
import { checkOptions, declareOptions } from "./options.ts";

/** Arbitrarily nested arrays of numbers. */
export type NestedArray = number | NestedArray[];

/**
 * Host arrays accepted by {@link fromArray} and {@link tensor}: the three storage types, and
 * the integer arrays that data arrives in (pixels, labels), which are converted.
 */
export type HostArray =
  | TypedArray
  | Uint8Array
  | Uint8ClampedArray
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | readonly number[];

/** Options accepted by the tensor factories. */
export interface TensorOptions {
  /** Element type (default float32; int32 for an Int32Array, float64 for a Float64Array). */
  dtype?: DType;
  /** Device to create the tensor on (default "cpu"). */
  device?: Device;
  /** Whether gradients flow into this tensor's `.grad` (makes it a leaf parameter). */
  requiresGrad?: boolean;
}

const TENSOR_KEYS = ["dtype", "device", "requiresGrad"] as const;
const KEYS = {
  fromArray: declareOptions<TensorOptions>()("fromArray", TENSOR_KEYS),
  tensor: declareOptions<NonNullable<Parameters<typeof tensor>[1]>>()("tensor", [
    ...TENSOR_KEYS,
    "shape",
  ]),
  full: declareOptions<TensorOptions>()("full", TENSOR_KEYS),
  zeros: declareOptions<TensorOptions>()("zeros", TENSOR_KEYS),
  ones: declareOptions<TensorOptions>()("ones", TENSOR_KEYS),
  arange: declareOptions<TensorOptions>()("arange", TENSOR_KEYS),
  linspace: declareOptions<TensorOptions>()("linspace", TENSOR_KEYS),
  eye: declareOptions<TensorOptions>()("eye", TENSOR_KEYS),
  zerosLike: declareOptions<TensorOptions>()("zerosLike", TENSOR_KEYS),
  onesLike: declareOptions<TensorOptions>()("onesLike", TENSOR_KEYS),
};
const RAND_KEYS = declareOptions<NonNullable<Parameters<typeof rand>[1]>>()("rand", [
  ...TENSOR_KEYS,
  "seed",
  "rng",
  "low",
  "high",
]);
const RANDN_KEYS = declareOptions<NonNullable<Parameters<typeof randn>[1]>>()("randn", [
  ...TENSOR_KEYS,
  "seed",
  "rng",
  "mean",
  "std",
]);

/** The {@link TensorOptions} part of a factory's options (for passing on to fromArray). */
function tensorOptions(options: TensorOptions): TensorOptions {
  const { dtype, device, requiresGrad } = options;
  return { dtype, device, requiresGrad };
}

const ARRAY_FOR: Record<DType, { new (n: number): TypedArray }> = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
};

/** Throws unless `dtype` is one of tessera's element types. */
export function checkDType(op: string, dtype: unknown): DType {
  if (dtype === "float32" || dtype === "float64" || dtype === "int32") return dtype;
  throw new TypeError(
    `${op}: dtype must be "float32", "float64" or "int32", got ${JSON.stringify(dtype)}`,
  );
}

/** The dtype a host array becomes by default: its own for the storage types, else float32. */
function naturalDType(data: HostArray): DType {
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Int32Array) return "int32";
  return "float32";
}

/** Largest integer magnitude every float32 holds exactly: 2^24. */
const FLOAT32_EXACT = 16777216;

/**
 * `data` as a typed array of `dtype`, converted value by value. Throws naming the index and
 * the value when the conversion would not be exact (float64 to float32 rounds, as everywhere).
 */
function convert(op: string, data: HostArray, dtype: DType): TypedArray {
  const Target = ARRAY_FOR[dtype];
  if (data instanceof Target) return data;
  const out = new Target(data.length);
  const fromFloat = data instanceof Float32Array || data instanceof Float64Array ||
    Array.isArray(data) || isFloat16(data);
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (typeof v !== "number") {
      throw new TypeError(`${op}: element ${i} is ${typeof v} ${String(v)}, not a number`);
    }
    if (dtype === "int32" && !(Number.isInteger(v) && v >= -2147483648 && v <= 2147483647)) {
      throw new RangeError(
        `${op}: element ${i} is ${v}, which int32 cannot hold; use dtype "float32" (or round the values first)`,
      );
    }
    if (dtype === "float32" && !fromFloat && Math.abs(v) > FLOAT32_EXACT && Math.fround(v) !== v) {
      throw new RangeError(
        `${op}: element ${i} is ${v}, which float32 cannot hold exactly (integers above 2^24); use dtype "float64" or "int32"`,
      );
    }
    out[i] = v;
  }
  return out;
}

function isFloat16(data: unknown): boolean {
  return Object.prototype.toString.call(data) === "[object Float16Array]";
}

/** Throws unless `data` is an array of numbers (typed, or plain). */
function checkHostArray(op: string, data: unknown): asserts data is HostArray {
  if (Array.isArray(data)) return;
  if (!ArrayBuffer.isView(data) || data instanceof DataView) {
    throw new TypeError(
      `${op}: data must be a typed array or an array of numbers, got ${describe(data)}`,
    );
  }
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    throw new TypeError(
      `${op}: ${data.constructor.name} holds bigints; convert to numbers first (Float64Array.from(data, Number))`,
    );
  }
}

function describe(value: unknown): string {
  if (value === null || typeof value !== "object") return `${typeof value} ${String(value)}`;
  return value.constructor?.name ?? "object";
}

/**
 * Makes a tensor from host values already laid out row-major. Any typed array works: a
 * Uint8Array of pixels becomes float32 with the same values (0..255), never reinterpreted
 * bytes; an Int32Array stays int32 (labels) and a Float64Array float64, unless `dtype` says
 * otherwise.
 *
 * @example Wrap host values with a shape
 * ```ts
 * import assert from "node:assert/strict";
 * import { fromArray } from "../mod.ts";
 *
 * // A batch of two 2x2 single-channel images, laid out [N, C, H, W].
 * const pixels = new Uint8Array([0, 64, 128, 255, 1, 2, 3, 4]);
 * const batch = fromArray(pixels, [2, 1, 2, 2]);
 * assert.deepEqual(batch.shape, [2, 1, 2, 2]);
 * assert.equal(batch.dtype, "float32");
 * assert.equal(batch.dataSync()[3], 255); // the pixel values, not reinterpreted bytes
 * const labels = fromArray(new Int32Array([3, 7]), [2]); // class indices stay int32
 * assert.equal(labels.dtype, "int32");
 * ```
 */
export function fromArray(data: HostArray, shape: Shape, options?: TensorOptions): Tensor {
  options = checkOptions("fromArray", options, KEYS.fromArray);
  checkHostArray("fromArray", data);
  checkShape("fromArray", shape);
  if (data.length !== sizeOf(shape)) {
    throw new RangeError(
      `fromArray: ${data.length} values do not fill shape ${formatShape(shape)} (${sizeOf(shape)})`,
    );
  }
  const dtype = checkDType("fromArray", options.dtype ?? naturalDType(data));
  const values = convert("fromArray", data, dtype);
  const t = new Tensor(getBackend(options.device).fromArray(values), shape);
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

/**
 * Makes a tensor from nested arrays (`tensor([[1, 2], [3, 4]])`), a number, or a typed array
 * (with `options.shape`, default 1-D).
 *
 * @example From nested arrays and numbers
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensor } from "../mod.ts";
 *
 * const m = tensor([[1, 2, 3], [4, 5, 6]]);
 * assert.deepEqual(m.shape, [2, 3]);
 * assert.deepEqual([...m.dataSync()], [1, 2, 3, 4, 5, 6]); // row-major
 * const s = tensor(2.5); // a scalar: shape []
 * assert.deepEqual(s.shape, []);
 * const d = tensor([0.1, 0.2], { dtype: "float64" }); // exact doubles, e.g. for gradcheck
 * assert.equal(d.dataSync()[0], 0.1);
 * ```
 */
export function tensor(
  data: NestedArray | HostArray,
  options?: TensorOptions & { shape?: Shape },
): Tensor {
  options = checkOptions("tensor", options, KEYS.tensor);
  if (ArrayBuffer.isView(data)) {
    checkHostArray("tensor", data);
    return fromArray(data, options.shape ?? [data.length], tensorOptions(options));
  }
  if (typeof data !== "number" && !Array.isArray(data)) {
    throw new TypeError(
      `tensor: data must be a number, nested arrays of numbers or a typed array, got ${
        describe(data)
      }`,
    );
  }
  const shape = inferShape(data);
  if (options.shape) checkShape("tensor", options.shape);
  if (options.shape && sizeOf(options.shape) !== sizeOf(shape)) {
    throw new RangeError(
      `tensor: data of shape ${formatShape(shape)} does not fit shape ${
        formatShape(options.shape)
      }`,
    );
  }
  const dtype = checkDType("tensor", options.dtype ?? "float32");
  const flat = convert("tensor", flattenNested(data), dtype === "int32" ? "int32" : "float64");
  return fromArray(flat, options.shape ?? shape, { ...tensorOptions(options), dtype });
}

/** A tensor filled with `value` (which int32 must hold exactly). */
export function full(shape: Shape, value: number, options?: TensorOptions): Tensor {
  return filled("full", shape, value, checkOptions("full", options, KEYS.full));
}

/** full() for `op` (full, zeros or ones): its errors name the op the caller called. */
function filled(op: string, shape: Shape, value: number, options: TensorOptions): Tensor {
  checkShape(op, shape);
  const dtype = checkDType(op, options.dtype ?? "float32");
  if (typeof value !== "number") {
    throw new TypeError(`${op}: value must be a number, got ${describe(value)}`);
  }
  if (dtype === "int32") convert(op, [value], "int32");
  const t = new Tensor(getBackend(options.device).full(sizeOf(shape), value, dtype), shape);
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

/**
 * A tensor of zeros.
 *
 * @example A tensor of zeros
 * ```ts
 * import assert from "node:assert/strict";
 * import { zeros } from "../mod.ts";
 *
 * const z = zeros([2, 3]);
 * assert.deepEqual(z.shape, [2, 3]);
 * assert.ok(z.dataSync().every((v) => v === 0));
 * assert.equal(zeros([2], { dtype: "int32" }).dtype, "int32");
 * ```
 */
export function zeros(shape: Shape, options?: TensorOptions): Tensor {
  return filled("zeros", shape, 0, checkOptions("zeros", options, KEYS.zeros));
}

/** A tensor of ones. */
export function ones(shape: Shape, options?: TensorOptions): Tensor {
  return filled("ones", shape, 1, checkOptions("ones", options, KEYS.ones));
}

/**
 * Zeros with the shape of `like`, and its dtype and device unless `options` names others
 * (PyTorch's `zeros_like(x, dtype=..., device=..., requires_grad=...)`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensor, zerosLike } from "../mod.ts";
 *
 * const x = tensor([[1.5, 2], [3, 4]]);
 * assert.deepEqual(zerosLike(x).shape, [2, 2]);
 * assert.equal(zerosLike(x, { dtype: "int32" }).dtype, "int32");
 * ```
 */
export function zerosLike(like: Tensor, options?: TensorOptions): Tensor {
  return filledLike("zerosLike", like, 0, checkOptions("zerosLike", options, KEYS.zerosLike));
}

/** Ones with the shape of `like`, and its dtype and device unless `options` names others. */
export function onesLike(like: Tensor, options?: TensorOptions): Tensor {
  return filledLike("onesLike", like, 1, checkOptions("onesLike", options, KEYS.onesLike));
}

function filledLike(op: string, like: Tensor, value: number, options: TensorOptions): Tensor {
  checkLike(op, like);
  return filled(op, like.shape, value, {
    dtype: options.dtype ?? like.dtype,
    device: options.device ?? like.backend,
    requiresGrad: options.requiresGrad,
  });
}

function checkLike(op: string, like: unknown): void {
  if (!(like instanceof Tensor)) {
    throw new TypeError(`${op}: expects a Tensor, got ${describe(like)}`);
  }
}

function checkFinite(op: string, values: Record<string, number>): void {
  for (const [name, value] of Object.entries(values)) {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new RangeError(`${op}: ${name} must be a finite number, got ${String(value)}`);
    }
  }
}

function checkCount(op: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`${op}: ${name} must be a non-negative integer, got ${value}`);
  }
}

/** `[start, start + step, ...)` up to (not including) `stop`; `arange(n)` is 0..n-1. */
export function arange(
  start: number,
  stop?: number,
  step = 1,
  options?: TensorOptions,
): Tensor {
  options = checkOptions("arange", options, KEYS.arange);
  if (stop === undefined) [start, stop] = [0, start];
  checkFinite("arange", { start, stop, step });
  if (step === 0) throw new RangeError("arange: step must not be 0");
  const count = Math.max(0, Math.ceil((stop - start) / step));
  const data = new Float64Array(count);
  for (let i = 0; i < count; i++) data[i] = start + i * step;
  return fromArray(data, [count], { ...tensorOptions(options), dtype: options.dtype ?? "float32" });
}

/**
 * `steps` evenly spaced values from `start` to `end`, both included (`torch.linspace`):
 * `linspace(0, 1, 5)` is [0, 0.25, 0.5, 0.75, 1].
 */
export function linspace(
  start: number,
  end: number,
  steps: number,
  options?: TensorOptions,
): Tensor {
  options = checkOptions("linspace", options, KEYS.linspace);
  checkFinite("linspace", { start, end });
  checkCount("linspace", "steps", steps);
  const data = new Float64Array(steps);
  const step = steps > 1 ? (end - start) / (steps - 1) : 0;
  for (let i = 0; i < steps; i++) data[i] = start + i * step;
  if (steps > 1) data[steps - 1] = end;
  return fromArray(data, [steps], { ...tensorOptions(options), dtype: options.dtype ?? "float32" });
}

/** The identity matrix [n, m] (m defaults to n): ones on the diagonal, zeros elsewhere. */
export function eye(n: number, m: number = n, options?: TensorOptions): Tensor {
  options = checkOptions("eye", options, KEYS.eye);
  checkCount("eye", "n", n);
  checkCount("eye", "m", m);
  const data = new Float64Array(n * m);
  for (let i = 0; i < Math.min(n, m); i++) data[i * m + i] = 1;
  return fromArray(data, [n, m], { ...tensorOptions(options), dtype: options.dtype ?? "float32" });
}

/** Randomness source of the random factories: a seed, a generator, or the global one. */
export interface RandomOptions extends TensorOptions {
  /** Seed of a fresh generator: the same values every time (an integer in [0, 2^32)). */
  seed?: number;
  /** A generator to draw from (advances it); overrides `seed`. */
  rng?: Rng;
}

/** The generator `options` name (see the module comment). */
function randomSource(op: string, options: RandomOptions): Rng {
  if (options.rng) return options.rng;
  if (options.seed !== undefined) checkSeed(op, options.seed);
  return generator(options.seed);
}

function floatArray(op: string, options: TensorOptions, size: number): TypedArray {
  const dtype = checkDType(op, options.dtype ?? "float32");
  if (dtype === "int32") {
    throw new TypeError(`${op}: samples are real numbers; use dtype "float32" or "float64"`);
  }
  return new ARRAY_FOR[dtype](size);
}

/**
 * Uniform samples in [low, high), from the global generator unless `seed` or `rng` is given.
 * `high` itself never appears: a sample that rounds up to it in the tensor's dtype (a float64
 * uniform just below 1 becomes 1 in float32) is replaced by the largest value below `high`.
 */
export function rand(
  shape: Shape,
  options?: RandomOptions & { low?: number; high?: number },
): Tensor {
  options = checkOptions("rand", options, RAND_KEYS);
  checkShape("rand", shape);
  const low = options.low ?? 0, high = options.high ?? 1;
  checkFinite("rand", { low, high });
  if (!(low < high)) throw new RangeError(`rand: low (${low}) must be below high (${high})`);
  const data = floatArray("rand", options, sizeOf(shape));
  const rng = randomSource("rand", options);
  let below = NaN;
  for (let i = 0; i < data.length; i++) {
    data[i] = low + (high - low) * rng.uniform();
    if (data[i] >= high) data[i] = below = Number.isNaN(below) ? largestBelow(data, high) : below;
  }
  return fromArray(data, shape, tensorOptions(options));
}

/** The largest value below `high` that `like`'s element type holds. */
function largestBelow(like: TypedArray, high: number): number {
  const probe = like instanceof Float32Array ? new Float32Array([high]) : new Float64Array([high]);
  const bits = like instanceof Float32Array
    ? new Int32Array(probe.buffer)
    : new BigInt64Array(probe.buffer);
  // One unit in the last place toward -Infinity: the integer view steps by one.
  if (bits instanceof Int32Array) bits[0] += high > 0 ? -1 : high < 0 ? 1 : 0;
  else bits[0] += high > 0 ? -1n : high < 0 ? 1n : 0n;
  if (high === 0) probe[0] = like instanceof Float32Array ? -1.401298464324817e-45 : -5e-324;
  return probe[0];
}

/**
 * Normal samples N(mean, std²), from the global generator unless `seed` or `rng` is given.
 *
 * @example Normal samples, seeded or from the global generator
 * ```ts
 * import assert from "node:assert/strict";
 * import { manualSeed, mean, randn } from "../mod.ts";
 *
 * const w = randn([256, 256], { std: 0.01, seed: 7 });
 * assert.deepEqual(w.shape, [256, 256]);
 * assert.ok(Math.abs(await mean(w).item()) < 1e-3); // about 0, spread 0.01
 * // The same seed gives the same values; without one, each call draws fresh values.
 * assert.deepEqual(randn([4], { seed: 7 }).dataSync(), randn([4], { seed: 7 }).dataSync());
 * manualSeed(1);
 * assert.notDeepEqual(randn([4]).dataSync(), randn([4]).dataSync());
 * ```
 */
export function randn(
  shape: Shape,
  options?: RandomOptions & { mean?: number; std?: number },
): Tensor {
  options = checkOptions("randn", options, RANDN_KEYS);
  checkShape("randn", shape);
  const mean = options.mean ?? 0, std = options.std ?? 1;
  checkFinite("randn", { mean, std });
  const data = floatArray("randn", options, sizeOf(shape));
  const rng = randomSource("randn", options);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal(mean, std);
  // Box-Muller yields values in pairs and caches the second; the global generator never keeps
  // one between calls, so saving its state (four words, no cache) cannot change later draws.
  if (rng === generator() && data.length % 2 === 1) rng.normal();
  return fromArray(data, shape, tensorOptions(options));
}

// ---------------------------------------------------------------------------------------------
// Helpers

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let level: NestedArray = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  const check = (x: NestedArray, depth: number): void => {
    if (depth === shape.length) {
      if (typeof x !== "number") {
        throw new TypeError(`tensor: expected a number at depth ${depth}, got ${describe(x)}`);
      }
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[depth]) {
      throw new RangeError(
        `tensor: ragged nested array: expected length ${shape[depth]} at depth ${depth}`,
      );
    }
    for (const y of x) check(y, depth + 1);
  };
  check(data, 0);
  return shape;
}

function flattenNested(data: NestedArray): number[] {
  const out: number[] = [];
  const walk = (x: NestedArray): void => {
    if (Array.isArray(x)) { for (const y of x) walk(y); }
    else out.push(x);
  };
  walk(data);
  return out;
}
