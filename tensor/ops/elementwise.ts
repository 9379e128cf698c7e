/**
 * Elementwise ops: one table of functions and their derivatives, the four arithmetic
 * operators with NumPy broadcasting (a number may stand on either side: `mul(2, x)`), the
 * comparisons (`eq`, `gt`, ...: 1 or 0) and `cast` between dtypes.
 *
 * Broadcasting backward: if `a` was stretched along an axis to meet `b`, every copy of `a`
 * contributed to the output, so dL/da sums the incoming gradient over that axis
 * (`sumTo(grad, a.shape)`).
 *
 * @module
 */

import type { BinaryOp, DType, TypedArray, UnaryOp } from "../../backend/backend.ts";
import { isHostDevice, Tensor, wrap } from "../tensor.ts";
import {
  broadcastShapes,
  broadcastStrides,
  formatShape,
  sameShape,
  type Shape,
  sizeOf,
} from "../shape.ts";
import { checkFloat, checkTensor, deviceOf, record } from "./op.ts";
import { sumTo } from "./reduce.ts";

/**
 * y = f(x) and dy/dx written with x and y, one line each. The CPU backend evaluates these
 * directly; the WGSL kernels in gpu/kernels/elementwise.ts transcribe the same table.
 */
export const UNARY: Record<
  UnaryOp,
  { f: (x: number) => number; df: (x: number, y: number) => number }
> = {
  neg: { f: (x) => -x, df: () => -1 },
  exp: { f: Math.exp, df: (_x, y) => y },
  log: { f: Math.log, df: (x) => 1 / x },
  // relu(NaN) = NaN and its gradient passes, as in PyTorch: test "x <= 0", false for NaN.
  relu: { f: (x) => (x <= 0 ? 0 : x), df: (x) => (x <= 0 ? 0 : 1) },
  tanh: { f: Math.tanh, df: (_x, y) => 1 - y * y },
  sigmoid: {
    f: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))),
    df: (_x, y) => y * (1 - y),
  },
  sqrt: { f: Math.sqrt, df: (_x, y) => 0.5 / y },
  // sign(NaN) is taken as 0 (PyTorch's sgn): |x|'s gradient at a NaN is 0.
  abs: { f: Math.abs, df: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0) },
};

/** Binary operators as scalar functions (the CPU kernels' inner loop). */
export const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
};

// ---------------------------------------------------------------------------------------------
// CPU kernels

/** CPU: y[i] = f(x[i]). */
export function unaryCpu(op: UnaryOp, x: TypedArray, y: TypedArray): void {
  if (op === "relu") {
    // The hot one in every convnet: a plain loop, no call per element.
    for (let i = 0; i < x.length; i++) y[i] = x[i] <= 0 ? 0 : x[i];
    return;
  }
  const f = UNARY[op].f;
  for (let i = 0; i < x.length; i++) y[i] = f(x[i]);
}

/** CPU: dx[i] = dy[i] * f'(x[i]) (with y = f(x) available). */
export function unaryBackwardCpu(
  op: UnaryOp,
  x: TypedArray,
  y: TypedArray,
  dy: TypedArray,
  dx: TypedArray,
): void {
  if (op === "relu") {
    for (let i = 0; i < x.length; i++) dx[i] = x[i] <= 0 ? 0 : dy[i];
    return;
  }
  const df = UNARY[op].df;
  for (let i = 0; i < x.length; i++) dx[i] = dy[i] * df(x[i], y[i]);
}

/** CPU: out = a op b with broadcasting to `outShape`. */
export function binaryCpu(
  op: BinaryOp,
  a: TypedArray,
  aShape: Shape,
  b: TypedArray,
  bShape: Shape,
  outShape: Shape,
  out: TypedArray,
): void {
  // int32 wraps around (two's complement) like PyTorch and the GPU: a + b stored in an
  // Int32Array already wraps (exact in float64 below 2^53), but a product of two int32 can
  // exceed 2^53 and lose its low bits before the store, so mul uses Math.imul.
  const f = out instanceof Int32Array && op === "mul" ? Math.imul : BINARY[op];
  const n = out.length;
  if (a.length === n && b.length === n) {
    for (let i = 0; i < n; i++) out[i] = f(a[i], b[i]);
    return;
  }
  if (a.length === n && b.length === 1) {
    const s = b[0];
    for (let i = 0; i < n; i++) out[i] = f(a[i], s);
    return;
  }
  const sa = broadcastStrides(aShape, outShape);
  const sb = broadcastStrides(bShape, outShape);
  const rank = outShape.length;
  const index = new Array<number>(rank).fill(0);
  let ia = 0, ib = 0;
  for (let i = 0; i < n; i++) {
    out[i] = f(a[ia], b[ib]);
    // Odometer increment of the multi-index, updating both source offsets.
    for (let axis = rank - 1; axis >= 0; axis--) {
      if (++index[axis] < outShape[axis]) {
        ia += sa[axis];
        ib += sb[axis];
        break;
      }
      index[axis] = 0;
      ia -= sa[axis] * (outShape[axis] - 1);
      ib -= sb[axis] * (outShape[axis] - 1);
    }
  }
}

/** CPU: repeats x of `shape` to `outShape`. */
export function broadcastToCpu(
  x: TypedArray,
  shape: Shape,
  outShape: Shape,
  out: TypedArray,
): void {
  const zero = new Float64Array(1);
  binaryCpu("add", x, shape, zero, [], outShape, out);
}

/** CPU: y = x * scale + shift. */
export function affineCpu(x: TypedArray, scale: number, shift: number, y: TypedArray): void {
  for (let i = 0; i < x.length; i++) y[i] = x[i] * scale + shift;
}

/** CPU: y = x ** exponent. */
export function powScalarCpu(x: TypedArray, exponent: number, y: TypedArray): void {
  for (let i = 0; i < x.length; i++) y[i] = x[i] ** exponent;
}

// ---------------------------------------------------------------------------------------------
// Ops

function unaryOp(op: UnaryOp, x: Tensor): Tensor {
  checkFloat(op, x);
  const backend = x.backend;
  const y = wrap(backend.unary(op, x.storage), x.shape);
  return record(
    op,
    y,
    [x],
    (g) => [wrap(backend.unaryBackward(op, x.storage, y.storage, g.storage), x.shape)],
  );
}

/** -x. */
export const neg = (x: Tensor): Tensor => scaleShift("neg", x, -1, 0);
/** e^x. */
export const exp = (x: Tensor): Tensor => unaryOp("exp", x);
/** Natural logarithm. */
export const log = (x: Tensor): Tensor => unaryOp("log", x);
/** max(x, 0). */
export const relu = (x: Tensor): Tensor => unaryOp("relu", x);
/** Hyperbolic tangent. */
export const tanh = (x: Tensor): Tensor => unaryOp("tanh", x);
/** 1 / (1 + e^-x), computed without overflow. */
export const sigmoid = (x: Tensor): Tensor => unaryOp("sigmoid", x);
/** Square root. */
export const sqrt = (x: Tensor): Tensor => unaryOp("sqrt", x);
/** |x| (derivative 0 at 0). */
export const abs = (x: Tensor): Tensor => unaryOp("abs", x);

/** `x * scale + shift` for the public op `op` (its name goes into errors and the graph). */
function scaleShift(op: string, x: Tensor, scale: number, shift: number): Tensor {
  checkFloat(op, x);
  const backend = x.backend;
  const y = wrap(backend.affine(x.storage, scale, shift), x.shape);
  return record(op, y, [x], (g) => [wrap(backend.affine(g.storage, scale, 0), x.shape)]);
}

/** x * scale + shift, with dL/dx = scale * dL/dy. */
export function affine(x: Tensor, scale: number, shift: number): Tensor {
  checkNumber("affine", "scale", scale);
  checkNumber("affine", "shift", shift);
  return scaleShift("affine", x, scale, shift);
}

/**
 * Powers. `pow(x, 3)`: x³ elementwise, with dL/dx = 3·x²·dL/dy. `pow(2, x)`: 2^x for a
 * positive number base, computed as e^(x·ln 2) (so its gradient is 2^x·ln 2·dL/dy).
 */
export function pow(x: Tensor | number, exponent: Tensor | number): Tensor {
  if (typeof x === "number") {
    checkTensor("pow", "exponent", exponent);
    if (!(x > 0) || !Number.isFinite(x)) {
      throw new RangeError(
        `pow: a number base must be positive and finite (computed as exp(exponent * log(base))), got ${x}`,
      );
    }
    return exp(scaleShift("pow", exponent, Math.log(x), 0));
  }
  checkFloat("pow", x);
  if (typeof exponent !== "number") {
    throw new TypeError(
      `pow: the exponent must be a number (got ${
        describe(exponent)
      }); for a tensor exponent and positive x use exp(mul(exponent, log(x)))`,
    );
  }
  const backend = x.backend;
  const y = wrap(backend.powScalar(x.storage, exponent), x.shape);
  return record("pow", y, [x], (g) => {
    // d(x^0)/dx = 0 everywhere, also at x = 0 where 0 · 0^-1 would be NaN (PyTorch's rule).
    if (exponent === 0) return [wrap(backend.full(x.size, 0, x.dtype), x.shape)];
    const slope = wrap(backend.powScalar(x.storage, exponent - 1), x.shape);
    return [mul(affine(slope, exponent, 0), g)];
  });
}

function describe(value: unknown): string {
  if (value instanceof Tensor) return `a Tensor ${formatShape(value.shape)}`;
  if (value === null || typeof value !== "object") return `${typeof value} ${String(value)}`;
  return value.constructor?.name ?? "object";
}

function checkNumber(op: string, name: string, value: unknown): void {
  if (typeof value !== "number") {
    throw new TypeError(`${op}: ${name} must be a number, got ${describe(value)}`);
  }
}

/**
 * The operands of a binary op: two tensors, or a tensor and a number (either side). Throws
 * naming the op and the argument for anything else.
 */
function operands(op: string, a: unknown, b: unknown): void {
  for (const [name, value] of [["a", a], ["b", b]] as const) {
    if (!(value instanceof Tensor) && typeof value !== "number") {
      throw new TypeError(`${op}: ${name} must be a Tensor or a number, got ${describe(value)}`);
    }
  }
  if (typeof a === "number" && typeof b === "number") {
    throw new TypeError(
      `${op}: at least one operand must be a Tensor (got the numbers ${a} and ${b})`,
    );
  }
}

function binaryOp(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const backend = deviceOf(op, a, b);
  if (a.dtype !== b.dtype) {
    throw new TypeError(
      `${op}: dtypes differ (${a.dtype} and ${b.dtype}); convert one with cast(x, "${a.dtype}")`,
    );
  }
  const outShape = sameShape(a.shape, b.shape)
    ? [...a.shape]
    : broadcastShapes(op, a.shape, b.shape);
  return wrap(backend.binary(op, a.storage, a.shape, b.storage, b.shape, outShape), outShape);
}

/**
 * a + b (broadcasting; a number is added to every element, on either side).
 *
 * @example Broadcasting addition
 * ```ts
 * import assert from "node:assert/strict";
 * import { add, tensor } from "../../mod.ts";
 *
 * const x = tensor([[1, 2, 3], [4, 5, 6]]);
 * const bias = tensor([10, 20, 30]); // [3] broadcasts over the rows of [2, 3]
 * assert.deepEqual([...add(x, bias).dataSync()], [11, 22, 33, 14, 25, 36]);
 * assert.deepEqual([...add(x, 1).dataSync()], [2, 3, 4, 5, 6, 7]); // a number is a scalar
 * assert.deepEqual([...add(1, x).dataSync()], [2, 3, 4, 5, 6, 7]); // on either side
 * ```
 */
export function add(a: Tensor | number, b: Tensor | number): Tensor {
  operands("add", a, b);
  if (typeof b === "number") return scaleShift("add", a as Tensor, 1, b);
  if (typeof a === "number") return scaleShift("add", b, 1, a);
  const y = binaryOp("add", a, b);
  return record("add", y, [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

/** a - b (broadcasting; either side may be a number). */
export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  operands("sub", a, b);
  if (typeof b === "number") return scaleShift("sub", a as Tensor, 1, -b);
  if (typeof a === "number") return scaleShift("sub", b, -1, a);
  const y = binaryOp("sub", a, b);
  return record("sub", y, [a, b], (g) => [sumTo(g, a.shape), sumTo(affine(g, -1, 0), b.shape)]);
}

/** a * b (broadcasting; either side may be a number). */
export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  operands("mul", a, b);
  if (typeof b === "number") return scaleShift("mul", a as Tensor, b, 0);
  if (typeof a === "number") return scaleShift("mul", b, a, 0);
  const y = binaryOp("mul", a, b);
  return record(
    "mul",
    y,
    [a, b],
    (g) => [sumTo(binaryOp("mul", g, b), a.shape), sumTo(binaryOp("mul", g, a), b.shape)],
  );
}

/** a / b (broadcasting; either side may be a number). dL/db = -dL/dy * a / b^2. */
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  operands("div", a, b);
  if (
    (a instanceof Tensor && a.dtype === "int32") || (b instanceof Tensor && b.dtype === "int32")
  ) {
    throw new TypeError(
      `div: int32 division is not supported (PyTorch's true division gives floats; truncating would be a silent change); cast to float32 first: div(cast(a, "float32"), ...)`,
    );
  }
  if (typeof b === "number") return scaleShift("div", a as Tensor, 1 / b, 0);
  if (typeof a === "number") return scaleShift("div", pow(b, -1), a, 0);
  const y = binaryOp("div", a, b);
  return record("div", y, [a, b], (g) => {
    const da = binaryOp("div", g, b);
    const db = affine(binaryOp("div", binaryOp("mul", da, a), b), -1, 0);
    return [sumTo(da, a.shape), sumTo(db, b.shape)];
  });
}

// ---------------------------------------------------------------------------------------------
// Comparisons

/**
 * `a op b` elementwise as 1 or 0 (broadcasting; either side may be a number). The result has
 * the inputs' float dtype, or float32 when they are int32 (labels, argmax indices), so that
 * its mean is an accuracy: `mean(eq(argmax(logits, 1), labels))`. Not differentiable.
 */
function compare(op: BinaryOp, a: Tensor | number, b: Tensor | number): Tensor {
  operands(op, a, b);
  const like = (a instanceof Tensor ? a : b) as Tensor;
  // An int32 tensor against a fractional number compares in float32, where the number exists.
  const fractional = [a, b].some((v) => typeof v === "number" && !Number.isInteger(v));
  const dtype: DType = like.dtype === "int32" && fractional ? "float32" : like.dtype;
  const made: Tensor[] = [];
  const asTensor = (v: Tensor | number): Tensor => {
    // Only int32 is converted (to compare with a fraction); other mismatches are errors below.
    if (v instanceof Tensor && (v.dtype === dtype || v.dtype !== "int32")) return v;
    const t = typeof v === "number" ? wrap(like.backend.full(1, v, dtype), []) : cast(v, dtype);
    made.push(t);
    return t;
  };
  const y = binaryOp(op, asTensor(a), asTensor(b));
  for (const t of made) t.dispose();
  if (y.dtype !== "int32") return y;
  const out = wrap(y.backend.cast(y.storage, "float32"), y.shape);
  y.dispose();
  return out;
}

/** 1 where a == b, else 0 (see {@link compare} for dtypes). */
export function eq(a: Tensor | number, b: Tensor | number): Tensor {
  return compare("eq", a, b);
}

/** 1 where a != b, else 0. */
export function ne(a: Tensor | number, b: Tensor | number): Tensor {
  return compare("ne", a, b);
}

/** 1 where a > b, else 0. */
export function gt(a: Tensor | number, b: Tensor | number): Tensor {
  return compare("gt", a, b);
}

/** 1 where a >= b, else 0. */
export function ge(a: Tensor | number, b: Tensor | number): Tensor {
  return compare("ge", a, b);
}

/** 1 where a < b, else 0. */
export function lt(a: Tensor | number, b: Tensor | number): Tensor {
  return compare("lt", a, b);
}

/** 1 where a <= b, else 0. */
export function le(a: Tensor | number, b: Tensor | number): Tensor {
  return compare("le", a, b);
}

// ---------------------------------------------------------------------------------------------
// Cast

/**
 * `x` converted to `dtype`, differentiable between float types (the gradient is cast back):
 * `cast(x, "float64")` runs a float32 model's input through a float64 gradient check. To
 * int32, values are truncated toward zero (not differentiable). Returns `x` itself when it
 * already has that dtype. The GPU has no float64.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkTensor("cast", "x", x);
  if (dtype !== "float32" && dtype !== "float64" && dtype !== "int32") {
    throw new TypeError(
      `cast: dtype must be "float32", "float64" or "int32", got ${JSON.stringify(dtype)}`,
    );
  }
  if (x.dtype === dtype) return x;
  const backend = x.backend;
  if (dtype === "float64" && !isHostDevice(backend)) {
    throw new TypeError(
      `cast: the ${backend.name} backend has no float64; move the tensor to the cpu first (await x.to("cpu"))`,
    );
  }
  const y = wrap(backend.cast(x.storage, dtype), x.shape);
  if (dtype === "int32") return y;
  return record("cast", y, [x], (g) => [wrap(backend.cast(g.storage, x.dtype), x.shape)]);
}

/** Repeats `x` along size-1 (or missing leading) axes to `shape`. */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  checkTensor("broadcastTo", "x", x);
  const target = broadcastShapes("broadcastTo", x.shape, shape);
  if (!sameShape(target, shape)) {
    throw new RangeError(
      `broadcastTo: cannot broadcast [${x.shape.join(",")}] to [${shape.join(",")}]`,
    );
  }
  if (sameShape(x.shape, shape)) return x;
  const y = wrap(x.backend.broadcastTo(x.storage, x.shape, shape), shape);
  return record("broadcastTo", y, [x], (g) => [sumTo(g, x.shape)]);
}

/** Number of elements after broadcasting two shapes (exported for kernels' tests). */
export function broadcastSize(a: Shape, b: Shape): number {
  return sizeOf(broadcastShapes("broadcast", a, b));
}
