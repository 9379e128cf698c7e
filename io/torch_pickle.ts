/**
 * What a `torch.save` pickle may name, and what each name becomes: the allowlist of
 * io/torch.ts.
 *
 *     global                                     value here
 *     collections.OrderedDict                    a Map (a state_dict, its `_metadata`)
 *     torch._utils._rebuild_tensor_v2            a TensorRef: storage, offset, size, stride
 *     torch._utils._rebuild_tensor (before 0.4)  the same, without requires_grad and hooks
 *     torch._utils._rebuild_parameter            the parameter's tensor
 *     torch.FloatStorage ... torch.BoolStorage   a StorageType (its dtype); also torch.cuda.*
 *     torch.float32 ... torch.bool               a StorageType (the same, named by dtype)
 *
 * and a persistent id `('storage', type, key, location, numel)` becomes a StorageRef, numbers
 * only: the bytes are found, and checked against these numbers, by the layout that holds
 * them. Every argument of every call is checked before it is used (types, non-negative
 * integers, a view inside its storage), and each problem is a PickleError, which the pickle
 * machine locates by byte offset.
 *
 * @module
 */

import { describe, isTuple, PickleCallable, PickleError, printable, quote } from "./pickle.ts";
import { outputItemsize, type TorchDtype } from "./torch_storage.ts";

/** A storage type (`torch.FloatStorage`) or dtype (`torch.float32`) named by the pickle. */
class StorageType {
  constructor(readonly dtype: TorchDtype) {}
  /** How error messages name it. */
  get pickleDescription(): string {
    return `the storage type of ${this.dtype}`;
  }
}

const STORAGE_TYPES: Record<string, TorchDtype> = {
  FloatStorage: "float32",
  DoubleStorage: "float64",
  HalfStorage: "float16",
  BFloat16Storage: "bfloat16",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
};

const DTYPES: Record<string, TorchDtype> = {
  float32: "float32",
  float: "float32",
  float64: "float64",
  double: "float64",
  float16: "float16",
  half: "float16",
  bfloat16: "bfloat16",
  int64: "int64",
  long: "int64",
  int32: "int32",
  int: "int32",
  int16: "int16",
  short: "int16",
  int8: "int8",
  uint8: "uint8",
  bool: "bool",
};

/** One storage: its element type, its key in the file, its length in elements. */
export class StorageRef {
  /** A storage named by a persistent id; `root` only for a legacy storage view. */
  constructor(
    readonly key: string,
    readonly dtype: TorchDtype,
    readonly numel: number,
    /** A legacy storage view: the storage it is a slice of, and where the slice starts. */
    readonly root?: { storage: StorageRef; offset: number },
  ) {}
  /** How error messages name it. */
  get pickleDescription(): string {
    return `storage ${quote(this.key)}`;
  }
}

/** One tensor: a strided view of a storage (see torch_storage.ts). */
export class TensorRef {
  /** A tensor rebuilt by the pickle: `storage` viewed from `offset` with `shape`, `stride`. */
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
  /** How error messages name it. */
  get pickleDescription(): string {
    return `a ${this.storage.dtype} tensor of size [${this.shape}]`;
  }
  /** The number of values. */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  /** Bytes of its values as tessera holds them. */
  outputBytes(): number {
    return this.numel * outputItemsize(this.storage.dtype);
  }
}

const ALLOWED =
  "collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter " +
  "and torch's storage types";

/** The allowlist: the value of each global the pickle may name; any other is refused. */
export function findClass(module: string, name: string): unknown {
  if (module === "collections" && name === "OrderedDict") return ORDERED_DICT;
  if (module === "torch._utils") {
    if (name === "_rebuild_tensor_v2") return REBUILD_TENSOR_V2;
    if (name === "_rebuild_tensor") return REBUILD_TENSOR;
    if (name === "_rebuild_parameter") return REBUILD_PARAMETER;
  }
  // GPU tensors saved by old versions name torch.cuda.FloatStorage; they load on the CPU.
  if ((module === "torch" || module === "torch.cuda") && Object.hasOwn(STORAGE_TYPES, name)) {
    return new StorageType(STORAGE_TYPES[name]);
  }
  if (module === "torch" && Object.hasOwn(DTYPES, name)) return new StorageType(DTYPES[name]);
  const hint = module.startsWith("torch") && name.endsWith("Storage")
    ? ` (tessera reads storages of ${[...new Set(Object.values(STORAGE_TYPES))].join(", ")})`
    : "; a state_dict needs only tensors, so save model.state_dict() rather than the model or other Python objects";
  throw new PickleError(
    `the pickle imports ${
      printable(`${module}.${name}`)
    }, which tessera does not allow (it allows ${ALLOWED})${hint}`,
  );
}

/** OrderedDicts, which (unlike plain dicts) may receive attributes (`_metadata`) by BUILD. */
const orderedDicts = new WeakSet<Map<unknown, unknown>>();

const ORDERED_DICT = new PickleCallable("collections.OrderedDict", (args) => {
  const map = new Map<unknown, unknown>();
  orderedDicts.add(map);
  if (args.length === 0) return map;
  // Python 2 pickled an OrderedDict as OrderedDict([[key, value], ...]).
  const items = args[0];
  if (args.length !== 1 || !Array.isArray(items)) {
    throw new PickleError(
      `collections.OrderedDict called with ${describe(args)}; expected () or (items,)`,
    );
  }
  for (const item of items) {
    if (!Array.isArray(item) || item.length !== 2) {
      throw new PickleError(
        `collections.OrderedDict item ${describe(item)} is not a [key, value] pair`,
      );
    }
    map.set(item[0], item[1]);
  }
  return map;
}, true);

/** BUILD on an OrderedDict sets its attributes; a state_dict's `_metadata` is not needed. */
export function build(target: unknown, state: unknown): void {
  if (!(target instanceof Map) || !orderedDicts.has(target)) {
    throw new PickleError(`BUILD (setting attributes) on ${describe(target)} is not allowed`);
  }
  const ok = state instanceof Map || (isTuple(state) && state.length === 2 &&
    state.every((part) => part === null || part instanceof Map));
  if (!ok) throw new PickleError(`BUILD of an OrderedDict with state ${describe(state)}`);
}

/** `value` if it is a non-negative safe integer; else a PickleError naming `what`. */
export function index(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new PickleError(`${what} must be a non-negative integer, got ${describe(value)}`);
  }
  return value;
}

function indexTuple(value: unknown, what: string): number[] {
  if (!isTuple(value) && !Array.isArray(value)) {
    throw new PickleError(`${what} must be a tuple of integers, got ${describe(value)}`);
  }
  return (value as unknown[]).map((v, i) => index(v, `${what}[${i}]`));
}

/** The most dimensions a tensor may have: far more than any model's, and it keeps messages short. */
const MAX_DIMS = 64;

/** torch._utils._rebuild_tensor(storage, storage_offset, size, stride). */
function rebuildTensor(args: readonly unknown[], fn: string): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) {
    throw new PickleError(`${fn}: the storage argument is ${describe(storage)}, not a storage`);
  }
  const shape = indexTuple(size, `${fn}: size`);
  const strides = indexTuple(stride, `${fn}: stride`);
  if (shape.length !== strides.length) {
    throw new PickleError(
      `${fn}: size has ${shape.length} dimensions but stride has ${strides.length}`,
    );
  }
  if (shape.length > MAX_DIMS) {
    throw new PickleError(
      `${fn}: a tensor of ${shape.length} dimensions; tessera reads at most ${MAX_DIMS}`,
    );
  }
  let numel = 1;
  for (const dim of shape) {
    numel *= dim;
    if (numel > Number.MAX_SAFE_INTEGER) {
      throw new PickleError(`${fn}: size ${describe(size)} is too large`);
    }
  }
  const tensor = new TensorRef(storage, index(offset, `${fn}: storage_offset`), shape, strides);
  checkInside(tensor, fn);
  return tensor;
}

/** The view's last element must lie inside its storage (nothing is read for an empty one). */
function checkInside(tensor: TensorRef, fn: string): void {
  if (tensor.numel === 0) return;
  let last = tensor.offset;
  tensor.shape.forEach((dim, d) => last += (dim - 1) * tensor.stride[d]);
  if (last >= tensor.storage.numel) {
    throw new PickleError(
      `${fn}: a tensor of size [${tensor.shape}], stride [${tensor.stride}], offset ${tensor.offset} reads element ${last} of storage ${
        quote(tensor.storage.key)
      }, which holds ${tensor.storage.numel} elements`,
    );
  }
}

const REBUILD_TENSOR = new PickleCallable("torch._utils._rebuild_tensor", (args) => {
  if (args.length !== 4) {
    throw new PickleError(`torch._utils._rebuild_tensor takes 4 arguments, got ${args.length}`);
  }
  return rebuildTensor(args, "torch._utils._rebuild_tensor");
});

const REBUILD_TENSOR_V2 = new PickleCallable("torch._utils._rebuild_tensor_v2", (args) => {
  const fn = "torch._utils._rebuild_tensor_v2";
  if (args.length !== 6 && args.length !== 7) {
    throw new PickleError(`${fn} takes 6 or 7 arguments, got ${args.length}`);
  }
  if (typeof args[4] !== "boolean") {
    throw new PickleError(`${fn}: requires_grad is ${describe(args[4])}`);
  }
  // Extra Python attributes (a 7th argument) would change the tensor; refuse rather than drop.
  const metadata = args[6];
  if (
    metadata !== undefined && metadata !== null && !(metadata instanceof Map && metadata.size === 0)
  ) {
    throw new PickleError(
      `${fn}: the tensor carries Python metadata ${describe(metadata)}, which tessera cannot keep`,
    );
  }
  return rebuildTensor(args, fn);
});

const REBUILD_PARAMETER = new PickleCallable("torch._utils._rebuild_parameter", (args) => {
  if (args.length !== 3 || !(args[0] instanceof TensorRef)) {
    throw new PickleError(
      `torch._utils._rebuild_parameter expects (tensor, requires_grad, hooks), got ${
        describe(args)
      }`,
    );
  }
  return args[0];
});

/** Checks a persistent id's common fields: ('storage', type, key, location, numel, ...). */
export function storageId(
  pid: unknown,
  length: number,
): { dtype: TorchDtype; key: string; numel: number } {
  if (!isTuple(pid) || pid.length !== length || pid[0] !== "storage") {
    throw new PickleError(
      `persistent id ${describe(pid)} is not ('storage', type, key, location, numel${
        length === 6 ? ", view" : ""
      })`,
    );
  }
  const [, type, key, location, numel] = pid;
  if (!(type instanceof StorageType)) {
    throw new PickleError(`a storage's type is ${describe(type)}`);
  }
  if (typeof key !== "string") {
    throw new PickleError(`a storage's key is ${describe(key)}, not a string`);
  }
  if (typeof location !== "string") {
    throw new PickleError(`storage ${quote(key)} has location ${describe(location)}`);
  }
  return { dtype: type.dtype, key, numel: index(numel, `storage ${quote(key)}: numel`) };
}

/** The same key must always mean the same storage. */
export function sameStorage(known: StorageRef, dtype: TorchDtype, numel: number): StorageRef {
  if (known.dtype !== dtype || known.numel !== numel) {
    throw new PickleError(
      `storage ${
        quote(known.key)
      } is named as ${known.numel} ${known.dtype} elements and as ${numel} ${dtype} elements`,
    );
  }
  return known;
}

/** A pickle of plain data only (the legacy header pickles and the storage key list). */
export function refuseGlobals(module: string, name: string): never {
  throw new PickleError(
    `the pickle imports ${printable(`${module}.${name}`)} where only plain data belongs`,
  );
}
