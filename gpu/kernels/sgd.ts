/**
 * WGSL for the in-place SGD-with-momentum update: the two rules of tensor/ops/sgd.ts (stated
 * there, with the CPU kernel), line for line. Weights larger than one binding (fc6: 151 MB)
 * are updated in chunks.
 *
 * @module
 */

import type { SgdParams } from "../../backend/backend.ts";
import {
  ELEMENT_MAIN,
  type GpuKernel,
  type GpuRuntime,
  type GpuStorage,
  packParams,
  workgroupsFor,
} from "../runtime.ts";
import { forEachChunk } from "../chunks.ts";

const RULES: Record<SgdParams["rule"], string> = {
  paper: `
  let v = params.momentum * vs[i] - params.weightDecay * params.lr * w - params.lr * g;
  vs[i] = v;
  ws[i] = w + v;`,
  pytorch: `
  let v = params.momentum * vs[i] + (g + params.weightDecay * w);
  vs[i] = v;
  ws[i] = w - params.lr * v;`,
};

function sgdKernel(rule: SgdParams["rule"]): GpuKernel {
  return {
    name: `sgd_${rule}`,
    code: `
@group(0) @binding(0) var<storage, read> gs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ws: array<f32>;
@group(0) @binding(2) var<storage, read_write> vs: array<f32>;
struct Params { n: u32, lr: f32, momentum: f32, weightDecay: f32 }
@group(0) @binding(3) var<uniform> params: Params;
${ELEMENT_MAIN}
  if (i >= params.n) { return; }
  let w = ws[i];
  let g = gs[i];${RULES[rule]}
}`,
  };
}

const KERNELS = { paper: sgdKernel("paper"), pytorch: sgdKernel("pytorch") };

/** Updates `weight` and `velocity` in place. */
export function sgdUpdateGpu(
  rt: GpuRuntime,
  weight: GpuStorage,
  grad: GpuStorage,
  velocity: GpuStorage,
  p: SgdParams,
): void {
  if (weight.length !== grad.length || weight.length !== velocity.length) {
    throw new RangeError(
      `sgdUpdate: weight [${weight.length}], grad [${grad.length}] and velocity [${velocity.length}] differ`,
    );
  }
  const kernel = KERNELS[p.rule];
  if (!kernel) {
    throw new RangeError(`sgdUpdate: unknown rule "${p.rule}"; expected "paper" or "pytorch"`);
  }
  forEachChunk(rt, weight.length, (offset, n) => {
    const r = (s: GpuStorage) => rt.range(s, offset, n);
    const params = packParams([n, { f32: p.lr }, { f32: p.momentum }, { f32: p.weightDecay }]);
    rt.dispatch(kernel, [r(grad)], [r(weight), r(velocity)], params, workgroupsFor(n));
  });
}
