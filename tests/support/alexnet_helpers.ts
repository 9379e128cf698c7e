/**
 * Shared by the AlexNet example's tests: a small, fast configuration of the real training loop
 * on the built-in Fashion-MNIST subset.
 *
 * @module
 */

import { DEFAULTS, type TrainConfig } from "../../examples/alexnet/config.ts";

/** Two epochs of 192 images (batch 32) on the CPU into `out`, quiet; `extra` overrides. */
export function smallRun(out: string, extra: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...DEFAULTS,
    out,
    device: "cpu",
    epochs: 2,
    batchSize: 32,
    trainLimit: 192,
    testLimit: 64,
    valSize: 64,
    checkpointEvery: 1000,
    plain: true,
    ...extra,
  };
}
