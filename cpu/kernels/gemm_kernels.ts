/**
 * The WebAssembly of tessera's fast float32 gemm, emitted with {@link ModuleBuilder}. The plan
 * is GotoBLAS / BLIS scaled to one 128-bit SIMD core; cpu/kernels/gemm.ts drives it:
 *
 * - **Packing** (`packA`, `packB`, one emitter for both): a k-block of op(A) is copied into
 *   MR-row panels, a k-block of op(B) into NR-column panels, each laid out in the order the
 *   microkernel reads them: panel q holds element (row r, depth p) at `p·width + r`. Any
 *   transpose is just a pair of strides, so four layouts cost one packer. Rows past the matrix
 *   edge are packed as zeros.
 * - **Microkernels** `kernel{mr}x{nv}`: C[mr × 4·nv] (+)= A panel · B panel over kc, with
 *   mr·nv v128 accumulators held in locals. For every depth step: nv vector loads of B, mr
 *   one-float splat loads of A, mr·nv multiply-adds. The relaxed-SIMD tier uses MR × NR = 6 × 8
 *   (12 accumulators + 2 B vectors + 1 A splat = 15 live v128 values, just under the 16 XMM
 *   registers of x86-64; 8 × 8 or 4 × 12 spill to memory). The
 *   SIMD-only tier has no fused multiply-add, so mul + add needs a temporary: 4 × 8. Edge
 *   tiles get their own kernels (mr = 1 .. MR-1, nv = 1) and a column count: the last vector
 *   is stored lane by lane, so nothing outside C is written and no work is padded away.
 * - **Macro kernel** `macro`: one k-block of a rows × cols block of C, walking B panels
 *   outside and A panels inside, so one B panel (kc × 8 floats, 8 KiB) stays in L1 while the A
 *   block (MC × kc) streams from L2.
 * - **Matrix-vector** `gemvDot` / `gemvAxpy`: y = M·x where a row of M is contiguous (dot
 *   products) or a column is (scaled sums of rows). Batch-1 linear and one-column products
 *   use them: there each weight is read once, so packing would cost as much as the math.
 *
 * @module
 */

import { type FunctionBuilder, ModuleBuilder } from "../emitter.ts";

/** Which instructions the kernels may use: relaxed SIMD's fused madd, or SIMD mul + add. */
export type SimdTier = "relaxed-simd" | "simd";

/** Register tile of a tier: MR rows of C by NR columns (NR = 8: two v128 per row). */
export interface TileShape {
  mr: number;
  nr: number;
}

/** MR × NR per tier, chosen by measurement (see the module comment). */
export const TILE: Record<SimdTier, TileShape> = {
  "relaxed-simd": { mr: 6, nr: 8 },
  "simd": { mr: 4, nr: 8 },
};

/** Limits of the gemm memory, in 64 KiB pages: 2 GiB - 64 KiB keeps every address a positive i32. */
export const MAX_PAGES = 32767;

/**
 * Emits `acc = a·b + acc`: `a` and `b` push one v128 each; `acc` names the accumulator.
 * Relaxed SIMD fuses it (`a b c relaxed_madd`); plain SIMD multiplies then adds.
 */
function multiplyAdd(
  f: FunctionBuilder,
  tier: SimdTier,
  a: () => void,
  b: () => void,
  acc: string,
) {
  if (tier === "relaxed-simd") {
    a();
    b();
    f.get(acc).f32x4RelaxedMadd().set(acc);
  } else {
    f.get(acc);
    a();
    b();
    f.f32x4Mul().f32x4Add().set(acc);
  }
}

/**
 * kernel{mr}x{nv}(a, b, c, ldc, kc, load, cols, bStep): C[mr × cols] = (load ? C : 0) + A·B
 * over kc depth steps. a: A panel (MR floats per step), b: 4·nv floats of B per step, bStep
 * bytes apart (NR·4 in a packed panel, B's row stride when B is read in place), c: byte
 * address of C's first element, ldc: C's row stride in bytes, cols ≤ 4·nv.
 */
function emitKernel(builder: ModuleBuilder, tier: SimdTier, mr: number, nv: number) {
  const { mr: MR } = TILE[tier];
  const params = {
    a: "i32",
    b: "i32",
    c: "i32",
    ldc: "i32",
    kc: "i32",
    load: "i32",
    cols: "i32",
    bStep: "i32",
  };
  builder.addFunction(`kernel${mr}x${nv}`, params as Record<string, "i32">, [], (f) => {
    const acc = (i: number, v: number) => `acc${i}_${v}`;
    for (let i = 0; i < mr; i++) for (let v = 0; v < nv; v++) f.local(acc(i, v), "v128");
    for (let v = 0; v < nv; v++) f.local(`b${v}`, "v128");
    f.local("ai", "v128").local("row", "i32").local("end", "i32");
    // Accumulators start at C (accumulate, or a later k-block) or at zero (locals start zeroed).
    f.get("load").ifThen(() => {
      f.get("c").set("row");
      for (let i = 0; i < mr; i++) {
        for (let v = 0; v < nv; v++) f.get("row").v128Load(16 * v).set(acc(i, v));
        f.get("row").get("ldc").i32Add().set("row");
      }
    });
    // for (end = b + kc·bStep; b < end; a += MR·4, b += bStep): the depth loop, kc ≥ 1.
    f.get("b").get("kc").get("bStep").i32Mul().i32Add().set("end");
    f.loop();
    for (let v = 0; v < nv; v++) f.get("b").v128Load(16 * v).set(`b${v}`);
    for (let i = 0; i < mr; i++) {
      f.get("a").v128Load32Splat(4 * i).set("ai"); // A(i, p) in all four lanes
      for (let v = 0; v < nv; v++) {
        multiplyAdd(f, tier, () => f.get("ai"), () => f.get(`b${v}`), acc(i, v));
      }
    }
    f.get("a").i32Const(MR * 4).i32Add().set("a");
    f.get("b").get("bStep").i32Add().tee("b").get("end").i32LtU().brIf(0);
    f.end();
    // Store: whole vectors when the tile is full, else the last vector lane by lane.
    f.get("c").set("row");
    f.get("cols").i32Const(4 * nv).i32Eq().ifThen(() => {
      for (let i = 0; i < mr; i++) {
        for (let v = 0; v < nv; v++) f.get("row").get(acc(i, v)).v128Store(16 * v);
        f.get("row").get("ldc").i32Add().set("row");
      }
    }, () => {
      for (let i = 0; i < mr; i++) {
        for (let v = 0; v < nv - 1; v++) f.get("row").get(acc(i, v)).v128Store(16 * v);
        for (let lane = 0; lane < 4; lane++) {
          f.get("cols").i32Const(4 * (nv - 1) + lane).i32GtS().ifThen(() => {
            f.get("row").get(acc(i, nv - 1)).v128Store32Lane(lane, 16 * (nv - 1) + 4 * lane);
          });
        }
        f.get("row").get("ldc").i32Add().set("row");
      }
    });
  });
}

/**
 * macro(a, b, c, ldc, rows, cols, kc, load, ldb): one k-block of C[rows × cols] from packed A
 * panels at a and B at b (byte addresses), with full and edge kernels. ldb = 0: B is packed
 * in NR-column panels; else B is read in place, a row-major k×n matrix with row stride ldb
 * bytes (worth it when there are too few rows of C to repay packing B).
 */
function emitMacro(builder: ModuleBuilder, tier: SimdTier) {
  const { mr: MR, nr: NR } = TILE[tier];
  const names = ["a", "b", "c", "ldc", "rows", "cols", "kc", "load", "ldb"] as const;
  const params = Object.fromEntries(names.map((name) => [name, "i32" as const]));
  builder.addFunction("macro", params, [], (f) => {
    for (const name of ["j", "i", "ap", "cp", "nc", "bStep", "bPanel"]) f.local(name, "i32");
    f.get("ldb").i32Eqz().ifThen(() => {
      f.i32Const(NR * 4).set("bStep");
      f.get("kc").i32Const(NR * 4).i32Mul().set("bPanel");
    }, () => {
      f.get("ldb").set("bStep");
      f.i32Const(NR * 4).set("bPanel");
    });
    const rowsLoop = (nv: number) => {
      // Full MR-row tiles, then one edge tile of rows % MR rows.
      f.get("a").set("ap");
      f.get("c").set("cp");
      f.i32Const(0).set("i");
      const call = (mr: number) => {
        f.get("ap").get("b").get("cp").get("ldc").get("kc").get("load").get("nc").get("bStep");
        f.call(`kernel${mr}x${nv}`);
      };
      f.loopWhile(() => f.get("i").i32Const(MR).i32Add().get("rows").i32LeS(), () => {
        call(MR);
        f.get("ap").get("kc").i32Const(MR * 4).i32Mul().i32Add().set("ap");
        f.get("cp").get("ldc").i32Const(MR).i32Mul().i32Add().set("cp");
        f.get("i").i32Const(MR).i32Add().set("i");
      });
      for (let mr = 1; mr < MR; mr++) {
        f.get("rows").get("i").i32Sub().i32Const(mr).i32Eq().ifThen(() => call(mr));
      }
    };
    f.forRange("j", () => f.i32Const(0), () => f.get("cols"), NR, () => {
      f.get("cols").get("j").i32Sub().tee("nc").i32Const(NR).i32GtS().ifThen(() => {
        f.i32Const(NR).set("nc");
      });
      f.get("nc").i32Const(4).i32GtS().ifThen(() => rowsLoop(NR / 4), () => rowsLoop(1));
      f.get("b").get("bPanel").i32Add().set("b");
      f.get("c").i32Const(NR * 4).i32Add().set("c");
    });
  });
}

/** Declares the v128 locals {@link transposeFour} uses for a panel of `width` rows. */
export function transposeLocals(f: FunctionBuilder, width: number) {
  for (let r = 0; r < width; r++) f.local(`row${r}`, "v128");
  for (const l of ["low0", "high0", "low1", "high1"]) f.local(l, "v128");
}

/** Shuffle lanes (f32 lanes 0-3 of a, 4-7 of b) as i8x16.shuffle's 16 byte lanes. */
const floatLanes = (lanes: number[]) =>
  lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]);

/**
 * Four depth steps of a panel of `width` rows, from one vector per row: `load(r)` pushes row
 * r's values at four consecutive depth steps; step p's `width` values go to the local `dst` +
 * 4·(width·p + r). Rows in fours are a 4 × 4 transpose in registers (interleave pairs of rows,
 * then join halves); a last pair is interleaved and each step's two values stored as one
 * 8-byte lane. The locals come from {@link transposeLocals}.
 */
export function transposeFour(f: FunctionBuilder, width: number, load: (r: number) => void) {
  for (let r = 0; r < width; r++) {
    load(r);
    f.set(`row${r}`);
  }
  const interleave = (a: string, b: string, high: boolean, into: string) => {
    const lanes = high ? [2, 6, 3, 7] : [0, 4, 1, 5];
    f.get(a).get(b).i8x16Shuffle(floatLanes(lanes)).set(into);
  };
  let r = 0;
  for (; r + 4 <= width; r += 4) {
    interleave(`row${r}`, `row${r + 1}`, false, "low0"); // a0 b0 a1 b1
    interleave(`row${r}`, `row${r + 1}`, true, "high0"); // a2 b2 a3 b3
    interleave(`row${r + 2}`, `row${r + 3}`, false, "low1"); // c0 d0 c1 d1
    interleave(`row${r + 2}`, `row${r + 3}`, true, "high1"); // c2 d2 c3 d3
    for (let p = 0; p < 4; p++) {
      const [a, b] = p < 2 ? ["low0", "low1"] : ["high0", "high1"];
      const lanes = p % 2 === 0 ? [0, 1, 4, 5] : [2, 3, 6, 7];
      f.get("dst").get(a).get(b).i8x16Shuffle(floatLanes(lanes)).v128Store(4 * (width * p + r));
    }
  }
  if (r + 2 <= width) {
    interleave(`row${r}`, `row${r + 1}`, false, "low0");
    interleave(`row${r}`, `row${r + 1}`, true, "high0");
    for (let p = 0; p < 4; p++) {
      f.get("dst").get(p < 2 ? "low0" : "high0").v128Store64Lane(p % 2, 4 * (width * p + r));
    }
    r += 2;
  }
  if (r !== width) throw new Error(`transposeFour: ${width} rows are not fours and a pair`);
}

/**
 * pack{A,B}(src, rowStride, depthStride, rows, depth, dst): panels of `width` rows of the
 * strided matrix X(r, p) = src[r·rowStride + p·depthStride] (strides in bytes), panel q at
 * dst + q·width·depth·4, element (r, p) of a panel at p·width + r; rows past `rows` are zeros.
 * op(A) packs with rows = i; op(B) packs with rows = j (its columns).
 */
function emitPacker(builder: ModuleBuilder, name: string, width: number) {
  const names = ["src", "rowStride", "depthStride", "rows", "depth", "dst"] as const;
  const params = Object.fromEntries(names.map((n) => [n, "i32" as const]));
  builder.addFunction(name, params, [], (f) => {
    for (const local of ["q", "p", "here", "from", "panel"]) f.local(local, "i32");
    transposeLocals(f, width);
    f.forRange("q", () => f.i32Const(0), () => f.get("rows"), width, () => {
      f.get("rows").get("q").i32Sub().set("here"); // rows in this panel (may exceed width)
      f.get("src").get("q").get("rowStride").i32Mul().i32Add().set("panel");
      const contiguous = () => f.get("rowStride").i32Const(4).i32Eq();
      const full = () => f.get("here").i32Const(width).i32GeS();
      full().ifThen(() => {
        contiguous().ifThen(() => {
          // The panel's rows are adjacent floats: move them a vector at a time.
          f.forRange("p", () => f.i32Const(0), () => f.get("depth"), 1, () => {
            f.get("panel").get("p").get("depthStride").i32Mul().i32Add().set("from");
            for (let r = 0; r + 4 <= width; r += 4) {
              f.get("dst").get("from").v128Load(4 * r).v128Store(4 * r);
            }
            for (let r = width - (width % 4); r < width; r++) {
              f.get("dst").get("from").f32Load(4 * r).f32Store(4 * r);
            }
            f.get("dst").i32Const(width * 4).i32Add().set("dst");
          });
        }, () => {
          // A row's depth steps are adjacent floats (a transposed operand): four steps at a
          // time, one vector per row, transposed in registers; the rest one float at a time.
          f.i32Const(0).set("p");
          f.get("depthStride").i32Const(4).i32Eq().ifThen(() => {
            f.loopWhile(() => f.get("p").i32Const(4).i32Add().get("depth").i32LeS(), () => {
              f.get("panel").get("p").i32Const(4).i32Mul().i32Add().set("from");
              transposeFour(f, width, (r) => {
                f.get("from").get("rowStride").i32Const(r).i32Mul().i32Add().v128Load();
              });
              f.get("dst").i32Const(4 * width * 4).i32Add().set("dst");
              f.get("p").i32Const(4).i32Add().set("p");
            });
          });
          f.forRange("p", () => f.get("p"), () => f.get("depth"), 1, () => {
            f.get("panel").get("p").get("depthStride").i32Mul().i32Add().set("from");
            for (let r = 0; r < width; r++) {
              f.get("dst").get("from").f32Load().f32Store(4 * r);
              if (r + 1 < width) f.get("from").get("rowStride").i32Add().set("from");
            }
            f.get("dst").i32Const(width * 4).i32Add().set("dst");
          });
        });
      }, () => {
        // The edge panel: `here` < width real rows, then zeros.
        f.forRange("p", () => f.i32Const(0), () => f.get("depth"), 1, () => {
          f.get("panel").get("p").get("depthStride").i32Mul().i32Add().set("from");
          for (let r = 0; r < width; r++) {
            f.get("here").i32Const(r).i32GtS().ifThen(() => {
              f.get("dst").get("from").f32Load().f32Store(4 * r);
              f.get("from").get("rowStride").i32Add().set("from");
            }, () => f.get("dst").f32Const(0).f32Store(4 * r));
          }
          f.get("dst").i32Const(width * 4).i32Add().set("dst");
        });
      });
    });
  });
}

/**
 * gemvDot(m, ldm, rows, depth, x, y, load): y[i] = (load ? y[i] : 0) + Σ_p M[i, p]·x[p] with
 * the rows of M contiguous (ldm: row stride in bytes), x and y contiguous: the dot products of
 * `dotRows4` (each vector of x loaded once for four rows of M), then `dotRows1` for the last
 * rows % 4. Every row sums in the same order either way.
 */
function emitGemvDot(builder: ModuleBuilder) {
  const names = ["m", "ldm", "rows", "depth", "x", "y", "load"] as const;
  const params = Object.fromEntries(names.map((n) => [n, "i32" as const]));
  builder.addFunction("gemvDot", params, [], (f) => {
    f.local("i", "i32");
    const rowsFrom = (r: number) => {
      f.loopWhile(() => f.get("i").i32Const(r).i32Add().get("rows").i32LeS(), () => {
        f.get("m").get("i").get("ldm").i32Mul().i32Add().get("ldm").get("x").get("depth");
        f.get("y").get("i").i32Const(4).i32Mul().i32Add().i32Const(4).get("load");
        f.call(`dotRows${r}`);
        f.get("i").i32Const(r).i32Add().set("i");
      });
    };
    rowsFrom(4);
    rowsFrom(1);
  });
}

/**
 * gemvAxpy(m, ldm, rows, depth, x, y, load): y[i] = (load ? y[i] : 0) + Σ_p M[p, i]·x[p], a
 * column of M contiguous (ldm: the stride between depth steps, in bytes). Sixteen outputs at
 * a time in four v128 sums (a whole cache line of each row of M), then four, then one.
 */
function emitGemvAxpy(builder: ModuleBuilder, tier: SimdTier) {
  const names = ["m", "ldm", "rows", "depth", "x", "y", "load"] as const;
  const params = Object.fromEntries(names.map((n) => [n, "i32" as const]));
  builder.addFunction("gemvAxpy", params, [], (f) => {
    f.local("i", "i32").local("p", "i32").local("from", "i32").local("xp", "v128");
    for (let v = 0; v < 4; v++) f.local(`s${v}`, "v128");
    f.local("sum", "f32");
    const block = (width: number) => {
      // Outputs [i, i + width) for width 16 or 4, while they fit.
      const vectors = width / 4;
      f.loopWhile(() => f.get("i").i32Const(width).i32Add().get("rows").i32LeS(), () => {
        const yAt = () => f.get("y").get("i").i32Const(4).i32Mul().i32Add();
        for (let v = 0; v < vectors; v++) {
          f.get("load").ifThen(() => {
            yAt().v128Load(16 * v).set(`s${v}`);
          }, () => f.f32Const(0).f32x4Splat().set(`s${v}`));
        }
        f.get("m").get("i").i32Const(4).i32Mul().i32Add().set("from");
        f.forRange("p", () => f.i32Const(0), () => f.get("depth"), 1, () => {
          f.get("x").get("p").i32Const(4).i32Mul().i32Add().v128Load32Splat().set("xp");
          for (let v = 0; v < vectors; v++) {
            multiplyAdd(f, tier, () => f.get("xp"), () => f.get("from").v128Load(16 * v), `s${v}`);
          }
          f.get("from").get("ldm").i32Add().set("from");
        });
        for (let v = 0; v < vectors; v++) yAt().get(`s${v}`).v128Store(16 * v);
        f.get("i").i32Const(width).i32Add().set("i");
      });
    };
    f.i32Const(0).set("i");
    block(16);
    block(4);
    f.loopWhile(() => f.get("i").get("rows").i32LtS(), () => {
      f.f32Const(0).set("sum");
      f.get("m").get("i").i32Const(4).i32Mul().i32Add().set("from");
      f.forRange("p", () => f.i32Const(0), () => f.get("depth"), 1, () => {
        f.get("sum").get("from").f32Load();
        f.get("x").get("p").i32Const(4).i32Mul().i32Add().f32Load();
        f.f32Mul().f32Add().set("sum");
        f.get("from").get("ldm").i32Add().set("from");
      });
      const yAt = () => f.get("y").get("i").i32Const(4).i32Mul().i32Add();
      f.get("load").ifThen(() => {
        yAt().f32Load().get("sum").f32Add().set("sum");
      });
      yAt().get("sum").f32Store();
      f.get("i").i32Const(1).i32Add().set("i");
    });
  });
}

/**
 * dotRows{r}(a, lda, w, k, c, ldc, load): c[i·ldc] = (load ? c : 0) + Σ_p a[i·lda + p]·w[p]
 * for the r ≤ 4 rows i of A at a (row stride lda bytes) against one contiguous row w of k
 * floats. The dot products of a few rows of C with a long weight row (linear with a small
 * batch, C = A·Wᵀ): each vector of w is loaded once for all r rows; two partial sums per row
 * keep up to eight multiply-adds in flight.
 */
function emitDotRows(builder: ModuleBuilder, tier: SimdTier, r: number) {
  const names = ["a", "lda", "w", "k", "c", "ldc", "load"] as const;
  const params = Object.fromEntries(names.map((n) => [n, "i32" as const]));
  builder.addFunction(`dotRows${r}`, params, [], (f) => {
    f.local("p", "i32").local("w0", "v128").local("w1", "v128").local("sum", "f32");
    for (let i = 0; i < r; i++) {
      f.local(`row${i}`, "i32").local(`s${i}`, "v128").local(`t${i}`, "v128");
      f.get("a").get("lda").i32Const(i).i32Mul().i32Add().set(`row${i}`);
    }
    const at = (base: string) => f.get(base).get("p").i32Const(4).i32Mul().i32Add();
    f.i32Const(0).set("p");
    f.loopWhile(() => f.get("p").i32Const(8).i32Add().get("k").i32LeS(), () => {
      at("w").v128Load().set("w0");
      at("w").v128Load(16).set("w1");
      for (let i = 0; i < r; i++) {
        multiplyAdd(f, tier, () => at(`row${i}`).v128Load(), () => f.get("w0"), `s${i}`);
        multiplyAdd(f, tier, () => at(`row${i}`).v128Load(16), () => f.get("w1"), `t${i}`);
      }
      f.get("p").i32Const(8).i32Add().set("p");
    });
    // The last k % 8 steps one float at a time, in lane 0 (the other lanes add zeros).
    f.loopWhile(() => f.get("p").get("k").i32LtS(), () => {
      at("w").v128Load32Zero().set("w0");
      for (let i = 0; i < r; i++) {
        multiplyAdd(f, tier, () => at(`row${i}`).v128Load32Zero(), () => f.get("w0"), `s${i}`);
      }
      f.get("p").i32Const(1).i32Add().set("p");
    });
    for (let i = 0; i < r; i++) {
      const cAt = () => f.get("c").get("ldc").i32Const(i).i32Mul().i32Add();
      f.get(`s${i}`).get(`t${i}`).f32x4Add().set(`s${i}`);
      f.get(`s${i}`).f32x4ExtractLane(0).get(`s${i}`).f32x4ExtractLane(1).f32Add();
      f.get(`s${i}`).f32x4ExtractLane(2).get(`s${i}`).f32x4ExtractLane(3).f32Add().f32Add();
      f.set("sum");
      f.get("load").ifThen(() => cAt().f32Load().get("sum").f32Add().set("sum"));
      cAt().get("sum").f32Store();
    }
  });
}

/**
 * skinnyDot(a, lda, m, w, ldw, n, k, c, ldc, load): C[m × n] (+)= A·Wᵀ for a few rows m, with
 * A's rows and W's rows contiguous (strides in bytes): for each row j of W, dot products with
 * the rows of A four at a time. W, the big operand, is read once and never packed.
 */
function emitSkinnyDot(builder: ModuleBuilder) {
  const names = ["a", "lda", "m", "w", "ldw", "n", "k", "c", "ldc", "load"] as const;
  const params = Object.fromEntries(names.map((n) => [n, "i32" as const]));
  builder.addFunction("skinnyDot", params, [], (f) => {
    f.local("j", "i32").local("i", "i32").local("left", "i32");
    f.forRange("j", () => f.i32Const(0), () => f.get("n"), 1, () => {
      f.forRange("i", () => f.i32Const(0), () => f.get("m"), 4, () => {
        f.get("m").get("i").i32Sub().set("left");
        for (let r = 1; r <= 4; r++) {
          const test = r < 4
            ? () => f.get("left").i32Const(r).i32Eq()
            : () => f.get("left").i32Const(4).i32GeS();
          test();
          f.ifThen(() => {
            f.get("a").get("i").get("lda").i32Mul().i32Add().get("lda");
            f.get("w").get("j").get("ldw").i32Mul().i32Add().get("k");
            f.get("c").get("i").get("ldc").i32Mul().i32Add().get("j").i32Const(4).i32Mul().i32Add();
            f.get("ldc").get("load").call(`dotRows${r}`);
          });
        }
      });
    });
  });
}

/**
 * The whole gemm module of one tier: kernels, macro kernel, packers, matrix-vector products.
 * It imports its memory as `env.memory` (shared when `shared`, so workers can use it too).
 */
export function gemmModuleBytes(tier: SimdTier, shared: boolean): Uint8Array<ArrayBuffer> {
  const { mr: MR, nr: NR } = TILE[tier];
  const builder = new ModuleBuilder();
  builder.importMemory("env", "memory", { initial: 1, maximum: MAX_PAGES, shared });
  for (let mr = 1; mr <= MR; mr++) {
    for (let nv = 1; nv <= NR / 4; nv++) emitKernel(builder, tier, mr, nv);
  }
  emitMacro(builder, tier);
  emitPacker(builder, "packA", MR);
  emitPacker(builder, "packB", NR);
  for (let r = 1; r <= 4; r++) emitDotRows(builder, tier, r);
  emitGemvDot(builder);
  emitGemvAxpy(builder, tier);
  emitSkinnyDot(builder);
  return builder.bytes();
}

/** The exports of a gemm module instance; every address and stride is in bytes. */
export interface GemmExports {
  macro(
    a: number,
    b: number,
    c: number,
    ldc: number,
    rows: number,
    cols: number,
    kc: number,
    load: number,
    /** 0 or left out: B is packed; else B's row stride in bytes, read in place. */
    ldb?: number,
  ): void;
  skinnyDot(
    a: number,
    lda: number,
    m: number,
    w: number,
    ldw: number,
    n: number,
    k: number,
    c: number,
    ldc: number,
    load: number,
  ): void;
  packA: PanelPacker;
  packB: PanelPacker;
  gemvDot: Gemv;
  gemvAxpy: Gemv;
}

/** packA and packB: one emitter (emitPacker), one signature. */
export type PanelPacker = (
  src: number,
  rowStride: number,
  depthStride: number,
  rows: number,
  depth: number,
  dst: number,
) => void;

/** gemvDot and gemvAxpy: y = M·x with the rows (dot) or the columns (axpy) of M contiguous. */
export type Gemv = (
  m: number,
  ldm: number,
  rows: number,
  depth: number,
  x: number,
  y: number,
  load: number,
) => void;
