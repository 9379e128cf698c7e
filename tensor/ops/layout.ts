/**
 * Layout ops: reshape and flatten (views, no copy), permute and transpose (copies), and
 * concat / split / slice along an axis.
 *
 * Backward: a reshape's gradient is reshaped back; a permutation's is permuted by the inverse
 * permutation; a slice's is the gradient padded with zeros back to the full size; a concat's
 * is split back into the pieces.
 *
 * @module
 */

import type { TypedArray } from "../../backend/backend.ts";
import { type Tensor, wrap, zeros } from "../tensor.ts";
import { formatShape, normalizeAxis, type Shape, sizeOf, stridesOf } from "../shape.ts";
import { checkTensor, deviceOf, record } from "./op.ts";

// ---------------------------------------------------------------------------------------------
// CPU kernels

/** CPU: out = x with axes reordered by `perm` (out.shape[i] = shape[perm[i]]). */
export function permuteCpu(
  x: TypedArray,
  shape: Shape,
  perm: readonly number[],
  out: TypedArray,
): void {
  const inStrides = stridesOf(shape);
  const outShape = perm.map((p) => shape[p]);
  const strides = perm.map((p) => inStrides[p]); // input stride of each output axis
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let src = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = x[src];
    for (let axis = rank - 1; axis >= 0; axis--) {
      if (++index[axis] < outShape[axis]) {
        src += strides[axis];
        break;
      }
      index[axis] = 0;
      src -= strides[axis] * (outShape[axis] - 1);
    }
  }
}

/** CPU: copies `size` entries starting at `start` along `axis`. */
export function sliceCpu(
  x: TypedArray,
  shape: Shape,
  axis: number,
  start: number,
  size: number,
  out: TypedArray,
): void {
  const outer = sizeOf(shape.slice(0, axis));
  const inner = sizeOf(shape.slice(axis + 1));
  const rowIn = shape[axis] * inner, rowOut = size * inner;
  for (let o = 0; o < outer; o++) {
    out.set(x.subarray(o * rowIn + start * inner, o * rowIn + (start + size) * inner), o * rowOut);
  }
}

/** CPU: joins arrays along `axis`. */
export function concatCpu(
  xs: readonly TypedArray[],
  shapes: readonly Shape[],
  axis: number,
  out: TypedArray,
): void {
  const outer = sizeOf(shapes[0].slice(0, axis));
  const inner = sizeOf(shapes[0].slice(axis + 1));
  const total = shapes.reduce((n, s) => n + s[axis], 0) * inner;
  let offset = 0;
  xs.forEach((x, j) => {
    const row = shapes[j][axis] * inner;
    for (let o = 0; o < outer; o++) out.set(x.subarray(o * row, (o + 1) * row), o * total + offset);
    offset += row;
  });
}

// ---------------------------------------------------------------------------------------------
// Ops

/** Same data, new shape (one dimension may be -1 to infer it). A view: no copy. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  checkTensor("reshape", "x", x);
  if (!Array.isArray(shape as unknown)) {
    throw new TypeError(`reshape: shape must be an array of integers, got ${String(shape)}`);
  }
  const inferred = [...shape];
  if (inferred.filter((d) => d === -1).length > 1) {
    throw new RangeError(`reshape: only one dimension of ${formatShape(shape)} may be -1`);
  }
  const unknown = inferred.indexOf(-1);
  if (unknown >= 0) {
    const known = sizeOf(inferred.filter((_, i) => i !== unknown));
    if (known === 0 || x.size % known !== 0) {
      throw new RangeError(
        `reshape: cannot reshape ${formatShape(x.shape)} (${x.size} elements) to ${
          formatShape(shape)
        }`,
      );
    }
    inferred[unknown] = x.size / known;
  }
  if (sizeOf(inferred) !== x.size || inferred.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new RangeError(
      `reshape: cannot reshape ${formatShape(x.shape)} (${x.size} elements) to ${
        formatShape(shape)
      }`,
    );
  }
  const y = x.alias(inferred);
  return record("reshape", y, [x], (g) => [g.alias(x.shape)]);
}

/** Flattens axes `startAxis..` into one: [N, C, H, W] -> [N, C*H*W] by default. */
export function flatten(x: Tensor, startAxis = 1): Tensor {
  checkTensor("flatten", "x", x);
  const start = normalizeAxis("flatten", startAxis, x.rank);
  return reshape(x, [...x.shape.slice(0, start), sizeOf(x.shape.slice(start))]);
}

/** Reorders axes: out.shape[i] = x.shape[perm[i]]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  checkTensor("permute", "x", x);
  if (!Array.isArray(perm as unknown)) {
    throw new TypeError(`permute: perm must be an array of axes, got ${String(perm)}`);
  }
  const axes = perm.map((p) => normalizeAxis("permute", p, x.rank));
  if (axes.length !== x.rank || new Set(axes).size !== x.rank) {
    throw new RangeError(
      `permute: ${JSON.stringify(perm)} is not a permutation of the ${x.rank} axes of ${
        formatShape(x.shape)
      }`,
    );
  }
  const outShape = axes.map((p) => x.shape[p]);
  const y = wrap(x.backend.permute(x.storage, x.shape, axes), outShape);
  const inverse = new Array<number>(axes.length);
  axes.forEach((p, i) => (inverse[p] = i));
  return record(
    "permute",
    y,
    [x],
    (g) => [wrap(g.backend.permute(g.storage, outShape, inverse), x.shape)],
  );
}

/** Swaps two axes (the last two by default). */
export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  checkTensor("transpose", "x", x);
  const a = normalizeAxis("transpose", axis0, x.rank),
    b = normalizeAxis("transpose", axis1, x.rank);
  const perm = Array.from({ length: x.rank }, (_, i) => i);
  [perm[a], perm[b]] = [perm[b], perm[a]];
  return permute(x, perm);
}

/** `size` entries from `start` along `axis`. */
export function slice(x: Tensor, axis: number, start: number, size: number): Tensor {
  checkTensor("slice", "x", x);
  const ax = normalizeAxis("slice", axis, x.rank);
  if (
    !Number.isInteger(start) || !Number.isInteger(size) || start < 0 || size < 0 ||
    start + size > x.shape[ax]
  ) {
    throw new RangeError(
      `slice: range [${start}, ${start + size}) is outside axis ${ax} of ${formatShape(x.shape)}`,
    );
  }
  const outShape = x.shape.map((d, i) => (i === ax ? size : d));
  const y = wrap(x.backend.slice(x.storage, x.shape, ax, start, size), outShape);
  return record("slice", y, [x], (g) => {
    const pieces: Tensor[] = [];
    const pad = (n: number) =>
      zeros(x.shape.map((d, i) => (i === ax ? n : d)), { dtype: g.dtype, device: g.backend });
    if (start > 0) pieces.push(pad(start));
    pieces.push(g);
    if (start + size < x.shape[ax]) pieces.push(pad(x.shape[ax] - start - size));
    return [pieces.length === 1 ? g : concat(pieces, ax)];
  });
}

/** Joins tensors along `axis`; every other axis must match. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs as unknown)) {
    throw new TypeError(`concat: expects an array of tensors, got ${String(xs)}`);
  }
  if (xs.length === 0) throw new RangeError("concat: needs at least one tensor");
  const backend = deviceOf("concat", ...xs);
  const ax = normalizeAxis("concat", axis, xs[0].rank);
  for (const x of xs) {
    if (x.dtype !== xs[0].dtype) {
      throw new TypeError(
        `concat: dtypes differ (${xs[0].dtype} and ${x.dtype}); convert with cast(x, "${
          xs[0].dtype
        }")`,
      );
    }
    if (x.rank !== xs[0].rank || x.shape.some((d, i) => i !== ax && d !== xs[0].shape[i])) {
      throw new RangeError(
        `concat: shapes ${
          xs.map((t) => formatShape(t.shape)).join(", ")
        } differ outside axis ${ax}`,
      );
    }
  }
  const outShape = xs[0].shape.map((
    d,
    i,
  ) => (i === ax ? xs.reduce((n, t) => n + t.shape[ax], 0) : d));
  const y = wrap(backend.concat(xs.map((t) => t.storage), xs.map((t) => t.shape), ax), outShape);
  return record("concat", y, [...xs], (g) => {
    let start = 0;
    return xs.map((t) => {
      const piece = slice(g, ax, start, t.shape[ax]);
      start += t.shape[ax];
      return piece;
    });
  });
}

/** Splits along `axis` into pieces of the given sizes (or `sizes` equal pieces). */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  checkTensor("split", "x", x);
  if (typeof sizes === "number" && !(Number.isInteger(sizes) && sizes > 0)) {
    throw new RangeError(`split: the number of parts must be a positive integer, got ${sizes}`);
  }
  if (typeof sizes !== "number" && !Array.isArray(sizes)) {
    throw new TypeError(
      `split: sizes must be a number of parts or an array of sizes, got ${String(sizes)}`,
    );
  }
  const ax = normalizeAxis("split", axis, x.rank);
  const list = typeof sizes === "number" ? new Array(sizes).fill(x.shape[ax] / sizes) : [...sizes];
  if (
    list.some((s) => !Number.isInteger(s) || s < 0) ||
    list.reduce((a, b) => a + b, 0) !== x.shape[ax]
  ) {
    throw new RangeError(
      `split: sizes ${JSON.stringify(sizes)} do not add up to axis ${ax} of ${
        formatShape(x.shape)
      }`,
    );
  }
  let start = 0;
  return list.map((s) => {
    const piece = slice(x, ax, start, s);
    start += s;
    return piece;
  });
}

/**
 * Joins tensors of one shape along a new axis: n tensors [A, B] stacked on axis 0 give
 * [n, A, B] (`torch.stack`). A negative axis counts from the end of the result's axes.
 */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs as unknown)) {
    throw new TypeError(`stack: expects an array of tensors, got ${String(xs)}`);
  }
  if (xs.length === 0) throw new RangeError("stack: needs at least one tensor");
  deviceOf("stack", ...xs);
  const shape = xs[0].shape;
  xs.forEach((x, i) => {
    if (x.rank !== shape.length || x.shape.some((d, j) => d !== shape[j])) {
      throw new RangeError(
        `stack: tensor ${i} has shape ${formatShape(x.shape)}, tensor 0 has ${
          formatShape(shape)
        }; all must match`,
      );
    }
  });
  const ax = normalizeAxis("stack", axis, shape.length + 1);
  const unsqueezed = [...shape.slice(0, ax), 1, ...shape.slice(ax)];
  const views = xs.map((x) => reshape(x, unsqueezed));
  const y = concat(views, ax);
  // Views share their input's memory; without a graph that needs them they go at once.
  if (!y.node) { for (const v of views) v.dispose(); }
  return y;
}
