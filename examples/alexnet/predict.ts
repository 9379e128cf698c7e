/**
 * `deno task predict [--run DIR] [--crops 1|10] IMAGE...`: classifies images with a trained
 * checkpoint and prints the top-5 classes with their probabilities. With `--crops 10` it
 * averages the softmax outputs of ten crops (four corners, the center, and their mirrors),
 * as the paper did at test time (section 4.1).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fromArray, noGrad } from "../../mod.ts";
import { softmax } from "../../tensor/ops/softmax.ts";
import { loadCheckpoint } from "../../io/checkpoint.ts";
import { loadSafetensors } from "../../io/safetensors.ts";
import {
  centerCrop,
  decodeImage,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  type ImageCHW,
  normalize,
  preprocess,
  subtractMean,
  tenCrop,
  toFloat,
} from "../../data/mod.ts";
import type { TrainConfig } from "./config.ts";
import { buildModel, readCheckpointMetadata } from "./trainer.ts";
import { tryWebGPU } from "./device.ts";

/** One image's top classes. */
export interface Prediction {
  /** The file. */
  file: string;
  /** The best classes, most probable first. */
  top: { className: string; probability: number }[];
}

/** Options of {@link predictImages}. */
export interface PredictOptions {
  /** 1 (center) or 10 (corners, center and mirrors; paper section 4.1). */
  crops?: 1 | 10;
  /** How many classes to report (default 5). */
  top?: number;
  /** "cpu" (default) or "gpu". */
  device?: "cpu" | "gpu";
}

function grayscale(image: ImageCHW<Uint8Array>): ImageCHW<Uint8Array> {
  if (image.channels === 1) return image;
  const plane = image.height * image.width;
  const data = new Uint8Array(plane);
  // ITU-R BT.601 luma, the usual RGB -> gray conversion.
  for (let i = 0; i < plane; i++) {
    data[i] = Math.round(
      0.299 * image.data[i] + 0.587 * image.data[plane + i] + 0.114 * image.data[2 * plane + i],
    );
  }
  return { data, channels: 1, height: image.height, width: image.width };
}

/** Classifies `files` with the checkpoint in run folder `runDir`. */
export async function predictImages(
  runDir: string,
  files: string[],
  options: PredictOptions = {},
): Promise<Prediction[]> {
  const crops = options.crops ?? 10;
  const checkpoint = `${runDir}/checkpoint.safetensors`;
  const { metadata } = await readCheckpointMetadata(checkpoint);
  const config = metadata.config as TrainConfig;
  const data = metadata.data as {
    kind: "fashion-mnist" | "image-folder";
    classNames: string[];
    inputShape: [number, number, number];
  };
  if (!data?.classNames) {
    throw new Error(`checkpoint ${checkpoint} does not describe its data (class names)`);
  }
  const [channels, size] = data.inputShape;
  const device = options.device ?? "cpu";
  if (device === "gpu") {
    const { backend, why } = await tryWebGPU();
    if (!backend) throw new Error(`--device gpu: ${why}`);
  }
  const model = buildModel(config, data.inputShape, data.classNames.length);
  await loadCheckpoint(checkpoint, { model });
  await model.to(device);
  model.eval();

  let meanImage: Float32Array | null = null;
  if (data.kind === "image-folder") {
    const file = await loadSafetensors(`${runDir}/mean_image.safetensors`);
    meanImage = file.tensors.get("mean")!.data as Float32Array;
  }

  const results: Prediction[] = [];
  for (const file of files) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(file);
    } catch (error) {
      throw new Error(`predict: cannot read ${file}: ${(error as Error).message}`);
    }
    let image = await decodeImage(bytes, file);
    if (channels === 1) image = grayscale(image);
    let views: ImageCHW<Float32Array>[];
    if (data.kind === "fashion-mnist") {
      // Fashion-MNIST images are centered 28x28; ten-crop takes 28x28 crops of a 32x32 resize.
      const base = preprocess(image, crops === 10 ? Math.round(size * 32 / 28) : size);
      const prepared = normalize(toFloat(base, 1 / 255), [FASHION_MNIST_MEAN], [FASHION_MNIST_STD]);
      views = crops === 10 ? tenCrop(prepared, size) : [prepared];
    } else {
      const prepared = subtractMean(preprocess(image, 256), meanImage!);
      views = crops === 10 ? tenCrop(prepared, size) : [centerCrop(prepared, size)];
    }
    const batch = new Float32Array(views.length * channels * size * size);
    views.forEach((v, i) => batch.set(v.data, i * v.data.length));
    const x = fromArray(batch, [views.length, channels, size, size], { device });
    const probabilities = noGrad(() => softmax(model.forward(x)));
    const values = await probabilities.data();
    x.dispose();
    probabilities.dispose();
    const classes = data.classNames.length;
    const mean = new Float64Array(classes);
    for (let v = 0; v < views.length; v++) {
      for (let c = 0; c < classes; c++) mean[c] += values[v * classes + c] / views.length;
    }
    const order = [...mean.keys()].sort((a, b) => mean[b] - mean[a]).slice(0, options.top ?? 5);
    results.push({
      file,
      top: order.map((c) => ({ className: data.classNames[c], probability: mean[c] })),
    });
  }
  for (const p of model.parameters()) p.dispose();
  return results;
}

const HELP = `Classify images with a trained AlexNet checkpoint.

Usage: deno task predict [--run DIR] [--crops 1|10] [--device cpu|gpu] IMAGE...

  --run DIR      run folder with checkpoint.safetensors (default runs/alexnet)
  --crops N      10 (default): average ten crops as the paper did; 1: center crop only
  --device NAME  cpu (default) | gpu
`;

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        run: { type: "string" },
        crops: { type: "string" },
        device: { type: "string" },
        help: { type: "boolean" },
      },
    });
  } catch (error) {
    console.error(`predict: ${(error as Error).message}\n\n${HELP}`);
    Deno.exit(2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const crops = Number(values.crops ?? 10);
  const device = values.device ?? "cpu";
  if (
    (crops !== 1 && crops !== 10) || (device !== "cpu" && device !== "gpu") ||
    positionals.length === 0
  ) {
    const problem = positionals.length === 0
      ? "no image files given"
      : crops !== 1 && crops !== 10
      ? `--crops must be 1 or 10, got "${values.crops}"`
      : `--device must be cpu or gpu, got "${device}"`;
    console.error(`predict: ${problem}\n\n${HELP}`);
    Deno.exit(2);
  }
  try {
    const results = await predictImages(values.run ?? "runs/alexnet", positionals, {
      crops: crops as 1 | 10,
      device,
    });
    for (const r of results) {
      console.log(`${r.file}:`);
      for (const t of r.top) {
        console.log(`  ${(100 * t.probability).toFixed(2).padStart(6)}%  ${t.className}`);
      }
    }
  } catch (error) {
    console.error(`predict: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
