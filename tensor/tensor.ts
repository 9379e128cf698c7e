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
 * ## Methods
 *
 * The everyday ops are also methods, as in PyTorch: `x.add(y)`, `x.mul(2)`, `x.matmul(w)`,
 * `x.sum(1)`, `x.reshape(2, -1)`, `x.argmax(1)`. Each is one line that calls the function of
 * the same name in `tensor/ops/`, the op's only definition; they follow the class's own
 * members (storage, memory, autograd, reading). Tensors are made by the factories of
 * `tensor/factories.ts`, re-exported here.
 *
 * @module
 */

import type { Backend, DType, Storage, TypedArray } from "../backend/backend.ts";
import {
  type Device,
  getBackend,
  registerBackend,
  unregisterBackend,
} from "../backend/registry.ts";
import "./ref.ts";
import { formatShape, sameShape, type Shape, sizeOf } from "./shape.ts";
import {
  backward as runBackward,
  type BackwardOptions,
  currentScope,
  type GraphNode,
  isGradEnabled,
} from "./autograd.ts";
import type { NestedArray } from "./factories.ts";
import { checkOptions, declareOptions } from "./options.ts";
import * as elementwise from "./ops/elementwise.ts";
import * as reduce from "./ops/reduce.ts";
import * as layout from "./ops/layout.ts";
import * as matmul from "./ops/matmul.ts";
import * as softmax from "./ops/softmax.ts";

export type { DType, Shape, TypedArray };
export {
  arange,
  eye,
  fromArray,
  full,
  type HostArray,
  linspace,
  type NestedArray,
  ones,
  onesLike,
  rand,
  randn,
  type RandomOptions,
  tensor,
  type TensorOptions,
  zeros,
  zerosLike,
} from "./factories.ts";

// ---------------------------------------------------------------------------------------------
// Devices

// The registry lives in backend/registry.ts; the import of ./ref.ts above registers the reference device
// "ref" (the plain kernels of tensor/ops/), so it always exists. The default device, "cpu", is
// registered by the package's entry points (cpu/mod.ts), and "gpu" by `initWebGPU()`. So this
// file, and every op built on it, depends only on the contract in backend/backend.ts.
export { type Device, getBackend, registerBackend, unregisterBackend };

/**
 * Whether a device is one of the two in host memory, "ref" and "cpu" (built on the reference,
 * sharing its storage): reads are synchronous there and float64 exists. Any other device, a
 * GPU or one registered by a program, is read asynchronously.
 */
export function isHostDevice(backend: Backend): boolean {
  return backend.name === "cpu" || backend.name === "ref";
}

const TO_KEYS = declareOptions<Exclude<Parameters<Tensor["to"]>[0], Device>>()("Tensor.to", [
  "device",
  "dtype",
]);

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
    if (typeof storage !== "object" || storage === null || !Array.isArray(shape)) {
      throw new TypeError(
        "Tensor: the constructor takes a backend's storage and a shape; make tensors with tensor(), zeros(), fromArray() and the other factories",
      );
    }
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

  /**
   * Whether gradients are tracked. Only a leaf's flag can change, as in PyTorch: a tensor
   * computed by a recorded op always requires grad (setting true is a no-op; setting false
   * throws, since it would silently cut the gradient: use `x.detach()`).
   */
  get requiresGrad(): boolean {
    return this.#requiresGrad;
  }

  set requiresGrad(value: boolean) {
    if (typeof value !== "boolean") {
      throw new TypeError(`requiresGrad: must be true or false, got ${String(value)}`);
    }
    if (value && this.dtype === "int32") {
      throw new TypeError("requiresGrad: int32 tensors cannot require gradients");
    }
    if (this.node) {
      if (value) return;
      throw new Error(
        `requiresGrad: you can only change requires_grad flags of leaf variables; this tensor was computed by ${this.node.op}. For a copy outside the graph use x.detach()`,
      );
    }
    this.#requiresGrad = value;
  }

  /**
   * Takes over `source`'s memory (same shape; the dtype may differ), releasing this tensor's
   * own: `Module.to` moves parameters in place this way, so the optimizers that hold them keep
   * updating them (PyTorch's semantics). `source` is left released. Views made earlier keep
   * the old memory.
   */
  adoptStorage(source: Tensor): void {
    if (!(source instanceof Tensor)) {
      throw new TypeError(`adoptStorage: expects a Tensor, got ${String(source)}`);
    }
    if (!sameShape(source.shape, this.shape) || source.#shared === null) {
      throw new RangeError(
        `adoptStorage: needs a live tensor of shape ${formatShape(this.shape)}, got ${
          formatShape(source.shape)
        }`,
      );
    }
    if (source === this) return;
    const old = this.#shared;
    if (old) finalizer.unregister(this);
    this.#shared = source.#shared;
    finalizer.unregister(source);
    source.#shared = null;
    source.#releasedBy = "moved into another tensor";
    finalizer.register(this, this.#shared, this);
    (this as { dtype: DType }).dtype = this.#shared.storage.dtype;
    old?.release();
  }

  /** Whether another live tensor (a view, a detached copy) shares this tensor's memory. */
  get sharesMemory(): boolean {
    return (this.#shared?.refs ?? 0) > 1;
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

  /**
   * A tensor sharing this memory with another shape, outside any graph (no copy). Ops use it
   * to build their outputs; users want {@link reshape} or {@link view}, which autograd sees.
   */
  alias(shape: Shape): Tensor {
    this.storage; // throws if released
    return new Tensor(this.#shared!.storage, shape, this.#shared);
  }

  /** A tensor sharing this memory that is not part of any graph. */
  detach(): Tensor {
    return this.alias(this.shape);
  }

  /** Reads the values back to the host (row-major). */
  data(): Promise<TypedArray> {
    return this.backend.read(this.storage);
  }

  /**
   * The CPU storage's own array (no copy: writes change the tensor); CPU tensors only. On the
   * cpu device a tensor of 64 KiB or more is a view of the kernels' shared WebAssembly memory
   * (a SharedArrayBuffer); the few APIs that refuse shared memory (`Blob`, `crypto.subtle`)
   * need a copy: `t.dataSync().slice()` or `await t.data()`.
   */
  dataSync(): TypedArray {
    const storage = this.storage;
    if (!storage.data) {
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

  /**
   * This tensor on another device and/or with another dtype: `await x.to("gpu")`,
   * `await x.to({ dtype: "float64" })`. Returns this tensor when nothing changes. The dtype
   * change is {@link cast} (differentiable); a device move makes a copy, a leaf that requires
   * grad if this tensor was one. A tensor on the CPU moves at once (the promise is already
   * settled when `to` returns); reading back from the GPU is asynchronous.
   */
  async to(target: Device | { device?: Device; dtype?: DType }): Promise<Tensor> {
    if (target === undefined || target === null) {
      throw new TypeError(
        `to: expects a device ("cpu", "gpu") or { device?, dtype? }, got ${String(target)}`,
      );
    }
    const options = typeof target === "object" && !("fromArray" in target)
      ? checkOptions("Tensor.to", target, TO_KEYS)
      : { device: target };
    const backend = options.device === undefined ? this.backend : getBackend(options.device);
    const dtype = options.dtype ?? this.dtype;
    if (dtype === "float64" && !isHostDevice(backend)) {
      throw new TypeError(
        `to: the ${backend.name} backend has no float64; use { dtype: "float32" } there`,
      );
    }
    if (backend === this.backend) return this.cast(dtype); // differentiable
    // A copy on another device: cast where the dtype exists (before leaving the CPU, after
    // arriving on it); the result is a leaf, requiring grad if this tensor is a leaf that does.
    const x = isHostDevice(backend) ? this : this.cast(dtype);
    const storage = x.storage;
    const data = storage.data ?? await x.data();
    const moved = new Tensor(backend.fromArray(data), x.shape);
    if (x !== this) x.dispose();
    const out = moved.cast(dtype);
    if (out !== moved) moved.dispose();
    out.requiresGrad = this.requiresGrad && this.node === null;
    return out;
  }

  /**
   * Computes gradients of this scalar (or with an upstream gradient `grad` of its shape) into
   * the leaves' `.grad`, then releases the graph; `{ retainGraph: true }` keeps it for a
   * second backward. `loss.backward({ retainGraph: true })` or `y.backward(g, options)`.
   */
  backward(grad?: Tensor | BackwardOptions, options?: BackwardOptions): void {
    const isOptions = grad !== undefined && grad !== null && !(grad instanceof Tensor) &&
      Object.getPrototypeOf(grad) === Object.prototype;
    if (isOptions) runBackward(this, undefined, grad as BackwardOptions);
    else runBackward(this, grad as Tensor | undefined, options);
  }

  /** A readable rendering: shape, dtype, device, and the values of a CPU tensor. */
  toString(): string {
    if (this.isDisposed) return `Tensor(${formatShape(this.shape)}, ${this.#releasedBy})`;
    const grad = this.node
      ? `, grad from ${this.node.op}`
      : this.requiresGrad
      ? ", requiresGrad"
      : "";
    const head = `Tensor(${formatShape(this.shape)}, ${this.dtype}, ${this.device}${grad})`;
    const data = this.storage.data;
    if (!data) {
      return `${head}: values on the ${this.device}; read them with await x.data() or await x.toArray()`;
    }
    return `${head}\n${formatValues(data, this.shape)}`;
  }

  /** What `console.log(x)` prints in Deno: {@link toString}. */
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }

  /** What `console.log(x)` prints in Node (util.inspect): {@link toString}. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }

  // ---- the everyday ops as methods: `x.op(...)` is `op(x, ...)` of tensor/ops/ ----

  /** this + other (broadcasting), see `add`. */
  add(other: Tensor | number): Tensor {
    return elementwise.add(this, other);
  }
  /** this - other (broadcasting), see `sub`. */
  sub(other: Tensor | number): Tensor {
    return elementwise.sub(this, other);
  }
  /** this * other (broadcasting), see `mul`. */
  mul(other: Tensor | number): Tensor {
    return elementwise.mul(this, other);
  }
  /** this / other (broadcasting), see `div`. */
  div(other: Tensor | number): Tensor {
    return elementwise.div(this, other);
  }
  /** this ** exponent, see `pow`. */
  pow(exponent: number): Tensor {
    return elementwise.pow(this, exponent);
  }
  /** -this. */
  neg(): Tensor {
    return elementwise.neg(this);
  }
  /** e^this. */
  exp(): Tensor {
    return elementwise.exp(this);
  }
  /** Natural logarithm. */
  log(): Tensor {
    return elementwise.log(this);
  }
  /** Square root. */
  sqrt(): Tensor {
    return elementwise.sqrt(this);
  }
  /** |this|. */
  abs(): Tensor {
    return elementwise.abs(this);
  }
  /** max(this, 0). */
  relu(): Tensor {
    return elementwise.relu(this);
  }
  /** Hyperbolic tangent. */
  tanh(): Tensor {
    return elementwise.tanh(this);
  }
  /** Logistic sigmoid. */
  sigmoid(): Tensor {
    return elementwise.sigmoid(this);
  }
  /** 1 where this == other, else 0 (float32 for int32 inputs), see `eq`. */
  eq(other: Tensor | number): Tensor {
    return elementwise.eq(this, other);
  }
  /** 1 where this != other, else 0. */
  ne(other: Tensor | number): Tensor {
    return elementwise.ne(this, other);
  }
  /** 1 where this > other, else 0. */
  gt(other: Tensor | number): Tensor {
    return elementwise.gt(this, other);
  }
  /** 1 where this >= other, else 0. */
  ge(other: Tensor | number): Tensor {
    return elementwise.ge(this, other);
  }
  /** 1 where this < other, else 0. */
  lt(other: Tensor | number): Tensor {
    return elementwise.lt(this, other);
  }
  /** 1 where this <= other, else 0. */
  le(other: Tensor | number): Tensor {
    return elementwise.le(this, other);
  }
  /** This tensor converted to `dtype` (differentiable between float types), see `cast`. */
  cast(dtype: DType): Tensor {
    return elementwise.cast(this, dtype);
  }
  /** Matrix product with broadcasting batch axes, see `matmul`. */
  matmul(other: Tensor): Tensor {
    return matmul.matmul(this, other);
  }
  /** Sum over `axes` (all by default), see `sum`. */
  sum(axes?: number | readonly number[], keepDims = false): Tensor {
    return reduce.sum(this, axes, keepDims);
  }
  /** Mean over `axes` (all by default), see `mean`. */
  mean(axes?: number | readonly number[], keepDims = false): Tensor {
    return reduce.mean(this, axes, keepDims);
  }
  /** Maximum over `axes` (all by default), see `max`. */
  max(axes?: number | readonly number[], keepDims = false): Tensor {
    return reduce.max(this, axes, keepDims);
  }
  /** Index of the largest value along `axis` (default the last), see `argmax`. */
  argmax(axis = -1, keepDims = false): Tensor {
    return reduce.argmax(this, axis, keepDims);
  }
  /** Softmax along `axis` (default the last), see `softmax`. */
  softmax(axis = -1): Tensor {
    return softmax.softmax(this, axis);
  }
  /** log(softmax) along `axis` (default the last), see `logSoftmax`. */
  logSoftmax(axis = -1): Tensor {
    return softmax.logSoftmax(this, axis);
  }
  /** Same data, new shape: `x.reshape([2, -1])` or `x.reshape(2, -1)`, see `reshape`. */
  reshape(...shape: (number | Shape)[]): Tensor {
    return layout.reshape(this, shapeArgument("reshape", shape));
  }
  /** Same as {@link reshape} (PyTorch's name for a reshape without a copy; tessera never copies). */
  view(...shape: (number | Shape)[]): Tensor {
    return layout.reshape(this, shapeArgument("view", shape));
  }
  /** Axes `startAxis..` flattened into one (default 1: keep the batch axis), see `flatten`. */
  flatten(startAxis = 1): Tensor {
    return layout.flatten(this, startAxis);
  }
  /** Two axes swapped (default the last two), see `transpose`. */
  transpose(axis0 = -2, axis1 = -1): Tensor {
    return layout.transpose(this, axis0, axis1);
  }
  /** Axes reordered: `x.permute([2, 0, 1])` or `x.permute(2, 0, 1)`, see `permute`. */
  permute(...perm: (number | Shape)[]): Tensor {
    return layout.permute(this, shapeArgument("permute", perm));
  }

  /** Makes this tensor the output of a recorded op (used by ops; see tensor/autograd.ts). */
  attachGraph(node: GraphNode): void {
    this.#requiresGrad = true;
    this.node = node;
  }

  /** Releases the memory unless kept (used by autograd and scopes). */
  release(reason: string): void {
    if (!this.#kept) this.dispose(reason);
  }
}

/** Wraps a kernel's output storage in a tensor (used by ops). */
export function wrap(storage: Storage, shape: Shape): Tensor {
  return new Tensor(storage, shape);
}

/** True when autograd will record the op applied to these inputs. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return isGradEnabled() && inputs.some((t) => t?.requiresGrad);
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** A shape given as one array or as separate numbers (`reshape([2, 3])`, `reshape(2, 3)`). */
function shapeArgument(op: string, args: (number | Shape)[]): Shape {
  if (args.length === 1 && Array.isArray(args[0])) return args[0];
  if (args.every((a) => typeof a === "number")) return args as number[];
  throw new TypeError(
    `${op}: expected one array of numbers or separate numbers, got ${JSON.stringify(args)}`,
  );
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
