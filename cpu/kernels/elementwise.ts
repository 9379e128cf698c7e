/**
 * Float32 elementwise kernels in WebAssembly SIMD, beside the reference loops they stand for
 * (read those first) with the same bits:
 *
 * - **Binary arithmetic** (`binaryCpu`, tensor/ops/elementwise.ts): out = a op b for add, sub,
 *   mul and div, where both operands are runs of floats (`addVV`) or one of them is one float
 *   repeated (`addVS`: a op s, `addSV`: s op a). The reference computes each result in float64
 *   and rounds it to float32 once; for these four operations that is the correctly rounded
 *   float32 result (float64 has more than twice float32's precision, so rounding twice never
 *   differs), which is what `f32x4.add` and its kin compute. cpu/kernels/layer_tasks.ts cuts a
 *   broadcast (a linear layer's bias repeated over the rows, a per-channel value over a plane)
 *   into such runs.
 * - **Dropout** (`dropoutCpu`, tensor/ops/dropout.ts): element i is kept where the counter hash
 *   of (seed, i) of tensor/random.ts, in its top 24 bits u, gives u / 2^24 ≥ p, that is where
 *   u ≥ ⌈p·2^24⌉ (u is an integer and p·2^24 is exact); kept elements are multiplied by the
 *   float32 scale, others are +0. The hash is u32 arithmetic, four lanes at a time.
 * - **Block sums** (`sumBlocksCpu`, tensor/ops/reduce.ts): each block of `inner` consecutive
 *   floats summed in float64 from its first element to its last, the reference's order, so the
 *   same float64 bits; four blocks advance side by side (four independent chains of additions
 *   instead of one), each still in its own order.
 *
 * @module
 */

import { type FunctionBuilder, ModuleBuilder } from "../emitter.ts";
import { MAX_PAGES } from "./gemm_kernels.ts";

/** The binary operations with a kernel, in the order of their codes in a job. */
export const BINARY_KERNEL_OPS = ["add", "sub", "mul", "div"] as const;
export type BinaryKernelOp = typeof BINARY_KERNEL_OPS[number];

const VECTOR_OP: Record<BinaryKernelOp, (f: FunctionBuilder) => void> = {
  add: (f) => f.f32x4Add(),
  sub: (f) => f.f32x4Sub(),
  mul: (f) => f.f32x4Mul(),
  div: (f) => f.f32x4Div(),
};
const SCALAR_OP: Record<BinaryKernelOp, (f: FunctionBuilder) => void> = {
  add: (f) => f.f32Add(),
  sub: (f) => f.f32Sub(),
  mul: (f) => f.f32Mul(),
  div: (f) => f.f32Div(),
};

/**
 * The loop every kernel here shares: `vector` for each 4 elements while at least 4 are left,
 * then `scalar` for each of the last n % 4; `step(bytes)` advances the pointers after each.
 */
function fourThenOne(
  f: FunctionBuilder,
  vector: () => void,
  scalar: () => void,
  step: (elements: number) => void,
): void {
  f.local("vectorLeft", "i32");
  f.get("n").i32Const(-4).i32And().set("vectorLeft");
  f.get("n").i32Const(3).i32And().set("n");
  f.loopWhile(() => f.get("vectorLeft"), () => {
    vector();
    step(4);
    f.get("vectorLeft").i32Const(4).i32Sub().set("vectorLeft");
  });
  f.loopWhile(() => f.get("n"), () => {
    scalar();
    step(1);
    f.get("n").i32Const(1).i32Sub().set("n");
  });
}

/** Binary kernels: `${op}VV(a, b, out, n)`, `${op}VS(a, s, out, n)`, `${op}SV(s, b, out, n)`. */
function addBinary(builder: ModuleBuilder, op: BinaryKernelOp): void {
  for (const form of ["VV", "VS", "SV"] as const) {
    const params = { a: "i32", b: "i32", out: "i32", n: "i32" } as const;
    builder.addFunction(`${op}${form}`, params, [], (f) => {
      // A repeated operand stays where it is (a single float); the others advance.
      const moving = ["out", ...(form === "SV" ? [] : ["a"]), ...(form === "VS" ? [] : ["b"])];
      const operand = (name: "a" | "b", vector: boolean) => {
        const repeated = (name === "a" && form === "SV") || (name === "b" && form === "VS");
        f.get(name);
        if (vector) repeated ? f.v128Load32Splat() : f.v128Load();
        else f.f32Load();
      };
      fourThenOne(
        f,
        () => {
          f.get("out");
          operand("a", true);
          operand("b", true);
          VECTOR_OP[op](f);
          f.v128Store();
        },
        () => {
          f.get("out");
          operand("a", false);
          operand("b", false);
          SCALAR_OP[op](f);
          f.f32Store();
        },
        (elements) => {
          for (const name of moving) f.get(name).i32Const(4 * elements).i32Add().set(name);
        },
      );
    });
  }
}

/** mix32 of tensor/random.ts on the i32x4 in local `h` (`lanes`) or the i32 in local `hs`. */
function mix32(f: FunctionBuilder, lanes: boolean): void {
  const h = lanes ? "h" : "hs";
  const xorShift = (bits: number) => {
    f.get(h).get(h).i32Const(bits);
    if (lanes) f.i32x4ShrU().v128Xor();
    else f.i32ShrU().i32Xor();
    f.set(h);
  };
  const multiply = (constant: number) => {
    f.get(h).i32Const(constant | 0);
    if (lanes) f.i32x4Splat().i32x4Mul();
    else f.i32Mul();
    f.set(h);
  };
  xorShift(16);
  multiply(0x7feb352d);
  xorShift(15);
  multiply(0x846ca68b);
  xorShift(16);
}

/**
 * dropout(x, out, n, first, seed, mixedSeed, threshold, scale): n elements whose first has index
 * `first` in the tensor; mixedSeed = mix32(seed), threshold = ⌈p·2^24⌉.
 */
function addDropout(builder: ModuleBuilder): void {
  const params = {
    x: "i32",
    out: "i32",
    n: "i32",
    first: "i32",
    seed: "i32",
    mixedSeed: "i32",
    threshold: "i32",
    scale: "f32",
  } as const;
  builder.addFunction("dropout", params, [], (f) => {
    f.local("h", "v128").local("index", "v128").local("hs", "i32");
    // index = first + [0, 1, 2, 3]
    f.get("first").i32x4Splat().i32x4Const(0, 1, 2, 3).i32x4Add().set("index");
    // h = mix32(mix32(index ^ mixedSeed) + seed); keep where h >>> 8 ≥ threshold.
    const hash = (lanes: boolean) => {
      const h = lanes ? "h" : "hs";
      const splat = () => lanes && f.i32x4Splat();
      f.get(lanes ? "index" : "first").get("mixedSeed");
      splat();
      lanes ? f.v128Xor() : f.i32Xor();
      f.set(h);
      mix32(f, lanes);
      f.get(h).get("seed");
      splat();
      lanes ? f.i32x4Add() : f.i32Add();
      f.set(h);
      mix32(f, lanes);
      f.get(h).i32Const(8);
      lanes ? f.i32x4ShrU() : f.i32ShrU();
      f.get("threshold");
      splat();
      lanes ? f.i32x4GeS() : f.i32GeS();
    };
    fourThenOne(
      f,
      () => {
        // out = bitselect(x·scale, 0, keep)
        f.get("out");
        f.get("x").v128Load().get("scale").f32x4Splat().f32x4Mul();
        f.f32x4Const(0, 0, 0, 0);
        hash(true);
        f.v128Bitselect().v128Store();
        f.get("index").i32Const(4).i32x4Splat().i32x4Add().set("index");
      },
      () => {
        f.get("out");
        f.get("x").f32Load().get("scale").f32Mul();
        f.f32Const(0);
        hash(false);
        f.select().f32Store();
      },
      (elements) => {
        for (const name of ["x", "out"]) f.get(name).i32Const(4 * elements).i32Add().set(name);
        f.get("first").i32Const(elements).i32Add().set("first");
      },
    );
  });
}

/** sumBlocks(x, out, blocks, inner): out[b] (f64) = the float64 sum of block b of x, in order. */
function addSumBlocks(builder: ModuleBuilder): void {
  const params = { x: "i32", out: "i32", blocks: "i32", inner: "i32" } as const;
  builder.addFunction("sumBlocks", params, [], (f) => {
    f.local("p", "i32").local("end", "i32").local("stride", "i32");
    for (let j = 0; j < 4; j++) f.local(`sum${j}`, "f64");
    f.get("inner").i32Const(2).i32Shl().set("stride");
    // `lanes` blocks side by side: sum_j += x[j·inner + k] for k = 0 .. inner − 1, p at x + 4k.
    const blocks = (lanes: number) => {
      for (let j = 0; j < lanes; j++) f.f64Const(0).set(`sum${j}`);
      f.get("x").set("p");
      f.get("x").get("stride").i32Add().set("end");
      f.loopWhile(() => f.get("p").get("end").i32LtU(), () => {
        for (let j = 0; j < lanes; j++) {
          f.get(`sum${j}`).get("p");
          if (j > 0) f.get("stride").i32Const(j).i32Mul().i32Add();
          f.f32Load().f64PromoteF32().f64Add().set(`sum${j}`);
        }
        f.get("p").i32Const(4).i32Add().set("p");
      });
      for (let j = 0; j < lanes; j++) f.get("out").get(`sum${j}`).f64Store(8 * j);
      f.get("x").get("stride").i32Const(lanes).i32Mul().i32Add().set("x");
      f.get("out").i32Const(8 * lanes).i32Add().set("out");
      f.get("blocks").i32Const(lanes).i32Sub().set("blocks");
    };
    f.loopWhile(() => f.get("blocks").i32Const(4).i32GeS(), () => blocks(4));
    f.loopWhile(() => f.get("blocks").i32Const(0).i32GtS(), () => blocks(1));
  });
}

/** The module of the kernels above, on the engine's memory. */
export function elementwiseModuleBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  const builder = new ModuleBuilder();
  builder.importMemory("env", "memory", { initial: 1, maximum: MAX_PAGES, shared });
  for (const op of BINARY_KERNEL_OPS) addBinary(builder, op);
  addDropout(builder);
  addSumBlocks(builder);
  return builder.bytes();
}

type BinaryFunctions = {
  [F in `${BinaryKernelOp}${"VV" | "VS" | "SV"}`]: (
    a: number,
    b: number,
    out: number,
    n: number,
  ) => void;
};

export interface ElementwiseExports extends BinaryFunctions {
  dropout(
    x: number,
    out: number,
    n: number,
    first: number,
    seed: number,
    mixedSeed: number,
    threshold: number,
    scale: number,
  ): void;
  sumBlocks(x: number, out: number, blocks: number, inner: number): void;
}
