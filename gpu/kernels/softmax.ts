/**
 * WGSL for softmax, log-softmax and cross-entropy over the rows of a [rows, cols] matrix,
 * forward and backward (the math is in tensor/ops/softmax.ts).
 *
 * Rows up to {@link FUSED_MAX_COLS} long: one workgroup per row; its 64 invocations stride over
 * the columns (at most 64 steps each) and combine their partial maxima and sums in workgroup
 * memory (a tree of 6 steps). A row of 1000 logits then costs ~16 loads per invocation instead
 * of 3000 for one invocation per row, and the subtraction of the row maximum keeps exp() from
 * overflowing, as on the CPU.
 *
 * Longer rows: the row statistics (maximum, Σ e^(x − max), Σ dy·y, Σ dy) are tree reductions
 * over several dispatches (`reduceRowsGpu`, gpu/kernels/reduce.ts), then one elementwise pass
 * writes the result, so no invocation's loop grows with the row (gpu/README.md, "Limits").
 *
 * Labels: the cross-entropy kernels check every label against [0, cols). A bad one cannot throw
 * from inside a kernel, so the kernel writes its value into the runtime's flag words and NaN
 * into the loss; the next read (of the loss, say) throws an error that names crossEntropy, the
 * label and the number of classes (`GpuRuntime.flags`).
 *
 * @module
 */

import type { GpuKernel, GpuRuntime, GpuStorage } from "../runtime.ts";
import { ELEMENT_MAIN, packParams, WORKGROUP_INDEX, workgroupsFor } from "../runtime.ts";
import { IS_NAN_WGSL, reduceRowsGpu } from "./reduce.ts";

const ROW_THREADS = 64;

/** Longest row of the one-workgroup-per-row kernels: each invocation loops at most 64 times. */
export const FUSED_MAX_COLS = ROW_THREADS * 64;

/** The runtime flag code of a label out of range. */
const LABEL_FLAG = 1;

/** The error a bad label raises at the next read: [code, label, row, cols]. */
function labelMessage(words: Int32Array): string {
  const [, label, row, cols] = words;
  return `crossEntropy: label ${label} (row ${row}) is out of range for ${cols} classes; ` +
    `labels must be integers in [0, ${cols - 1}]. The GPU checks labels inside the kernel, so ` +
    `this error comes at the first read after the batch that held the label.`;
}

/** WGSL: `checkLabel(row, label)` is true for a label in [0, cols); else it sets the flag words. */
const CHECK_LABEL = `
fn checkLabel(row: u32, label: i32, cols: u32) -> bool {
  if (label >= 0 && u32(label) < cols) { return true; }
  if (atomicExchange(&flags[0], ${LABEL_FLAG}) == 0) {
    atomicStore(&flags[1], label);
    atomicStore(&flags[2], i32(row));
    atomicStore(&flags[3], i32(cols));
  }
  return false;
}
// NaN from a variable's bits: a constant NaN is a compile error on Tint.
fn nan() -> f32 {
  var bits = 0x7fc00000u;
  return bitcast<f32>(bits);
}`;

/**
 * WGSL: `fn name(lid, value) -> f32`, every invocation's value combined in a tree in workgroup
 * memory (`combine` writes the WGSL of two operands' combine); each invocation gets the result.
 */
function workgroupReduce(name: string, combine: (a: string, b: string) => string): string {
  return `
fn ${name}(lid: u32, value: f32) -> f32 {
  scratch[lid] = value;
  workgroupBarrier();
  for (var step = ${ROW_THREADS / 2}u; step > 0u; step = step >> 1u) {
    if (lid < step) { scratch[lid] = ${combine("scratch[lid]", "scratch[lid + step]")}; }
    workgroupBarrier();
  }
  let result = scratch[0];
  workgroupBarrier();
  return result;
}`;
}

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

${IS_NAN_WGSL}
// max that lets a NaN win (WGSL's max(NaN, x) may return x), as the CPU's row maximum does.
fn maxNan(a: f32, b: f32) -> f32 { return select(select(max(a, b), b, isNan(b)), a, isNan(a)); }

${workgroupReduce("reduceMax", (a, b) => `maxNan(${a}, ${b})`)}
${workgroupReduce("reduceSum", (a, b) => `${a} + ${b}`)}

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
  for (var j = lid; j < cols; j += ${ROW_THREADS}u) { localMax = maxNan(localMax, xs[start + j]); }
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

const LABEL_BINDINGS = `
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;`;

const crossEntropyKernel = rowKernel(
  "cross_entropy",
  `${LABEL_BINDINGS}
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> flags: array<atomic<i32>, 4>;
${CHECK_LABEL}`,
  4,
  `${ROW_STATS}
  if (lid == 0u) {
    let label = labels[row];
    loss[row] = nan();
    if (checkLabel(row, label, cols)) { loss[row] = log(total) - (xs[start + u32(label)] - m); }
  }`,
);

const crossEntropyBackwardKernel = rowKernel(
  "cross_entropy_backward",
  `${LABEL_BINDINGS}
@group(0) @binding(2) var<storage, read> dLoss: array<f32>;
@group(0) @binding(3) var<storage, read_write> dxs: array<f32>;
@group(0) @binding(4) var<storage, read_write> flags: array<atomic<i32>, 4>;
${CHECK_LABEL}`,
  5,
  `${ROW_STATS}
  let label = labels[row];
  let valid = checkLabel(row, label, cols);
  let scale = dLoss[row];
  for (var j = lid; j < cols; j += ${ROW_THREADS}u) {
    let p = exp(xs[start + j] - m) / total;
    dxs[start + j] = select(nan(), (p - select(0.0, 1.0, j == u32(label))) * scale, valid);
  }`,
);

// ---- rows longer than FUSED_MAX_COLS: reductions, then one elementwise pass ----------------

/** An elementwise kernel over [rows, cols]: `body` sees `i`, `row` and the declared bindings. */
function longRowKernel(name: string, bindings: string, body: string): GpuKernel {
  return {
    name: `${name}_long_rows`,
    code: `${bindings}
struct Params { n: u32, cols: u32 }
${ELEMENT_MAIN}
  if (i >= params.n) { return; }
  let row = i / params.cols;
  ${body}
}`,
  };
}

/** Bindings `names` in order (the last read_write), then the params. */
function declare(reads: string[], write: string, extra = ""): string {
  const lines = reads.map((name, i) =>
    `@group(0) @binding(${i}) var<storage, read> ${name}: array<${
      name === "labels" ? "i32" : "f32"
    }>;`
  );
  lines.push(`@group(0) @binding(${reads.length}) var<storage, read_write> ${write}: array<f32>;`);
  const flags = extra ? 1 : 0;
  if (extra) {
    lines.push(
      `@group(0) @binding(${
        reads.length + 1
      }) var<storage, read_write> flags: array<atomic<i32>, 4>;`,
      extra,
    );
  }
  lines.push(`@group(0) @binding(${reads.length + 1 + flags}) var<uniform> params: Params;`);
  return lines.join("\n");
}

const LONG = {
  softmax: longRowKernel(
    "softmax",
    declare(["xs", "m", "total"], "ys"),
    "ys[i] = exp(xs[i] - m[row]) / total[row];",
  ),
  logSoftmax: longRowKernel(
    "log_softmax",
    declare(["xs", "m", "total"], "ys"),
    "ys[i] = xs[i] - m[row] - log(total[row]);",
  ),
  softmaxBackward: longRowKernel(
    "softmax_backward",
    declare(["ys", "dys", "dot"], "dxs"),
    "dxs[i] = ys[i] * (dys[i] - dot[row]);",
  ),
  logSoftmaxBackward: longRowKernel(
    "log_softmax_backward",
    declare(["ys", "dys", "total"], "dxs"),
    "dxs[i] = dys[i] - exp(ys[i]) * total[row];",
  ),
  // One invocation per row: i is the row.
  crossEntropy: longRowKernel(
    "cross_entropy",
    declare(["xs", "labels", "m", "total"], "loss", CHECK_LABEL),
    `let label = labels[i];
  loss[i] = nan();
  if (checkLabel(i, label, params.cols)) {
    loss[i] = log(total[i]) - (xs[i * params.cols + u32(label)] - m[i]);
  }`,
  ),
  crossEntropyBackward: longRowKernel(
    "cross_entropy_backward",
    declare(["xs", "labels", "dLoss", "m", "total"], "dxs", CHECK_LABEL),
    `let label = labels[row];
  let column = i % params.cols;
  let valid = checkLabel(row, label, params.cols);
  let p = exp(xs[i] - m[row]) / total[row];
  dxs[i] = select(nan(), (p - select(0.0, 1.0, column == u32(label))) * dLoss[row], valid);`,
  ),
};

/** Row maximum and Σ e^(x − max) of x [rows, cols], as [rows] storages. */
function rowStats(rt: GpuRuntime, x: GpuStorage, r: number, c: number): [GpuStorage, GpuStorage] {
  const m = reduceRowsGpu(rt, "max", x, r, c);
  return [m, reduceRowsGpu(rt, "sum", x, r, c, { kind: "expShift", shift: m })];
}

/** Runs a long-row kernel over `n` invocations, then frees the temporaries. */
function longRows(
  rt: GpuRuntime,
  kernel: GpuKernel,
  inputs: GpuStorage[],
  outputs: GpuStorage[],
  n: number,
  cols: number,
  temporaries: GpuStorage[],
): GpuStorage {
  rt.dispatch(kernel, inputs, outputs, packParams([n, cols]), workgroupsFor(n));
  for (const t of temporaries) rt.free(t);
  return outputs[0];
}

function rows(
  rt: GpuRuntime,
  kernel: GpuKernel,
  inputs: GpuStorage[],
  outputs: GpuStorage[],
  r: number,
  c: number,
) {
  rt.dispatch(kernel, inputs, outputs, packParams([r, c]), r);
  return outputs[0];
}

function labelFlags(rt: GpuRuntime): GpuStorage {
  return rt.flags(LABEL_FLAG, labelMessage);
}

/** Softmax of each row of x [rows, cols]. */
export function softmaxGpu(rt: GpuRuntime, x: GpuStorage, r: number, c: number): GpuStorage {
  const y = rt.alloc("float32", x.length);
  if (c <= FUSED_MAX_COLS) return rows(rt, softmaxKernel, [x], [y], r, c);
  const [m, total] = rowStats(rt, x, r, c);
  return longRows(rt, LONG.softmax, [x, m, total], [y], r * c, c, [m, total]);
}

/** dx = y (dy − Σ dy·y) per row. */
export function softmaxBackwardGpu(
  rt: GpuRuntime,
  y: GpuStorage,
  dy: GpuStorage,
  r: number,
  c: number,
): GpuStorage {
  const dx = rt.alloc("float32", y.length);
  if (c <= FUSED_MAX_COLS) return rows(rt, softmaxBackwardKernel, [y, dy], [dx], r, c);
  const dot = reduceRowsGpu(rt, "sum", dy, r, c, { kind: "product", other: y });
  return longRows(rt, LONG.softmaxBackward, [y, dy, dot], [dx], r * c, c, [dot]);
}

/** log softmax of each row. */
export function logSoftmaxGpu(rt: GpuRuntime, x: GpuStorage, r: number, c: number): GpuStorage {
  const y = rt.alloc("float32", x.length);
  if (c <= FUSED_MAX_COLS) return rows(rt, logSoftmaxKernel, [x], [y], r, c);
  const [m, total] = rowStats(rt, x, r, c);
  return longRows(rt, LONG.logSoftmax, [x, m, total], [y], r * c, c, [m, total]);
}

/** dx = dy − e^y Σ dy per row. */
export function logSoftmaxBackwardGpu(
  rt: GpuRuntime,
  y: GpuStorage,
  dy: GpuStorage,
  r: number,
  c: number,
): GpuStorage {
  const dx = rt.alloc("float32", y.length);
  if (c <= FUSED_MAX_COLS) return rows(rt, logSoftmaxBackwardKernel, [y, dy], [dx], r, c);
  const total = reduceRowsGpu(rt, "sum", dy, r, c);
  return longRows(rt, LONG.logSoftmaxBackward, [y, dy, total], [dx], r * c, c, [total]);
}

/** Per-row loss −log softmax(logits)[label], [rows]; a label outside [0, cols) raises at the next read. */
export function crossEntropyGpu(
  rt: GpuRuntime,
  logits: GpuStorage,
  labels: GpuStorage,
  r: number,
  c: number,
): GpuStorage {
  const loss = rt.alloc("float32", r);
  const flags = labelFlags(rt);
  if (c <= FUSED_MAX_COLS) {
    return rows(rt, crossEntropyKernel, [logits, labels], [loss, flags], r, c);
  }
  const [m, total] = rowStats(rt, logits, r, c);
  return longRows(rt, LONG.crossEntropy, [logits, labels, m, total], [loss, flags], r, c, [
    m,
    total,
  ]);
}

/** dlogits = (softmax(logits) − onehot(label)) · dLoss[row]; labels checked as in the forward. */
export function crossEntropyBackwardGpu(
  rt: GpuRuntime,
  logits: GpuStorage,
  labels: GpuStorage,
  dLoss: GpuStorage,
  r: number,
  c: number,
): GpuStorage {
  const dx = rt.alloc("float32", logits.length);
  const flags = labelFlags(rt);
  if (c <= FUSED_MAX_COLS) {
    return rows(rt, crossEntropyBackwardKernel, [logits, labels, dLoss], [dx, flags], r, c);
  }
  const [m, total] = rowStats(rt, logits, r, c);
  const inputs = [logits, labels, dLoss, m, total];
  return longRows(rt, LONG.crossEntropyBackward, inputs, [dx, flags], r * c, c, [m, total]);
}
