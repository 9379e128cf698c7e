/**
 * WGSL for softmax, log-softmax and cross-entropy over the rows of a [rows, cols] matrix,
 * forward and backward (the math is in tensor/ops/softmax.ts).
 *
 * One workgroup per row: its 64 invocations stride over the columns and combine their partial
 * maxima and sums in workgroup memory (a tree of 6 steps). A row of 1000 logits then costs
 * ~16 loads per invocation instead of 3000 for one invocation per row, and the subtraction of
 * the row maximum keeps exp() from overflowing, as on the CPU.
 *
 * @module
 */

import type { GpuKernel, GpuRuntime, GpuStorage } from "../runtime.ts";
import { packParams, WORKGROUP_INDEX } from "../runtime.ts";

const ROW_THREADS = 64;

/** Builds a row kernel: `bindings` declares the buffers, `body` uses `row`, `lid` and the reducers. */
function rowKernel(
  name: string,
  bindings: string,
  uniformBinding: number,
  body: string,
): GpuKernel {
  return {
    name,
    code: `
${bindings}
struct Params { rows: u32, cols: u32 }
@group(0) @binding(${uniformBinding}) var<uniform> params: Params;
var<workgroup> scratch: array<f32, ${ROW_THREADS}>;

fn reduceMax(lid: u32, value: f32) -> f32 {
  scratch[lid] = value;
  workgroupBarrier();
  for (var step = ${ROW_THREADS / 2}u; step > 0u; step = step >> 1u) {
    if (lid < step) { scratch[lid] = max(scratch[lid], scratch[lid + step]); }
    workgroupBarrier();
  }
  let result = scratch[0];
  workgroupBarrier();
  return result;
}

fn reduceSum(lid: u32, value: f32) -> f32 {
  scratch[lid] = value;
  workgroupBarrier();
  for (var step = ${ROW_THREADS / 2}u; step > 0u; step = step >> 1u) {
    if (lid < step) { scratch[lid] = scratch[lid] + scratch[lid + step]; }
    workgroupBarrier();
  }
  let result = scratch[0];
  workgroupBarrier();
  return result;
}

@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let row = ${WORKGROUP_INDEX};
  if (row >= params.rows) { return; }
  let cols = params.cols;
  let start = row * cols;
${body}
}`,
  };
}

// The row maximum and Σ e^(x − max) of input buffer `xs`.
const ROW_STATS = `
  // The lowest finite f32, as bits: the decimal -3.4028235e38 lies just past it, which naga
  // rounds but Tint rejects ("cannot be represented as 'f32'").
  var localMax = bitcast<f32>(0xff7fffffu);
  for (var j = lid; j < cols; j += ${ROW_THREADS}u) { localMax = max(localMax, xs[start + j]); }
  let m = reduceMax(lid, localMax);
  var localSum = 0.0;
  for (var j = lid; j < cols; j += ${ROW_THREADS}u) { localSum += exp(xs[start + j] - m); }
  let total = reduceSum(lid, localSum);`;

const XS_YS = `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;`;

const Y_DY_DX = `
@group(0) @binding(0) var<storage, read> ys: array<f32>;
@group(0) @binding(1) var<storage, read> dys: array<f32>;
@group(0) @binding(2) var<storage, read_write> dxs: array<f32>;`;

const softmaxKernel = rowKernel(
  "softmax",
  XS_YS,
  2,
  `${ROW_STATS}
  for (var j = lid; j < cols; j += ${ROW_THREADS}u) { ys[start + j] = exp(xs[start + j] - m) / total; }`,
);

const logSoftmaxKernel = rowKernel(
  "log_softmax",
  XS_YS,
  2,
  `${ROW_STATS}
  let logTotal = log(total);
  for (var j = lid; j < cols; j += ${ROW_THREADS}u) { ys[start + j] = xs[start + j] - m - logTotal; }`,
);

const softmaxBackwardKernel = rowKernel(
  "softmax_backward",
  Y_DY_DX,
  3,
  `
  var localDot = 0.0;
  for (var j = lid; j < cols; j += ${ROW_THREADS}u) { localDot += dys[start + j] * ys[start + j]; }
  let dot = reduceSum(lid, localDot);
  for (var j = lid; j < cols; j += ${ROW_THREADS}u) {
    dxs[start + j] = ys[start + j] * (dys[start + j] - dot);
  }`,
);

const logSoftmaxBackwardKernel = rowKernel(
  "log_softmax_backward",
  Y_DY_DX,
  3,
  `
  var localSum = 0.0;
  for (var j = lid; j < cols; j += ${ROW_THREADS}u) { localSum += dys[start + j]; }
  let total = reduceSum(lid, localSum);
  for (var j = lid; j < cols; j += ${ROW_THREADS}u) {
    dxs[start + j] = dys[start + j] - exp(ys[start + j]) * total;
  }`,
);

const crossEntropyKernel = rowKernel(
  "cross_entropy",
  `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;`,
  3,
  `${ROW_STATS}
  if (lid == 0u) { loss[row] = log(total) - (xs[start + u32(labels[row])] - m); }`,
);

const crossEntropyBackwardKernel = rowKernel(
  "cross_entropy_backward",
  `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read> dLoss: array<f32>;
@group(0) @binding(3) var<storage, read_write> dxs: array<f32>;`,
  4,
  `${ROW_STATS}
  let label = u32(labels[row]);
  let scale = dLoss[row];
  for (var j = lid; j < cols; j += ${ROW_THREADS}u) {
    let p = exp(xs[start + j] - m) / total;
    dxs[start + j] = (p - select(0.0, 1.0, j == label)) * scale;
  }`,
);

function rows(
  rt: GpuRuntime,
  kernel: GpuKernel,
  inputs: GpuStorage[],
  out: GpuStorage,
  r: number,
  c: number,
) {
  rt.dispatch(kernel, inputs, [out], packParams([r, c]), r);
  return out;
}

/** Softmax of each row of x [rows, cols]. */
export function softmaxGpu(rt: GpuRuntime, x: GpuStorage, r: number, c: number): GpuStorage {
  return rows(rt, softmaxKernel, [x], rt.alloc("float32", x.length), r, c);
}

/** dx = y (dy − Σ dy·y) per row. */
export function softmaxBackwardGpu(
  rt: GpuRuntime,
  y: GpuStorage,
  dy: GpuStorage,
  r: number,
  c: number,
): GpuStorage {
  return rows(rt, softmaxBackwardKernel, [y, dy], rt.alloc("float32", y.length), r, c);
}

/** log softmax of each row. */
export function logSoftmaxGpu(rt: GpuRuntime, x: GpuStorage, r: number, c: number): GpuStorage {
  return rows(rt, logSoftmaxKernel, [x], rt.alloc("float32", x.length), r, c);
}

/** dx = dy − e^y Σ dy per row. */
export function logSoftmaxBackwardGpu(
  rt: GpuRuntime,
  y: GpuStorage,
  dy: GpuStorage,
  r: number,
  c: number,
): GpuStorage {
  return rows(rt, logSoftmaxBackwardKernel, [y, dy], rt.alloc("float32", y.length), r, c);
}

/** Per-row loss −log softmax(logits)[label], [rows]. */
export function crossEntropyGpu(
  rt: GpuRuntime,
  logits: GpuStorage,
  labels: GpuStorage,
  r: number,
  c: number,
): GpuStorage {
  return rows(rt, crossEntropyKernel, [logits, labels], rt.alloc("float32", r), r, c);
}

/** dlogits = (softmax(logits) − onehot(label)) · dLoss[row]. */
export function crossEntropyBackwardGpu(
  rt: GpuRuntime,
  logits: GpuStorage,
  labels: GpuStorage,
  dLoss: GpuStorage,
  r: number,
  c: number,
): GpuStorage {
  return rows(
    rt,
    crossEntropyBackwardKernel,
    [logits, labels, dLoss],
    rt.alloc("float32", logits.length),
    r,
    c,
  );
}
