/**
 * The web page (web/index.html) in headless Chromium: with `?device=gpu` AlexNet-mini trains on
 * the browser's WebGPU for a few steps (pausing and resuming on the way), its loss falls, the
 * conv1 filters are redrawn, a drawing gets a top-5, and the page's screenshot is not blank.
 * Without `?device`, the page sees that Chromium's WebGPU adapter is SwiftShader (software),
 * trains on the CPU backend on every core instead and says why. In a Chromium without WebGPU,
 * on a page served without cross-origin isolation (so without SharedArrayBuffer too), the CPU
 * backend trains on one thread, and the page says why; served with isolation, on every core
 * (the bundled worker script).
 *
 * @module
 */

import assert from "node:assert/strict";
import { decodePng } from "../../data/codecs.ts";
import type { ImageCHW } from "../../data/dataset.ts";
import { chromiumAvailable, withBrowser } from "../support/browser_chromium.ts";

const STEPS = 8;

interface Training {
  device: string | null;
  losses: number[];
  accuracies: number[];
  filterUpdates: number;
  done: boolean;
  error: string | null;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Waits until training finished (or failed), then checks that the loss fell. */
async function checkTraining(
  page: import("../support/browser_chromium.ts").BrowserPage,
  device: string,
  seconds: number,
): Promise<Training> {
  await page.waitFor("globalThis.training?.done || globalThis.training?.error", seconds);
  const training = await page.evaluate<Training>("globalThis.training");
  assert.equal(training.error, null, `the page reported an error; log:\n${page.log.join("\n")}`);
  assert.equal(training.device, device);
  assert.equal(training.losses.length, STEPS, "one loss per step");
  assert.ok(training.losses.every(Number.isFinite), `losses: ${training.losses}`);
  const first = mean(training.losses.slice(0, 3)), last = mean(training.losses.slice(-3));
  assert.ok(last < first, `loss did not fall: first steps ${first}, last steps ${last}`);
  assert.ok(training.filterUpdates >= 2, "the conv1 filters were redrawn");
  return training;
}

Deno.test({
  name:
    "web page: with ?device=gpu AlexNet-mini trains on WebGPU in Chromium, screenshot not blank",
  ignore: !chromiumAvailable,
  sanitizeResources: false,
  async fn() {
    await withBrowser(async (page, origin) => {
      await page.goto(`${origin}/?steps=${STEPS}&batch=16&lr=0.02&device=gpu`);
      const started = Date.now();
      // Pause holds training between steps (the step in flight completes); resume continues.
      await page.waitFor(
        "globalThis.training?.error || globalThis.training?.losses.length >= 2",
        180,
      );
      await page.evaluate(`document.getElementById("pause").click()`);
      const atPause = await page.evaluate<number>("globalThis.training.losses.length");
      await new Promise((resolve) => setTimeout(resolve, 6000));
      const afterPause = await page.evaluate<number>("globalThis.training.losses.length");
      assert.ok(afterPause <= atPause + 1, `paused at step ${atPause}, yet reached ${afterPause}`);
      assert.equal(await page.evaluate(`document.getElementById("pause").textContent`), "Resume");
      await page.evaluate(`document.getElementById("pause").click()`);
      await checkTraining(page, "gpu", 240);
      console.log(`${STEPS} steps of batch 16 on WebGPU: ${(Date.now() - started) / 1000} s`);
      assert.equal(
        await page.evaluate("crossOriginIsolated && typeof SharedArrayBuffer"),
        "function",
        "the server's COOP/COEP headers make the page cross-origin isolated",
      );
      // A drawing: a filled rectangle (trousers-ish); its top-5 lists five classes.
      await page.evaluate(`(() => {
        const c = document.getElementById("sketch"), r = c.getBoundingClientRect();
        const at = (x, y) => ({ clientX: r.left + x, clientY: r.top + y, pointerId: 1, bubbles: true });
        c.dispatchEvent(new PointerEvent("pointerdown", at(70, 20)));
        for (let y = 20; y < 180; y += 10) c.dispatchEvent(new PointerEvent("pointermove", at(70 + y / 20, y)));
        c.dispatchEvent(new PointerEvent("pointerup", at(80, 180)));
      })()`);
      const top5 = await page.waitFor<string[]>(
        `(() => {
          const items = [...document.querySelectorAll("#top5 li")].map((li) => li.textContent);
          return items.length === 5 && items;
        })()`,
        60,
      );
      assert.equal(top5.length, 5);
      // The server sends the page, its scripts and the data, and nothing else.
      for (const path of ["/server.ts", "/%2e%2e/deno.json", "/data/fashion-mnist/README.md"]) {
        const response = await fetch(origin + path);
        await response.body?.cancel();
        assert.equal(response.status, 404, `${path} must not be served`);
      }
      const png = await page.screenshot();
      await Deno.mkdir("runs", { recursive: true });
      await Deno.writeFile("runs/web_page.png", png);
      assertNotBlank(await decodePng(png));
    });
  },
});

Deno.test({
  name: "web page: with a software WebGPU adapter the page trains on the CPU and says why",
  ignore: !chromiumAvailable,
  sanitizeResources: false,
  async fn() {
    await withBrowser(async (page, origin) => {
      await page.goto(`${origin}/?steps=${STEPS}&batch=16&lr=0.02`);
      const adapter = "(async () => !!(await navigator.gpu?.requestAdapter()))()";
      assert.ok(await page.evaluate(adapter), "this Chromium has a WebGPU adapter");
      await checkTraining(page, "cpu", 300);
      const note = await page.evaluate<string>(
        `document.getElementById("note").hidden ? "" : document.getElementById("note").textContent`,
      );
      assert.match(note, /is a software renderer/, "the page says why it trains on the CPU");
      assert.match(note, /\?device=gpu forces WebGPU/);
      const device = await page.evaluate<string>(`document.getElementById("device").textContent`);
      const cores = await page.evaluate<number>("navigator.hardwareConcurrency");
      assert.equal(device, `CPU backend, ${cores} thread${cores === 1 ? "" : "s"}`);
    });
  },
});

Deno.test({
  name: "web page: without WebGPU or SharedArrayBuffer, the CPU backend trains, with a note",
  ignore: !chromiumAvailable,
  sanitizeResources: false,
  async fn() {
    await withBrowser(async (page, origin) => {
      await page.goto(`${origin}/?steps=${STEPS}&batch=16&lr=0.02`);
      const noAdapter = "(async () => !navigator.gpu || !(await navigator.gpu.requestAdapter()))()";
      assert.ok(await page.evaluate(noAdapter), "this Chromium has no WebGPU adapter");
      assert.equal(await page.evaluate("typeof SharedArrayBuffer"), "undefined");
      await checkTraining(page, "cpu", 300);
      const note = await page.evaluate<string>(
        `document.getElementById("note").hidden ? "" : document.getElementById("note").textContent`,
      );
      assert.match(note, /navigator\.gpu is missing/, "the page says why it trains on the CPU");
      const device = await page.evaluate(`document.getElementById("device").textContent`);
      assert.equal(device, "CPU backend, 1 thread", "no SharedArrayBuffer: one thread");
    }, { isolated: false, webgpu: false });
  },
});

Deno.test({
  name: "web page: cross-origin isolated, the CPU backend trains on every core",
  ignore: !chromiumAvailable,
  sanitizeResources: false,
  async fn() {
    await withBrowser(async (page, origin) => {
      await page.goto(`${origin}/?steps=${STEPS}&batch=16&lr=0.02&device=cpu`);
      await checkTraining(page, "cpu", 300);
      const device = await page.evaluate<string>(`document.getElementById("device").textContent`);
      const cores = await page.evaluate<number>("navigator.hardwareConcurrency");
      assert.equal(device, `CPU backend, ${cores} thread${cores === 1 ? "" : "s"}`);
    }, { webgpu: false });
  },
});

/** A blank page is one colour; the trained page has curves, filters and text. */
function assertNotBlank(image: ImageCHW<Uint8Array>): void {
  const plane = image.width * image.height;
  const colours = new Set<number>();
  for (let i = 0; i < plane; i += 7) {
    colours.add((image.data[i] << 16) | (image.data[plane + i] << 8) | image.data[2 * plane + i]);
  }
  assert.ok(colours.size > 50, `the screenshot looks blank: ${colours.size} colours`);
}
