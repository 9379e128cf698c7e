/**
 * Shape arithmetic shared by every op: sizes, strides, broadcasting and axis normalization.
 *
 * @module
 */

/** A tensor's shape, outermost axis first ([N, C, H, W] for images). */
export type Shape = readonly number[];

/** Number of elements of a shape (1 for a scalar `[]`). */
export function sizeOf(shape: Shape): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}

/** Row-major strides, in elements. */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

/** `[2,3]` style rendering for error messages. */
export function formatShape(shape: Shape): string {
  return `[${shape.join(",")}]`;
}

/** Throws unless `shape` is an array of non-negative integers. */
export function checkShape(op: string, shape: Shape): void {
  if (!Array.isArray(shape as unknown)) {
    throw new TypeError(`${op}: shape must be an array of integers, got ${String(shape)}`);
  }
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new RangeError(
        `${op}: invalid shape ${formatShape(shape)}: dimensions must be non-negative integers`,
      );
    }
  }
}

/** True when two shapes are equal. */
export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * NumPy broadcasting: align trailing axes; each pair must be equal or contain a 1.
 * Throws `op: cannot broadcast [2,3] with [4,3]` otherwise.
 */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  checkShape(op, a);
  checkShape(op, b);
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(`${op}: cannot broadcast ${formatShape(a)} with ${formatShape(b)}`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/**
 * Strides for reading a tensor of `shape` as if it had `outShape`: broadcast axes (size 1 or
 * missing) get stride 0.
 */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const own = stridesOf(shape);
  const offset = outShape.length - shape.length;
  return outShape.map((_, i) => {
    const axis = i - offset;
    return axis < 0 || shape[axis] === 1 ? 0 : own[axis];
  });
}

/**
 * Resolves a possibly negative axis against `rank` (-1 is the last, as in PyTorch), naming
 * the op, the axis and the valid range on error.
 */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  if (typeof axis !== "number" || !Number.isInteger(axis) || axis < -rank || axis >= rank) {
    const range = rank === 0 ? "a scalar has no axes" : `valid axes are ${-rank}..${rank - 1}`;
    throw new RangeError(
      `${op}: axis ${String(axis)} is out of range for a tensor of rank ${rank} (${range})`,
    );
  }
  return axis < 0 ? axis + rank : axis;
}

/** Resolves `axes` (undefined = all), sorted; an axis named twice is an error. */
export function normalizeAxes(
  op: string,
  axes: number | readonly number[] | undefined,
  rank: number,
): number[] {
  if (axes === undefined || axes === null) return Array.from({ length: rank }, (_, i) => i);
  if (typeof axes !== "number" && !Array.isArray(axes)) {
    throw new TypeError(`${op}: axes must be a number or an array of numbers, got ${typeof axes}`);
  }
  const list = typeof axes === "number" ? [axes] : axes;
  const out = list.map((a) => normalizeAxis(op, a, rank));
  if (new Set(out).size !== out.length) {
    throw new RangeError(`${op}: axes ${JSON.stringify(axes)} name the same axis twice`);
  }
  return out.sort((x, y) => x - y);
}
