/**
 * The reference device, "ref": every kernel of the {@link Backend} contract in plain
 * TypeScript. Each kernel lives next to its op in `tensor/ops/` (the math, the reference loops
 * and the autograd definition in one file); this file only allocates outputs and dispatches.
 * The kernels are the simplest correct code (matmul's gemm and conv2d sum in float64), the
 * oracle every other device is proven against.
 *
 * The fast CPU backend (cpu/backend.ts, device "cpu", the default) extends this class: it
 * overrides the kernels it accelerates with WebAssembly and the allocation with the kernels'
 * heap and an array pool, and runs everything else here. Both keep their arrays in {@link CpuStorage}.
 *
 * Float32 and float64 both work everywhere; float64 exists for finite-difference gradient
 * checks. This module registers the device when it is loaded (tensor/tensor.ts imports it),
 * so "ref" always exists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matmul, tensor } from "../mod.ts";
 *
 * const a = tensor([[1, 2], [3, 4]], { device: "ref" });
 * const y = matmul(a, a);
 * assert.equal(y.device, "ref");
 * assert.deepEqual([...y.dataSync()], [7, 10, 15, 22]);
 * ```
 *
 * @module
 */

import type {
  AdaptivePool2dParams,
  Backend,
  BinaryOp,
  Conv2dParams,
  DType,
  LrnParams,
  MatmulParams,
  Pool2dParams,
  ReduceOp,
  SgdParams,
  Storage,
  TypedArray,
  UnaryOp,
} from "../backend/backend.ts";
import { registerBackend } from "../backend/registry.ts";
import {
  affineCpu,
  binaryCpu,
  broadcastToCpu,
  powScalarCpu,
  unaryBackwardCpu,
  unaryCpu,
} from "./ops/elementwise.ts";
import { argmaxCpu, reduceCpu } from "./ops/reduce.ts";
import { concatCpu, permuteCpu, sliceCpu } from "./ops/layout.ts";
import { matmulCpu } from "./ops/matmul.ts";
import {
  conv2dBackwardInputCpu,
  conv2dBackwardWeightCpu,
  conv2dForwardCpu,
  type FloatArray,
} from "./ops/conv2d.ts";
import {
  adaptiveAvgPool2dBackwardCpu,
  adaptiveAvgPool2dForwardCpu,
  avgPool2dBackwardCpu,
  avgPool2dForwardCpu,
  maxPool2dBackwardCpu,
  maxPool2dForwardCpu,
} from "./ops/pool.ts";
import { lrnBackwardCpu, lrnForwardCpu } from "./ops/lrn.ts";
import { dropoutCpu } from "./ops/dropout.ts";
import {
  crossEntropyBackwardCpu,
  crossEntropyCpu,
  logSoftmaxBackwardCpu,
  logSoftmaxCpu,
  softmaxBackwardCpu,
  softmaxCpu,
} from "./ops/softmax.ts";
import { sgdUpdateCpu } from "./ops/sgd.ts";
import { formatShape, sizeOf } from "./shape.ts";

/** CPU memory ("ref" and "cpu"): a typed array, readable synchronously. */
export class CpuStorage implements Storage {
  #exposed = false;
  /** Creates storage around `array` (taken, not copied). */
  constructor(readonly backend: Backend, readonly array: TypedArray) {}
  /**
   * The elements, for a reader outside the backend (`dataSync()`, gradcheck): writes change the
   * tensor, and the array may be kept, so once read here it is never reused for another tensor
   * (see cpu/pool.ts). The backend's own kernels use {@link array}.
   */
  get data(): TypedArray {
    this.#exposed = true;
    return this.array;
  }
  /** Whether {@link data} has been handed out (then the array is never pooled). */
  get exposed(): boolean {
    return this.#exposed;
  }
  /** Element type. */
  get dtype(): DType {
    return dtypeOf(this.array);
  }
  /** Number of elements. */
  get length(): number {
    return this.array.length;
  }
}

/** The element type of a typed array. */
export function dtypeOf(data: TypedArray): DType {
  return data instanceof Float64Array
    ? "float64"
    : data instanceof Int32Array
    ? "int32"
    : "float32";
}

/**
 * The reference backend. Subclasses (the cpu device) override {@link allocate} and
 * {@link free} to pool arrays, and the kernels they accelerate.
 */
export class RefBackend implements Backend {
  /** The device's name. */
  readonly name: string;

  /** A backend registered under `name` ("ref" for the reference device itself). */
  constructor(name = "ref") {
    this.name = name;
  }

  /** A zeroed array for a kernel's output. */
  protected allocate(dtype: DType, length: number): TypedArray {
    if (dtype === "float64") return new Float64Array(length);
    if (dtype === "int32") return new Int32Array(length);
    return new Float32Array(length);
  }

  /** The array of a storage of this kind (a CpuStorage), or an error naming its device. */
  protected array(s: Storage): TypedArray {
    if (!(s instanceof CpuStorage)) {
      throw new Error(`${this.name}: storage belongs to ${s.backend.name}`);
    }
    return s.array;
  }

  /** New storage of `length` elements of `dtype`, zeroed. */
  protected create(dtype: DType, length: number): CpuStorage {
    return new CpuStorage(this, this.allocate(dtype, length));
  }

  /** New storage with x's dtype. */
  protected like(x: Storage, length = x.length): CpuStorage {
    return this.create(x.dtype, length);
  }

  fromArray(data: TypedArray): Storage {
    const copy = this.allocate(dtypeOf(data), data.length);
    copy.set(data);
    return new CpuStorage(this, copy);
  }
  full(length: number, value: number, dtype: DType): Storage {
    const s = this.create(dtype, length);
    if (value !== 0) s.array.fill(value);
    return s;
  }
  write(target: Storage, data: TypedArray): void {
    const dst = this.array(target);
    if (dst.length !== data.length) {
      throw new RangeError(
        `${this.name}.write: ${data.length} values into storage of ${dst.length}`,
      );
    }
    dst.set(data);
  }
  read(source: Storage): Promise<TypedArray> {
    return Promise.resolve(this.array(source).slice());
  }
  /** Nothing to do: the garbage collector takes the array. */
  free(storage: Storage): void {
    this.array(storage);
  }
  cast(x: Storage, dtype: DType): Storage {
    const out = this.create(dtype, x.length);
    out.array.set(this.array(x));
    return out;
  }

  unary(op: UnaryOp, x: Storage): Storage {
    const y = this.like(x);
    unaryCpu(op, this.array(x), y.array);
    return y;
  }
  unaryBackward(op: UnaryOp, x: Storage, y: Storage, dy: Storage): Storage {
    const dx = this.like(x);
    unaryBackwardCpu(op, this.array(x), this.array(y), this.array(dy), dx.array);
    return dx;
  }
  affine(x: Storage, scale: number, shift: number): Storage {
    const y = this.like(x);
    affineCpu(this.array(x), scale, shift, y.array);
    return y;
  }
  powScalar(x: Storage, exponent: number): Storage {
    const y = this.like(x);
    powScalarCpu(this.array(x), exponent, y.array);
    return y;
  }
  binary(
    op: BinaryOp,
    a: Storage,
    aShape: readonly number[],
    b: Storage,
    bShape: readonly number[],
    outShape: readonly number[],
  ): Storage {
    const out = this.like(a, sizeOf(outShape));
    binaryCpu(op, this.array(a), aShape, this.array(b), bShape, outShape, out.array);
    return out;
  }
  broadcastTo(x: Storage, shape: readonly number[], outShape: readonly number[]): Storage {
    const out = this.like(x, sizeOf(outShape));
    broadcastToCpu(this.array(x), shape, outShape, out.array);
    return out;
  }

  reduce(op: ReduceOp, x: Storage, shape: readonly number[], axes: readonly number[]): Storage {
    const outSize = sizeOf(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
    const out = this.like(x, outSize);
    reduceCpu(op, this.array(x), shape, axes, out.array);
    return out;
  }
  argmax(x: Storage, rows: number, cols: number): Storage {
    const out = this.create("int32", rows);
    argmaxCpu(this.array(x), rows, cols, out.array as Int32Array);
    return out;
  }
  permute(x: Storage, shape: readonly number[], perm: readonly number[]): Storage {
    const out = this.like(x);
    permuteCpu(this.array(x), shape, perm, out.array);
    return out;
  }
  slice(x: Storage, shape: readonly number[], axis: number, start: number, size: number): Storage {
    const out = this.like(x, (x.length / shape[axis]) * size);
    sliceCpu(this.array(x), shape, axis, start, size, out.array);
    return out;
  }
  concat(xs: readonly Storage[], shapes: readonly (readonly number[])[], axis: number): Storage {
    const out = this.like(xs[0], xs.reduce((n, x) => n + x.length, 0));
    concatCpu(xs.map((x) => this.array(x)), shapes, axis, out.array);
    return out;
  }

  matmul(a: Storage, b: Storage, p: MatmulParams): Storage {
    const out = this.like(a, p.batch * p.m * p.n);
    matmulCpu(this.array(a), this.array(b), p, out.array);
    return out;
  }

  conv2dForward(x: Storage, weight: Storage, bias: Storage | null, p: Conv2dParams): Storage {
    const y = this.like(x, p.n * p.o * p.outH * p.outW);
    const bs = bias ? this.array(bias) as FloatArray : null;
    conv2dForwardCpu(
      this.array(x) as FloatArray,
      this.array(weight) as FloatArray,
      bs,
      p,
      y.array as FloatArray,
    );
    return y;
  }
  conv2dBackwardInput(dy: Storage, weight: Storage, p: Conv2dParams): Storage {
    const dx = this.like(dy, p.n * p.c * p.h * p.w);
    const dys = this.array(dy) as FloatArray, ws = this.array(weight) as FloatArray;
    conv2dBackwardInputCpu(dys, ws, p, dx.array as FloatArray);
    return dx;
  }
  conv2dBackwardWeight(dy: Storage, x: Storage, p: Conv2dParams): Storage {
    const dw = this.like(dy, p.o * (p.c / p.groups) * p.kh * p.kw);
    const dys = this.array(dy) as FloatArray, xs = this.array(x) as FloatArray;
    conv2dBackwardWeightCpu(dys, xs, p, dw.array as FloatArray);
    return dw;
  }

  maxPool2dForward(x: Storage, p: Pool2dParams): { y: Storage; argmax: Storage } {
    const y = this.like(x, p.n * p.c * p.outH * p.outW);
    const argmax = this.create("int32", y.length);
    maxPool2dForwardCpu(this.array(x), p, y.array, argmax.array as Int32Array);
    return { y, argmax };
  }
  maxPool2dBackward(dy: Storage, argmax: Storage, p: Pool2dParams): Storage {
    const dx = this.like(dy, p.n * p.c * p.h * p.w);
    maxPool2dBackwardCpu(this.array(dy), this.array(argmax) as Int32Array, p, dx.array);
    return dx;
  }
  avgPool2dForward(x: Storage, p: Pool2dParams): Storage {
    const y = this.like(x, p.n * p.c * p.outH * p.outW);
    avgPool2dForwardCpu(this.array(x), p, y.array);
    return y;
  }
  avgPool2dBackward(dy: Storage, p: Pool2dParams): Storage {
    const dx = this.like(dy, p.n * p.c * p.h * p.w);
    avgPool2dBackwardCpu(this.array(dy), p, dx.array);
    return dx;
  }
  adaptiveAvgPool2dForward(x: Storage, p: AdaptivePool2dParams): Storage {
    const y = this.like(x, p.n * p.c * p.outH * p.outW);
    adaptiveAvgPool2dForwardCpu(this.array(x), p, y.array);
    return y;
  }
  adaptiveAvgPool2dBackward(dy: Storage, p: AdaptivePool2dParams): Storage {
    const dx = this.like(dy, p.n * p.c * p.h * p.w);
    adaptiveAvgPool2dBackwardCpu(this.array(dy), p, dx.array);
    return dx;
  }

  lrnForward(x: Storage, p: LrnParams): Storage {
    const y = this.like(x);
    lrnForwardCpu(this.array(x), p, y.array);
    return y;
  }
  lrnBackward(x: Storage, dy: Storage, p: LrnParams): Storage {
    const dx = this.like(x);
    lrnBackwardCpu(this.array(x), this.array(dy), p, dx.array);
    return dx;
  }
  dropout(x: Storage, p: number, seed: number): Storage {
    const y = this.like(x);
    dropoutCpu(this.array(x), p, seed, y.array);
    return y;
  }

  softmax(x: Storage, rows: number, cols: number): Storage {
    const y = this.like(x);
    softmaxCpu(this.array(x), rows, cols, y.array);
    return y;
  }
  softmaxBackward(y: Storage, dy: Storage, rows: number, cols: number): Storage {
    const dx = this.like(y);
    softmaxBackwardCpu(this.array(y), this.array(dy), rows, cols, dx.array);
    return dx;
  }
  logSoftmax(x: Storage, rows: number, cols: number): Storage {
    const y = this.like(x);
    logSoftmaxCpu(this.array(x), rows, cols, y.array);
    return y;
  }
  logSoftmaxBackward(y: Storage, dy: Storage, rows: number, cols: number): Storage {
    const dx = this.like(y);
    logSoftmaxBackwardCpu(this.array(y), this.array(dy), rows, cols, dx.array);
    return dx;
  }
  crossEntropy(logits: Storage, labels: Storage, rows: number, cols: number): Storage {
    const loss = this.like(logits, rows);
    crossEntropyCpu(this.array(logits), this.array(labels) as Int32Array, rows, cols, loss.array);
    return loss;
  }
  crossEntropyBackward(
    logits: Storage,
    labels: Storage,
    dLoss: Storage,
    rows: number,
    cols: number,
  ): Storage {
    const dx = this.like(logits);
    crossEntropyBackwardCpu(
      this.array(logits),
      this.array(labels) as Int32Array,
      this.array(dLoss),
      rows,
      cols,
      dx.array,
    );
    return dx;
  }

  sgdUpdate(weight: Storage, grad: Storage, velocity: Storage, p: SgdParams): void {
    const w = this.array(weight), g = this.array(grad), v = this.array(velocity);
    if (w.length !== g.length || w.length !== v.length) {
      throw new RangeError(
        `sgdUpdate: weight ${formatShape([w.length])}, grad ${
          formatShape([g.length])
        } and velocity ${formatShape([v.length])} differ`,
      );
    }
    sgdUpdateCpu(w, g, v, p);
  }
}

/** The reference device, registered as "ref" when this module loads. */
export const refBackend: Backend = new RefBackend();
registerBackend(refBackend);
