/**
 * The OpInfo table: for every public op of mod.ts, sample inputs by category (sample.ts), each
 * run on every device by opinfo.test.ts. Expected answers: the reference device in float64
 * ({@link vsRef}), a closed form for sizes too large to mirror ({@link exact}), PyTorch's
 * conventions recorded in tests/fixtures/semantics/edges.json (tools/semantics_fixtures.py),
 * and the op's own error message ({@link throws}).
 *
 * The large samples stay cheap: 2^24-element tensors are made on the device with ones()/full()
 * and checked against a closed form; the 2^20-element ones against the reference.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as T from "../../mod.ts";
import { assertClose } from "../support/close.ts";
import type { Tensor } from "../../mod.ts";
import { fixture, type FixtureTensor, numbers } from "../support/semantics_fixtures.ts";
import {
  type Category,
  exact,
  type In,
  type NotApplicable,
  notApplicable,
  type OpInfo,
  type Sample,
  throws,
  vsRef,
} from "./sample.ts";

type Rows = Sample[] | NotApplicable;

const K16 = (1 << 16) + 5; // past 2^16 elements
const M20 = (1 << 20) + 3; // past 2^20 elements
const M24 = 1 << 24; // 2^24 elements
const AXIS17 = (1 << 17) + 3; // a reduced axis past 2^17

const f = (...shape: number[]): In => ({ shape });
const pos = (...shape: number[]): In => ({ shape, kind: "positive" });
const v = (values: number[], shape = [values.length]): In => ({ shape, values });
const labels = (n: number, classes: number): In => ({ shape: [n], kind: "labels", classes });
const TRANSCENDENTAL = { rtol: 1e-4, atol: 1e-5 };
const SUMS = { rtol: 1e-4, atol: 1e-4 };

/** n exact float32 values k/4 in [-1000, 1000): truncation is the same in float32 and float64. */
const QUARTERS = (n: number) => Array.from({ length: n }, (_, i) => ((i * 7919) % 8000) / 4 - 1000);

const NONFINITE = [NaN, Infinity, -Infinity, 0, -0, 1.5, -2];
const INT32_EXTREMES = [2147483647, -2147483648, 0, -1, 1, 65536];

const dev = (device: string) => ({ device });
const on = (device: string, values: number[], shape = [values.length]) =>
  T.fromArray(Float32Array.from(values), shape, dev(device));
const leaf = (device: string, values: number[], shape = [values.length]) =>
  T.fromArray(Float32Array.from(values), shape, { device, requiresGrad: true });
const ints = (device: string, values: number[]) =>
  T.fromArray(Int32Array.from(values), [values.length], dev(device));

interface Edge {
  op: string;
  x: FixtureTensor;
  out: FixtureTensor;
  grad: FixtureTensor;
}
const EDGES = fixture<Edge & Record<string, unknown>>("edges.json");
const edge = (op: string) => EDGES.find((e) => e.op === op)!;

/** PyTorch's forward and gradient at NaN, ±Inf and kinks (edges.json), on every device. */
function torchEdge(op: string, fn: (x: Tensor) => Tensor): Sample {
  const e = edge(op);
  return exact(
    `PyTorch's ${op} at ${numbers(e.x).join(", ")}`,
    (d) => [leaf(d, numbers(e.x), e.x.shape)],
    fn,
    { shape: e.out.shape, values: numbers(e.out), grads: [numbers(e.grad)] },
  );
}

/** The error for an int32 input of a float-only op. */
function floatOnly(op: string, call: (x: Tensor) => unknown): Sample {
  return throws(
    `${op} of an int32 tensor`,
    (d) => call(ints(d, [1, 2])),
    /expected a float tensor/,
  );
}

/** A non-tensor first argument: the op names itself and the argument. */
function notATensor(op: string, call: (x: unknown) => unknown): Sample {
  return throws(`${op} of an array`, () => call([1, 2]), new RegExp(`${op}: .*Tensor`));
}

// ---- elementwise ----------------------------------------------------------------------------

type Unary = (x: Tensor) => Tensor;

function unaryRow(
  op: string,
  fn: Unary,
  o: { positive?: boolean; tol?: { rtol: number; atol: number }; edges?: string[] } = {},
): OpInfo {
  const input = o.positive ? pos : f;
  const tol = o.tol ?? {};
  const edgeSamples = (o.edges ?? []).map((name) => torchEdge(name, fn));
  return {
    op,
    samples: {
      empty: [vsRef(`${op} [0]`, [input(0)], fn), vsRef(`${op} [2,0,3]`, [input(2, 0, 3)], fn)],
      scalar: [vsRef(`${op} 0-d`, [input()], fn, tol)],
      one: [vsRef(`${op} [1]`, [input(1)], fn, tol)],
      odd: [vsRef(`${op} [3,5,7]`, [input(3, 5, 7)], fn, tol)],
      nonfinite: [
        ...edgeSamples,
        vsRef(`${op} of NaN, ±Inf, ±0`, [v(NONFINITE)], fn, { ...tol, noGrad: true }),
      ],
      int32: [floatOnly(op, fn)],
      large: [
        vsRef(`${op} [${K16}]`, [input(K16)], fn, tol),
        vsRef(`${op} [${M20}]`, [input(M20)], fn, tol),
      ],
      huge: notApplicable("elementwise: one invocation per element, no loop grows with the size"),
      errors: [floatOnly(op, fn), notATensor(op, fn as (x: unknown) => Tensor)],
    },
  };
}

type Binary = (a: Tensor, b: Tensor) => Tensor;

/** int32 a ∘ b from the int32 fixture (PyTorch's wrap-around), on every device. */
function int32Fixture(op: "add" | "sub" | "mul", fn: Binary): Sample {
  const e = edge("int32") as unknown as Record<string, number[]>;
  return exact(
    `int32 ${op} at the extremes (PyTorch wraps around)`,
    (d) => [ints(d, e.a), ints(d, e.b)],
    fn,
    { shape: [e.a.length], values: e[op] },
    { rtol: 0, atol: 0 },
  );
}

function binaryRow(
  op: string,
  fn: Binary,
  o: { compare?: boolean; positiveB?: boolean; int32?: Rows; tol?: { rtol: number } } = {},
): OpInfo {
  const b = o.positiveB ? pos : f;
  const g = { noGrad: o.compare, ...(o.tol ?? {}) };
  return {
    op,
    samples: {
      empty: [
        vsRef(`${op} [0]∘[0]`, [f(0), b(0)], fn, g),
        vsRef(`${op} [2,0]∘[1]`, [f(2, 0), b(1)], fn, g),
      ],
      scalar: [
        vsRef(`${op} 0-d∘0-d`, [f(), b()], fn, g),
        vsRef(`${op} [4,3]∘0-d`, [f(4, 3), b()], fn, g),
      ],
      one: [vsRef(`${op} [1]∘[5]`, [f(1), b(5)], fn, g)],
      odd: [vsRef(`${op} [3,1,7]∘[5,1]`, [f(3, 1, 7), b(5, 1)], fn, g)],
      nonfinite: [
        vsRef(
          `${op} of NaN, ±Inf`,
          [v(NONFINITE), v([1, 2, -1, Infinity, NaN, 0, -Infinity])],
          fn,
          {
            ...g,
            noGrad: true,
          },
        ),
      ],
      int32: o.int32 ?? notApplicable("float only"),
      large: [
        vsRef(`${op} [${K16}]`, [f(K16), b(K16)], fn, g),
        vsRef(`${op} [${M20}]∘[1]`, [f(M20), b(1)], fn, g),
      ],
      huge: notApplicable(
        "elementwise: one invocation per element; sums to broadcast shapes are sum's",
      ),
      errors: [
        throws(
          `${op} of shapes [2,3] and [4]`,
          (d) => fn(on(d, [1, 2, 3, 4, 5, 6], [2, 3]), on(d, [1, 2, 3, 4])),
          /cannot broadcast/,
        ),
        throws(
          `${op} across devices`,
          (d) => fn(on(d, [1]), on(d === "ref" ? "cpu" : "ref", [1])),
          /device/,
        ),
      ],
    },
  };
}

const compareInt32 = (
  op: string,
  fn: Binary,
  expect: (a: number, b: number) => boolean,
): Sample[] => {
  const a = INT32_EXTREMES, b = [2147483647, 2147483647, -0, 0, 1, 65535];
  return [
    exact(`${op} of int32 extremes`, (d) => [ints(d, a), ints(d, b)], fn, {
      shape: [a.length],
      values: a.map((x, i) => expect(x, b[i]) ? 1 : 0),
    }, { rtol: 0, atol: 0 }),
  ];
};

const elementwise: OpInfo[] = [
  unaryRow("abs", T.abs, { edges: ["abs"] }),
  unaryRow("exp", T.exp, { tol: TRANSCENDENTAL, edges: ["exp"] }),
  unaryRow("log", T.log, { positive: true, tol: TRANSCENDENTAL, edges: ["log"] }),
  unaryRow("neg", T.neg),
  unaryRow("relu", T.relu, { edges: ["relu"] }),
  unaryRow("sigmoid", T.sigmoid, { tol: TRANSCENDENTAL, edges: ["sigmoid"] }),
  unaryRow("sqrt", T.sqrt, { positive: true, tol: TRANSCENDENTAL, edges: ["sqrt"] }),
  unaryRow("tanh", T.tanh, { tol: TRANSCENDENTAL, edges: ["tanh"] }),
  {
    ...unaryRow("pow", (x) => T.pow(x, 3), { edges: [] }),
    op: "pow",
  },
  unaryRow("affine", (x) => T.affine(x, -2.5, 0.75)),
  binaryRow("add", T.add, { int32: [int32Fixture("add", T.add)] }),
  binaryRow("sub", T.sub, { int32: [int32Fixture("sub", T.sub)] }),
  binaryRow("mul", T.mul, { int32: [int32Fixture("mul", T.mul)] }),
  binaryRow("div", T.div, {
    positiveB: true,
    tol: { rtol: 1e-5 },
    int32: [
      throws(
        "div of int32 tensors",
        (d) => T.div(ints(d, [7]), ints(d, [2])),
        /int32 division is not supported/,
      ),
    ],
  }),
  binaryRow("eq", T.eq, { compare: true, int32: compareInt32("eq", T.eq, (a, b) => a === b) }),
  binaryRow("ne", T.ne, { compare: true, int32: compareInt32("ne", T.ne, (a, b) => a !== b) }),
  binaryRow("gt", T.gt, { compare: true, int32: compareInt32("gt", T.gt, (a, b) => a > b) }),
  binaryRow("ge", T.ge, { compare: true, int32: compareInt32("ge", T.ge, (a, b) => a >= b) }),
  binaryRow("lt", T.lt, { compare: true, int32: compareInt32("lt", T.lt, (a, b) => a < b) }),
  binaryRow("le", T.le, { compare: true, int32: compareInt32("le", T.le, (a, b) => a <= b) }),
];

// pow: its own edges (PyTorch's gradient of x^0 at 0 is 0, of x^0.5 at 0 is Inf)
const powRow = elementwise.find((r) => r.op === "pow")!;
powRow.samples.nonfinite = [
  torchEdge("pow0", (x) => T.pow(x, 0)),
  torchEdge("pow2", (x) => T.pow(x, 2)),
  torchEdge("pow0.5", (x) => T.pow(x, 0.5)),
  torchEdge("pow-1", (x) => T.pow(x, -1)),
  vsRef("pow 2.5^x of NaN, ±Inf", [v(NONFINITE)], (x) => T.pow(2.5, x), { noGrad: true }),
];

elementwise.push(
  {
    op: "cast",
    samples: {
      empty: [vsRef("cast [0] to int32", [f(0)], (x) => T.cast(x, "int32"), { noGrad: true })],
      scalar: [
        vsRef("cast 0-d to int32", [v([-3.5], [])], (x) => T.cast(x, "int32"), { noGrad: true }),
      ],
      one: [vsRef("cast [1] to int32", [v([-2.75])], (x) => T.cast(x, "int32"), { noGrad: true })],
      odd: [
        vsRef(
          "cast [3,5,7]·9 to int32 (truncation)",
          [f(3, 5, 7)],
          (x) => T.cast(T.affine(x, 9, 0), "int32"),
          { noGrad: true },
        ),
      ],
      nonfinite: [
        vsRef(
          "cast NaN, ±Inf to float32 (unchanged)",
          [v(NONFINITE)],
          (x) => T.cast(x, "float32"),
          {
            noGrad: true,
          },
        ),
      ],
      int32: [
        exact(
          "cast int32 extremes to float32",
          (d) => [ints(d, INT32_EXTREMES)],
          (x) => T.cast(x, "float32"),
          {
            shape: [INT32_EXTREMES.length],
            values: INT32_EXTREMES.map(Math.fround),
          },
          { rtol: 0, atol: 0 },
        ),
      ],
      large: [
        vsRef(`cast [${M20}] to int32`, [v(QUARTERS(M20))], (x) => T.cast(x, "int32"), {
          noGrad: true,
        }),
      ],
      huge: notApplicable("elementwise"),
      errors: [
        throws("cast to int8", (d) => T.cast(on(d, [1]), "int8" as "int32"), /cast: dtype must be/),
      ],
    },
  },
  {
    op: "broadcastTo",
    samples: {
      empty: [vsRef("broadcastTo [1] -> [0]", [f(1)], (x) => T.broadcastTo(x, [0]))],
      scalar: [vsRef("broadcastTo 0-d -> [2,3]", [f()], (x) => T.broadcastTo(x, [2, 3]))],
      one: [vsRef("broadcastTo [1] -> [1]", [f(1)], (x) => T.broadcastTo(x, [1]))],
      odd: [vsRef("broadcastTo [3,1] -> [5,3,7]", [f(3, 1)], (x) => T.broadcastTo(x, [5, 3, 7]))],
      nonfinite: [
        vsRef("broadcastTo NaN, ±Inf", [v(NONFINITE, [7, 1])], (x) => T.broadcastTo(x, [7, 3]), {
          noGrad: true,
        }),
      ],
      int32: [
        exact(
          "broadcastTo int32 extremes",
          (d) => [ints(d, INT32_EXTREMES)],
          (x) => T.broadcastTo(x, [2, 6]),
          {
            shape: [2, 6],
            values: [...INT32_EXTREMES, ...INT32_EXTREMES],
          },
          { rtol: 0, atol: 0 },
        ),
      ],
      large: [
        vsRef(
          `broadcastTo [1,${K16}] -> [16,${K16}]`,
          [f(1, K16)],
          (x) => T.broadcastTo(x, [16, K16]),
          SUMS,
        ),
      ],
      huge: [
        exact(
          "sum of broadcastTo 0-d -> [2^24] (the gradient sums 2^24 ones)",
          (d) => [T.full([], 1, { device: d, requiresGrad: true })],
          (x) => T.sum(T.broadcastTo(x, [M24])),
          { shape: [], values: M24, grads: [M24] },
        ),
      ],
      errors: [
        throws(
          "broadcastTo [3] -> [2]",
          (d) => T.broadcastTo(on(d, [1, 2, 3]), [2]),
          /broadcastTo: cannot broadcast/,
        ),
      ],
    },
  },
);

// ---- reductions -----------------------------------------------------------------------------

type Reduce = (x: Tensor, axis?: number | number[], keepDims?: boolean) => Tensor;

function reduceRow(op: "sum" | "mean" | "max", fn: Reduce, huge: (n: number) => number): OpInfo {
  const g = op === "max" ? { ...SUMS } : SUMS;
  return {
    op,
    samples: {
      empty: op === "max"
        ? [throws("max over an empty axis", (d) => fn(T.zeros([2, 0], dev(d)), 1), /max: .*empty/)]
        : [
          vsRef(`${op} of [0]`, [f(0)], (x) => fn(x), g),
          vsRef(`${op} [3,0] axis 1`, [f(3, 0)], (x) => fn(x, 1), g),
        ],
      scalar: [
        vsRef(`${op} of 0-d`, [f()], (x) => fn(x)),
        vsRef(`${op} of 0-d, axes []`, [f()], (x) => fn(x, [])),
      ],
      one: [vsRef(`${op} of [1]`, [f(1)], (x) => fn(x, 0))],
      odd: [
        vsRef(`${op} [3,5,7] axes [0,2] keepDims`, [f(3, 5, 7)], (x) => fn(x, [0, 2], true), g),
        vsRef(`${op} [3,5,7] axis -1`, [f(3, 5, 7)], (x) => fn(x, -1), g),
      ],
      nonfinite: [
        vsRef(`${op} with NaN propagates`, [v([1, NaN, 3, -1, 2, 0], [2, 3])], (x) => fn(x, 1), {
          noGrad: true,
        }),
        vsRef(`${op} with ±Inf`, [v([1, Infinity, 3, -Infinity, 2, 0], [2, 3])], (x) => fn(x, 1), {
          noGrad: true,
        }),
        ...(op === "max"
          ? [
            torchEdge("amax_nan", (x) => T.max(x, 0, true)),
            torchEdge("amax_ties", (x) => T.max(x, 0, true)),
          ]
          : []),
        ...(op === "sum" ? [torchEdge("sum_nan", (x) => T.sum(x, 0, true))] : []),
      ],
      int32: [floatOnly(op, (x) => fn(x))],
      large: [
        vsRef(`${op} of [${K16}]`, [f(K16)], (x) => fn(x), g),
        vsRef(
          `${op} of [1024,${(M20 >> 10) + 1}] axis 0`,
          [f(1024, (M20 >> 10) + 1)],
          (x) => fn(x, 0),
          g,
        ),
      ],
      huge: [
        exact(
          `${op} of 2^24 ones`,
          (d) => [T.ones([M24], { device: d, requiresGrad: true })],
          (x) => fn(x),
          {
            shape: [],
            values: huge(M24),
            // The gradient once (sum's: 2^24 ones); mean's and max's are elementwise after it.
            grads: op === "sum" ? [1] : undefined,
          },
        ),
        exact(
          `${op} of [2,${AXIS17}] ones along the long axis`,
          (d) => [T.ones([2, AXIS17], dev(d))],
          (x) => fn(x, 1),
          {
            shape: [2],
            values: huge(AXIS17),
          },
        ),
        exact(
          `${op} of [${AXIS17},2] ones along the long axis 0`,
          (d) => [T.ones([AXIS17, 2], dev(d))],
          (x) => fn(x, 0),
          {
            shape: [2],
            values: huge(AXIS17),
          },
        ),
      ],
      errors: [
        throws(
          `${op} axis 3 of a 1-d tensor`,
          (d) => fn(on(d, [1, 2]), 3),
          new RegExp(`${op}: axis 3 is out of range`),
        ),
        floatOnly(op, (x) => fn(x)),
        notATensor(op, fn as (x: unknown) => Tensor),
      ],
    },
  };
}

const lastHot = (n: number, at: number) => {
  const a = new Float32Array(n);
  a[at] = 1;
  return Array.from(a);
};

const reductions: OpInfo[] = [
  reduceRow("sum", T.sum, (n) => n),
  reduceRow("mean", T.mean, () => 1),
  reduceRow("max", T.max, () => 1),
  {
    op: "argmax",
    samples: {
      empty: [
        throws(
          "argmax over an empty axis",
          (d) => T.argmax(T.zeros([0], dev(d)), 0),
          /argmax: axis 0 of \[0\] is empty/,
        ),
      ],
      scalar: [
        // PyTorch's argmax of a 0-d tensor is 0; tessera's default axis is the last one (-1),
        // which a 0-d tensor lacks: refused with a message rather than guessed.
        throws(
          "argmax of 0-d",
          (d) => T.argmax(T.full([], 3, dev(d))),
          /argmax: needs at least one axis/,
        ),
      ],
      one: [vsRef("argmax of [1]", [f(1)], (x) => T.argmax(x, 0), { noGrad: true })],
      odd: [
        vsRef("argmax [3,67,5] axis 1 keepDims", [f(3, 67, 5)], (x) => T.argmax(x, 1, true), {
          noGrad: true,
        }),
      ],
      nonfinite: [
        exact(
          "PyTorch's argmax with NaN and ties",
          (d) => [on(d, numbers(edge("argmax").x), edge("argmax").x.shape)],
          (x) => T.argmax(x, 1),
          {
            shape: [3],
            values: (edge("argmax") as unknown as { out: number[] }).out,
          },
          { rtol: 0, atol: 0 },
        ),
      ],
      int32: [floatOnly("argmax", (x) => T.argmax(x, 0))],
      large: [
        vsRef(`argmax of [4,${K16}] axis 1`, [f(4, K16)], (x) => T.argmax(x, 1), { noGrad: true }),
      ],
      huge: [
        exact(
          `argmax of [${AXIS17}], the maximum last`,
          (d) => [on(d, lastHot(AXIS17, AXIS17 - 1))],
          (x) => T.argmax(x, 0),
          {
            shape: [],
            values: AXIS17 - 1,
          },
          { rtol: 0, atol: 0 },
        ),
      ],
      errors: [
        throws(
          "argmax axis 2 of [2,2]",
          (d) => T.argmax(on(d, [1, 2, 3, 4], [2, 2]), 2),
          /argmax: axis 2 is out of range/,
        ),
        notATensor("argmax", T.argmax as (x: unknown) => Tensor),
      ],
    },
  },
  {
    op: "sumTo",
    samples: {
      empty: [vsRef("sumTo [0,3] -> [3]", [f(0, 3)], (x) => T.sumTo(x, [3]))],
      scalar: [vsRef("sumTo [4,5] -> []", [f(4, 5)], (x) => T.sumTo(x, []), SUMS)],
      one: [vsRef("sumTo [1] -> [1]", [f(1)], (x) => T.sumTo(x, [1]))],
      odd: [vsRef("sumTo [3,5,7] -> [5,1]", [f(3, 5, 7)], (x) => T.sumTo(x, [5, 1]), SUMS)],
      nonfinite: [
        vsRef("sumTo with NaN, Inf", [v([1, NaN, Infinity, 2], [2, 2])], (x) => T.sumTo(x, [2]), {
          noGrad: true,
        }),
      ],
      int32: [floatOnly("sumTo", (x) => T.sumTo(x, [1]))],
      large: [vsRef(`sumTo [${M20}] -> [1]`, [f(M20)], (x) => T.sumTo(x, [1]), SUMS)],
      huge: [
        exact("sumTo [2^24] ones -> []", (d) => [T.ones([M24], dev(d))], (x) => T.sumTo(x, []), {
          shape: [],
          values: M24,
        }),
      ],
      errors: [
        throws(
          "sumTo [3] -> [2]",
          (d) => T.sumTo(on(d, [1, 2, 3]), [2]),
          /sumTo: cannot broadcast/,
        ),
      ],
    },
  },
];

// ---- layout ---------------------------------------------------------------------------------

/** `values` repeated to fill `shape`. */
const cycle = (values: number[], shape: number[]) =>
  Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => values[i % values.length]);

const I32 = (shape: number[]): In => ({
  shape,
  kind: "int32",
  values: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => INT32_EXTREMES[i % 6]),
});

type LayoutShapes = Record<
  "empty" | "scalar" | "one" | "odd" | "nonfinite" | "large",
  number[][] | string
>;

function layoutRow(
  op: string,
  fn: (...xs: Tensor[]) => Tensor,
  shapes: LayoutShapes,
  errors: Sample[],
): OpInfo {
  const rows = (k: keyof LayoutShapes, label: string, o = {}): Rows => {
    const s = shapes[k];
    if (typeof s === "string") return notApplicable(s);
    const inputs = s.map((shape) =>
      k === "nonfinite" ? v(cycle(NONFINITE, shape), shape) : f(...shape)
    );
    return [vsRef(`${op} ${label} ${s.map((x) => `[${x}]`).join(" ")}`, inputs, fn, o)];
  };
  const nf = shapes.nonfinite;
  return {
    op,
    samples: {
      empty: rows("empty", "empty"),
      scalar: rows("scalar", "0-d"),
      one: rows("one", "one element"),
      odd: rows("odd", "odd sizes"),
      nonfinite: rows("nonfinite", "moves NaN, ±Inf unchanged", { noGrad: true, rtol: 0, atol: 0 }),
      int32: typeof nf === "string" ? notApplicable(nf) : [
        vsRef(`${op} of int32 extremes`, nf.map(I32), fn, { noGrad: true, rtol: 0, atol: 0 }),
      ],
      large: rows("large", "large"),
      huge: notApplicable("layout moves elements; no loop grows with the size"),
      errors: [...errors, notATensor(op, fn as (x: unknown) => Tensor)],
    },
  };
}

const layout: OpInfo[] = [
  layoutRow("reshape", (x) => T.reshape(x, [-1]), {
    empty: [[2, 0]],
    scalar: [[]],
    one: [[1]],
    odd: [[3, 5, 7]],
    nonfinite: [[2, 3]],
    large: [[16, K16]],
  }, [
    throws(
      "reshape [3] to [2]",
      (d) => T.reshape(on(d, [1, 2, 3]), [2]),
      /reshape: cannot reshape/,
    ),
  ]),
  layoutRow("flatten", (x) => T.flatten(x), {
    empty: [[0, 3, 2]],
    scalar: "flatten keeps axis 0: needs rank >= 1",
    one: [[1, 1]],
    odd: [[3, 5, 7]],
    nonfinite: [[2, 3]],
    large: [[2, 8, K16 >> 3]],
  }, [
    throws(
      "flatten axis 3 of [3]",
      (d) => T.flatten(on(d, [1, 2, 3]), 3),
      /flatten: axis 3 is out/,
    ),
  ]),
  layoutRow("permute", (x) => T.permute(x, [2, 0, 1]), {
    empty: [[2, 0, 3]],
    scalar: "permute [2,0,1] needs rank 3",
    one: [[1, 1, 1]],
    odd: [[3, 5, 7]],
    nonfinite: [[1, 2, 3]],
    large: [[2, 256, 129]],
  }, [
    throws("permute [1] of rank 1", (d) => T.permute(on(d, [1, 2, 3]), [1]), /permute: axis 1 is/),
  ]),
  layoutRow("transpose", (x) => T.transpose(x), {
    empty: [[0, 3]],
    scalar: "transpose swaps the last two axes: needs rank 2",
    one: [[1, 1]],
    odd: [[3, 5, 7]],
    nonfinite: [[2, 3]],
    large: [[257, 263]],
  }, [
    throws(
      "transpose 0, 1 of rank 1",
      (d) => T.transpose(on(d, [1, 2]), 0, 1),
      /transpose: axis 1/,
    ),
  ]),
  layoutRow("slice", (x) => T.slice(x, -1, 1, 1), {
    empty: [[0, 3]],
    scalar: "slice needs an axis",
    one: "slice [1, 2) needs two columns",
    odd: [[3, 5, 7]],
    nonfinite: [[2, 3]],
    large: [[K16, 3]],
  }, [
    throws(
      "slice axis 1 of rank 1",
      (d) => T.slice(on(d, [1, 2]), 1, 0, 1),
      /slice: axis 1 is out/,
    ),
  ]),
  layoutRow("concat", (a, b) => T.concat([a, b], 0), {
    empty: [[0, 3], [2, 3]],
    scalar: "concat needs an axis",
    one: [[1], [1]],
    odd: [[3, 5], [4, 5]],
    nonfinite: [[1, 3], [1, 3]],
    large: [[K16], [M20]],
  }, [
    throws(
      "concat axis 2 of rank 1",
      (d) => T.concat([on(d, [1]), on(d, [2])], 2),
      /concat: axis 2/,
    ),
  ]),
  layoutRow("stack", (a, b) => T.stack([a, b], 0), {
    empty: [[0], [0]],
    scalar: [[], []],
    one: [[1], [1]],
    odd: [[3, 5], [3, 5]],
    nonfinite: [[3], [3]],
    large: [[K16], [K16]],
  }, [
    throws(
      "stack axis 3 of rank 1",
      (d) => T.stack([on(d, [1]), on(d, [2])], 3),
      /stack: axis 3 is/,
    ),
  ]),
  layoutRow("split", (x) => T.concat(T.split(x, [1, 2], 0).reverse(), 0), {
    empty: [[3, 0]],
    scalar: "split needs an axis",
    one: "split [1, 2] needs 3 rows",
    odd: [[3, 5, 7]],
    nonfinite: [[3, 2]],
    large: [[3, K16]],
  }, [
    throws(
      "split axis 1 of rank 1",
      (d) => T.split(on(d, [1, 2, 3]), 2, 1),
      /split: axis 1 is out/,
    ),
  ]),
];

// ---- matmul, linear -------------------------------------------------------------------------

const ones = (d: string, ...shape: number[]) => T.ones(shape, dev(d));

const matmuls: OpInfo[] = [
  {
    op: "matmul",
    samples: {
      empty: [
        vsRef("matmul [0,3]x[3,2]", [f(0, 3), f(3, 2)], T.matmul),
        vsRef("matmul [2,0]x[0,2] (zeros)", [f(2, 0), f(0, 2)], T.matmul),
      ],
      scalar: [
        throws("matmul of 0-d", (d) => T.matmul(on(d, [2], []), on(d, [3], [])), /a scalar has no/),
      ],
      one: [
        vsRef("matmul [1,1]x[1,1]", [f(1, 1), f(1, 1)], T.matmul),
        vsRef("matmul [1]x[1]", [f(1), f(1)], T.matmul),
      ],
      odd: [
        vsRef("matmul [37,19]x[19,70]", [f(37, 19), f(19, 70)], T.matmul),
        vsRef("matmul [2,1,5,7]x[3,7,4]", [f(2, 1, 5, 7), f(3, 7, 4)], T.matmul),
        vsRef("matmul vector x batch", [f(7), f(3, 7, 4)], T.matmul),
      ],
      nonfinite: [
        vsRef(
          "matmul with NaN and Inf",
          [v([NaN, 1, Infinity, 2], [2, 2]), v([1, 0, 0, 1], [2, 2])],
          T.matmul,
          {
            noGrad: true,
          },
        ),
      ],
      int32: [floatOnly("matmul", (x) => T.matmul(x, x))],
      large: [
        vsRef(
          `matmul [8,${K16 >> 3}]x[${K16 >> 3},3]`,
          [f(8, K16 >> 3), f(K16 >> 3, 3)],
          T.matmul,
          SUMS,
        ),
        vsRef(`matmul [${K16},2]x[2,1]`, [f(K16, 2), f(2, 1)], T.matmul, SUMS),
      ],
      huge: [
        exact(
          `matmul of ones, k = ${AXIS17}`,
          (d) => [ones(d, 1, AXIS17), ones(d, AXIS17, 2)],
          T.matmul,
          {
            shape: [1, 2],
            values: AXIS17,
          },
        ),
      ],
      errors: [
        throws("matmul [2,3]x[2,3]", (d) => T.matmul(ones(d, 2, 3), ones(d, 2, 3)), /matmul: /),
        floatOnly("matmul", (x) => T.matmul(x, x)),
        notATensor("matmul", T.matmul as (x: unknown) => Tensor),
      ],
    },
  },
  {
    op: "linear",
    samples: {
      empty: [vsRef("linear batch 0", [f(0, 4), f(3, 4), f(3)], T.linear)],
      scalar: notApplicable("linear takes an input [N, in] and a weight [out, in]"),
      one: [vsRef("linear [1,1]·[1,1]ᵀ+[1]", [f(1, 1), f(1, 1), f(1)], T.linear)],
      odd: [
        vsRef("linear batch 9, 70 -> 33", [f(9, 70), f(33, 70), f(33)], T.linear),
        vsRef("linear without bias", [f(5, 7), f(3, 7)], (x, w) => T.linear(x, w)),
      ],
      nonfinite: [
        vsRef("linear with NaN input", [v([NaN, 1, 2, 3], [2, 2]), f(3, 2), f(3)], T.linear, {
          noGrad: true,
        }),
      ],
      int32: [floatOnly("linear", (x) => T.linear(x, x))],
      large: [vsRef(`linear batch 2, in ${K16}`, [f(2, K16), f(3, K16), f(3)], T.linear, SUMS)],
      huge: [
        exact(
          `linear of ones, in = ${AXIS17}`,
          (d) => [ones(d, 1, AXIS17), ones(d, 2, AXIS17)],
          (x, w) => T.linear(x, w),
          {
            shape: [1, 2],
            values: AXIS17,
          },
        ),
      ],
      errors: [
        throws(
          "linear [3] by weight [3]",
          (d) => T.linear(on(d, [1, 2, 3]), on(d, [1, 2, 3])),
          /linear: input \[3\]/,
        ),
        notATensor("linear", T.linear as (x: unknown) => Tensor),
      ],
    },
  },
];

// ---- conv2d, pooling, LRN -------------------------------------------------------------------

const CONV = { rtol: 1e-4, atol: 1e-5 };

const spatial: OpInfo[] = [
  {
    op: "conv2d",
    optionsOf: "conv2d",
    samples: {
      empty: [
        vsRef(
          "conv2d batch 0",
          [f(0, 3, 5, 5), f(2, 3, 3, 3), f(2)],
          (x, w, b) => T.conv2d(x, w, b),
          CONV,
        ),
      ],
      scalar: notApplicable("conv2d takes [N, C, H, W] and [O, C/groups, KH, KW]"),
      one: [
        vsRef(
          "conv2d 1x1x1x1 by 1x1x1x1",
          [f(1, 1, 1, 1), f(1, 1, 1, 1)],
          (x, w) => T.conv2d(x, w),
        ),
      ],
      odd: [
        vsRef(
          "conv2d stride [2,3] pad [1,2] dilation [2,1] groups 2",
          [f(2, 4, 11, 10), f(6, 2, 3, 3), f(6)],
          (x, w, b) =>
            T.conv2d(x, w, b, { stride: [2, 3], padding: [1, 2], dilation: [2, 1], groups: 2 }),
          {
            ...CONV,
            options: ["stride", "padding", "dilation", "groups"],
          },
        ),
      ],
      nonfinite: [
        vsRef(
          "conv2d with a NaN and an Inf pixel",
          [v([NaN, 1, 2, 3, Infinity, 5, 6, 7, 8], [1, 1, 3, 3]), f(1, 1, 2, 2)],
          (x, w) => T.conv2d(x, w),
          { noGrad: true },
        ),
      ],
      int32: [floatOnly("conv2d", (x) => T.conv2d(x, x))],
      large: [
        vsRef(
          `conv2d 1x1x260x260 (${260 * 260} pixels) 3x3`,
          [f(1, 1, 260, 260), f(2, 1, 3, 3), f(2)],
          (x, w, b) => T.conv2d(x, w, b, { padding: 1 }),
          CONV,
        ),
      ],
      huge: [
        exact(
          "conv2d of ones, 1x1x1024x1024 (2^20 pixels, the bias gradient sums 2^20)",
          (d) => [
            T.ones([1, 1, 1024, 1024], dev(d)),
            T.ones([1, 1, 1, 1], dev(d)),
            T.full([1], 0.5, { device: d, requiresGrad: true }),
          ],
          (x, w, b) => T.conv2d(x, w, b),
          { shape: [1, 1, 1024, 1024], values: 1.5 },
        ),
        exact(
          "conv2d bias gradient over 2^20 pixels",
          (d) => [
            T.full([1], 0.5, { device: d, requiresGrad: true }),
          ],
          (b) =>
            T.sum(
              T.conv2d(
                T.ones([1, 1, 1024, 1024], dev(b.device)),
                T.ones([1, 1, 1, 1], dev(b.device)),
                b,
              ),
            ),
          {
            shape: [],
            values: 1.5 * (1 << 20),
            grads: [1 << 20],
          },
        ),
      ],
      errors: [
        throws(
          "conv2d of [3]",
          (d) => T.conv2d(on(d, [1, 2, 3]), on(d, [1, 2, 3])),
          /conv2d: input must be \[N, C, H, W\]/,
        ),
        throws(
          "conv2d unknown option",
          (d) =>
            T.conv2d(
              ones(d, 1, 1, 3, 3),
              ones(d, 1, 1, 1, 1),
              null,
              { dilations: 2 } as T.Conv2dOptions,
            ),
          /conv2d: unknown option "dilations"/,
        ),
        floatOnly("conv2d", (x) => T.conv2d(x, x)),
      ],
    },
  },
];

export const TABLE_PARTS = { elementwise, reductions, layout, matmuls, spatial };
export type { Category };

// ---- pooling, LRN ---------------------------------------------------------------------------

const POOL_KEYS = ["kernelSize", "stride", "padding", "ceilMode"];
const WINDOW = 363; // 363² = 131,769 > 2^17 values in one window

/** n values, all 0 but the last, which is 1: a window cut short misses it. */
const lastOne = (n: number) => cycle([0], [n - 1]).concat([1]);

function poolRow(op: "maxPool2d" | "avgPool2d", fn: typeof T.maxPool2d): OpInfo {
  const keys = op === "avgPool2d" ? [...POOL_KEYS, "countIncludePad"] : POOL_KEYS;
  const odd = op === "avgPool2d"
    ? { kernelSize: [3, 2], stride: [2, 3], padding: 1, ceilMode: true, countIncludePad: false }
    : { kernelSize: [3, 2], stride: [2, 3], padding: 1, ceilMode: true };
  const pool = (o: object) => (x: Tensor) => fn(x, o as T.AvgPool2dOptions);
  return {
    op,
    optionsOf: op,
    samples: {
      empty: [vsRef(`${op} batch 0`, [f(0, 2, 5, 5)], pool({ kernelSize: 2 }))],
      scalar: notApplicable("pooling takes [N, C, H, W]"),
      one: [vsRef(`${op} 1x1x1x1, kernel 1`, [f(1, 1, 1, 1)], pool({ kernelSize: 1 }))],
      odd: [
        vsRef(`${op} 2x3x9x10 with every option`, [f(2, 3, 9, 10)], pool(odd), { options: keys }),
      ],
      nonfinite: op === "maxPool2d"
        ? [
          exact(
            "PyTorch's maxPool2d with NaN (NaN wins)",
            (d) => {
              const e = edge("maxPool2dNan");
              return [on(d, numbers(e.x), e.x.shape)];
            },
            pool({ kernelSize: 2, stride: 1 }),
            {
              shape: edge("maxPool2dNan").out.shape,
              values: numbers(edge("maxPool2dNan").out),
            },
          ),
        ]
        : [
          vsRef(
            "avgPool2d with NaN and Inf",
            [v(cycle(NONFINITE, [1, 1, 4, 4]), [1, 1, 4, 4])],
            pool({ kernelSize: 2 }),
            { noGrad: true },
          ),
        ],
      int32: [floatOnly(op, pool({ kernelSize: 1 }))],
      large: [
        vsRef(`${op} 1x1x260x260 3x3/2`, [f(1, 1, 260, 260)], pool({ kernelSize: 3, stride: 2 })),
        vsRef(`${op} 1x16x256x257 (past 2^20) 2x2`, [f(1, 16, 256, 257)], pool({ kernelSize: 2 })),
      ],
      huge: [
        exact(
          `${op} of one ${WINDOW}x${WINDOW} window (past 2^17 values)`,
          (d) => [on(d, lastOne(WINDOW * WINDOW), [1, 1, WINDOW, WINDOW])],
          pool({ kernelSize: WINDOW }),
          {
            shape: [1, 1, 1, 1],
            values: op === "maxPool2d" ? 1 : 1 / (WINDOW * WINDOW),
          },
          { rtol: 1e-6, atol: 0 },
        ),
      ],
      errors: [
        throws(
          `${op} of [3]`,
          (d) => fn(on(d, [1, 2, 3]), { kernelSize: 1 }),
          new RegExp(`${op}: `),
        ),
        throws(
          `${op} unknown option kernel_size`,
          (d) => fn(ones(d, 1, 1, 2, 2), { kernel_size: 2 } as unknown as T.Pool2dOptions),
          new RegExp(`${op}: unknown option "kernel_size" \\(did you mean kernelSize\\?\\)`),
        ),
        floatOnly(op, pool({ kernelSize: 1 })),
      ],
    },
  };
}

const LRN_KEYS = ["size", "alpha", "beta", "k", "alphaScaling"];
const POW = { rtol: 2e-4, atol: 2e-5 };
const lrn = (o: T.LrnOptions = {}) => (x: Tensor) => T.localResponseNorm(T.affine(x, 3, 0), o);

const pooling: OpInfo[] = [
  poolRow("maxPool2d", T.maxPool2d),
  poolRow("avgPool2d", T.avgPool2d),
  {
    op: "adaptiveAvgPool2d",
    samples: {
      empty: [
        vsRef("adaptiveAvgPool2d batch 0", [f(0, 2, 5, 5)], (x) => T.adaptiveAvgPool2d(x, 2)),
      ],
      scalar: notApplicable("pooling takes [N, C, H, W]"),
      one: [
        vsRef("adaptiveAvgPool2d 1x1x1x1 -> 1", [f(1, 1, 1, 1)], (x) => T.adaptiveAvgPool2d(x, 1)),
      ],
      odd: [
        vsRef(
          "adaptiveAvgPool2d 2x3x13x10 -> [6,4]",
          [f(2, 3, 13, 10)],
          (x) => T.adaptiveAvgPool2d(x, [6, 4]),
        ),
      ],
      nonfinite: [
        vsRef(
          "adaptiveAvgPool2d with NaN and Inf",
          [
            v(cycle(NONFINITE, [1, 1, 4, 4]), [1, 1, 4, 4]),
          ],
          (x) => T.adaptiveAvgPool2d(x, 2),
          { noGrad: true },
        ),
      ],
      int32: [floatOnly("adaptiveAvgPool2d", (x) => T.adaptiveAvgPool2d(x, 1))],
      large: [
        vsRef(
          "adaptiveAvgPool2d 1x16x256x257 -> 6",
          [f(1, 16, 256, 257)],
          (x) => T.adaptiveAvgPool2d(x, 6),
          SUMS,
        ),
      ],
      huge: [
        exact(
          `global average of a ${WINDOW}x${WINDOW} map (past 2^17 values)`,
          (d) => [T.ones([1, 1, WINDOW, WINDOW], { device: d, requiresGrad: true })],
          (x) => T.adaptiveAvgPool2d(x, 1),
          {
            shape: [1, 1, 1, 1],
            values: 1,
            grads: [1 / (WINDOW * WINDOW)],
          },
          { rtol: 1e-5, atol: 0 },
        ),
      ],
      errors: [
        throws(
          "adaptiveAvgPool2d of [3]",
          (d) => T.adaptiveAvgPool2d(on(d, [1, 2, 3]), 1),
          /adaptiveAvgPool2d: input must be/,
        ),
        floatOnly("adaptiveAvgPool2d", (x) => T.adaptiveAvgPool2d(x, 1)),
      ],
    },
  },
  {
    op: "localResponseNorm",
    optionsOf: "localResponseNorm",
    samples: {
      empty: [vsRef("localResponseNorm batch 0", [f(0, 3, 2, 2)], lrn())],
      scalar: notApplicable("LRN takes [N, C, H, W]"),
      one: [vsRef("localResponseNorm 1x1x1x1", [f(1, 1, 1, 1)], lrn(), POW)],
      odd: [
        vsRef(
          "localResponseNorm 2x7x5x3, every option",
          [f(2, 7, 5, 3)],
          lrn({ size: 4, alpha: 0.4, beta: 0.6, k: 1, alphaScaling: "averaged" }),
          { ...POW, options: LRN_KEYS },
        ),
        vsRef(
          "localResponseNorm per-term alpha",
          [f(2, 7, 5, 3)],
          lrn({ size: 3, alpha: 1e-2, alphaScaling: "per-term" }),
          { ...POW, options: ["size", "alpha", "alphaScaling"] },
        ),
      ],
      nonfinite: [
        vsRef(
          "localResponseNorm with NaN",
          [v(cycle([NaN, 1, -2, 0.5], [1, 4, 2, 2]), [1, 4, 2, 2])],
          lrn(),
          { noGrad: true, ...POW },
        ),
        // An infinite square makes s infinite: s^(−β) = 0, so its finite neighbours give 0 and
        // the infinite values NaN (∞·0), as in PyTorch.
        vsRef(
          "localResponseNorm with ±Inf",
          [v(cycle([Infinity, 1, -2, 0.5, -Infinity, 0.25, 3], [1, 7, 3, 5]), [1, 7, 3, 5])],
          lrn(),
          { noGrad: true, ...POW },
        ),
      ],
      int32: [floatOnly("localResponseNorm", (x) => T.localResponseNorm(x))],
      large: [
        vsRef("localResponseNorm 1x17x256x241 (past 2^20)", [f(1, 17, 256, 241)], lrn(), POW),
      ],
      huge: notApplicable("the window is `size` channels: no loop grows with the input"),
      errors: [
        throws(
          "localResponseNorm of [3]",
          (d) => T.localResponseNorm(on(d, [1, 2, 3])),
          /localResponseNorm: input must be/,
        ),
        throws(
          "localResponseNorm unknown option",
          (d) => T.localResponseNorm(ones(d, 1, 2, 2, 2), { sizes: 2 } as T.LrnOptions),
          /localResponseNorm: unknown option "sizes"/,
        ),
        floatOnly("localResponseNorm", (x) => T.localResponseNorm(x)),
      ],
    },
  },
];

// ---- dropout --------------------------------------------------------------------------------

const DROPOUT = { rtol: 2 ** -23, atol: 0 };
const drop = (p: number, seed = 1234) => (x: Tensor) => T.dropout(x, { p, seed });

const dropouts: OpInfo[] = [
  {
    op: "dropout",
    optionsOf: "dropout",
    samples: {
      empty: [vsRef("dropout [0]", [f(0)], drop(0.5), DROPOUT)],
      scalar: [vsRef("dropout 0-d", [f()], drop(0.5, 3), DROPOUT)],
      one: [vsRef("dropout [1] p 0.1", [f(1)], drop(0.1, 9), DROPOUT)],
      odd: [
        vsRef("dropout [3,5,7] p 0.3 seed", [f(3, 5, 7)], drop(0.3, 0xdeadbeef), {
          ...DROPOUT,
          options: ["p", "seed"],
        }),
        vsRef(
          "dropout training false is the identity",
          [f(3, 5, 7)],
          (x) => T.dropout(x, { p: 0.5, training: false }),
          { ...DROPOUT, options: ["p", "training"] },
        ),
      ],
      nonfinite: [
        vsRef("dropout of NaN, ±Inf", [v(NONFINITE)], drop(0.5, 5), { ...DROPOUT, noGrad: true }),
      ],
      int32: [floatOnly("dropout", drop(0.5))],
      large: [vsRef(`dropout [${M20}] p 0.5`, [f(M20)], drop(0.5, 77), DROPOUT)],
      huge: notApplicable("elementwise with a counter-based mask: no loop grows with the size"),
      errors: [
        throws(
          "dropout p 2",
          (d) => T.dropout(on(d, [1]), { p: 2 }),
          /dropout: p must be in \[0, 1\)/,
        ),
        throws(
          "dropout unknown option P",
          (d) => T.dropout(on(d, [1]), { P: 0.5 } as T.DropoutOpOptions),
          /dropout: unknown option "P" \(did you mean p\?\)/,
        ),
        floatOnly("dropout", drop(0.5)),
      ],
    },
  },
];

// ---- softmax, logSoftmax, crossEntropy ------------------------------------------------------

function softmaxRow(op: "softmax" | "logSoftmax", fn: typeof T.softmax): OpInfo {
  const exactValue = op === "softmax" ? 1 / AXIS17 : -Math.log(AXIS17);
  return {
    op,
    samples: {
      empty: [
        vsRef(`${op} [0,3]`, [f(0, 3)], (x) => fn(x)),
        vsRef(`${op} [3,0] axis 0`, [f(3, 0)], (x) => fn(x, 0)),
      ],
      scalar: [
        throws(
          `${op} of 0-d`,
          (d) => fn(on(d, [2], [])),
          new RegExp(`${op}: needs at least one axis`),
        ),
      ],
      one: [vsRef(`${op} [1]`, [f(1)], (x) => fn(x))],
      odd: [
        vsRef(
          `${op} [3,67,5] axis 1`,
          [f(3, 67, 5)],
          (x) => fn(T.affine(x, 5, 0), 1),
          TRANSCENDENTAL,
        ),
      ],
      nonfinite: [
        vsRef(
          `${op} rows with -Inf, +Inf and NaN`,
          [v([-Infinity, 0, 1, Infinity, 0, 1, NaN, 0, 1], [3, 3])],
          (x) => fn(x),
          { noGrad: true },
        ),
      ],
      int32: [floatOnly(op, (x) => fn(x))],
      large: [
        vsRef(`${op} [2,${K16}]`, [f(2, K16)], (x) => fn(x), TRANSCENDENTAL),
        vsRef(`${op} [${M20 >> 4},16]`, [f(M20 >> 4, 16)], (x) => fn(x), TRANSCENDENTAL),
      ],
      huge: [
        exact(
          `${op} of zeros along an axis of ${AXIS17}`,
          (d) => [T.zeros([1, AXIS17], dev(d))],
          (x) => fn(x),
          {
            shape: [1, AXIS17],
            values: exactValue,
          },
          { rtol: 1e-5, atol: 0 },
        ),
      ],
      errors: [
        throws(
          `${op} axis 3 of [3]`,
          (d) => fn(on(d, [1, 2, 3]), 3),
          new RegExp(`${op}: axis 3 is out of range`),
        ),
        floatOnly(op, (x) => fn(x)),
        notATensor(op, fn as (x: unknown) => Tensor),
      ],
    },
  };
}

const CE_KEYS = ["reduction", "weight", "ignoreIndex", "labelSmoothing"];
const classWeights = (x: Tensor, classes: number) =>
  T.fromArray(Float32Array.from({ length: classes }, (_, i) => 0.5 * (i + 1)), [classes], {
    device: x.device,
    dtype: x.dtype,
  });

const softmaxes: OpInfo[] = [
  softmaxRow("softmax", T.softmax),
  softmaxRow("logSoftmax", T.logSoftmax),
  {
    op: "crossEntropy",
    optionsOf: "crossEntropy",
    samples: {
      empty: [
        throws(
          "crossEntropy of an empty batch",
          (d) => T.crossEntropy(T.zeros([0, 3], dev(d)), ints(d, [])),
          /crossEntropy: logits \[0,3\] are empty/,
        ),
      ],
      scalar: notApplicable("crossEntropy takes logits [N, C] and labels [N]"),
      one: [vsRef("crossEntropy [1,1]", [f(1, 1), labels(1, 1)], (x, y) => T.crossEntropy(x, y))],
      odd: [
        vsRef(
          "crossEntropy [7,11]",
          [f(7, 11), labels(7, 11)],
          (x, y) => T.crossEntropy(T.affine(x, 3, 0), y),
          TRANSCENDENTAL,
        ),
        vsRef(
          "crossEntropy weight, sum",
          [f(9, 5), labels(9, 5)],
          (x, y) => T.crossEntropy(x, y, { weight: classWeights(x, 5), reduction: "sum" }),
          { ...TRANSCENDENTAL, options: ["weight", "reduction"] },
        ),
        vsRef(
          "crossEntropy ignoreIndex 2",
          [f(12, 4), labels(12, 4)],
          (x, y) => T.crossEntropy(x, y, { ignoreIndex: 2 }),
          { ...TRANSCENDENTAL, options: ["ignoreIndex"] },
        ),
        vsRef(
          "crossEntropy every option, none",
          [f(12, 4), labels(12, 4)],
          (x, y) =>
            T.crossEntropy(x, y, {
              weight: classWeights(x, 4),
              ignoreIndex: 1,
              labelSmoothing: 0.2,
              reduction: "none",
            }),
          { ...TRANSCENDENTAL, options: CE_KEYS },
        ),
      ],
      nonfinite: [
        vsRef(
          "crossEntropy with -Inf logits off the label",
          [v([-Infinity, 0, 1, 2, -Infinity, 0], [2, 3]), {
            shape: [2],
            kind: "labels",
            values: [2, 1],
          }],
          (x, y) => T.crossEntropy(x, y),
          { noGrad: true },
        ),
      ],
      int32: [
        throws(
          "crossEntropy labels at the int32 extremes",
          (d) =>
            T.crossEntropy(T.zeros([2, 3], dev(d)), Int32Array.from([2147483647, -2147483648])),
          /crossEntropy: label 2147483647 at index 0 is not a class index/,
        ),
      ],
      large: [
        vsRef(
          `crossEntropy [2,${K16}] classes`,
          [f(2, K16), labels(2, K16)],
          (x, y) => T.crossEntropy(x, y),
          TRANSCENDENTAL,
        ),
        vsRef(
          `crossEntropy [${M20 >> 3},8]`,
          [f(M20 >> 3, 8), labels(M20 >> 3, 8)],
          (x, y) => T.crossEntropy(x, y),
          TRANSCENDENTAL,
        ),
      ],
      huge: [
        exact(
          `crossEntropy of zeros over ${AXIS17} classes`,
          (d) => [T.zeros([1, AXIS17], dev(d)), ints(d, [5])],
          (x, y) => T.crossEntropy(x, y),
          {
            shape: [],
            values: Math.log(AXIS17),
          },
          { rtol: 1e-5, atol: 0 },
        ),
      ],
      errors: [
        throws(
          "crossEntropy unknown option label_smoothing",
          (d) =>
            T.crossEntropy(
              ones(d, 2, 3),
              [0, 1],
              { label_smoothing: 0.1 } as T.CrossEntropyOptions,
            ),
          /crossEntropy: unknown option "label_smoothing" \(did you mean labelSmoothing\?\)/,
        ),
        throws(
          "crossEntropy logits [3]",
          (d) => T.crossEntropy(on(d, [1, 2, 3]), [1]),
          /crossEntropy: logits must be \[N, C\]/,
        ),
        floatOnly("crossEntropy", (x) => T.crossEntropy(x, [0, 1])),
      ],
    },
  },
];

// ---- SGD's update ---------------------------------------------------------------------------

/** Two SGD steps of the same gradient on one parameter, against the same on "ref" in float64. */
function sgdSample(name: string, input: In, options: T.SgdOptions, tol = {}): Sample {
  const steps = (x: Tensor, g: Tensor) => {
    x.requiresGrad = true; // a leaf made by the sample: a parameter
    const optimizer = new T.SGD([x], options);
    for (let step = 0; step < 2; step++) {
      optimizer.zeroGrad();
      T.sum(T.mul(x, g)).backward();
      optimizer.step();
    }
    optimizer.dispose();
    return T.affine(x, 1, 0); // a copy: the sample releases x itself
  };
  return vsRef(name, [input, { ...input, kind: "float" }], (x, g) => steps(x, T.cast(g, x.dtype)), {
    noGrad: true,
    options: Object.keys(options),
    ...tol,
  });
}

const SGD_ALL = {
  lr: 0.1,
  momentum: 0.9,
  weightDecay: 5e-4,
  dampening: 0,
  rule: "pytorch" as const,
};

const optimizers: OpInfo[] = [
  {
    op: "SGD",
    optionsOf: "SGD",
    samples: {
      empty: [sgdSample("SGD step of a [0] parameter", f(0), { lr: 0.1 })],
      scalar: [sgdSample("SGD step of a 0-d parameter", f(), { lr: 0.1, momentum: 0.9 })],
      one: [sgdSample("SGD step of a [1] parameter", f(1), { lr: 0.1 })],
      odd: [
        sgdSample("SGD every option, PyTorch's rule", f(3, 5, 7), SGD_ALL),
        sgdSample("SGD paper's rule", f(3, 5, 7), {
          lr: 0.01,
          momentum: 0.9,
          weightDecay: 5e-4,
          rule: "paper",
        }),
      ],
      nonfinite: [
        sgdSample("SGD of NaN and Inf weights", v(NONFINITE), { lr: 0.1, momentum: 0.9 }),
      ],
      int32: notApplicable(
        "parameters are float tensors (an int32 tensor cannot require a gradient)",
      ),
      large: [
        sgdSample(`SGD step of [${M20}]`, f(M20), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 }),
      ],
      huge: notApplicable("the update is elementwise: no loop grows with the size"),
      errors: [
        throws(
          "SGD unknown option weight_decay",
          () => new T.SGD([], { weight_decay: 1 } as T.SgdOptions),
          /SGD: unknown option "weight_decay" \(did you mean weightDecay\?\)/,
        ),
        throws(
          "SGD lr -1",
          () => new T.SGD([], { lr: -1 }),
          /SGD: lr must be a finite number >= 0/,
        ),
        throws(
          "SGD dampening 0.1",
          () => new T.SGD([], { dampening: 0.1 }),
          /SGD: dampening must be 0/,
        ),
      ],
    },
  },
];

// ---- factories ------------------------------------------------------------------------------

const TENSOR_KEYS = ["dtype", "device", "requiresGrad"];

/** A factory's tensor on every device equals the reference device's, bit for bit. */
function made(
  name: string,
  make: (device: string) => Tensor,
  options: readonly string[] = TENSOR_KEYS,
): Sample {
  return {
    name,
    options,
    async prepare() {
      const ref = make("ref");
      const [shape, dtype, values] = [[...ref.shape], ref.dtype, await ref.data()];
      ref.dispose();
      return async (device) => {
        const x = make(device);
        try {
          assert.deepEqual(
            [[...x.shape], x.dtype, x.device],
            [shape, dtype, device],
            `${name} on ${device}`,
          );
          assertClose(await x.data(), values, {
            rtol: 0,
            atol: 0,
            what: `${name} (${device} vs ref)`,
          });
        } finally {
          x.dispose();
        }
      };
    },
  };
}

type FactoryCategories = Record<
  "empty" | "scalar" | "one" | "odd" | "nonfinite" | "int32" | "large",
  Rows
>;

function factoryRow(op: string, rows: FactoryCategories, errors: Sample[]): OpInfo {
  return {
    op,
    optionsOf: op,
    samples: {
      ...rows,
      huge: notApplicable("a factory writes each element once; no loop grows with the size"),
      errors,
    },
  };
}

const unknownKey = (op: string, call: (o: object) => unknown) =>
  throws(
    `${op} unknown option dtyp`,
    () => call({ dtyp: "int32" }),
    new RegExp(`${op}: unknown option "dtyp" \\(did you mean dtype\\?\\)`),
  );
const o = (d: string, extra: object = {}) => ({ device: d, ...extra });
const I32o = (d: string) => ({ device: d, dtype: "int32" as const });

const factories: OpInfo[] = [
  factoryRow("zeros", {
    empty: [made("zeros [2,0]", (d) => T.zeros([2, 0], o(d)))],
    scalar: [
      made(
        "zeros 0-d requiresGrad",
        (d) => T.zeros([], o(d, { requiresGrad: true })),
      ),
    ],
    one: [made("zeros [1] int32", (d) => T.zeros([1], I32o(d)))],
    odd: [made("zeros [3,5,7]", (d) => T.zeros([3, 5, 7], o(d)))],
    nonfinite: notApplicable("zeros has no value argument"),
    int32: [made("zeros int32 [5]", (d) => T.zeros([5], I32o(d)))],
    large: [made(`zeros [${M20}]`, (d) => T.zeros([M20], o(d)))],
  }, [
    unknownKey("zeros", (x) => T.zeros([2], x)),
    throws(
      "zeros dtype int8",
      () => T.zeros([2], { dtype: "int8" as "int32" }),
      /zeros: dtype must be "float32", "float64" or "int32"/,
    ),
  ]),
  factoryRow("ones", {
    empty: [made("ones [0]", (d) => T.ones([0], o(d)))],
    scalar: [made("ones 0-d", (d) => T.ones([], o(d, { requiresGrad: true })))],
    one: [made("ones [1] int32", (d) => T.ones([1], I32o(d)))],
    odd: [made("ones [3,5,7]", (d) => T.ones([3, 5, 7], o(d)))],
    nonfinite: notApplicable("ones has no value argument"),
    int32: [made("ones int32 [5]", (d) => T.ones([5], I32o(d)))],
    large: [made(`ones [${M20}]`, (d) => T.ones([M20], o(d)))],
  }, [unknownKey("ones", (x) => T.ones([2], x))]),
  factoryRow("full", {
    empty: [made("full [0] of 3", (d) => T.full([0], 3, o(d)))],
    scalar: [made("full 0-d of -2.5", (d) => T.full([], -2.5, o(d, { requiresGrad: true })))],
    one: [made("full [1] of 7", (d) => T.full([1], 7, o(d)))],
    odd: [made("full [3,5,7] of 0.1", (d) => T.full([3, 5, 7], 0.1, o(d)))],
    nonfinite: [
      made("full of NaN", (d) => T.full([3], NaN, o(d))),
      made("full of -Inf", (d) => T.full([3], -Infinity, o(d))),
    ],
    int32: [
      made("full int32 max", (d) => T.full([3], 2147483647, I32o(d))),
      made("full int32 min", (d) => T.full([3], -2147483648, I32o(d))),
      throws(
        "full int32 past the max",
        () => T.full([2], 2147483648, { dtype: "int32" }),
        /full: element 0 is 2147483648, which int32 cannot hold/,
      ),
    ],
    large: [made(`full [${M20}] of 0.5`, (d) => T.full([M20], 0.5, o(d)))],
  }, [unknownKey("full", (x) => T.full([2], 1, x))]),
  factoryRow("arange", {
    empty: [made("arange(0)", (d) => T.arange(0, 0, 1, o(d)))],
    scalar: notApplicable("arange makes a 1-d tensor"),
    one: [made("arange(1)", (d) => T.arange(0, 1, 1, o(d)))],
    odd: [made("arange(-3, 7, 0.5)", (d) => T.arange(-3, 7, 0.5, o(d, { requiresGrad: false })))],
    nonfinite: [throws("arange to Inf", () => T.arange(0, Infinity), /arange: /)],
    int32: [made("arange int32 near the max", (d) => T.arange(2147483640, 2147483647, 1, I32o(d)))],
    large: [made(`arange(${M20})`, (d) => T.arange(0, M20, 1, o(d)))],
  }, [unknownKey("arange", (x) => T.arange(0, 2, 1, x))]),
  factoryRow("linspace", {
    empty: [made("linspace 0 steps", (d) => T.linspace(0, 1, 0, o(d)))],
    scalar: notApplicable("linspace makes a 1-d tensor"),
    one: [made("linspace 1 step", (d) => T.linspace(2, 5, 1, o(d)))],
    odd: [made("linspace(-1, 1, 7)", (d) => T.linspace(-1, 1, 7, o(d, { requiresGrad: false })))],
    nonfinite: [throws("linspace to NaN", () => T.linspace(0, NaN, 3), /linspace: /)],
    int32: notApplicable("linspace's points are fractional: dtype int32 is refused like rand's"),
    large: [made(`linspace ${M20} steps`, (d) => T.linspace(0, 1, M20, o(d)))],
  }, [unknownKey("linspace", (x) => T.linspace(0, 1, 3, x))]),
  factoryRow("eye", {
    empty: [made("eye(0)", (d) => T.eye(0, 0, o(d)))],
    scalar: notApplicable("eye makes a matrix"),
    one: [made("eye(1)", (d) => T.eye(1, 1, o(d)))],
    odd: [made("eye(3, 5)", (d) => T.eye(3, 5, o(d, { requiresGrad: false })))],
    nonfinite: notApplicable("eye has no value argument"),
    int32: [made("eye int32", (d) => T.eye(3, 3, I32o(d)))],
    large: [made("eye(1025)", (d) => T.eye(1025, 1025, o(d)))],
  }, [unknownKey("eye", (x) => T.eye(2, 2, x))]),
  factoryRow("rand", {
    empty: [made("rand [0]", (d) => T.rand([0], o(d, { seed: 1 })), [...TENSOR_KEYS, "seed"])],
    scalar: [made("rand 0-d", (d) => T.rand([], o(d, { seed: 2 })), [...TENSOR_KEYS, "seed"])],
    one: [
      made("rand [1] in [2, 3)", (d) => T.rand([1], o(d, { seed: 3, low: 2, high: 3 })), [
        "seed",
        "low",
        "high",
      ]),
    ],
    odd: [
      made(
        "rand [3,5,7] from an Rng",
        (d) => T.rand([3, 5, 7], o(d, { rng: new T.Rng(4), requiresGrad: true })),
        [
          "rng",
          "device",
          "requiresGrad",
        ],
      ),
    ],
    nonfinite: [throws("rand high Inf", () => T.rand([2], { low: 0, high: Infinity }), /rand: /)],
    int32: [
      throws("rand int32", () => T.rand([2], { dtype: "int32" }), /rand: samples are real numbers/),
    ],
    large: [made(`rand [${M20}]`, (d) => T.rand([M20], o(d, { seed: 5 })))],
  }, [unknownKey("rand", (x) => T.rand([2], x))]),
  factoryRow("randn", {
    empty: [made("randn [0]", (d) => T.randn([0], o(d, { seed: 1 })), [...TENSOR_KEYS, "seed"])],
    scalar: [made("randn 0-d", (d) => T.randn([], o(d, { seed: 2 })))],
    one: [
      made("randn [1] mean 1 std 2", (d) => T.randn([1], o(d, { seed: 3, mean: 1, std: 2 })), [
        "seed",
        "mean",
        "std",
      ]),
    ],
    odd: [
      made(
        "randn [3,5,7] from an Rng",
        (d) => T.randn([3, 5, 7], o(d, { rng: new T.Rng(4), requiresGrad: true })),
        [
          "rng",
          "device",
          "requiresGrad",
        ],
      ),
    ],
    nonfinite: [throws("randn std NaN", () => T.randn([2], { std: NaN }), /randn: /)],
    int32: [
      throws(
        "randn int32",
        () => T.randn([2], { dtype: "int32" }),
        /randn: samples are real numbers/,
      ),
    ],
    large: [made(`randn [${M20}]`, (d) => T.randn([M20], o(d, { seed: 5 })))],
  }, [unknownKey("randn", (x) => T.randn([2], x))]),
  factoryRow("tensor", {
    empty: [made("tensor []", (d) => T.tensor([], o(d)))],
    scalar: [made("tensor(2.5)", (d) => T.tensor(2.5, o(d)))],
    one: [made("tensor([7]) int32", (d) => T.tensor([7], I32o(d)))],
    odd: [
      made("tensor nested 3x5", (d) =>
        T.tensor(
          Array.from({ length: 3 }, (_, i) => [1, 2, 3, 4, i]),
          o(d, { requiresGrad: true }),
        )),
    ],
    nonfinite: [made("tensor of NaN, ±Inf", (d) => T.tensor(NONFINITE, o(d)))],
    int32: [made("tensor of int32 extremes", (d) => T.tensor(INT32_EXTREMES, I32o(d)))],
    large: [
      made(
        `tensor [${M20}] flat with shape`,
        (d) => T.tensor(cycle([1, 2, 3], [M20 + 1]), o(d, { shape: [M20 + 1] })),
        ["shape", "device"],
      ),
    ],
  }, [unknownKey("tensor", (x) => T.tensor([1], x))]),
  factoryRow("fromArray", {
    empty: [made("fromArray of no values", (d) => T.fromArray(new Float32Array(0), [0, 3], o(d)))],
    scalar: [made("fromArray 0-d", (d) => T.fromArray(Float32Array.of(2), [], o(d)))],
    one: [
      made(
        "fromArray [1] requiresGrad",
        (d) => T.fromArray(Float32Array.of(3), [1], o(d, { requiresGrad: true })),
      ),
    ],
    odd: [
      made("fromArray [3,5,7]", (d) =>
        T.fromArray(
          Float32Array.from(cycle([1, 2], [105])),
          [3, 5, 7],
          o(d, { dtype: "float32" }),
        )),
    ],
    nonfinite: [
      made("fromArray of NaN, ±Inf", (d) => T.fromArray(Float32Array.from(NONFINITE), [7], o(d))),
    ],
    int32: [
      made(
        "fromArray of int32 extremes",
        (d) => T.fromArray(Int32Array.from(INT32_EXTREMES), [6], o(d)),
      ),
    ],
    large: [
      made(`fromArray [${M20}]`, (d) => T.fromArray(new Float32Array(M20).fill(0.25), [M20], o(d))),
    ],
  }, [
    unknownKey("fromArray", (x) => T.fromArray(Float32Array.of(1), [1], x)),
    throws(
      "fromArray values that do not fill the shape",
      () => T.fromArray(Float32Array.of(1, 2), [3]),
      /fromArray: 2 values do not fill shape \[3\]/,
    ),
  ]),
  factoryRow("zerosLike", {
    empty: [made("zerosLike [0]", (d) => T.zerosLike(T.ones([0], o(d))), [])],
    scalar: [
      made(
        "zerosLike 0-d requiresGrad",
        (d) => T.zerosLike(T.ones([], o(d)), { requiresGrad: true }),
        ["requiresGrad"],
      ),
    ],
    one: [
      made("zerosLike int32 [1]", (d) => T.zerosLike(T.ones([1], I32o(d))), []),
      made("zerosLike dtype int32", (d) => T.zerosLike(T.ones([1], o(d)), { dtype: "int32" }), [
        "dtype",
      ]),
    ],
    odd: [
      made("zerosLike [3,5,7]", (d) => T.zerosLike(T.ones([3, 5, 7], o(d))), []),
      made(
        "zerosLike from ref to device",
        (d) => T.zerosLike(T.ones([3], o("ref")), { device: d }),
        [
          "device",
        ],
      ),
    ],
    nonfinite: [made("zerosLike of NaN", (d) => T.zerosLike(T.full([2], NaN, o(d))), [])],
    int32: [
      made(
        "zerosLike of int32 extremes",
        (d) => T.zerosLike(T.tensor(INT32_EXTREMES, I32o(d))),
        [],
      ),
    ],
    large: [made(`zerosLike [${M20}]`, (d) => T.zerosLike(T.ones([M20], o(d))), [])],
  }, [
    notATensor("zerosLike", T.zerosLike as (x: unknown) => Tensor),
    unknownKey("zerosLike", (x) => T.zerosLike(T.ones([2]), x)),
  ]),
  factoryRow("onesLike", {
    empty: [made("onesLike [0]", (d) => T.onesLike(T.zeros([0], o(d))), [])],
    scalar: [
      made(
        "onesLike 0-d requiresGrad",
        (d) => T.onesLike(T.zeros([], o(d)), { requiresGrad: true }),
        ["requiresGrad"],
      ),
    ],
    one: [
      made("onesLike int32 [1]", (d) => T.onesLike(T.zeros([1], I32o(d))), []),
      made("onesLike dtype int32", (d) => T.onesLike(T.zeros([1], o(d)), { dtype: "int32" }), [
        "dtype",
      ]),
    ],
    odd: [
      made("onesLike [3,5,7]", (d) => T.onesLike(T.zeros([3, 5, 7], o(d))), []),
      made(
        "onesLike from ref to device",
        (d) => T.onesLike(T.zeros([3], o("ref")), { device: d }),
        [
          "device",
        ],
      ),
    ],
    nonfinite: [made("onesLike of NaN", (d) => T.onesLike(T.full([2], NaN, o(d))), [])],
    int32: [
      made("onesLike of int32 extremes", (d) => T.onesLike(T.tensor(INT32_EXTREMES, I32o(d))), []),
    ],
    large: [made(`onesLike [${M20}]`, (d) => T.onesLike(T.zeros([M20], o(d))), [])],
  }, [
    notATensor("onesLike", T.onesLike as (x: unknown) => Tensor),
    unknownKey("onesLike", (x) => T.onesLike(T.ones([2]), x)),
  ]),
];

export const TABLE_PARTS_2 = { pooling, dropouts, softmaxes, optimizers, factories };

/** Every op's row. */
export const OPINFO: OpInfo[] = [...Object.values(TABLE_PARTS), ...Object.values(TABLE_PARTS_2)]
  .flat();
