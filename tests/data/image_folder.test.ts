import assert from "node:assert/strict";
import { encodePng } from "../../data/codecs.ts";
import { applyOrientation, exifOrientation } from "../../data/exif.ts";
import { decodeImage, imageProblem, loadImageFolder, preprocess } from "../../data/image_folder.ts";

// JPEG fixtures made once with imagescript's `Image#encodeJPEG`, whose native encoder needs
// --allow-ffi; the tests decode them with the WebAssembly decoder, which needs only --allow-read.
// A 64x48 JPEG of solid RGB (0, 128, 255), quality 95.
const SOLID_JPEG_64X48 = decodeBase64(
  "/9j/4AAQSkZJRgABAgAAAQABAAD/wAARCAAwAEADAREAAhEBAxEB/9sAQwACAQEBAQECAQEBAgICAgIEAwICAgIFBA" +
    "QDBAYFBgYGBQYGBgcJCAYHCQcGBggLCAkKCgoKCgYICwwLCgwJCgoK/9sAQwECAgICAgIFAwMFCgcGBwoKCgoKCgoK" +
    "CgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoK/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAw" +
    "QFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkK" +
    "FhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmq" +
    "KjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEB" +
    "AQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRob" +
    "HBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOE" +
    "hYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+P" +
    "n6/9oADAMBAAIRAxEAPwDx+v8AVQ/zTCgAoAKACgAoAKACgAoAKACgAoAKACgAoAKACgAoAKACgAoAKACgAoAKACgA" +
    "oAKACgAoAKACgAoAKACgAoAKACgAoAKACgAoAKACgAoAKACgAoA//9k=",
);
// A 32x32 JPEG of hash noise, quality 90: truncating it cuts into entropy-coded data.
const NOISY_JPEG_32X32 = decodeBase64(
  "/9j/4AAQSkZJRgABAgAAAQABAAD/wAARCAAgACADAREAAhEBAxEB/9sAQwADAgIDAgIDAwMDBAMDBAUIBQUEBAUKBw" +
    "cGCAwKDAwLCgsLDQ4SEA0OEQ4LCxAWEBETFBUVFQwPFxgWFBgSFBUU/9sAQwEDBAQFBAUJBQUJFA0LDRQUFBQUFBQU" +
    "FBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAw" +
    "QFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkK" +
    "FhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmq" +
    "KjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEB" +
    "AQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRob" +
    "HBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOE" +
    "hYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+P" +
    "n6/9oADAMBAAIRAxEAPwCCBdPgiEMTar4TuryMrLtz5cbfOyRiRedu+6BViFAZWc7CqE9GJw9XC1F9ewka8KMt4v3n" +
    "CnJK/JLRy5MBaS5/e9pZaJxeOGqPD04YD6zGVOEow5akVpGChRqSvJShCDp0MdJpT+GWvvzSV43N7qsMk+nT6PrqzQ" +
    "vJaWzoE8qOMO+TGMOMKtqGDYKpjIV5d9eTh6WEwTpYSrXq4fkapSUruNvcpS1fNSUWoY2UZK1m5S00i9KlH67TaxuD" +
    "s5y5ZTpydlOpy06kbv2ibjWx2Ia5WtaXI7qLtnajZabpssr3OiahYw2Lh4fs4ExlkRwxJThB/wAeUZwc/O6KfljL13" +
    "UIZlmNGCm6Vf2qcJSXuvmmowb5ldXjPHVuaKjHSnZcsm06o43mXtcsxsqUpycoxmmo3qqdSDtH2kX+8xmFjLmVr0+b" +
    "3lFWtafdNZPcJ/wkNpqsEBzeJqztjJTy2KytgZURXT5GQfnlcOCGrGNWMqUK9GFTC1W+aEYpyjzz5qsfdinGS9pXwc" +
    "HzxjeUYRSSg7bVqeIa9tRw0K1OnJuLpcvM4wc61OH7u8UpU8Ng4xbg5ck7JuUlaJby5v8Azv7N8Rul5eQ+f9n1GMOb" +
    "YfMyLg5jV909qoVc5ZUiG5UZBMaeFy3loYvDzpQhPlm6bfJJQtTlN8rU5J0sLibrlbUar39o5GywmNxV8PiaVLEO8V" +
    "Nxtze/7OjUdqbjKznWxzvJe7OMpe7y2bL+C4dJNS/4Ru11CABZ7CfTJtuQrSFX8zkEEW8QDKOrO4yAsdejhJYnMk8K" +
    "sTGc5PlqKcLSi5OFKouRcll7TE4prmTTlCMV7sW35Evq1Wd7VcNXk9LWk4yqxbX/AD7lGVOpmMe75afSTLGmz2GlrB" +
    "bWniCWwSFzYxWerhxDEmVUsC+EVCkVxtORsV2/1byAHzsXT+tSliqmBlCrNqcZUmnJSmpSi7rllzQqY2ktE+b2blqo" +
    "qJ0SxtRRr4jDuniI3dSPNdScm516aV3CrK9svpuOsdYUkrrSeXS7u+to/t+k2msWyqbeW5tcCSWfMaSFuigq88xKKB" +
    "yscfyYZiLHU6EpVcuxySjJzjCqrJxftKtOK50qjjKNPBxjaWiaS1lyBiYZdl1aSrYepS9lZpJqXu0pX2lytc1PLrxk" +
    "5S1q3d0lILX7Zqll9sNnp/iDTQ32kyQxtDN5bRtLFE27/VkpFBgsu4IzMwdmDCn7OjOWEePlTn7qn7V3V04UaslKa1" +
    "1ljXLklZyUp3ikpGOIwbrTlQzPDujUrJpOGsVOpGMG+Vt8y9tmFS7U0kqcYxu070/s+n6ddxu66joV188Ty7S8cMCb" +
    "Qcnk/NHZDKKDkPHGN43Y1xNHH46lKOJwtOr7SzXK3H3qsVfR81+WpmEnFuUbKm27Sakd/wBer4uEquXY3mc488IVVq" +
    "pfvKtOK51KmpRnXwUYtS1cUlpHlJ7UahdJaQx6jZa5FIosYba7x50zgrGz7jl3bKXhDZIZhI3zpGAMquZUoOrXoTq0" +
    "JP3o80eZJO9WmkvfhBJ1MDCS0aUYw0jdsxcVhYzxksDGVKC9pGVJtRcabnOPvLnhyzp4LDqyS5faXVnJRM828cEsUl" +
    "zpF3pF0saStf6TKyAXJVQGRVJKgG7k53EhEyNxk2j05V3JVJ0VSxNKm7JJr4YNzSlL3k3OlgqNrRScqvP8CjfijTwG" +
    "CU8NDEzp0otKUZxfLKFNwpzT5G+Z+zwWI0cEpRqcmjck7N7pqWE4XUvDk1u8bOZ7jTZMMEjd2QBf4nBtYhyVBdifkE" +
    "YznQq4jMo+xVWnXbik1pzc1VRpylK14xSqYzEXiobUlTWvMzOnWoYqMquBr1MPUrwuk78qnUUpxjzwalb2mPo8r5Pd" +
    "dNyfSQsOsyS5gj8TOst0xWSLWIt5UR7lZzIRlEZIbpiWZeHLsFkdDXDLD4eV60MPOhOcW7020uafNUhBODTk41cVhl" +
    "F8lueDtaFM7JKvK+JwMKWIjGDnTjFJNRjzVYfu4uE21GlgINNN8rjFfE2Ouo5tShuZ7jw5a3nn7oVn0mfaEJAjnQqc" +
    "nIa4kypbgII25LPXTCvUi1PAYuNRKPPCFSKvyw56tOVo8kleGHwqfMvhnzq0pq/JbDZJiPejVoqiraWlKUYOz/59pK" +
    "pRy+XdSda3wR1SKa2RlOm6tqGnOJ2NpY3sW8yzylnDFBuDHzbqHO/IZ0ydyQ7hx4rC0cPKSzDA3jTSvKDTdqLimteT" +
    "lTp4Co1Z3XtFD3XJt+th6OMxXssJXq0sRzL2U+ZpT09nRn70uSq5K+PlGSbuud6/Cf/Z",
);

function decodeBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** A solid-colour PNG of `width` x `height` (pure-JS encoder). */
function solidPng(width: number, height: number, rgb: [number, number, number]): Uint8Array {
  const plane = width * height;
  const data = new Uint8Array(3 * plane);
  rgb.forEach((v, c) => data.fill(v, c * plane, (c + 1) * plane));
  return encodePng({ data, channels: 3, height, width });
}

/** A noisy PNG, so that truncating the file cuts into compressed pixel data. */
function noisyPng(width: number, height: number): Uint8Array {
  const data = Uint8Array.from(
    { length: 3 * width * height },
    (_, i) => Math.imul(i, 2654435761) >>> 24,
  );
  return encodePng({ data, channels: 3, height, width });
}

async function withTemp(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Two classes of solid PNGs (red-ish and blue-ish) plus a JPEG, a text file and a hidden file. */
async function makeFolder(root: string) {
  await Deno.mkdir(`${root}/images/cat`, { recursive: true });
  await Deno.mkdir(`${root}/images/dog/nested`, { recursive: true });
  await Deno.writeFile(`${root}/images/cat/a.png`, solidPng(40, 30, [200, 10, 20]));
  await Deno.writeFile(`${root}/images/cat/b.PNG`, solidPng(30, 50, [100, 30, 60]));
  await Deno.writeFile(`${root}/images/dog/c.jpg`, SOLID_JPEG_64X48);
  await Deno.writeFile(
    `${root}/images/dog/nested/d.png`,
    solidPng(20, 20, [10, 240, 250]),
  );
  await Deno.writeTextFile(`${root}/images/dog/notes.txt`, "not an image");
  await Deno.writeTextFile(`${root}/images/dog/.DS_Store`, "hidden");
  return `${root}/images`;
}

Deno.test("image folder: preprocesses, writes a shard with statistics, then reads it back", async () => {
  await withTemp(async (tmp) => {
    const root = await makeFolder(tmp);
    const shardDir = `${tmp}/shard`;
    const built = await loadImageFolder(root, { size: 16, shardDir });
    assert.equal(built.fromCache, false);
    assert.equal(built.decoded, 4);
    assert.deepEqual(built.classNames, ["cat", "dog"]);
    assert.deepEqual(built.files, ["cat/a.png", "cat/b.PNG", "dog/c.jpg", "dog/nested/d.png"]);
    assert.deepEqual(Array.from(built.labels), [0, 0, 1, 1]);
    assert.deepEqual(built.shape, [4, 3, 16, 16]);
    assert.equal(built.ignored, 1, "notes.txt ignored; hidden files not counted");
    // Solid PNGs survive resize and crop exactly; NCHW: channel planes of 256 bytes each.
    assert.deepEqual([built.images[0], built.images[256], built.images[512]], [200, 10, 20]);
    const dog = built.images.subarray(2 * 768);
    assert.ok(
      Math.abs(dog[0] - 0) <= 3 && Math.abs(dog[256] - 128) <= 3 && Math.abs(dog[512] - 255) <= 3,
    );
    // Mean image: the average of the four solid colours (JPEG within a few levels).
    const { meanImage, rgbMean, rgbCovariance, eigen } = built.stats;
    assert.ok(Math.abs(meanImage[0] - (200 + 100 + 0 + 10) / 4) < 1.5);
    assert.ok(Math.abs(rgbMean[0] - (200 + 100 + 0 + 10) / 4 / 255) < 0.01);
    // Equal pixel counts per image, so the covariance is that of the four colours.
    const redVariance = [200, 100, 0, 10].reduce((s, r) => s + (r / 255 - rgbMean[0]) ** 2, 0) / 4;
    assert.ok(Math.abs(rgbCovariance[0][0] - redVariance) < 0.005);
    const trace = rgbCovariance[0][0] + rgbCovariance[1][1] + rgbCovariance[2][2];
    assert.ok(Math.abs(eigen.values.reduce((a, b) => a + b) - trace) < 1e-12);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(shardDir))).map((e) => e.name).sort(), [
      "images.u8",
      "index.json",
      "mean.f32",
    ]);

    const cached = await loadImageFolder(root, { size: 16, shardDir });
    assert.equal(cached.fromCache, true);
    assert.equal(cached.decoded, 0);
    assert.deepEqual(cached.images, built.images);
    assert.deepEqual(cached.stats, built.stats);
    assert.deepEqual(cached.files, built.files);

    const otherSize = await loadImageFolder(root, { size: 8, shardDir });
    assert.equal(otherSize.fromCache, false, "a different size rebuilds");
    await Deno.writeFile(`${root}/cat/e.png`, solidPng(10, 10, [1, 2, 3]));
    const grown = await loadImageFolder(root, { size: 8, shardDir });
    assert.equal(grown.fromCache, false, "a new file rebuilds");
    assert.equal(grown.shape[0], 5);
    assert.equal((await loadImageFolder(root, { size: 8, shardDir })).fromCache, true);
  });
});

const breakages: [string, (bytes: Uint8Array) => Uint8Array, string, RegExp][] = [
  ["a truncated JPEG", (b) => b.subarray(0, b.length >> 1), "bad.jpg", /bad\.jpg: cannot decode/],
  ["a truncated PNG", (b) => b.subarray(0, b.length >> 1), "bad.png", /bad\.png: truncated PNG/],
  [
    "text named .jpg",
    () => new TextEncoder().encode("hello"),
    "fake.jpg",
    /fake\.jpg: not a JPEG or PNG \(starts with 68 65 6c 6c/,
  ],
  [
    "empty file",
    () => new Uint8Array(0),
    "empty.png",
    /empty\.png: not a JPEG or PNG \(starts with nothing, 0 bytes\)/,
  ],
];

for (const [name, corrupt, file, message] of breakages) {
  Deno.test(`image folder: ${name} is an error naming it, or skipped with skipBad`, async () => {
    await withTemp(async (tmp) => {
      const root = await makeFolder(tmp);
      const source = file.endsWith(".png") ? noisyPng(64, 64) : NOISY_JPEG_32X32;
      await Deno.writeFile(`${root}/dog/${file}`, corrupt(source));
      await assert.rejects(loadImageFolder(root, { size: 8, shardDir: `${tmp}/s1` }), message);
      const skipped = await loadImageFolder(root, {
        size: 8,
        shardDir: `${tmp}/s2`,
        skipBad: true,
      });
      assert.equal(skipped.skipped.length, 1);
      assert.equal(skipped.skipped[0].file, `dog/${file}`);
      assert.equal(skipped.shape[0], 4);
      const again = await loadImageFolder(root, { size: 8, shardDir: `${tmp}/s2`, skipBad: true });
      assert.equal(again.fromCache, true);
      assert.equal(again.skipped.length, 1, "the cache remembers what was skipped");
    });
  });
}

const layoutErrors: [string, (root: string) => Promise<void>, RegExp][] = [
  [
    "an empty class folder",
    (root) => Deno.mkdir(`${root}/bird`),
    /class folder .*\/images\/bird has no images/,
  ],
  ["a class with only text files", async (root) => {
    await Deno.mkdir(`${root}/fish`);
    await Deno.writeTextFile(`${root}/fish/readme.md`, "#");
  }, /class folder .*\/images\/fish has no images/],
];
for (const [name, breakIt, message] of layoutErrors) {
  Deno.test(`image folder: ${name} is an error naming the folder`, async () => {
    await withTemp(async (tmp) => {
      const root = await makeFolder(tmp);
      await breakIt(root);
      await assert.rejects(loadImageFolder(root, { size: 8, shardDir: `${tmp}/s` }), message);
    });
  });
}

Deno.test("image folder: no class folders, a missing root, or nothing decodable", async () => {
  await withTemp(async (tmp) => {
    await assert.rejects(loadImageFolder(tmp, { shardDir: `${tmp}/s` }), /has no class folders/);
    await assert.rejects(loadImageFolder(`${tmp}/missing`), /cannot read root folder .*missing/);
    await Deno.mkdir(`${tmp}/only/x`, { recursive: true });
    await Deno.writeFile(`${tmp}/only/x/a.png`, Uint8Array.of(1, 2, 3));
    await assert.rejects(
      loadImageFolder(`${tmp}/only`, { shardDir: `${tmp}/s`, skipBad: true }),
      /no decodable images under .*only \(1 skipped\)/,
    );
  });
});

Deno.test("image folder: the paper's 256 preprocessing of a 320x480 image", async () => {
  const image = await decodeImage(solidPng(480, 320, [50, 100, 150]), "x.png");
  assert.deepEqual([image.channels, image.height, image.width], [3, 320, 480]);
  const out = preprocess(image, 256);
  assert.deepEqual([out.height, out.width, out.data.length], [256, 256, 3 * 256 * 256]);
  assert.ok(out.data.subarray(256 * 256, 2 * 256 * 256).every((v) => v === 100));
  assert.equal(imageProblem(solidPng(4, 4, [0, 0, 0])), undefined);
  const jpeg = await decodeImage(SOLID_JPEG_64X48, "solid.jpg");
  assert.deepEqual([jpeg.height, jpeg.width], [48, 64]);
  assert.ok(Math.abs(jpeg.data[48 * 64] - 128) <= 3);
});

// ---------------------------------------------------------------------------------------------
// EXIF orientation

/** A TIFF block whose first IFD holds Orientation = `value` (SHORT), in either byte order. */
function tiffWithOrientation(value: number, little = true): Uint8Array {
  const bytes = new Uint8Array(8 + 2 + 12 + 4);
  const view = new DataView(bytes.buffer);
  bytes[0] = bytes[1] = little ? 0x49 : 0x4d; // "II" or "MM"
  view.setUint16(2, 42, little);
  view.setUint32(4, 8, little); // IFD0 right after the header
  view.setUint16(8, 1, little); // one entry
  view.setUint16(10, 0x0112, little); // Orientation
  view.setUint16(12, 3, little); // SHORT
  view.setUint32(14, 1, little); // one value
  view.setUint16(18, value, little);
  view.setUint32(22, 0, little); // no next IFD
  return bytes;
}

/** The JPEG with an APP1 "Exif" segment inserted right after its start-of-image marker. */
function jpegWithOrientation(jpeg: Uint8Array, value: number, little = true): Uint8Array {
  const tiff = tiffWithOrientation(value, little);
  const exif = [0x45, 0x78, 0x69, 0x66, 0, 0];
  const length = 2 + exif.length + tiff.length;
  return Uint8Array.from([
    0xff,
    0xd8,
    0xff,
    0xe1,
    length >> 8,
    length & 0xff,
    ...exif,
    ...tiff,
    ...jpeg.subarray(2),
  ]);
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** The PNG with an eXIf chunk inserted after its IHDR chunk (8-byte signature + 25 bytes). */
function pngWithOrientation(png: Uint8Array, value: number): Uint8Array {
  const data = tiffWithOrientation(value);
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  chunk.set(new TextEncoder().encode("eXIf"), 4);
  chunk.set(data, 8);
  view.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
  return Uint8Array.from([...png.subarray(0, 33), ...chunk, ...png.subarray(33)]);
}

// A stored 3x2 image whose red values name the pixels:   10 20 30
//                                                        40 50 60
// and, for each orientation, the red values as displayed (rows), as Pillow's exif_transpose
// shows them.
const DISPLAYED: Record<number, number[][]> = {
  1: [[10, 20, 30], [40, 50, 60]],
  2: [[30, 20, 10], [60, 50, 40]], // mirror left-right
  3: [[60, 50, 40], [30, 20, 10]], // rotate 180
  4: [[40, 50, 60], [10, 20, 30]], // mirror top-bottom
  5: [[10, 40], [20, 50], [30, 60]], // transpose
  6: [[40, 10], [50, 20], [60, 30]], // rotate 90 clockwise
  7: [[60, 30], [50, 20], [40, 10]], // transverse
  8: [[30, 60], [20, 50], [10, 40]], // rotate 90 counter-clockwise
};

function patternPng(): Uint8Array {
  const red = [10, 20, 30, 40, 50, 60];
  const data = new Uint8Array(18);
  red.forEach((r, i) => {
    data[i] = r;
    data[6 + i] = i; // green: the stored index
    data[12 + i] = 200;
  });
  return encodePng({ data, channels: 3, height: 2, width: 3 });
}

Deno.test("EXIF: all 8 orientations of a PNG (eXIf chunk) decode upright, pixel by pixel", async () => {
  for (const [value, rows] of Object.entries(DISPLAYED)) {
    const file = pngWithOrientation(patternPng(), Number(value));
    assert.equal(exifOrientation(file), Number(value));
    const image = await decodeImage(file, `o${value}.png`);
    assert.deepEqual([image.height, image.width], [rows.length, rows[0].length], `o${value}`);
    const plane = image.height * image.width;
    assert.deepEqual(Array.from(image.data.subarray(0, plane)), rows.flat(), `o${value} red`);
    assert.ok(image.data.subarray(2 * plane).every((b) => b === 200), `o${value} blue`);
  }
});

Deno.test("EXIF: all 8 orientations of a JPEG (APP1 segment, both byte orders)", async () => {
  const stored = await decodeImage(NOISY_JPEG_32X32, "noise.jpg");
  for (let value = 1; value <= 8; value++) {
    for (const little of [true, false]) {
      const file = jpegWithOrientation(NOISY_JPEG_32X32, value, little);
      assert.equal(exifOrientation(file), value);
      const image = await decodeImage(file, "rotated.jpg");
      assert.deepEqual(image, applyOrientation(stored, value), `orientation ${value}`);
    }
    // A non-square photo: 5 to 8 swap height and width.
    const solid = await decodeImage(jpegWithOrientation(SOLID_JPEG_64X48, value), "solid.jpg");
    assert.deepEqual([solid.height, solid.width], value >= 5 ? [64, 48] : [48, 64]);
  }
  // The transform itself, on the stored noise: orientation 6 puts the bottom-left pixel
  // top-left and the top-left pixel top-right.
  const six = applyOrientation(stored, 6);
  assert.equal(six.data[0], stored.data[31 * 32]);
  assert.equal(six.data[31], stored.data[0]);
});

Deno.test("EXIF: missing, truncated or malformed blocks read as orientation 1, never throw", () => {
  assert.equal(exifOrientation(SOLID_JPEG_64X48), 1);
  assert.equal(exifOrientation(patternPng()), 1);
  assert.equal(exifOrientation(jpegWithOrientation(SOLID_JPEG_64X48, 9)), 1, "out of range");
  assert.equal(exifOrientation(jpegWithOrientation(SOLID_JPEG_64X48, 0)), 1, "out of range");
  const good = jpegWithOrientation(SOLID_JPEG_64X48, 6);
  let state = 12345;
  const random = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 2000; i++) {
    const bytes = good.slice(0, 2 + Math.floor(random() * 60));
    for (let k = 0; k < 3; k++) {
      bytes[2 + Math.floor(random() * (bytes.length - 2))] = random() * 256;
    }
    const value = exifOrientation(bytes);
    assert.ok(Number.isInteger(value) && value >= 1 && value <= 8, `iteration ${i}: ${value}`);
  }
  assert.throws(() => applyOrientation(decodeSync(), 9), /orientation must be 1\.\.8, got 9/);
});

function decodeSync() {
  return { data: new Uint8Array(3), channels: 3, height: 1, width: 1 };
}

Deno.test("image folder: an Orientation 6 photo is turned upright before resize and crop", async () => {
  await withTemp(async (tmp) => {
    // Stored 8 wide x 4 tall, left half red, right half blue; displayed upright it is 4 wide x
    // 8 tall with red on top.
    const plane = 32;
    const data = new Uint8Array(3 * plane);
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 8; x++) {
        data[(x < 4 ? 0 : 2) * plane + y * 8 + x] = 255;
      }
    }
    await Deno.mkdir(`${tmp}/root/a`, { recursive: true });
    await Deno.writeFile(
      `${tmp}/root/a/phone.png`,
      pngWithOrientation(encodePng({ data, channels: 3, height: 4, width: 8 }), 6),
    );
    const set = await loadImageFolder(`${tmp}/root`, { size: 4, shardDir: `${tmp}/s` });
    const red = Array.from(set.images.subarray(0, 16)), blue = Array.from(set.images.subarray(32));
    // The central 4x4 of the upright 4x8 image: two red rows over two blue rows.
    assert.deepEqual(red, [...Array(8).fill(255), ...Array(8).fill(0)]);
    assert.deepEqual(blue, [...Array(8).fill(0), ...Array(8).fill(255)]);
  });
});

// ---------------------------------------------------------------------------------------------
// Symbolic links, empty classes, cache debris

Deno.test("image folder: symlinked class folders, subfolders and files are followed; loops are not", async () => {
  await withTemp(async (tmp) => {
    const real = await makeFolder(tmp);
    await Deno.mkdir(`${tmp}/elsewhere/more`, { recursive: true });
    await Deno.writeFile(`${tmp}/elsewhere/more/m.png`, solidPng(8, 8, [1, 2, 3]));
    await Deno.writeFile(`${tmp}/elsewhere/single.png`, solidPng(8, 8, [4, 5, 6]));
    // A root made only of links, as a dataset assembled from several places is.
    const root = `${tmp}/links`;
    await Deno.mkdir(root);
    await Deno.symlink(`${real}/cat`, `${root}/cat`);
    await Deno.symlink(`${real}/dog`, `${root}/dog`);
    await Deno.mkdir(`${root}/fox`);
    await Deno.symlink(`${tmp}/elsewhere/single.png`, `${root}/fox/linked.png`);
    await Deno.symlink(`${tmp}/elsewhere/more`, `${root}/fox/more`);
    // Loops: a link to the class folder itself and one to the root.
    await Deno.symlink(`${root}/fox`, `${root}/fox/self`);
    await Deno.symlink(root, `${root}/fox/up`);
    const set = await loadImageFolder(root, { size: 8, shardDir: `${tmp}/s` });
    assert.deepEqual(set.classNames, ["cat", "dog", "fox"]);
    assert.deepEqual(set.files, [
      "cat/a.png",
      "cat/b.PNG",
      "dog/c.jpg",
      "dog/nested/d.png",
      "fox/linked.png",
      "fox/more/m.png",
    ]);
    assert.deepEqual(Array.from(set.labels), [0, 0, 1, 1, 2, 2]);
    const fox = set.images.subarray(4 * 192);
    assert.deepEqual([fox[0], fox[64], fox[128]], [4, 5, 6]);
  });
});

Deno.test("image folder: a broken link is an error naming it, or skipped with skipBad", async () => {
  await withTemp(async (tmp) => {
    const root = await makeFolder(tmp);
    await Deno.symlink(`${tmp}/nowhere.png`, `${root}/cat/gone.png`);
    await assert.rejects(
      loadImageFolder(root, { size: 8, shardDir: `${tmp}/s1` }),
      /images\/cat\/gone\.png: cannot read \(a symbolic link to nothing\)/,
    );
    const set = await loadImageFolder(root, { size: 8, shardDir: `${tmp}/s2`, skipBad: true });
    assert.deepEqual(set.skipped.map((s) => s.file), ["cat/gone.png"]);
    assert.equal(set.shape[0], 4);
  });
});

Deno.test("image folder: a class left empty by skipBad is an error naming it", async () => {
  await withTemp(async (tmp) => {
    const root = await makeFolder(tmp);
    await Deno.mkdir(`${root}/bird`);
    await Deno.writeFile(`${root}/bird/x.png`, Uint8Array.of(1, 2, 3));
    await Deno.writeFile(`${root}/bird/y.jpg`, new TextEncoder().encode("nope"));
    await assert.rejects(
      loadImageFolder(root, { size: 8, shardDir: `${tmp}/s`, skipBad: true }),
      /class "bird" under .*images has no decodable images: every file was skipped \(e\.g\. bird\/x\.png: not a JPEG or PNG/,
    );
    // The failed build left no shard folder behind.
    await assert.rejects(Deno.stat(`${tmp}/s`), Deno.errors.NotFound);
  });
});

Deno.test("image folder: a failed build leaves no shard folder; a failed rebuild no stale files", async () => {
  await withTemp(async (tmp) => {
    const root = await makeFolder(tmp);
    const shardDir = `${tmp}/cache/shard`;
    await Deno.writeFile(`${root}/dog/bad.png`, Uint8Array.of(1, 2, 3));
    await assert.rejects(loadImageFolder(root, { size: 8, shardDir }), /bad\.png: not a JPEG/);
    await assert.rejects(Deno.stat(shardDir), Deno.errors.NotFound);

    // A good shard, then a rebuild that fails: the stale shard files go, nothing else.
    await Deno.remove(`${root}/dog/bad.png`);
    await loadImageFolder(root, { size: 8, shardDir });
    await Deno.writeTextFile(`${shardDir}/notes.txt`, "mine");
    await Deno.writeFile(`${root}/dog/bad.png`, Uint8Array.of(1, 2, 3));
    await assert.rejects(loadImageFolder(root, { size: 8, shardDir }), /bad\.png: not a JPEG/);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(shardDir))).map((e) => e.name),
      ["notes.txt"],
    );
  });
});

Deno.test("image folder: an index.json of another shape means a rebuild, not a TypeError", async () => {
  await withTemp(async (tmp) => {
    const root = await makeFolder(tmp);
    const shardDir = `${tmp}/s`;
    await loadImageFolder(root, { size: 8, shardDir });
    for (const index of ["{}", "null", '{"format":"tessera-image-folder","version":2,"size":8}']) {
      await Deno.writeTextFile(`${shardDir}/index.json`, index);
      const set = await loadImageFolder(root, { size: 8, shardDir });
      assert.equal(set.fromCache, false, index);
      assert.equal(set.shape[0], 4);
    }
  });
});

Deno.test("image folder: a rebuild removes the pixel temp file a killed build left", async () => {
  await withTemp(async (tmp) => {
    const root = await makeFolder(tmp);
    const shardDir = `${tmp}/s`;
    await Deno.mkdir(shardDir);
    const leftover = `.images.u8.${crypto.randomUUID()}.tmp`;
    await Deno.writeFile(`${shardDir}/${leftover}`, new Uint8Array(1000));
    const past = new Date(Date.now() - 60_000);
    await Deno.utime(`${shardDir}/${leftover}`, past, past);
    await loadImageFolder(root, { size: 8, shardDir });
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(shardDir))).map((e) => e.name).sort(),
      ["images.u8", "index.json", "mean.f32"],
    );
  });
});
