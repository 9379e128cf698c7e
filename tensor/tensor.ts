/**
 * The Tensor: an n-dimensional array of float32 (float64 on the CPU, int32 for labels) that
 * lives on a device and remembers how it was computed, so that `backward()` can compute
 * gradients.
 *
 * ## Memory: who frees what
 *
 * Device memory is released deterministically, without `tidy()`:
 * 1. Tensors you create (`tensor()`, `zeros()`, parameters, a batch) are yours: release them
 *    with `dispose()` or a `using` declaration. If you forget, the garbage collector frees them
 *    eventually; on a GPU that may be too late, so do not rely on it in a loop.
 * 2. `loss.backward()` releases the graph that produced `loss`: every intermediate tensor
 *    computed from a parameter (a tensor that requires grad) on the way to `loss`, and
 *    everything the ops saved for backward. Only `loss` itself and the leaves survive. To keep
 *    an intermediate (logits for an accuracy count, say) call `.keep()` on it before backward.
 * 3. `noGrad(fn)` and `scope(fn)` release every tensor created inside `fn` except the ones it
 *    returns (and those still needed by a graph that a returned tensor belongs to).
 *
 * A training step written as "forward, backward, optimizer step" therefore keeps memory flat,
 * and evaluation inside `noGrad` does too. Using a released tensor is an error that says
 * what released it.
 *
 * @module
 */

import type { Backend, DType, Storage, TypedArray } from "../backend/backend.ts";
import { cpuBackend, CpuStorage } from "../backend/cpu.ts";
import { checkShape, formatShape, type Shape, sizeOf } from "./shape.ts";
import { Rng } from "./random.ts";
import {
  backward as runBackward,
  currentScope,
  type GraphNode,
  isGradEnabled,
} from "../autograd/graph.ts";

export type { DType, Shape, TypedArray };

// ---------------------------------------------------------------------------------------------
// Devices

// Filled on first use rather than at module load: backend/cpu.ts imports the ops, which import
// this module, so `cpuBackend` may not be initialised yet while this file is evaluated.
const backends = new Map<string, Backend>();

function registry(): Map<string, Backend> {
  if (!backends.has("cpu")) backends.set("cpu", cpuBackend);
  return backends;
}

/** A device: its name (`"cpu"`, `"gpu"`) or the backend object itself. */
export type Device = string | Backend;

/** Makes a backend available under its name, e.g. after the WebGPU device is acquired. */
export function registerBackend(backend: Backend): void {
  registry().set(backend.name, backend);
}

/** Removes a backend registered with {@link registerBackend}. */
export function unregisterBackend(name: string): void {
  if (name === "cpu") throw new Error("unregisterBackend: the cpu backend cannot be removed");
  registry().delete(name);
}

/** Looks a device up by name; the GPU must be initialised first (`await initWebGPU()`). */
export function getBackend(device: Device = "cpu"): Backend {
  if (typeof device !== "string") return device;
  const backend = registry().get(device);
  if (!backend) {
    const hint = device === "gpu" ? " (call `await initWebGPU()` from gpu/mod.ts first)" : "";
    throw new Error(
      `unknown device "${device}"${hint}; available: ${[...registry().keys()].join(", ")}`,
    );
  }
  return backend;
}

// ---------------------------------------------------------------------------------------------
// Shared, reference-counted storage

/** Storage shared by a tensor and its views (reshape, detach); freed when the last one goes. */
class SharedStorage {
  refs = 1;
  constructor(readonly storage: Storage) {}
  release(): void {
    if (--this.refs === 0) this.storage.backend.free(this.storage);
  }
}

// A tensor that is garbage-collected without dispose() still returns its memory.
const finalizer = new FinalizationRegistry<SharedStorage>((shared) => shared.release());

/** Options accepted by the tensor factories. */
export interface TensorOptions {
  /** Element type (default float32, or the type of the typed array given). */
  dtype?: DType;
  /** Device to create the tensor on (default "cpu"). */
  device?: Device;
  /** Whether gradients flow into this tensor's `.grad` (makes it a leaf parameter). */
  requiresGrad?: boolean;
}

/**
 * An n-dimensional array on a device, with reverse-mode autograd.
 *
 * @example Shape, dtype, device, values and a gradient
 * ```ts
 * import assert from "node:assert/strict";
 * import { mul, sum, tensor } from "../mod.ts";
 *
 * const x = tensor([[1, 2], [3, 4]], { requiresGrad: true });
 * assert.deepEqual(x.shape, [2, 2]);
 * assert.equal(x.dtype, "float32");
 * assert.equal(x.device, "cpu");
 * const y = sum(mul(x, x)); // y = Σ x², a scalar tensor
 * assert.equal(await y.item(), 30); // item() reads one value back, from any device
 * y.backward(); // dy/dx = 2x, accumulated into x.grad
 * assert.deepEqual([...x.grad!.dataSync()], [2, 4, 6, 8]);
 * ```
 */
export class Tensor {
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Accumulated gradient of a leaf that requires grad (null until a backward reaches it). */
  grad: Tensor | null = null;
  /** How this tensor was computed; null for leaves and once backward has released the graph. */
  node: GraphNode | null = null;
  #shared: SharedStorage | null;
  #requiresGrad = false;
  #kept = false;
  #releasedBy: string | null = null;

  /** Wraps storage in a tensor (the tensor takes ownership). Prefer the factories. */
  constructor(storage: Storage, shape: Shape, shared?: unknown) {
    if (storage.length !== sizeOf(shape)) {
      throw new RangeError(
        `Tensor: storage of ${storage.length} elements does not match shape ${formatShape(shape)}`,
      );
    }
    this.shape = Object.freeze([...shape]);
    this.dtype = storage.dtype;
    if (shared instanceof SharedStorage) {
      shared.refs++;
      this.#shared = shared;
    } else {
      this.#shared = new SharedStorage(storage);
    }
    finalizer.register(this, this.#shared, this);
    currentScope()?.add(this);
  }

  /** The device memory. Throws if the tensor was released. */
  get storage(): Storage {
    if (!this.#shared) {
      throw new Error(
        `tensor ${formatShape(this.shape)} was ${this.#releasedBy}; it cannot be used any more` +
          (this.#releasedBy?.startsWith("released by backward")
            ? " (call .keep() on it before backward() to keep it)"
            : ""),
      );
    }
    return this.#shared.storage;
  }

  /** The backend that holds the data. */
  get backend(): Backend {
    return this.storage.backend;
  }

  /** Device name ("cpu", "gpu"). */
  get device(): string {
    return this.backend.name;
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** Whether gradients are tracked. Setting it on a computed tensor turns it into a leaf. */
  get requiresGrad(): boolean {
    return this.#requiresGrad;
  }

  set requiresGrad(value: boolean) {
    if (value && this.dtype === "int32") {
      throw new TypeError("requiresGrad: int32 tensors cannot require gradients");
    }
    if (value && this.node) this.node = null; // a parameter is a leaf of every graph
    this.#requiresGrad = value;
  }

  /** True once dispose(), backward() or a scope released the memory. */
  get isDisposed(): boolean {
    return this.#shared === null;
  }

  /** Protects this tensor from backward() and scope cleanup; returns it. */
  keep(): this {
    this.#kept = true;
    return this;
  }

  /** Whether {@link keep} was called. */
  get isKept(): boolean {
    return this.#kept;
  }

  /** Releases the memory now (idempotent). `reason` appears in later error messages. */
  dispose(reason = "disposed"): void {
    if (!this.#shared) return;
    finalizer.unregister(this);
    this.#shared.release();
    this.#shared = null;
    this.#releasedBy = reason;
    this.node = null;
  }

  /** `using x = tensor(...)` disposes at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** A view of the same memory with another shape (no copy). */
  view(shape: Shape): Tensor {
    this.storage; // throws if released
    return new Tensor(this.#shared!.storage, shape, this.#shared);
  }

  /** A tensor sharing this memory that is not part of any graph. */
  detach(): Tensor {
    return this.view(this.shape);
  }

  /** Reads the values back to the host (row-major). */
  data(): Promise<TypedArray> {
    return this.backend.read(this.storage);
  }

  /** The CPU storage's own array (no copy: writes change the tensor); CPU tensors only. */
  dataSync(): TypedArray {
    const storage = this.storage;
    if (!(storage instanceof CpuStorage)) {
      throw new Error(`dataSync: tensor is on ${storage.backend.name}; use await t.data()`);
    }
    return storage.data;
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new RangeError(`item: tensor has shape ${formatShape(this.shape)}, not one element`);
    }
    return (await this.data())[0];
  }

  /** Values as nested arrays. */
  async toArray(): Promise<NestedArray> {
    return nest(await this.data(), this.shape);
  }

  /** A copy on another device (or this tensor if it is already there). */
  async to(device: Device): Promise<Tensor> {
    const target = getBackend(device);
    if (target === this.backend) return this;
    if (this.dtype === "float64" && target.name !== "cpu") {
      throw new TypeError(`to: ${target.name} has no float64; cast to float32 first`);
    }
    const out = new Tensor(target.fromArray(await this.data()), this.shape);
    out.requiresGrad = this.requiresGrad && this.node === null;
    return out;
  }

  /** Computes gradients of this scalar (or with an upstream gradient) into the leaves' `.grad`. */
  backward(grad?: Tensor): void {
    runBackward(this, grad);
  }

  /** A readable rendering; values are shown for CPU tensors. */
  toString(): string {
    if (this.isDisposed) return `Tensor(${formatShape(this.shape)}, ${this.#releasedBy})`;
    const head = `Tensor(${formatShape(this.shape)}, ${this.dtype}, ${this.device}`;
    const tail = this.requiresGrad ? ", requiresGrad)" : ")";
    if (!(this.storage instanceof CpuStorage)) return head + tail;
    return `${head}${tail}\n${formatValues(this.storage.data, this.shape)}`;
  }

  /** Makes this tensor the output of a recorded op (used by ops; see autograd/graph.ts). */
  attachGraph(node: GraphNode): void {
    this.#requiresGrad = true;
    this.node = node;
  }

  /** Releases the memory unless kept (used by autograd and scopes). */
  release(reason: string): void {
    if (!this.#kept) this.dispose(reason);
  }
}

// ---------------------------------------------------------------------------------------------
// Factories

/** Arbitrarily nested arrays of numbers. */
export type NestedArray = number | NestedArray[];

const ARRAY_FOR: Record<
  DType,
  { new (n: number): TypedArray; from(a: ArrayLike<number>): TypedArray }
> = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
};

function dtypeOf(data: TypedArray): DType {
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Int32Array) return "int32";
  return "float32";
}

/**
 * Makes a tensor from host values already laid out row-major.
 *
 * @example Wrap host values with a shape
 * ```ts
 * import assert from "node:assert/strict";
 * import { fromArray } from "../mod.ts";
 *
 * // A batch of two 2x2 single-channel images, laid out [N, C, H, W].
 * const pixels = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]);
 * const batch = fromArray(pixels, [2, 1, 2, 2]);
 * assert.deepEqual(batch.shape, [2, 1, 2, 2]);
 * assert.equal(batch.dtype, "float32");
 * const labels = fromArray(new Int32Array([3, 7]), [2]); // class indices stay int32
 * assert.equal(labels.dtype, "int32");
 * ```
 */
export function fromArray(data: TypedArray, shape: Shape, options: TensorOptions = {}): Tensor {
  checkShape("tensor", shape);
  if (data.length !== sizeOf(shape)) {
    throw new RangeError(
      `tensor: ${data.length} values do not fill shape ${formatShape(shape)} (${sizeOf(shape)})`,
    );
  }
  const dtype = options.dtype ?? dtypeOf(data);
  const values = dtypeOf(data) === dtype ? data : ARRAY_FOR[dtype].from(data);
  const t = new Tensor(getBackend(options.device).fromArray(values), shape);
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

/**
 * Makes a tensor from nested arrays (`tensor([[1, 2], [3, 4]])`), a number, or a typed array
 * with `options.shape`.
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
  data: NestedArray | TypedArray,
  options: TensorOptions & { shape?: Shape } = {},
): Tensor {
  if (ArrayBuffer.isView(data)) {
    return fromArray(data as TypedArray, options.shape ?? [(data as TypedArray).length], options);
  }
  const shape = inferShape(data);
  if (options.shape && sizeOf(options.shape) !== sizeOf(shape)) {
    throw new RangeError(
      `tensor: data of shape ${formatShape(shape)} does not fit shape ${
        formatShape(options.shape)
      }`,
    );
  }
  const flat = ARRAY_FOR[options.dtype ?? "float32"].from(flattenNested(data));
  return fromArray(flat, options.shape ?? shape, options);
}

/** A tensor filled with `value`. */
export function full(shape: Shape, value: number, options: TensorOptions = {}): Tensor {
  checkShape("full", shape);
  const t = new Tensor(
    getBackend(options.device).full(sizeOf(shape), value, options.dtype ?? "float32"),
    shape,
  );
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
export function zeros(shape: Shape, options: TensorOptions = {}): Tensor {
  return full(shape, 0, options);
}

/** A tensor of ones. */
export function ones(shape: Shape, options: TensorOptions = {}): Tensor {
  return full(shape, 1, options);
}

/** Zeros with the shape, dtype and device of `like`. */
export function zerosLike(like: Tensor): Tensor {
  return full(like.shape, 0, { dtype: like.dtype, device: like.backend });
}

/** Ones with the shape, dtype and device of `like`. */
export function onesLike(like: Tensor): Tensor {
  return full(like.shape, 1, { dtype: like.dtype, device: like.backend });
}

/** `[start, start + step, ...)` up to (not including) `stop`. */
export function arange(
  start: number,
  stop?: number,
  step = 1,
  options: TensorOptions = {},
): Tensor {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new RangeError("arange: step must not be 0");
  const count = Math.max(0, Math.ceil((stop - start) / step));
  const data = new (ARRAY_FOR[options.dtype ?? "float32"])(count);
  for (let i = 0; i < count; i++) data[i] = start + i * step;
  return fromArray(data, [count], options);
}

/** Randomness source of the random factories: a seed or a shared {@link Rng}. */
export interface RandomOptions extends TensorOptions {
  /** Seed for a fresh generator (default 0). */
  seed?: number;
  /** A generator to draw from (advances it); overrides `seed`. */
  rng?: Rng;
}

/** Uniform samples in [low, high). */
export function rand(
  shape: Shape,
  options: RandomOptions & { low?: number; high?: number } = {},
): Tensor {
  checkShape("rand", shape);
  const rng = options.rng ?? new Rng(options.seed ?? 0);
  const low = options.low ?? 0, high = options.high ?? 1;
  const data = new (ARRAY_FOR[options.dtype ?? "float32"])(sizeOf(shape));
  for (let i = 0; i < data.length; i++) data[i] = low + (high - low) * rng.uniform();
  return fromArray(data, shape, options);
}

/**
 * Normal samples N(mean, std^2).
 *
 * @example Normal samples, seeded
 * ```ts
 * import assert from "node:assert/strict";
 * import { mean, randn } from "../mod.ts";
 *
 * const w = randn([256, 256], { std: 0.01, seed: 7 });
 * assert.deepEqual(w.shape, [256, 256]);
 * assert.ok(Math.abs(await mean(w).item()) < 1e-3); // about 0, spread 0.01
 * // The same seed gives the same values.
 * assert.deepEqual(randn([4], { seed: 7 }).dataSync(), randn([4], { seed: 7 }).dataSync());
 * ```
 */
export function randn(
  shape: Shape,
  options: RandomOptions & { mean?: number; std?: number } = {},
): Tensor {
  checkShape("randn", shape);
  const rng = options.rng ?? new Rng(options.seed ?? 0);
  const data = new (ARRAY_FOR[options.dtype ?? "float32"])(sizeOf(shape));
  for (let i = 0; i < data.length; i++) data[i] = rng.normal(options.mean ?? 0, options.std ?? 1);
  return fromArray(data, shape, options);
}

/** Runs `fn` with the graph recorded as usual; exported for ops: wraps kernel output in a tensor. */
export function wrap(storage: Storage, shape: Shape): Tensor {
  return new Tensor(storage, shape);
}

/** True when autograd will record the op applied to these inputs. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return isGradEnabled() && inputs.some((t) => t?.requiresGrad);
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
        throw new TypeError(`tensor: expected a number at depth ${depth}, got ${typeof x}`);
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

function nest(data: TypedArray, shape: Shape): NestedArray {
  if (shape.length === 0) return data[0];
  const build = (offset: number, axis: number): NestedArray[] => {
    const size = shape[axis];
    const inner = sizeOf(shape.slice(axis + 1));
    const out: NestedArray[] = [];
    for (let i = 0; i < size; i++) {
      out.push(axis === shape.length - 1 ? data[offset + i] : build(offset + i * inner, axis + 1));
    }
    return out;
  };
  return build(0, 0);
}

function formatValues(data: TypedArray, shape: Shape): string {
  const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(4));
  if (shape.length === 0) return fmt(data[0]);
  const edge = 3;
  const render = (offset: number, axis: number, indent: string): string => {
    const size = shape[axis];
    const inner = sizeOf(shape.slice(axis + 1));
    const parts: string[] = [];
    for (let i = 0; i < size; i++) {
      if (size > 2 * edge && i === edge) {
        parts.push("...");
        i = size - edge - 1;
        continue;
      }
      parts.push(
        axis === shape.length - 1
          ? fmt(data[offset + i])
          : render(offset + i * inner, axis + 1, indent + " "),
      );
    }
    const sep = axis === shape.length - 1 ? ", " : ",\n" + indent + " ";
    return `[${parts.join(sep)}]`;
  };
  return render(0, 0, "");
}
