/**
 * The loader's worker: rebuilds the pipeline from its spec, then answers batch requests.
 * Protocol (all plain data):
 *
 * - in `{ type: "init", images, shape, labels, spec, seed }` (images usually on a
 *   SharedArrayBuffer, so workers share one copy);
 * - in `{ type: "batch", id, epoch, indices }` → out `{ id, batch }` with the batch's
 *   buffers transferred, or `{ id, error }`.
 *
 * @module
 */

import { assembleBatch } from "./batch.ts";
import type { ImageDataset } from "./dataset.ts";
import { compose, type PipelineSpec, type Transform } from "./pipeline.ts";

/** Messages the loader sends to this worker. */
export type WorkerRequest =
  | {
    type: "init";
    images: Uint8Array;
    shape: ImageDataset["shape"];
    labels: Int32Array;
    spec: PipelineSpec;
    seed: number;
  }
  | { type: "batch"; id: number; epoch: number; indices: Int32Array };

let state:
  | {
    dataset: Pick<ImageDataset, "images" | "shape" | "labels">;
    spec: PipelineSpec;
    transform: Transform;
    seed: number;
  }
  | undefined;

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  const message = event.data;
  if (message.type === "init") {
    state = {
      dataset: { images: message.images, shape: message.shape, labels: message.labels },
      spec: message.spec,
      transform: compose(message.spec),
      seed: message.seed,
    };
    return;
  }
  try {
    if (state === undefined) throw new Error("loader worker: batch requested before init");
    const batch = assembleBatch(
      state.dataset,
      state.spec,
      state.transform,
      state.seed,
      message.epoch,
      message.indices,
    );
    self.postMessage({ id: message.id, batch }, [
      batch.images.buffer as ArrayBuffer,
      batch.labels.buffer as ArrayBuffer,
    ]);
  } catch (error) {
    self.postMessage({ id: message.id, error: (error as Error).stack ?? String(error) });
  }
};
