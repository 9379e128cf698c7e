/**
 * `deno task predict`: classifies photos and prints the top-5 classes with their
 * probabilities, in one of two modes.
 *
 * - `--weights FILE` (or `--download`): torchvision's ImageNet-trained AlexNet (a `.pth` or
 *   `.safetensors` state_dict, see `pretrained.ts`), the 1000 ImageNet classes, torchvision's
 *   evaluation transform (`data/imagenet.ts`). `--crops 1` by default, torchvision's centre
 *   crop.
 * - `--run DIR`: a run of `deno task train-alexnet` (Fashion-MNIST or an image folder), with
 *   the run's own classes and preprocessing. `--crops 10` by default.
 *
 * With `--crops 10` the softmax outputs of ten crops (four corners, the center, and their
 * mirrors) are averaged, as the paper did at test time (section 4.1).
 *
 * @module
 */

import { fromArray, loadCheckpoint, loadSafetensors, noGrad, softmax } from "../../mod.ts";
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
import { cropsFlag, deviceFlag, parseFlags, parseNumberFlag, UsageError } from "./config.ts";
import { allFinite, buildModel } from "./trainer.ts";
import { readRunMetadata } from "./run_state.ts";
import { tryWebGPU } from "./device.ts";
import {
  classify,
  disposePretrained,
  downloadWeights,
  loadPretrained,
  progressBar,
  TORCHVISION_ALEXNET,
} from "./pretrained.ts";

/** One image's top classes, or why it could not be classified. */
export interface Prediction {
  /** The file. */
  file: string;
  /** The best classes, most probable first (empty when `error` is set). */
  top: { className: string; probability: number }[];
  /** Why the file could not be read or decoded (the other files are still classified). */
  error?: string;
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

/** The weights predict uses: best.safetensors (best validation accuracy) when the run has one. */
export async function weightsFile(runDir: string): Promise<string> {
  try {
    await Deno.stat(`${runDir}/best.safetensors`);
    return `${runDir}/best.safetensors`;
  } catch {
    return `${runDir}/checkpoint.safetensors`;
  }
}

/** Decodes `file`; when it cannot be read or decoded, records why in `results` and gives null. */
async function decodeOrRecord(
  file: string,
  results: Prediction[],
): Promise<ImageCHW<Uint8Array> | null> {
  try {
    return await decodeImage(await Deno.readFile(file), file);
  } catch (error) {
    results.push({ file, top: [], error: `cannot read ${file}: ${(error as Error).message}` });
    return null;
  }
}

/**
 * Classifies `files` with the weights of run folder `runDir` ({@link weightsFile}). Refuses
 * weights that are not finite; a file that cannot be read or decoded gets an `error` and the
 * others are still classified.
 */
export async function predictImages(
  runDir: string,
  files: string[],
  options: PredictOptions = {},
): Promise<Prediction[]> {
  const crops = options.crops ?? 10;
  const checkpoint = await weightsFile(runDir);
  const { config, data } = await readRunMetadata(checkpoint, false);
  const [channels, size] = data.inputShape;
  const device = options.device ?? "cpu";
  if (device === "gpu") {
    const { backend, why } = await tryWebGPU();
    if (!backend) throw new Error(`--device gpu: ${why}`);
  }
  const model = buildModel(config, data.inputShape, data.classNames.length);
  await loadCheckpoint(checkpoint, { model });
  if (!await allFinite(model.parameters())) {
    throw new Error(
      `${checkpoint} holds weights that are not finite (NaN or Infinity): the run diverged; ` +
        `train again with a lower --lr`,
    );
  }
  await model.to(device);
  model.eval();

  let meanImage: Float32Array | null = null;
  if (data.kind === "image-folder") {
    const file = await loadSafetensors(`${runDir}/mean_image.safetensors`);
    meanImage = file.tensors.get("mean")!.data as Float32Array;
  }

  const results: Prediction[] = [];
  for (const file of files) {
    let image = await decodeOrRecord(file, results);
    if (image === null) continue;
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
    using x = fromArray(batch, [views.length, channels, size, size], { device });
    using probabilities = noGrad(() => softmax(model.forward(x)));
    const values = await probabilities.data();
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

/**
 * Classifies `files` with a torchvision-layout AlexNet weights file (`.pth` or
 * `.safetensors`; see `pretrained.ts`), as {@link predictImages} does for a run folder.
 */
export async function predictImagenet(
  weights: string,
  files: string[],
  options: PredictOptions = {},
): Promise<Prediction[]> {
  const net = await loadPretrained(weights, options.device ?? "cpu");
  const results: Prediction[] = [];
  try {
    for (const file of files) {
      const image = await decodeOrRecord(file, results);
      if (image === null) continue;
      const top = await classify(net, image, { crops: options.crops ?? 1, top: options.top });
      results.push({
        file,
        top: top.map(({ className, probability }) => ({ className, probability })),
      });
    }
  } finally {
    disposePretrained(net);
  }
  return results;
}

const HELP =
  `Classify images with AlexNet: torchvision's ImageNet weights, or a run of train-alexnet.

Usage: deno task predict --weights FILE [--crops 1|10] [--device cpu|gpu] IMAGE...
       deno task predict --download [--crops 1|10] [--device cpu|gpu] IMAGE...
       deno task predict [--run DIR] [--crops 1|10] [--device cpu|gpu] IMAGE...

  --weights FILE a torchvision AlexNet state_dict: .pth/.pt (torch.save) or .safetensors;
                 prints ImageNet's top-5
  --download     fetch torchvision's ${TORCHVISION_ALEXNET.file} (233 MB, SHA-256 checked)
                 into ~/.cache/tessera/torchvision once, then use it as --weights
  --run DIR      run folder (default runs/alexnet): its best.safetensors (best validation
                 accuracy) when present, else checkpoint.safetensors
  --crops N      1: the centre crop (default with --weights, torchvision's evaluation);
                 10: average ten crops as the paper did (default with --run)
  --device NAME  cpu (default) | gpu
`;

/** What predict's command line asks for. */
export interface PredictCommand {
  /** "imagenet" (--weights / --download) or "run" (--run). */
  mode: "imagenet" | "run";
  /** The run folder (mode "run"). */
  run: string;
  /** The weights file (mode "imagenet" without --download). */
  weights?: string;
  /** Fetch torchvision's weights into the cache first. */
  download: boolean;
  /** The photos. */
  files: string[];
  /** Crops and device. */
  options: PredictOptions;
}

/** Parses predict's command line; throws {@link UsageError}; null for --help. */
export function parsePredictArgs(args: string[]): PredictCommand | null {
  const { values, positionals } = parseFlags({
    args,
    allowPositionals: true,
    options: {
      run: { type: "string" },
      weights: { type: "string" },
      download: { type: "boolean" },
      crops: { type: "string" },
      device: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  const chosen = [values.run !== undefined, values.weights !== undefined, !!values.download];
  if (chosen.filter(Boolean).length > 1) {
    throw new UsageError("give one of --run, --weights and --download");
  }
  const mode = values.weights !== undefined || values.download ? "imagenet" : "run";
  const crops = cropsFlag(
    values.crops === undefined
      ? (mode === "imagenet" ? 1 : 10)
      : parseNumberFlag("crops", values.crops, { integer: true, min: 1 }),
    values.crops,
  );
  const device = deviceFlag(values.device);
  if (positionals.length === 0) throw new UsageError("no image files given");
  return {
    mode,
    run: values.run ?? "runs/alexnet",
    weights: values.weights,
    download: !!values.download,
    files: positionals,
    options: { crops, device },
  };
}

/** Runs the command: the predictions of either mode. */
async function runPredict(command: PredictCommand): Promise<Prediction[]> {
  if (command.mode === "imagenet") {
    const weights = command.download
      ? await downloadWeights({ onProgress: progressBar(TORCHVISION_ALEXNET.file) })
      : command.weights!;
    return await predictImagenet(weights, command.files, command.options);
  }
  if (!(await Deno.stat(command.run).catch(() => null))?.isDirectory) {
    throw new Error(`--run ${command.run}: not a folder (or it does not exist)`);
  }
  return await predictImages(command.run, command.files, command.options);
}

if (import.meta.main) {
  try {
    const command = parsePredictArgs(Deno.args);
    if (command === null) {
      console.log(HELP);
      Deno.exit(0);
    }
    const results = await runPredict(command);
    for (const r of results) {
      if (r.error) {
        console.error(`${r.file}: ${r.error}`);
        continue;
      }
      console.log(`${r.file}:`);
      for (const t of r.top) {
        console.log(`  ${(100 * t.probability).toFixed(2).padStart(6)}%  ${t.className}`);
      }
    }
    if (results.some((r) => r.error)) Deno.exit(1);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`predict: ${error.message} (see --help)`);
      Deno.exit(2);
    }
    console.error(`predict: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
