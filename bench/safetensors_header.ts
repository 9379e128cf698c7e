/**
 * Cost of decoding a hostile safetensors header: the worst cases per header byte are headers
 * of many tiny tensors, empty (`{"t0000001":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},
 * ...}`) or of one byte each (`"shape":[]`, each needing its own buffer).
 *
 *     deno run --allow-write=/tmp bench/safetensors_header.ts write /tmp/h.safetensors [MB] [empty|byte]
 *     /usr/bin/time -v deno run --allow-read=/tmp bench/safetensors_header.ts read /tmp/h.safetensors
 *
 * `write` makes a file whose header is about MB megabytes (default 100, the reference's
 * limit); `read` decodes it once and prints the time and the outcome. Peak memory comes from
 * `/usr/bin/time -v` ("Maximum resident set size"), which covers the whole process.
 *
 * @module
 */

import { loadSafetensors } from "../io/safetensors.ts";

const [mode, path, mbArg, kind = "empty"] = Deno.args;
if (mode === "write" && path) {
  const target = Number(mbArg ?? "100") * 1e6;
  const parts: string[] = ["{"];
  let length = 1;
  let count = 0;
  for (; length < target - 80; count++) {
    const body = kind === "byte"
      ? `"shape":[],"data_offsets":[${count},${count + 1}]`
      : `"shape":[0],"data_offsets":[0,0]`;
    const entry = `${count ? "," : ""}"t${String(count).padStart(7, "0")}":{"dtype":"U8",${body}}`;
    parts.push(entry);
    length += entry.length;
  }
  parts.push("}");
  const json = new TextEncoder().encode(parts.join(""));
  const dataBytes = kind === "byte" ? count : 0;
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  await Deno.writeFile(path, out);
  console.log(`${path}: header ${json.length} bytes, ${count} ${kind} tensors`);
} else if (mode === "read" && path) {
  const start = performance.now();
  let outcome: string;
  try {
    const { tensors } = await loadSafetensors(path);
    outcome = `decoded ${tensors.size} tensors`;
  } catch (error) {
    outcome = `rejected: ${(error as Error).message}`;
  }
  const ms = performance.now() - start;
  console.log(`${outcome}\ntime ${(ms / 1000).toFixed(2)} s`);
} else {
  console.error("usage: safetensors_header.ts write PATH [MB] | read PATH");
  Deno.exit(2);
}
