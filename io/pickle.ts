/**
 * A safe subset of Python's pickle, enough to read what `torch.save` writes.
 *
 * A pickle is a program for a small stack machine (Python's `Lib/pickle.py` is the reference,
 * `pickletools.dis` prints one): each opcode pushes a value (`K 6` pushes the int 6, `X 'cpu'`
 * a string), builds a container from the values above the last MARK (`t` makes a tuple, `u`
 * adds key/value pairs to a dict), stores or fetches a value in the memo (`q 5` / `h 5`, how
 * shared objects are written once), or, the dangerous part, imports a global (`c torch
 * FloatStorage`) and calls it on a tuple (`R`, REDUCE). `pickle.load` imports any global it is
 * given, so a pickle can call `posix.system("...")`: loading one runs code.
 *
 * This reader runs no code. A global becomes whatever the caller's `findClass` returns for it
 * (an allowlist; everything else is refused, naming the global), and REDUCE may only call a
 * {@link PickleCallable} that `findClass` handed out. Persistent ids (how torch refers to
 * storages outside the pickle) go to the caller's `persistentLoad`.
 *
 * Python values become: None -> null, bool -> boolean, int -> number (bigint beyond 2^53),
 * float -> number, str -> string, bytes -> Uint8Array, list -> array, tuple -> frozen array,
 * dict -> Map, set and frozenset -> Set.
 *
 * The input is untrusted. The machine is a loop, not a recursion, so nesting depth costs no
 * native stack; every length is checked against the bytes left, every memo reference against
 * the memo, every pop against the stack and the marks; each opcode allocates at most what its
 * own bytes describe (integers are limited to {@link MAX_INT_BYTES} bytes), so memory and time
 * grow linearly with the pickle. Every problem is a {@link PickleError} naming the opcode and
 * its offset.
 *
 * @module
 */

/** A malformed or refused pickle; the message names the problem and its byte offset. */
export class PickleError extends Error {
  /** `message` names the problem and, from the machine, the byte offset. */
  constructor(message: string) {
    super(message);
    this.name = "PickleError";
  }
}

/** A global the caller allows to be called by REDUCE (or NEWOBJ, when it is a class). */
export class PickleCallable {
  /**
   * The global `name`, calling `call` on its argument tuple.
   *
   * @param name the global's dotted name, for messages (`collections.OrderedDict`)
   * @param call builds the value from the argument tuple; throws a PickleError to refuse
   * @param isClass true for a class (NEWOBJ may instantiate it), false for a function
   */
  constructor(
    readonly name: string,
    readonly call: (args: readonly unknown[]) => unknown,
    readonly isClass = false,
  ) {}
}

/** How {@link unpickle} resolves what lies outside the pickle. */
export interface UnpickleOptions {
  /** Offset of the pickle's first opcode in `bytes` (default 0). */
  start?: number;
  /** The value of the global `module.name`; throws (a PickleError) to refuse it. */
  findClass(module: string, name: string): unknown;
  /** The value of a persistent id; without it, a persistent id is an error. */
  persistentLoad?(pid: unknown): unknown;
  /** Applies BUILD's `state` to `target`; without it, BUILD is an error. */
  build?(target: unknown, state: unknown): void;
  /**
   * The most memory the values may take, estimated as {@link MEMORY_COST} says (default: no
   * limit). A pickle's bytes are terse (`}` is a whole dict), so without a limit a file of
   * a few hundred MB could ask for tens of GB.
   */
  maxMemory?: number;
}

/**
 * The estimate of memory that `maxMemory` bounds: per value on the stack, in a container or
 * in the memo, per container (list, tuple, dict, set, or an object a callable returns), and
 * per string or bytes character. Values near what a JavaScript engine spends on each.
 */
export const MEMORY_COST = { slot: 16, container: 64, character: 2 } as const;

/** The largest integer opcode argument read, in bytes (Python has no limit; torch uses 10). */
export const MAX_INT_BYTES = 64;

const MARK = 0x28, STOP = 0x2e, POP = 0x30, POP_MARK = 0x31, DUP = 0x32, FLOAT = 0x46;
const INT = 0x49, BININT = 0x4a, BININT1 = 0x4b, LONG = 0x4c, BININT2 = 0x4d, NONE = 0x4e;
const PERSID = 0x50, BINPERSID = 0x51, REDUCE = 0x52, STRING = 0x53, BINSTRING = 0x54;
const SHORT_BINSTRING = 0x55, UNICODE = 0x56, BINUNICODE = 0x58, APPEND = 0x61, BUILD = 0x62;
const GLOBAL = 0x63, DICT = 0x64, EMPTY_DICT = 0x7d, APPENDS = 0x65, GET = 0x67, BINGET = 0x68;
const INST = 0x69, LONG_BINGET = 0x6a, LIST = 0x6c, EMPTY_LIST = 0x5d, OBJ = 0x6f, PUT = 0x70;
const BINPUT = 0x71, LONG_BINPUT = 0x72, SETITEM = 0x73, TUPLE = 0x74, EMPTY_TUPLE = 0x29;
const SETITEMS = 0x75, BINFLOAT = 0x47, PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83;
const EXT4 = 0x84, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89;
const LONG1 = 0x8a, LONG4 = 0x8b, BINBYTES = 0x42, SHORT_BINBYTES = 0x43;
const SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e, EMPTY_SET = 0x8f;
const ADDITEMS = 0x90, FROZENSET = 0x91, NEWOBJ_EX = 0x92, STACK_GLOBAL = 0x93, MEMOIZE = 0x94;
const FRAME = 0x95, BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97, READONLY_BUFFER = 0x98;

/** Opcodes this reader refuses, with the reason. */
const REFUSED: Record<number, string> = {
  [INST]: "INST (protocol 0 object creation)",
  [OBJ]: "OBJ (protocol 1 object creation)",
  [EXT1]: "EXT1 (extension registry)",
  [EXT2]: "EXT2 (extension registry)",
  [EXT4]: "EXT4 (extension registry)",
  [STRING]: "STRING (protocol 0 quoted string)",
  [UNICODE]: "UNICODE (protocol 0 escaped string)",
  [NEXT_BUFFER]: "NEXT_BUFFER (out-of-band buffer)",
  [READONLY_BUFFER]: "READONLY_BUFFER (out-of-band buffer)",
  [NEWOBJ_EX]: "NEWOBJ_EX (object creation with keyword arguments)",
};

const utf8 = new TextDecoder("utf-8", { fatal: true });
const ascii = new TextDecoder("latin1");

/** True for a Python tuple as {@link unpickle} returns it (a frozen array). */
export function isTuple(value: unknown): value is readonly unknown[] {
  return Array.isArray(value) && Object.isFrozen(value);
}

/**
 * Runs the pickle that starts at `options.start` in `bytes` and returns the value it builds
 * and the offset just past its STOP opcode (where the next pickle of a stream begins).
 */
export function unpickle(
  bytes: Uint8Array,
  options: UnpickleOptions,
): { value: unknown; end: number; memory: number } {
  return new Machine(bytes, options).run();
}

class Machine {
  readonly view: DataView;
  readonly stack: unknown[] = [];
  /** Stack heights at each open MARK. */
  readonly marks: number[] = [];
  readonly memo = new Map<number, unknown>();
  position: number;
  /** Offset of the opcode being run, for messages. */
  at = 0;
  /** Estimated memory of the values so far (see MEMORY_COST). */
  memory = 0;
  readonly maxMemory: number;

  constructor(readonly bytes: Uint8Array, readonly options: UnpickleOptions) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.position = options.start ?? 0;
    this.maxMemory = options.maxMemory ?? Infinity;
  }

  fail(problem: string): never {
    throw new PickleError(`pickle byte ${this.at}: ${problem}`);
  }

  run(): { value: unknown; end: number; memory: number } {
    while (true) {
      if (this.position >= this.bytes.length) {
        this.fail("the pickle ends without a STOP opcode (truncated)");
      }
      this.at = this.position;
      const op = this.bytes[this.position++];
      if (op === STOP) return { value: this.pop(), end: this.position, memory: this.memory };
      this.step(op);
    }
  }

  // ---- reading the opcode's argument ----

  take(length: number): Uint8Array {
    if (length > this.bytes.length - this.position) {
      this.fail(
        `opcode 0x${this.bytes[this.at].toString(16)} needs ${length} bytes but ${
          this.bytes.length - this.position
        } remain`,
      );
    }
    const out = this.bytes.subarray(this.position, this.position + length);
    this.position += length;
    return out;
  }

  u8(): number {
    return this.take(1)[0];
  }

  u16(): number {
    const b = this.take(2);
    return b[0] | (b[1] << 8);
  }

  u32(): number {
    const at = this.position;
    this.take(4);
    return this.view.getUint32(at, true);
  }

  i32(): number {
    const at = this.position;
    this.take(4);
    return this.view.getInt32(at, true);
  }

  f64BigEndian(): number {
    const at = this.position;
    this.take(8);
    return this.view.getFloat64(at, false);
  }

  u64(): number {
    const at = this.position;
    this.take(8);
    const value = this.view.getBigUint64(at, true);
    // Every 64-bit length is checked against the bytes left, which a safe integer bounds.
    return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
  }

  line(): string {
    const end = this.bytes.indexOf(0x0a, this.position);
    if (end < 0) this.fail("a text argument has no terminating newline");
    const text = ascii.decode(this.bytes.subarray(this.position, end));
    this.position = end + 1;
    return text;
  }

  text(length: number): string {
    const raw = this.take(length);
    this.charge(raw.length * MEMORY_COST.character);
    try {
      return utf8.decode(raw);
    } catch {
      return this.fail("a string is not valid UTF-8");
    }
  }

  binary(length: number): Uint8Array {
    const raw = this.take(length);
    this.charge(MEMORY_COST.container + raw.length);
    return raw.slice();
  }

  // ---- the stack, and the memory it holds ----

  charge(bytes: number): void {
    this.memory += bytes;
    if (this.memory > this.maxMemory) {
      this.fail(
        `the pickle's values need more than ${this.maxMemory} bytes of memory (estimated: ` +
          `${MEMORY_COST.container} per list, tuple, dict or set, ${MEMORY_COST.slot} per item)`,
      );
    }
  }

  push(value: unknown): void {
    this.charge(MEMORY_COST.slot);
    this.stack.push(value);
  }

  /** `value`, a container just built, charged for. */
  fresh<T>(value: T): T {
    this.charge(MEMORY_COST.container);
    return value;
  }

  pop(): unknown {
    if (this.stack.length <= (this.marks.at(-1) ?? 0)) this.fail("stack underflow");
    return this.stack.pop();
  }

  top(): unknown {
    if (this.stack.length <= (this.marks.at(-1) ?? 0)) this.fail("stack underflow");
    return this.stack[this.stack.length - 1];
  }

  /** The values pushed since the last MARK, removing them and the mark. */
  popMark(): unknown[] {
    const mark = this.marks.pop();
    if (mark === undefined) this.fail("no MARK to pop to");
    return this.stack.splice(mark);
  }

  memoGet(index: number): void {
    if (!this.memo.has(index)) this.fail(`memo entry ${index} is read before it is written`);
    this.push(this.memo.get(index));
  }

  memoPut(index: number): void {
    if (!this.memo.has(index)) this.charge(MEMORY_COST.slot);
    this.memo.set(index, this.top());
  }

  // ---- the opcodes ----

  step(op: number): void {
    switch (op) {
      case PROTO: {
        const version = this.u8();
        if (version > 5) this.fail(`pickle protocol ${version} is newer than 5`);
        return;
      }
      case FRAME:
        this.take(8); // a length hint for buffered readers; the opcodes follow inline
        return;
      case MARK:
        this.charge(MEMORY_COST.slot);
        this.marks.push(this.stack.length);
        return;
      case POP:
        this.pop();
        return;
      case POP_MARK:
        this.popMark();
        return;
      case DUP:
        return this.push(this.top());
      case NONE:
        return this.push(null);
      case NEWTRUE:
        return this.push(true);
      case NEWFALSE:
        return this.push(false);
      case BININT:
        return this.push(this.i32());
      case BININT1:
        return this.push(this.u8());
      case BININT2:
        return this.push(this.u16());
      case INT:
        return this.push(this.textInt(this.line()));
      case LONG:
        return this.push(this.textInt(this.line().replace(/L$/, "")));
      case LONG1:
        return this.push(this.long(this.u8()));
      case LONG4:
        return this.push(this.long(this.i32()));
      case BINFLOAT:
        return this.push(this.f64BigEndian());
      case FLOAT: {
        const text = this.line();
        const value = Number(text);
        if (!/^\s*[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|inf|nan)\s*$/i.test(text)) {
          this.fail(`FLOAT argument ${printable(text)} is not a number`);
        }
        return this.push(Number.isNaN(value) ? pythonFloat(text) : value);
      }
      case BINUNICODE:
        return this.push(this.text(this.u32()));
      case SHORT_BINUNICODE:
        return this.push(this.text(this.u8()));
      case BINUNICODE8:
        return this.push(this.text(this.u64()));
      // Python 2 `str`; torch.load decodes it as UTF-8.
      case BINSTRING: {
        const length = this.i32();
        if (length < 0) this.fail(`BINSTRING length ${length} is negative`);
        return this.push(this.text(length));
      }
      case SHORT_BINSTRING:
        return this.push(this.text(this.u8()));
      case BINBYTES:
        return this.push(this.binary(this.u32()));
      case SHORT_BINBYTES:
        return this.push(this.binary(this.u8()));
      case BINBYTES8:
      case BYTEARRAY8:
        return this.push(this.binary(this.u64()));
      case EMPTY_LIST:
        return this.push(this.fresh([]));
      case EMPTY_TUPLE:
        return this.push(this.fresh(Object.freeze([])));
      case EMPTY_DICT:
        return this.push(this.fresh(new Map()));
      case EMPTY_SET:
        return this.push(this.fresh(new Set()));
      case LIST:
        return this.push(this.fresh(this.popMark()));
      case TUPLE:
        return this.push(this.fresh(Object.freeze(this.popMark())));
      case TUPLE1:
      case TUPLE2:
      case TUPLE3: {
        const items = Array.from({ length: op - TUPLE1 + 1 }, () => this.pop()).reverse();
        return this.push(this.fresh(Object.freeze(items)));
      }
      case FROZENSET:
        return this.push(this.fresh(new Set(this.popMark())));
      case DICT: {
        const map = this.fresh(new Map());
        this.setItems(map, this.popMark());
        return this.push(map);
      }
      case APPEND: {
        const value = this.pop();
        this.charge(MEMORY_COST.slot);
        this.list(this.top()).push(value);
        return;
      }
      case APPENDS: {
        const items = this.popMark();
        const list = this.list(this.top());
        this.charge(items.length * MEMORY_COST.slot);
        for (const item of items) list.push(item);
        return;
      }
      case SETITEM: {
        const value = this.pop();
        const key = this.pop();
        return this.setItems(this.top(), [key, value]);
      }
      case SETITEMS: {
        const items = this.popMark();
        return this.setItems(this.top(), items);
      }
      case ADDITEMS: {
        const items = this.popMark();
        const set = this.top();
        if (!(set instanceof Set)) this.fail(`ADDITEMS on ${describe(set)}, not a set`);
        this.charge(items.length * MEMORY_COST.slot);
        for (const item of items) (set as Set<unknown>).add(item);
        return;
      }
      case GET:
        return this.memoGet(this.decimal(this.line(), "GET"));
      case BINGET:
        return this.memoGet(this.u8());
      case LONG_BINGET:
        return this.memoGet(this.u32());
      case PUT:
        return this.memoPut(this.decimal(this.line(), "PUT"));
      case BINPUT:
        return this.memoPut(this.u8());
      case LONG_BINPUT:
        return this.memoPut(this.u32());
      case MEMOIZE:
        return this.memoPut(this.memo.size);
      case GLOBAL: {
        const module = this.line();
        return this.push(this.global(module, this.line()));
      }
      case STACK_GLOBAL: {
        const name = this.pop();
        const module = this.pop();
        if (typeof module !== "string" || typeof name !== "string") {
          this.fail("STACK_GLOBAL needs two strings, module and name");
        }
        return this.push(this.global(module as string, name as string));
      }
      case REDUCE: {
        const args = this.pop();
        return this.push(this.call(this.pop(), args, false));
      }
      case NEWOBJ: {
        const args = this.pop();
        return this.push(this.call(this.pop(), args, true));
      }
      case BUILD: {
        const state = this.pop();
        if (!this.options.build) this.fail("BUILD (setting an object's state) is not allowed here");
        return this.options.build(this.top(), state);
      }
      case PERSID:
        return this.push(this.persistent(this.line()));
      case BINPERSID:
        return this.push(this.persistent(this.pop()));
    }
    const refused = REFUSED[op];
    if (refused) this.fail(`opcode ${refused} is not supported`);
    this.fail(`unknown opcode 0x${op.toString(16).padStart(2, "0")}`);
  }

  // ---- helpers of the opcodes ----

  textInt(text: string): number | bigint | boolean {
    // Protocol 0 writes True and False as I01 and I00.
    if (text === "01") return true;
    if (text === "00") return false;
    if (!/^[-+]?\d{1,64}$/.test(text)) {
      this.fail(`INT/LONG argument ${printable(text)} is not an integer`);
    }
    return normalise(BigInt(text));
  }

  decimal(text: string, op: string): number {
    if (!/^\d{1,15}$/.test(text)) {
      this.fail(`${op} index ${printable(text)} is not a decimal number`);
    }
    return Number(text);
  }

  /** A little-endian two's-complement integer of `length` bytes (LONG1, LONG4). */
  long(length: number): number | bigint {
    if (length < 0) this.fail(`LONG4 length ${length} is negative`);
    if (length > MAX_INT_BYTES) {
      this.fail(
        `an integer of ${length} bytes is larger than this reader accepts (${MAX_INT_BYTES})`,
      );
    }
    const raw = this.take(length);
    let value = 0n;
    for (let i = raw.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(raw[i]);
    if (length > 0 && raw[length - 1] & 0x80) value -= 1n << BigInt(8 * length);
    return normalise(value);
  }

  list(target: unknown): unknown[] {
    if (!Array.isArray(target) || Object.isFrozen(target)) {
      this.fail(`APPEND to ${describe(target)}, not a list`);
    }
    return target as unknown[];
  }

  setItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof Map)) this.fail(`SETITEM on ${describe(target)}, not a dict`);
    this.charge(items.length * MEMORY_COST.slot);
    if (items.length % 2 !== 0) this.fail("SETITEMS with an odd number of keys and values");
    for (let i = 0; i < items.length; i += 2) {
      const key = items[i];
      // Python refuses unhashable keys; a Map would key them by identity instead.
      if (Array.isArray(key) && !Object.isFrozen(key) || key instanceof Map || key instanceof Set) {
        this.fail(`a dict key is ${describe(key)}, which Python cannot hash`);
      }
      (target as Map<unknown, unknown>).set(key, items[i + 1]);
    }
  }

  global(module: string, name: string): unknown {
    try {
      return this.options.findClass(module, name);
    } catch (error) {
      if (error instanceof PickleError) this.fail(error.message);
      throw error;
    }
  }

  call(callable: unknown, args: unknown, newObject: boolean): unknown {
    const op = newObject ? "NEWOBJ" : "REDUCE";
    if (!(callable instanceof PickleCallable)) {
      this.fail(`${op} calls ${describe(callable)}, which is not callable`);
    }
    const target = callable as PickleCallable;
    if (newObject && !target.isClass) this.fail(`NEWOBJ on ${target.name}, which is not a class`);
    if (!isTuple(args)) {
      this.fail(`${op} of ${target.name} with arguments ${describe(args)}, not a tuple`);
    }
    this.charge(MEMORY_COST.container);
    try {
      return target.call(args as readonly unknown[]);
    } catch (error) {
      if (error instanceof PickleError) this.fail(error.message);
      throw error;
    }
  }

  persistent(pid: unknown): unknown {
    if (!this.options.persistentLoad) {
      this.fail("a persistent id appears, but none is expected here");
    }
    this.charge(MEMORY_COST.container);
    try {
      return this.options.persistentLoad(pid);
    } catch (error) {
      if (error instanceof PickleError) this.fail(error.message);
      throw error;
    }
  }
}

/**
 * `text` for an error message: as is when it looks like a Python name (`posix.system`), else
 * JSON-quoted, and cut to about 60 characters either way (a text argument can run to the end
 * of a corrupt file).
 */
export function printable(text: string): string {
  const short = text.length > 60 ? `${text.slice(0, 57)}...` : text;
  return /^[\w.]*$/.test(text) && text.length <= 60 ? text : JSON.stringify(short);
}

/** `'name'` for a message: control characters escaped, cut to about 60 characters. */
export function quote(name: string): string {
  const short = name.length > 60 ? `${name.slice(0, 57)}...` : name;
  return `'${JSON.stringify(short).slice(1, -1)}'`;
}

/** An integer as a number when it is exactly representable, else as a bigint. */
function normalise(value: bigint): number | bigint {
  return value >= -BigInt(Number.MAX_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value;
}

function pythonFloat(text: string): number {
  const t = text.trim().toLowerCase();
  if (t.endsWith("inf")) return t.startsWith("-") ? -Infinity : Infinity;
  return NaN;
}

/**
 * A short description of a pickled value for error messages: its Python type, or for the
 * caller's own objects their `pickleDescription` string.
 */
export function describe(value: unknown): string {
  if (value === null) return "None";
  if (value === undefined) return "undefined";
  if (typeof value === "boolean") return `bool ${value ? "True" : "False"}`;
  if (typeof value === "number" || typeof value === "bigint") return `number ${value}`;
  if (typeof value === "string") {
    return `str ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "..." : value)}`;
  }
  if (value instanceof Uint8Array) return `bytes of length ${value.length}`;
  if (isTuple(value)) return `a tuple of ${value.length}`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value instanceof Map) return `a dict of ${value.size}`;
  if (value instanceof Set) return `a set of ${value.size}`;
  if (value instanceof PickleCallable) return value.name;
  const own = (value as { pickleDescription?: unknown }).pickleDescription;
  if (typeof own === "string") return own;
  return (value as object)?.constructor?.name ?? typeof value;
}
