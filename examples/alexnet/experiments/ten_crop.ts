/**
 * Ten-crop testing (paper section 4.1) on Fashion-MNIST for the ablation: "At test time, the
 * network makes a prediction by extracting five 224x224 patches (the four corner patches and
 * the center patch) as well as their horizontal reflections (hence ten patches in all), and
 * averaging the predictions made by the network's softmax layer on the ten patches." At 28 px
 * the image is padded by `padding` pixels of background (0) on every side and the ten crops
 * of 28 are taken from that, the same geometry the `--pad-crop` training crops sample from; the
 * centre crop is the image itself. A run's final weights (checkpoint.safetensors) are read back
 * and evaluated both ways on the same test images.
 *
 * @module
 */

import {
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  type ImageCHW,
  normalize,
  tenCrop,
  toFloat,
} from "../../../data/mod.ts";
import { fromArray, loadCheckpoint, noGrad, softmax } from "../../../mod.ts";
import type { TrainConfig } from "../config.ts";
import { loadRunData } from "../data.ts";
import { buildModel } from "../learner.ts";

/** `image` with `padding` pixels of `fill` on every side. */
export function pad(image: ImageCHW, padding: number, fill = 0): ImageCHW<Float32Array> {
  const { channels, height, width } = image;
  const h = height + 2 * padding, w = width + 2 * padding;
  const data = new Float32Array(channels * h * w).fill(fill);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        data[(c * h + y + padding) * w + x + padding] = image.data[(c * height + y) * width + x];
      }
    }
  }
  return { data, channels, height: h, width: w };
}

/** Test error of the run in `config.out` with the centre view and with ten crops. */
export async function tenCropTestError(
  config: TrainConfig,
  padding: number,
): Promise<{ centre: number; tenCrop: number }> {
  const data = await loadRunData(config);
  if (data.kind !== "fashion-mnist") {
    throw new Error(`tenCropTestError: written for Fashion-MNIST, got ${data.kind}`);
  }
  const classes = data.classNames.length;
  const model = buildModel({ ...config, device: "cpu" }, data.inputShape, classes);
  await loadCheckpoint(`${config.out}/checkpoint.safetensors`, { model });
  model.train(false);
  const [n, c, h, w] = data.test.shape;
  const plane = c * h * w;
  const prepare = (view: ImageCHW) => normalize(view, [FASHION_MNIST_MEAN], [FASHION_MNIST_STD]);
  const argmax = (xs: ArrayLike<number>, from: number) => {
    let best = 0;
    for (let k = 1; k < classes; k++) if (xs[from + k] > xs[from + best]) best = k;
    return best;
  };
  let centreWrong = 0, tenWrong = 0;
  const chunk = 32; // images per forward pass (320 views)
  for (let first = 0; first < n; first += chunk) {
    const count = Math.min(chunk, n - first);
    const batch = new Float32Array(count * 10 * plane);
    for (let i = 0; i < count; i++) {
      const at = (first + i) * plane;
      const image = toFloat({
        data: data.test.images.subarray(at, at + plane),
        channels: c,
        height: h,
        width: w,
      }, 1 / 255);
      const views = tenCrop(pad(image, padding), h).map(prepare); // views[4]: the centre
      views.forEach((v, j) => batch.set(v.data, (i * 10 + j) * plane));
    }
    using x = fromArray(batch, [count * 10, c, h, w]);
    using p = noGrad(() => softmax(model.forward(x)));
    const probabilities = await p.data();
    for (let i = 0; i < count; i++) {
      const average = new Float64Array(classes);
      for (let j = 0; j < 10; j++) {
        for (let k = 0; k < classes; k++) average[k] += probabilities[(i * 10 + j) * classes + k];
      }
      const label = data.test.labels[first + i];
      if (argmax(probabilities, (i * 10 + 4) * classes) !== label) centreWrong++;
      if (argmax(average, 0) !== label) tenWrong++;
    }
  }
  return { centre: centreWrong / n, tenCrop: tenWrong / n };
}
