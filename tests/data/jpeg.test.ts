/**
 * `data/jpeg.ts` against PIL (libjpeg-turbo): the fixtures of `tools/jpeg_fixtures.py` are
 * small JPEGs of every supported kind and the RGB pixels PIL decoded from them; the decoder
 * must give the same bytes, including files cut short: at a restart marker (libjpeg pads with
 * zero bits) and progressive files cut after some of their scans (libjpeg smooths the blocks). Refused kinds must be refused naming the feature, malformed files must fail with
 * a JpegError naming the file, and mutated files must never crash or hang.
 */

import assert from "node:assert/strict";
import { decodePng } from "../../data/codecs.ts";
import { decodeJpeg, JpegError } from "../../data/jpeg.ts";
import { decodeImage } from "../../data/image_folder.ts";

const DIR = new URL("../fixtures/jpeg", import.meta.url).pathname;

interface Cases {
  decoded: { name: string; what: string }[];
  refused: { name: string; error: string }[];
}

const cases: Cases = JSON.parse(await Deno.readTextFile(`${DIR}/cases.json`));
const jpeg = (name: string) => Deno.readFileSync(`${DIR}/${name}.jpg`);

Deno.test("jpeg: every fixture decodes to PIL's pixels, bit for bit", async () => {
  assert.ok(cases.decoded.length >= 80, "the fixture list is complete");
  for (const { name, what } of cases.decoded) {
    const mine = decodeJpeg(jpeg(name), name);
    const pil = await decodePng(await Deno.readFile(`${DIR}/${name}.png`));
    assert.deepEqual([mine.channels, mine.height, mine.width], [3, pil.height, pil.width], name);
    let differing = 0;
    for (let i = 0; i < pil.data.length; i++) if (mine.data[i] !== pil.data[i]) differing++;
    assert.equal(differing, 0, `${name} (${what}): ${differing} bytes differ from PIL`);
  }
});

Deno.test("jpeg: unsupported kinds are refused, naming the file and the feature", () => {
  for (const { name, error } of cases.refused) {
    assert.throws(
      () => decodeJpeg(jpeg(name), `${name}.jpg`),
      (e: Error) =>
        e instanceof JpegError && e.message.startsWith(`${name}.jpg: `) &&
        e.message.includes(error),
      name,
    );
  }
});

/** A copy of `bytes` with the frame header's height and width replaced. */
function withSize(bytes: Uint8Array, width: number, height: number): Uint8Array {
  const out = bytes.slice();
  let sof = 2;
  while (!(out[sof] === 0xff && out[sof + 1] >= 0xc0 && out[sof + 1] <= 0xc2)) sof++;
  out.set([height >> 8, height & 255, width >> 8, width & 255], sof + 5);
  return out;
}

/** A progressive file whose second scan (its last) stops halfway and ends with EOI. */
function cutInLastScan(): Uint8Array {
  const bytes = jpeg("smoothed_progressive_420_64x48_2_scans");
  const lastScan = bytes.findLastIndex((b, i) => b === 0xff && bytes[i + 1] === 0xda);
  const middle = lastScan + Math.floor((bytes.length - lastScan) / 2);
  return Uint8Array.of(...bytes.subarray(0, middle), 0xff, 0xd9);
}

Deno.test("jpeg: malformed files fail with a JpegError naming the file", () => {
  const good = jpeg("pil_420_64x48");
  const cases: [string, Uint8Array, RegExp][] = [
    ["empty", new Uint8Array(0), /no start-of-image/],
    ["not a JPEG", new TextEncoder().encode("hello, world"), /no start-of-image/],
    ["only SOI", good.subarray(0, 2), /no start-of-image/],
    ["cut in the headers", good.subarray(0, 300), /truncated|bad length/],
    ["cut in the scan", good.subarray(0, good.length - 200), /truncated/],
    ["no EOI", good.subarray(0, good.length - 2), /truncated/],
    ["65535 x 65535", withSize(good, 65535, 65535), /more than 268435456 pixels/],
    // Within the pixel cap but far more blocks than the data could code: refused before any
    // coefficient memory is allocated.
    ["16000 x 16000", withSize(good, 16000, 16000), /truncated: 16000x16000 needs \d+ blocks/],
    ["height 0", withSize(good, 64, 0), /height 0/],
    ["progressive cut inside its last scan", cutInLastScan(), /cut short inside its last scan/],
  ];
  for (const [what, bytes, pattern] of cases) {
    assert.throws(
      () => decodeJpeg(bytes, "bad.jpg"),
      (e: Error) =>
        e instanceof JpegError && /^bad\.jpg: cannot decode JPEG: /.test(e.message) &&
        pattern.test(e.message),
      what,
    );
  }
});

/** mulberry32: a small seeded generator, so the fuzz cases are the same on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** One random mutation: flipped bits, overwritten or inserted or removed bytes, a cut. */
function mutate(bytes: Uint8Array, next: () => number): Uint8Array {
  const at = Math.floor(next() * bytes.length);
  const out = bytes.slice();
  switch (Math.floor(next() * 5)) {
    case 0:
      for (let i = 0; i < 1 + Math.floor(next() * 4); i++) {
        out[Math.floor(next() * out.length)] ^= 1 << Math.floor(next() * 8);
      }
      return out;
    case 1:
      out[at] = [0x00, 0xff, 0x7f, 0x80, 0xd9, 0xda][Math.floor(next() * 6)];
      return out;
    case 2:
      return Uint8Array.of(
        ...bytes.subarray(0, at),
        Math.floor(next() * 256),
        ...bytes.subarray(at),
      );
    case 3:
      return Uint8Array.of(...bytes.subarray(0, at), ...bytes.subarray(at + 1));
    default:
      return bytes.subarray(0, at);
  }
}

Deno.test("jpeg: 3,000 mutated fixtures decode or fail with a JpegError, never crash", () => {
  const sources = [
    "pil_420_17x9",
    "pil_444_33x65",
    "pil_gray_17x9",
    "pil_progressive_420_33x65",
    "pil_progressive_gray_17x9",
    "cjpeg_restart_blocks",
    "jpegtran_progressive_restart_blocks",
    "jpegtran_scans",
    "smoothed_progressive_420_33x65_2_scans",
    "smoothed_jpegtran_scans_3_scans",
  ];
  const next = random(20);
  const outcomes = { decoded: 0, refused: 0 };
  for (const source of sources) {
    const original = jpeg(source);
    for (let i = 0; i < 300; i++) {
      let bytes = mutate(original, next);
      if (next() < 0.3) bytes = mutate(bytes, next);
      try {
        const image = decodeJpeg(bytes, "fuzz.jpg");
        assert.equal(image.data.length, 3 * image.width * image.height);
        outcomes.decoded++;
      } catch (error) {
        if (!(error instanceof JpegError)) {
          throw new Error(`${source} mutation ${i}: ${(error as Error).stack}`);
        }
        assert.match(error.message, /^fuzz\.jpg: cannot decode JPEG: /);
        outcomes.refused++;
      }
    }
  }
  assert.equal(outcomes.decoded + outcomes.refused, 3000);
  // Both outcomes occur: the mutations reach the entropy-coded data, not only the headers.
  assert.ok(outcomes.decoded > 100 && outcomes.refused > 100, JSON.stringify(outcomes));
});

Deno.test("decodeImage: a CMYK JPEG, refused by the exact decoder, decodes through imagescript", async () => {
  const name = "refused_cmyk";
  assert.throws(() => decodeJpeg(jpeg(name), name), /4-component/);
  const image = await decodeImage(jpeg(name), name);
  const pil = await decodePng(await Deno.readFile(`${DIR}/${name}.png`));
  assert.deepEqual([image.channels, image.height, image.width], [3, pil.height, pil.width]);
  let worst = 0;
  for (let i = 0; i < pil.data.length; i++) {
    worst = Math.max(worst, Math.abs(image.data[i] - pil.data[i]));
  }
  assert.ok(worst <= 3, `CMYK through imagescript differs from PIL by ${worst}/255`);
});
