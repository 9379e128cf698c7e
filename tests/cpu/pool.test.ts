/**
 * The CPU backend reuses freed arrays (cpu/pool.ts): a reused array must look fresh, and an
 * array a reader was handed (`dataSync()`) must never be reused under that reader.
 */
import assert from "node:assert/strict";
import { fromArray, relu, zeros } from "../../mod.ts";

const LENGTH = 1 << 16; // 256 KiB of float32: above the pool's minimum size

Deno.test("cpu pool: an array read through dataSync() is not reused after dispose", () => {
  const x = fromArray(new Float32Array(LENGTH).fill(3), [LENGTH]);
  const seen = x.dataSync();
  x.dispose();
  // Allocations of the same size and dtype would take a pooled array first.
  const others = Array.from(
    { length: 4 },
    () => relu(fromArray(new Float32Array(LENGTH).fill(-1), [LENGTH])),
  );
  assert.ok(seen.every((v) => v === 3), "the array handed to dataSync() changed after dispose");
  for (const t of others) t.dispose();
});

Deno.test("cpu pool: a reused array is zeroed", () => {
  const a = relu(fromArray(new Float32Array(LENGTH).fill(5), [LENGTH]));
  a.dispose();
  const z = zeros([LENGTH]);
  assert.ok(z.dataSync().every((v) => v === 0), "zeros() returned a dirty array");
  z.dispose();
});
