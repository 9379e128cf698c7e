/**
 * The WebAssembly of the fast conv2d (cpu/kernels/conv2d.ts drives it; read that file's header
 * for the method): the packers that write im2col blocks straight into the gemm microkernel's
 * panel order, the zero-border copy they read from, and the scatter of output tiles back to
 * NCHW. One module per SIMD tier (MR differs), instantiated on the gemm's memory beside the
 * gemm module, on every thread of the pool. Taps outside the image read the zeros at
 * {@link ZERO_AT}.
 *
 * @module
 */

import { type FunctionBuilder, ModuleBuilder } from "../emitter.ts";
import { MAX_PAGES, type SimdTier, TILE, transposeFour, transposeLocals } from "./gemm_kernels.ts";
import { ZERO_AT } from "./tasks.ts";

/** A pixel row that no tap reaches: its taps all read the zero at address 0. */
const NOWHERE = -(1 << 29);

// ---------------------------------------------------------------------------------------------
// The packers and the scatter, emitted per tier (MR differs)

/** `lt_u` of two i32 pushed by `a` and `b`: one unsigned compare is `0 <= a < b`. */
function inRange(f: FunctionBuilder, a: () => void, b: () => void) {
  a();
  b();
  f.i32LtU();
}

/**
 * Emits, for one pixel-row coordinate `name` (row or col) already on the locals, the validity
 * flag pushed on the stack and, when `dilated`, `name` divided by the dilation. Without
 * dilation: 0 ≤ name < size. With it: name ≡ 0 (mod dil) and 0 ≤ name/dil < size.
 */
function checkCoordinate(f: FunctionBuilder, name: string, size: string, dil: string | null) {
  if (dil === null) {
    inRange(f, () => f.get(name), () => f.get(size));
    return;
  }
  f.get(name).get(dil).i32RemS().i32Eqz();
  f.get(name).get(dil).i32DivS().tee(name);
  f.get(size).i32LtU().i32And();
}

/** Pushes the byte address `src + 4·(image + chan + row·W + col)` or the zero's, by `valid`. */
function tapAddress(f: FunctionBuilder, image: string, chan: string, valid: () => void) {
  f.get("src").get(image).get(chan).i32Add().get("row").get("W").i32Mul().i32Add().get("col");
  f.i32Add().i32Const(2).i32Shl().i32Add();
  f.i32Const(ZERO_AT); // a zero float
  valid();
  f.select();
}

const PIXEL_PARAMS = "dst src q0 rows k0 kc imageStride H W KH KW Sh Sw padH padW Dh Dw P outW"
  .split(" ");

/**
 * packPixels(...PIXEL_PARAMS): the A block col[q0 .. q0+rows, k0 .. k0+kc] in MR-pixel panels
 * (element (r, p) of a panel at p·MR + r). Pixel q = (n, i, j) of an outW-wide grid of P pixels
 * per image reads src[n·imageStride + c·H·W + row·W + col] (elements) with
 * row = i·Sh − padH + u, col = j·Sw − padW + v, then divided by the dilation Dh, Dw when
 * `dilated` (the backward to the input; zero unless divisible). Tap k = (c, u, v), KH × KW.
 */
function emitPackPixelsGeneral(builder: ModuleBuilder, mr: number) {
  const dilated = true;
  const params = Object.fromEntries(PIXEL_PARAMS.map((name) => [name, "i32" as const]));
  builder.addFunction("packPixelsGeneral", params, [], (f) => {
    for (const l of ["panel", "q", "n", "p", "i", "k", "c", "u", "v", "chan", "row", "col", "ok"]) {
      f.local(l, "i32");
    }
    for (let r = 0; r < mr; r++) {
      f.local(`image${r}`, "i32").local(`top${r}`, "i32").local(`left${r}`, "i32");
    }
    f.forRange("panel", () => f.i32Const(0), () => f.get("rows"), mr, () => {
      // Where each of the panel's MR pixels starts: image offset, top row, left column.
      for (let r = 0; r < mr; r++) {
        f.get("panel").i32Const(r).i32Add().get("rows").i32LtS().ifThen(() => {
          f.get("q0").get("panel").i32Add().i32Const(r).i32Add().set("q");
          f.get("q").get("P").i32DivS().tee("n").get("imageStride").i32Mul().set(`image${r}`);
          f.get("q").get("n").get("P").i32Mul().i32Sub().set("p");
          f.get("p").get("outW").i32DivS().set("i");
          f.get("i").get("Sh").i32Mul().get("padH").i32Sub().set(`top${r}`);
          f.get("p").get("i").get("outW").i32Mul().i32Sub().get("Sw").i32Mul().get("padW").i32Sub()
            .set(`left${r}`);
        }, () => {
          f.i32Const(0).set(`image${r}`).i32Const(NOWHERE).set(`top${r}`).i32Const(0).set(
            `left${r}`,
          );
        });
      }
      // Tap k0 = (c, u, v), then one depth step per tap.
      f.get("k0").get("KH").get("KW").i32Mul().i32DivS().set("c");
      f.get("k0").get("c").get("KH").get("KW").i32Mul().i32Mul().i32Sub().tee("k");
      f.get("KW").i32DivS().set("u");
      f.get("k").get("u").get("KW").i32Mul().i32Sub().set("v");
      f.get("c").get("H").get("W").i32Mul().i32Mul().set("chan");
      f.forRange("k", () => f.i32Const(0), () => f.get("kc"), 1, () => {
        for (let r = 0; r < mr; r++) {
          f.get(`top${r}`).get("u").i32Add().set("row");
          f.get(`left${r}`).get("v").i32Add().set("col");
          checkCoordinate(f, "row", "H", dilated ? "Dh" : null);
          checkCoordinate(f, "col", "W", dilated ? "Dw" : null);
          f.i32And().set("ok");
          f.get("dst");
          tapAddress(f, `image${r}`, "chan", () => f.get("ok"));
          f.f32Load().f32Store(4 * r);
        }
        f.get("dst").i32Const(4 * mr).i32Add().set("dst");
        // Next tap: v, then u, then c.
        f.get("v").i32Const(1).i32Add().tee("v").get("KW").i32Eq().ifThen(() => {
          f.i32Const(0).set("v");
          f.get("u").i32Const(1).i32Add().tee("u").get("KH").i32Eq().ifThen(() => {
            f.i32Const(0).set("u");
            f.get("chan").get("H").get("W").i32Mul().i32Add().set("chan");
          });
        });
      });
    });
  });
}

/**
 * pad(src, dst, planes, H, W, padH, padW): copies `planes` H × W planes into
 * (H + 2·padH) × (W + 2·padW) planes with zero borders, so that the fast packers read every tap
 * without a bounds check.
 */
function emitPad(builder: ModuleBuilder) {
  const names = ["src", "dst", "planes", "H", "W", "padH", "padW"] as const;
  const params = Object.fromEntries(names.map((name) => [name, "i32" as const]));
  builder.addFunction("pad", params, [], (f) => {
    for (const l of ["plane", "row", "col", "Wp", "Hp"]) f.local(l, "i32");
    const zeros = (count: () => void) => {
      f.forRange("col", () => f.i32Const(0), count, 1, () => {
        f.get("dst").f32Const(0).f32Store();
        f.get("dst").i32Const(4).i32Add().set("dst");
      });
    };
    f.get("W").get("padW").i32Const(1).i32Shl().i32Add().set("Wp");
    f.forRange("plane", () => f.i32Const(0), () => f.get("planes"), 1, () => {
      zeros(() => f.get("padH").get("Wp").i32Mul());
      f.forRange("row", () => f.i32Const(0), () => f.get("H"), 1, () => {
        zeros(() => f.get("padW"));
        f.forRange("col", () => f.i32Const(0), () => f.get("W"), 1, () => {
          f.get("dst").get("src").f32Load().f32Store();
          f.get("dst").i32Const(4).i32Add().set("dst");
          f.get("src").i32Const(4).i32Add().set("src");
        });
        zeros(() => f.get("padW"));
      });
      zeros(() => f.get("padH").get("Wp").i32Mul());
    });
  });
}

const PADDED_PIXEL_PARAMS = "dst src q0 rows k0 kc imageStride Hp Wp KH KW Sh Sw P outW".split(" ");

/**
 * packPixels(...PADDED_PIXEL_PARAMS): packPixelsGeneral's block from a zero-padded source
 * (Hp × Wp planes, see `pad`): every tap is in range, so element (pixel r, tap k) is one load
 * at base_r + offset_k, base_r the pixel's window corner and offset_k the tap's place in it.
 * Where a panel's MR pixels are neighbours in one row of a stride-1 layer (base_r = base_0 +
 * 4r: the bases rise strictly, so a span of 4·(MR − 1) bytes says it), a tap's MR elements are
 * MR consecutive floats, moved with one 16-byte load and store per four (and one 8-byte word for
 * two more) instead of one each.
 */
function emitPackPixels(builder: ModuleBuilder, mr: number) {
  const params = Object.fromEntries(PADDED_PIXEL_PARAMS.map((name) => [name, "i32" as const]));
  builder.addFunction("packPixels", params, [], (f) => {
    const locals = ["panel", "q", "n", "p", "i", "k", "c", "u", "v", "offset", "from"];
    for (const l of locals) f.local(l, "i32");
    for (let r = 0; r < mr; r++) f.local(`base${r}`, "i32");
    // Next tap: v, then u, then c.
    const nextTap = () => {
      f.get("dst").i32Const(4 * mr).i32Add().set("dst");
      f.get("offset").i32Const(4).i32Add().set("offset");
      f.get("v").i32Const(1).i32Add().tee("v").get("KW").i32Eq().ifThen(() => {
        f.i32Const(0).set("v");
        f.get("offset").get("Wp").get("KW").i32Sub().i32Const(2).i32Shl().i32Add().set("offset");
        f.get("u").i32Const(1).i32Add().tee("u").get("KH").i32Eq().ifThen(() => {
          f.i32Const(0).set("u");
          f.get("offset").get("Hp").get("KH").i32Sub().get("Wp").i32Mul().i32Const(2).i32Shl();
          f.i32Add().set("offset");
        });
      });
    };
    f.forRange("panel", () => f.i32Const(0), () => f.get("rows"), mr, () => {
      // base_r = src + 4·(n·imageStride + i·Sh·Wp + j·Sw); past the last row: base_0 (unread).
      for (let r = 0; r < mr; r++) {
        f.get("panel").i32Const(r).i32Add().get("rows").i32LtS().ifThen(() => {
          f.get("q0").get("panel").i32Add().i32Const(r).i32Add().set("q");
          f.get("q").get("P").i32DivS().tee("n").get("imageStride").i32Mul();
          f.get("q").get("n").get("P").i32Mul().i32Sub().tee("p").get("outW").i32DivS().tee("i");
          f.get("Sh").i32Mul().get("Wp").i32Mul().i32Add();
          f.get("p").get("i").get("outW").i32Mul().i32Sub().get("Sw").i32Mul().i32Add();
          f.i32Const(2).i32Shl().get("src").i32Add().set(`base${r}`);
        }, () => f.get("base0").set(`base${r}`));
      }
      // Tap k0 = (c, u, v) at offset 4·(c·Hp·Wp + u·Wp + v), then one depth step per tap.
      f.get("k0").get("KH").get("KW").i32Mul().i32DivS().set("c");
      f.get("k0").get("c").get("KH").get("KW").i32Mul().i32Mul().i32Sub().tee("k");
      f.get("KW").i32DivS().set("u");
      f.get("k").get("u").get("KW").i32Mul().i32Sub().set("v");
      f.get("c").get("Hp").i32Mul().get("u").i32Add().get("Wp").i32Mul().get("v").i32Add();
      f.i32Const(2).i32Shl().set("offset");
      const eachTap = (copy: () => void) =>
        f.forRange("k", () => f.i32Const(0), () => f.get("kc"), 1, () => {
          copy();
          nextTap();
        });
      f.get(`base${mr - 1}`).get("base0").i32Sub().i32Const(4 * (mr - 1)).i32Eq().ifThen(
        () =>
          eachTap(() => {
            f.get("base0").get("offset").i32Add().set("from");
            let r = 0;
            for (; r + 4 <= mr; r += 4) f.get("dst").get("from").v128Load(4 * r).v128Store(4 * r);
            for (; r + 2 <= mr; r += 2) f.get("dst").get("from").i64Load(4 * r).i64Store(4 * r);
            for (; r < mr; r++) f.get("dst").get("from").f32Load(4 * r).f32Store(4 * r);
          }),
        () =>
          eachTap(() => {
            for (let r = 0; r < mr; r++) {
              f.get("dst").get(`base${r}`).get("offset").i32Add().f32Load().f32Store(4 * r);
            }
          }),
      );
    });
  });
}

const TAP_PARAMS = "dst src k0 rows q0 kc imageStride Hp Wp KH KW Sh Sw outH outW".split(" ");

/**
 * packTaps(...TAP_PARAMS): the A block colᵀ[k0 .. k0+rows, q0 .. q0+kc] in MR-tap panels, from
 * a zero-padded source like packPixels: the same values, transposed, for the weight gradient.
 * Four neighbouring pixels of one row of a stride-1 layer are four consecutive floats of each
 * tap: they are loaded as one vector per tap and transposed in registers (4 × 4 blocks of
 * shuffles, and pairs for MR = 6) into four depth steps of MR taps.
 */
function emitPackTaps(builder: ModuleBuilder, mr: number) {
  const params = Object.fromEntries(TAP_PARAMS.map((name) => [name, "i32" as const]));
  builder.addFunction("packTaps", params, [], (f) => {
    for (const l of ["panel", "q", "k", "c", "u", "i", "j", "image", "line", "at"]) {
      f.local(l, "i32");
    }
    for (let r = 0; r < mr; r++) f.local(`offset${r}`, "i32");
    transposeLocals(f, mr);
    // Next pixel: j (`pixels` to the right), then i, then the image.
    const nextPixels = (pixels: number) => {
      f.get("dst").i32Const(4 * mr * pixels).i32Add().set("dst");
      f.get("q").i32Const(pixels).i32Add().set("q");
      f.get("at").get("Sw").i32Const(2 + Math.log2(pixels)).i32Shl().i32Add().set("at");
      f.get("j").i32Const(pixels).i32Add().tee("j").get("outW").i32Eq().ifThen(() => {
        f.i32Const(0).set("j");
        f.get("line").get("Sh").get("Wp").i32Mul().i32Const(2).i32Shl().i32Add().tee("line");
        f.set("at");
        f.get("i").i32Const(1).i32Add().tee("i").get("outH").i32Eq().ifThen(() => {
          f.i32Const(0).set("i");
          f.get("image").get("imageStride").i32Const(2).i32Shl().i32Add().tee("image");
          f.tee("line").set("at");
        });
      });
    };
    f.forRange("panel", () => f.i32Const(0), () => f.get("rows"), mr, () => {
      // offset_r = 4·(c·Hp·Wp + u·Wp + v) of tap k0 + panel + r; past the last tap: 0 (unread).
      for (let r = 0; r < mr; r++) {
        f.get("panel").i32Const(r).i32Add().get("rows").i32LtS().ifThen(() => {
          f.get("k0").get("panel").i32Add().i32Const(r).i32Add().tee("k");
          f.get("KH").get("KW").i32Mul().i32DivS().tee("c");
          f.get("KH").get("KW").i32Mul().i32Mul().get("k").i32Sub().i32Const(-1).i32Mul().tee("k");
          f.get("KW").i32DivS().set("u");
          f.get("c").get("Hp").i32Mul().get("u").i32Add().get("Wp").i32Mul();
          f.get("k").get("u").get("KW").i32Mul().i32Sub().i32Add();
          f.i32Const(2).i32Shl().set(`offset${r}`);
        }, () => f.i32Const(0).set(`offset${r}`));
      }
      // Pixel q0 = (n, i, j): image, line (its window's top row) and at (its window's corner).
      f.get("q0").get("outH").get("outW").i32Mul().i32DivS().tee("image");
      f.get("outH").get("outW").i32Mul().i32Mul().set("q");
      f.get("q0").get("q").i32Sub().tee("q").get("outW").i32DivS().set("i");
      f.get("q").get("i").get("outW").i32Mul().i32Sub().set("j");
      f.get("image").get("imageStride").i32Mul().i32Const(2).i32Shl().get("src").i32Add()
        .set("image");
      f.get("image").get("i").get("Sh").i32Mul().get("Wp").i32Mul().i32Const(2).i32Shl().i32Add()
        .tee("line");
      f.get("j").get("Sw").i32Mul().i32Const(2).i32Shl().i32Add().set("at");
      f.i32Const(0).set("q");
      f.loopWhile(() => f.get("q").get("kc").i32LtS(), () => {
        // Four pixels at once: stride 1, and they stay in the row and in the block.
        f.get("Sw").i32Const(1).i32Eq();
        f.get("j").i32Const(4).i32Add().get("outW").i32LeS().i32And();
        f.get("q").i32Const(4).i32Add().get("kc").i32LeS().i32And();
        f.ifThen(() => {
          transposeFour(f, mr, (r) => f.get("at").get(`offset${r}`).i32Add().v128Load());
          nextPixels(4);
        }, () => {
          for (let r = 0; r < mr; r++) {
            f.get("dst").get("at").get(`offset${r}`).i32Add().f32Load().f32Store(4 * r);
          }
          nextPixels(1);
        });
      });
    });
  });
}

/**
 * packGrad(dst, src, q0, kc, cols, P, imageStride): the B block dYᵀ[q0 .. q0+kc, 0 .. cols] in
 * 8-channel panels (element (o, p) of a panel at p·8 + o) from dy at src (the group's first
 * channel): pixel q = (n, s) reads src[n·imageStride + o·P + s]; channels past cols are zeros.
 */
function emitPackGrad(builder: ModuleBuilder, nr: number) {
  const names = ["dst", "src", "q0", "kc", "cols", "P", "imageStride"] as const;
  const params = Object.fromEntries(names.map((name) => [name, "i32" as const]));
  builder.addFunction("packGrad", params, [], (f) => {
    for (const l of ["o0", "q", "from", "s", "plane"]) f.local(l, "i32");
    f.get("P").i32Const(2).i32Shl().set("plane");
    f.forRange("o0", () => f.i32Const(0), () => f.get("cols"), nr, () => {
      // from: the byte address of (n, o0, s) for the current pixel.
      f.get("q0").get("P").i32RemS().set("s");
      f.get("src").get("q0").get("P").i32DivS().get("imageStride").i32Mul().get("s").i32Add();
      f.get("o0").get("P").i32Mul().i32Add().i32Const(2).i32Shl().i32Add().set("from");
      f.forRange("q", () => f.i32Const(0), () => f.get("kc"), 1, () => {
        for (let t = 0; t < nr; t++) {
          f.get("dst");
          f.get("from").get("plane").i32Const(t).i32Mul().i32Add();
          f.i32Const(ZERO_AT);
          f.get("o0").i32Const(t).i32Add().get("cols").i32LtS();
          f.select().f32Load().f32Store(4 * t);
        }
        f.get("dst").i32Const(4 * nr).i32Add().set("dst");
        f.get("from").i32Const(4).i32Add().set("from");
        f.get("s").i32Const(1).i32Add().tee("s").get("P").i32Eq().ifThen(() => {
          f.i32Const(0).set("s");
          // Next image: back over the P pixels of this one, forward one image.
          f.get("from").get("imageStride").get("P").i32Sub().i32Const(2).i32Shl().i32Add().set(
            "from",
          );
        });
      });
    });
  });
}

/**
 * scatter(c, ldc, q0, rows, cols, dst, P, imageStride, bias, biasStep): the C block
 * [rows pixels × cols channels] (row stride ldc bytes) back to NCHW, dst (the group's first
 * channel) [n·imageStride + o·P + s] = C[q − q0, o] + bias[o] (biasStep 0 reads the zero).
 */
function emitScatter(builder: ModuleBuilder) {
  const names = [
    "c",
    "ldc",
    "q0",
    "rows",
    "cols",
    "dst",
    "P",
    "imageStride",
    "bias",
    "biasStep",
  ] as const;
  const params = Object.fromEntries(names.map((name) => [name, "i32" as const]));
  builder.addFunction("scatter", params, [], (f) => {
    f.local("o", "i32").local("r", "i32").local("s", "i32").local("to", "i32").local("from", "i32");
    f.local("b", "f32");
    f.forRange("o", () => f.i32Const(0), () => f.get("cols"), 1, () => {
      f.get("bias").get("o").get("biasStep").i32Mul().i32Add().f32Load().set("b");
      f.get("q0").get("P").i32RemS().set("s");
      f.get("dst").get("q0").get("P").i32DivS().get("imageStride").i32Mul().get("s").i32Add();
      f.get("o").get("P").i32Mul().i32Add().i32Const(2).i32Shl().i32Add().set("to");
      f.get("c").get("o").i32Const(2).i32Shl().i32Add().set("from");
      f.forRange("r", () => f.i32Const(0), () => f.get("rows"), 1, () => {
        f.get("to").get("from").f32Load().get("b").f32Add().f32Store();
        f.get("from").get("ldc").i32Add().set("from");
        f.get("to").i32Const(4).i32Add().set("to");
        f.get("s").i32Const(1).i32Add().tee("s").get("P").i32Eq().ifThen(() => {
          f.i32Const(0).set("s");
          f.get("to").get("imageStride").get("P").i32Sub().i32Const(2).i32Shl().i32Add().set("to");
        });
      });
    });
  });
}

/** The conv module of one tier: packers and scatter, on the gemm's memory. */
export function convModuleBytes(tier: SimdTier, shared: boolean): Uint8Array<ArrayBuffer> {
  const { mr, nr } = TILE[tier];
  const builder = new ModuleBuilder();
  builder.importMemory("env", "memory", { initial: 1, maximum: MAX_PAGES, shared });
  emitPad(builder);
  emitPackPixels(builder, mr);
  emitPackPixelsGeneral(builder, mr);
  emitPackTaps(builder, mr);
  emitPackGrad(builder, nr);
  emitScatter(builder);
  return builder.bytes();
}

type Packer = (...args: number[]) => void;

export interface ConvExports {
  pad(
    src: number,
    dst: number,
    planes: number,
    H: number,
    W: number,
    padH: number,
    padW: number,
  ): void;
  packPixels: Packer;
  packPixelsGeneral: Packer;
  packTaps: Packer;
  packGrad(
    dst: number,
    src: number,
    q0: number,
    kc: number,
    cols: number,
    P: number,
    imageStride: number,
  ): void;
  scatter(
    c: number,
    ldc: number,
    q0: number,
    rows: number,
    cols: number,
    dst: number,
    P: number,
    imageStride: number,
    bias: number,
    biasStep: number,
  ): void;
}
