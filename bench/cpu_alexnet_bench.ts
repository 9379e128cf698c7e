/**
 * The cpu device on whole networks, one thread beside every core, with the peers' recorded
 * figures as yardsticks: training steps (forward, backward, SGD update with momentum and
 * weight decay) and inference (eval mode under noGrad: no graph is recorded, the heap
 * reuses every block) of AlexNet-mini, groups 2 and 1, and the paper's AlexNet. Each row
 * names the exact network it times: its parameters and forward FLOPs per image (2 × the
 * multiply-adds that `summary()` counts).
 *
 * The yardsticks are not measured here: they are the figures recorded in the project's
 * PERF.md (PyTorch 2.13 CPU wheel with glibc tuned to keep big blocks, onnxruntime 1.30 on the
 * same net exported to ONNX), on the 2-core build machine, "1" pinned to one core. Compare
 * ratios within one sitting. Run: `deno run --allow-read bench/cpu_alexnet_bench.ts [--quick]`
 * (also part of `deno task bench`).
 *
 * @module
 */

import { crossEntropy, fromArray, type Module, noGrad, SGD } from "../mod.ts";
import { alexnet, alexnetMini } from "../models/alexnet.ts";
import { defaultThreads, getThreads, setThreads } from "../cpu/kernels/gemm.ts";
import { Rng } from "../tensor/random.ts";
import { type Ceiling, measureCeiling } from "./roofline.ts";

/** A network, its input size and classes. */
interface Net {
  name: string;
  make: () => Module;
  input: [number, number, number];
  classes: number;
}

const mini2: Net = {
  name: "AlexNet-mini, groups 2",
  make: () => alexnetMini(),
  input: [1, 28, 28],
  classes: 10,
};
const mini1: Net = {
  name: "AlexNet-mini, groups 1",
  make: () => alexnetMini({ groups: 1 }),
  input: [1, 28, 28],
  classes: 10,
};
const paper: Net = {
  name: "AlexNet (paper, 227 px, groups 2)",
  make: () => alexnet({ numClasses: 1000 }),
  input: [3, 227, 227],
  classes: 1000,
};

/** A peer's recorded range (PERF.md): images/s, or ms per image at batch 1. */
type Range = readonly [number, number];

/** A peer's recorded figures on one core and on two threads, and a remark. */
interface Yardstick {
  one?: Range;
  two?: Range;
  note?: string;
}

/** One benchmark row: what runs, at which batch, and the recorded yardsticks. */
interface Row {
  net: Net;
  mode: "train" | "infer";
  batch: number;
  pytorch?: Yardstick;
  /** PyTorch limited to 128-bit vectors, WebAssembly's width (torch_alexnet.py --simd128). */
  pytorch128?: Yardstick;
  onnx?: Yardstick;
}

/**
 * Times `steps` runs of `run` after warming up (at least one run and half a second: new
 * workers and code that has not yet reached V8's optimizing tier run slower at first);
 * returns the median seconds.
 */
function medianSeconds(run: () => void, steps: number): number {
  const warm = performance.now() + 500;
  do run(); while (performance.now() < warm);
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const start = performance.now();
    run();
    times.push((performance.now() - start) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Seconds per training step or forward pass of `row`, median of `steps`. */
function timeRow(row: Row, steps: number): number {
  const model = row.net.make();
  const rng = new Rng(0);
  const shape = [row.batch, ...row.net.input];
  const images = new Float32Array(shape.reduce((a, b) => a * b, 1)).map(() => rng.normal());
  const labels = new Int32Array(row.batch).map(() => rng.int(row.net.classes));
  let seconds: number;
  if (row.mode === "train") {
    model.train();
    const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
    seconds = medianSeconds(() => {
      using x = fromArray(images, shape);
      using y = fromArray(labels, [row.batch]);
      optimizer.zeroGrad();
      using loss = crossEntropy(model.forward(x), y);
      loss.backward();
      optimizer.step();
      loss.dataSync();
    }, steps);
    optimizer.dispose();
  } else {
    model.eval();
    seconds = medianSeconds(() => {
      using x = fromArray(images, shape);
      using logits = noGrad(() => model.forward(x));
      logits.dataSync();
    }, steps);
  }
  for (const p of model.parameters()) p.dispose();
  return seconds;
}

/** A network's parameters and forward FLOPs per image (2 × the multiply-adds of its summary). */
function measure(net: Net): { parameters: number; flops: number } {
  const report = net.make().summary([1, ...net.input], { print: false });
  return { parameters: report.totalParameters, flops: 2 * report.totalMultiplyAdds };
}

/** "285,322 params, 19.1 MFLOP/img". */
function describe(net: Net): string {
  const { parameters, flops } = measure(net);
  const mflop = flops / 1e6;
  return `${parameters.toLocaleString("en-US")} params, ${
    mflop >= 1000 ? `${(mflop / 1000).toFixed(2)} GFLOP` : `${mflop.toFixed(1)} MFLOP`
  }/img`;
}

/**
 * FLOP per image of a row: the forward's, three times for a training step (the forward, the
 * gradient of each layer's input and of its weights cost about the same each; conv1 needs no
 * input gradient, so this slightly overcounts).
 */
function flopsPerImage(row: Row): number {
  return measure(row.net).flops * (row.mode === "train" ? 3 : 1);
}

/** GFLOP/s of `rate` (images/s, or ms per image at batch 1) on `row`. */
function gflops(row: Row, rate: number): number {
  const imagesPerSecond = row.batch === 1 ? 1000 / rate : rate;
  return (imagesPerSecond * flopsPerImage(row)) / 1e9;
}

/** A percentage of `ceiling` ("-" without one). */
function percent(value: number, ceiling: number | null): string {
  return ceiling === null ? "-" : `${Math.round((100 * value) / ceiling)}%`;
}

/** A yardstick's cell: its range, with its share of the wasm ceiling of its thread count. */
function yardstickCell(row: Row, stick: Yardstick | undefined, ceiling: Ceiling | null): string {
  if (!stick) return "-";
  const unit = row.batch === 1 ? " ms" : "";
  const part = (range: Range | undefined, top: number | null) => {
    if (!range) return "-";
    const [lo, hi] = range;
    const text = lo === hi ? `${lo}${unit}` : `${lo}-${hi}${unit}`;
    const fast = row.batch === 1 ? lo : hi; // the best of the range
    return `${text} (${percent(gflops(row, fast), top)})`;
  };
  return `${part(stick.one, ceiling?.oneThread ?? null)} / ${
    part(stick.two, ceiling?.allThreads ?? null)
  }${stick.note ? ` ${stick.note}` : ""}`;
}

/**
 * Prints the table: one thread and every core, their ratio, each as a share of the WebAssembly
 * SIMD ceiling of its thread count (bench/roofline.ts), and the recorded yardsticks with the
 * share of that ceiling their best figure would take.
 */
export async function runCpuAlexnetBench(quick: boolean): Promise<void> {
  // pytorch128: torch_alexnet.py [--quick] --simd128, tuned, three sittings on 2026-12-06
  // (06:18, 09:22 and 09:28 UTC, load 0.6-1.3); the README gives the last one beside tessera.
  // onnx: PERF.md's figures and torch_alexnet.py --onnxruntime (2026-12-06 19:02 UTC).
  const rows: Row[] = [
    {
      net: mini2,
      mode: "train",
      batch: 128,
      pytorch: { one: [543, 601], two: [611, 1040] },
      pytorch128: { one: [260, 264], two: [479, 495] },
    },
    {
      net: mini1,
      mode: "train",
      batch: 128,
      pytorch: { one: [392, 476], two: [527, 932] },
      pytorch128: { one: [203, 214], two: [385, 401] },
    },
    {
      net: mini2,
      mode: "infer",
      batch: 128,
      pytorch: { one: [1156, 1256], two: [1469, 1625], note: "(untuned)" },
      pytorch128: { one: [725, 772], two: [1419, 1503] },
      onnx: { one: [1392, 2690], two: [2591, 3626] },
    },
    { net: mini2, mode: "infer", batch: 1, pytorch128: { one: [1.8, 2.0], two: [1.6, 2.1] } },
    {
      net: paper,
      mode: "infer",
      batch: 1,
      pytorch: { one: [27.7, 27.7] },
      pytorch128: { one: [54.9, 61.5], two: [37.1, 41.0] },
      onnx: { one: [18.5, 23.7], two: [17.8, 17.8] },
    },
  ];
  if (!quick) {
    rows.push({
      net: paper,
      mode: "train",
      batch: 8,
      pytorch: { one: [4.9, 5.0], two: [8.2, 8.3] },
      pytorch128: { one: [3.4, 3.4], two: [5.2, 5.2] },
    });
    rows.push({ net: paper, mode: "infer", batch: 128 });
  }
  const all = defaultThreads();
  const ceiling = await measureCeiling(all);
  if (ceiling) {
    console.log(
      `WebAssembly ${ceiling.tier} ceiling (bench/roofline.ts): ${
        ceiling.oneThread.toFixed(1)
      } GFLOP/s on one thread, ${ceiling.allThreads.toFixed(1)} GFLOP/s on ${all} at once. ` +
        "Each rate below is followed by its share of the ceiling of its thread count (FLOP: " +
        "2 × the forward's multiply-adds, × 3 for a training step).\n",
    );
  }
  console.log(
    `| workload | network | batch | tessera 1 thread | tessera ${all} threads | ${all} / 1 | ` +
      "PyTorch 2.13 tuned, recorded, 1 core / 2 threads | PyTorch 2.13 tuned, 128-bit SIMD, " +
      "recorded, 1 / 2 | onnxruntime 1.30, recorded, 1 / 2 |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const row of rows) {
    const steps = row.batch * row.net.input[1] ** 2 > 2e6 ? 3 : row.batch === 1 ? 15 : 5;
    const times: number[] = [];
    for (const threads of [1, all]) {
      await setThreads(threads);
      times.push(timeRow(row, quick ? 2 : steps));
    }
    await setThreads("auto");
    const cell = (s: number, top: number | null) => {
      const rate = row.batch === 1 ? s * 1000 : row.batch / s;
      const text = row.batch === 1 ? `${rate.toFixed(1)} ms` : `${rate.toFixed(1)} img/s`;
      return `${text} (${percent(gflops(row, rate), top)})`;
    };
    console.log(
      `| ${row.mode === "train" ? "training step" : "inference (eval)"} | ${row.net.name} (${
        describe(row.net)
      }) | ${row.batch} | ${cell(times[0], ceiling?.oneThread ?? null)} | ${
        cell(times[1], ceiling?.allThreads ?? null)
      } | ${(times[0] / times[1]).toFixed(2)}x | ${yardstickCell(row, row.pytorch, ceiling)} | ${
        yardstickCell(row, row.pytorch128, ceiling)
      } | ${yardstickCell(row, row.onnx, ceiling)} |`,
    );
  }
  console.log(
    `\nthreads: ${getThreads()} (navigator.hardwareConcurrency ${navigator.hardwareConcurrency}); ` +
      "yardsticks are PERF.md's recorded figures, not measured in this run; " +
      '"1 thread" here runs in this process, the yardsticks\' "1 core" pinned the process. ' +
      "A native library issues 256- or 512-bit SIMD (AVX2, AVX-512) where WebAssembly has 128 " +
      "bits: its share of the wasm ceiling can pass 100%, which no wasm program can reach.",
  );
}

if (import.meta.main) await runCpuAlexnetBench(Deno.args.includes("--quick"));
