/**
 * The ImageNet page (web/imagenet.html) in headless Chromium: a generated weights file in
 * torchvision's AlexNet layout (random weights, small classifier; imagenet_helpers.ts) and a
 * photo are dropped on the page together; the page draws conv1's filters and lists the
 * photo's top-5, which must be the classes tessera computes in Deno for the same file and
 * photo (a PNG, so both sides decode the same pixels). On the CPU backend a `.pth` written by
 * PyTorch is dropped next and gives PyTorch's own top-5.
 *
 * @module
 */

import assert from "node:assert/strict";
import { decodePng } from "../../data/codecs.ts";
import { decodeSafetensors } from "../../io/safetensors.ts";
import { IMAGENET_CLASSES } from "../../data/imagenet.ts";
import type { HostTensor } from "../../nn/module.ts";
import {
  alexnetFromStateDict,
  classify,
  disposePretrained,
} from "../../models/alexnet_pretrained.ts";
import { type BrowserPage, chromiumAvailable, withBrowser } from "../support/browser_chromium.ts";
import {
  FIXTURE_PHOTOS,
  IMAGENET_FIXTURES,
  writeTestWeights,
} from "../support/imagenet_helpers.ts";

interface PageState {
  device: string | null;
  weights: string | null;
  predictions: { name: string; top: { className: string; probability: number }[] }[];
  error: string | null;
}

/** Puts `bytes` into the page as `globalThis.files[name]`, a File, in base64 pieces. */
async function sendFile(page: BrowserPage, name: string, bytes: Uint8Array): Promise<void> {
  await page.evaluate(`globalThis.pieces = []; globalThis.files ??= {}`);
  const piece = 3 * 512 * 1024;
  for (let at = 0; at < bytes.length; at += piece) {
    let binary = "";
    const part = bytes.subarray(at, at + piece);
    for (let i = 0; i < part.length; i += 0x8000) {
      binary += String.fromCharCode(...part.subarray(i, i + 0x8000));
    }
    await page.evaluate(`globalThis.pieces.push("${btoa(binary)}")`);
  }
  await page.evaluate(`globalThis.files[${JSON.stringify(name)}] = new File(
    globalThis.pieces.map((p) => Uint8Array.from(atob(p), (c) => c.charCodeAt(0))),
    ${JSON.stringify(name)})`);
}

/** Drops the files sent with {@link sendFile} on the page, as a drag and drop does. */
async function drop(page: BrowserPage, names: string[]): Promise<void> {
  await page.evaluate(`(() => {
    const transfer = new DataTransfer();
    for (const name of ${JSON.stringify(names)}) transfer.items.add(globalThis.files[name]);
    document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
  })()`);
}

for (const device of ["gpu", "cpu"] as const) {
  Deno.test({
    name: `ImageNet page (${device}): dropped weights and photo give tessera's top-5, and filters`,
    ignore: !chromiumAvailable,
    sanitizeResources: false,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "tessera-imagenet-page-" });
      try {
        const weightsPath = `${dir}/alexnet.safetensors`;
        await writeTestWeights(weightsPath, { hidden: 16, seed: 3 });
        const weights = await Deno.readFile(weightsPath);
        const photoName = `${FIXTURE_PHOTOS[0]}.png`;
        const photo = await Deno.readFile(`${IMAGENET_FIXTURES}/${FIXTURE_PHOTOS[0]}.pil.png`);

        // The answer, computed here.
        const state = new Map<string, HostTensor>();
        for (const [k, v] of decodeSafetensors(weights).tensors) state.set(k, v as HostTensor);
        const net = await alexnetFromStateDict(state, "weights");
        const expected = await classify(net, await decodePng(photo));
        disposePretrained(net);

        await withBrowser(async (page, origin) => {
          await page.goto(`${origin}/imagenet.html${device === "cpu" ? "?device=cpu" : ""}`);
          await page.waitFor("globalThis.imagenet?.device", 60);
          assert.equal(await page.evaluate("globalThis.imagenet.device"), device);
          await sendFile(page, "alexnet.safetensors", weights);
          await sendFile(page, photoName, photo);
          await drop(page, [photoName, "alexnet.safetensors"]); // weights go first anyway
          const seen = await page.waitFor<PageState>(
            `globalThis.imagenet.error !== null || globalThis.imagenet.predictions.length > 0
              ? globalThis.imagenet : null`,
            240,
          );
          assert.equal(seen.error, null, `page error; log:\n${page.log.join("\n")}`);
          assert.equal(seen.weights, "alexnet.safetensors");
          const [prediction] = seen.predictions;
          assert.equal(prediction.name, photoName);
          assert.deepEqual(
            prediction.top.map((t) => t.className),
            expected.map((t) => t.className),
          );
          prediction.top.forEach((t, k) => {
            assert.ok(Math.abs(t.probability - expected[k].probability) < 1e-3, `rank ${k}`);
          });
          const bars = await page.evaluate<number>(
            `document.querySelectorAll("#results li").length`,
          );
          assert.equal(bars, 5);
          // conv1's 64 RGB filters were drawn: many colours on the canvas.
          const colours = await page.evaluate<number>(`(() => {
            const c = document.getElementById("filters");
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
            return seen.size;
          })()`);
          assert.ok(colours > 500, `filters canvas has ${colours} colours`);
          if (device === "gpu") {
            await Deno.mkdir("runs", { recursive: true });
            await Deno.writeFile("runs/imagenet_page.png", await page.screenshot());
          }
          if (device === "cpu") {
            // A .pth that PyTorch wrote (legacy format, as torchvision's file) replaces the
            // weights; the same photo then gets PyTorch's top-5 (tools/imagenet_fixtures.py).
            const pth = "tiny_alexnet_legacy.pth";
            await sendFile(page, pth, await Deno.readFile(`${IMAGENET_FIXTURES}/${pth}`));
            await drop(page, [pth, photoName]);
            const after = await page.waitFor<PageState>(
              `globalThis.imagenet.error !== null || globalThis.imagenet.predictions.length > 1
                ? globalThis.imagenet : null`,
              240,
            );
            assert.equal(after.error, null, `page error; log:\n${page.log.join("\n")}`);
            assert.equal(after.weights, pth);
            const pytorch = JSON.parse(
              await Deno.readTextFile(`${IMAGENET_FIXTURES}/tiny_alexnet.json`),
            )[FIXTURE_PHOTOS[0]].centre as [number, number][];
            after.predictions[1].top.forEach((t, k) => {
              assert.equal(t.className, IMAGENET_CLASSES[pytorch[k][0]], `rank ${k}`);
              assert.ok(Math.abs(t.probability - pytorch[k][1]) < 1e-4, `rank ${k}`);
            });
          }
        }, { webgpu: device === "gpu" });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
