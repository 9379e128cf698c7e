/**
 * The device registry: the backends tensors can live on, by name. A backend registers itself
 * once it exists: tensor/ref.ts registers "ref" (the reference kernels, always present),
 * cpu/mod.ts registers "cpu" (the default device) when an entry point of the package loads it,
 * and `initWebGPU()` (gpu/mod.ts) registers "gpu". Tensors look their device up here by name,
 * so the ops depend only on the contract in backend.ts, never on a particular backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getBackend } from "./registry.ts";
 * import "../mod.ts"; // registers "cpu"
 *
 * assert.equal(getBackend("cpu").name, "cpu");
 * assert.equal(getBackend("ref").name, "ref");
 * assert.throws(() => getBackend("tpu"), /no backend registered for "tpu"/);
 * ```
 *
 * @module
 */

import type { Backend } from "./backend.ts";

/** A device: its name (`"cpu"`, `"ref"`, `"gpu"`) or the backend object itself. */
export type Device = string | Backend;

/** The devices that are always there once registered: they cannot be removed. */
const PERMANENT = ["cpu", "ref"];

const backends = new Map<string, Backend>();

/** Makes a backend available under its name (cpu/mod.ts does it for the CPU, `initWebGPU()` for the GPU). */
export function registerBackend(backend: Backend): void {
  if (typeof backend !== "object" || backend === null || typeof backend.name !== "string") {
    throw new TypeError(
      `registerBackend: expects a Backend (an object with a name and the kernels of backend/backend.ts), got ${
        String(backend)
      }`,
    );
  }
  backends.set(backend.name, backend);
}

/** Removes a backend registered with {@link registerBackend}; "cpu" and "ref" stay. */
export function unregisterBackend(name: string): void {
  if (PERMANENT.includes(name)) {
    throw new Error(`unregisterBackend: the ${name} backend cannot be removed`);
  }
  backends.delete(name);
}

/** Looks a device up by name (default "cpu"); the GPU must be initialised first (`await initWebGPU()`). */
export function getBackend(device: Device = "cpu"): Backend {
  if (typeof device !== "string") {
    const b = device as Partial<Backend> | null;
    if (typeof b === "object" && b !== null && typeof b.fromArray === "function") return device;
    throw new TypeError(
      `device must be a device name ("cpu", "ref", "gpu") or a Backend, got ${String(device)}`,
    );
  }
  const backend = backends.get(device);
  if (!backend) {
    const hint = device === "cpu"
      ? ": import mod.ts, which registers it (the package entry points all do)"
      : device === "gpu"
      ? ": call `await initWebGPU()` from gpu/mod.ts first"
      : "";
    const available = [...backends.keys()].join(", ") || "none";
    throw new Error(`no backend registered for "${device}"${hint}; registered: ${available}`);
  }
  return backend;
}
