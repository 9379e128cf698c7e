/**
 * Options objects, checked the same way everywhere. Every public function or constructor that
 * takes an options object declares its keys once, with {@link declareOptions}, and checks each
 * call with {@link checkOptions}: an unknown key (a PyTorch spelling like `drop_last`, a typo
 * like `trainig`, an option tessera does not have) is an error naming the op, the key and the
 * accepted keys, never silently ignored. `undefined` means "no options"; `null`, a number, an
 * array or a string are errors, and a dtype or device name passed where the options go
 * (`zeros([2], "float64")`) says how to write it (`{ dtype: "float64" }`).
 *
 * The declarations form a registry ({@link optionRegistry}) that tests read to prove that
 * every options-taking op rejects unknown keys. Each declaration names its options type,
 * `declareOptions<AlexNetOptions>()("alexnet", [...])`, so that `deno check` fails when the
 * key list and the interface differ: a key added to the interface but not to the list would
 * otherwise be refused at run time, and a listed key the interface lacks silently ignored.
 *
 * This file imports nothing, so every layer (tensor/, nn/, optim/, data/, io/) can use it.
 *
 * @module
 */

const registry = new Map<string, readonly string[]>();

/**
 * Nothing when `K` lists every key of the options type `T`; otherwise a type no key list
 * satisfies, whose `missingKeys` names the keys left out (so `deno check` shows them).
 */
export type NoMissingKeys<T, K extends readonly string[]> =
  [Exclude<keyof T & string, K[number]>] extends [never] ? unknown
    : { missingKeys: Exclude<keyof T & string, K[number]> };

/** The declaration function {@link declareOptions}`<T>()` returns, tied to the options type `T`. */
export type DeclareOptionsOf<T> = <const K extends readonly (keyof T & string)[]>(
  op: string,
  keys: K & NoMissingKeys<T, K>,
) => K;

/**
 * Declares the option keys of `op` (a public function, or `Class` for a constructor) and
 * returns them, for {@link checkOptions}. Declaring the same op twice with other keys throws.
 *
 * Called with the options type and no arguments, it returns a declaration function whose key
 * list `deno check` requires to be exactly the keys of that type: a key of the interface left
 * out of the list (valid options refused at run time) or a key the interface lacks is a type
 * error, so the list and the interface cannot drift apart.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { declareOptions } from "./options.ts";
 *
 * interface StepOptions {
 *   size?: number;
 *   gamma?: number;
 * }
 * const keys = declareOptions<StepOptions>()("exampleStep", ["size", "gamma"]);
 * assert.deepEqual(keys, ["size", "gamma"]);
 * // @ts-expect-error the list leaves out gamma
 * assert.throws(() => declareOptions<StepOptions>()("exampleStep", ["size"]));
 * ```
 */
export function declareOptions<T extends object>(): DeclareOptionsOf<T>;
/** Declares the option keys of `op` without an options type to tie them to. */
export function declareOptions<const K extends readonly string[]>(op: string, keys: K): K;
export function declareOptions(
  op?: string,
  keys?: readonly string[],
): readonly string[] | DeclareOptionsOf<object> {
  if (arguments.length === 0) return register as DeclareOptionsOf<object>;
  return register(op as string, keys as readonly string[]);
}

function register<const K extends readonly string[]>(op: string, keys: K): K {
  checkArgument("declareOptions", "op", op, "string");
  checkArgument("declareOptions", "keys", keys, "array");
  const known = registry.get(op);
  if (known && known.join() !== keys.join()) {
    throw new Error(`declareOptions: ${op} declared twice with different keys`);
  }
  registry.set(op, keys);
  return keys;
}

/** Every declared op and its option keys (a copy), for tests and documentation. */
export function optionRegistry(): Map<string, readonly string[]> {
  return new Map(registry);
}

/** `drop_last` → `dropLast`. */
function camelCase(name: string): string {
  return name.replace(/_+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Levenshtein distance, for "did you mean" on typos. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
    }
    previous = current;
  }
  return previous[b.length];
}

/** The accepted key an unknown `key` most likely meant, or undefined. */
export function suggestKey(key: string, accepted: readonly string[]): string | undefined {
  const camel = camelCase(key);
  const exact = accepted.find((k) => k === camel || k.toLowerCase() === camel.toLowerCase());
  if (exact) return exact;
  // PyTorch's longer names for the same thing: num_workers → workers.
  const suffix = accepted.find((k) =>
    k.length >= 4 && camel.toLowerCase().endsWith(k.toLowerCase())
  );
  if (suffix) return suffix;
  let best: string | undefined, bestDistance = 3;
  for (const k of accepted) {
    const d = editDistance(camel.toLowerCase(), k.toLowerCase());
    if (d < bestDistance && d < Math.max(2, k.length / 3)) [best, bestDistance] = [k, d];
  }
  return best;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array [${String(value).slice(0, 40)}]`;
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (typeof value === "object") return `a ${value.constructor?.name ?? "object"}`;
  return `${typeof value} ${String(value)}`;
}

const DTYPES = ["float32", "float64", "int32"];

/**
 * Returns `options` (or `{}` when it is `undefined`) after checking that it is a plain object
 * whose keys are all in `accepted`; otherwise throws an error naming `op`, the bad key or
 * value, the accepted keys, and the likely intended spelling.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkOptions } from "./options.ts";
 *
 * assert.deepEqual(checkOptions("DataLoader", { batchSize: 4 }, ["batchSize", "dropLast"]), {
 *   batchSize: 4,
 * });
 * assert.throws(
 *   () => checkOptions("DataLoader", { drop_last: true }, ["batchSize", "dropLast"]),
 *   /DataLoader: unknown option "drop_last" \(did you mean dropLast\?\)/,
 * );
 * ```
 */
export function checkOptions<T extends object>(
  op: string,
  options: T | undefined,
  accepted: readonly string[],
): T {
  checkArgument("checkOptions", "accepted", accepted, "array");
  if (options === undefined) return {} as T;
  const keys = `{ ${accepted.join(", ")} }`;
  if (typeof options === "string" && DTYPES.includes(options) && accepted.includes("dtype")) {
    throw new TypeError(
      `${op}: the dtype goes in the options object: pass { dtype: ${
        JSON.stringify(options)
      } }, not ${JSON.stringify(options)}`,
    );
  }
  if (typeof options === "string" && accepted.includes("device")) {
    throw new TypeError(
      `${op}: options must be an object ${keys}; for a device pass { device: ${
        JSON.stringify(options)
      } }, got ${describe(options)}`,
    );
  }
  if (
    typeof options !== "object" || options === null || Array.isArray(options) ||
    ArrayBuffer.isView(options)
  ) {
    throw new TypeError(
      `${op}: options must be an object ${keys} (leave it out for the defaults), got ${
        describe(options)
      }`,
    );
  }
  for (const key of Object.keys(options)) {
    if (accepted.includes(key)) continue;
    const guess = suggestKey(key, accepted);
    const hint = guess ? ` (did you mean ${guess}?)` : "";
    throw new TypeError(
      `${op}: unknown option ${JSON.stringify(key)}${hint}; the options are ${
        accepted.length ? accepted.join(", ") : "none"
      }`,
    );
  }
  return options;
}

/** What {@link checkArgument} can require of a positional argument. */
export type ArgumentKind = "array" | "function" | "object" | "string" | "bytes" | "number";

const KIND_TEXT: Record<ArgumentKind, string> = {
  array: "an array",
  function: "a function",
  object: "an object",
  string: "a string",
  bytes: "a Uint8Array of bytes",
  number: "a number",
};

function isKind(value: unknown, kind: ArgumentKind): boolean {
  switch (kind) {
    case "array":
      return Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView));
    case "function":
      return typeof value === "function";
    case "object":
      return typeof value === "object" && value !== null;
    case "string":
      return typeof value === "string";
    case "bytes":
      return value instanceof Uint8Array;
    case "number":
      return typeof value === "number";
  }
}

/**
 * Throws a TypeError naming `op`, the argument and what came, unless `value` is of `kind`: the
 * check that turns a missing or mistyped argument into the library's own message instead of
 * "Cannot read properties of undefined".
 */
export function checkArgument(op: string, name: string, value: unknown, kind: ArgumentKind): void {
  if (isKind(value, kind)) return;
  throw new TypeError(`${op}: ${name} must be ${KIND_TEXT[kind]}, got ${describe(value)}`);
}
