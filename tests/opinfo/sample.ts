/**
 * The machinery of the OpInfo table (PyTorch's way of testing every op the same way): an op's
 * row lists sample inputs by category, and each sample computes its expected answer once and
 * then checks one device at a time.
 *
 * Three kinds of sample:
 * - {@link vsRef}: the reference device "ref" in float64 from the same float32 inputs is the
 *   expected answer, forward and every input gradient (float32 on the device under test).
 * - {@link exact}: an answer known in closed form (sizes too large to mirror on the host, e.g.
 *   a sum of 2^24 ones) or recorded from PyTorch (tests/fixtures/semantics/).
 * - {@link throws}: the error contract: the op's own message, on every device.
 *
 * A category that does not apply to an op is declared with {@link notApplicable} and a reason,
 * so the completeness test sees it was considered.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fromArray, type Tensor } from "../../mod.ts";
import type { TypedArray } from "../../backend/backend.ts";
import { Rng } from "../../tensor/random.ts";
import { assertClose } from "../support/close.ts";

/** The sample categories every op's row must consider. */
export const CATEGORIES = [
  "empty", // a dimension of size 0
  "scalar", // 0-d tensors
  "one", // one element
  "odd", // sizes that divide no tile or workgroup
  "nonfinite", // NaN and ±Inf (PyTorch's conventions where recorded)
  "int32", // int32 inputs and their extremes
  "large", // past 2^16 and 2^20 elements
  "huge", // 2^24 elements and reduced axes >= 2^17 (ops that reduce)
  "errors", // bad axis, bad dtype, bad argument, unknown option key
] as const;

/** One sample category. */
export type Category = typeof CATEGORIES[number];

/** A check of one device, made by a sample once its expected answer is known. */
export type DeviceCheck = (device: string) => Promise<void>;

/** One sample input of an op. */
export interface Sample {
  /** Names the sample in the output. */
  name: string;
  /** The options keys this sample passes (for the completeness test). */
  options?: readonly string[];
  /** Computes the expected answer (once) and returns the check of one device. */
  prepare(): Promise<DeviceCheck> | DeviceCheck;
}

/** A category that does not apply to an op, and why. */
export interface NotApplicable {
  notApplicable: string;
}

/** An op's samples, by category. */
export interface OpInfo {
  /** The mod.ts export. */
  op: string;
  /** The options registry entry (tensor/options.ts) of the op, if it takes options. */
  optionsOf?: string;
  /** Every category: samples, or why it does not apply. */
  samples: Record<Category, Sample[] | NotApplicable>;
}

/** Declares a category as not applying to an op. */
export function notApplicable(reason: string): NotApplicable {
  return { notApplicable: reason };
}

/** An input of a {@link vsRef} sample. */
export interface In {
  /** Shape. */
  shape: number[];
  /** The values (default: seeded uniform in the kind's range). */
  values?: ArrayLike<number>;
  /** "float" U[-1,1) (default), "positive" U[0.5,2), "labels" int32 in [0, classes), "int32". */
  kind?: "float" | "positive" | "labels" | "int32";
  /** Classes of "labels". */
  classes?: number;
}

/** Tolerances and options of a sample. */
export interface SampleOptions {
  /** Relative tolerance (default 1e-5). */
  rtol?: number;
  /** Absolute tolerance (default 1e-5). */
  atol?: number;
  /** The options keys the sample passes. */
  options?: readonly string[];
  /** Skip the gradients (outputs that are not differentiable, e.g. comparisons). */
  noGrad?: boolean;
}

/** The float32 (or int32) values of an input. */
function valuesOf(input: In, seed: number): Float32Array | Int32Array {
  const n = input.shape.reduce((a, b) => a * b, 1);
  const integer = input.kind === "labels" || input.kind === "int32";
  if (input.values) {
    return integer ? Int32Array.from(input.values) : Float32Array.from(input.values);
  }
  const rng = new Rng(seed);
  if (input.kind === "labels") return Int32Array.from({ length: n }, () => rng.int(input.classes!));
  if (input.kind === "int32") {
    return Int32Array.from({ length: n }, () => rng.int(2001) - 1000);
  }
  const [low, high] = input.kind === "positive" ? [0.5, 2] : [-1, 1];
  return Float32Array.from({ length: n }, () => low + (high - low) * rng.uniform());
}

const widen = (v: Float32Array | Int32Array) =>
  v instanceof Float32Array ? Float64Array.from(v) : v;

interface Result {
  shape: number[];
  output: TypedArray;
  grads: (TypedArray | null)[];
}

async function compute(
  inputs: In[],
  fn: (...xs: Tensor[]) => Tensor,
  device: string,
  values: TypedArray[],
  grad: boolean,
): Promise<Result> {
  const xs = inputs.map((input, i) =>
    fromArray(values[i], input.shape, {
      device,
      requiresGrad: grad && values[i] instanceof Int32Array === false,
    })
  );
  const out = fn(...xs);
  const output = await out.data();
  let grads: (TypedArray | null)[] = xs.map(() => null);
  if (grad && out.requiresGrad) {
    const upstream = valuesOf({ shape: [...out.shape] }, 999) as Float32Array;
    out.backward(
      fromArray(out.dtype === "float64" ? widen(upstream) : upstream, out.shape, { device }),
    );
    grads = await Promise.all(xs.map((x) => x.grad ? x.grad.data() : null));
  }
  for (const x of xs) {
    x.grad?.dispose();
    x.dispose();
  }
  const shape = [...out.shape];
  out.dispose();
  return { shape, output, grads };
}

/**
 * A sample checked against the reference device in float64: the same float32 (or int32)
 * inputs, widened for the reference; forward output, shape and every input gradient.
 */
export function vsRef(
  name: string,
  inputs: In[],
  fn: (...xs: Tensor[]) => Tensor,
  o: SampleOptions = {},
): Sample {
  return {
    name,
    options: o.options,
    async prepare() {
      const values = inputs.map((input, i) => valuesOf(input, 17 * (i + 1) + name.length));
      const ref = await compute(inputs, fn, "ref", values.map(widen), !o.noGrad);
      return async (device) => {
        const got = await compute(inputs, fn, device, values, !o.noGrad);
        const tol = (what: string) => ({
          rtol: o.rtol ?? 1e-5,
          atol: o.atol ?? 1e-5,
          what: `${name}: ${what} (${device} vs ref float64)`,
        });
        assert.deepEqual(got.shape, ref.shape, `${name}: output shape on ${device}`);
        assertClose(got.output, ref.output, tol("output"));
        ref.grads.forEach((expected, i) => {
          if (expected === null) return assert.equal(got.grads[i], null, `${name}: grad ${i}`);
          assert.ok(got.grads[i], `${name}: input ${i} has no gradient on ${device}`);
          assertClose(got.grads[i]!, expected, tol(`grad of input ${i}`));
        });
      };
    },
  };
}

/** What an {@link exact} sample expects: values (or one value for every element) and a shape. */
export interface Expected {
  /** Output shape. */
  shape: number[];
  /** Every element, or one value all elements equal. */
  values: ArrayLike<number> | number;
  /** The gradient of each input for an upstream gradient of ones, when checked. */
  grads?: (ArrayLike<number> | number)[];
}

/**
 * A sample with a known answer: `build` makes the inputs on the device (leaves, possibly with
 * requiresGrad) and `fn` computes; the output (and, with `expected.grads`, the gradients for an
 * upstream gradient of ones) must equal the expected values within the tolerances.
 */
export function exact(
  name: string,
  build: (device: string) => Tensor[],
  fn: (...xs: Tensor[]) => Tensor,
  expected: Expected,
  o: SampleOptions = {},
): Sample {
  return {
    name,
    options: o.options,
    prepare: () => async (device) => {
      const xs = build(device);
      const out = fn(...xs);
      const tol = (what: string) => ({
        rtol: o.rtol ?? 1e-6,
        atol: o.atol ?? 1e-6,
        what: `${name}: ${what} (${device})`,
      });
      const spread = (v: ArrayLike<number> | number, n: number) =>
        typeof v === "number" ? new Float64Array(n).fill(v) : v;
      try {
        assert.deepEqual([...out.shape], expected.shape, `${name}: output shape on ${device}`);
        const data = await out.data();
        assertClose(data, spread(expected.values, data.length), tol("output"));
        if (expected.grads) {
          out.backward(fromArray(new Float32Array(out.size).fill(1), out.shape, { device }));
          for (const [i, g] of expected.grads.entries()) {
            const grad = await xs[i].grad!.data();
            assertClose(grad, spread(g, grad.length), tol(`grad of input ${i}`));
          }
        }
      } finally {
        for (const x of xs) {
          x.grad?.dispose();
          x.dispose();
        }
        out.dispose();
      }
    },
  };
}

/** The error contract: `call` throws an error whose message matches `message`, on every device. */
export function throws(
  name: string,
  call: (device: string) => unknown,
  message: RegExp,
  o: { options?: readonly string[] } = {},
): Sample {
  return {
    name,
    options: o.options,
    prepare: () => (device) => {
      assert.throws(() => call(device), message, `${name} on ${device}`);
      return Promise.resolve();
    },
  };
}
