/**
 * WGSL for the elementwise kernels: the unary table (a transcription of `UNARY` in
 * tensor/ops/elementwise.ts), affine, scalar power, the broadcasting binary operators, and
 * float32 <-> int32 casts.
 *
 * Big buffers: a tensor larger than one binding (fc6's weight and its gradient, 151 MB, over
 * lavapipe's 128 MiB binding limit) is processed in chunks, each binding aligned sub-ranges of
 * the same element span of every operand (`forEachChunk`, gpu/chunks.ts).
 *
 * @module
 */

import type { BinaryOp, DType, UnaryOp } from "../../backend/backend.ts";
import { broadcastStrides, type Shape, sizeOf, stridesOf } from "../../tensor/shape.ts";
import {
  ELEMENT_MAIN,
  type GpuKernel,
  type GpuRuntime,
  type GpuStorage,
  packParams,
  workgroupsFor,
} from "../runtime.ts";
import { forEachChunk, mapChunks } from "../chunks.ts";

/** WGSL: NaN test on the bits (`x != x` is false on Vulkan, gpu/README.md "Numerics"). */
const IS_NAN = `fn isNan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }`;

/** Largest rank the strided kernels accept (their shapes travel in a fixed uniform array). */
export const MAX_RANK = 8;

/** f(x) in WGSL, one line each, matching `UNARY[op].f`. */
export const UNARY_WGSL: Record<UnaryOp, string> = {
  neg: "-x",
  exp: "exp(x)",
  log: "log(x)",
  // NaN passes through (PyTorch); WGSL's max(x, 0) and the comparison alone may give 0.
  relu: "select(0.0, x, x > 0.0 || isNan(x))",
  // tanh through exp(-2|x|), which cannot overflow (a naive (e^2x-1)/(e^2x+1) is NaN for x > 44).
  tanh: "sign(x) * (1.0 - exp(-2.0 * abs(x))) / (1.0 + exp(-2.0 * abs(x)))",
  sigmoid: "select(exp(x) / (1.0 + exp(x)), 1.0 / (1.0 + exp(-x)), x >= 0.0)",
  sqrt: "sqrt(x)",
  abs: "abs(x)",
};

/** dy/dx in WGSL from x and y, matching `UNARY[op].df`. */
export const UNARY_DERIVATIVE_WGSL: Record<UnaryOp, string> = {
  neg: "-1.0",
  exp: "y",
  log: "1.0 / x",
  relu: "select(0.0, 1.0, x > 0.0 || isNan(x))",
  tanh: "1.0 - y * y",
  sigmoid: "y * (1.0 - y)",
  sqrt: "0.5 / y",
  abs: "sign(x)",
};

const unaryKernels = new Map<string, GpuKernel>();

function unaryKernel(op: UnaryOp): GpuKernel {
  let kernel = unaryKernels.get(op);
  if (!kernel) {
    kernel = {
      name: `unary_${op}`,
      code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;
struct Params { n: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${IS_NAN}
${ELEMENT_MAIN}
  if (i >= params.n) { return; }
  let x = xs[i];
  ys[i] = ${UNARY_WGSL[op]};
}`,
    };
    unaryKernels.set(op, kernel);
  }
  return kernel;
}

function unaryBackwardKernel(op: UnaryOp): GpuKernel {
  const key = `backward_${op}`;
  let kernel = unaryKernels.get(key);
  if (!kernel) {
    kernel = {
      name: `unary_${op}_backward`,
      code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> ys: array<f32>;
@group(0) @binding(2) var<storage, read> dys: array<f32>;
@group(0) @binding(3) var<storage, read_write> dxs: array<f32>;
struct Params { n: u32 }
@group(0) @binding(4) var<uniform> params: Params;
${IS_NAN}
${ELEMENT_MAIN}
  if (i >= params.n) { return; }
  let x = xs[i];
  let y = ys[i];
  dxs[i] = dys[i] * (${UNARY_DERIVATIVE_WGSL[op]});
}`,
    };
    unaryKernels.set(key, kernel);
  }
  return kernel;
}

/** y = op(x). */
export function unaryGpu(rt: GpuRuntime, op: UnaryOp, x: GpuStorage): GpuStorage {
  return mapChunks(rt, unaryKernel(op), x, (n) => packParams([n]));
}

/** dx = dy * op'(x) given y = op(x). */
export function unaryBackwardGpu(
  rt: GpuRuntime,
  op: UnaryOp,
  x: GpuStorage,
  y: GpuStorage,
  dy: GpuStorage,
): GpuStorage {
  const dx = rt.alloc(x.dtype, x.length);
  forEachChunk(rt, x.length, (offset, n) => {
    const r = (s: GpuStorage) => rt.range(s, offset, n);
    rt.dispatch(
      unaryBackwardKernel(op),
      [r(x), r(y), r(dy)],
      [r(dx)],
      packParams([n]),
      workgroupsFor(n),
    );
  });
  return dx;
}

const affineKernel: GpuKernel = {
  name: "affine",
  code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;
struct Params { n: u32, scale: f32, shift: f32 }
@group(0) @binding(2) var<uniform> params: Params;
${ELEMENT_MAIN}
  if (i >= params.n) { return; }
  ys[i] = xs[i] * params.scale + params.shift;
}`,
};

/** y = x * scale + shift. */
export function affineGpu(rt: GpuRuntime, x: GpuStorage, scale: number, shift: number): GpuStorage {
  return mapChunks(rt, affineKernel, x, (n) => packParams([n, { f32: scale }, { f32: shift }]));
}

// JS `**` semantics: x ** 0 is 1 (even for NaN), integer exponents work for negative bases
// (by repeated squaring, exact like JS up to float32 rounding), a negative base with a
// fractional exponent is NaN, 0 to a negative fractional power is +Inf. WGSL's pow(x, e) is
// exp2(e * log2(x)): undefined for x < 0, and for x = 0 with e <= 0.
const powKernel: GpuKernel = {
  name: "pow_scalar",
  code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;
struct Params { n: u32, exponent: f32, isInteger: u32, magnitude: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${ELEMENT_MAIN}
  if (i >= params.n) { return; }
  let x = xs[i];
  let e = params.exponent;
  var y: f32;
  if (e == 0.0) {
    y = 1.0;
  } else if (params.isInteger == 1u) {
    var base = x;
    var bits = params.magnitude;
    var product = 1.0;
    loop {
      if ((bits & 1u) == 1u) { product = product * base; }
      bits = bits >> 1u;
      if (bits == 0u) { break; }
      base = base * base;
    }
    y = select(product, 1.0 / product, e < 0.0);
  } else if (x < 0.0) {
    // NaN from a variable's bits: a constant NaN is a compile error on Tint.
    var nanBits = 0x7fc00000u;
    y = bitcast<f32>(nanBits);
  } else if (x == 0.0) {
    // WGSL's pow is undefined at 0 for e <= 0: 0 ** e is 0 for e > 0 and +Inf for e < 0.
    var infBits = 0x7f800000u;
    y = select(bitcast<f32>(infBits), 0.0, e > 0.0);
  } else {
    y = pow(x, e);
  }
  ys[i] = y;
}`,
};

/** y = x ** exponent with JS semantics for negative bases. */
export function powScalarGpu(rt: GpuRuntime, x: GpuStorage, exponent: number): GpuStorage {
  // Repeated squaring for |e| < 2^31 integers; larger ones overflow float32 anyway.
  const isInteger = Number.isInteger(exponent) && Math.abs(exponent) < 2 ** 31;
  return mapChunks(
    rt,
    powKernel,
    x,
    (n) =>
      packParams([n, { f32: exponent }, isInteger ? 1 : 0, isInteger ? Math.abs(exponent) : 0]),
  );
}

// ---- binary operators with broadcasting -------------------------------------------------------

const BINARY_WGSL: Record<BinaryOp, string> = {
  add: "a + b",
  sub: "a - b",
  mul: "a * b",
  div: "a / b",
  // A comparison with NaN is false, except ne (IEEE, PyTorch). Vulkan may compile comparisons
  // as if NaN never occurs, so the float kernels test it on the bits (\`unordered\`).
  eq: "select(ZERO, ONE, a == b && !unordered(a, b))",
  ne: "select(ZERO, ONE, a != b || unordered(a, b))",
  gt: "select(ZERO, ONE, a > b && !unordered(a, b))",
  ge: "select(ZERO, ONE, a >= b && !unordered(a, b))",
  lt: "select(ZERO, ONE, a < b && !unordered(a, b))",
  le: "select(ZERO, ONE, a <= b && !unordered(a, b))",
};

/** WGSL `unordered(a, b)`: whether either is NaN (never, for int32). */
function unorderedWgsl(t: "i32" | "f32"): string {
  return t === "i32"
    ? "fn unordered(a: i32, b: i32) -> bool { return false; }"
    : `${IS_NAN}\nfn unordered(a: f32, b: f32) -> bool { return isNan(a) || isNan(b); }`;
}

/**
 * Shapes for strided kernels, packed as u32 words after a 4-word header: `shape`, then each
 * operand's strides (0 along broadcast axes), MAX_RANK words each.
 */
function packStrided(
  header: number[],
  shape: Shape,
  strides: readonly (readonly number[])[],
): ArrayBuffer {
  if (shape.length > MAX_RANK) {
    throw new RangeError(
      `gpu: rank ${shape.length} exceeds the GPU kernels' maximum of ${MAX_RANK}`,
    );
  }
  const words = [...header, 0, 0, 0, 0].slice(0, 4);
  const pad = (xs: readonly number[]) => [...xs, ...new Array(MAX_RANK - xs.length).fill(0)];
  words.push(...pad(shape));
  for (const s of strides) words.push(...pad(s));
  return packParams(words);
}

/** WGSL: the params struct of a strided kernel with `operands` stride arrays. */
function stridedParams(operands: number): string {
  return `struct Params { n: u32, rank: u32, base: u32, pad: u32, words: array<vec4u, ${
    (1 + operands) * MAX_RANK / 4
  }> }
fn word(w: u32) -> u32 { return params.words[w / 4u][w % 4u]; }`;
}

const binaryKernels = new Map<string, GpuKernel>();

function binaryKernel(op: BinaryOp, dtype: DType): GpuKernel {
  const key = `${op}_${dtype}`;
  let kernel = binaryKernels.get(key);
  if (!kernel) {
    const t = dtype === "int32" ? "i32" : "f32";
    kernel = {
      name: `binary_${key}`,
      code: `
@group(0) @binding(0) var<storage, read> lhs: array<${t}>;
@group(0) @binding(1) var<storage, read> rhs: array<${t}>;
@group(0) @binding(2) var<storage, read_write> out: array<${t}>;
${stridedParams(2)}
@group(0) @binding(3) var<uniform> params: Params;
const ZERO = ${t}(0);
const ONE = ${t}(1);
${unorderedWgsl(t)}
${ELEMENT_MAIN}
  if (i >= params.n) { return; }
  // Walk the output multi-index from the last axis, accumulating each operand's offset.
  var rest = i;
  var ia = 0u;
  var ib = 0u;
  for (var axis = i32(params.rank) - 1; axis >= 0; axis--) {
    let size = word(u32(axis));
    let index = rest % size;
    rest = rest / size;
    ia += index * word(${MAX_RANK}u + u32(axis));
    ib += index * word(${2 * MAX_RANK}u + u32(axis));
  }
  let a = lhs[ia];
  let b = rhs[ib];
  out[i] = ${BINARY_WGSL[op]};
}`,
    };
    binaryKernels.set(key, kernel);
  }
  return kernel;
}

/** out = a op b with NumPy broadcasting to `outShape`. */
export function binaryGpu(
  rt: GpuRuntime,
  op: BinaryOp,
  a: GpuStorage,
  aShape: Shape,
  b: GpuStorage,
  bShape: Shape,
  outShape: Shape,
): GpuStorage {
  if (a.dtype !== b.dtype) {
    throw new TypeError(`gpu.binary ${op}: dtypes differ (${a.dtype} and ${b.dtype})`);
  }
  const n = sizeOf(outShape);
  const out = rt.alloc(a.dtype, n);
  const kernel = binaryKernel(op, a.dtype);
  if (a.length === n && (b.length === n || b.length === 1)) {
    // Same shape, or a scalar b: a flat rank-1 walk, chunked for big buffers.
    const strideB = b.length === n ? 1 : 0;
    forEachChunk(rt, n, (offset, count) => {
      const bBinding = strideB ? rt.range(b, offset, count) : b;
      const params = packStrided([count, 1], [count], [[1], [strideB]]);
      rt.dispatch(
        kernel,
        [rt.range(a, offset, count), bBinding],
        [rt.range(out, offset, count)],
        params,
        workgroupsFor(count),
      );
    });
    return out;
  }
  const params = packStrided([n, outShape.length], outShape, [
    broadcastStrides(aShape, outShape),
    broadcastStrides(bShape, outShape),
  ]);
  rt.dispatch(kernel, [a, b], [out], params, workgroupsFor(n));
  return out;
}

// ---- gathers: broadcastTo, permute, slice ----------------------------------------------------

const gatherKernel: GpuKernel = {
  name: "gather_strided",
  code: `
@group(0) @binding(0) var<storage, read> xs: array<u32>;
@group(0) @binding(1) var<storage, read_write> ys: array<u32>;
${stridedParams(1)}
@group(0) @binding(2) var<uniform> params: Params;
${ELEMENT_MAIN}
  if (i >= params.n) { return; }
  var rest = i;
  var source = params.base;
  for (var axis = i32(params.rank) - 1; axis >= 0; axis--) {
    let size = word(u32(axis));
    source += (rest % size) * word(${MAX_RANK}u + u32(axis));
    rest = rest / size;
  }
  ys[i] = xs[source];
}`,
};

/**
 * out[i] = x[base + Σ index_axis(i) · strides[axis]] over an output of shape `outShape`: the one
 * kernel behind broadcastTo (stride 0 on stretched axes), permute (permuted strides) and slice
 * (a base offset). It copies 32-bit words, so it serves float32 and int32 alike.
 */
export function gatherGpu(
  rt: GpuRuntime,
  x: GpuStorage,
  outShape: Shape,
  strides: readonly number[],
  base = 0,
): GpuStorage {
  const n = sizeOf(outShape);
  const out = rt.alloc(x.dtype, n);
  const params = packStrided([n, outShape.length, base], outShape, [strides]);
  rt.dispatch(gatherKernel, [x], [out], params, workgroupsFor(n));
  return out;
}

/** Repeats x of `shape` to `outShape`. */
export function broadcastToGpu(
  rt: GpuRuntime,
  x: GpuStorage,
  shape: Shape,
  outShape: Shape,
): GpuStorage {
  return gatherGpu(rt, x, outShape, broadcastStrides(shape, outShape));
}

/** The strides that read x of `shape` in the axis order `perm`. */
export function permutedStrides(shape: Shape, perm: readonly number[]): number[] {
  const strides = stridesOf(shape);
  return perm.map((p) => strides[p]);
}

// ---- casts -----------------------------------------------------------------------------------

const castKernels: Record<"float32" | "int32", GpuKernel> = {
  float32: {
    name: "cast_int32_to_float32",
    code: `
@group(0) @binding(0) var<storage, read> xs: array<i32>;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;
struct Params { n: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${ELEMENT_MAIN}
  if (i < params.n) { ys[i] = f32(xs[i]); }
}`,
  },
  // Truncation toward zero, as an Int32Array assignment does for in-range values.
  int32: {
    name: "cast_float32_to_int32",
    code: `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<i32>;
struct Params { n: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${ELEMENT_MAIN}
  if (i < params.n) { ys[i] = i32(trunc(xs[i])); }
}`,
  },
};

/** Converts float32 <-> int32 (same-type casts copy). */
export function castGpu(rt: GpuRuntime, x: GpuStorage, dtype: DType): GpuStorage {
  if (dtype === "float64") throw new TypeError("gpu: float64 is not supported; use float32");
  if (dtype === x.dtype) return gatherGpu(rt, x, [x.length], [1]);
  return mapChunks(rt, castKernels[dtype], x, (n) => packParams([n]), dtype);
}
