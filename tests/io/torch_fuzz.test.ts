/**
 * Seeded fuzzing of `loadTorchBytes` on mutations of real torch.save files (the fixtures of
 * tools/torch_fixtures.py: zip, legacy and deflated layouts, a training checkpoint, and a few
 * of the refused files).
 *
 * Byte-level mutations (bit flips, interesting bytes and integers, truncation, deleted,
 * inserted and duplicated ranges) hit every layer of a legacy file directly; in a zip archive
 * they mostly meet the directory checks and the CRC-32, so half of the zip mutations instead
 * change one entry (the pickle or a storage record) and re-pack the archive with a correct
 * CRC, which sends the mutated pickle through the pickle machine.
 *
 * Every outcome is classified:
 *
 * - refused: a TorchLoadError whose message starts with the file's name;
 * - loaded: a Map of tensors, each float32, float64 or int32 with as many values as its shape;
 * - crash: anything else (a TypeError, a RangeError, a message without the file's name), or a
 *   load that is not one of the above.
 *
 * The suite runs 10,000 mutations; for a longer run:
 *
 *     deno run --allow-read tests/io/torch_fuzz.test.ts 100000 [seed]
 *
 * @module
 */

import "../../mod.ts";
import assert from "node:assert/strict";
import { loadTorchBytes, TorchLoadError } from "../../io/torch.ts";
import { readZipDirectory, readZipEntry } from "../../io/zip.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { Rng } from "../../tensor/random.ts";
import { fixture, zipArchive } from "../support/torch_helpers.ts";

/** Counts of each outcome, the slowest load, and up to 5 crashes described. */
export interface TorchFuzzReport {
  mutations: number;
  refused: number;
  loaded: number;
  crashes: number;
  /** Slowest single load, in ms (a hang would never finish; this shows how far from one). */
  slowestMs: number;
  examples: string[];
}

const SOURCES = [
  "small_zip.pth",
  "small_legacy.pth",
  "small_deflated.pth",
  "nested.pth",
  "model_key.pth",
  // Refused as they are; a mutation may reach other checks from there.
  "evil_view_outside.pth",
  "evil_storage_too_big_legacy.pth",
  "evil_recursive.pth",
  "int64_overflow.pth",
  "module.pth",
];

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x28, 0x2e, 0x71, 0x68, 0x52];
const INTERESTING_INTS = [0, 1, 2, 6, 0x7f, 0xff, 0x7fffffff, 0x80000000, 0xffffffff, -1];

/** One byte-level mutation of `bytes` (a new array), described in `log`. */
function mutateBytes(bytes: Uint8Array, rng: Rng, log: string[]): Uint8Array {
  const at = rng.int(Math.max(1, bytes.length));
  switch (rng.int(7)) {
    case 0: {
      const out = bytes.slice();
      const flips = 1 + rng.int(8);
      for (let i = 0; i < flips && out.length; i++) out[rng.int(out.length)] ^= 1 << rng.int(8);
      log.push(`${flips} bit flips`);
      return out;
    }
    case 1: {
      const out = bytes.slice();
      if (out.length) out[at] = INTERESTING_BYTES[rng.int(INTERESTING_BYTES.length)];
      log.push(`byte ${at} = ${out[at]}`);
      return out;
    }
    case 2:
      log.push(`truncated to ${at}`);
      return bytes.slice(0, at);
    case 3: {
      const length = 1 + rng.int(16);
      log.push(`deleted ${length} bytes at ${at}`);
      return concat(bytes.subarray(0, at), bytes.subarray(at + length));
    }
    case 4: {
      const inserted = Uint8Array.from({ length: 1 + rng.int(16) }, () => rng.int(256));
      log.push(`inserted ${inserted.length} bytes at ${at}`);
      return concat(bytes.subarray(0, at), inserted, bytes.subarray(at));
    }
    case 5: {
      const start = rng.int(Math.max(1, bytes.length));
      const piece = bytes.subarray(start, start + 1 + rng.int(64));
      log.push(`copied ${piece.length} bytes from ${start} to ${at}`);
      return concat(bytes.subarray(0, at), piece, bytes.subarray(at));
    }
    default: {
      const out = bytes.slice();
      const value = INTERESTING_INTS[rng.int(INTERESTING_INTS.length)];
      const width = rng.int(2) ? 4 : 8;
      if (at + width <= out.length) {
        const view = new DataView(out.buffer);
        if (width === 4) view.setInt32(at, value, true);
        else view.setBigInt64(at, BigInt(value), true);
      }
      log.push(`int${width * 8} ${value} at ${at}`);
      return out;
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The entries of a zip source, for re-packing with one of them changed. */
async function zipEntries(bytes: Uint8Array): Promise<[string, Uint8Array][]> {
  const entries: [string, Uint8Array][] = [];
  for (const entry of readZipDirectory(bytes).values()) {
    entries.push([entry.name, await readZipEntry(bytes, entry)]);
  }
  return entries;
}

/** What is wrong with a successful load, or undefined. */
function loadProblem(state: unknown): string | undefined {
  if (!(state instanceof Map)) return `returned ${state}`;
  for (const [name, tensor] of state) {
    if (typeof name !== "string" || !(tensor instanceof Tensor)) {
      return `entry ${name} is not a tensor`;
    }
    if (!["float32", "float64", "int32"].includes(tensor.dtype)) {
      return `${name} is ${tensor.dtype}`;
    }
    const size = tensor.shape.reduce((a, b) => a * b, 1);
    if (tensor.dataSync().length !== size) return `${name} holds the wrong number of values`;
  }
  return undefined;
}

/** Runs `mutations` seeded mutations of the fixtures through loadTorchBytes. */
export async function fuzzTorch(mutations: number, seed: number): Promise<TorchFuzzReport> {
  const rng = new Rng(seed);
  const sources = await Promise.all(SOURCES.map(async (name) => {
    const bytes = await Deno.readFile(fixture(name));
    const zip = bytes[0] === 0x50 ? await zipEntries(bytes) : undefined;
    return { name, bytes, zip };
  }));
  const report: TorchFuzzReport = {
    mutations,
    refused: 0,
    loaded: 0,
    crashes: 0,
    slowestMs: 0,
    examples: [],
  };
  for (let i = 0; i < mutations; i++) {
    const source = sources[rng.int(sources.length)];
    const log = [source.name];
    let mutated: Uint8Array;
    if (source.zip && rng.int(2)) {
      const entries = source.zip.map(([name, data]): [string, Uint8Array] => [name, data]);
      const k = rng.int(entries.length);
      log.push(`entry ${entries[k][0]}:`);
      entries[k] = [entries[k][0], mutateBytes(entries[k][1], rng, log)];
      mutated = zipArchive(entries, rng.int(2) === 0);
    } else {
      mutated = mutateBytes(source.bytes, rng, log);
    }
    const name = `mutation ${i}`;
    const start = performance.now();
    let problem: string | undefined;
    try {
      problem = loadProblem(await loadTorchBytes(mutated, { name }));
      if (!problem) report.loaded++;
    } catch (error) {
      if (error instanceof TorchLoadError && error.message.startsWith(`${name}: `)) {
        report.refused++;
      } else problem = `threw ${error instanceof Error ? error.stack : error}`;
    }
    report.slowestMs = Math.max(report.slowestMs, performance.now() - start);
    if (problem) {
      report.crashes++;
      if (report.examples.length < 5) report.examples.push(`${log.join(" ")}: ${problem}`);
    }
  }
  return report;
}

Deno.test("fuzz: 10,000 mutated torch.save files load cleanly or are refused with a TorchLoadError", async () => {
  const report = await fuzzTorch(10_000, 11);
  const summary = JSON.stringify(report, null, 2);
  assert.equal(report.crashes, 0, summary);
  assert.equal(report.refused + report.loaded, report.mutations, summary);
  // Both outcomes must be common, or the mutations test nothing.
  assert.ok(report.refused > 2000 && report.loaded > 500, summary);
});

if (import.meta.main) {
  const [count = "100000", seed = "1"] = Deno.args;
  console.log(JSON.stringify(await fuzzTorch(Number(count), Number(seed)), null, 2));
}
