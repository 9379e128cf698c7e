/**
 * Reading PyTorch's `torch.save` files (`.pth`, `.pt`), without Python and without running
 * anything the file says.
 *
 * A `torch.save` file is a pickle (see pickle.ts) of the saved object in which every storage
 * (the flat buffer behind one or more tensors) is replaced by a "persistent id", and the
 * storages' bytes lie beside it. PyTorch has used two layouts:
 *
 *     zip (PyTorch >= 1.6)                    legacy (before 1.6; _use_new_zipfile_serialization=False)
 *     <archive>/data.pkl    the object        pickle  magic number 0x1950a86a20f9469cfc6c
 *     <archive>/data/<key>  one storage,      pickle  protocol version 1001
 *                           raw little-endian pickle  sys_info {little_endian, type_sizes}
 *     <archive>/version     format version    pickle  the object
 *     <archive>/byteorder   "little" (newer)  pickle  the storage keys, in file order
 *                                             then per key: int64 element count, raw bytes
 *     persistent id: ('storage', FloatStorage, key, location, numel)
 *                    legacy adds a sixth field, an old "storage view" (key, offset, numel)
 *
 * Inside the object, each tensor is a call `torch._utils._rebuild_tensor_v2(storage, offset,
 * size, stride, requires_grad, hooks)`, a strided view of a storage, and a state_dict is a
 * `collections.OrderedDict` of them. Those, the storage types, torch's dtypes and
 * `_rebuild_parameter` are the only globals this reader lets the pickle name (torch_pickle.ts
 * holds the list); anything else (a pickled `nn.Module`, `posix.system`) is refused, naming
 * it. torch_storage.ts turns a view of a storage's bytes into a tensor's values.
 *
 * The file is untrusted. Storages are only numbers (dtype, key, element count) until a
 * state_dict tensor needs one; each storage's claimed size is checked against the bytes that
 * back it, each view against its storage, and everything this reader allocates (inflated zip
 * entries, the pickle's values, the tensors' values) is summed and refused beyond `maxBytes`
 * (by default 8 times the file's size) before it is allocated. Every problem is a {@link TorchLoadError} whose
 * message starts with the file's name.
 *
 * @module
 */

import { fromArray, type Tensor } from "../tensor/tensor.ts";
import { checkOptions, declareOptions } from "../tensor/options.ts";
import { describe, isTuple, PickleError, quote, unpickle, type UnpickleOptions } from "./pickle.ts";
import {
  build,
  findClass,
  index,
  refuseGlobals,
  sameStorage,
  storageId,
  StorageRef,
  TensorRef,
} from "./torch_pickle.ts";
import { ConversionError, isLittleEndianHost, ITEMSIZE, readView } from "./torch_storage.ts";
import { isZip, readZipDirectory, readZipEntry, type ZipEntry, ZipError } from "./zip.ts";

/** A file that is not a readable `torch.save` state_dict; the message starts with its name. */
export class TorchLoadError extends Error {
  /** `message` starts with the file's name, then the problem. */
  constructor(message: string) {
    super(message);
    this.name = "TorchLoadError";
  }
}

/** Options of {@link loadTorch} and {@link loadTorchBytes}. */
export interface LoadTorchOptions {
  /**
   * The most bytes the reader may allocate: inflated zip entries, the pickle's values (an
   * estimate, see pickle.ts's MEMORY_COST) and the tensors' values (float16 and bfloat16 take
   * twice their stored size as float32, uint8 and bool four times as int32). Default: 8
   * times the file's size, at least 1 MiB.
   */
  maxBytes?: number;
  /** The name errors start with (default: the path, or `<bytes>`); e.g. a dropped file's name. */
  name?: string;
}

/**
 * Reads the `torch.save` file at `source` (a path or `file:` URL; or the file's bytes) and
 * returns its state_dict: the tensors by name, in the file's order, on the CPU. The state_dict
 * is the saved dict itself, or the dict under its `state_dict` or `model` key (a training
 * checkpoint); float16 and bfloat16 become float32 exactly, float64 stays, integer and bool
 * tensors become int32 (int64 only when every value fits).
 *
 * @example Weights trained with PyTorch, into the same architecture built by tessera
 * ```ts ignore
 * import { alexnetMini, loadTorch } from "../mod.ts";
 *
 * // Python: torch.save(model.state_dict(), "mini.pth")
 * const model = alexnetMini();
 * await model.loadStateDict(await loadTorch("mini.pth")); // strict: every name and shape
 * ```
 */
export async function loadTorch(
  source: string | URL | Uint8Array,
  options: LoadTorchOptions = {},
): Promise<Map<string, Tensor>> {
  checkOptions("loadTorch", options, LOAD_TORCH_KEYS);
  if (source instanceof Uint8Array) return await loadTorchBytes(source, options);
  if (typeof source !== "string" && !(source instanceof URL)) {
    throw new TypeError(
      `loadTorch: source must be a path, a file URL or a Uint8Array, got ${describe(source)}`,
    );
  }
  if (typeof Deno === "undefined") {
    throw new TypeError(
      "loadTorch: reading a path needs Deno; in a browser, pass the file's bytes to loadTorchBytes",
    );
  }
  const name = options.name ?? (typeof source === "string" ? source : source.href);
  return await loadTorchBytes(await Deno.readFile(source), { ...options, name });
}

/**
 * {@link loadTorch} for a file already in memory (a browser's dropped file:
 * `new Uint8Array(await file.arrayBuffer())`). Asynchronous because deflated zip entries are
 * inflated with `DecompressionStream`.
 *
 * @example A file that is not a torch.save file is refused, by name
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadTorchBytes, TorchLoadError } from "../mod.ts";
 *
 * const page = new TextEncoder().encode("<!DOCTYPE html>"); // a download that went wrong
 * await assert.rejects(loadTorchBytes(page, { name: "alexnet.pth" }), (error: Error) => {
 *   assert.ok(error instanceof TorchLoadError);
 *   assert.match(error.message, /^alexnet\.pth: not a torch\.save file/);
 *   return true;
 * });
 * ```
 */
export async function loadTorchBytes(
  bytes: Uint8Array,
  options: LoadTorchOptions = {},
): Promise<Map<string, Tensor>> {
  const { name, maxBytes } = checkLoadOptions(bytes, options);
  try {
    if (!isLittleEndianHost()) throw new Problem("this reader needs a little-endian machine");
    const budget = new Budget(maxBytes);
    const loaded = isZip(bytes)
      ? await readZipFormat(bytes, budget)
      : readLegacyFormat(bytes, budget);
    const state = findStateDict(loaded.value);
    const tensors = new Map<string, Tensor>();
    for (const [key, ref] of state) budget.take(ref.outputBytes(), `tensor ${quote(key)}`);
    for (const [key, ref] of state) {
      const data = readView(
        await loaded.storageBytes(ref.storage, key),
        ref.storage.dtype,
        ref,
        key,
      );
      tensors.set(key, fromArray(data, ref.shape));
    }
    return tensors;
  } catch (error) {
    if (
      error instanceof Problem || error instanceof PickleError || error instanceof ZipError ||
      error instanceof ConversionError
    ) {
      throw new TorchLoadError(`${name}: ${error.message}`);
    }
    throw error;
  }
}

const LOAD_TORCH_KEYS = declareOptions<LoadTorchOptions>()("loadTorch", ["maxBytes", "name"]);

function checkLoadOptions(bytes: Uint8Array, options: LoadTorchOptions) {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`loadTorchBytes: bytes must be a Uint8Array, got ${describe(bytes)}`);
  }
  checkOptions("loadTorch", options, LOAD_TORCH_KEYS);
  const maxBytes = options.maxBytes ?? Math.max(8 * bytes.length, 1 << 20);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new RangeError(
      `loadTorch: maxBytes must be a non-negative integer, got ${options.maxBytes}`,
    );
  }
  const name = options.name ?? "<bytes>";
  if (typeof name !== "string") {
    throw new TypeError(`loadTorch: name must be a string, got ${describe(name)}`);
  }
  return { name, maxBytes };
}

/** A problem with the file; {@link loadTorchBytes} prefixes the file's name. */
class Problem extends Error {}

/** What the reader may still allocate. */
class Budget {
  constructor(private left: number) {}

  /** Runs a pickle with what is left as its memory limit, and takes what its values use. */
  unpickle(bytes: Uint8Array, options: UnpickleOptions): { value: unknown; end: number } {
    try {
      const result = unpickle(bytes, { ...options, maxMemory: this.left });
      this.left -= result.memory;
      return result;
    } catch (error) {
      if (
        error instanceof PickleError && /need more than \d+ bytes of memory/.test(error.message)
      ) {
        throw new PickleError(
          `${error.message}, beyond what is left of this load's maxBytes (default 8 times the file's size); pass a larger maxBytes if the file is trusted`,
        );
      }
      throw error;
    }
  }

  take(bytes: number, what: string): void {
    if (bytes > this.left) {
      throw new Problem(
        `${what} needs ${formatBytes(bytes)}, beyond the ${
          formatBytes(this.left)
        } left of this load's maxBytes ` +
          `(default 8 times the file's size); pass a larger maxBytes if the file is trusted`,
      );
    }
    this.left -= bytes;
  }
}

function formatBytes(bytes: number): string {
  if (bytes < 1e3) return `${bytes} bytes`;
  const [value, unit] = bytes < 1e6
    ? [bytes / 1e3, "KB"]
    : bytes < 1e9
    ? [bytes / 1e6, "MB"]
    : [bytes / 1e9, "GB"];
  return `${Number(value.toPrecision(3))} ${unit}`;
}

// ---- the two layouts -------------------------------------------------------------------------

interface Loaded {
  value: unknown;
  /** The raw bytes of `storage` (its own elements only); `tensor` names it in errors. */
  storageBytes(storage: StorageRef, tensor: string): Promise<Uint8Array> | Uint8Array;
}

async function readZipFormat(bytes: Uint8Array, budget: Budget): Promise<Loaded> {
  const entries = readZipDirectory(bytes);
  const names = [...entries.keys()];
  if (names.some((n) => n.endsWith("/constants.pkl"))) {
    throw new Problem(
      "this is a TorchScript archive (torch.jit.save), not a torch.save file; in Python, save the model's state_dict with torch.save",
    );
  }
  const pickles = names.filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pickles.length !== 1) {
    throw new Problem(
      `a torch.save zip holds one <archive>/data.pkl; this one holds ${pickles.length} (entries: ${
        listNames(names)
      })`,
    );
  }
  const prefix = pickles[0].slice(0, -"data.pkl".length);
  const byteorder = entries.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(await read(bytes, byteorder, budget)).trim();
    if (order !== "little") {
      throw new Problem(
        `the byteorder record says ${
          JSON.stringify(order.slice(0, 20))
        }; tessera reads only little-endian files`,
      );
    }
  }
  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: unknown) => {
    const { dtype, key, numel } = storageId(pid, 5);
    const known = storages.get(key);
    if (known) return sameStorage(known, dtype, numel);
    const record = entries.get(`${prefix}data/${key}`);
    if (!record) {
      throw new PickleError(
        `storage ${quote(key)} has no record ${quote(`${prefix}data/${key}`)} in the archive`,
      );
    }
    const claimed = numel * ITEMSIZE[dtype];
    if (claimed !== record.size) {
      throw new PickleError(
        `storage ${quote(key)} claims ${numel} ${dtype} elements (${
          formatBytes(claimed)
        }) but its record ${quote(record.name)} holds ${formatBytes(record.size)}`,
      );
    }
    const storage = new StorageRef(key, dtype, numel);
    storages.set(key, storage);
    return storage;
  };
  const pickle = await read(bytes, entries.get(pickles[0])!, budget);
  const { value } = budget.unpickle(pickle, { findClass, persistentLoad, build });
  const cache = new Map<StorageRef, Promise<Uint8Array>>();
  return {
    value,
    storageBytes(storage) {
      const record = entries.get(`${prefix}data/${storage.key}`)!;
      if (!cache.has(storage)) cache.set(storage, read(bytes, record, budget));
      return cache.get(storage)!;
    },
  };
}

/** An entry's content; a deflated one allocates its size, which the budget must allow. */
function read(bytes: Uint8Array, entry: ZipEntry, budget: Budget): Promise<Uint8Array> {
  if (entry.method !== 0) budget.take(entry.size, `inflating zip entry ${quote(entry.name)}`);
  return readZipEntry(bytes, entry);
}

const MAGIC_NUMBER = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001;

function readLegacyFormat(bytes: Uint8Array, budget: Budget): Loaded {
  if (bytes.length > 262 && new TextDecoder().decode(bytes.subarray(257, 262)) === "ustar") {
    throw new Problem(
      "this is a tar archive, PyTorch's earliest torch.save format, which tessera does not read; load and re-save it with a recent PyTorch",
    );
  }
  if (bytes[0] !== 0x80) {
    const head = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new Problem(
      `not a torch.save file: it is neither a zip archive nor a pickle (it starts with bytes ${
        head || "(none: the file is empty)"
      })`,
    );
  }
  const header = (start: number) => budget.unpickle(bytes, { start, findClass: refuseGlobals });
  const magic = header(0);
  if (magic.value !== MAGIC_NUMBER) {
    throw new Problem(
      `a pickle, but not a torch.save file: it starts with ${
        describe(magic.value)
      }, not torch's magic number`,
    );
  }
  const protocol = header(magic.end);
  if (protocol.value !== PROTOCOL_VERSION) {
    throw new Problem(
      `legacy torch.save protocol version ${
        describe(protocol.value)
      }; tessera reads ${PROTOCOL_VERSION}`,
    );
  }
  const sysInfo = header(protocol.end);
  if (!(sysInfo.value instanceof Map) || sysInfo.value.get("little_endian") !== true) {
    throw new Problem(
      `the file's sys_info ${
        sysInfo.value instanceof Map
          ? "does not say little_endian: True"
          : `is ${describe(sysInfo.value)}`
      }; tessera reads only little-endian files`,
    );
  }
  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: unknown) => legacyStorage(pid, storages);
  const object = budget.unpickle(bytes, {
    start: sysInfo.end,
    findClass,
    persistentLoad,
    build,
  });
  const keys = header(object.end);
  const data = legacyStorageData(bytes, keys.value, keys.end, storages);
  return {
    value: object.value,
    storageBytes(storage, tensor) {
      const root = storage.root?.storage ?? storage;
      const raw = data.get(root);
      if (!raw) {
        throw new Problem(
          `tensor ${quote(tensor)} uses storage ${quote(root.key)}, whose data is not in the file`,
        );
      }
      const start = (storage.root?.offset ?? 0) * ITEMSIZE[storage.dtype];
      return raw.subarray(start, start + storage.numel * ITEMSIZE[storage.dtype]);
    },
  };
}

function legacyStorage(pid: unknown, storages: Map<string, StorageRef>): StorageRef {
  const { dtype, key, numel } = storageId(pid, 6);
  const known = storages.get(key);
  const root = known ? sameStorage(known, dtype, numel) : new StorageRef(key, dtype, numel);
  storages.set(key, root);
  const view = (pid as readonly unknown[])[5];
  if (view === null) return root;
  // Storage views (PyTorch < 0.4): (view key, offset, numel), a slice of the root storage.
  if (!isTuple(view) || view.length !== 3 || typeof view[0] !== "string") {
    throw new PickleError(
      `storage ${quote(key)} has view metadata ${describe(view)}, not (key, offset, numel)`,
    );
  }
  const offset = index(view[1], `storage view ${quote(view[0])}: offset`);
  const size = index(view[2], `storage view ${quote(view[0])}: numel`);
  if (offset + size > numel) {
    throw new PickleError(
      `storage view ${
        quote(
          view[0],
        )
      } (${size} elements at ${offset}) runs past storage ${quote(key)} (${numel} elements)`,
    );
  }
  const existing = storages.get(view[0]);
  if (existing) return sameStorage(existing, dtype, size);
  const slice = new StorageRef(view[0], dtype, size, { storage: root, offset });
  storages.set(view[0], slice);
  return slice;
}

/** Walks the raw storages after the key list: per key, an int64 element count and the bytes. */
function legacyStorageData(
  bytes: Uint8Array,
  keys: unknown,
  start: number,
  storages: Map<string, StorageRef>,
): Map<StorageRef, Uint8Array> {
  if (!Array.isArray(keys)) {
    throw new Problem(`the storage key list is ${describe(keys)}, not a list`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = new Map<StorageRef, Uint8Array>();
  let at = start;
  for (const key of keys) {
    const storage = typeof key === "string" ? storages.get(key) : undefined;
    if (!storage || storage.root) {
      throw new Problem(
        `the storage key list names ${describe(key)}, which the object does not use as a storage`,
      );
    }
    if (data.has(storage)) throw new Problem(`the storage key list names ${quote(key)} twice`);
    if (at + 8 > bytes.length) {
      throw new Problem(
        `storage ${quote(key)}: the file ends before its element count (offset ${at})`,
      );
    }
    const count = view.getBigInt64(at, true);
    if (count !== BigInt(storage.numel)) {
      throw new Problem(
        `storage ${
          quote(key)
        } holds ${count} elements in the file but ${storage.numel} in the pickle`,
      );
    }
    const length = storage.numel * ITEMSIZE[storage.dtype];
    if (length > bytes.length - at - 8) {
      throw new Problem(
        `storage ${quote(key)} claims ${storage.numel} ${storage.dtype} elements (${
          formatBytes(length)
        }) but only ${formatBytes(bytes.length - at - 8)} remain in the file`,
      );
    }
    data.set(storage, bytes.subarray(at + 8, at + 8 + length));
    at += 8 + length;
  }
  return data;
}

// ---- finding the state_dict ------------------------------------------------------------------

function listNames(keys: Iterable<unknown>): string {
  const names = [...keys].map((k) => typeof k === "string" ? quote(k) : describe(k));
  return names.length > 12
    ? `${names.slice(0, 12).join(", ")}, ... (${names.length} in all)`
    : names.join(", ");
}

/** The saved dict of tensors, or the one under 'state_dict' or 'model'. */
function findStateDict(value: unknown): Map<string, TensorRef> {
  if (value instanceof TensorRef) {
    throw new Problem("the file holds a single tensor, not a state_dict (a dict of named tensors)");
  }
  if (!(value instanceof Map)) {
    throw new Problem(
      `the file holds ${describe(value)}, not a state_dict (a dict of named tensors)`,
    );
  }
  for (const key of ["state_dict", "model"]) {
    if (value.has(key)) return checkStateDict(value.get(key), `the ${quote(key)} entry`);
  }
  const problem = stateDictProblem(value);
  if (problem) {
    throw new Problem(
      `no state_dict found: the top-level dict (keys: ${listNames(value.keys())}) ${problem}, ` +
        "and it has no 'state_dict' or 'model' entry",
    );
  }
  return value as Map<string, TensorRef>;
}

function checkStateDict(value: unknown, where: string): Map<string, TensorRef> {
  if (!(value instanceof Map)) {
    throw new Problem(`${where} holds ${describe(value)}, not a dict of tensors`);
  }
  const problem = stateDictProblem(value);
  if (problem) throw new Problem(`${where} is not a state_dict: it ${problem}`);
  return value as Map<string, TensorRef>;
}

function stateDictProblem(map: Map<unknown, unknown>): string | undefined {
  for (const [key, item] of map) {
    if (typeof key !== "string") return `has the key ${describe(key)}, not a string`;
    if (!(item instanceof TensorRef)) {
      return `holds ${describe(item)} under ${quote(key)}, not a tensor`;
    }
  }
  return undefined;
}
