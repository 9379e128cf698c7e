/**
 * Shared by the ImageNet tests: a generated weights file in torchvision's AlexNet layout
 * (random weights, written by tessera's safetensors writer) and the photo fixtures of
 * `tools/imagenet_fixtures.py`.
 *
 * The file has every name and the conv shapes of torchvision's, with a small classifier
 * (`hidden` instead of 4096): 13 MB instead of 233 MB, the same code path.
 *
 * @module
 */

import { saveSafetensors, type TensorEntry } from "../../mod.ts";
import { alexnetTorchvision } from "../../models/alexnet.ts";

/** The committed photos and recordings of torchvision's transform. */
export const IMAGENET_FIXTURES = new URL("../fixtures/imagenet/", import.meta.url).pathname;

/** The fixture photos' names (NAME.jpg, NAME.pil.png, NAME.eval.png). */
export const FIXTURE_PHOTOS = [
  "landscape_500x375",
  "portrait_300x400",
  "tall_257x1000",
  "small_180x240",
  "full_chroma_320x240",
];

/** Writes a torchvision-layout AlexNet with random weights to `path` (.safetensors). */
export async function writeTestWeights(
  path: string,
  options: { hidden?: number; numClasses?: number; seed?: number } = {},
): Promise<void> {
  const model = alexnetTorchvision({
    hidden: options.hidden ?? 64,
    numClasses: options.numClasses ?? 1000,
    seed: options.seed ?? 7,
    dropout: false,
    // He init keeps the activations' scale through the eight layers, so different photos get
    // different outputs (PyTorch's default init shrinks them toward the fc8 biases).
    init: "he",
  });
  const tensors = new Map<string, TensorEntry>();
  for (const [name, p] of model.namedParameters()) {
    tensors.set(name, { dtype: "F32", shape: [...p.shape], data: p.dataSync() as Float32Array });
    p.dispose();
  }
  await saveSafetensors(path, tensors);
}
