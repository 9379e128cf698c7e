/**
 * The messages between the page (app.ts) and the training worker (train_worker.ts).
 *
 * @module
 */

/** Page → worker. */
export type ToWorker =
  | { type: "start"; options: TrainOptions }
  | { type: "pause" }
  | { type: "resume" }
  | { type: "predict"; pixels: Float32Array };

/** Worker → page. */
export type FromWorker =
  | { type: "ready"; device: "gpu" | "cpu"; description: string; note: string | null }
  | { type: "status"; text: string }
  | { type: "step"; step: number; loss: number; accuracy: number; imagesPerSecond: number }
  | { type: "test"; step: number; accuracy: number }
  | { type: "filters"; step: number; shape: number[]; weights: Float32Array }
  | { type: "prediction"; top: { label: string; probability: number }[] }
  | { type: "done"; steps: number }
  | { type: "error"; message: string };

/** What the page asks the worker to train (from the page's URL parameters). */
export interface TrainOptions {
  /** Images per step. */
  batchSize: number;
  /** SGD learning rate. */
  lr: number;
  /** Stop after this many steps (0: train until the page is closed). */
  maxSteps: number;
  /** Evaluate on the test images every this many steps. */
  testEvery: number;
  /** Test images used by each evaluation (the first ones, 20 per class or more). */
  testImages: number;
  /** "auto": the faster device (web/choose_device.ts); "cpu", "gpu": that one. */
  device: "auto" | "cpu" | "gpu";
}
