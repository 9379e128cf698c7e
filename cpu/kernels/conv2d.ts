/**
 * The fast float32 conv2d of the CPU backend: the three sums of `tensor/ops/conv2d.ts` (read
 * that file first: it has the math and the reference loops these kernels are proven against)
 * turned into matrix products on the WebAssembly gemm microkernels of `cpu/kernels/gemm_kernels.ts`.
 *
 * The file holds the op's three fast kernels side by side: the WebAssembly each emits (the
 * packers and the scatter) and the TypeScript that drives it over the gemm's macro kernel.
 *
 * Per group g (x_g: the group's C/G input channels, w_g: its O/G filters, K = C/G·KH·KW taps,
 * M = N·H'·W' output pixels of the whole batch), with col[q, k] the im2col matrix (row q an
 * output pixel, column k a tap (c, u, v), value x[n, c, i·sh − ph + u, j·sw − pw + v] or 0):
 *
 *     forward           Y_gᵀ [M, O/G] = col [M, K] · w_gᵀ [K, O/G]
 *     backward weight   dw_gᵀ [K, O/G] = colᵀ [K, M] · dY_gᵀ [M, O/G]
 *     backward input    dX_gᵀ [N·H·W, C/G] = col' [N·H·W, K'] · w'_g [K', C/G]
 *
 * The backward to the input is the forward convolution of dy with the kernel flipped and
 * transposed (w'[c, o, u, v] = w[o, c, KH−1−u, KW−1−v], K' = O/G·KH·KW), padding KH−1−ph, and dy
 * dilated by the stride (zeros between its pixels): no col2im scatter, no zero-filled buffer.
 * That product wastes its work in two cases, which take a product and a scatter instead
 * (`conv2dBackwardInputScatter`: dcol = w_gᵀ · dY_g, then col2im adds each tap into dx): a
 * strided layer, where all but one of every Sh·Sw dilated taps reads a hole, and a narrow one,
 * where C/G is below the microkernel's 8 columns (a first layer's input gradient: saliency
 * maps, adversarial examples; training never needs it).
 *
 * **im2col straight into packed panels.** col is never materialised. The source (x, or dy for
 * the input gradient) is first copied once into planes with zero borders (`pad`), so every tap
 * is in range: `packPixels` then writes an MC × KC block of col in the microkernel's panel
 * order (MR pixels per depth step) with one load per element, at the pixel's window corner plus
 * the tap's offset, and `packTaps` writes colᵀ blocks (MR taps per depth step) for the weight
 * gradient the same way. Each element of col is packed once per call; the weights (small) are
 * packed once per group with the gemm's own packer. Where no padded copy fits (the input
 * gradient of a strided layer: dilation holes; or padding wider than the kernel)
 * `packPixelsGeneral` checks each tap and reads a zero kept at address 0 through `select`.
 *
 * The products run on the gemm module's `macro` (MR × 8 register tiles, edge tiles, fused
 * multiply-add where relaxed SIMD exists) on one thread, sharing one `WebAssembly.Memory` with
 * the packers. Outputs leave through `scatter` (forward, backward input: [pixel, channel]
 * tiles back to NCHW, plus the bias) or a transpose (weight gradient, small). Operands are
 * copied in and results out with `Float32Array.set`; the caller (cpu/backend.ts) has checked
 * the array lengths.
 *
 * Accuracy: float32 sums (KC-long fused multiply-adds, then one float32 add per k-block), where
 * the reference sums in float64: see tests/wasm_conv2d.test.ts for the bound. The weight
 * gradient's depth is the whole batch (N·H'·W', growing with the input), so it is cut into
 * blocks of at most DEPTH_BLOCK steps whose float32 results are summed in float64: no float32
 * running sum is longer than DEPTH_BLOCK / KC block additions, whatever the batch.
 *
 * @module
 */

import type { Conv2dParams } from "../../backend/backend.ts";
import { type FunctionBuilder, ModuleBuilder } from "../emitter.ts";
import {
  type GemmExports,
  gemmModuleBytes,
  MAX_PAGES,
  type SimdTier,
  TILE,
} from "./gemm_kernels.ts";
import { engineFor, type GemmEngine } from "./gemm.ts";

/** Depth of a packed block (an A panel and a B panel of KC steps fit in L1). */
const KC = 256;
/** Longest depth summed in float32 by the weight gradient before a float64 partial sum. */
const DEPTH_BLOCK = 16 * KC;
/** Pixels (or taps) per packed A block, in MR-row panels: MC × KC floats stay in L2. */
const MC_PANELS = 20;
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
  f.i32Const(0); // the zero float at address 0
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
 */
function emitPackPixels(builder: ModuleBuilder, mr: number) {
  const params = Object.fromEntries(PADDED_PIXEL_PARAMS.map((name) => [name, "i32" as const]));
  builder.addFunction("packPixels", params, [], (f) => {
    for (const l of ["panel", "q", "n", "p", "i", "k", "c", "u", "v", "offset"]) f.local(l, "i32");
    for (let r = 0; r < mr; r++) f.local(`base${r}`, "i32");
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
      f.forRange("k", () => f.i32Const(0), () => f.get("kc"), 1, () => {
        for (let r = 0; r < mr; r++) {
          f.get("dst").get(`base${r}`).get("offset").i32Add().f32Load().f32Store(4 * r);
        }
        f.get("dst").i32Const(4 * mr).i32Add().set("dst");
        // Next tap: v, then u, then c.
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
      });
    });
  });
}

const TAP_PARAMS = "dst src k0 rows q0 kc imageStride Hp Wp KH KW Sh Sw outH outW".split(" ");

/**
 * packTaps(...TAP_PARAMS): the A block colᵀ[k0 .. k0+rows, q0 .. q0+kc] in MR-tap panels, from
 * a zero-padded source like packPixels: the same values, transposed, for the weight gradient.
 */
function emitPackTaps(builder: ModuleBuilder, mr: number) {
  const params = Object.fromEntries(TAP_PARAMS.map((name) => [name, "i32" as const]));
  builder.addFunction("packTaps", params, [], (f) => {
    for (const l of ["panel", "q", "k", "c", "u", "i", "j", "image", "line", "at"]) {
      f.local(l, "i32");
    }
    for (let r = 0; r < mr; r++) f.local(`offset${r}`, "i32");
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
      f.forRange("q", () => f.i32Const(0), () => f.get("kc"), 1, () => {
        for (let r = 0; r < mr; r++) {
          f.get("dst").get("at").get(`offset${r}`).i32Add().f32Load().f32Store(4 * r);
        }
        f.get("dst").i32Const(4 * mr).i32Add().set("dst");
        // Next pixel: j, then i, then the image.
        f.get("at").get("Sw").i32Const(2).i32Shl().i32Add().set("at");
        f.get("j").i32Const(1).i32Add().tee("j").get("outW").i32Eq().ifThen(() => {
          f.i32Const(0).set("j");
          f.get("line").get("Sh").get("Wp").i32Mul().i32Const(2).i32Shl().i32Add().tee("line");
          f.set("at");
          f.get("i").i32Const(1).i32Add().tee("i").get("outH").i32Eq().ifThen(() => {
            f.i32Const(0).set("i");
            f.get("image").get("imageStride").i32Const(2).i32Shl().i32Add().tee("image");
            f.tee("line").set("at");
          });
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
          f.i32Const(0);
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
function convModuleBytes(tier: SimdTier, shared: boolean): Uint8Array<ArrayBuffer> {
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

interface ConvExports {
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

// ---------------------------------------------------------------------------------------------
// Memory and instances

interface Machine {
  tier: SimdTier;
  memory: WebAssembly.Memory;
  gemm: GemmExports;
  conv: ConvExports;
}

const machines = new Map<SimdTier, Machine>();

function machine(tier: SimdTier): Machine {
  let m = machines.get(tier);
  if (!m) {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
    const env = { env: { memory } };
    const gemm = new WebAssembly.Instance(
      new WebAssembly.Module(gemmModuleBytes(tier, false)),
      env,
    );
    const conv = new WebAssembly.Instance(
      new WebAssembly.Module(convModuleBytes(tier, false)),
      env,
    );
    m = {
      tier,
      memory,
      gemm: gemm.exports as unknown as GemmExports,
      conv: conv.exports as unknown as ConvExports,
    };
    machines.set(tier, m);
  }
  return m;
}

/** Byte regions of one call, 64-byte aligned after the 64 bytes of zeros at address 0. */
function layout<Name extends string>(
  m: Machine,
  sizes: Record<Name, number>,
): Record<Name, number> {
  const at = {} as Record<Name, number>;
  let end = 64;
  for (const [name, floats] of Object.entries(sizes) as [Name, number][]) {
    at[name] = end;
    end += Math.ceil((floats * 4) / 64) * 64;
  }
  const have = m.memory.buffer.byteLength;
  if (end > have) {
    const pages = Math.ceil((end - have) / 65536);
    if (have / 65536 + pages > MAX_PAGES) {
      throw new RangeError(`conv2d (wasm): a call needs ${end} bytes, more than 2 GiB`);
    }
    m.memory.grow(pages);
  }
  return at;
}

function put(m: Machine, address: number, values: Float32Array) {
  new Float32Array(m.memory.buffer, address, values.length).set(values);
}

function take(m: Machine, address: number, out: Float32Array, length: number) {
  out.set(new Float32Array(m.memory.buffer, address, length));
}

/** Packs B = w_gᵀ-like [depth K, cols] blocks of KC steps: source element (col, k) at src + 4·(col·K + k). */
function packWeights(m: Machine, src: number, cols: number, K: number, dst: number) {
  const colsPadded = Math.ceil(cols / 8) * 8;
  for (let k0 = 0; k0 < K; k0 += KC) {
    m.gemm.packB(src + 4 * k0, 4 * K, 4, cols, Math.min(KC, K - k0), dst + 4 * k0 * colsPadded);
  }
}

// ---------------------------------------------------------------------------------------------
// The three kernels

/**
 * The source of a pixel product: `src` (byte address of the group's first channel in image 0)
 * holds images of `imageStride` elements, planes H × W, read through KH × KW taps at stride
 * Sh × Sw. `padded`: the planes already carry their zero borders (packPixels); otherwise the
 * general packer applies padH × padW and the dilation Dh × Dw itself.
 */
interface Source {
  src: number;
  padded: boolean;
  imageStride: number;
  H: number;
  W: number;
  KH: number;
  KW: number;
  Sh: number;
  Sw: number;
  padH: number;
  padW: number;
  Dh: number;
  Dw: number;
}

/** What a pixel product computes and where its output goes. */
interface PixelProduct {
  /** Output grid: outH × outW pixels per image, `images` images. */
  outH: number;
  outW: number;
  images: number;
  /** Taps per output pixel (K) and output channels of the group (cols). */
  K: number;
  cols: number;
  /** Byte addresses: packed weights, the C block, the A block. */
  packedB: number;
  c: number;
  a: number;
  /** Output: the group's first channel, image stride (elements), bias address and step. */
  dst: number;
  dstImageStride: number;
  bias: number;
  biasStep: number;
}

/** out[pixel, col] = Σ_k col[pixel, k] · B[k, col], in blocks of MC pixels, scattered to NCHW. */
function pixelProduct(m: Machine, s: Source, g: PixelProduct) {
  const { mr } = TILE[m.tier];
  const mc = mr * MC_PANELS;
  const P = g.outH * g.outW, M = g.images * P;
  const colsPadded = Math.ceil(g.cols / 8) * 8;
  for (let q0 = 0; q0 < M; q0 += mc) {
    const rows = Math.min(mc, M - q0);
    for (let k0 = 0; k0 < g.K; k0 += KC) {
      const kc = Math.min(KC, g.K - k0);
      // The two packers' parameters (PADDED_PIXEL_PARAMS, PIXEL_PARAMS) differ only in the
      // general one's padding and dilation.
      const block = [g.a, s.src, q0, rows, k0, kc, s.imageStride, s.H, s.W, s.KH, s.KW, s.Sh, s.Sw];
      if (s.padded) m.conv.packPixels(...block, P, g.outW);
      else m.conv.packPixelsGeneral(...block, s.padH, s.padW, s.Dh, s.Dw, P, g.outW);
      const b = g.packedB + 4 * k0 * colsPadded;
      m.gemm.macro(g.a, b, g.c, 4 * g.cols, rows, g.cols, kc, k0 > 0 ? 1 : 0);
    }
    m.conv.scatter(
      g.c,
      4 * g.cols,
      q0,
      rows,
      g.cols,
      g.dst,
      P,
      g.dstImageStride,
      g.bias,
      g.biasStep,
    );
  }
}

/**
 * Copies `values` (N images of `channels` H × W planes) into wasm memory at `raw`, then into
 * zero-bordered planes at `padded`; returns the padded geometry.
 */
function putPadded(
  m: Machine,
  values: Float32Array,
  planes: number,
  H: number,
  W: number,
  padH: number,
  padW: number,
  at: { raw: number; padded: number },
) {
  put(m, at.raw, values.subarray(0, planes * H * W));
  m.conv.pad(at.raw, at.padded, planes, H, W, padH, padW);
  return { Hp: H + 2 * padH, Wp: W + 2 * padW };
}

/**
 * y = conv2d(x, weight) + bias on the wasm kernels of `tier`; same contract as
 * `conv2dForwardCpu` for float32 arrays.
 */
export function conv2dForwardWasm(
  x: Float32Array,
  weight: Float32Array,
  bias: Float32Array | null,
  p: Conv2dParams,
  y: Float32Array,
  tier: SimdTier,
): void {
  const m = machine(tier);
  const inGroup = p.c / p.groups, outGroup = p.o / p.groups;
  const K = inGroup * p.kh * p.kw, P = p.outH * p.outW;
  const [Hp, Wp] = [p.h + 2 * p.padH, p.w + 2 * p.padW];
  const mc = TILE[tier].mr * MC_PANELS;
  const at = layout(m, {
    raw: p.n * p.c * p.h * p.w,
    padded: p.n * p.c * Hp * Wp,
    w: p.o * K,
    bias: p.o,
    y: p.n * p.o * P,
    packedB: K * Math.ceil(outGroup / 8) * 8,
    a: mc * KC,
    c: mc * outGroup,
  });
  putPadded(m, x, p.n * p.c, p.h, p.w, p.padH, p.padW, at);
  put(m, at.w, weight.subarray(0, p.o * K));
  if (bias) put(m, at.bias, bias.subarray(0, p.o));
  for (let group = 0; group < p.groups; group++) {
    packWeights(m, at.w + 4 * group * outGroup * K, outGroup, K, at.packedB);
    const source: Source = {
      src: at.padded + 4 * group * inGroup * Hp * Wp,
      padded: true,
      imageStride: p.c * Hp * Wp,
      H: Hp,
      W: Wp,
      KH: p.kh,
      KW: p.kw,
      Sh: p.strideH,
      Sw: p.strideW,
      padH: 0,
      padW: 0,
      Dh: 1,
      Dw: 1,
    };
    pixelProduct(m, source, {
      outH: p.outH,
      outW: p.outW,
      images: p.n,
      K,
      cols: outGroup,
      packedB: at.packedB,
      c: at.c,
      a: at.a,
      dst: at.y + 4 * group * outGroup * P,
      dstImageStride: p.o * P,
      bias: bias ? at.bias + 4 * group * outGroup : 0,
      biasStep: bias ? 4 : 0,
    });
  }
  take(m, at.y, y, p.n * p.o * P);
}

/** How {@link conv2dBackwardInputWasm} computes dx; "auto" picks by the layer's shape. */
export type BackwardInputMethod = "auto" | "dilated" | "scatter";

/**
 * dx = ∂L/∂x from dy and the weight on the wasm kernels of `tier`: the forward convolution of
 * dy (dilated by the stride) with w' (flipped, transposed), or for strided and narrow layers a
 * product and a scatter; see the module comment. `method` forces one (tests prove both on
 * every shape). Same contract as `conv2dBackwardInputCpu` for float32 arrays.
 */
export function conv2dBackwardInputWasm(
  dy: Float32Array,
  weight: Float32Array,
  p: Conv2dParams,
  dx: Float32Array,
  tier: SimdTier,
  method: BackwardInputMethod = "auto",
): void {
  const inGroup = p.c / p.groups, outGroup = p.o / p.groups;
  const wasteful = p.strideH > 1 || p.strideW > 1 || inGroup < TILE[tier].nr;
  if (method === "scatter" || (method === "auto" && wasteful)) {
    const engine = engineFor(tier);
    if (engine !== null) return conv2dBackwardInputScatter(dy, weight, p, dx, engine);
    if (method === "scatter") {
      throw new Error(
        `conv2dBackwardInputWasm: the ${tier} gemm is still compiling; await prepareGemm()`,
      );
    }
  }
  const m = machine(tier);
  const taps = p.kh * p.kw, K = outGroup * taps, P = p.outH * p.outW;
  // dy is read with padding KH − 1 − padH: pad it once when that is a real padding and no
  // stride dilates it; otherwise the general packer skips the holes and the borders itself.
  const [padH, padW] = [p.kh - 1 - p.padH, p.kw - 1 - p.padW];
  const padded = p.strideH === 1 && p.strideW === 1 && padH >= 0 && padW >= 0;
  const [Hp, Wp] = padded ? [p.outH + 2 * padH, p.outW + 2 * padW] : [p.outH, p.outW];
  const mc = TILE[tier].mr * MC_PANELS;
  const at = layout(m, {
    raw: p.n * p.o * P,
    padded: padded ? p.n * p.o * Hp * Wp : 0,
    flipped: inGroup * K,
    dx: p.n * p.c * p.h * p.w,
    packedB: K * Math.ceil(inGroup / 8) * 8,
    a: mc * KC,
    c: mc * inGroup,
  });
  if (padded) putPadded(m, dy, p.n * p.o, p.outH, p.outW, padH, padW, at);
  else put(m, at.raw, dy.subarray(0, p.n * p.o * P));
  const flipped = new Float32Array(m.memory.buffer, at.flipped, inGroup * K);
  for (let group = 0; group < p.groups; group++) {
    // w'[c, o, u, v] = w[o, c, KH−1−u, KW−1−v] for this group's filters.
    for (let c = 0; c < inGroup; c++) {
      for (let o = 0; o < outGroup; o++) {
        const from = ((group * outGroup + o) * inGroup + c) * taps + taps - 1;
        const to = (c * outGroup + o) * taps;
        for (let t = 0; t < taps; t++) flipped[to + t] = weight[from - t];
      }
    }
    packWeights(m, at.flipped, inGroup, K, at.packedB);
    const source: Source = {
      src: (padded ? at.padded : at.raw) + 4 * group * outGroup * Hp * Wp,
      padded,
      imageStride: p.o * Hp * Wp,
      H: Hp,
      W: Wp,
      KH: p.kh,
      KW: p.kw,
      Sh: 1,
      Sw: 1,
      padH,
      padW,
      Dh: p.strideH,
      Dw: p.strideW,
    };
    pixelProduct(m, source, {
      outH: p.h,
      outW: p.w,
      images: p.n,
      K,
      cols: inGroup,
      packedB: at.packedB,
      c: at.c,
      a: at.a,
      dst: at.dx + 4 * group * inGroup * p.h * p.w,
      dstImageStride: p.c * p.h * p.w,
      bias: 0,
      biasStep: 0,
    });
  }
  take(m, at.dx, dx, p.n * p.c * p.h * p.w);
}

/**
 * dx as a product and a scatter (col2im), per image n and group g, with K = C/G·KH·KW taps and
 * P = H'·W' pixels:
 *
 *     dcol [K, P] = w_gᵀ [K, O/G] · dy_ng [O/G, P]
 *     dx[n, c, i·Sh − padH + u, j·Sw − padW + v] += dcol[(c, u, v), (i, j)]   (inside the image)
 *
 * Every multiply-add is a useful one (no dilation holes), and the product is K rows by P
 * columns however few channels the input has.
 */
function conv2dBackwardInputScatter(
  dy: Float32Array,
  weight: Float32Array,
  p: Conv2dParams,
  dx: Float32Array,
  engine: GemmEngine,
): void {
  const inGroup = p.c / p.groups, outGroup = p.o / p.groups;
  const K = inGroup * p.kh * p.kw, P = p.outH * p.outW, plane = p.h * p.w;
  const dcol = new Float32Array(K * P);
  dx.fill(0, 0, p.n * p.c * plane);
  for (let n = 0; n < p.n; n++) {
    for (let g = 0; g < p.groups; g++) {
      engine.gemm({
        transA: true,
        transB: false,
        m: K,
        n: P,
        k: outGroup,
        a: weight,
        aOffset: g * outGroup * K,
        lda: K,
        b: dy,
        bOffset: (n * p.o + g * outGroup) * P,
        ldb: P,
        c: dcol,
        cOffset: 0,
        ldc: P,
        accumulate: false,
      });
      scatterTaps(dcol, dx, (n * p.c + g * inGroup) * plane, inGroup, p);
    }
  }
}

/** col2im: adds tap row (c, u, v) of dcol to the pixels of channel c it read in the forward. */
function scatterTaps(
  dcol: Float32Array,
  dx: Float32Array,
  base: number,
  channels: number,
  p: Conv2dParams,
): void {
  const P = p.outH * p.outW, plane = p.h * p.w;
  for (let c = 0; c < channels; c++) {
    for (let u = 0; u < p.kh; u++) {
      for (let v = 0; v < p.kw; v++) {
        const row = ((c * p.kh + u) * p.kw + v) * P;
        // Output columns j whose input column j·Sw − padW + v lies in [0, W).
        const j0 = Math.max(0, Math.ceil((p.padW - v) / p.strideW));
        const j1 = Math.min(p.outW, Math.floor((p.w - 1 + p.padW - v) / p.strideW) + 1);
        for (let i = 0; i < p.outH; i++) {
          const y = i * p.strideH - p.padH + u;
          if (y < 0 || y >= p.h) continue;
          const from = row + i * p.outW, to = base + c * plane + y * p.w - p.padW + v;
          for (let j = j0; j < j1; j++) dx[to + j * p.strideW] += dcol[from + j];
        }
      }
    }
  }
}

/**
 * dw = ∂L/∂weight from dy and x on the wasm kernels of `tier`: dw_gᵀ = colᵀ · dY_gᵀ with the
 * whole batch as the depth. Same contract as `conv2dBackwardWeightCpu` for float32 arrays.
 */
export function conv2dBackwardWeightWasm(
  dy: Float32Array,
  x: Float32Array,
  p: Conv2dParams,
  dw: Float32Array,
  tier: SimdTier,
): void {
  const m = machine(tier);
  const inGroup = p.c / p.groups, outGroup = p.o / p.groups;
  const K = inGroup * p.kh * p.kw, P = p.outH * p.outW, M = p.n * P;
  const [Hp, Wp] = [p.h + 2 * p.padH, p.w + 2 * p.padW];
  const mc = TILE[tier].mr * MC_PANELS;
  const at = layout(m, {
    raw: p.n * p.c * p.h * p.w,
    padded: p.n * p.c * Hp * Wp,
    dy: p.n * p.o * P,
    packedB: KC * Math.ceil(outGroup / 8) * 8,
    a: mc * KC,
    c: K * outGroup,
  });
  putPadded(m, x, p.n * p.c, p.h, p.w, p.padH, p.padW, at);
  put(m, at.dy, dy.subarray(0, p.n * p.o * P));
  const c = new Float32Array(m.memory.buffer, at.c, K * outGroup);
  const total = new Float64Array(K * outGroup);
  for (let group = 0; group < p.groups; group++) {
    total.fill(0);
    for (let q0 = 0; q0 < M; q0 += KC) {
      const kc = Math.min(KC, M - q0);
      m.conv.packGrad(at.packedB, at.dy + 4 * group * outGroup * P, q0, kc, outGroup, P, p.o * P);
      for (let k0 = 0; k0 < K; k0 += mc) {
        const rows = Math.min(mc, K - k0);
        m.conv.packTaps(
          at.a,
          at.padded + 4 * group * inGroup * Hp * Wp,
          k0,
          rows,
          q0,
          kc,
          p.c * Hp * Wp,
          Hp,
          Wp,
          p.kh,
          p.kw,
          p.strideH,
          p.strideW,
          p.outH,
          p.outW,
        );
        const cRows = at.c + 4 * k0 * outGroup;
        const accumulate = q0 % DEPTH_BLOCK > 0 ? 1 : 0;
        m.gemm.macro(at.a, at.packedB, cRows, 4 * outGroup, rows, outGroup, kc, accumulate);
      }
      // The end of a depth block: add its float32 sums into the float64 total.
      if (q0 + KC >= M || (q0 + KC) % DEPTH_BLOCK === 0) {
        for (let i = 0; i < total.length; i++) total[i] += c[i];
      }
    }
    // dw[group·O/G + o, k] = total[k, o]
    for (let o = 0; o < outGroup; o++) {
      const row = (group * outGroup + o) * K;
      for (let k = 0; k < K; k++) dw[row + k] = total[k * outGroup + o];
    }
  }
}
