/**
 * torchvision-layout AlexNet state_dicts saved by PyTorch's own `torch.save` (both formats;
 * `tools/imagenet_fixtures.py`), read by `loadTorch` and run by tessera: the class
 * probabilities of each fixture photo equal PyTorch's, through the library and through
 * `deno task predict`.
 */

import assert from "node:assert/strict";
import { decodePng } from "../../data/codecs.ts";
import { IMAGENET_CLASSES } from "../../data/imagenet.ts";
import { loadTorch } from "../../io/torch.ts";
import {
  ALEXNET_MAX_BYTES,
  alexnetFromStateDict,
  classify,
  classProbabilities,
  disposePretrained,
} from "../../models/alexnet_pretrained.ts";
import { gpuTest } from "../support/gpu_helpers.ts";
import { FIXTURE_PHOTOS, IMAGENET_FIXTURES } from "../support/imagenet_helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
type Top = [number, number][];
const pytorch: Record<string, { centre: Top; tenCrop: Top }> = JSON.parse(
  await Deno.readTextFile(`${IMAGENET_FIXTURES}/tiny_alexnet.json`),
);

/** Checks `device`'s probabilities of every fixture photo against PyTorch's. */
async function assertPytorchProbabilities(format: string, device: string, photos: string[]) {
  const state = await loadTorch(`${IMAGENET_FIXTURES}/tiny_alexnet_${format}.pth`, {
    maxBytes: ALEXNET_MAX_BYTES,
  });
  const net = await alexnetFromStateDict(state, format, device);
  for (const t of state.values()) t.dispose();
  try {
    for (const name of photos) {
      const image = await decodePng(await Deno.readFile(`${IMAGENET_FIXTURES}/${name}.pil.png`));
      for (const crops of [1, 10] as const) {
        const p = await classProbabilities(net, image, crops);
        const expected = pytorch[name][crops === 1 ? "centre" : "tenCrop"];
        for (const [index, probability] of expected) {
          assert.ok(
            Math.abs(p[index] - probability) <= 1e-5 * Math.max(1, probability * 10),
            `${device} ${name} crops ${crops} class ${index}: ${
              p[index]
            } vs PyTorch ${probability}`,
          );
        }
      }
    }
  } finally {
    disposePretrained(net);
  }
}

for (const format of ["legacy", "zip"]) {
  Deno.test(`imagenet .pth (${format}): PyTorch's probabilities, centre and ten crops`, async () => {
    await assertPytorchProbabilities(format, "cpu", FIXTURE_PHOTOS);
  });
}

gpuTest("imagenet .pth on WebGPU: PyTorch's probabilities, centre and ten crops", async () => {
  await assertPytorchProbabilities("legacy", "gpu", FIXTURE_PHOTOS.slice(0, 2));
});

Deno.test("classify: options are checked", async () => {
  const state = await loadTorch(`${IMAGENET_FIXTURES}/tiny_alexnet_zip.pth`, {
    maxBytes: ALEXNET_MAX_BYTES,
  });
  const net = await alexnetFromStateDict(state, "zip");
  for (const t of state.values()) t.dispose();
  const image = { data: new Uint8Array(3 * 300 * 300), channels: 3, height: 300, width: 300 };
  try {
    await assert.rejects(classify(net, image, { crop: 10 } as never), /unknown option "crop"/);
    await assert.rejects(classify(net, image, { crops: 5 as 1 }), /crops must be 1 or 10, got 5/);
    assert.equal((await classify(net, image, { top: 3 })).length, 3);
  } finally {
    disposePretrained(net);
  }
});

Deno.test("predict --weights FILE.pth: prints PyTorch's top-5", async () => {
  const name = FIXTURE_PHOTOS[0];
  const photo = `${IMAGENET_FIXTURES}/${name}.pil.png`;
  const output = await new Deno.Command("deno", {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "examples/alexnet/predict.ts",
      "--weights",
      `${IMAGENET_FIXTURES}/tiny_alexnet_legacy.pth`,
      photo,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const lines = stdout.split("\n").filter((l) => /^\s+[\d.]+%/.test(l));
  assert.equal(lines.length, 5, stdout);
  lines.forEach((line, k) => {
    const [index, probability] = pytorch[name].centre[k];
    const [, percent, className] = line.match(/^\s+([\d.]+)%\s+(.+)$/)!;
    assert.equal(className, IMAGENET_CLASSES[index]);
    assert.ok(Math.abs(Number(percent) - 100 * probability) <= 0.006, line);
  });
});
