/**
 * The SGD-with-momentum update for float32 in WebAssembly, beside the reference `sgdUpdateCpu`
 * of `tensor/ops/sgd.ts` (read it first: both rules are written out there) with the same bits.
 * The reference computes each element in float64 (JavaScript numbers) and rounds once when it
 * stores v, then once when it stores w; this kernel does the same operations in the same order
 * on f64 values and rounds at the same two stores:
 *
 *     paper:    v = f32(m·v − (wd·lr)·w − lr·g);    w = f32(w + v)
 *     pytorch:  v = f32(m·v + (g + wd·w));          w = f32(w − lr·v)
 *
 * (wd·lr is one JavaScript product, passed in, as the reference's left-to-right evaluation
 * forms it.) The update reads three arrays and writes two, so it is memory-bound: the kernel
 * exists for the threads, which share a large model's update (cpu/kernels/layers.ts cuts it
 * into runs of elements).
 *
 * @module
 */

import { ModuleBuilder } from "../emitter.ts";
import { MAX_PAGES } from "./gemm_kernels.ts";

/**
 * sgdPaper(w, g, v, n, momentum, decayLr, lr) and sgdPytorch(w, g, v, n, momentum, decay, lr):
 * one update of n floats at byte addresses w, g, v (see the module comment).
 */
export function sgdModuleBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  const builder = new ModuleBuilder();
  builder.importMemory("env", "memory", { initial: 1, maximum: MAX_PAGES, shared });
  for (const rule of ["paper", "pytorch"] as const) {
    const params = {
      w: "i32",
      g: "i32",
      v: "i32",
      n: "i32",
      momentum: "f64",
      decay: "f64",
      lr: "f64",
    } as const;
    const name = rule === "paper" ? "sgdPaper" : "sgdPytorch";
    builder.addFunction(name, params, [], (f) => {
      f.local("end", "i32").local("velocity", "f32");
      f.get("w").get("n").i32Const(2).i32Shl().i32Add().set("end");
      const load = (name: string) => f.get(name).f32Load().f64PromoteF32();
      f.loopWhile(() => f.get("w").get("end").i32LtU(), () => {
        if (rule === "paper") {
          // v = m·v − (wd·lr)·w − lr·g
          f.get("momentum");
          load("v");
          f.f64Mul();
          f.get("decay");
          load("w");
          f.f64Mul().f64Sub();
          f.get("lr");
          load("g");
          f.f64Mul().f64Sub();
        } else {
          // v = m·v + (g + wd·w)
          f.get("momentum");
          load("v");
          f.f64Mul();
          load("g");
          f.get("decay");
          load("w");
          f.f64Mul().f64Add().f64Add();
        }
        f.f32DemoteF64().set("velocity");
        f.get("v").get("velocity").f32Store();
        // paper: w = w + v;  pytorch: w = w − lr·v
        f.get("w");
        load("w");
        if (rule === "paper") f.get("velocity").f64PromoteF32().f64Add();
        else f.get("lr").get("velocity").f64PromoteF32().f64Mul().f64Sub();
        f.f32DemoteF64().f32Store();
        for (const name of ["w", "g", "v"]) f.get(name).i32Const(4).i32Add().set(name);
      });
    });
  }
  return builder.bytes();
}

export interface SgdExports {
  sgdPaper(
    w: number,
    g: number,
    v: number,
    n: number,
    momentum: number,
    decayLr: number,
    lr: number,
  ): void;
  sgdPytorch(
    w: number,
    g: number,
    v: number,
    n: number,
    momentum: number,
    decay: number,
    lr: number,
  ): void;
}
