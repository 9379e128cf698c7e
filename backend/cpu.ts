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
  checkConv2dArrays,
  conv2dBackwardInputCpu,
  conv2dBackwardWeightCpu,
  conv2dForwardCpu,
  type FloatArray,
} from "../tensor/ops/conv2d.ts";
import {
  conv2dBackwardInputWasm,
  conv2dBackwardWeightWasm,
  conv2dForwardWasm,
} from "../wasm/conv2d.ts";
import { gemmTier, type SimdTier } from "../wasm/gemm.ts";
import { reluBackwardWasm, reluWasm } from "../wasm/relu.ts";
import { maxPool2dForwardWasm } from "../wasm/pool.ts";
import { lrnBackwardWasm, lrnForwardWasm, lrnWasmSupports } from "../wasm/lrn.ts";
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
  #exposed = false;
  /** Creates storage around `array` (taken, not copied). */
  constructor(readonly backend: Backend, readonly array: TypedArray) {}
  /**
   * The elements, for a reader outside the backend (`dataSync()`, gradcheck): writes change the
   * tensor, and the array may be kept, so once read here it is never reused for another tensor
   * (see the pool below). The backend's own kernels use {@link array}.
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
    return this.array instanceof Float64Array
      ? "float64"
      : this.array instanceof Int32Array
      ? "int32"
      : "float32";
  }
  /** Number of elements. */
  get length(): number {
    return this.array.length;
  }
}

// Freed arrays wait in a pool for the next allocation of the same type and length, as GPU
// buffers do (gpu/pool.ts): a training step allocates the same sizes every time, and a fresh
// array costs the operating system a page fault and a zeroing per 4 KiB the first time it is
// written, which on a busy machine took longer than the ReLU or LRN written into it (bench/
// cpu_profile.ts). A reused array is zeroed again, so it looks fresh. `free` is called once
// per storage, when the last tensor sharing it goes (tensor/tensor.ts).
const pool = new Map<string, TypedArray[]>();
const pooled = new WeakSet<TypedArray>();
let pooledBytes = 0;
/** Arrays below this many bytes are left to the garbage collector (cheap to allocate). */
const POOL_MIN_BYTES = 64 * 1024;
/** At most this many bytes wait in the pool; more are left to the garbage collector. */
const POOL_MAX_BYTES = 1 << 30;

const poolKey = (dtype: DType, length: number) => `${dtype}:${length}`;

function allocate(dtype: DType, length: number): TypedArray {
  const reused = pool.get(poolKey(dtype, length))?.pop();
  if (reused !== undefined) {
    pooled.delete(reused);
    pooledBytes -= reused.byteLength;
    return reused.fill(0);
  }
  if (dtype === "float64") return new Float64Array(length);
  if (dtype === "int32") return new Int32Array(length);
  // An ordinary ArrayBuffer: the wasm kernels copy operands into their own memory.
  return new Float32Array(length);
}

function release(data: TypedArray): void {
  if (data.byteLength < POOL_MIN_BYTES || pooled.has(data)) return;
  if (pooledBytes + data.byteLength > POOL_MAX_BYTES) return;
  const key = poolKey(dtypeOf(data), data.length);
  const list = pool.get(key) ?? [];
  list.push(data);
  pool.set(key, list);
  pooled.add(data);
  pooledBytes += data.byteLength;
}

function dtypeOf(data: TypedArray): DType {
  return data instanceof Float64Array
    ? "float64"
    : data instanceof Int32Array
    ? "int32"
    : "float32";
}

type F32 = Float32Array;

/** The SIMD tier for a float32 kernel on these arrays, or null for the reference loops. */
function fastTier(...arrays: TypedArray[]): SimdTier | null {
  const tier = gemmTier();
  if (tier === "reference") return null;
  return arrays.every((a) => a instanceof Float32Array) ? tier : null;
}

/** Whether the wasm conv2d kernels handle `p` (they have no dilation). */
const undilated = (p: Conv2dParams) => p.dilationH === 1 && p.dilationW === 1;

class CpuBackend implements Backend {
  readonly name = "cpu";

  #data(s: Storage): TypedArray {
    if (!(s instanceof CpuStorage)) throw new Error(`cpu: storage belongs to ${s.backend.name}`);
    return s.array;
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
    if (value !== 0) s.array.fill(value);
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
  free(storage: Storage): void {
    const array = this.#data(storage);
    // An array handed out through `data` may still be held by its reader: never reuse it.
    if (!(storage as CpuStorage).exposed) release(array); // into the pool (see allocate)
  }
  cast(x: Storage, dtype: DType): Storage {
    const out = this.#new(dtype, x.length);
    out.array.set(this.#data(x));
    return out;
  }

  // ReLU: the branch-free wasm kernel (wasm/relu.ts) for float32 where SIMD exists.
  unary(op: UnaryOp, x: Storage): Storage {
    const y = this.#like(x);
    const xs = this.#data(x);
    if (op === "relu" && fastTier(xs)) reluWasm(xs as F32, y.array as F32);
    else unaryCpu(op, xs, y.array);
    return y;
  }
  unaryBackward(op: UnaryOp, x: Storage, y: Storage, dy: Storage): Storage {
    const dx = this.#like(x);
    const xs = this.#data(x), dys = this.#data(dy);
    if (op === "relu" && dys.length === xs.length && fastTier(xs, dys)) {
      reluBackwardWasm(xs as F32, dys as F32, dx.array as F32);
    } else unaryBackwardCpu(op, xs, this.#data(y), dys, dx.array);
    return dx;
  }
  affine(x: Storage, scale: number, shift: number): Storage {
    const y = this.#like(x);
    affineCpu(this.#data(x), scale, shift, y.array);
    return y;
  }
  powScalar(x: Storage, exponent: number): Storage {
    const y = this.#like(x);
    powScalarCpu(this.#data(x), exponent, y.array);
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
    binaryCpu(op, this.#data(a), aShape, this.#data(b), bShape, outShape, out.array);
    return out;
  }
  broadcastTo(x: Storage, shape: readonly number[], outShape: readonly number[]): Storage {
    const out = this.#like(x, sizeOf(outShape));
    broadcastToCpu(this.#data(x), shape, outShape, out.array);
    return out;
  }

  reduce(op: ReduceOp, x: Storage, shape: readonly number[], axes: readonly number[]): Storage {
    const outSize = sizeOf(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
    const out = this.#like(x, outSize);
    reduceCpu(op, this.#data(x), shape, axes, out.array);
    return out;
  }
  argmax(x: Storage, rows: number, cols: number): Storage {
    const out = this.#new("int32", rows);
    argmaxCpu(this.#data(x), rows, cols, out.array as Int32Array);
    return out;
  }
  permute(x: Storage, shape: readonly number[], perm: readonly number[]): Storage {
    const out = this.#like(x);
    permuteCpu(this.#data(x), shape, perm, out.array);
    return out;
  }
  slice(x: Storage, shape: readonly number[], axis: number, start: number, size: number): Storage {
    const out = this.#like(x, (x.length / shape[axis]) * size);
    sliceCpu(this.#data(x), shape, axis, start, size, out.array);
    return out;
  }
  concat(xs: readonly Storage[], shapes: readonly (readonly number[])[], axis: number): Storage {
    const out = this.#like(xs[0], xs.reduce((n, x) => n + x.length, 0));
    concatCpu(xs.map((x) => this.#data(x)), shapes, axis, out.array);
    return out;
  }

  matmul(a: Storage, b: Storage, p: MatmulParams): Storage {
    const out = this.#like(a, p.batch * p.m * p.n);
    matmulCpu(this.#data(a), this.#data(b), p, out.array);
    return out;
  }

  // conv2d: the wasm kernels (wasm/conv2d.ts) for float32 where the engine has SIMD, else the
  // reference loops of tensor/ops/conv2d.ts (float64, dilation > 1, or no SIMD).
  conv2dForward(x: Storage, weight: Storage, bias: Storage | null, p: Conv2dParams): Storage {
    const y = this.#like(x, p.n * p.o * p.outH * p.outW).array as FloatArray;
    const xs = this.#data(x) as FloatArray, ws = this.#data(weight) as FloatArray;
    const bs = bias ? this.#data(bias) as FloatArray : null;
    checkConv2dArrays(p, bs ? { x: xs, weight: ws, bias: bs, y } : { x: xs, weight: ws, y });
    const tier = undilated(p) ? fastTier(xs, ws, bs ?? xs) : null;
    if (tier) conv2dForwardWasm(xs as F32, ws as F32, bs as F32 | null, p, y as F32, tier);
    else conv2dForwardCpu(xs, ws, bs, p, y);
    return new CpuStorage(this, y);
  }
  conv2dBackwardInput(dy: Storage, weight: Storage, p: Conv2dParams): Storage {
    const dx = this.#like(dy, p.n * p.c * p.h * p.w).array as FloatArray;
    const dys = this.#data(dy) as FloatArray, ws = this.#data(weight) as FloatArray;
    checkConv2dArrays(p, { dy: dys, weight: ws, dx });
    const tier = undilated(p) ? fastTier(dys, ws, dys) : null;
    if (tier) conv2dBackwardInputWasm(dys as F32, ws as F32, p, dx as F32, tier);
    else conv2dBackwardInputCpu(dys, ws, p, dx);
    return new CpuStorage(this, dx);
  }
  conv2dBackwardWeight(dy: Storage, x: Storage, p: Conv2dParams): Storage {
    const dw = this.#like(dy, p.o * (p.c / p.groups) * p.kh * p.kw).array as FloatArray;
    const dys = this.#data(dy) as FloatArray, xs = this.#data(x) as FloatArray;
    checkConv2dArrays(p, { dy: dys, x: xs, dw });
    const tier = undilated(p) ? fastTier(dys, xs, dys) : null;
    if (tier) conv2dBackwardWeightWasm(dys as F32, xs as F32, p, dw as F32, tier);
    else conv2dBackwardWeightCpu(dys, xs, p, dw);
    return new CpuStorage(this, dw);
  }

  maxPool2dForward(x: Storage, p: Pool2dParams): { y: Storage; argmax: Storage } {
    const y = this.#like(x, p.n * p.c * p.outH * p.outW);
    const argmax = this.#new("int32", y.length);
    const xs = this.#data(x);
    // The branch-free wasm kernel (wasm/pool.ts) for float32 where SIMD exists.
    if (fastTier(xs)) {
      maxPool2dForwardWasm(xs as F32, p, y.array as F32, argmax.array as Int32Array);
    } else maxPool2dForwardCpu(xs, p, y.array, argmax.array as Int32Array);
    return { y, argmax };
  }
  maxPool2dBackward(dy: Storage, argmax: Storage, p: Pool2dParams): Storage {
    const dx = this.#like(dy, p.n * p.c * p.h * p.w);
    maxPool2dBackwardCpu(this.#data(dy), this.#data(argmax) as Int32Array, p, dx.array);
    return dx;
  }
  avgPool2dForward(x: Storage, p: Pool2dParams): Storage {
    const y = this.#like(x, p.n * p.c * p.outH * p.outW);
    avgPool2dForwardCpu(this.#data(x), p, y.array);
    return y;
  }
  avgPool2dBackward(dy: Storage, p: Pool2dParams): Storage {
    const dx = this.#like(dy, p.n * p.c * p.h * p.w);
    avgPool2dBackwardCpu(this.#data(dy), p, dx.array);
    return dx;
  }
  adaptiveAvgPool2dForward(x: Storage, p: AdaptivePool2dParams): Storage {
    const y = this.#like(x, p.n * p.c * p.outH * p.outW);
    adaptiveAvgPool2dForwardCpu(this.#data(x), p, y.array);
    return y;
  }
  adaptiveAvgPool2dBackward(dy: Storage, p: AdaptivePool2dParams): Storage {
    const dx = this.#like(dy, p.n * p.c * p.h * p.w);
    adaptiveAvgPool2dBackwardCpu(this.#data(dy), p, dx.array);
    return dx;
  }

  // LRN: the SIMD kernels (wasm/lrn.ts) for float32 with AlexNet's β = 0.75.
  lrnForward(x: Storage, p: LrnParams): Storage {
    const y = this.#like(x);
    const xs = this.#data(x);
    if (fastTier(xs) && lrnWasmSupports(p)) lrnForwardWasm(xs as F32, p, y.array as F32);
    else lrnForwardCpu(xs, p, y.array);
    return y;
  }
  lrnBackward(x: Storage, dy: Storage, p: LrnParams): Storage {
    const dx = this.#like(x);
    const xs = this.#data(x), dys = this.#data(dy);
    if (fastTier(xs, dys) && lrnWasmSupports(p)) {
      lrnBackwardWasm(xs as F32, dys as F32, p, dx.array as F32);
    } else lrnBackwardCpu(xs, dys, p, dx.array);
    return dx;
  }
  dropout(x: Storage, p: number, seed: number): Storage {
    const y = this.#like(x);
    dropoutCpu(this.#data(x), p, seed, y.array);
    return y;
  }

  softmax(x: Storage, rows: number, cols: number): Storage {
    const y = this.#like(x);
    softmaxCpu(this.#data(x), rows, cols, y.array);
    return y;
  }
  softmaxBackward(y: Storage, dy: Storage, rows: number, cols: number): Storage {
    const dx = this.#like(y);
    softmaxBackwardCpu(this.#data(y), this.#data(dy), rows, cols, dx.array);
    return dx;
  }
  logSoftmax(x: Storage, rows: number, cols: number): Storage {
    const y = this.#like(x);
    logSoftmaxCpu(this.#data(x), rows, cols, y.array);
    return y;
  }
  logSoftmaxBackward(y: Storage, dy: Storage, rows: number, cols: number): Storage {
    const dx = this.#like(y);
    logSoftmaxBackwardCpu(this.#data(y), this.#data(dy), rows, cols, dx.array);
    return dx;
  }
  crossEntropy(logits: Storage, labels: Storage, rows: number, cols: number): Storage {
    const loss = this.#like(logits, rows);
    crossEntropyCpu(this.#data(logits), this.#data(labels) as Int32Array, rows, cols, loss.array);
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
      dx.array,
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
