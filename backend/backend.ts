/**
 * The backend contract: every kernel, forward and backward, that a device must provide.
 *
 * Autograd (`tensor/autograd.ts`) and the ops in `tensor/ops/` are written once
 * against this interface, so the same graph runs on the reference device (`tensor/ref.ts`),
 * the CPU backend (`cpu/backend.ts`) or the WebGPU backend (`gpu/backend.ts`), and gradients on the GPU are
 * computed by GPU kernels. Adding a backend means implementing this list and nothing else.
 *
 * Kernels take {@link Storage} handles (flat, contiguous, row-major memory owned by the
 * backend) plus the shapes they need, and return new storage; none of them reads data back
 * to the host, so a GPU backend can queue a whole training step without waiting.
 *
 * @module
 */

/** Element types. `float64` exists on the CPU for gradient checks; `int32` holds labels and indices. */
export type DType = "float32" | "float64" | "int32";

/** The host array type that holds each {@link DType}. */
export type TypedArray = Float32Array | Float64Array | Int32Array;

/** Flat device memory: `length` elements of `dtype`. Each backend subclasses it. */
export interface Storage {
  /** The backend that owns this memory. */
  readonly backend: Backend;
  /** Element type. */
  readonly dtype: DType;
  /** Number of elements. */
  readonly length: number;
  /**
   * The host array holding the elements, when the backend keeps its memory on the host (the
   * CPU) so it can be read synchronously; writes to it change the tensor. Absent on devices.
   */
  readonly data?: TypedArray;
}

/** Elementwise functions of one argument; each has a derivative in {@link Backend.unaryBackward}. */
export type UnaryOp = "neg" | "exp" | "log" | "relu" | "tanh" | "sigmoid" | "sqrt" | "abs";

/**
 * Elementwise functions of two arguments, with NumPy broadcasting. The comparisons (`eq`,
 * `ne`, `gt`, `ge`, `lt`, `le`) yield 1 or 0 in the inputs' dtype.
 */
export type BinaryOp = "add" | "sub" | "mul" | "div" | "eq" | "ne" | "gt" | "ge" | "lt" | "le";

/** Reductions over a set of axes; the reduced axes are kept with size 1. */
export type ReduceOp = "sum" | "max";

/** A batched matrix product `C[b] = op(A[b]) · op(B[b])`, row-major. */
export interface MatmulParams {
  /** Number of products. */
  batch: number;
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(A), rows of op(B). */
  k: number;
  /** Columns of op(B) and C. */
  n: number;
  /** A is stored [k, m] and used transposed. */
  transA: boolean;
  /** B is stored [n, k] and used transposed. */
  transB: boolean;
  /** Elements between consecutive A matrices: m*k, or 0 to reuse one A for every batch. */
  strideA: number;
  /** Elements between consecutive B matrices: k*n, or 0 to reuse one B for every batch. */
  strideB: number;
}

/** Every size a conv2d kernel needs, validated and derived once by `conv2dParams` (tensor/ops/conv2d.ts). */
export interface Conv2dParams {
  /** Batch size N. */
  n: number;
  /** Input channels C (all groups together). */
  c: number;
  /** Input height H. */
  h: number;
  /** Input width W. */
  w: number;
  /** Output channels O (all groups together). */
  o: number;
  /** Kernel height KH. */
  kh: number;
  /** Kernel width KW. */
  kw: number;
  /** Vertical stride. */
  strideH: number;
  /** Horizontal stride. */
  strideW: number;
  /** Zero padding added above and below. */
  padH: number;
  /** Zero padding added left and right. */
  padW: number;
  /** Channel groups G: output channel block g sees only input channel block g. */
  groups: number;
  /** Output height H' = floor((H + 2·padH − KH) / strideH) + 1. */
  outH: number;
  /** Output width W' = floor((W + 2·padW − KW) / strideW) + 1. */
  outW: number;
  /** Vertical dilation (>= 1): kernel row i reads input row oh*strideH - padH + i*dilationH. */
  dilationH: number;
  /** Horizontal dilation (>= 1). */
  dilationW: number;
}

/** A 2-D pooling window over [N, C, H, W] input. */
export interface Pool2dParams {
  /** Batch size. */
  n: number;
  /** Channels. */
  c: number;
  /** Input height. */
  h: number;
  /** Input width. */
  w: number;
  /** Window height. */
  kh: number;
  /** Window width. */
  kw: number;
  /** Vertical stride. */
  strideH: number;
  /** Horizontal stride. */
  strideW: number;
  /** Implicit padding at top and bottom (never selected by max, counted as zeros by avg). */
  padH: number;
  /** Implicit padding at left and right. */
  padW: number;
  /** Output height. */
  outH: number;
  /** Output width. */
  outW: number;
  /** Average pooling: whether padded cells count in the divisor (PyTorch's count_include_pad). */
  countIncludePad: boolean;
}

/** Adaptive average pooling of [N, C, H, W] to [N, C, outH, outW] (PyTorch's bins). */
export interface AdaptivePool2dParams {
  /** Batch size. */
  n: number;
  /** Channels. */
  c: number;
  /** Input height. */
  h: number;
  /** Input width. */
  w: number;
  /** Output height. */
  outH: number;
  /** Output width. */
  outW: number;
}

/**
 * Local response normalization across channels of [N, C, H, W]:
 * `y[c] = x[c] / (k + alpha * sum_{j in window(c)} x[j]^2)^beta`,
 * window(c) = [c - floor(size/2), c + floor((size-1)/2)] clipped to [0, C).
 * `alpha` here is the coefficient of each squared term (the ops layer converts conventions).
 */
export interface LrnParams {
  /** Batch size. */
  n: number;
  /** Channels. */
  c: number;
  /** Height. */
  h: number;
  /** Width. */
  w: number;
  /** Channels in the window. */
  size: number;
  /** Coefficient of each squared term. */
  alpha: number;
  /** Exponent. */
  beta: number;
  /** Additive constant. */
  k: number;
}

/** One SGD-with-momentum update, applied in place. */
export interface SgdParams {
  /** Learning rate. */
  lr: number;
  /** Momentum coefficient (0 disables momentum; the velocity is then unused). */
  momentum: number;
  /** L2 weight decay coefficient. */
  weightDecay: number;
  /** Krizhevsky et al.'s rule or PyTorch's: both are stated in tensor/ops/sgd.ts. */
  rule: "paper" | "pytorch";
}

/** Everything a device must implement. Every kernel returns fresh storage unless it says "in place". */
export interface Backend {
  /** Device name used by `tensor.to(name)`. */
  readonly name: string;

  // ---- memory ----
  /** Copies host data into new device storage. */
  fromArray(data: TypedArray): Storage;
  /** New storage with every element set to `value`. */
  full(length: number, value: number, dtype: DType): Storage;
  /** Overwrites `target` with host data of the same length (in place). */
  write(target: Storage, data: TypedArray): void;
  /** Reads storage back to a fresh host array. */
  read(source: Storage): Promise<TypedArray>;
  /** Releases storage; using it afterwards is an error. */
  free(storage: Storage): void;
  /** Converts to another element type. */
  cast(x: Storage, dtype: DType): Storage;

  // ---- elementwise ----
  /** y = op(x). */
  unary(op: UnaryOp, x: Storage): Storage;
  /** dx = dy * op'(x), given x, y = op(x) and dy. */
  unaryBackward(op: UnaryOp, x: Storage, y: Storage, dy: Storage): Storage;
  /** y = x * scale + shift. */
  affine(x: Storage, scale: number, shift: number): Storage;
  /** y = x ** exponent. */
  powScalar(x: Storage, exponent: number): Storage;
  /** out = a op b, where a and b broadcast to `outShape`. */
  binary(
    op: BinaryOp,
    a: Storage,
    aShape: readonly number[],
    b: Storage,
    bShape: readonly number[],
    outShape: readonly number[],
  ): Storage;
  /** Repeats x (shape `shape`, size-1 or missing leading axes) to `outShape`. */
  broadcastTo(x: Storage, shape: readonly number[], outShape: readonly number[]): Storage;

  // ---- reductions and layout ----
  /** Reduces `axes` of x; the result has those axes with size 1. */
  reduce(op: ReduceOp, x: Storage, shape: readonly number[], axes: readonly number[]): Storage;
  /** Index of the largest element of each row of a [rows, cols] matrix (int32). */
  argmax(x: Storage, rows: number, cols: number): Storage;
  /** Reorders axes: out.shape[i] = shape[perm[i]]. */
  permute(x: Storage, shape: readonly number[], perm: readonly number[]): Storage;
  /** The elements `start .. start+size-1` along `axis`. */
  slice(x: Storage, shape: readonly number[], axis: number, start: number, size: number): Storage;
  /** Joins tensors along `axis` (all other axes equal). */
  concat(xs: readonly Storage[], shapes: readonly (readonly number[])[], axis: number): Storage;

  // ---- linear algebra ----
  /** Batched matrix product, see {@link MatmulParams}. */
  matmul(a: Storage, b: Storage, p: MatmulParams): Storage;

  // ---- convolution ----
  /** y = conv2d(x, w) + bias, [N, O, outH, outW]. */
  conv2dForward(x: Storage, weight: Storage, bias: Storage | null, p: Conv2dParams): Storage;
  /** dL/dx, [N, C, H, W]: a transposed convolution of dy with w. */
  conv2dBackwardInput(dy: Storage, weight: Storage, p: Conv2dParams): Storage;
  /** dL/dw, [O, C/groups, KH, KW]: the correlation of x with dy summed over the batch. */
  conv2dBackwardWeight(dy: Storage, x: Storage, p: Conv2dParams): Storage;

  // ---- pooling ----
  /** Max pooling; `argmax` (int32) holds, per output, the flat index h*W+w of the winner in its plane. */
  maxPool2dForward(x: Storage, p: Pool2dParams): { y: Storage; argmax: Storage };
  /** Routes dy back to each window's winner (a gather over the windows containing each input). */
  maxPool2dBackward(dy: Storage, argmax: Storage, p: Pool2dParams): Storage;
  /** Average pooling; padded cells count as zeros in the divisor kh*kw. */
  avgPool2dForward(x: Storage, p: Pool2dParams): Storage;
  /** Spreads dy / (kh*kw) over each window. */
  avgPool2dBackward(dy: Storage, p: Pool2dParams): Storage;
  /** Adaptive average pooling: bin i spans [floor(i*H/outH), ceil((i+1)*H/outH)). */
  adaptiveAvgPool2dForward(x: Storage, p: AdaptivePool2dParams): Storage;
  /** Spreads dy evenly over each bin. */
  adaptiveAvgPool2dBackward(dy: Storage, p: AdaptivePool2dParams): Storage;

  // ---- normalization, regularization ----
  /** Local response normalization across channels. */
  lrnForward(x: Storage, p: LrnParams): Storage;
  /** dL/dx of LRN, given x and dy (the normalizer is recomputed). */
  lrnBackward(x: Storage, dy: Storage, p: LrnParams): Storage;
  /**
   * Inverted dropout: y[i] = x[i] / (1 - p) where counterUniform(seed, i) >= p, else 0.
   * Backward is the same kernel applied to dy with the same seed.
   */
  dropout(x: Storage, p: number, seed: number): Storage;

  // ---- softmax and loss ----
  /** Softmax of each row of a [rows, cols] matrix. */
  softmax(x: Storage, rows: number, cols: number): Storage;
  /** dx = y * (dy - sum(dy * y)) per row, given y = softmax(x). */
  softmaxBackward(y: Storage, dy: Storage, rows: number, cols: number): Storage;
  /** log(softmax(x)) per row, computed stably (x - max - log sum exp(x - max)). */
  logSoftmax(x: Storage, rows: number, cols: number): Storage;
  /** dx = dy - exp(y) * sum(dy) per row, given y = logSoftmax(x). */
  logSoftmaxBackward(y: Storage, dy: Storage, rows: number, cols: number): Storage;
  /** Per-row loss -log softmax(logits)[label], [rows]; labels are int32. */
  crossEntropy(logits: Storage, labels: Storage, rows: number, cols: number): Storage;
  /** dlogits = (softmax(logits) - onehot(label)) * dLoss[row]. */
  crossEntropyBackward(
    logits: Storage,
    labels: Storage,
    dLoss: Storage,
    rows: number,
    cols: number,
  ): Storage;

  // ---- optimizer ----
  /** SGD with momentum and weight decay, updating `weight` and `velocity` in place. */
  sgdUpdate(weight: Storage, grad: Storage, velocity: Storage, p: SgdParams): void;
}
