/**
 * Optimizers and learning-rate schedules: `SGD` with the paper's and PyTorch's update rules,
 * and `StepLR`, `ReduceLROnPlateau` (the paper's rule), `CosineAnnealing`.
 *
 * @module
 */

export {
  type HostVelocity,
  type ParamGroup,
  type ParamGroupSpec,
  SGD,
  type SgdHyperparameters,
  type SgdOptions,
  type SgdRule,
  type SgdState,
} from "./sgd.ts";
export {
  CosineAnnealing,
  type CosineAnnealingOptions,
  type LrSchedule,
  ReduceLROnPlateau,
  type ReduceLROnPlateauOptions,
  type ScheduleState,
  StepLR,
  type StepLROptions,
} from "./schedules.ts";
