/**
 * Shared by the AlexNet example's tests: a small, fast configuration of the real training loop
 * on the built-in Fashion-MNIST subset, a temporary folder per test, and a command's printed
 * output captured instead of shown.
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

/** Runs `fn` with a new temporary folder, removed afterwards. */
export async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `fn` with console.log and console.error silenced; returns what each printed. */
export async function captured<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; printed: string; errors: string }> {
  const { log, error } = console;
  const lines: string[] = [], errors: string[] = [];
  console.log = (...args: unknown[]) => void lines.push(args.join(" "));
  console.error = (...args: unknown[]) => void errors.push(args.join(" "));
  try {
    return { value: await fn(), printed: lines.join("\n"), errors: errors.join("\n") };
  } finally {
    Object.assign(console, { log, error });
  }
}
