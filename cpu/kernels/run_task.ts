/**
 * One task of any job, on any thread: the dispatch by the descriptor's kind (tasks.ts) to the
 * gemm's and conv2d's task runners. The main thread (cpu/kernels/gemm.ts) and every worker
 * (cpu/kernels/gemm_worker.ts) run tasks through it.
 *
 * @module
 */

import { runGemmTask, runGemvTask, runSkinnyTask } from "./gemm_tasks.ts";
import { type ConvKernels, runPadTask, runPixelTask, runWeightTask } from "./conv2d_tasks.ts";
import {
  type LayerKernels,
  runBinaryTask,
  runDropoutTask,
  runLrnTask,
  runPoolTask,
  runReluTask,
  runSgdTask,
  runSumBlocksTask,
} from "./layer_tasks.ts";
import { HEADER, KINDS } from "./tasks.ts";

/** The modules a thread has instantiated on the shared memory, by name. */
export type Kernels = ConvKernels & LayerKernels;

/** Runs task t of `job` with thread `thread`'s scratch space. */
export function runTask(kernels: Kernels, job: Int32Array, t: number, thread: number): void {
  const kind = job[HEADER.kind];
  if (kind === KINDS.gemm) runGemmTask(kernels.gemm, job, t);
  else if (kind === KINDS.gemv) runGemvTask(kernels.gemm, job, t);
  else if (kind === KINDS.skinny) runSkinnyTask(kernels.gemm, job, t);
  else if (kind === KINDS.convPixels) runPixelTask(kernels, job, t, thread);
  else if (kind === KINDS.convWeight) runWeightTask(kernels, job, t, thread);
  else if (kind === KINDS.convPad) runPadTask(kernels, job, t);
  else if (kind === KINDS.relu) runReluTask(kernels, job, t);
  else if (kind === KINDS.lrn) runLrnTask(kernels, job, t, thread);
  else if (kind === KINDS.pool) runPoolTask(kernels, job, t);
  else if (kind === KINDS.sgd) runSgdTask(kernels, job, t);
  else if (kind === KINDS.binary) runBinaryTask(kernels, job, t);
  else if (kind === KINDS.dropout) runDropoutTask(kernels, job, t);
  else if (kind === KINDS.sumBlocks) runSumBlocksTask(kernels, job, t);
  else throw new Error(`cpu kernels: unknown task kind ${kind}`);
}
