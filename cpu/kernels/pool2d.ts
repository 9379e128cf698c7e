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
 * starting from the window's first cell. The fold is a chain (each step waits for the last
 * `best`), so four windows of a row run at once, one per f32x4 lane: the lanes gather their
 * cells (`v128.load32_lane`, Sw apart), `take` becomes a mask and `select` a `v128.bitselect`.
 * Windows cut by the row's edge (padding, ceil mode) take the one-window path; a row's last
 * whole windows, fewer than four, are done by stepping back over finished ones (same results,
 * stored again). The backward scatters dy to the winners, plane by plane in the reference's
 * order (`maxPoolBackward`). cpu/kernels/layers.ts runs the kernels, split over the threads by
 * planes.
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
    f.local("jLo", "i32").local("jEnd", "i32").local("at", "i32");
    for (const l of ["step1", "step2", "step3"]) f.local(l, "i32");
    for (const l of ["lanes", "vBest", "vIndex", "vValue", "vTake"]) f.local(l, "v128");
    interiorColumns(f);
    f.forRange("plane", () => f.i32Const(0), () => f.get("planes"), 1, () => {
      f.forRange("i", () => f.i32Const(0), () => f.get("outH"), 1, () => {
        f.get("i").get("Sh").i32Mul().get("padH").i32Sub().set("top");
        pick(f, () => f.get("top"), () => f.i32Const(0), true);
        f.set("r0");
        pick(f, () => f.get("top").get("KH").i32Add(), () => f.get("H"), false);
        f.set("r1");
        f.i32Const(0).set("j");
        f.loopWhile(() => f.get("j").get("outW").i32LtS(), () => {
          // The last whole windows of a row, fewer than four: step back over done windows and
          // redo them with the rest (the same results, stored again).
          f.get("j").get("jLo").i32GeS();
          f.get("j").i32Const(4).i32Add().get("jEnd").i32GtS().i32And();
          f.get("j").get("jEnd").i32LtS().i32And();
          f.get("jEnd").get("jLo").i32Sub().i32Const(4).i32GeS().i32And();
          f.ifThen(() => {
            f.get("j").i32Const(4).i32Add().get("jEnd").i32Sub().tee("at");
            f.i32Const(2).i32Shl().set("at"); // bytes back
            f.get("y").get("at").i32Sub().set("y");
            f.get("argmax").get("at").i32Sub().set("argmax");
            f.get("jEnd").i32Const(4).i32Sub().set("j");
          });
          // Four windows inside the row (no column clipped): one lane each; else one window.
          f.get("j").get("jLo").i32GeS();
          f.get("j").i32Const(4).i32Add().get("jEnd").i32LeS();
          f.i32And();
          f.ifThen(() => fourWindows(f), () => oneWindow(f));
        });
      });
      f.get("x").get("H").get("W").i32Mul().i32Const(2).i32Shl().i32Add().set("x");
    });
  });
  emitMaxPoolBackward(builder);
  return builder.bytes();
}

/**
 * The columns of output windows that lie whole inside the row, [jLo, jEnd): left = j·Sw − padW
 * ≥ 0 and left + KW ≤ W. Also the lanes' column offsets [0, Sw, 2·Sw, 3·Sw] (`lanes`) and the
 * byte steps to lanes 1-3 (`step1`-`step3`).
 */
function interiorColumns(f: FunctionBuilder) {
  f.get("padW").get("Sw").i32Add().i32Const(1).i32Sub().get("Sw").i32DivS().set("jLo");
  // floor((W + padW − KW) / Sw) + 1 windows, none when W + padW < KW (div_s truncates to 0).
  f.get("W").get("padW").i32Add().get("KW").i32Sub().tee("at");
  f.get("Sw").i32DivS().i32Const(1).i32Add();
  f.i32Const(0);
  f.get("at").i32Const(0).i32GeS();
  f.select().set("jEnd");
  f.i32Const(0).i32x4Splat();
  for (const lane of [1, 2, 3]) {
    f.get("Sw").i32Const(lane).i32Mul().simd(0x1c, lane); // i32x4.replace_lane
    f.get("Sw").i32Const(4 * lane).i32Mul().set(`step${lane}`);
  }
  f.set("lanes");
}

/** `vValue` = x at cell `cell` + lane·Sw of each lane (four loads into one vector). */
function gather(f: FunctionBuilder) {
  f.get("cell").i32Const(2).i32Shl().get("x").i32Add().tee("at").v128Load32Zero().set("vValue");
  for (const lane of [1, 2, 3]) {
    f.get("at").get(`step${lane}`).i32Add().get("vValue").v128Load32Lane(lane).set("vValue");
  }
}

/**
 * Windows j .. j+3 of row i, one per lane: the scalar fold below on four lanes, with masks for
 * `take` and `v128.bitselect` for `select`. Same cells in the same order, so the same winners.
 */
function fourWindows(f: FunctionBuilder) {
  f.get("j").get("Sw").i32Mul().get("padW").i32Sub().set("left");
  f.get("r0").get("W").i32Mul().get("left").i32Add().tee("cell");
  f.i32x4Splat().get("lanes").i32x4Add().set("vIndex");
  gather(f);
  f.get("vValue").set("vBest");
  f.forRange("row", () => f.get("r0"), () => f.get("r1"), 1, () => {
    f.forRange("col", () => f.get("left"), () => f.get("left").get("KW").i32Add(), 1, () => {
      f.get("row").get("W").i32Mul().get("col").i32Add().set("cell");
      gather(f);
      // take = value > best  or  (value ≠ value  and  best = best)
      f.get("vValue").get("vBest").f32x4Gt();
      f.get("vValue").get("vValue").simd(0x42); // f32x4.ne
      f.get("vBest").get("vBest").f32x4Eq();
      f.v128And().v128Or().set("vTake");
      f.get("vValue").get("vBest").get("vTake").v128Bitselect().set("vBest");
      f.get("cell").i32x4Splat().get("lanes").i32x4Add();
      f.get("vIndex").get("vTake").v128Bitselect().set("vIndex");
    });
  });
  f.get("y").get("vBest").v128Store();
  f.get("argmax").get("vIndex").v128Store();
  stepPast(f, 4);
}

/** Moves y, argmax and j past the `windows` windows just stored. */
function stepPast(f: FunctionBuilder, windows: 1 | 4) {
  f.get("y").i32Const(4 * windows).i32Add().set("y");
  f.get("argmax").i32Const(4 * windows).i32Add().set("argmax");
  f.get("j").i32Const(windows).i32Add().set("j");
}

/** Window j of row i, its columns clipped to the row: start from its first cell, fold in every cell. */
function oneWindow(f: FunctionBuilder) {
  f.get("j").get("Sw").i32Mul().get("padW").i32Sub().set("left");
  pick(f, () => f.get("left"), () => f.i32Const(0), true);
  f.set("c0");
  pick(f, () => f.get("left").get("KW").i32Add(), () => f.get("W"), false);
  f.set("c1");
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
  stepPast(f, 1);
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
