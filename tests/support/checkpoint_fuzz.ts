/**
 * Seeded fuzzing of `loadCheckpoint` into a live model, optimizer and schedule. Each mutation
 * starts from a good checkpoint and changes either its bytes (header, data, length) or its
 * structure (JSON metadata: dropped fields, wrong types, null, NaN strings, huge numbers,
 * wrong array lengths; tensors: dropped, renamed, reshaped, retyped, non-finite values).
 *
 * Every outcome is classified:
 *
 * - refused: an `Error` whose message names the file; the model, optimizer, schedule and
 *   generators must be exactly as before ("modifying rejections" otherwise);
 * - loaded: every weight and velocity finite, every hyperparameter present, finite and in
 *   range ("bad loads" otherwise);
 * - crash: anything else thrown (an internal TypeError, a message without the file).
 *
 * tests/io/checkpoint_fuzz.test.ts runs a few hundred mutations in CI; for a long run:
 *
 *     deno run --allow-read --allow-write tests/support/checkpoint_fuzz.ts 5000 [seed]
 *
 * @module
 */

import "../../mod.ts"; // registers the CPU backend, as in any program using tessera
import { loadCheckpoint, saveCheckpoint } from "../../io/checkpoint.ts";
import { decodeSafetensors, encodeSafetensors, type TensorEntry } from "../../io/safetensors.ts";
import { Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential } from "../../nn/layers.ts";
import { SGD } from "../../optim/sgd.ts";
import { ReduceLROnPlateau } from "../../optim/schedules.ts";
import { fromArray, type Tensor } from "../../tensor/tensor.ts";
import { crossEntropy } from "../../tensor/ops/softmax.ts";
import { Rng } from "../../tensor/random.ts";

/** Counts of each outcome, and a few examples of each failure. */
export interface FuzzReport {
  mutations: number;
  refused: number;
  loaded: number;
  crashes: number;
  badLoads: number;
  modifyingRejections: number;
  /** Slowest single load, in ms. */
  slowestMs: number;
  /** Up to 5 descriptions of each kind of failure. */
  examples: string[];
}

function model(seed: number): Sequential {
  const rng = new Rng(seed);
  return new Sequential({
    features: new Sequential([
      new Conv2d(1, 2, 3, { padding: 1, rng }),
      new ReLU(),
      new MaxPool2d({ kernelSize: 2 }),
    ]),
    flatten: new Flatten(),
    classifier: new Sequential([
      new Dropout(0.5, { seed: seed + 1 }),
      new Linear(8, 4, { rng }),
      new ReLU(),
      new Dropout(0.5, { seed: seed + 2 }),
      new Linear(4, 3, { rng }),
    ]),
  });
}

function run(seed: number) {
  const net = model(seed);
  const sgd = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  return { net, sgd, schedule: new ReduceLROnPlateau(sgd) };
}

function train(r: ReturnType<typeof run>, steps: number, seed: number): void {
  const rng = new Rng(seed);
  for (let s = 0; s < steps; s++) {
    const x = new Float32Array(4 * 16).map(() => rng.normal());
    const labels = Int32Array.from({ length: 4 }, () => rng.int(3));
    r.sgd.zeroGrad();
    crossEntropy(r.net.forward(fromArray(x, [4, 1, 4, 4])), labels).backward();
    r.sgd.step();
  }
}

function bytes(t: Tensor): Uint8Array {
  const data = t.dataSync();
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
}

/** Everything a load could change, as a comparable string. */
function snapshot(r: ReturnType<typeof run>): string {
  const parts: string[] = [];
  for (const p of r.net.parameters()) {
    parts.push(bytes(p).join(","));
    const v = r.sgd.velocity(p);
    parts.push(v ? bytes(v).join(",") : "-");
  }
  parts.push(JSON.stringify(r.sgd.stateDict().groups));
  parts.push(JSON.stringify(r.schedule.stateDict()));
  parts.push(JSON.stringify(r.net.rngStates()));
  return parts.join("|");
}

/** What is wrong with a successfully loaded run, or undefined. */
function loadProblem(r: ReturnType<typeof run>): string | undefined {
  for (const [name, p] of r.net.namedParameters()) {
    if (!p.dataSync().every(Number.isFinite)) return `weight ${name} not finite`;
    const v = r.sgd.velocity(p);
    if (v && !v.dataSync().every(Number.isFinite)) return `velocity of ${name} not finite`;
  }
  for (const [i, g] of r.sgd.groups.entries()) {
    const ok = Number.isFinite(g.lr) && g.lr >= 0 && Number.isFinite(g.momentum) &&
      g.momentum >= 0 && g.momentum < 1 && Number.isFinite(g.weightDecay) && g.weightDecay >= 0;
    if (!ok) {
      const { lr, momentum, weightDecay } = g;
      return `group ${i} hyperparameters ${JSON.stringify({ lr, momentum, weightDecay })}`;
    }
  }
  const s = r.schedule;
  const counts = [s.badEpochs, s.drops, s.epoch];
  if (!counts.every((c) => Number.isInteger(c) && c >= 0) || Number.isNaN(s.best)) {
    return `schedule state ${JSON.stringify(s.stateDict())}`;
  }
  for (const state of Object.values(r.net.rngStates())) {
    if (state.every((w) => w === 0)) return "an all-zero generator";
  }
  return undefined;
}

// ---- mutations -------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every path into a JSON value, the root included. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  const out = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  }
  return out;
}

const ODD_VALUES: Json[] = [
  null,
  "abc",
  "NaN",
  "Infinity",
  "0.1",
  "",
  true,
  false,
  {},
  [],
  [1, 2],
  -1,
  0,
  1,
  0.5,
  1.5,
  -0.0001,
  1e308,
  -1e308,
  2 ** 32,
  2 ** 53 + 1,
  1e-320,
  { lr: 0.1 },
];

/** Changes one place in a JSON value; returns the new root and a description. */
function mutateJson(root: Json, rng: Rng): [Json | undefined, string] {
  const all = paths(root);
  const path = all[rng.int(all.length)];
  const op = rng.int(6);
  const odd = structuredClone(ODD_VALUES[rng.int(ODD_VALUES.length)]);
  if (path.length === 0) {
    return op === 0 ? [undefined, "dropped"] : [odd, `replaced by ${JSON.stringify(odd)}`];
  }
  const parent = path.slice(0, -1).reduce<Json>(
    (v, k) => (v as Record<string, Json>)[k as string],
    root,
  ) as Record<string | number, Json> | Json[];
  const key = path[path.length - 1];
  const where = path.join(".");
  if (op === 0 || op === 1) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key as string];
    return [root, `dropped ${where}`];
  }
  if (op === 2 && Array.isArray(parent)) {
    parent.push(structuredClone(parent[0] ?? 1));
    return [root, `lengthened the array at ${path.slice(0, -1).join(".")}`];
  }
  if (op === 3 && !Array.isArray(parent)) {
    parent[`${key}x`] = parent[key as string];
    delete parent[key as string];
    return [root, `renamed ${where}`];
  }
  (parent as Record<string | number, Json>)[key] = odd;
  return [root, `set ${where} to ${JSON.stringify(odd)}`];
}

const META_KEYS = [
  "tessera.optimizer",
  "tessera.optimizer",
  "tessera.schedule",
  "tessera.rng_states",
  "tessera.format",
  "epoch",
];

function mutateMetadata(metadata: Record<string, string>, rng: Rng): string {
  const key = META_KEYS[rng.int(META_KEYS.length)];
  if (rng.uniform() < 0.08) {
    delete metadata[key];
    return `metadata ${key} deleted`;
  }
  if (rng.uniform() < 0.05) {
    metadata[key] = metadata[key]?.slice(0, rng.int(metadata[key].length + 1)) ?? "{";
    return `metadata ${key} truncated`;
  }
  let text = metadata[key] ?? "{}";
  let description = "";
  // tessera.format is a plain string, the others JSON.
  const plain = key === "tessera.format";
  let value: Json | undefined = plain ? text : JSON.parse(text);
  for (let k = 1 + rng.int(2); k > 0 && value !== undefined; k--) {
    const [next, what] = mutateJson(value, rng);
    value = next;
    description += `${what}; `;
  }
  if (value === undefined) delete metadata[key];
  else {
    text = plain && typeof value === "string" ? value : JSON.stringify(value);
    // Numbers JSON.stringify cannot write, spliced in as text: 1e999 parses to Infinity.
    if (rng.uniform() < 0.1) text = text.replace(/-?\d+(\.\d+)?(e[-+]?\d+)?/, "1e999");
    metadata[key] = text;
  }
  return `metadata ${key}: ${description}`;
}

function mutateTensors(tensors: Map<string, TensorEntry>, rng: Rng): string {
  const names = [...tensors.keys()];
  const name = names[rng.int(names.length)];
  const entry = tensors.get(name)!;
  switch (rng.int(7)) {
    case 0:
      tensors.delete(name);
      return `tensor ${name} dropped`;
    case 1:
      tensors.delete(name);
      tensors.set(`${name}.x`, entry);
      return `tensor ${name} renamed`;
    case 2: {
      const values = [NaN, Infinity, -Infinity, 3e38, 1e-45, 0];
      const data = entry.data.slice() as Float32Array;
      const v = values[rng.int(values.length)];
      if (data.length) data[rng.int(data.length)] = v;
      tensors.set(name, { ...entry, data });
      return `tensor ${name} element set to ${v}`;
    }
    case 3: {
      const shape = [...entry.shape];
      if (rng.uniform() < 0.5) shape.push(1);
      else shape.reverse();
      tensors.set(name, { ...entry, shape });
      return `tensor ${name} reshaped to [${shape}]`;
    }
    case 4: {
      const n = entry.data.length + (rng.uniform() < 0.5 ? 1 : -1);
      const data = new Float32Array(Math.max(0, n));
      tensors.set(name, { dtype: "F32", shape: [data.length], data });
      return `tensor ${name} given ${data.length} elements`;
    }
    case 5:
      tensors.set(name, { dtype: "F64", shape: entry.shape, data: Float64Array.from(entry.data) });
      return `tensor ${name} stored as F64`;
    default:
      tensors.set(
        name,
        rng.uniform() < 0.5
          ? { dtype: "I32", shape: entry.shape, data: new Int32Array(entry.data.length) }
          : { dtype: "U8", shape: [3], data: new Uint8Array(3) },
      );
      return `tensor ${name} retyped`;
  }
}

function mutateBytes(good: Uint8Array, rng: Rng): [Uint8Array, string] {
  const file = good.slice();
  const headerLength = Number(new DataView(file.buffer).getBigUint64(0, true));
  switch (rng.int(4)) {
    case 0: {
      const at = 8 + rng.int(headerLength);
      for (let k = 1 + rng.int(4); k > 0; k--) {
        file[8 + rng.int(headerLength)] = rng.uniform() < 0.5 ? 0x30 + rng.int(10) : rng.int(256);
      }
      return [file, `header bytes flipped near ${at}`];
    }
    case 1: {
      const start = 8 + headerLength;
      for (let k = 1 + rng.int(8); k > 0; k--) {
        file[start + rng.int(file.length - start)] = rng.int(256);
      }
      return [file, "data bytes flipped"];
    }
    case 2: {
      const length = rng.int(file.length);
      return [file.subarray(0, length), `truncated to ${length} bytes`];
    }
    default: {
      const length = rng.uniform() < 0.5
        ? BigInt(rng.int(file.length + 16))
        : BigInt(rng.int(2 ** 32)) << BigInt(rng.int(32));
      new DataView(file.buffer).setBigUint64(0, length, true);
      return [file, `header length set to ${length}`];
    }
  }
}

// ---- the loop --------------------------------------------------------------------------------

/** Runs `count` seeded mutations; `dir` holds the mutated files. */
export async function fuzzCheckpoints(
  count: number,
  seed: number,
  dir: string,
): Promise<FuzzReport> {
  const source = run(1);
  train(source, 3, 10);
  source.schedule.step(0.5);
  source.schedule.step(0.6);
  const goodPath = `${dir}/good.safetensors`;
  await saveCheckpoint(goodPath, {
    model: source.net,
    optimizer: source.sgd,
    schedule: source.schedule,
    metadata: { epoch: 2, step: 3 },
  });
  const good = await Deno.readFile(goodPath);

  const target = run(2);
  train(target, 2, 20);
  target.schedule.step(0.7);

  const report: FuzzReport = {
    mutations: 0,
    refused: 0,
    loaded: 0,
    crashes: 0,
    badLoads: 0,
    modifyingRejections: 0,
    slowestMs: 0,
    examples: [],
  };
  const note = (kind: string, text: string) => {
    if (report.examples.filter((e) => e.startsWith(kind)).length < 5) {
      report.examples.push(`${kind}: ${text}`);
    }
  };
  const rng = new Rng(seed);
  const path = `${dir}/mutated.safetensors`;
  for (let i = 0; i < count; i++) {
    let mutated: Uint8Array;
    let description: string;
    if (rng.uniform() < 0.3) {
      [mutated, description] = mutateBytes(good, rng);
    } else {
      const { tensors, metadata } = decodeSafetensors(good);
      description = rng.uniform() < 0.75
        ? mutateMetadata(metadata, rng)
        : mutateTensors(tensors, rng);
      mutated = encodeSafetensors(tensors, metadata);
    }
    await Deno.writeFile(path, mutated);
    const before = snapshot(target);
    const started = performance.now();
    report.mutations++;
    try {
      await loadCheckpoint(path, {
        model: target.net,
        optimizer: target.sgd,
        schedule: target.schedule,
      });
    } catch (error) {
      report.slowestMs = Math.max(report.slowestMs, performance.now() - started);
      const ours = error instanceof Error && error.message.includes(path);
      if (!ours) {
        report.crashes++;
        note("crash", `#${i} ${description} -> ${error}`);
      } else report.refused++;
      if (snapshot(target) !== before) {
        report.modifyingRejections++;
        note("modifying rejection", `#${i} ${description} -> ${(error as Error).message}`);
      }
      continue;
    }
    report.slowestMs = Math.max(report.slowestMs, performance.now() - started);
    report.loaded++;
    const problem = loadProblem(target);
    if (problem) {
      report.badLoads++;
      note("bad load", `#${i} ${description} -> ${problem}`);
    }
  }
  return report;
}

if (import.meta.main) {
  const count = Number(Deno.args[0] ?? "5000");
  const seed = Number(Deno.args[1] ?? "1");
  const dir = await Deno.makeTempDir({ prefix: "tessera-fuzz-" });
  const started = performance.now();
  try {
    const report = await fuzzCheckpoints(count, seed, dir);
    console.log(JSON.stringify(report, null, 2));
    console.log(`${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
