/**
 * The CPU reference backend: every kernel of the {@link Backend} contract in plain
 * TypeScript. Each kernel lives next to its op in `tensor/ops/` (the math, the CPU code and
 * the autograd definition in one file); this file only allocates outputs and dispatches.
 *
 * Float32 and float64 both work everywhere; float64 exists for finite-difference gradient
 * checks.
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
} from "./backend.ts";
import {
  affineCpu,
  binaryCpu,
  broadcastToCpu,
  powScalarCpu,
  unaryBackwardCpu,
  unaryCpu,
} from "../tensor/ops/elementwise.ts";
import { argmaxCpu, reduceCpu } from "../tensor/ops/reduce.ts";
import { concatCpu, permuteCpu, sliceCpu } from "../tensor/ops/layout.ts";
import { matmulCpu } from "../tensor/ops/matmul.ts";
import {
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dForward,
} from "../tensor/ops/conv2d_kernels.ts";
import {
  adaptiveAvgPool2dBackwardCpu,
  adaptiveAvgPool2dForwardCpu,
  avgPool2dBackwardCpu,
  avgPool2dForwardCpu,
  maxPool2dBackwardCpu,
  maxPool2dForwardCpu,
} from "../tensor/ops/pool.ts";
import { lrnBackwardCpu, lrnForwardCpu } from "../tensor/ops/lrn.ts";
import { dropoutCpu } from "../tensor/ops/dropout.ts";
import {
  crossEntropyBackwardCpu,
  crossEntropyCpu,
  logSoftmaxBackwardCpu,
  logSoftmaxCpu,
  softmaxBackwardCpu,
  softmaxCpu,
} from "../tensor/ops/softmax.ts";
import { sgdUpdateCpu } from "../tensor/ops/sgd.ts";
import { formatShape, sizeOf } from "../tensor/shape.ts";

/** CPU memory: a typed array, readable synchronously. */
export class CpuStorage implements Storage {
  /** Creates storage around `data` (taken, not copied). */
  constructor(readonly backend: Backend, readonly data: TypedArray) {}
  /** Element type. */
  get dtype(): DType {
    return this.data instanceof Float64Array
      ? "float64"
      : this.data instanceof Int32Array
      ? "int32"
      : "float32";
  }
  /** Number of elements. */
  get length(): number {
    return this.data.length;
  }
}

function allocate(dtype: DType, length: number): TypedArray {
  if (dtype === "float64") return new Float64Array(length);
  if (dtype === "int32") return new Int32Array(length);
  // An ordinary ArrayBuffer: gemm copies operands into its WebAssembly memory itself.
  return new Float32Array(length);
}

function dtypeOf(data: TypedArray): DType {
  return data instanceof Float64Array
    ? "float64"
    : data instanceof Int32Array
    ? "int32"
    : "float32";
}

class CpuBackend implements Backend {
  readonly name = "cpu";

  #data(s: Storage): TypedArray {
    if (!(s instanceof CpuStorage)) throw new Error(`cpu: storage belongs to ${s.backend.name}`);
    return s.data;
  }

  #new(dtype: DType, length: number): CpuStorage {
    return new CpuStorage(this, allocate(dtype, length));
  }

  #like(x: Storage, length = x.length): CpuStorage {
    return this.#new(x.dtype, length);
  }

  fromArray(data: TypedArray): Storage {
    const copy = allocate(dtypeOf(data), data.length);
    copy.set(data);
    return new CpuStorage(this, copy);
  }
  full(length: number, value: number, dtype: DType): Storage {
    const s = this.#new(dtype, length);
    if (value !== 0) s.data.fill(value);
    return s;
  }
  write(target: Storage, data: TypedArray): void {
    const dst = this.#data(target);
    if (dst.length !== data.length) {
      throw new RangeError(`cpu.write: ${data.length} values into storage of ${dst.length}`);
    }
    dst.set(data);
  }
  read(source: Storage): Promise<TypedArray> {
    return Promise.resolve(this.#data(source).slice());
  }
  free(_storage: Storage): void {
    // The garbage collector reclaims host memory once no tensor refers to it.
  }
  cast(x: Storage, dtype: DType): Storage {
    const out = this.#new(dtype, x.length);
    out.data.set(this.#data(x));
    return out;
  }

  unary(op: UnaryOp, x: Storage): Storage {
    const y = this.#like(x);
    unaryCpu(op, this.#data(x), y.data);
    return y;
  }
  unaryBackward(op: UnaryOp, x: Storage, y: Storage, dy: Storage): Storage {
    const dx = this.#like(x);
    unaryBackwardCpu(op, this.#data(x), this.#data(y), this.#data(dy), dx.data);
    return dx;
  }
  affine(x: Storage, scale: number, shift: number): Storage {
    const y = this.#like(x);
    affineCpu(this.#data(x), scale, shift, y.data);
    return y;
  }
  powScalar(x: Storage, exponent: number): Storage {
    const y = this.#like(x);
    powScalarCpu(this.#data(x), exponent, y.data);
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
    const out = this.#like(a, sizeOf(outShape));
    binaryCpu(op, this.#data(a), aShape, this.#data(b), bShape, outShape, out.data);
    return out;
  }
  broadcastTo(x: Storage, shape: readonly number[], outShape: readonly number[]): Storage {
    const out = this.#like(x, sizeOf(outShape));
    broadcastToCpu(this.#data(x), shape, outShape, out.data);
    return out;
  }

  reduce(op: ReduceOp, x: Storage, shape: readonly number[], axes: readonly number[]): Storage {
    const outSize = sizeOf(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
    const out = this.#like(x, outSize);
    reduceCpu(op, this.#data(x), shape, axes, out.data);
    return out;
  }
  argmax(x: Storage, rows: number, cols: number): Storage {
    const out = this.#new("int32", rows);
    argmaxCpu(this.#data(x), rows, cols, out.data as Int32Array);
    return out;
  }
  permute(x: Storage, shape: readonly number[], perm: readonly number[]): Storage {
    const out = this.#like(x);
    permuteCpu(this.#data(x), shape, perm, out.data);
    return out;
  }
  slice(x: Storage, shape: readonly number[], axis: number, start: number, size: number): Storage {
    const out = this.#like(x, (x.length / shape[axis]) * size);
    sliceCpu(this.#data(x), shape, axis, start, size, out.data);
    return out;
  }
  concat(xs: readonly Storage[], shapes: readonly (readonly number[])[], axis: number): Storage {
    const out = this.#like(xs[0], xs.reduce((n, x) => n + x.length, 0));
    concatCpu(xs.map((x) => this.#data(x)), shapes, axis, out.data);
    return out;
  }

  matmul(a: Storage, b: Storage, p: MatmulParams): Storage {
    const out = this.#like(a, p.batch * p.m * p.n);
    matmulCpu(this.#data(a), this.#data(b), p, out.data);
    return out;
  }

  conv2dForward(x: Storage, weight: Storage, bias: Storage | null, p: Conv2dParams): Storage {
    const out = this.#like(x, p.n * p.o * p.outH * p.outW);
    conv2dForward(
      this.#data(x) as Float32Array,
      this.#data(weight) as Float32Array,
      bias ? this.#data(bias) as Float32Array : null,
      p,
      out.data as Float32Array,
    );
    return out;
  }
  conv2dBackwardInput(dy: Storage, weight: Storage, p: Conv2dParams): Storage {
    const dx = this.#like(dy, p.n * p.c * p.h * p.w);
    conv2dBackwardInput(
      this.#data(dy) as Float32Array,
      this.#data(weight) as Float32Array,
      p,
      dx.data as Float32Array,
    );
    return dx;
  }
  conv2dBackwardWeight(dy: Storage, x: Storage, p: Conv2dParams): Storage {
    const dw = this.#like(dy, p.o * (p.c / p.groups) * p.kh * p.kw);
    conv2dBackwardWeight(
      this.#data(dy) as Float32Array,
      this.#data(x) as Float32Array,
      p,
      dw.data as Float32Array,
    );
    return dw;
  }

  maxPool2dForward(x: Storage, p: Pool2dParams): { y: Storage; argmax: Storage } {
    const y = this.#like(x, p.n * p.c * p.outH * p.outW);
    const argmax = this.#new("int32", y.length);
    maxPool2dForwardCpu(this.#data(x), p, y.data, argmax.data as Int32Array);
    return { y, argmax };
  }
  maxPool2dBackward(dy: Storage, argmax: Storage, p: Pool2dParams): Storage {
    const dx = this.#like(dy, p.n * p.c * p.h * p.w);
    maxPool2dBackwardCpu(this.#data(dy), this.#data(argmax) as Int32Array, p, dx.data);
    return dx;
  }
  avgPool2dForward(x: Storage, p: Pool2dParams): Storage {
    const y = this.#like(x, p.n * p.c * p.outH * p.outW);
    avgPool2dForwardCpu(this.#data(x), p, y.data);
    return y;
  }
  avgPool2dBackward(dy: Storage, p: Pool2dParams): Storage {
    const dx = this.#like(dy, p.n * p.c * p.h * p.w);
    avgPool2dBackwardCpu(this.#data(dy), p, dx.data);
    return dx;
  }
  adaptiveAvgPool2dForward(x: Storage, p: AdaptivePool2dParams): Storage {
    const y = this.#like(x, p.n * p.c * p.outH * p.outW);
    adaptiveAvgPool2dForwardCpu(this.#data(x), p, y.data);
    return y;
  }
  adaptiveAvgPool2dBackward(dy: Storage, p: AdaptivePool2dParams): Storage {
    const dx = this.#like(dy, p.n * p.c * p.h * p.w);
    adaptiveAvgPool2dBackwardCpu(this.#data(dy), p, dx.data);
    return dx;
  }

  lrnForward(x: Storage, p: LrnParams): Storage {
    const y = this.#like(x);
    lrnForwardCpu(this.#data(x), p, y.data);
    return y;
  }
  lrnBackward(x: Storage, dy: Storage, p: LrnParams): Storage {
    const dx = this.#like(x);
    lrnBackwardCpu(this.#data(x), this.#data(dy), p, dx.data);
    return dx;
  }
  dropout(x: Storage, p: number, seed: number): Storage {
    const y = this.#like(x);
    dropoutCpu(this.#data(x), p, seed, y.data);
    return y;
  }

  softmax(x: Storage, rows: number, cols: number): Storage {
    const y = this.#like(x);
    softmaxCpu(this.#data(x), rows, cols, y.data);
    return y;
  }
  softmaxBackward(y: Storage, dy: Storage, rows: number, cols: number): Storage {
    const dx = this.#like(y);
    softmaxBackwardCpu(this.#data(y), this.#data(dy), rows, cols, dx.data);
    return dx;
  }
  logSoftmax(x: Storage, rows: number, cols: number): Storage {
    const y = this.#like(x);
    logSoftmaxCpu(this.#data(x), rows, cols, y.data);
    return y;
  }
  logSoftmaxBackward(y: Storage, dy: Storage, rows: number, cols: number): Storage {
    const dx = this.#like(y);
    logSoftmaxBackwardCpu(this.#data(y), this.#data(dy), rows, cols, dx.data);
    return dx;
  }
  crossEntropy(logits: Storage, labels: Storage, rows: number, cols: number): Storage {
    const loss = this.#like(logits, rows);
    crossEntropyCpu(this.#data(logits), this.#data(labels) as Int32Array, rows, cols, loss.data);
    return loss;
  }
  crossEntropyBackward(
    logits: Storage,
    labels: Storage,
    dLoss: Storage,
    rows: number,
    cols: number,
  ): Storage {
    const dx = this.#like(logits);
    crossEntropyBackwardCpu(
      this.#data(logits),
      this.#data(labels) as Int32Array,
      this.#data(dLoss),
      rows,
      cols,
      dx.data,
    );
    return dx;
  }

  sgdUpdate(weight: Storage, grad: Storage, velocity: Storage, p: SgdParams): void {
    const w = this.#data(weight), g = this.#data(grad), v = this.#data(velocity);
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

/** The CPU backend (always available). */
export const cpuBackend: Backend = new CpuBackend();
