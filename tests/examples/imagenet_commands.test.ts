/**
 * predict --weights, filters --weights and figure4, end to end: each command runs as a
 * subprocess with the permissions its deno.json task grants, on a generated weights file in
 * torchvision's AlexNet layout (random weights, small classifier; see imagenet_helpers.ts),
 * and its output is checked against the same network evaluated here directly.
 */

import assert from "node:assert/strict";
import { fromArray, noGrad, softmax } from "../../mod.ts";
import { decodeImage } from "../../data/mod.ts";
import { decodePng } from "../../data/codecs.ts";
import { IMAGENET_CLASSES, imagenetEval, imagenetTenCrop } from "../../data/imagenet.ts";
import { alexnetTorchvision } from "../../models/alexnet.ts";
import { filterGridPng } from "../../examples/alexnet/filters.ts";
import { nearestNeighbours } from "../../examples/alexnet/figure4.ts";
import { parsePredictArgs } from "../../examples/alexnet/predict.ts";
import {
  FIXTURE_PHOTOS,
  IMAGENET_FIXTURES,
  writeTestWeights,
} from "../support/imagenet_helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SEED = 11;

/** The `deno run` flags of a deno.json task, `$HOME` expanded, without the network. */
async function taskFlags(task: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const line: string = config.tasks[task];
  const flags = line.slice(line.indexOf("deno run") + "deno run".length).trim().split(/\s+/);
  return flags.filter((f) => f.startsWith("--allow") && !f.startsWith("--allow-net"))
    .map((f) => f.replaceAll("$HOME", Deno.env.get("HOME") ?? ""));
}

/** Runs `examples/alexnet/<script>` as its task would, in the repository root. */
async function runTask(task: string, script: string, args: string[]) {
  const output = await new Deno.Command("deno", {
    args: ["run", ...await taskFlags(task), `examples/alexnet/${script}`, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

async function withWeights(fn: (weights: string, dir: string) => Promise<void>) {
  // Under runs/ (ignored by git) so that the tasks' --allow-write=runs covers the outputs.
  await Deno.mkdir(`${ROOT}/runs`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${ROOT}/runs`, prefix: "imagenet-test-" });
  try {
    await writeTestWeights(`${dir}/alexnet.safetensors`, { seed: SEED });
    await fn(`${dir}/alexnet.safetensors`, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The same network, evaluated here: mean softmax over `views`. */
async function probabilitiesHere(views: { data: Float32Array }[]): Promise<Float64Array> {
  const model = alexnetTorchvision({ hidden: 64, seed: SEED, dropout: false, init: "he" });
  model.eval();
  const batch = new Float32Array(views.length * 3 * 224 * 224);
  views.forEach((v, i) => batch.set(v.data, i * v.data.length));
  using x = fromArray(batch, [views.length, 3, 224, 224]);
  using p = noGrad(() => softmax(model.forward(x)));
  const values = await p.data();
  const mean = new Float64Array(1000);
  for (let v = 0; v < views.length; v++) {
    for (let c = 0; c < 1000; c++) mean[c] += values[v * 1000 + c] / views.length;
  }
  for (const parameter of model.parameters()) parameter.dispose();
  return mean;
}

/** predict's printout: per file, its [percent, class name] lines. */
function parsePrintout(stdout: string): Map<string, [number, string][]> {
  const result = new Map<string, [number, string][]>();
  let file = "";
  for (const line of stdout.split("\n").filter(Boolean)) {
    const row = line.match(/^\s+([\d.]+)%\s+(.+)$/);
    if (row) result.get(file)!.push([Number(row[1]), row[2]]);
    else result.set(file = line.replace(/:$/, ""), []);
  }
  return result;
}

Deno.test("predict --weights: ImageNet top-5 of each photo, as the network computes it here", async () => {
  await withWeights(async (weights) => {
    const photos = FIXTURE_PHOTOS.slice(0, 2).map((n) => `${IMAGENET_FIXTURES}/${n}.jpg`);
    for (const crops of [1, 10] as const) {
      const run = await runTask("predict", "predict.ts", [
        "--weights",
        weights,
        "--crops",
        String(crops),
        ...photos,
      ]);
      assert.equal(run.code, 0, run.stderr);
      const printed = parsePrintout(run.stdout);
      for (const photo of photos) {
        const image = await decodeImage(await Deno.readFile(photo), photo);
        const views = crops === 10 ? imagenetTenCrop(image) : [imagenetEval(image)];
        const p = await probabilitiesHere(views);
        const order = [...p.keys()].sort((a, b) => p[b] - p[a]).slice(0, 5);
        const lines = printed.get(photo)!;
        assert.equal(lines.length, 5, `${photo}: ${run.stdout}`);
        lines.forEach(([percent, name], k) => {
          assert.equal(name, IMAGENET_CLASSES[order[k]], `${photo} crops ${crops} rank ${k}`);
          assert.ok(Math.abs(percent - 100 * p[order[k]]) <= 0.006, `${photo} rank ${k}`);
        });
      }
    }
  });
});

Deno.test("predict --weights: unreadable photos, wrong files and flags are named", async () => {
  await withWeights(async (weights, dir) => {
    const photo = `${IMAGENET_FIXTURES}/${FIXTURE_PHOTOS[0]}.jpg`;
    const missing = await runTask("predict", "predict.ts", [
      "--weights",
      weights,
      "nope.jpg",
      photo,
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope\.jpg: cannot read nope\.jpg/);
    assert.equal(parsePrintout(missing.stdout).get(photo)?.length, 5); // the others still run
    await Deno.writeFile(`${dir}/weights.bin`, new Uint8Array(8));
    const unknown = await runTask("predict", "predict.ts", [
      "--weights",
      `${dir}/weights.bin`,
      photo,
    ]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown file type; expected \.pth or \.pt .* or \.safetensors/);
  });
  assert.throws(() => parsePredictArgs(["--weights", "w.pth", "--run", "r", "x.jpg"]), /one of/);
  assert.throws(() => parsePredictArgs(["--weights", "w.pth", "--crops", "3", "x.jpg"]), /1 or 10/);
  assert.equal(parsePredictArgs(["--weights", "w.pth", "x.jpg"])?.options.crops, 1);
  assert.equal(parsePredictArgs(["x.jpg"])?.options.crops, 10);
});

Deno.test("predict --weights: a file that is not torchvision's AlexNet layout is refused", async () => {
  await withWeights(async (_, dir) => {
    const path = `${dir}/other.safetensors`;
    await writeTestWeights(path, { seed: 1 });
    // Drop one tensor: the strict load names what is missing.
    const { loadSafetensors, saveSafetensors } = await import("../../mod.ts");
    const { tensors } = await loadSafetensors(path);
    tensors.delete("features.3.bias");
    await saveSafetensors(path, tensors);
    const photo = `${IMAGENET_FIXTURES}/${FIXTURE_PHOTOS[0]}.jpg`;
    const run = await runTask("predict", "predict.ts", ["--weights", path, photo]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /features\.3\.bias/);
  });
});

Deno.test("filters --weights: conv1's 64 filters as Figure 3, a PNG of the file's weights", async () => {
  await withWeights(async (weights, dir) => {
    const out = `${dir}/conv1.png`;
    const run = await runTask("filters", "filters.ts", ["--weights", weights, "--out", out]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /64 filters 11x11x3/);
    const model = alexnetTorchvision({ hidden: 64, seed: SEED, dropout: false, init: "he" });
    const conv1 = model.namedParameters().get("features.0.weight")!;
    const expected = filterGridPng(conv1.dataSync() as Float32Array, [64, 3, 11, 11], {
      scale: 6,
    });
    const [got, want] = [await decodePng(await Deno.readFile(out)), await decodePng(expected)];
    assert.deepEqual([got.height, got.width], [2 + 4 * (66 + 2), 2 + 16 * (66 + 2)]);
    assert.deepEqual(got.data, want.data);
    for (const p of model.parameters()) p.dispose();
  });
});

Deno.test("figure4: top-5 and nearest-neighbour PNGs; a photo's nearest is its own copy", async () => {
  await withWeights(async (weights, dir) => {
    // The folder: the JPEGs and PIL's decodings of them (the same picture, other bytes).
    const folder = `${dir}/folder`;
    await Deno.mkdir(folder);
    for (const name of FIXTURE_PHOTOS) {
      await Deno.copyFile(`${IMAGENET_FIXTURES}/${name}.pil.png`, `${folder}/${name}.png`);
      await Deno.copyFile(`${IMAGENET_FIXTURES}/${name}.jpg`, `${folder}/${name}.jpg`);
    }
    const queries = FIXTURE_PHOTOS.slice(0, 3).map((n) => `${folder}/${n}.jpg`);
    const run = await runTask("figure4", "figure4.ts", [
      "--weights",
      weights,
      "--folder",
      folder,
      "--neighbours",
      "3",
      "--out",
      `${dir}/figure`,
      ...queries,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const top5 = await decodePng(await Deno.readFile(`${dir}/figure/figure4_top5.png`));
    const neighbours = await decodePng(await Deno.readFile(`${dir}/figure/figure4_neighbours.png`));
    assert.ok(top5.width > 3 * 144 && top5.height > 144, `${top5.width}x${top5.height}`);
    // Query column + 3 neighbours, 3 rows of 112-pixel thumbnails.
    assert.ok(neighbours.width > 4 * 112 && neighbours.height > 3 * 112);
  });
  // The neighbour search itself, on the figure's own function.
  const { figure4 } = await import("../../examples/alexnet/figure4.ts");
  await withWeights(async (weights, dir) => {
    const folder = `${dir}/folder`;
    await Deno.mkdir(folder);
    for (const name of FIXTURE_PHOTOS) {
      await Deno.copyFile(`${IMAGENET_FIXTURES}/${name}.pil.png`, `${folder}/${name}.png`);
      await Deno.copyFile(`${IMAGENET_FIXTURES}/${name}.jpg`, `${folder}/${name}.jpg`);
    }
    const photos = FIXTURE_PHOTOS.map((n) => `${folder}/${n}.jpg`);
    const result = await figure4({ weights, photos, folder, neighbours: 2 });
    photos.forEach((photo, q) => {
      const found = result.nearest[q].map((n) => result.folderFiles[n.index]);
      assert.ok(!found.includes(photo), `${photo} is not its own neighbour`);
      // The PNG of the same picture is nearer than any other photo.
      assert.equal(found[0], photo.replace(/\.jpg$/, ".png"), `${photo}: ${found}`);
    });
  });
});

Deno.test("figure4: nearestNeighbours ranks by Euclidean distance, skips excluded", () => {
  const v = (...x: number[]) => Float32Array.from(x);
  const database = [v(0, 0), v(3, 4), v(1, 0), v(0, 2)];
  const [first, second] = nearestNeighbours([v(0, 0), v(3, 3)], database, 2, [new Set([0])]);
  assert.deepEqual(first, [{ index: 2, distance: 1 }, { index: 3, distance: 2 }]);
  assert.deepEqual(second.map((n) => n.index), [1, 3]);
  assert.ok(Math.abs(second[0].distance - 1) < 1e-12);
  assert.throws(() => nearestNeighbours([v(1)], database, 1), /query 0 has 1 values/);
});
