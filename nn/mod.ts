/**
 * Neural-network building blocks, PyTorch style: `Module`, the layers AlexNet needs,
 * `Sequential`, initialisers (`init.*`) and the `summary()` table.
 *
 * @module
 */

export { type HostTensor, type LoadStateDictOptions, Module, parameter } from "./module.ts";
export {
  AdaptiveAvgPool2d,
  AvgPool2d,
  Conv2d,
  type Conv2dLayerOptions,
  Dropout,
  type DropoutOptions,
  Flatten,
  Identity,
  Linear,
  LocalResponseNorm,
  type LocalResponseNormOptions,
  MaxPool2d,
  Pool2d,
  type Pool2dLayerOptions,
  ReLU,
  type Size2,
  Tanh,
  type WeightOptions,
} from "./layers.ts";
export { Sequential } from "./sequential.ts";
export * as init from "./init.ts";
export type { RandomSource } from "./init.ts";
export { buildSummary, formatCount, type SummaryReport, type SummaryRow } from "./summary.ts";
