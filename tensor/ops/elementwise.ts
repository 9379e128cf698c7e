/**
 * Elementwise ops: one table of functions and their derivatives, and the four arithmetic
 * operators with NumPy broadcasting.
 *
 * Broadcasting backward: if `a` was stretched along an axis to meet `b`, every copy of `a`
 * contributed to the output, so dL/da sums the incoming gradient over that axis
 * (`sumTo(grad, a.shape)`).
 *
 * @module
 */

import type { BinaryOp, TypedArray, UnaryOp } from "../../backend/backend.ts";
import { type Tensor, wrap } from "../tensor.ts";
import { broadcastShapes, broadcastStrides, sameShape, type Shape, sizeOf } from "../shape.ts";
import { checkFloat, deviceOf, record } from "./op.ts";
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
  relu: { f: (x) => (x > 0 ? x : 0), df: (x) => (x > 0 ? 1 : 0) },
  tanh: { f: Math.tanh, df: (_x, y) => 1 - y * y },
  sigmoid: {
    f: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))),
    df: (_x, y) => y * (1 - y),
  },
  sqrt: { f: Math.sqrt, df: (_x, y) => 0.5 / y },
  abs: { f: Math.abs, df: (x) => Math.sign(x) },
};

/** Binary operators as scalar functions (the CPU kernels' inner loop). */
export const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  eq: (a, b) => (a === b ? 1 : 0),
};

// ---------------------------------------------------------------------------------------------
// CPU kernels

/** CPU: y[i] = f(x[i]). */
export function unaryCpu(op: UnaryOp, x: TypedArray, y: TypedArray): void {
  if (op === "relu") {
    // The hot one in every convnet: a plain loop, no call per element.
    for (let i = 0; i < x.length; i++) y[i] = x[i] > 0 ? x[i] : 0;
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
    for (let i = 0; i < x.length; i++) dx[i] = x[i] > 0 ? dy[i] : 0;
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
  const f = BINARY[op];
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
export const neg = (x: Tensor): Tensor => affine(x, -1, 0);
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

/** x * scale + shift, with dL/dx = scale * dL/dy. */
export function affine(x: Tensor, scale: number, shift: number): Tensor {
  checkFloat("affine", x);
  const backend = x.backend;
  const y = wrap(backend.affine(x.storage, scale, shift), x.shape);
  return record("affine", y, [x], (g) => [wrap(backend.affine(g.storage, scale, 0), x.shape)]);
}

/** x ** exponent, with dL/dx = exponent * x^(exponent-1) * dL/dy. */
export function pow(x: Tensor, exponent: number): Tensor {
  checkFloat("pow", x);
  const backend = x.backend;
  const y = wrap(backend.powScalar(x.storage, exponent), x.shape);
  return record("pow", y, [x], (g) => {
    const slope = wrap(backend.powScalar(x.storage, exponent - 1), x.shape);
    return [mul(affine(slope, exponent, 0), g)];
  });
}

function binaryOp(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const backend = deviceOf(op, a, b);
  if (a.dtype !== b.dtype) throw new TypeError(`${op}: dtypes differ (${a.dtype} and ${b.dtype})`);
  const outShape = sameShape(a.shape, b.shape)
    ? [...a.shape]
    : broadcastShapes(op, a.shape, b.shape);
  return wrap(backend.binary(op, a.storage, a.shape, b.storage, b.shape, outShape), outShape);
}

/**
 * a + b (broadcasting; a number is added to every element).
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
 * ```
 */
export function add(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === "number") return affine(a, 1, b);
  const y = binaryOp("add", a, b);
  return record("add", y, [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

/** a - b (broadcasting). */
export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === "number") return affine(a as Tensor, 1, -b);
  if (typeof a === "number") return affine(b, -1, a);
  const y = binaryOp("sub", a, b);
  return record("sub", y, [a, b], (g) => [sumTo(g, a.shape), sumTo(affine(g, -1, 0), b.shape)]);
}

/** a * b (broadcasting). */
export function mul(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === "number") return affine(a, b, 0);
  const y = binaryOp("mul", a, b);
  return record(
    "mul",
    y,
    [a, b],
    (g) => [sumTo(binaryOp("mul", g, b), a.shape), sumTo(binaryOp("mul", g, a), b.shape)],
  );
}

/** a / b (broadcasting). dL/db = -dL/dy * a / b^2. */
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === "number") return affine(a as Tensor, 1 / b, 0);
  if (typeof a === "number") return affine(pow(b, -1), a, 0);
  const y = binaryOp("div", a, b);
  return record("div", y, [a, b], (g) => {
    const da = binaryOp("div", g, b);
    const db = affine(binaryOp("div", binaryOp("mul", da, a), b), -1, 0);
    return [sumTo(da, a.shape), sumTo(db, b.shape)];
  });
}

/** 1 where a == b, else 0 (not differentiable). */
export function eq(a: Tensor, b: Tensor): Tensor {
  return binaryOp("eq", a, b);
}

/** Repeats `x` along size-1 (or missing leading) axes to `shape`. */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
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
