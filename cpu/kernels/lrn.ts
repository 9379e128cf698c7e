/**
 * Local response normalization, forward and backward, for float32 in WebAssembly SIMD, beside
 * the reference `lrnForwardCpu` / `lrnBackwardCpu` of `tensor/ops/lrn.ts` (read it first: the
 * window, the alpha convention and the derivative are written out there). Same formulas, four
 * pixels at a time:
 *
 *     s_c = k + a · Σ_{j ∈ win(c)} x_j²        y_c = x_c · s_c^(−β)
 *     dx_i = dy_i · s_i^(−β) − 2aβ · x_i · Σ_{c : i ∈ win(c)} dy_c x_c s_c^(−β) / s_c
 *
 * for AlexNet's β = 0.75, where s^(−β) = 1 / (√s · √√s) (two `f32x4.sqrt`); other β stay on the
 * reference. The reference sums in float64; here the window sums (at most `size` terms) and the
 * powers are float32, a few ulps apart.
 *
 * The pixels of one channel plane are contiguous, so each plane runs in v128 steps and then one
 * float at a time for its last pixels mod 4 (the same code emitted twice, once per width: the
 * same float32 operations in every lane, so the bits do not depend on which width a pixel
 * takes). A call normalizes `pixels` consecutive pixels of every plane (planes P apart): whole
 * images, or a run of one image's pixels. cpu/kernels/layers.ts runs the kernels, split over
 * the threads by images, or within an image when images are few and large.
 *
 * @module
 */

import type { LrnParams } from "../../backend/backend.ts";
import { type FunctionBuilder, ModuleBuilder } from "../emitter.ts";
import { MAX_PAGES } from "./gemm_kernels.ts";

/** The arithmetic of one width: 4 lanes (v128) or 1 (f32). f32.sqrt (0x91) is emitted raw. */
function ops(f: FunctionBuilder, lanes: 1 | 4) {
  const vector = lanes === 4;
  return {
    bytes: 4 * lanes,
    load: () => (vector ? f.v128Load() : f.f32Load()),
    store: () => (vector ? f.v128Store() : f.f32Store()),
    add: () => (vector ? f.f32x4Add() : f.f32Add()),
    sub: () => (vector ? f.f32x4Sub() : f.f32Sub()),
    mul: () => (vector ? f.f32x4Mul() : f.f32Mul()),
    div: () => (vector ? f.f32x4Div() : f.f32Div()),
    sqrt: () => (vector ? f.f32x4Sqrt() : f.emit(0x91)),
    /** Pushes an f32 parameter, in every lane when vector. */
    param: (name: string) => (vector ? f.get(name).f32x4Splat() : f.get(name)),
    zero: () => (vector ? f.f32x4Const(0, 0, 0, 0) : f.f32Const(0)),
    one: () => (vector ? f.f32x4Const(1, 1, 1, 1) : f.f32Const(1)),
    /** A local of this width: `name4` (v128) or `name1` (f32). */
    v: (name: string) => `${name}${lanes}`,
  };
}

type Ops = ReturnType<typeof ops>;

/** Declares the per-width locals `names` in both widths. */
function declare(f: FunctionBuilder, names: string[]) {
  for (const name of names) f.local(`${name}4`, "v128").local(`${name}1`, "f32");
}

/**
 * Runs `body(o)` for every pixel step of a plane's `pixels`: o.bytes-wide steps while they fit,
 * then single floats; the local `at` is the step's byte offset within the plane.
 */
function planeSteps(f: FunctionBuilder, body: (o: Ops) => void) {
  f.get("pixels").i32Const(-4).i32And().i32Const(2).i32Shl().set("vectorEnd");
  f.get("pixels").i32Const(2).i32Shl().set("planeEnd");
  f.i32Const(0).set("at");
  for (const lanes of [4, 1] as const) {
    const o = ops(f, lanes);
    f.loopWhile(() => f.get("at").get(lanes === 4 ? "vectorEnd" : "planeEnd").i32LtU(), () => {
      body(o);
      f.get("at").i32Const(o.bytes).i32Add().set("at");
    });
  }
}

/** Pushes the byte address of channel `channel` (an i32 local) at step `at` of array `base`. */
function address(f: FunctionBuilder, base: string, channel: string) {
  f.get(base).get(channel).get("P").i32Mul().i32Const(2).i32Shl().i32Add().get("at").i32Add();
}

/** Sets local `from`/`to` to the window [c − lower, c + upper] clipped to [0, C). */
function window(f: FunctionBuilder, c: string, lower: string, upper: string) {
  f.get(c).get(lower).i32Sub().set("from");
  f.get("from").i32Const(0).get("from").i32Const(0).i32GtS().select().set("from");
  f.get(c).get(upper).i32Add().set("to");
  f.get("C").i32Const(1).i32Sub().get("to").get("to").get("C").i32GeS().select().set("to");
}

/** Leaves s = k + alpha · Σ_{j ∈ [from, to]} x_j² at the step in local s(width). */
function scaleAt(f: FunctionBuilder, o: Ops) {
  o.zero();
  f.set(o.v("sum"));
  f.forRange("j", () => f.get("from"), () => f.get("to").i32Const(1).i32Add(), 1, () => {
    address(f, "x", "j");
    o.load();
    f.set(o.v("t"));
    f.get(o.v("sum")).get(o.v("t")).get(o.v("t"));
    o.mul();
    o.add();
    f.set(o.v("sum"));
  });
  o.param("k");
  o.param("alpha");
  f.get(o.v("sum"));
  o.mul();
  o.add();
  f.set(o.v("s"));
}

/**
 * For every channel c of the current item and every step of its plane: s and s^(−3/4) of the
 * window [c − below, c + above] in locals s and inv, then `body`.
 */
function eachChannelScaled(f: FunctionBuilder, body: (o: Ops) => void) {
  f.forRange("c", () => f.i32Const(0), () => f.get("C"), 1, () => {
    window(f, "c", "below", "above");
    planeSteps(f, (o) => {
      scaleAt(f, o);
      inversePower(f, o);
      body(o);
    });
  });
}

/** Leaves s^(−3/4) = 1 / (√s · √√s) in local inv(width). */
function inversePower(f: FunctionBuilder, o: Ops) {
  f.get(o.v("s"));
  o.sqrt();
  f.tee(o.v("t")).get(o.v("t"));
  o.sqrt();
  o.mul();
  f.set(o.v("t"));
  o.one();
  f.get(o.v("t"));
  o.div();
  f.set(o.v("inv"));
}

const I32 = ["x", "y", "items", "C", "P", "pixels", "below", "above"] as const;

export function lrnModuleBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  const builder = new ModuleBuilder();
  builder.importMemory("env", "memory", { initial: 1, maximum: MAX_PAGES, shared });
  emitLrnForward(builder);
  emitLrnBackward(builder);
  return builder.bytes();
}

/** The scalar locals both kernels use. */
function declareLocals(f: FunctionBuilder): void {
  for (const l of ["item", "c", "i", "j", "from", "to", "at", "vectorEnd", "planeEnd", "step"]) {
    f.local(l, "i32");
  }
  declare(f, ["sum", "t", "s", "inv"]);
}

// lrnForward(x, y, items, C, P, pixels, below, above, alpha, k): planes of P pixels, the first
// `pixels` of each normalized (x and y point at the first).
const LRN_FORWARD_PARAMS = {
  ...Object.fromEntries(I32.map((n) => [n, "i32" as const])),
  alpha: "f32" as const,
  k: "f32" as const,
};

function emitLrnForward(builder: ModuleBuilder): void {
  builder.addFunction("lrnForward", LRN_FORWARD_PARAMS, [], (f) => {
    declareLocals(f);
    f.get("C").get("P").i32Mul().i32Const(2).i32Shl().set("step");
    f.forRange("item", () => f.i32Const(0), () => f.get("items"), 1, () => {
      eachChannelScaled(f, (o) => {
        address(f, "y", "c");
        address(f, "x", "c");
        o.load();
        f.get(o.v("inv"));
        o.mul();
        o.store();
      });
      f.get("x").get("step").i32Add().set("x");
      f.get("y").get("step").i32Add().set("y");
    });
  });
}

// lrnBackward(x, y = dx, items, C, P, pixels, below, above, alpha, k, dy, scaled, weighted,
// factor): scaled = s^(−β) and weighted = dy·x·s^(−β)/s are scratch planes of one item.
const LRN_BACKWARD_PARAMS = {
  ...LRN_FORWARD_PARAMS,
  dy: "i32" as const,
  scaled: "i32" as const,
  weighted: "i32" as const,
  factor: "f32" as const,
};

function emitLrnBackward(builder: ModuleBuilder): void {
  builder.addFunction("lrnBackward", LRN_BACKWARD_PARAMS, [], (f) => {
    declareLocals(f);
    f.get("C").get("P").i32Mul().i32Const(2).i32Shl().set("step");
    f.forRange("item", () => f.i32Const(0), () => f.get("items"), 1, () => {
      eachChannelScaled(f, (o) => {
        address(f, "scaled", "c");
        f.get(o.v("inv"));
        o.store();
        address(f, "weighted", "c");
        address(f, "dy", "c");
        o.load();
        address(f, "x", "c");
        o.load();
        o.mul();
        f.get(o.v("inv"));
        o.mul();
        f.get(o.v("s"));
        o.div();
        o.store();
      });
      // dx_i = dy_i·scaled_i − factor·x_i·Σ weighted_c over c ∈ [i − above, i + below]
      f.forRange("i", () => f.i32Const(0), () => f.get("C"), 1, () => {
        window(f, "i", "above", "below");
        planeSteps(f, (o) => {
          o.zero();
          f.set(o.v("sum"));
          f.forRange("j", () => f.get("from"), () => f.get("to").i32Const(1).i32Add(), 1, () => {
            f.get(o.v("sum"));
            address(f, "weighted", "j");
            o.load();
            o.add();
            f.set(o.v("sum"));
          });
          address(f, "y", "i");
          address(f, "dy", "i");
          o.load();
          address(f, "scaled", "i");
          o.load();
          o.mul();
          o.param("factor");
          address(f, "x", "i");
          o.load();
          o.mul();
          f.get(o.v("sum"));
          o.mul();
          o.sub();
          o.store();
        });
      });
      for (const array of ["x", "y", "dy"]) f.get(array).get("step").i32Add().set(array);
    });
  });
}

export interface LrnExports {
  lrnForward(...args: number[]): void;
  lrnBackward(...args: number[]): void;
}

/** True when these parameters have a wasm kernel: β = 0.75 (AlexNet's). */
export function lrnWasmSupports(p: LrnParams): boolean {
  return p.beta === 0.75;
}
