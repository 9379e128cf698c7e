/**
 * The WebGPU backend: every kernel of the {@link Backend} contract as a WGSL dispatch. This
 * file only checks arguments and routes; the WGSL lives next to each op's name in
 * `gpu/kernels/` (elementwise, reduce, layout, matmul, softmax, dropout, sgd; conv2d, pool2d
 * and lrn for the spatial ops).
 *
 * float32 and int32 live in the same kind of buffer (4 bytes an element); float64 has no WGSL
 * type and is refused with a clear error.
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

import { type GpuRuntime, GpuStorage } from "./runtime.ts";
import {
  affineGpu,
  binaryGpu,
  broadcastToGpu,
  castGpu,
  powScalarGpu,
  unaryBackwardGpu,
  unaryGpu,
} from "./kernels/elementwise.ts";
import { argmaxGpu, reduceGpu } from "./kernels/reduce.ts";
import { concatGpu, permuteGpu, sliceGpu } from "./kernels/layout.ts";
import { matmulGpu } from "./kernels/matmul.ts";
import {
  crossEntropyBackwardGpu,
  crossEntropyGpu,
  logSoftmaxBackwardGpu,
  logSoftmaxGpu,
  softmaxBackwardGpu,
  softmaxGpu,
} from "./kernels/softmax.ts";
import { dropoutGpu } from "./kernels/dropout.ts";
import { sgdUpdateGpu } from "./kernels/sgd.ts";
import {
  conv2dBackwardInputGpu,
  conv2dBackwardWeightGpu,
  conv2dForwardGpu,
} from "./kernels/conv2d.ts";
import {
  adaptiveAvgPool2dBackwardGpu,
  adaptiveAvgPool2dForwardGpu,
  avgPool2dBackwardGpu,
  avgPool2dForwardGpu,
  maxPool2dBackwardGpu,
  maxPool2dForwardGpu,
} from "./kernels/pool2d.ts";
import { lrnBackwardGpu, lrnForwardGpu } from "./kernels/lrn.ts";

const FLOAT64_ERROR = "gpu: float64 is not supported; use float32";

/** The {@link Backend} on a {@link GpuRuntime}. */
export class GpuBackend implements Backend {
  /** Device name used by `tensor.to("gpu")`. */
  readonly name: string;
  /** The runtime that runs the kernels. */
  readonly runtime: GpuRuntime;

  /** A backend on `runtime`, registered under `name` by gpu/mod.ts. */
  constructor(runtime: GpuRuntime, name = "gpu") {
    this.name = name;
    this.runtime = runtime;
    runtime.backend = this;
  }

  #s(storage: Storage, what: string): GpuStorage {
    if (!(storage instanceof GpuStorage) || storage.backend !== this) {
      throw new Error(
        `${this.name}.${what}: storage belongs to ${storage.backend.name}, not ${this.name}`,
      );
    }
    if (storage.freed) {
      throw new Error(`${this.name}.${what}: storage of ${storage.length} elements was freed`);
    }
    return storage;
  }

  #float(storage: Storage, what: string): GpuStorage {
    const s = this.#s(storage, what);
    if (s.dtype !== "float32") {
      throw new TypeError(`${this.name}.${what}: expected float32 storage, got ${s.dtype}`);
    }
    return s;
  }

  // ---- memory ----
  fromArray(data: TypedArray): Storage {
    if (data instanceof Float64Array) throw new TypeError(FLOAT64_ERROR);
    const dtype: DType = data instanceof Int32Array ? "int32" : "float32";
    const s = this.runtime.alloc(dtype, data.length);
    if (data.length > 0) this.runtime.write(s, data);
    return s;
  }
  full(length: number, value: number, dtype: DType): Storage {
    if (dtype === "float64") throw new TypeError(FLOAT64_ERROR);
    const bits = dtype === "int32"
      ? new Uint32Array(new Int32Array([value]).buffer)[0]
      : new Uint32Array(new Float32Array([value]).buffer)[0];
    return this.runtime.fillBits(dtype, length, bits);
  }
  write(target: Storage, data: TypedArray): void {
    const s = this.#s(target, "write");
    if (data instanceof Float64Array) throw new TypeError(FLOAT64_ERROR);
    if (data.length !== s.length) {
      throw new RangeError(`${this.name}.write: ${data.length} values into storage of ${s.length}`);
    }
    const expected = s.dtype === "int32" ? Int32Array : Float32Array;
    if (!(data instanceof expected)) {
      throw new TypeError(`${this.name}.write: ${data.constructor.name} into ${s.dtype} storage`);
    }
    this.runtime.write(s, data);
  }
  async read(source: Storage): Promise<TypedArray> {
    return await this.runtime.read(this.#s(source, "read"));
  }
  free(storage: Storage): void {
    if (storage instanceof GpuStorage) this.runtime.free(storage);
  }
  cast(x: Storage, dtype: DType): Storage {
    return castGpu(this.runtime, this.#s(x, "cast"), dtype);
  }

  // ---- elementwise ----
  unary(op: UnaryOp, x: Storage): Storage {
    return unaryGpu(this.runtime, op, this.#float(x, op));
  }
  unaryBackward(op: UnaryOp, x: Storage, y: Storage, dy: Storage): Storage {
    const what = `${op} backward`;
    return unaryBackwardGpu(
      this.runtime,
      op,
      this.#float(x, what),
      this.#float(y, what),
      this.#float(dy, what),
    );
  }
  affine(x: Storage, scale: number, shift: number): Storage {
    return affineGpu(this.runtime, this.#float(x, "affine"), scale, shift);
  }
  powScalar(x: Storage, exponent: number): Storage {
    return powScalarGpu(this.runtime, this.#float(x, "pow"), exponent);
  }
  binary(
    op: BinaryOp,
    a: Storage,
    aShape: readonly number[],
    b: Storage,
    bShape: readonly number[],
    outShape: readonly number[],
  ): Storage {
    return binaryGpu(this.runtime, op, this.#s(a, op), aShape, this.#s(b, op), bShape, outShape);
  }
  broadcastTo(x: Storage, shape: readonly number[], outShape: readonly number[]): Storage {
    return broadcastToGpu(this.runtime, this.#s(x, "broadcastTo"), shape, outShape);
  }

  // ---- reductions and layout ----
  reduce(op: ReduceOp, x: Storage, shape: readonly number[], axes: readonly number[]): Storage {
    return reduceGpu(this.runtime, op, this.#float(x, op), shape, axes);
  }
  argmax(x: Storage, rows: number, cols: number): Storage {
    return argmaxGpu(this.runtime, this.#float(x, "argmax"), rows, cols);
  }
  permute(x: Storage, shape: readonly number[], perm: readonly number[]): Storage {
    return permuteGpu(this.runtime, this.#s(x, "permute"), shape, perm);
  }
  slice(x: Storage, shape: readonly number[], axis: number, start: number, size: number): Storage {
    return sliceGpu(this.runtime, this.#s(x, "slice"), shape, axis, start, size);
  }
  concat(xs: readonly Storage[], shapes: readonly (readonly number[])[], axis: number): Storage {
    return concatGpu(this.runtime, xs.map((x) => this.#s(x, "concat")), shapes, axis);
  }

  // ---- linear algebra ----
  matmul(a: Storage, b: Storage, p: MatmulParams): Storage {
    return matmulGpu(this.runtime, this.#float(a, "matmul"), this.#float(b, "matmul"), p);
  }

  // ---- convolution (gpu/kernels/conv2d.ts) ----
  conv2dForward(x: Storage, weight: Storage, bias: Storage | null, p: Conv2dParams): Storage {
    const what = "conv2d";
    return conv2dForwardGpu(
      this.runtime,
      this.#float(x, what),
      this.#float(weight, what),
      bias ? this.#float(bias, what) : null,
      p,
    );
  }
  conv2dBackwardInput(dy: Storage, weight: Storage, p: Conv2dParams): Storage {
    return conv2dBackwardInputGpu(
      this.runtime,
      this.#float(dy, "conv2d backward"),
      this.#float(weight, "conv2d backward"),
      p,
    );
  }
  conv2dBackwardWeight(dy: Storage, x: Storage, p: Conv2dParams): Storage {
    return conv2dBackwardWeightGpu(
      this.runtime,
      this.#float(dy, "conv2d backward"),
      this.#float(x, "conv2d backward"),
      p,
    );
  }

  // ---- pooling (gpu/kernels/pool2d.ts) ----
  maxPool2dForward(x: Storage, p: Pool2dParams): { y: Storage; argmax: Storage } {
    return maxPool2dForwardGpu(this.runtime, this.#float(x, "maxPool2d"), p);
  }
  maxPool2dBackward(dy: Storage, argmax: Storage, p: Pool2dParams): Storage {
    return maxPool2dBackwardGpu(
      this.runtime,
      this.#float(dy, "maxPool2d backward"),
      this.#s(argmax, "maxPool2d backward"),
      p,
    );
  }
  avgPool2dForward(x: Storage, p: Pool2dParams): Storage {
    return avgPool2dForwardGpu(this.runtime, this.#float(x, "avgPool2d"), p);
  }
  avgPool2dBackward(dy: Storage, p: Pool2dParams): Storage {
    return avgPool2dBackwardGpu(this.runtime, this.#float(dy, "avgPool2d backward"), p);
  }
  adaptiveAvgPool2dForward(x: Storage, p: AdaptivePool2dParams): Storage {
    return adaptiveAvgPool2dForwardGpu(this.runtime, this.#float(x, "adaptiveAvgPool2d"), p);
  }
  adaptiveAvgPool2dBackward(dy: Storage, p: AdaptivePool2dParams): Storage {
    return adaptiveAvgPool2dBackwardGpu(
      this.runtime,
      this.#float(dy, "adaptiveAvgPool2d backward"),
      p,
    );
  }

  // ---- normalization, regularization ----
  lrnForward(x: Storage, p: LrnParams): Storage {
    return lrnForwardGpu(this.runtime, this.#float(x, "localResponseNorm"), p);
  }
  lrnBackward(x: Storage, dy: Storage, p: LrnParams): Storage {
    return lrnBackwardGpu(
      this.runtime,
      this.#float(x, "localResponseNorm backward"),
      this.#float(dy, "localResponseNorm backward"),
      p,
    );
  }
  dropout(x: Storage, p: number, seed: number): Storage {
    return dropoutGpu(this.runtime, this.#float(x, "dropout"), p, seed);
  }

  // ---- softmax and loss ----
  softmax(x: Storage, rows: number, cols: number): Storage {
    return softmaxGpu(this.runtime, this.#float(x, "softmax"), rows, cols);
  }
  softmaxBackward(y: Storage, dy: Storage, rows: number, cols: number): Storage {
    return softmaxBackwardGpu(
      this.runtime,
      this.#float(y, "softmax backward"),
      this.#float(dy, "softmax backward"),
      rows,
      cols,
    );
  }
  logSoftmax(x: Storage, rows: number, cols: number): Storage {
    return logSoftmaxGpu(this.runtime, this.#float(x, "logSoftmax"), rows, cols);
  }
  logSoftmaxBackward(y: Storage, dy: Storage, rows: number, cols: number): Storage {
    return logSoftmaxBackwardGpu(
      this.runtime,
      this.#float(y, "logSoftmax backward"),
      this.#float(dy, "logSoftmax backward"),
      rows,
      cols,
    );
  }
  crossEntropy(logits: Storage, labels: Storage, rows: number, cols: number): Storage {
    return crossEntropyGpu(
      this.runtime,
      this.#float(logits, "crossEntropy"),
      this.#labels(labels),
      rows,
      cols,
    );
  }
  crossEntropyBackward(
    logits: Storage,
    labels: Storage,
    dLoss: Storage,
    rows: number,
    cols: number,
  ): Storage {
    const what = "crossEntropy backward";
    return crossEntropyBackwardGpu(
      this.runtime,
      this.#float(logits, what),
      this.#labels(labels),
      this.#float(dLoss, what),
      rows,
      cols,
    );
  }

  #labels(labels: Storage): GpuStorage {
    const s = this.#s(labels, "crossEntropy");
    if (s.dtype !== "int32") {
      throw new TypeError(`${this.name}.crossEntropy: labels must be int32, got ${s.dtype}`);
    }
    return s;
  }

  // ---- optimizer ----
  sgdUpdate(weight: Storage, grad: Storage, velocity: Storage, p: SgdParams): void {
    const what = "sgdUpdate";
    sgdUpdateGpu(
      this.runtime,
      this.#float(weight, what),
      this.#float(grad, what),
      this.#float(velocity, what),
      p,
    );
  }
}
