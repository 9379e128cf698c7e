/**
 * The cpu device: the reference backend (tensor/ref.ts) with its hot kernels replaced by
 * WebAssembly SIMD and its allocations pooled. For float32, where the JavaScript engine
 * compiles SIMD, it runs
 *
 * - matmul and linear on the gemm of cpu/kernels/gemm.ts (one or two threads),
 * - conv2d, forward and both gradients, on cpu/kernels/conv2d.ts,
 * - ReLU (cpu/kernels/relu.ts), max-pooling (cpu/kernels/pool2d.ts), LRN
 *   with AlexNet's β = 0.75 (cpu/kernels/lrn.ts) and the SGD update (cpu/kernels/sgd.ts);
 * - add, sub, mul and div where one operand is whole and the other whole or repeated in runs
 *   (a bias), dropout, and the block sums of a sum over the last axes (a bias gradient), all
 *   in cpu/kernels/elementwise.ts;
 *
 * and everything else, float64, and every op without SIMD, on the inherited reference
 * kernels of tensor/ops/. Each fast kernel is proven against the reference it replaces
 * (tests/cpu/*.test.ts). Float32 and int32 tensors of 64 KiB and more live in the kernels'
 * WebAssembly memory where it is shared (cpu/kernels/heap.ts), so the kernels use them in
 * place; other arrays come from the pool of cpu/pool.ts. The storage is the reference's
 * {@link CpuStorage} either way, so the two devices read and write arrays the same way.
 *
 * @module
 */

import type {
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
import { CpuStorage, RefBackend } from "../tensor/ref.ts";
import { matmulCpu } from "../tensor/ops/matmul.ts";
import { checkConv2dArrays } from "../tensor/ops/conv2d.ts";
import { reduceCpu } from "../tensor/ops/reduce.ts";
import { sizeOf } from "../tensor/shape.ts";
import { allocate, release } from "./pool.ts";
import { type Heap, heapOf } from "./kernels/heap.ts";
import { gemm, type SimdTier, simdTier } from "./kernels/gemm.ts";
import {
  conv2dBackwardInputWasm,
  conv2dBackwardWeightWasm,
  conv2dForwardWasm,
  convEngine,
} from "./kernels/conv2d.ts";
import {
  binaryWasm,
  dropoutWasm,
  layerEngine,
  lrnBackwardWasm,
  lrnForwardWasm,
  lrnWasmSupports,
  maxPool2dBackwardWasm,
  maxPool2dForwardWasm,
  reluBackwardWasm,
  reluWasm,
  repeatPattern,
  sgdUpdateWasm,
  sumBlocksWasm,
} from "./kernels/layers.ts";
import { BINARY_KERNEL_OPS, type BinaryKernelOp } from "./kernels/elementwise.ts";

type F32 = Float32Array;

/** Arrays below this size stay ordinary arrays (copied into the kernels' memory: cheap). */
const HEAP_MIN_BYTES = 64 * 1024;

let poisonOutputs = false;

/**
 * Fills every kernel output that is not zeroed first with NaN (on) or leaves it as it comes
 * (off, the default). The parity tests run the cpu device poisoned: an element a fast kernel
 * does not write then differs from the reference.
 */
export function setPoisonOutputs(on: boolean): void {
  poisonOutputs = on;
}

/** Blocks of freed tensors whose array a reader still held: given back when it is collected. */
const heldByReader = new FinalizationRegistry<{ heap: Heap; at: number; bytes: number }>(
  ({ heap, at, bytes }) => heap.release(at, bytes),
);

/** The SIMD tier for a float32 kernel on these arrays, or null for the reference kernels. */
function fastTier(...arrays: TypedArray[]): SimdTier | null {
  const tier = simdTier();
  if (tier === null || layerEngine() === null) return null;
  return arrays.every((a) => a instanceof Float32Array) ? tier : null;
}

/** The tier for a conv kernel: {@link fastTier}, once its engine is compiled (browsers). */
function convTier(...arrays: TypedArray[]): SimdTier | null {
  const tier = fastTier(...arrays);
  return tier !== null && convEngine(tier) !== null ? tier : null;
}
const kernelOp = (op: BinaryOp): op is BinaryKernelOp =>
  (BINARY_KERNEL_OPS as readonly string[]).includes(op);

/** Whether the wasm conv2d kernels handle `p` (they have no dilation; the reference does). */
const undilated = (p: Conv2dParams) => p.dilationH === 1 && p.dilationW === 1;

/** The cpu device: {@link RefBackend} plus the WebAssembly kernels, their heap and the array pool. */
export class CpuBackend extends RefBackend {
  constructor() {
    super("cpu");
  }

  /** Float32 and int32 arrays of 64 KiB and more live in the kernels' memory; others pooled. */
  protected override allocate(dtype: DType, length: number, zeroed = true): TypedArray {
    if (dtype !== "float64" && 4 * length >= HEAP_MIN_BYTES) {
      const array = layerEngine()?.allocateTensor(dtype, length, zeroed);
      if (array) return array;
    }
    return allocate(dtype, length, zeroed);
  }
  /**
   * Storage for a kernel that writes every element of it: not zeroed first (zeroing is a pass
   * over memory on one thread). With {@link setPoisonOutputs} on it is filled with NaN (int32:
   * its minimum) instead, so a kernel that missed an element shows it.
   */
  #output(dtype: DType, length: number): CpuStorage {
    const array = this.allocate(dtype, length, false);
    if (poisonOutputs) array.fill(dtype === "int32" ? -(2 ** 31) : NaN);
    return new CpuStorage(this, array);
  }
  override free(storage: Storage): void {
    const array = this.array(storage);
    const heap = heapOf(array);
    // An array handed out through `data` may still be held by its reader: its block or the
    // array goes back once the reader lets go of it (the garbage collector says when).
    const exposed = (storage as CpuStorage).exposed;
    if (heap === null) {
      if (!exposed) release(array);
    } else if (!exposed) heap.release(array.byteOffset, array.byteLength);
    else heldByReader.register(array, { heap, at: array.byteOffset, bytes: array.byteLength });
  }

  // ReLU: the branch-free wasm kernel.
  override unary(op: UnaryOp, x: Storage): Storage {
    const xs = this.array(x);
    if (op !== "relu" || !fastTier(xs)) return super.unary(op, x);
    const y = this.#output("float32", xs.length);
    reluWasm(xs as F32, y.array as F32);
    return y;
  }
  override unaryBackward(op: UnaryOp, x: Storage, y: Storage, dy: Storage): Storage {
    const xs = this.array(x), dys = this.array(dy);
    if (op !== "relu" || dys.length !== xs.length || !fastTier(xs, dys)) {
      return super.unaryBackward(op, x, y, dy);
    }
    const dx = this.#output("float32", xs.length);
    reluBackwardWasm(xs as F32, dys as F32, dx.array as F32);
    return dx;
  }

  // Arithmetic with a whole or repeated operand (a bias): the SIMD kernels on the threads.
  override binary(
    op: BinaryOp,
    a: Storage,
    aShape: readonly number[],
    b: Storage,
    bShape: readonly number[],
    outShape: readonly number[],
  ): Storage {
    const as = this.array(a), bs = this.array(b);
    const pattern = kernelOp(op) && fastTier(as, bs)
      ? repeatPattern(aShape, bShape, outShape)
      : null;
    if (!kernelOp(op) || pattern === null) return super.binary(op, a, aShape, b, bShape, outShape);
    const out = this.#output("float32", sizeOf(outShape));
    binaryWasm(op, as as F32, bs as F32, out.array as F32, pattern);
    return out;
  }

  // A sum over the last axes (a bias gradient): the reference's reduction, its blocks on the threads.
  override reduce(op: ReduceOp, x: Storage, shape: readonly number[], axes: readonly number[]) {
    const xs = this.array(x);
    if (op !== "sum" || !fastTier(xs)) return super.reduce(op, x, shape, axes);
    const out = this.like(x, sizeOf(shape.map((d, i) => (axes.includes(i) ? 1 : d))));
    reduceCpu(
      op,
      xs,
      shape,
      axes,
      out.array,
      (x, inner, blocks) => sumBlocksWasm(x as F32, inner, blocks),
    );
    return out;
  }

  override dropout(x: Storage, p: number, seed: number): Storage {
    const xs = this.array(x);
    if (!fastTier(xs)) return super.dropout(x, p, seed);
    const y = this.#output("float32", xs.length);
    dropoutWasm(xs as F32, p, seed, y.array as F32);
    return y;
  }

  // matmul: the reference's batch loop with the WebAssembly gemm (float64: the reference gemm).
  override matmul(a: Storage, b: Storage, p: MatmulParams): Storage {
    const out = this.#output(a.dtype, p.batch * p.m * p.n);
    matmulCpu(this.array(a), this.array(b), p, out.array, gemm);
    return out;
  }

  override conv2dForward(
    x: Storage,
    weight: Storage,
    bias: Storage | null,
    p: Conv2dParams,
  ): Storage {
    const xs = this.array(x) as F32, ws = this.array(weight) as F32;
    const bs = bias ? this.array(bias) as F32 : null;
    const tier = undilated(p) ? convTier(xs, ws, bs ?? xs) : null;
    if (!tier) return super.conv2dForward(x, weight, bias, p);
    const y = this.#output("float32", p.n * p.o * p.outH * p.outW);
    checkConv2dArrays(
      p,
      bs ? { x: xs, weight: ws, bias: bs, y: y.array } : { x: xs, weight: ws, y: y.array },
    );
    conv2dForwardWasm(xs, ws, bs, p, y.array as F32, tier);
    return y;
  }
  override conv2dBackwardInput(dy: Storage, weight: Storage, p: Conv2dParams): Storage {
    const dys = this.array(dy) as F32, ws = this.array(weight) as F32;
    const tier = undilated(p) ? convTier(dys, ws) : null;
    if (!tier) return super.conv2dBackwardInput(dy, weight, p);
    const dx = this.#output("float32", p.n * p.c * p.h * p.w);
    checkConv2dArrays(p, { dy: dys, weight: ws, dx: dx.array });
    conv2dBackwardInputWasm(dys, ws, p, dx.array as F32, tier);
    return dx;
  }
  override conv2dBackwardWeight(dy: Storage, x: Storage, p: Conv2dParams): Storage {
    const dys = this.array(dy) as F32, xs = this.array(x) as F32;
    const tier = undilated(p) ? convTier(dys, xs) : null;
    if (!tier) return super.conv2dBackwardWeight(dy, x, p);
    const dw = this.#output("float32", p.o * (p.c / p.groups) * p.kh * p.kw);
    checkConv2dArrays(p, { dy: dys, x: xs, dw: dw.array });
    conv2dBackwardWeightWasm(dys, xs, p, dw.array as F32, tier);
    return dw;
  }

  // Max-pooling: the branch-free wasm kernel forward, the scatter backward, on the threads.
  override maxPool2dForward(x: Storage, p: Pool2dParams): { y: Storage; argmax: Storage } {
    const xs = this.array(x);
    if (!fastTier(xs)) return super.maxPool2dForward(x, p);
    const y = this.#output("float32", p.n * p.c * p.outH * p.outW);
    const argmax = this.#output("int32", y.length);
    maxPool2dForwardWasm(xs as F32, p, y.array as F32, argmax.array as Int32Array);
    return { y, argmax };
  }

  override maxPool2dBackward(dy: Storage, argmax: Storage, p: Pool2dParams): Storage {
    const dys = this.array(dy);
    if (!fastTier(dys)) return super.maxPool2dBackward(dy, argmax, p);
    const dx = this.#output("float32", p.n * p.c * p.h * p.w);
    maxPool2dBackwardWasm(dys as F32, this.array(argmax) as Int32Array, p, dx.array as F32);
    return dx;
  }

  // LRN: the SIMD kernels for AlexNet's β = 0.75.
  override lrnForward(x: Storage, p: LrnParams): Storage {
    const xs = this.array(x);
    if (!fastTier(xs) || !lrnWasmSupports(p)) return super.lrnForward(x, p);
    const y = this.#output("float32", xs.length);
    lrnForwardWasm(xs as F32, p, y.array as F32);
    return y;
  }
  override lrnBackward(x: Storage, dy: Storage, p: LrnParams): Storage {
    const xs = this.array(x), dys = this.array(dy);
    if (!fastTier(xs, dys) || !lrnWasmSupports(p)) return super.lrnBackward(x, dy, p);
    const dx = this.#output("float32", xs.length);
    lrnBackwardWasm(xs as F32, dys as F32, p, dx.array as F32);
    return dx;
  }

  // SGD: the update on the threads (a memory-bound loop over every weight), the same bits.
  override sgdUpdate(weight: Storage, grad: Storage, velocity: Storage, p: SgdParams): void {
    const [w, g, v] = [weight, grad, velocity].map((s) => this.array(s));
    const sizes = w.length === g.length && w.length === v.length;
    if (!sizes || !fastTier(w, g, v)) return super.sgdUpdate(weight, grad, velocity, p);
    sgdUpdateWasm(w as F32, g as F32, v as F32, p);
  }
}

/** The cpu device (registered by cpu/mod.ts, which every entry point of the package loads). */
export const cpuBackend: Backend = new CpuBackend();
