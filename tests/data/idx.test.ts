import assert from "node:assert/strict";
import {
  encodeIdx,
  gzip,
  type IdxData,
  parseIdx,
  readIdxFile,
  writeIdxFile,
} from "../../data/idx.ts";

const roundTrips: [string, number[], IdxData][] = [
  ["uint8 images", [2, 3, 4], Uint8Array.from({ length: 24 }, (_, i) => i * 10)],
  ["uint8 labels", [5], Uint8Array.of(0, 9, 3, 255, 1)],
  ["int8", [4], Int8Array.of(-128, -1, 0, 127)],
  ["int16", [2, 2], Int16Array.of(-32768, -2, 300, 32767)],
  ["int32", [3], Int32Array.of(-2147483648, 65536, 2147483647)],
  ["float32", [2], Float32Array.of(1.5, -0.25)],
  ["float64", [2, 1], Float64Array.of(Math.PI, -1e300)],
];

for (const [name, dims, data] of roundTrips) {
  Deno.test(`idx: ${name} round trip, raw and gzipped`, async () => {
    const raw = encodeIdx(dims, data);
    for (const bytes of [raw, await gzip(raw)]) {
      const parsed = await parseIdx(bytes, "x");
      assert.deepEqual(parsed.dims, dims);
      assert.equal(parsed.data.constructor, data.constructor);
      assert.deepEqual(Array.from(parsed.data), Array.from(data));
    }
  });
}

Deno.test("idx: header is big-endian with the documented magic", () => {
  const bytes = encodeIdx([60000, 28, 28], new Uint8Array(47040000));
  assert.deepEqual(Array.from(bytes.subarray(0, 8)), [0, 0, 8, 3, 0, 0, 0xea, 0x60]);
});

const good = encodeIdx([3, 2, 2], new Uint8Array(12));
const corruptions: [string, () => Uint8Array | Promise<Uint8Array>, RegExp][] = [
  [
    "bad magic",
    () => Uint8Array.of(1, 2, 8, 3, ...good.subarray(4)),
    /f\.idx: bad IDX magic number: expected 00 00 <dtype> <ndim>, found 01 02 08 03/,
  ],
  [
    "unknown dtype",
    () => Uint8Array.of(0, 0, 0x42, 3, ...good.subarray(4)),
    /f\.idx: unknown IDX dtype byte 0x42/,
  ],
  ["zero dimensions", () => Uint8Array.of(0, 0, 8, 0), /declares 0 dimensions/],
  [
    "shorter than a header",
    () => Uint8Array.of(0, 0),
    /expected an IDX header of at least 4 bytes, found 2/,
  ],
  [
    "truncated dims",
    () => good.subarray(0, 10),
    /expected a 16-byte header for 3 dimensions, found 10 bytes/,
  ],
  [
    "truncated data",
    () => good.subarray(0, good.length - 5),
    /f\.idx: expected 12 bytes of pixel data for \[3, 2, 2\], found 7/,
  ],
  [
    "wrong dims",
    () => encodeIdx([4, 2, 2], new Uint8Array(16)).subarray(0, 16 + 12),
    /expected 16 bytes of pixel data for \[4, 2, 2\], found 12/,
  ],
  [
    "trailing bytes",
    () => Uint8Array.of(...good, 7),
    /expected 12 bytes of pixel data for \[3, 2, 2\], found 13/,
  ],
  [
    "labels truncated",
    () => encodeIdx([5], new Uint8Array(5)).subarray(0, 10),
    /expected 5 bytes of label data for \[5\], found 2/,
  ],
  [
    "bad gzip body",
    () => Uint8Array.of(0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    /f\.idx: not a valid gzip stream/,
  ],
  [
    "truncated gzip",
    async () => (await gzip(good)).subarray(0, 20),
    /f\.idx: not a valid gzip stream/,
  ],
];

for (const [name, make, message] of corruptions) {
  Deno.test(`idx: rejects ${name}`, async () => {
    await assert.rejects(parseIdx(await make(), "f.idx"), message);
  });
}

Deno.test("idx: the error for a short Fashion-MNIST file names the file and the sizes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/train-images-idx3-ubyte.gz`;
    const header = encodeIdx([60000, 28, 28], new Uint8Array(47040000)).subarray(0, 16 + 1200);
    await Deno.writeFile(path, await gzip(header));
    await assert.rejects(
      readIdxFile(path),
      new RegExp(
        `${path}: expected 47040000 bytes of pixel data for \\[60000, 28, 28\\], found 1200`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("idx: writeIdxFile gzips .gz paths and not others", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = Uint8Array.of(1, 2, 3, 4);
    await writeIdxFile(`${dir}/a.gz`, [2, 2], data);
    await writeIdxFile(`${dir}/a`, [2, 2], data);
    assert.deepEqual(Array.from((await Deno.readFile(`${dir}/a.gz`)).subarray(0, 2)), [0x1f, 0x8b]);
    assert.deepEqual(Array.from((await Deno.readFile(`${dir}/a`)).subarray(0, 4)), [0, 0, 8, 2]);
    assert.deepEqual(Array.from((await readIdxFile(`${dir}/a.gz`)).data), [1, 2, 3, 4]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("idx: encodeIdx rejects dims that disagree with the data", () => {
  assert.throws(
    () => encodeIdx([2, 3], new Uint8Array(5)),
    /dims \[2, 3\] hold 6 values, data has 5/,
  );
});
