/**
 * A small WebAssembly emitter: TypeScript in, a module's bytes out, no toolchain and no .wasm
 * file. tessera's fast CPU kernels are written with it the way its GPU kernels are written in
 * WGSL strings: a reader sees every instruction a kernel runs, in the file that emits it.
 *
 * @example
 * ```ts
 * import { ModuleBuilder } from "./emitter.ts";
 *
 * const builder = new ModuleBuilder();
 * builder.importMemory("env", "memory", { initial: 1 });
 * // sum(pointer, count): the float32 sum of count floats at byte address pointer.
 * builder.addFunction("sum", { pointer: "i32", count: "i32" }, ["f32"], (f) => {
 *   f.local("total", "f32");
 *   f.loopWhile(() => f.get("count"), () => {
 *     f.get("total").get("pointer").f32Load().f32Add().set("total");
 *     f.get("pointer").i32Const(4).i32Add().set("pointer");
 *     f.get("count").i32Const(1).i32Sub().set("count");
 *   });
 *   f.get("total");
 * });
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const { instance } = await WebAssembly.instantiate(builder.bytes(), { env: { memory } });
 * new Float32Array(memory.buffer).set([1, 2, 3]);
 * (instance.exports.sum as (p: number, n: number) => number)(0, 3); // 6
 * ```
 *
 * ## The binary format, as much of it as tessera uses
 *
 * A module is the 8-byte header `00 61 73 6d` ("\0asm") and `01 00 00 00` (version 1), then
 * sections in a fixed order, each `id, byte length, contents`:
 *
 * | id | section  | holds                                                           |
 * |----|----------|-----------------------------------------------------------------|
 * | 1  | type     | function signatures: `0x60, params, results`                    |
 * | 2  | import   | here only the memory: `module name, field name, 0x02, limits`   |
 * | 3  | function | one type index per function defined in the module               |
 * | 7  | export   | `name, 0x00 (function), function index`                         |
 * | 10 | code     | one body per function: `byte length, locals, instructions, 0x0b` |
 *
 * Integers are LEB128: seven bits per byte, low bits first, the top bit set on every byte but
 * the last. Unsigned 624485 is `e5 8e 26`; signed numbers (`i32.const`) sign-extend from the
 * last byte's bit 6, so -1 is `7f` and 64 is `c0 00`. Strings and vectors are a length then
 * their items. Floats are little-endian IEEE 754.
 *
 * Value types are single bytes: i32 `7f`, i64 `7e`, f32 `7d`, f64 `7c`, v128 `7b`. A memory's
 * limits are `00 min`, `01 min max`, or `03 min max` for a shared memory (threads), in 64 KiB
 * pages. Memory instructions carry a "memarg": log2 of the alignment hint, then a constant
 * byte offset added to the address on the stack.
 *
 * Instructions run on a stack machine: `local.get a; local.get b; f32.add` leaves a + b. Most
 * are one byte; SIMD instructions are the prefix `fd` then their number as unsigned LEB128
 * (`f32x4.relaxed_madd` is 0x105, so `fd 85 02`), atomics the prefix `fe` then one byte.
 * Structured control flow replaces goto: `block`/`loop` open a label, `br n` jumps to the n-th
 * enclosing label (the end of a block, the start of a loop), `end` (`0b`) closes it.
 *
 * ## API
 *
 * - {@link ModuleBuilder}: `importMemory`, `addFunction(name, params, results, body)` (exported
 *   under `name`), `bytes()`.
 * - {@link FunctionBuilder}: named locals (`local`, `get`, `set`, `tee`), and one chainable
 *   method per instruction (`i32Add`, `f32x4Mul`, `f32x4RelaxedMadd`, `v128Load`, ...), plus
 *   helpers for the usual loops (`loopWhile`, `forRange`) and `ifThen`.
 * - `simd(opcode, ...immediates)` for any SIMD instruction without a method, and `emit(...bytes)`
 *   for anything else; {@link memarg} builds a memory instruction's immediates.
 * - {@link encodeUnsigned}, {@link encodeSigned}, {@link encodeF32}: the encodings themselves.
 * - {@link simdSupported}, {@link relaxedSimdSupported}: feature tests on tiny modules.
 *
 * The format, LEB128, sections and locals come first; the rest is {@link FunctionBuilder}, one
 * short method per instruction.
 *
 * @module
 */

/** A WebAssembly value type. */
export type ValueType = "i32" | "i64" | "f32" | "f64" | "v128";

const VALUE_TYPE: Record<ValueType, number> = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
};

/** Unsigned LEB128 of a non-negative integer below 2^32. */
export function encodeUnsigned(value: number): number[] {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** 32) {
    throw new RangeError(`wasm emitter: ${value} is not an unsigned 32-bit integer`);
  }
  const bytes: number[] = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (value !== 0);
  return bytes;
}

/** Signed LEB128 of an integer in [-2^31, 2^31). */
export function encodeSigned(value: number): number[] {
  if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) {
    throw new RangeError(`wasm emitter: ${value} is not a signed 32-bit integer`);
  }
  const bytes: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7; // arithmetic shift keeps the sign
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    bytes.push(done ? byte : byte | 0x80);
    if (done) return bytes;
  }
}

/** The 4 little-endian bytes of a float32. */
export function encodeF32(value: number): number[] {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setFloat32(0, value, true);
  return [...bytes];
}

function encodeString(text: string): number[] {
  const utf8 = new TextEncoder().encode(text);
  return [...encodeUnsigned(utf8.length), ...utf8];
}

function encodeVector(items: number[][]): number[] {
  return [...encodeUnsigned(items.length), ...items.flat()];
}

/** A section: id, byte length, contents. An empty vector section is left out entirely. */
function section(id: number, contents: number[]): number[] {
  if (contents.length === 1 && contents[0] === 0) return [];
  return [id, ...encodeUnsigned(contents.length), ...contents];
}

/** Limits of an imported memory, in 64 KiB pages. */
export interface MemoryLimits {
  initial: number;
  /** Required for a shared memory. */
  maximum?: number;
  /** A shared memory can be posted to workers (needs SharedArrayBuffer). */
  shared?: boolean;
}

interface FunctionEntry {
  name: string;
  typeIndex: number;
  body: FunctionBuilder;
}

/**
 * Collects a module's memory import and functions, then writes its bytes. Every function is
 * exported under its name; functions may call each other by name (earlier ones only).
 */
export class ModuleBuilder {
  #types: number[][] = [];
  #memory: number[] | null = null;
  #functions: FunctionEntry[] = [];

  /** Imports the module's one memory as `module.field`. */
  importMemory(module: string, field: string, limits: MemoryLimits): this {
    const { initial, maximum, shared = false } = limits;
    if (shared && maximum === undefined) {
      throw new RangeError("wasm emitter: a shared memory needs a maximum size");
    }
    const flags = (maximum === undefined ? 0 : 1) | (shared ? 2 : 0);
    this.#memory = [
      ...encodeString(module),
      ...encodeString(field),
      0x02, // import kind: memory
      flags,
      ...encodeUnsigned(initial),
      ...(maximum === undefined ? [] : encodeUnsigned(maximum)),
    ];
    return this;
  }

  /**
   * Adds and exports a function. `params` names its parameters in order (the body reads them
   * with `get(name)`); `build` emits its instructions, leaving `results` on the stack.
   */
  addFunction(
    name: string,
    params: Record<string, ValueType>,
    results: ValueType[],
    build: (f: FunctionBuilder) => void,
  ): number {
    if (this.#functions.some((entry) => entry.name === name)) {
      throw new Error(`wasm emitter: function ${name} is defined twice`);
    }
    const signature = [
      0x60,
      ...encodeVector(Object.values(params).map((type) => [VALUE_TYPE[type]])),
      ...encodeVector(results.map((type) => [VALUE_TYPE[type]])),
    ];
    let typeIndex = this.#types.findIndex((t) => t.join() === signature.join());
    if (typeIndex < 0) typeIndex = this.#types.push(signature) - 1;
    const body = new FunctionBuilder(params, (callee) => this.#functionIndex(callee));
    build(body);
    return this.#functions.push({ name, typeIndex, body }) - 1;
  }

  #functionIndex(name: string): number {
    const index = this.#functions.findIndex((entry) => entry.name === name);
    if (index < 0) throw new Error(`wasm emitter: call to undefined function ${name}`);
    return index;
  }

  /** The module's bytes, ready for `WebAssembly.Module` or `WebAssembly.validate`. */
  bytes(): Uint8Array<ArrayBuffer> {
    const functions = this.#functions;
    const out = [
      ...[0x00, 0x61, 0x73, 0x6d], // magic: "\0asm"
      ...[0x01, 0x00, 0x00, 0x00], // version 1
      ...section(1, encodeVector(this.#types)),
      ...(this.#memory ? section(2, encodeVector([this.#memory])) : []),
      ...section(3, encodeVector(functions.map((f) => encodeUnsigned(f.typeIndex)))),
      ...section(
        7,
        encodeVector(
          functions.map((f, i) => [...encodeString(f.name), 0x00, ...encodeUnsigned(i)]),
        ),
      ),
      ...section(10, encodeVector(functions.map((f) => f.body.encode()))),
    ];
    return new Uint8Array(out);
  }
}

/** log2 of the natural alignment of each memory access width, for memargs. */
export type Align = 0 | 1 | 2 | 3 | 4;

/** A memory instruction's immediates: log2 of its alignment hint, then its constant offset. */
export function memarg(align: Align, offset: number): number[] {
  return [align, ...encodeUnsigned(offset)];
}

/**
 * The body of one function: named locals and a chainable method per instruction. Methods
 * push the instruction's bytes; stack discipline is the caller's (the engine's validator
 * names any mistake when the module is compiled).
 */
export class FunctionBuilder {
  #code: number[] = [];
  #names = new Map<string, number>();
  #localTypes: ValueType[] = [];
  #paramCount: number;
  #functionIndex: (name: string) => number;

  constructor(params: Record<string, ValueType>, functionIndex: (name: string) => number) {
    for (const name of Object.keys(params)) this.#names.set(name, this.#names.size);
    this.#paramCount = this.#names.size;
    this.#functionIndex = functionIndex;
  }

  /** Declares a local (zero-initialised) and returns this builder. */
  local(name: string, type: ValueType): this {
    if (this.#names.has(name)) throw new Error(`wasm emitter: local ${name} declared twice`);
    this.#names.set(name, this.#paramCount + this.#localTypes.length);
    this.#localTypes.push(type);
    return this;
  }

  #index(name: string): number {
    const index = this.#names.get(name);
    if (index === undefined) throw new Error(`wasm emitter: no local or parameter ${name}`);
    return index;
  }

  /** Appends raw bytes: an opcode and its immediates. */
  emit(...bytes: number[]): this {
    for (const byte of bytes) this.#code.push(byte);
    return this;
  }

  #simd(opcode: number, ...immediates: number[]): this {
    return this.emit(0xfd, ...encodeUnsigned(opcode), ...immediates);
  }

  /**
   * Any SIMD instruction by its number (the prefix 0xfd and the LEB128 are added), for the
   * ones without a method: `simd(0xe0)` is f32x4.abs. Memory instructions need their memarg
   * as immediates: {@link memarg}.
   */
  simd(opcode: number, ...immediates: number[]): this {
    return this.#simd(opcode, ...immediates);
  }

  #memarg(align: Align, offset: number): number[] {
    return memarg(align, offset);
  }

  // Locals and constants.
  /** local.get */
  get(name: string): this {
    return this.emit(0x20, ...encodeUnsigned(this.#index(name)));
  }
  /** local.set */
  set(name: string): this {
    return this.emit(0x21, ...encodeUnsigned(this.#index(name)));
  }
  /** local.tee: set and keep the value on the stack. */
  tee(name: string): this {
    return this.emit(0x22, ...encodeUnsigned(this.#index(name)));
  }
  /** i32.const */
  i32Const(value: number): this {
    return this.emit(0x41, ...encodeSigned(value));
  }
  /** f32.const */
  f32Const(value: number): this {
    return this.emit(0x43, ...encodeF32(value));
  }
  /** f64.const */
  f64Const(value: number): this {
    return this.emit(0x44, ...new Uint8Array(new Float64Array([value]).buffer));
  }

  // Control flow. `block`, `loop` and `if` take an empty block type (0x40): no values cross.
  /** block: `br` to it jumps past its `end`. */
  block(): this {
    return this.emit(0x02, 0x40);
  }
  /** loop: `br` to it jumps back to its start. */
  loop(): this {
    return this.emit(0x03, 0x40);
  }
  /** if (pops an i32 condition). */
  if(): this {
    return this.emit(0x04, 0x40);
  }
  /** else */
  else(): this {
    return this.emit(0x05);
  }
  /** end of a block, loop, if or the function. */
  end(): this {
    return this.emit(0x0b);
  }
  /** br: jump to the `depth`-th enclosing label (0 = innermost). */
  br(depth: number): this {
    return this.emit(0x0c, ...encodeUnsigned(depth));
  }
  /** br_if: pop a condition, jump if it is not zero. */
  brIf(depth: number): this {
    return this.emit(0x0d, ...encodeUnsigned(depth));
  }
  /** return */
  return(): this {
    return this.emit(0x0f);
  }
  /** call a function of this module, defined before this one, by name. */
  call(name: string): this {
    return this.emit(0x10, ...encodeUnsigned(this.#functionIndex(name)));
  }
  /** drop the top of the stack. */
  drop(): this {
    return this.emit(0x1a);
  }
  /** select: `a b cond` -> cond ? a : b. */
  select(): this {
    return this.emit(0x1b);
  }

  /** `while (condition() != 0) body()`: `condition` leaves an i32. */
  loopWhile(condition: () => void, body: () => void): this {
    this.block().loop();
    condition();
    this.i32Eqz().brIf(1);
    body();
    return this.br(0).end().end();
  }

  /**
   * `for (counter = start; counter < limit; counter += step) body()`, i32 and signed;
   * `start` and `limit` each leave an i32, `counter` must be a declared i32 local.
   */
  forRange(counter: string, start: () => void, limit: () => void, step: number, body: () => void) {
    start();
    this.set(counter);
    return this.loopWhile(() => {
      this.get(counter);
      limit();
      this.i32LtS();
    }, () => {
      body();
      this.get(counter).i32Const(step).i32Add().set(counter);
    });
  }

  /** `if (condition) then() else otherwise()`, `condition` already on the stack. */
  ifThen(then: () => void, otherwise?: () => void): this {
    this.if();
    then();
    if (otherwise) {
      this.else();
      otherwise();
    }
    return this.end();
  }

  // Memory: the address (an i32 byte address) is on the stack; offset is added to it.
  /** i32.load */
  i32Load(offset = 0): this {
    return this.emit(0x28, ...this.#memarg(2, offset));
  }
  /** f32.load */
  f32Load(offset = 0): this {
    return this.emit(0x2a, ...this.#memarg(2, offset));
  }
  /** i64.load (here: two f32 moved as one 8-byte word) */
  i64Load(offset = 0): this {
    return this.emit(0x29, ...this.#memarg(3, offset));
  }
  /** i64.store: `address value` */
  i64Store(offset = 0): this {
    return this.emit(0x37, ...this.#memarg(3, offset));
  }
  /** f64.load */
  f64Load(offset = 0): this {
    return this.emit(0x2b, ...this.#memarg(3, offset));
  }
  /** i32.store: `address value` */
  i32Store(offset = 0): this {
    return this.emit(0x36, ...this.#memarg(2, offset));
  }
  /** f32.store: `address value` */
  f32Store(offset = 0): this {
    return this.emit(0x38, ...this.#memarg(2, offset));
  }
  /** f64.store: `address value` */
  f64Store(offset = 0): this {
    return this.emit(0x39, ...this.#memarg(3, offset));
  }

  // i32 arithmetic and comparisons (results 0 or 1).
  i32Eqz(): this {
    return this.emit(0x45);
  }
  i32Eq(): this {
    return this.emit(0x46);
  }
  i32Ne(): this {
    return this.emit(0x47);
  }
  i32LtS(): this {
    return this.emit(0x48);
  }
  i32LtU(): this {
    return this.emit(0x49);
  }
  i32GtS(): this {
    return this.emit(0x4a);
  }
  i32GtU(): this {
    return this.emit(0x4b);
  }
  i32LeS(): this {
    return this.emit(0x4c);
  }
  i32GeS(): this {
    return this.emit(0x4e);
  }
  i32GeU(): this {
    return this.emit(0x4f);
  }
  i32Add(): this {
    return this.emit(0x6a);
  }
  i32Sub(): this {
    return this.emit(0x6b);
  }
  i32Mul(): this {
    return this.emit(0x6c);
  }
  i32DivS(): this {
    return this.emit(0x6d);
  }
  i32RemS(): this {
    return this.emit(0x6f);
  }
  i32And(): this {
    return this.emit(0x71);
  }
  i32Or(): this {
    return this.emit(0x72);
  }
  i32Shl(): this {
    return this.emit(0x74);
  }
  i32ShrS(): this {
    return this.emit(0x75);
  }
  i32ShrU(): this {
    return this.emit(0x76);
  }
  i32Xor(): this {
    return this.emit(0x73);
  }

  // f32 / f64 scalar arithmetic.
  f32Add(): this {
    return this.emit(0x92);
  }
  f32Sub(): this {
    return this.emit(0x93);
  }
  f32Mul(): this {
    return this.emit(0x94);
  }
  f32Div(): this {
    return this.emit(0x95);
  }
  f32Min(): this {
    return this.emit(0x96);
  }
  f32Max(): this {
    return this.emit(0x97);
  }
  f32Gt(): this {
    return this.emit(0x5e);
  }
  f64Add(): this {
    return this.emit(0xa0);
  }
  f64Sub(): this {
    return this.emit(0xa1);
  }
  f64Mul(): this {
    return this.emit(0xa2);
  }
  /** f64.promote_f32 */
  f64PromoteF32(): this {
    return this.emit(0xbb);
  }
  /** f32.demote_f64 */
  f32DemoteF64(): this {
    return this.emit(0xb6);
  }

  // SIMD (prefix 0xfd). A v128 holds four f32 lanes; loads and stores move 16 bytes.
  /** v128.load */
  v128Load(offset = 0): this {
    return this.#simd(0x00, ...this.#memarg(4, offset));
  }
  /** v128.load32_splat: one f32 from memory into all four lanes. */
  v128Load32Splat(offset = 0): this {
    return this.#simd(0x09, ...this.#memarg(2, offset));
  }
  /** v128.store: `address value` */
  v128Store(offset = 0): this {
    return this.#simd(0x0b, ...this.#memarg(4, offset));
  }
  /** v128.const of four i32 lanes. */
  i32x4Const(a: number, b: number, c: number, d: number): this {
    return this.#simd(0x0c, ...new Uint8Array(new Int32Array([a, b, c, d]).buffer));
  }
  /** v128.const of four f32 lanes. */
  f32x4Const(a: number, b: number, c: number, d: number): this {
    return this.#simd(0x0c, ...[a, b, c, d].flatMap(encodeF32));
  }
  /** v128.load32_lane: `address vector` -> vector with lane `lane` loaded from memory. */
  v128Load32Lane(lane: number, offset = 0): this {
    return this.#simd(0x56, ...this.#memarg(2, offset), lane);
  }
  /** v128.store32_lane: `address vector`, stores lane `lane`. */
  v128Store32Lane(lane: number, offset = 0): this {
    return this.#simd(0x5a, ...this.#memarg(2, offset), lane);
  }
  /** v128.store64_lane: `address vector`, stores 64-bit lane `lane` (two f32). */
  v128Store64Lane(lane: number, offset = 0): this {
    return this.#simd(0x5b, ...this.#memarg(3, offset), lane);
  }
  /** v128.load32_zero: one f32 into lane 0, zeros elsewhere. */
  v128Load32Zero(offset = 0): this {
    return this.#simd(0x5c, ...this.#memarg(2, offset));
  }
  /** f32x4.splat: f32 -> four copies. */
  f32x4Splat(): this {
    return this.#simd(0x13);
  }
  /** f32x4.extract_lane */
  f32x4ExtractLane(lane: number): this {
    return this.#simd(0x1f, lane);
  }
  /** f32x4.replace_lane: `vector f32` */
  f32x4ReplaceLane(lane: number): this {
    return this.#simd(0x20, lane);
  }
  /** v128.and */
  v128And(): this {
    return this.#simd(0x4e);
  }
  /** v128.or */
  v128Or(): this {
    return this.#simd(0x50);
  }
  /** v128.xor */
  v128Xor(): this {
    return this.#simd(0x51);
  }
  /** i8x16.shuffle: `a b` -> 16 bytes picked by `lanes` (0-15 from a, 16-31 from b). */
  i8x16Shuffle(lanes: number[]): this {
    if (lanes.length !== 16 || lanes.some((lane) => !(lane >= 0 && lane < 32))) {
      throw new RangeError(`wasm emitter: i8x16.shuffle needs 16 lanes in [0, 32), got ${lanes}`);
    }
    return this.#simd(0x0d, ...lanes);
  }
  /** i32x4.splat: i32 -> four copies. */
  i32x4Splat(): this {
    return this.#simd(0x11);
  }
  /** i32x4.add */
  i32x4Add(): this {
    return this.#simd(0xae);
  }
  /** i32x4.mul: the low 32 bits of each lane's product (Math.imul). */
  i32x4Mul(): this {
    return this.#simd(0xb5);
  }
  /** i32x4.shr_u: `vector count` -> each lane shifted right, zeros in. */
  i32x4ShrU(): this {
    return this.#simd(0xad);
  }
  /** i32x4.ge_s: all-ones lanes where a ≥ b (signed). */
  i32x4GeS(): this {
    return this.#simd(0x3f);
  }
  /** f32x4.eq: all-ones lanes where a = b. */
  f32x4Eq(): this {
    return this.#simd(0x41);
  }
  /** f32x4.lt: all-ones lanes where a < b. */
  f32x4Lt(): this {
    return this.#simd(0x43);
  }
  /** f32x4.ge: all-ones lanes where a ≥ b. */
  f32x4Ge(): this {
    return this.#simd(0x46);
  }
  /** f32x4.abs */
  f32x4Abs(): this {
    return this.#simd(0xe0);
  }
  /** f32x4.neg */
  f32x4Neg(): this {
    return this.#simd(0xe1);
  }
  /** f32x4.pmin: b < a ? b : a lane-wise (no NaN special case: one instruction on x86). */
  f32x4Pmin(): this {
    return this.#simd(0xea);
  }
  /** f32x4.pmax: a < b ? b : a lane-wise. */
  f32x4Pmax(): this {
    return this.#simd(0xeb);
  }
  /** v128.bitselect: `a b mask` -> bits of a where mask is 1, of b elsewhere. */
  v128Bitselect(): this {
    return this.#simd(0x52);
  }
  /** f32x4.gt: all-ones lanes where a > b. */
  f32x4Gt(): this {
    return this.#simd(0x44);
  }
  f32x4Add(): this {
    return this.#simd(0xe4);
  }
  f32x4Sub(): this {
    return this.#simd(0xe5);
  }
  f32x4Mul(): this {
    return this.#simd(0xe6);
  }
  f32x4Div(): this {
    return this.#simd(0xe7);
  }
  f32x4Min(): this {
    return this.#simd(0xe8);
  }
  f32x4Max(): this {
    return this.#simd(0xe9);
  }
  f32x4Sqrt(): this {
    return this.#simd(0xe3);
  }
  /**
   * f32x4.relaxed_madd (relaxed SIMD, 0x105): `a b c` -> a·b + c, fused or not as the CPU
   * prefers (fused on x86 with FMA and on ARM).
   */
  f32x4RelaxedMadd(): this {
    return this.#simd(0x105);
  }
  /** f32x4.relaxed_nmadd (0x106): `a b c` -> -(a·b) + c. */
  f32x4RelaxedNmadd(): this {
    return this.#simd(0x106);
  }

  // Atomics (prefix 0xfe), on a shared memory; addresses must be 4-byte aligned.
  /** i32.atomic.load */
  i32AtomicLoad(offset = 0): this {
    return this.emit(0xfe, 0x10, ...this.#memarg(2, offset));
  }
  /** i32.atomic.store: `address value` */
  i32AtomicStore(offset = 0): this {
    return this.emit(0xfe, 0x17, ...this.#memarg(2, offset));
  }
  /** i32.atomic.rmw.add: `address value` -> the old value. */
  i32AtomicAdd(offset = 0): this {
    return this.emit(0xfe, 0x1e, ...this.#memarg(2, offset));
  }

  /** The encoded body: locals grouped by runs of one type, the code, `end`. */
  encode(): number[] {
    const groups: number[][] = [];
    let i = 0;
    while (i < this.#localTypes.length) {
      let run = 1;
      while (this.#localTypes[i + run] === this.#localTypes[i]) run++;
      groups.push([...encodeUnsigned(run), VALUE_TYPE[this.#localTypes[i]]]);
      i += run;
    }
    const body = [...encodeVector(groups), ...this.#code, 0x0b];
    return [...encodeUnsigned(body.length), ...body];
  }
}

/** True where WebAssembly SIMD128 compiles: a function returning `f32x4.splat(0)`. */
export function simdSupported(): boolean {
  const builder = new ModuleBuilder();
  builder.addFunction("probe", {}, ["v128"], (f) => f.f32Const(0).f32x4Splat());
  return validate(builder.bytes());
}

/** True where relaxed SIMD compiles: a function returning `relaxed_madd(0, 0, 0)`. */
export function relaxedSimdSupported(): boolean {
  const builder = new ModuleBuilder();
  builder.addFunction("probe", {}, ["v128"], (f) => {
    f.f32Const(0).f32x4Splat().f32Const(0).f32x4Splat().f32Const(0).f32x4Splat();
    f.f32x4RelaxedMadd();
  });
  return validate(builder.bytes());
}

function validate(bytes: Uint8Array<ArrayBuffer>): boolean {
  return typeof WebAssembly === "object" && WebAssembly.validate(bytes);
}
