import assert from "node:assert/strict";
import {
  encodeF32,
  encodeSigned,
  encodeUnsigned,
  ModuleBuilder,
  relaxedSimdSupported,
  simdSupported,
} from "../../cpu/emitter.ts";

Deno.test("LEB128 encodings match the specification's examples", () => {
  assert.deepEqual(encodeUnsigned(0), [0x00]);
  assert.deepEqual(encodeUnsigned(127), [0x7f]);
  assert.deepEqual(encodeUnsigned(128), [0x80, 0x01]);
  assert.deepEqual(encodeUnsigned(624485), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(encodeUnsigned(0x105), [0x85, 0x02]); // f32x4.relaxed_madd
  assert.deepEqual(encodeUnsigned(2 ** 32 - 1), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  assert.deepEqual(encodeSigned(0), [0x00]);
  assert.deepEqual(encodeSigned(-1), [0x7f]);
  assert.deepEqual(encodeSigned(63), [0x3f]);
  assert.deepEqual(encodeSigned(64), [0xc0, 0x00]);
  assert.deepEqual(encodeSigned(-64), [0x40]);
  assert.deepEqual(encodeSigned(-65), [0xbf, 0x7f]);
  assert.deepEqual(encodeSigned(-123456), [0xc0, 0xbb, 0x78]);
  assert.deepEqual(encodeF32(1), [0x00, 0x00, 0x80, 0x3f]);
  assert.throws(() => encodeUnsigned(-1), /not an unsigned 32-bit integer/);
  assert.throws(() => encodeSigned(2 ** 31), /not a signed 32-bit integer/);
});

Deno.test("a module with one function is the bytes the format prescribes", () => {
  const builder = new ModuleBuilder();
  builder.addFunction("add", { a: "i32", b: "i32" }, ["i32"], (f) => f.get("a").get("b").i32Add());
  assert.deepEqual([...builder.bytes()], [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // header
    ...[0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f], // type: (i32 i32) -> i32
    ...[0x03, 0x02, 0x01, 0x00], // function 0 has type 0
    ...[0x07, 0x07, 0x01, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00], // export "add" = function 0
    ...[0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b], // code
  ]);
});

Deno.test("memory imports encode their limits; shared ones need a maximum", () => {
  const bytesOf = (shared: boolean) => {
    const builder = new ModuleBuilder();
    builder.importMemory("e", "m", { initial: 1, maximum: 2, shared });
    return [...builder.bytes()].slice(8, 8 + 11);
  };
  // import section: 1 import, "e", "m", kind 2 (memory), flags, min 1, max 2
  assert.deepEqual(bytesOf(false), [0x02, 0x09, 0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x01, 1, 2]);
  assert.deepEqual(bytesOf(true), [0x02, 0x09, 0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x03, 1, 2]);
  assert.throws(
    () => new ModuleBuilder().importMemory("e", "m", { initial: 1, shared: true }),
    /shared memory needs a maximum/,
  );
});

Deno.test("SIMD opcodes: relaxed_madd is fd 85 02, v128.load is fd 00 with its memarg", () => {
  const builder = new ModuleBuilder();
  let code: number[] = [];
  builder.addFunction("f", {}, [], (f) => {
    f.f32x4RelaxedMadd().v128Load(16).f32x4Add().v128Store32Lane(3, 8);
    code = f.encode();
  });
  // body size, no locals, instructions, end
  assert.deepEqual(code, [
    17,
    0x00,
    ...[0xfd, 0x85, 0x02],
    ...[0xfd, 0x00, 0x04, 0x10],
    ...[0xfd, 0xe4, 0x01],
    ...[0xfd, 0x5a, 0x02, 0x08, 0x03],
    0x0b,
  ]);
});

Deno.test("emitted loops, locals, calls and memory run: sum and scale of a float array", async () => {
  const builder = new ModuleBuilder();
  builder.importMemory("env", "memory", { initial: 1 });
  builder.addFunction("sum", { pointer: "i32", count: "i32" }, ["f32"], (f) => {
    f.local("total", "f32");
    f.loopWhile(() => f.get("count"), () => {
      f.get("total").get("pointer").f32Load().f32Add().set("total");
      f.get("pointer").i32Const(4).i32Add().set("pointer");
      f.get("count").i32Const(1).i32Sub().set("count");
    });
    f.get("total");
  });
  // doubled sum through a call, with a counted loop that scales four lanes at a time.
  builder.addFunction("scaleThenSum", { pointer: "i32", vectors: "i32" }, ["f32"], (f) => {
    f.local("i", "i32");
    f.forRange("i", () => f.i32Const(0), () => f.get("vectors"), 1, () => {
      f.get("pointer").get("i").i32Const(16).i32Mul().i32Add().tee("i");
      f.get("i").v128Load().f32x4Const(2, 2, 2, 2).f32x4Mul().v128Store();
      f.get("i").get("pointer").i32Sub().i32Const(16).i32DivS().set("i");
    });
    f.get("pointer").get("vectors").i32Const(4).i32Mul().call("sum");
  });
  const bytes = builder.bytes();
  assert.ok(WebAssembly.validate(bytes));
  const memory = new WebAssembly.Memory({ initial: 1 });
  const { instance } = await WebAssembly.instantiate(bytes, { env: { memory } });
  const floats = new Float32Array(memory.buffer);
  floats.set([1, 2, 3, 4, 5, 6, 7, 8]);
  const sum = instance.exports.sum as (pointer: number, count: number) => number;
  const scaleThenSum = instance.exports.scaleThenSum as (p: number, v: number) => number;
  assert.equal(sum(0, 3), 6);
  assert.equal(sum(4, 0), 0);
  assert.equal(scaleThenSum(0, 2), 72);
  assert.deepEqual([...floats.subarray(0, 8)], [2, 4, 6, 8, 10, 12, 14, 16]);
});

Deno.test("relaxed_madd computes a·b + c lane-wise where relaxed SIMD is on", async () => {
  if (!relaxedSimdSupported()) return; // nothing to run; the gemm tests cover the other tiers
  assert.ok(simdSupported());
  const builder = new ModuleBuilder();
  builder.importMemory("env", "memory", { initial: 1 });
  builder.addFunction("madd", {}, [], (f) => {
    f.i32Const(48);
    f.i32Const(0).v128Load().i32Const(16).v128Load().i32Const(32).v128Load();
    f.f32x4RelaxedMadd().v128Store();
  });
  const memory = new WebAssembly.Memory({ initial: 1 });
  const { instance } = await WebAssembly.instantiate(builder.bytes(), { env: { memory } });
  const floats = new Float32Array(memory.buffer);
  floats.set([1, 2, 3, 4, 10, 20, 30, 40, 0.5, -1, 0, 7]);
  (instance.exports.madd as () => void)();
  assert.deepEqual([...floats.subarray(12, 16)], [10.5, 39, 90, 167]);
});

Deno.test("the emitter names the mistake: unknown locals, duplicate names, undefined calls", () => {
  const builder = new ModuleBuilder();
  assert.throws(
    () => builder.addFunction("f", {}, [], (f) => f.get("x")),
    /no local or parameter x/,
  );
  assert.throws(
    () => builder.addFunction("g", { x: "i32" }, [], (f) => f.local("x", "f32")),
    /local x declared twice/,
  );
  assert.throws(
    () => builder.addFunction("h", {}, [], (f) => f.call("nope")),
    /undefined function nope/,
  );
  builder.addFunction("k", {}, [], () => {});
  assert.throws(() => builder.addFunction("k", {}, [], () => {}), /function k is defined twice/);
});

Deno.test("the generic simd() escape, shuffles and lane-wise max compute what they say", async () => {
  if (!simdSupported()) return;
  const builder = new ModuleBuilder();
  builder.importMemory("env", "memory", { initial: 1 });
  builder.addFunction("f", {}, [], (f) => {
    // out[0..3] = reverse(pmax(x, y)); out[4..7] = abs(x) via simd(0xe0)
    f.i32Const(32);
    f.i32Const(0).v128Load().i32Const(16).v128Load().f32x4Pmax();
    f.f32x4Const(0, 0, 0, 0);
    f.i8x16Shuffle([12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3]);
    f.v128Store();
    f.i32Const(48).i32Const(0).v128Load().simd(0xe0).v128Store();
  });
  const memory = new WebAssembly.Memory({ initial: 1 });
  const { instance } = await WebAssembly.instantiate(builder.bytes(), { env: { memory } });
  const floats = new Float32Array(memory.buffer);
  floats.set([-1, 5, -3, 2, 0, 4, -7, 3]);
  (instance.exports.f as () => void)();
  assert.deepEqual([...floats.subarray(8, 16)], [3, -3, 5, 0, 1, 5, 3, 2]);
  assert.throws(
    () => new ModuleBuilder().addFunction("g", {}, [], (f) => f.i8x16Shuffle([1])),
    /16 lanes/,
  );
});
