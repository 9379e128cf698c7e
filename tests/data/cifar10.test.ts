import assert from "node:assert/strict";
import {
  CIFAR10_CLASSES,
  CIFAR10_FILES,
  loadCifar10,
  parseCifar10,
  readCifar10File,
} from "../../data/cifar10.ts";

/** n records; record i has label i % 10 and pixel j of channel c equal to (i + c * 7 + j) & 255. */
function records(n: number, first = 0): Uint8Array {
  const bytes = new Uint8Array(n * 3073);
  for (let i = 0; i < n; i++) {
    bytes[i * 3073] = (first + i) % 10;
    for (let c = 0; c < 3; c++) {
      for (let j = 0; j < 1024; j++) {
        bytes[i * 3073 + 1 + c * 1024 + j] = (first + i + c * 7 + j) & 255;
      }
    }
  }
  return bytes;
}

Deno.test("cifar10: records decode to [N, 3, 32, 32] CHW with labels", () => {
  const data = parseCifar10(records(3), "gen.bin");
  assert.deepEqual(data.shape, [3, 3, 32, 32]);
  assert.deepEqual(Array.from(data.labels), [0, 1, 2]);
  assert.equal(data.images[2 * 3072 + 1024 + 5], (2 + 7 + 5) & 255);
  assert.deepEqual(data.classNames, CIFAR10_CLASSES);
});

const corruptions: [string, Uint8Array, RegExp][] = [
  [
    "empty",
    new Uint8Array(0),
    /gen.bin: expected a whole number of 3073-byte records, found 0 bytes/,
  ],
  [
    "truncated",
    records(2).subarray(0, 5000),
    /found 5000 bytes \(1 records and 1927 bytes left over\)/,
  ],
  [
    "label 10",
    (() => {
      const b = records(2);
      b[3073] = 10;
      return b;
    })(),
    /gen.bin: record 1 \(byte 3073\) has label 10, expected 0-9/,
  ],
];
for (const [name, bytes, message] of corruptions) {
  Deno.test(`cifar10: rejects ${name}`, () =>
    assert.throws(() => parseCifar10(bytes, "gen.bin"), message));
}

Deno.test("cifar10: loadCifar10 concatenates the five training batches", async () => {
  const dir = await Deno.makeTempDir();
  try {
    CIFAR10_FILES.train.forEach((file, k) =>
      Deno.writeFileSync(`${dir}/${file}`, records(4, 4 * k))
    );
    await assert.rejects(loadCifar10(dir), /test_batch.bin not found/);
    Deno.writeFileSync(`${dir}/test_batch.bin`, records(5));
    const { train, test } = await loadCifar10(dir);
    assert.deepEqual(train.shape, [20, 3, 32, 32]);
    assert.deepEqual(Array.from(train.labels.subarray(0, 12)), [
      0,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
      0,
      1,
    ]);
    assert.equal(test.shape[0], 5);
    assert.equal((await readCifar10File(`${dir}/test_batch.bin`)).labels[4], 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
