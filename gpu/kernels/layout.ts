/**
 * WGSL-backed layout kernels: permute and slice are strided gathers (gpu/kernels/elementwise.ts,
 * `gatherGpu`); concat copies each piece into its slot of the output, one dispatch per piece.
 * All of them move 32-bit words, so float32 and int32 share them.
 *
 * @module
 */

import { type Shape, sizeOf, stridesOf } from "../../tensor/shape.ts";
import {
  ELEMENT_MAIN,
  type GpuKernel,
  type GpuRuntime,
  type GpuStorage,
  packParams,
  workgroupsFor,
} from "../runtime.ts";
import { gatherGpu, permutedStrides } from "./elementwise.ts";

/** Reorders axes: out.shape[i] = shape[perm[i]]. */
export function permuteGpu(
  rt: GpuRuntime,
  x: GpuStorage,
  shape: Shape,
  perm: readonly number[],
): GpuStorage {
  return gatherGpu(rt, x, perm.map((p) => shape[p]), permutedStrides(shape, perm));
}

/** Elements `start .. start+size-1` along `axis`. */
export function sliceGpu(
  rt: GpuRuntime,
  x: GpuStorage,
  shape: Shape,
  axis: number,
  start: number,
  size: number,
): GpuStorage {
  const outShape = shape.map((d, i) => (i === axis ? size : d));
  return gatherGpu(rt, x, outShape, stridesOf(shape), start * stridesOf(shape)[axis]);
}

// x viewed as [outer, row] lands at out[o * total + offset + j].
const concatPieceKernel: GpuKernel = {
  name: "concat_piece",
  code: `
@group(0) @binding(0) var<storage, read> xs: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
struct Params { n: u32, row: u32, total: u32, offset: u32 }
@group(0) @binding(2) var<uniform> params: Params;
${ELEMENT_MAIN}
  if (i >= params.n) { return; }
  let o = i / params.row;
  out[o * params.total + params.offset + i % params.row] = xs[i];
}`,
};

/** Joins pieces along `axis` (all other axes equal). */
export function concatGpu(
  rt: GpuRuntime,
  xs: readonly GpuStorage[],
  shapes: readonly Shape[],
  axis: number,
): GpuStorage {
  const inner = sizeOf(shapes[0].slice(axis + 1));
  const total = shapes.reduce((n, s) => n + s[axis], 0) * inner;
  const out = rt.alloc(xs[0].dtype, xs.reduce((n, x) => n + x.length, 0));
  let offset = 0;
  xs.forEach((x, j) => {
    const row = shapes[j][axis] * inner;
    if (x.length > 0) {
      rt.dispatch(
        concatPieceKernel,
        [x],
        [out],
        packParams([x.length, row, total, offset]),
        workgroupsFor(x.length),
      );
    }
    offset += row;
  });
  return out;
}
