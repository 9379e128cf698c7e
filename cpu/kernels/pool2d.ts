/**
 * Max-pooling forward for float32 in WebAssembly, beside the reference `maxPool2dForwardCpu`
 * of `tensor/ops/pool.ts` (read it first: windows, ties and NaNs are defined there) with the
 * same results: y and the winner's index, first cell in row-major order on ties, the first NaN
 * of a window wins.
 *
 * Why a kernel: the reference keeps the running maximum with `if (value > best)`, a branch that
 * goes either way in no pattern on activations, so the CPU mispredicts it often. Here each cell
 * is folded in with `select` (no branch):
 *
 *     take = value > best  or  (value ≠ value  and  best = best)
 *     best = take ? value : best;   index = take ? cell : index
 *
 * starting from the window's first cell. The backward scatters dy to the winners, plane by
 * plane in the reference's order (`maxPoolBackward`). cpu/kernels/layers.ts runs the kernel, split over
 * the threads by planes.
 *
 * @module
 */

import { type FunctionBuilder, ModuleBuilder } from "../emitter.ts";
import { MAX_PAGES } from "./gemm_kernels.ts";

/** f32.eq and f32.ne (opcodes 0x5b, 0x5c): emitted raw, the emitter names only f32.gt. */
const f32Eq = (f: FunctionBuilder) => f.emit(0x5b);
const f32Ne = (f: FunctionBuilder) => f.emit(0x5c);

/** Pushes max(a, b) or min(a, b) of two i32 locals without a branch. */
function pick(f: FunctionBuilder, a: () => void, b: () => void, larger: boolean) {
  a();
  b();
  a();
  b();
  if (larger) f.i32GtS();
  else f.i32LtS();
  f.select();
}

/** The parameters of maxPool, in order (layer_tasks.ts's POOL descriptor begins with them). */
export const MAX_POOL_ARGS = [
  "x",
  "y",
  "argmax",
  "planes",
  "H",
  "W",
  "KH",
  "KW",
  "Sh",
  "Sw",
  "padH",
  "padW",
  "outH",
  "outW",
] as const;

/** maxPool(...MAX_POOL_ARGS): byte addresses x, y, argmax; `planes` planes of H × W in, outH × outW out. */
export function poolModuleBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  const builder = new ModuleBuilder();
  builder.importMemory("env", "memory", { initial: 1, maximum: MAX_PAGES, shared });
  const params = Object.fromEntries(MAX_POOL_ARGS.map((name) => [name, "i32" as const]));
  builder.addFunction("maxPool", params, [], (f) => {
    for (const l of ["plane", "i", "j", "top", "left", "r0", "r1", "c0", "c1", "row", "col"]) {
      f.local(l, "i32");
    }
    f.local("cell", "i32").local("index", "i32").local("take", "i32");
    f.local("value", "f32").local("best", "f32");
    f.forRange("plane", () => f.i32Const(0), () => f.get("planes"), 1, () => {
      f.forRange("i", () => f.i32Const(0), () => f.get("outH"), 1, () => {
        f.get("i").get("Sh").i32Mul().get("padH").i32Sub().set("top");
        pick(f, () => f.get("top"), () => f.i32Const(0), true);
        f.set("r0");
        pick(f, () => f.get("top").get("KH").i32Add(), () => f.get("H"), false);
        f.set("r1");
        f.forRange("j", () => f.i32Const(0), () => f.get("outW"), 1, () => {
          f.get("j").get("Sw").i32Mul().get("padW").i32Sub().set("left");
          pick(f, () => f.get("left"), () => f.i32Const(0), true);
          f.set("c0");
          pick(f, () => f.get("left").get("KW").i32Add(), () => f.get("W"), false);
          f.set("c1");
          // Start from the window's first cell, then fold in every cell.
          f.get("r0").get("W").i32Mul().get("c0").i32Add().tee("index");
          f.i32Const(2).i32Shl().get("x").i32Add().f32Load().set("best");
          f.forRange("row", () => f.get("r0"), () => f.get("r1"), 1, () => {
            f.forRange("col", () => f.get("c0"), () => f.get("c1"), 1, () => {
              f.get("row").get("W").i32Mul().get("col").i32Add().tee("cell");
              f.i32Const(2).i32Shl().get("x").i32Add().f32Load().set("value");
              f.get("value").get("best").f32Gt();
              f.get("value").get("value");
              f32Ne(f);
              f.get("best").get("best");
              f32Eq(f);
              f.i32And().i32Or().set("take");
              f.get("value").get("best").get("take").select().set("best");
              f.get("cell").get("index").get("take").select().set("index");
            });
          });
          f.get("y").get("best").f32Store();
          f.get("argmax").get("index").i32Store();
          f.get("y").i32Const(4).i32Add().set("y");
          f.get("argmax").i32Const(4).i32Add().set("argmax");
        });
      });
      f.get("x").get("H").get("W").i32Mul().i32Const(2).i32Shl().i32Add().set("x");
    });
  });
  emitMaxPoolBackward(builder);
  return builder.bytes();
}

/**
 * maxPoolBackward(dy, argmax, dx, planes, inPlane, outPlane): per plane, dx = 0, then
 * dx[argmax[o]] += dy[o] for its outPlane outputs in order (the reference's scatter, the same
 * float32 sums in the same order).
 */
function emitMaxPoolBackward(builder: ModuleBuilder) {
  const names = ["dy", "argmax", "dx", "planes", "inPlane", "outPlane"] as const;
  const params = Object.fromEntries(names.map((name) => [name, "i32" as const]));
  builder.addFunction("maxPoolBackward", params, [], (f) => {
    f.local("plane", "i32").local("o", "i32").local("at", "i32");
    f.forRange("plane", () => f.i32Const(0), () => f.get("planes"), 1, () => {
      f.forRange("o", () => f.i32Const(0), () => f.get("inPlane"), 1, () => {
        f.get("dx").get("o").i32Const(2).i32Shl().i32Add().f32Const(0).f32Store();
      });
      f.forRange("o", () => f.i32Const(0), () => f.get("outPlane"), 1, () => {
        f.get("argmax").get("o").i32Const(2).i32Shl().i32Add().i32Load();
        f.i32Const(2).i32Shl().get("dx").i32Add().tee("at");
        f.get("at").f32Load();
        f.get("dy").get("o").i32Const(2).i32Shl().i32Add().f32Load();
        f.f32Add().f32Store();
      });
      f.get("dy").get("outPlane").i32Const(2).i32Shl().i32Add().set("dy");
      f.get("argmax").get("outPlane").i32Const(2).i32Shl().i32Add().set("argmax");
      f.get("dx").get("inPlane").i32Const(2).i32Shl().i32Add().set("dx");
    });
  });
}

/** The module's exports: maxPool(...MAX_POOL_ARGS) and maxPoolBackward (its gradient's scatter). */
export interface PoolExports {
  maxPool(...args: number[]): void;
  maxPoolBackward(
    dy: number,
    argmax: number,
    dx: number,
    planes: number,
    inPlane: number,
    outPlane: number,
  ): void;
}
