/**
 * WGSL for the batched matrix product `C[b] = op(A[b]) · op(B[b])` (see `MatmulParams` in
 * backend/backend.ts), with one entry point and two kernels chosen per adapter:
 *
 * - **Software adapters (llvmpipe / lavapipe): textures + register blocking.** On a CPU
 *   implementation of WebGPU, loads dominate and workgroup memory is as slow as a storage
 *   buffer, so classic shared-memory tiling is the slowest option measured (0.03-0.08 GFLOP/s
 *   at n = 1024, gpu/README.md). An rgba32float `textureLoad` brings 4 floats for about the cost
 *   of one scalar storage load, so op(A) and op(B) are first packed into textures (rows of
 *   4-float texels along k for A, along n for B; transposes are absorbed by the packing, and
 *   the padding is zero so the inner loop needs no bounds checks). Each invocation then
 *   computes an 8 x 4 block of C: per 4 steps of k it does 12 texel loads and 128 multiply-
 *   adds, all in registers (5.5-12 GFLOP/s here vs 1.5-4 for plain TypeScript).
 * - **Real GPUs: shared-memory tiling + register blocking.** A 64 x 64 tile of C per
 *   workgroup of 16 x 16 invocations, each accumulating 4 x 4 outputs; 16-deep slices of A
 *   and B are staged in workgroup memory so each global load feeds 64 multiply-adds.
 *
 * Buffers larger than one binding (fc6's weight, 151 MB, over lavapipe's 128 MiB limit): the
 * product is split into blocks of rows of C, columns of C, or slices of k, until each operand's
 * span fits one binding and k is at most {@link K_SLICE}; k slices after the first accumulate
 * into C, so no invocation's loop grows with k. For linear's x · Wᵀ with a
 * big W that splits n (rows of W); for dW = Gᵀ · x it splits the rows of dW; for dx = G · W it
 * splits k (rows of W).
 *
 * @module
 */

import type { MatmulParams } from "../../backend/backend.ts";
import {
  type GpuBinding,
  type GpuKernel,
  type GpuRuntime,
  type GpuStorage,
  packParams,
} from "../runtime.ts";

/** Which kernel computes the product; "auto" picks by adapter (tests force each one). */
export type MatmulPath = "auto" | "texture" | "tiled";

let forcedPath: MatmulPath = "auto";

/** Forces a matmul kernel for every runtime (tests and benchmarks); "auto" restores the default. */
export function setMatmulPath(path: MatmulPath): void {
  forcedPath = path;
}

/** The kernel the runtime will use. */
export function matmulPathFor(rt: GpuRuntime): "texture" | "tiled" {
  return forcedPath === "auto" ? (rt.isSoftware ? "texture" : "tiled") : forcedPath;
}

// ---- planning: blocks that fit the binding limit --------------------------------------------

/**
 * Longest k of one dispatch: longer products run as k slices, the later ones accumulating into
 * C in order, so an invocation's k loop is at most K_SLICE / 4 texels (texture kernel) or
 * K_SLICE / 16 tiles (tiled kernel) however long k is (gpu/README.md, "Limits").
 */
export const K_SLICE = 16384;

/** A block of the product: rows [r0, r1) and columns [c0, c1) of C over k in [k0, k1). */
interface Block {
  r0: number;
  r1: number;
  c0: number;
  c1: number;
  k0: number;
  k1: number;
}

type Dim = "r" | "c" | "k";

/** The element span [start, end) of each operand that a block touches (one batch entry). */
function spans(
  p: MatmulParams,
  b: Block,
): { a: [number, number]; b: [number, number]; c: [number, number] } {
  const lda = p.transA ? p.m : p.k, ldb = p.transB ? p.k : p.n;
  return {
    a: p.transA
      ? [b.k0 * lda + b.r0, (b.k1 - 1) * lda + b.r1]
      : [b.r0 * lda + b.k0, (b.r1 - 1) * lda + b.k1],
    b: p.transB
      ? [b.c0 * ldb + b.k0, (b.c1 - 1) * ldb + b.k1]
      : [b.k0 * ldb + b.c0, (b.k1 - 1) * ldb + b.c1],
    c: [b.r0 * p.n + b.c0, (b.r1 - 1) * p.n + b.c1],
  };
}

function size(b: Block, dim: Dim): number {
  return dim === "r" ? b.r1 - b.r0 : dim === "c" ? b.c1 - b.c0 : b.k1 - b.k0;
}

function halve(b: Block, dim: Dim): [Block, Block] {
  const lo = { ...b }, hi = { ...b };
  if (dim === "r") lo.r1 = hi.r0 = b.r0 + Math.ceil((b.r1 - b.r0) / 2);
  else if (dim === "c") lo.c1 = hi.c0 = b.c0 + Math.ceil((b.c1 - b.c0) / 2);
  else lo.k1 = hi.k0 = b.k0 + Math.ceil((b.k1 - b.k0) / 2);
  return [lo, hi];
}

/**
 * Splits the product into blocks whose operand spans fit `maxElements` (after aligning each
 * span's start down to `align` elements) and whose sizes respect `maxSize` per dimension.
 * Blocks come out with k slices in ascending order, so the first slice of a region writes C
 * and the later ones accumulate.
 */
function planBlocks(
  p: MatmulParams,
  maxElements: number,
  align: number,
  maxSize: Record<Dim, number>,
): Block[] {
  const out: Block[] = [];
  const stack: Block[] = [{ r0: 0, r1: p.m, c0: 0, c1: p.n, k0: 0, k1: p.k }];
  const fits = ([start, end]: [number, number]) =>
    end - Math.floor(start / align) * align <= maxElements;
  // The dimension along which an operand is stored row by row: splitting it shrinks its span.
  const outer = {
    a: (p.transA ? "k" : "r") as Dim,
    b: (p.transB ? "c" : "k") as Dim,
    c: "r" as Dim,
  };
  const inner = {
    a: (p.transA ? "r" : "k") as Dim,
    b: (p.transB ? "k" : "c") as Dim,
    c: "c" as Dim,
  };
  while (stack.length) {
    const block = stack.pop()!;
    const s = spans(p, block);
    let dim: Dim | null = (["r", "c", "k"] as Dim[]).find((d) => size(block, d) > maxSize[d]) ??
      null;
    for (const operand of ["a", "b", "c"] as const) {
      if (dim || fits(s[operand])) continue;
      dim = size(block, outer[operand]) > 1 ? outer[operand] : inner[operand];
    }
    if (!dim) {
      out.push(block);
      continue;
    }
    if (size(block, dim) <= 1) {
      throw new RangeError(
        `gpu.matmul: cannot split [${p.m}x${p.k}]·[${p.k}x${p.n}] to fit bindings of ${maxElements} elements`,
      );
    }
    const [lo, hi] = halve(block, dim);
    stack.push(hi, lo);
  }
  return out;
}

/** Binds the span [start, end) of `s` (whole when it fits) and returns the residual offset. */
function bindSpan(rt: GpuRuntime, s: GpuStorage, start: number, end: number): [GpuBinding, number] {
  if (s.length * 4 <= rt.maxBindingBytes) return [s, start];
  const align = rt.storageOffsetAlignment / 4;
  const aligned = Math.floor(start / align) * align;
  return [rt.range(s, aligned, end - aligned), start - aligned];
}

// ---- the software path: textures ------------------------------------------------------------

const ROWS_PER_INVOCATION = 8;
const TEXTURE_WORKGROUP = 8; // 8 x 8 invocations: 64 rows x 32 columns of C

// Texel (tx, ty) of the packed texture holds logical X[ty][4 tx .. 4 tx + 3] (zero outside
// rows x cols), where X[row][col] = src[offset + (trans ? col * ld + row : row * ld + col)].
const packKernel: GpuKernel = {
  name: "matmul_pack_texture",
  code: `
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var packed: texture_storage_2d<rgba32float, write>;
struct Params { rows: u32, cols: u32, offset: u32, ld: u32, trans: u32, width: u32, height: u32 }
@group(0) @binding(2) var<uniform> params: Params;
fn load(row: u32, col: u32) -> f32 {
  if (row >= params.rows || col >= params.cols) { return 0.0; }
  if (params.trans == 1u) { return src[params.offset + col * params.ld + row]; }
  return src[params.offset + row * params.ld + col];
}
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= params.width || gid.y >= params.height) { return; }
  let col = gid.x * 4u;
  let value = vec4f(load(gid.y, col), load(gid.y, col + 1u), load(gid.y, col + 2u), load(gid.y, col + 3u));
  textureStore(packed, vec2u(gid.x, gid.y), value);
}`,
};

function textureKernelCode(): string {
  const rows = [...Array(ROWS_PER_INVOCATION).keys()];
  // Both textures run along k, so every invocation streams its 8 rows of A and 4 rows of
  // op(B)ᵀ texel by texel, and lane j of acc<r> is C[row0 + r][col0 + j].
  return `
@group(0) @binding(0) var packedA: texture_2d<f32>;
@group(0) @binding(1) var packedB: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
struct Params { m: u32, n: u32, depthTexels: u32, offset: u32, ldc: u32, accumulate: u32 }
@group(0) @binding(3) var<uniform> params: Params;
@compute @workgroup_size(${TEXTURE_WORKGROUP}, ${TEXTURE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let col0 = gid.x * 4u;
  let row0 = gid.y * ${ROWS_PER_INVOCATION}u;
${rows.map((r) => `  var acc${r} = vec4f(0.0);`).join("\n")}
  for (var kt = 0u; kt < params.depthTexels; kt++) {
    let b0 = textureLoad(packedB, vec2u(kt, col0), 0);
    let b1 = textureLoad(packedB, vec2u(kt, col0 + 1u), 0);
    let b2 = textureLoad(packedB, vec2u(kt, col0 + 2u), 0);
    let b3 = textureLoad(packedB, vec2u(kt, col0 + 3u), 0);
${
    rows.map((r) =>
      `    let a${r} = textureLoad(packedA, vec2u(kt, row0 + ${r}u), 0);
    acc${r} += vec4f(dot(a${r}, b0), dot(a${r}, b1), dot(a${r}, b2), dot(a${r}, b3));`
    ).join("\n")
  }
  }
${rows.map((r) => `  store(row0 + ${r}u, col0, acc${r});`).join("\n")}
}
fn store(row: u32, col: u32, value: vec4f) {
  if (row >= params.m) { return; }
  for (var lane = 0u; lane < 4u; lane++) {
    if (col + lane < params.n) {
      let index = params.offset + row * params.ldc + col + lane;
      let previous = select(0.0, c[index], params.accumulate == 1u);
      c[index] = previous + value[lane];
    }
  }
}`;
}

const textureKernel: GpuKernel = { name: "matmul_texture_8x4", code: textureKernelCode() };

const roundUp = (x: number, to: number) => Math.ceil(x / to) * to;

/** Packs logical X[rows][cols] of `s` into a new texture of width ≥ cols/4 and height ≥ rows. */
function packTexture(
  rt: GpuRuntime,
  s: GpuStorage,
  span: [number, number],
  rows: number,
  cols: number,
  ld: number,
  trans: boolean,
  width: number,
  height: number,
): GPUTexture {
  const texture = rt.acquireTexture(width, height);
  const [binding, offset] = bindSpan(rt, s, span[0], span[1]);
  const params = packParams([rows, cols, offset, ld, trans ? 1 : 0, width, height]);
  rt.dispatch3(packKernel, [binding], [{ texture, mode: "storage" }], params, [
    Math.ceil(width / 16),
    Math.ceil(height / 16),
    1,
  ]);
  return texture;
}

function matmulTexture(
  rt: GpuRuntime,
  a: GpuStorage,
  b: GpuStorage,
  c: GpuStorage,
  p: MatmulParams,
): void {
  const maxTexture = rt.device.limits.maxTextureDimension2D;
  const blocks = planBlocks(p, rt.maxBindingBytes / 4, rt.storageOffsetAlignment / 4, {
    r: maxTexture - 64,
    c: maxTexture - 32,
    k: Math.min((maxTexture - 1) * 4, K_SLICE),
  });
  const lda = p.transA ? p.m : p.k, ldb = p.transB ? p.k : p.n;
  for (let batch = 0; batch < p.batch; batch++) {
    for (const block of blocks) {
      const rows = block.r1 - block.r0, cols = block.c1 - block.c0, depth = block.k1 - block.k0;
      const s = spans(p, block);
      const shift = (
        span: [number, number],
        by: number,
      ): [number, number] => [span[0] + by, span[1] + by];
      const depthTexels = Math.ceil(depth / 4);
      const paddedCols = roundUp(cols, 4 * TEXTURE_WORKGROUP);
      const packedA = packTexture(
        rt,
        a,
        shift(s.a, batch * p.strideA),
        rows,
        depth,
        lda,
        p.transA,
        depthTexels,
        roundUp(rows, 64),
      );
      // op(B)ᵀ [n, k]: B itself when transB, else B read transposed.
      const packedB = packTexture(
        rt,
        b,
        shift(s.b, batch * p.strideB),
        cols,
        depth,
        ldb,
        !p.transB,
        depthTexels,
        paddedCols,
      );
      const [cBinding, cOffset] = bindSpan(
        rt,
        c,
        batch * p.m * p.n + s.c[0],
        batch * p.m * p.n + s.c[1],
      );
      const params = packParams([rows, cols, depthTexels, cOffset, p.n, block.k0 > 0 ? 1 : 0]);
      rt.dispatch3(
        textureKernel,
        [{ texture: packedA, mode: "sampled" }, { texture: packedB, mode: "sampled" }],
        [cBinding],
        params,
        [paddedCols / (4 * TEXTURE_WORKGROUP), roundUp(rows, 64) / 64, 1],
      );
      rt.releaseTexture(packedA);
      rt.releaseTexture(packedB);
    }
  }
}

// ---- the real-GPU path: shared-memory tiles ---------------------------------------------------

const TILE = 64;
const TILE_K = 16;

const tiledKernel: GpuKernel = {
  name: "matmul_tiled_64x64",
  code: `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
struct Params {
  m: u32, n: u32, k: u32, accumulate: u32,
  offsetA: u32, lda: u32, transA: u32, strideA: u32,
  offsetB: u32, ldb: u32, transB: u32, strideB: u32,
  offsetC: u32, ldc: u32, strideC: u32, pad: u32,
}
@group(0) @binding(3) var<uniform> params: Params;
var<workgroup> tileA: array<array<f32, ${TILE}>, ${TILE_K}>;
var<workgroup> tileB: array<array<f32, ${TILE}>, ${TILE_K}>;

fn loadA(batch: u32, row: u32, col: u32) -> f32 {
  if (row >= params.m || col >= params.k) { return 0.0; }
  let base = params.offsetA + batch * params.strideA;
  if (params.transA == 1u) { return a[base + col * params.lda + row]; }
  return a[base + row * params.lda + col];
}
fn loadB(batch: u32, row: u32, col: u32) -> f32 {
  if (row >= params.k || col >= params.n) { return 0.0; }
  let base = params.offsetB + batch * params.strideB;
  if (params.transB == 1u) { return b[base + col * params.ldb + row]; }
  return b[base + row * params.ldb + col];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) local: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let batch = wid.z;
  let rowBase = wid.y * ${TILE}u;
  let colBase = wid.x * ${TILE}u;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < params.k; k0 += ${TILE_K}u) {
    for (var l = 0u; l < 4u; l++) {
      let index = lid + l * 256u;
      // A slice: ${TILE} rows x ${TILE_K} k; B slice: ${TILE_K} k x ${TILE} columns.
      tileA[index % ${TILE_K}u][index / ${TILE_K}u] = loadA(batch, rowBase + index / ${TILE_K}u, k0 + index % ${TILE_K}u);
      tileB[index / ${TILE}u][index % ${TILE}u] = loadB(batch, k0 + index / ${TILE}u, colBase + index % ${TILE}u);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TILE_K}u; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        av[i] = tileA[kk][local.y + i * 16u];
        bv[i] = tileB[kk][local.x + i * 16u];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] += av[i] * bv[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let row = rowBase + local.y + i * 16u;
    for (var j = 0u; j < 4u; j++) {
      let col = colBase + local.x + j * 16u;
      if (row < params.m && col < params.n) {
        let index = params.offsetC + batch * params.strideC + row * params.ldc + col;
        c[index] = select(0.0, c[index], params.accumulate == 1u) + acc[i][j];
      }
    }
  }
}`,
};

function matmulTiled(
  rt: GpuRuntime,
  a: GpuStorage,
  b: GpuStorage,
  c: GpuStorage,
  p: MatmulParams,
): void {
  const lda = p.transA ? p.m : p.k, ldb = p.transB ? p.k : p.n;
  const maxElements = rt.maxBindingBytes / 4;
  const wholeFits = [a, b, c].every((s) => s.length <= maxElements);
  const dispatch = (
    block: Block,
    batches: number,
    firstBatch: number,
    strides: [number, number, number],
  ) => {
    const s = spans(p, block);
    const base = (
      span: [number, number],
      by: number,
    ): [number, number] => [span[0] + by, span[1] + by];
    const lastBatch = Math.max(0, batches - 1);
    const spanA = base(s.a, firstBatch * p.strideA), spanB = base(s.b, firstBatch * p.strideB);
    const spanC = base(s.c, firstBatch * p.m * p.n);
    const [bindA, offA] = bindSpan(rt, a, spanA[0], spanA[1] + lastBatch * strides[0]);
    const [bindB, offB] = bindSpan(rt, b, spanB[0], spanB[1] + lastBatch * strides[1]);
    const [bindC, offC] = bindSpan(rt, c, spanC[0], spanC[1] + lastBatch * strides[2]);
    const rows = block.r1 - block.r0, cols = block.c1 - block.c0;
    // Offsets point at the block's first element; the kernel indexes from the block's corner.
    const params = packParams([
      rows,
      cols,
      block.k1 - block.k0,
      block.k0 > 0 ? 1 : 0,
      offA,
      lda,
      p.transA ? 1 : 0,
      strides[0],
      offB,
      ldb,
      p.transB ? 1 : 0,
      strides[1],
      offC,
      p.n,
      strides[2],
      0,
    ]);
    rt.dispatch3(tiledKernel, [bindA, bindB], [bindC], params, [
      Math.ceil(cols / TILE),
      Math.ceil(rows / TILE),
      batches,
    ]);
  };
  const kLimit = { r: Infinity, c: Infinity, k: K_SLICE };
  if (wholeFits) {
    for (let k0 = 0; k0 < p.k; k0 += K_SLICE) {
      const block: Block = { r0: 0, r1: p.m, c0: 0, c1: p.n, k0, k1: Math.min(p.k, k0 + K_SLICE) };
      for (let first = 0; first < p.batch; first += 65535) {
        const batches = Math.min(65535, p.batch - first);
        dispatch(block, batches, first, [p.strideA, p.strideB, p.m * p.n]);
      }
    }
    return;
  }
  const blocks = planBlocks(p, maxElements, rt.storageOffsetAlignment / 4, kLimit);
  for (let batch = 0; batch < p.batch; batch++) {
    for (const block of blocks) dispatch(block, 1, batch, [0, 0, 0]);
  }
}

/** C = op(A) · op(B), batched; see {@link MatmulParams}. */
export function matmulGpu(
  rt: GpuRuntime,
  a: GpuStorage,
  b: GpuStorage,
  p: MatmulParams,
): GpuStorage {
  const c = rt.alloc("float32", p.batch * p.m * p.n);
  if (p.k === 0) {
    rt.free(c);
    return rt.zeros("float32", p.batch * p.m * p.n);
  }
  if (p.batch * p.m * p.n === 0) return c;
  if (matmulPathFor(rt) === "texture") matmulTexture(rt, a, b, c, p);
  else matmulTiled(rt, a, b, c, p);
  return c;
}
