/**
 * DataLoader: shuffles a dataset per epoch, runs the transform pipeline on each sample and
 * packs NCHW float32 batches, optionally ahead of the training step in Web Workers.
 *
 * ```ts
 * import assert from "node:assert/strict";
 * import { DataLoader, fashionMnistSpec, loadFashionMnist } from "./mod.ts";
 *
 * const { train } = await loadFashionMnist();
 * const spec = fashionMnistSpec({ flip: true });
 * await using loader = new DataLoader(train, { batchSize: 128, spec, seed: 1, workers: 2 });
 * for await (const batch of loader.epoch(0)) {
 *   assert.deepEqual(batch.shape, [128, 1, 28, 28]); // float32 NCHW, ready for fromArray
 *   assert.equal(batch.labels.length, 128);
 *   break; // a training step would go here
 * }
 * ```
 *
 * The batches do not depend on `workers`: the order of epoch e comes from (seed, e) and the
 * augmentation of sample i from (seed, e, i) (see `batch.ts`). The paper did the same
 * overlap: "the transformed images are generated in Python code on the CPU while the GPU is
 * training on the previous batch of images" (section 4.1).
 *
 * @module
 */

import { assembleBatch, epochPermutation } from "./batch.ts";
import type { Batch, ImageDataset } from "./dataset.ts";
import { validateDataset } from "./dataset.ts";
import type { WorkerRequest } from "./loader_worker.ts";
import { compose, type PipelineSpec, type Transform } from "./pipeline.ts";
import { checkOptions, declareOptions } from "../tensor/options.ts";

const LOADER_KEYS = declareOptions<DataLoaderOptions>()("DataLoader", [
  "batchSize",
  "spec",
  "seed",
  "shuffle",
  "dropLast",
  "workers",
  "prefetch",
]);

/** Options of {@link DataLoader}. */
export interface DataLoaderOptions {
  /** Images per batch (before ten-crop views); the paper uses 128 (section 5). */
  batchSize: number;
  /** The transform pipeline as plain data; default `[]` (bytes to float32, nothing else). */
  spec?: PipelineSpec;
  /** Seed of the shuffles and augmentations; default 0. */
  seed?: number;
  /** Shuffle each epoch; default true. Off, the order is 0..N-1 (for evaluation). */
  shuffle?: boolean;
  /** Drop the last incomplete batch; default false. */
  dropLast?: boolean;
  /** Worker count; 0 (default) assembles batches in-process when asked for. */
  workers?: number;
  /** Batches requested ahead of the consumer when workers are used; default 2 per worker. */
  prefetch?: number;
}

type WorkerReply = { id: number; batch: Batch; error?: undefined } | { id: number; error: string };

interface Pending {
  resolve: (batch: Batch) => void;
  reject: (error: Error) => void;
}

/**
 * Iterates a dataset in seeded, shuffled, augmented batches. Epoch e's order comes from
 * (seed, e) and sample i's augmentation from (seed, e, i), so the batches are the same with
 * or without workers and a resumed run sees exactly the batches it would have seen. With
 * `workers > 0`, Web Workers assemble batches ahead of the training step.
 */
export class DataLoader implements AsyncDisposable {
  /** The dataset served. */
  readonly dataset: ImageDataset;
  /** Images per batch. */
  readonly batchSize: number;
  /** Seed of shuffles and augmentation. */
  readonly seed: number;
  /** Whether each epoch is shuffled. */
  readonly shuffle: boolean;
  /** Whether the last incomplete batch is dropped. */
  readonly dropLast: boolean;
  /** Number of workers (0: in-process). */
  readonly workers: number;
  /** Batches in flight ahead of the consumer. */
  readonly prefetch: number;
  /** The pipeline spec. */
  readonly spec: PipelineSpec;
  #transform: Transform;
  #pool: Worker[] = [];
  #pending = new Map<number, Pending>();
  #nextId = 0;
  #closed = false;

  /** Creates a loader; workers start on the first {@link DataLoader.epoch}. */
  constructor(dataset: ImageDataset, options: DataLoaderOptions) {
    validateDataset(dataset, "DataLoader dataset");
    if (options === undefined) {
      throw new TypeError(
        "DataLoader: expects options with at least a batch size, e.g. new DataLoader(dataset, { batchSize: 128 })",
      );
    }
    checkOptions("DataLoader", options, LOADER_KEYS);
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    }
    const workers = options.workers ?? 0;
    if (!Number.isInteger(workers) || workers < 0) {
      throw new RangeError(`DataLoader: workers must be a non-negative integer, got ${workers}`);
    }
    const prefetch = options.prefetch ?? 2 * Math.max(1, workers);
    if (!Number.isInteger(prefetch) || prefetch < 1) {
      throw new RangeError(`DataLoader: prefetch must be a positive integer, got ${prefetch}`);
    }
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.seed = (options.seed ?? 0) >>> 0;
    this.shuffle = options.shuffle ?? true;
    this.dropLast = options.dropLast ?? false;
    this.workers = workers;
    this.prefetch = prefetch;
    this.spec = options.spec ?? [];
    this.#transform = compose(this.spec);
  }

  /** Number of batches per epoch. */
  get batchesPerEpoch(): number {
    const n = this.dataset.shape[0];
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The dataset indices of each batch of epoch `epoch`, in order. */
  batchIndices(epoch: number): Int32Array[] {
    if (!Number.isInteger(epoch) || epoch < 0) {
      throw new RangeError(`DataLoader.epoch: epoch must be a non-negative integer, got ${epoch}`);
    }
    const n = this.dataset.shape[0];
    const order = this.shuffle
      ? epochPermutation(n, this.seed, epoch)
      : Int32Array.from({ length: n }, (_, i) => i);
    const batches: Int32Array[] = [];
    for (let start = 0; start < n; start += this.batchSize) {
      const end = Math.min(start + this.batchSize, n);
      if (end - start < this.batchSize && this.dropLast) break;
      batches.push(order.slice(start, end));
    }
    return batches;
  }

  /**
   * The batches of epoch `epoch` (resuming at epoch e reproduces e exactly), from batch
   * `startBatch` on: a run resumed mid-epoch sees exactly the batches it had not trained on.
   */
  async *epoch(epoch: number, startBatch = 0): AsyncGenerator<Batch> {
    if (this.#closed) throw new Error("DataLoader.epoch: the loader is closed");
    const all = this.batchIndices(epoch);
    if (!Number.isInteger(startBatch) || startBatch < 0 || startBatch > all.length) {
      throw new RangeError(
        `DataLoader.epoch: startBatch must be in [0, ${all.length}], got ${startBatch}`,
      );
    }
    const batches = all.slice(startBatch);
    if (this.workers === 0) {
      for (const indices of batches) {
        yield assembleBatch(this.dataset, this.spec, this.#transform, this.seed, epoch, indices);
      }
      return;
    }
    this.#startWorkers();
    const inFlight: Promise<Batch>[] = [];
    let next = 0;
    const request = () => {
      const promise = this.#request(next % this.workers, epoch, batches[next]);
      // An abandoned epoch may leave requests unanswered or rejected; that must not surface as
      // an unhandled rejection.
      promise.catch(() => {});
      inFlight.push(promise);
      next++;
    };
    while (next < batches.length && inFlight.length < this.prefetch) request();
    while (inFlight.length > 0) {
      const batch = await inFlight.shift()!;
      if (next < batches.length) request();
      yield batch;
    }
  }

  #startWorkers(): void {
    if (this.#pool.length > 0) return;
    // One shared copy of the pixels for all workers instead of one clone each.
    let images = this.dataset.images;
    if (!(images.buffer instanceof SharedArrayBuffer)) {
      const shared = new Uint8Array(new SharedArrayBuffer(images.length));
      shared.set(images);
      images = shared;
    }
    const url = new URL("./loader_worker.ts", import.meta.url).href;
    for (let w = 0; w < this.workers; w++) {
      const worker = new Worker(url, { type: "module" });
      worker.onmessage = (event: MessageEvent<WorkerReply>) => this.#settle(event.data);
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault();
        this.#failAll(new Error(`DataLoader worker ${w} failed: ${event.message}`));
      };
      const init: WorkerRequest = {
        type: "init",
        images,
        shape: this.dataset.shape,
        labels: this.dataset.labels,
        spec: this.spec,
        seed: this.seed,
      };
      worker.postMessage(init);
      this.#pool.push(worker);
    }
  }

  #request(worker: number, epoch: number, indices: Int32Array): Promise<Batch> {
    const id = this.#nextId++;
    return new Promise<Batch>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      const message: WorkerRequest = { type: "batch", id, epoch, indices };
      this.#pool[worker].postMessage(message);
    });
  }

  #settle(reply: WorkerReply): void {
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    if (reply.error !== undefined) pending.reject(new Error(`DataLoader worker: ${reply.error}`));
    else pending.resolve(reply.batch);
  }

  #failAll(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }

  /** Terminates the workers; pending batches are rejected. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const worker of this.#pool) worker.terminate();
    this.#pool = [];
    this.#failAll(new Error("DataLoader closed"));
  }

  /** Same as {@link DataLoader.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
