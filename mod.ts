/**
 * tessera: a tensor library in plain TypeScript for Deno, small enough to read end to end.
 *
 * Tensors with reverse-mode autograd, reference kernels in plain TypeScript (device "ref"),
 * and two devices whose kernels are proven against them: WebAssembly SIMD on the CPU ("cpu")
 * and WebGPU ("gpu"); the layers and optimizer of AlexNet (Krizhevsky, Sutskever and Hinton,
 * 2012), and safetensors checkpoints.
 *
 * ```ts
 * import { conv2d, gradcheck, randn, relu, sum, tensor } from "./mod.ts";
 *
 * const x = randn([1, 3, 8, 8], { seed: 1 });
 * const w = randn([4, 3, 3, 3], { seed: 2, std: 0.1, requiresGrad: true });
 * const loss = sum(relu(conv2d(x, w, null, { padding: 1 })));
 * loss.backward();
 * console.log(w.grad!.toString()); // dL/dw, [4, 3, 3, 3]
 *
 * // The same op's backward, checked against finite differences in float64:
 * const x64 = randn([1, 3, 8, 8], { seed: 1, dtype: "float64" });
 * const w64 = randn([4, 3, 3, 3], { seed: 2, dtype: "float64" });
 * console.log(gradcheck((a, b) => conv2d(a, b, null, { padding: 1 }), [x64, w64]).message);
 * console.log(tensor([[1, 2], [3, 4]]).toString());
 * ```
 *
 * Importing this module registers the CPU backend (device "cpu", the default: WebAssembly
 * SIMD kernels, cpu/); the reference device "ref" (the plain TypeScript kernels of
 * tensor/ops/, the oracle the others are proven against) always exists; the GPU backend is
 * registered by `await initWebGPU()`.
 *
 * @module
 */

import "./cpu/mod.ts";

export {
  arange,
  type Device,
  eye,
  fromArray,
  full,
  getBackend,
  type HostArray,
  linspace,
  type NestedArray,
  ones,
  onesLike,
  rand,
  randn,
  type RandomOptions,
  registerBackend,
  Tensor,
  tensor,
  type TensorOptions,
  unregisterBackend,
  zeros,
  zerosLike,
} from "./tensor/tensor.ts";
export type { Shape } from "./tensor/shape.ts";
export {
  counterHash,
  counterUniform,
  getRngState,
  manualSeed,
  mix32,
  Rng,
  type RngState,
  setRngState,
} from "./tensor/random.ts";
export type {
  AdaptivePool2dParams,
  Backend,
  BinaryOp,
  Conv2dParams,
  DType,
  LrnParams,
  MatmulParams,
  Pool2dParams,
  ReduceOp,
  SgdParams,
  Storage,
  TypedArray,
  UnaryOp,
} from "./backend/backend.ts";
export { CpuStorage, refBackend } from "./tensor/ref.ts";
export {
  cpuBackend,
  type CpuOptions,
  cpuOptions,
  type SetCpuOptions,
  setCpuOptions,
  type SimdTier,
} from "./cpu/mod.ts";

export {
  backward,
  type BackwardOptions,
  type GraphNode,
  isGradEnabled,
  noGrad,
  scope,
  type ScopeResult,
  withGradEnabled,
} from "./tensor/autograd.ts";
export { gradcheck, type GradcheckOptions, type GradcheckResult } from "./tensor/gradcheck.ts";
export {
  checkOptions,
  declareOptions,
  type DeclareOptionsOf,
  type NoMissingKeys,
  optionRegistry,
} from "./tensor/options.ts";
export { customOp, type CustomOpDefinition, record } from "./tensor/ops/custom.ts";

export {
  abs,
  add,
  affine,
  broadcastTo,
  cast,
  div,
  eq,
  exp,
  ge,
  gt,
  le,
  log,
  lt,
  mul,
  ne,
  neg,
  pow,
  relu,
  sigmoid,
  sqrt,
  sub,
  tanh,
} from "./tensor/ops/elementwise.ts";
export { argmax, max, mean, sum, sumTo } from "./tensor/ops/reduce.ts";
export {
  concat,
  flatten,
  permute,
  reshape,
  slice,
  split,
  stack,
  transpose,
} from "./tensor/ops/layout.ts";
export { linear, matmul } from "./tensor/ops/matmul.ts";
export { conv2d, type Conv2dOptions, conv2dParams } from "./tensor/ops/conv2d.ts";
export {
  adaptiveAvgPool2d,
  avgPool2d,
  type AvgPool2dOptions,
  maxPool2d,
  type Pool2dOptions,
  type Size2d,
} from "./tensor/ops/pool.ts";
export { localResponseNorm, type LrnAlphaScaling, type LrnOptions } from "./tensor/ops/lrn.ts";
export { dropout, type DropoutOptions as DropoutOpOptions } from "./tensor/ops/dropout.ts";
export {
  crossEntropy,
  type CrossEntropyOptions,
  logSoftmax,
  softmax,
} from "./tensor/ops/softmax.ts";

export * from "./nn/mod.ts";
export * from "./optim/mod.ts";
export {
  type CheckpointMetadata,
  loadCheckpoint,
  type LoadCheckpointOptions,
  saveCheckpoint,
  type SaveCheckpointOptions,
} from "./io/checkpoint.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  type SafetensorsDtype,
  saveSafetensors,
  type TensorEntry,
} from "./io/safetensors.ts";
export { writeFileAtomic, writeTextFileAtomic } from "./io/atomic.ts";
export { loadTorch, loadTorchBytes, type LoadTorchOptions, TorchLoadError } from "./io/torch.ts";
export {
  GpuBackend,
  type GpuBinding,
  type GpuKernel,
  type GpuMemoryStats,
  gpuMemoryStats,
  type GpuRange,
  GpuRuntime,
  type GpuRuntimeOptions,
  GpuStorage,
  type GpuTextureBinding,
  initWebGPU,
  type InitWebGPUOptions,
  isWebGPUAvailable,
} from "./gpu/mod.ts";
