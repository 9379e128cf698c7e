/**
 * ReLU forward and backward for float32 in WebAssembly SIMD, beside the reference loops of
 * `tensor/ops/elementwise.ts` (`unaryCpu`, `unaryBackwardCpu`) with the same results, NaN
 * included:
 *
 *     y = x <= 0 ? 0 : x            dx = x <= 0 ? 0 : dy          (a NaN passes, as in PyTorch)
 *
 * Why a kernel for one comparison: after a convolution about half the values are negative in
 * no pattern, so the reference's `x > 0 ? … : …` is a branch the CPU mispredicts half the time.
 * Here the choice is `v128.bitselect` under the mask of `f32x4.ge` (0 >= x): four lanes per
 * instruction, no branch, on the tensors where they live in the module's memory
 * (bench/cpu_profile.ts shows where the time goes). cpu/kernels/layers.ts runs it, split over
 * the threads.
 *
 * @module
 */

import { ModuleBuilder } from "../emitter.ts";
import { MAX_PAGES } from "./gemm_kernels.ts";

/**
 * relu(x, y, n): y[i] = x[i] <= 0 ? 0 : x[i] and reluBackward(x, dy, dx, n): dx[i] = x[i] <= 0 ?
 * 0 : dy[i] for n floats at byte addresses x, y, dy, dx (16-byte aligned); four lanes at a time,
 * then one at a time for the last n % 4.
 */
export function reluModuleBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  const builder = new ModuleBuilder();
  builder.importMemory("env", "memory", { initial: 1, maximum: MAX_PAGES, shared });
  for (const backward of [false, true]) {
    const names = backward ? ["x", "dy", "out", "n"] : ["x", "out", "n"];
    const params = Object.fromEntries(names.map((name) => [name, "i32" as const]));
    const source = backward ? "dy" : "x";
    builder.addFunction(backward ? "reluBackward" : "relu", params, [], (f) => {
      f.local("end", "i32").local("vectorEnd", "i32");
      f.get("x").get("n").i32Const(2).i32Shl().i32Add().set("end");
      f.get("x").get("n").i32Const(-4).i32And().i32Const(2).i32Shl().i32Add().set("vectorEnd");
      const step = (bytes: number) => {
        for (const name of backward ? ["x", "dy", "out"] : ["x", "out"]) {
          f.get(name).i32Const(bytes).i32Add().set(name);
        }
      };
      // Four lanes: bitselect(0, source, 0 >= x). The test is "x <= 0", not "x > 0", so a
      // NaN passes through (relu(NaN) = NaN, and its gradient passes, as in PyTorch).
      f.loopWhile(() => f.get("x").get("vectorEnd").i32LtU(), () => {
        f.get("out");
        f.f32x4Const(0, 0, 0, 0);
        f.get(source).v128Load();
        f.f32x4Const(0, 0, 0, 0).get("x").v128Load().f32x4Ge();
        f.v128Bitselect().v128Store();
        step(16);
      });
      // The tail: select(0, source, 0 >= x).
      f.loopWhile(() => f.get("x").get("end").i32LtU(), () => {
        f.get("out");
        f.f32Const(0);
        f.get(source).f32Load();
        f.f32Const(0).get("x").f32Load();
        f.emit(0x60); // f32.ge
        f.select().f32Store();
        step(4);
      });
    });
  }
  return builder.bytes();
}

export interface ReluExports {
  relu(x: number, out: number, n: number): void;
  reluBackward(x: number, dy: number, out: number, n: number): void;
}
