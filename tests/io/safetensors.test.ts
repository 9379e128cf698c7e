import assert from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  MAX_HEADER_BYTES,
  saveSafetensors,
  type TensorEntry,
} from "../../io/safetensors.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** A file from a literal header string and raw data bytes, exactly as given (no padding). */
function rawFile(header: string, data: ArrayLike<number> = []): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

function f32Bits(...bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

function f64Bits(...bits: bigint[]): Float64Array {
  return new Float64Array(new BigUint64Array(bits).buffer);
}

function assertSameTensor(actual: TensorEntry | undefined, expected: TensorEntry, name: string) {
  assert.ok(actual, `tensor '${name}' missing after round trip`);
  assert.equal(actual.dtype, expected.dtype, name);
  assert.deepEqual(actual.shape, expected.shape, name);
  assert.equal(actual.data.constructor, expected.data.constructor, name);
  assert.deepEqual(bytesOf(actual.data), bytesOf(expected.data), `${name}: bits differ`);
}

// ---------------------------------------------------------------------------------------------
// Round trips

const roundTripCases: Record<string, TensorEntry> = {
  "f32 specials": {
    dtype: "F32",
    shape: [2, 4],
    // quiet NaN with payload, negative NaN, -0, +-Infinity, subnormal, max
    data: f32Bits(0x7fc00001, 0xffc12345, 0x80000000, 0x7f800000, 0xff800000, 1, 0x7f7fffff, 0),
  },
  "f64 specials": {
    dtype: "F64",
    shape: [5],
    data: f64Bits(
      0x7ff8000000000001n,
      0xfff0000000000000n,
      0x8000000000000000n,
      0x0000000000000001n,
      0x3fb999999999999an,
    ),
  },
  "i32 extremes": {
    dtype: "I32",
    shape: [3, 1],
    data: new Int32Array([-(2 ** 31), 2 ** 31 - 1, -1]),
  },
  "u8 bytes": { dtype: "U8", shape: [3], data: new Uint8Array([0, 127, 255]) },
  "empty f32": { dtype: "F32", shape: [0], data: new Float32Array(0) },
  "empty u8 2d": { dtype: "U8", shape: [4, 0], data: new Uint8Array(0) },
  "scalar f64": { dtype: "F64", shape: [], data: new Float64Array([-0]) },
  "scalar i32": { dtype: "I32", shape: [], data: new Int32Array([42]) },
  // offsets of the inputs' own buffers must not leak into the file
  "subarray view": {
    dtype: "F32",
    shape: [2],
    data: new Float32Array([9, 1, 2, 9]).subarray(1, 3),
  },
};

Deno.test("round trip is bit-exact for every case, together and alone", () => {
  const together = decodeSafetensors(encodeSafetensors(roundTripCases));
  assert.equal(together.tensors.size, Object.keys(roundTripCases).length);
  for (const [name, expected] of Object.entries(roundTripCases)) {
    assertSameTensor(together.tensors.get(name), expected, name);
    const alone = decodeSafetensors(encodeSafetensors({ [name]: expected }));
    assertSameTensor(alone.tensors.get(name), expected, `${name} (alone)`);
  }
});

Deno.test("round trip of no tensors at all", () => {
  const { tensors, metadata } = decodeSafetensors(encodeSafetensors({}));
  assert.equal(tensors.size, 0);
  assert.deepEqual(metadata, {});
});

Deno.test("metadata round trips, including awkward keys", () => {
  const metadata: Record<string, string> = { format: "pt", "épochs ✓": "12", empty: "" };
  Object.defineProperty(metadata, "__proto__", { value: "kept", enumerable: true });
  const decoded = decodeSafetensors(encodeSafetensors(roundTripCases, metadata));
  assert.deepEqual(Object.entries(decoded.metadata).sort(), Object.entries(metadata).sort());
  assert.equal(Object.getPrototypeOf(decoded.metadata), Object.prototype);
});

Deno.test("a tensor named __proto__ is stored like any other", () => {
  const tensors = new Map<string, TensorEntry>([
    ["__proto__", { dtype: "U8", shape: [1], data: new Uint8Array([7]) }],
  ]);
  const decoded = decodeSafetensors(encodeSafetensors(tensors));
  assert.deepEqual([...decoded.tensors.keys()], ["__proto__"]);
});

Deno.test("bytes do not depend on insertion order of tensors or metadata", () => {
  const names = Object.keys(roundTripCases);
  const forward = new Map(names.map((name) => [name, roundTripCases[name]]));
  const backward = new Map(names.toReversed().map((name) => [name, roundTripCases[name]]));
  const a = encodeSafetensors(forward, { a: "1", b: "2" });
  const b = encodeSafetensors(backward, { b: "2", a: "1" });
  assert.deepEqual(a, b);
  assert.deepEqual(encodeSafetensors(roundTripCases, { a: "1", b: "2" }), a);
});

Deno.test("every tensor starts at a file offset that is a multiple of its item size", () => {
  const bytes = encodeSafetensors({
    u: { dtype: "U8", shape: [3], data: new Uint8Array(3) },
    i: { dtype: "I32", shape: [1], data: new Int32Array(1) },
    f: { dtype: "F32", shape: [3], data: new Float32Array(3) },
    d: { dtype: "F64", shape: [2], data: new Float64Array(2) },
  });
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLength % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  const itemsize: Record<string, number> = { F64: 8, F32: 4, I32: 4, U8: 1 };
  for (const name of ["u", "i", "f", "d"]) {
    const { dtype, data_offsets: [begin] } = header[name];
    assert.equal((8 + headerLength + begin) % itemsize[dtype], 0, `${name} misaligned`);
  }
});

// ---------------------------------------------------------------------------------------------
// Interop: a file laid out byte-for-byte as safetensors' Python save_file writes it.
// The reference serializes compact JSON: __metadata__ first, then tensors sorted by dtype
// (widest first) and name, each as {"dtype","shape","data_offsets"}, padded with spaces to 8.

function referenceFile(): Uint8Array {
  const header = '{"__metadata__":{"format":"pt"},' +
    '"bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},' +
    '"step":{"dtype":"I32","shape":[],"data_offsets":[24,28]},' +
    '"mask":{"dtype":"U8","shape":[3],"data_offsets":[28,31]}}';
  const padded = header + " ".repeat((8 - (header.length % 8)) % 8);
  const data = new Uint8Array(31);
  const view = new DataView(data.buffer);
  [0.5, -2].forEach((value, i) => view.setFloat32(i * 4, value, true));
  [1, 2, 3, 4].forEach((value, i) => view.setFloat32(8 + i * 4, value, true));
  view.setInt32(24, -7, true);
  data.set([1, 0, 1], 28);
  return rawFile(padded, data);
}

const referenceTensors: Record<string, TensorEntry> = {
  weight: { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
  bias: { dtype: "F32", shape: [2], data: new Float32Array([0.5, -2]) },
  step: { dtype: "I32", shape: [], data: new Int32Array([-7]) },
  mask: { dtype: "U8", shape: [3], data: new Uint8Array([1, 0, 1]) },
};

Deno.test("decodes a file written the way the reference implementation writes it", () => {
  const { tensors, metadata } = decodeSafetensors(referenceFile());
  assert.deepEqual(metadata, { format: "pt" });
  for (const [name, expected] of Object.entries(referenceTensors)) {
    assertSameTensor(tensors.get(name), expected, name);
  }
});

Deno.test("encodes the same bytes the reference implementation writes", () => {
  assert.deepEqual(encodeSafetensors(referenceTensors, { format: "pt" }), referenceFile());
});

Deno.test("decodes tensors at offsets that are not aligned for their type", () => {
  // u8 of 3 bytes first leaves the f64 at data offset 3: legal, if unusual, in the format
  const data = new Uint8Array(11);
  data.set([9, 8, 7]);
  new DataView(data.buffer).setFloat64(3, Math.PI, true);
  const file = rawFile(
    '{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},' +
      '"b":{"dtype":"F64","shape":[1],"data_offsets":[3,11]}}',
    data,
  );
  const { tensors } = decodeSafetensors(file);
  assert.deepEqual(tensors.get("a")?.data, new Uint8Array([9, 8, 7]));
  assert.deepEqual(tensors.get("b")?.data, new Float64Array([Math.PI]));
  assert.equal(tensors.get("b")?.data.byteOffset, 0);
});

Deno.test("accepts a header padded with trailing spaces and a null __metadata__", () => {
  const file = rawFile('{"__metadata__":null}        ');
  assert.deepEqual(decodeSafetensors(file).metadata, {});
});

// ---------------------------------------------------------------------------------------------
// Corrupt and hostile files: each gets its own message, naming the file.

function f32Entry(name: string, shape: string, offsets: string): string {
  return `"${name}":{"dtype":"F32","shape":${shape},"data_offsets":${offsets}}`;
}

function withHeaderLength(length: bigint, rest: number[] = []): Uint8Array {
  const out = new Uint8Array(8 + rest.length);
  new DataView(out.buffer).setBigUint64(0, length, true);
  out.set(rest, 8);
  return out;
}

// deno-fmt-ignore
const corruptCases: [string, Uint8Array, RegExp][] = [
  ["file shorter than 8 bytes", new Uint8Array(5), /file is 5 bytes, too short/],
  ["header length past the end", withHeaderLength(100n, [0x7b, 0x7d]), /header length 100 bytes runs past the end of the 10-byte file/],
  ["absurd header length", withHeaderLength(2n ** 63n), /header length 9223372036854775808 bytes exceeds tessera's 8 MB limit/],
  ["header not UTF-8", withHeaderLength(2n, [0x7b, 0xff]), /header is not valid UTF-8/],
  ["header not JSON", rawFile("{nope}"), /header is not valid JSON/],
  ["header a JSON array", rawFile("[1,2]"), /header does not start with '\{'/],
  ["header with leading space", rawFile(" {}"), /header does not start with '\{'/],
  ["entry not an object", rawFile('{"w":3}'), /tensor 'w' must be an object/],
  ["entry missing data_offsets", rawFile('{"w":{"dtype":"F32","shape":[1]}}'), /tensor 'w' is missing "data_offsets"/],
  ["entry missing dtype", rawFile('{"w":{"shape":[1],"data_offsets":[0,4]}}'), /tensor 'w' is missing "dtype"/],
  ["entry missing shape", rawFile('{"w":{"dtype":"F32","data_offsets":[0,4]}}'), /tensor 'w' is missing "shape"/],
  ["dtype not a string", rawFile('{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}'), /tensor 'w' has dtype 4, not a string/],
  ["unknown dtype", rawFile('{"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}'), /tensor 'w' has unknown dtype "Q7"/],
  ["unsupported F16", rawFile('{"x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', [0, 0]), /^unsupported dtype F16 for tensor 'x' in model\.safetensors/],
  ["unsupported BF16", rawFile('{"x":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}', [0, 0]), /^unsupported dtype BF16 for tensor 'x'/],
  ["unsupported I64", rawFile('{"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}', new Uint8Array(8)), /^unsupported dtype I64 for tensor 'x'/],
  ["negative dim", rawFile(`{${f32Entry("w", "[2,-1]", "[0,0]")}}`), /tensor 'w' has shape \[2,-1\]; expected an array of non-negative integers/],
  ["fractional dim", rawFile(`{${f32Entry("w", "[1.5]", "[0,4]")}}`), /tensor 'w' has shape \[1\.5\]/],
  ["shape not an array", rawFile(`{${f32Entry("w", '"2x2"', "[0,16]")}}`), /tensor 'w' has shape "2x2"/],
  ["dim beyond 2^53", rawFile(`{${f32Entry("w", "[9007199254740993]", "[0,4]")}}`), /tensor 'w' has shape \[9007199254740992\]/],
  ["three offsets", rawFile(`{${f32Entry("w", "[1]", "[0,4,8]")}}`, [0, 0, 0, 0]), /tensor 'w' has data_offsets \[0,4,8\]; expected \[begin, end\]/],
  ["decreasing offsets", rawFile(`{${f32Entry("w", "[1]", "[4,0]")}}`, [0, 0, 0, 0]), /tensor 'w' has data_offsets \[4,0\]/],
  ["negative offset", rawFile(`{${f32Entry("w", "[1]", "[-4,0]")}}`, [0, 0, 0, 0]), /tensor 'w' has data_offsets \[-4,0\]/],
  ["string offsets", rawFile(`{${f32Entry("w", "[1]", '["0","4"]')}}`, [0, 0, 0, 0]), /tensor 'w' has data_offsets \["0","4"\]/],
  ["offsets not an array", rawFile(`{${f32Entry("w", "[1]", '{"begin":0}')}}`, [0, 0, 0, 0]), /tensor 'w' has data_offsets \{"begin":0\}/],
  ["offsets past the buffer", rawFile(`{${f32Entry("w", "[2]", "[0,8]")}}`, [0, 0, 0, 0]), /tensor 'w' has data_offsets \[0,8\] but the data buffer is only 4 bytes/],
  ["overlapping tensors", rawFile(`{${f32Entry("a", "[2]", "[0,8]")},${f32Entry("b", "[2]", "[4,12]")}}`, new Uint8Array(12)), /tensor 'b' \(data_offsets \[4,12\]\) overlaps tensor 'a' \(data_offsets \[0,8\]\)/],
  ["duplicate ranges", rawFile(`{${f32Entry("a", "[1]", "[0,4]")},${f32Entry("b", "[1]", "[0,4]")}}`, new Uint8Array(4)), /overlaps tensor/],
  ["empty tensor inside another", rawFile(`{${f32Entry("a", "[2]", "[0,8]")},${f32Entry("e", "[0]", "[4,4]")}}`, new Uint8Array(8)), /tensor 'e' \(data_offsets \[4,4\]\) overlaps tensor 'a'/],
  ["gap between tensors", rawFile(`{${f32Entry("a", "[1]", "[0,4]")},${f32Entry("b", "[1]", "[8,12]")}}`, new Uint8Array(12)), /data bytes \[4,8\) belong to no tensor \(gap before tensor 'b'\)/],
  ["gap at the start", rawFile(`{${f32Entry("a", "[1]", "[4,8]")}}`, new Uint8Array(8)), /data bytes \[0,4\) belong to no tensor/],
  ["trailing bytes", rawFile(`{${f32Entry("a", "[1]", "[0,4]")}}`, new Uint8Array(6)), /data bytes \[4,6\) at the end of the file belong to no tensor/],
  ["data but no tensors", rawFile("{}", [1, 2, 3]), /data bytes \[0,3\) at the end of the file belong to no tensor/],
  ["byte count too small for shape", rawFile(`{${f32Entry("fc6.weight", "[4096,9216]", "[0,1024]")}}`, new Uint8Array(1024)), /^model\.safetensors: tensor 'fc6\.weight' has shape \[4096,9216\] \(151 MB as F32\) but data_offsets cover 1024 bytes$/],
  ["byte count not a multiple", rawFile(`{${f32Entry("w", "[1]", "[0,3]")}}`, [0, 0, 0]), /tensor 'w' has shape \[1\] \(4 bytes as F32\) but data_offsets cover 3 bytes/],
  ["shape too large to address", rawFile(`{${f32Entry("w", "[4294967296,4294967296]", "[0,4]")}}`, [0, 0, 0, 0]), /\(too large to address as F32\)/],
  ["metadata value a number", rawFile('{"__metadata__":{"epoch":3}}'), /__metadata__\['epoch'\] must be a string, got 3/],
  ["metadata an array", rawFile('{"__metadata__":["a"]}'), /__metadata__ must be an object of strings/],
];

Deno.test("every corruption is refused with its own message", async (t) => {
  for (const [label, bytes, message] of corruptCases) {
    await t.step(label, () => {
      assert.throws(() => decodeSafetensors(bytes, "model.safetensors"), (error: unknown) => {
        assert.equal((error as object).constructor, Error, `${label}: not a plain Error`);
        assert.match((error as Error).message, message);
        assert.match((error as Error).message, /model\.safetensors/);
        return true;
      });
    });
  }
});

Deno.test("decode does not read outside a subarray it is given", () => {
  const file = encodeSafetensors(referenceTensors);
  const padded = new Uint8Array(file.length + 16);
  padded.set(file, 8);
  const { tensors } = decodeSafetensors(padded.subarray(8, 8 + file.length));
  assertSameTensor(tensors.get("weight"), referenceTensors.weight, "weight");
  assert.throws(() => decodeSafetensors(padded.subarray(8, 8 + file.length - 1)), /no tensor|only/);
});

Deno.test("a header of exactly the size limit decodes; one byte more is refused, naming the limit", () => {
  const atLimit = rawFile("{}" + " ".repeat(MAX_HEADER_BYTES - 2));
  assert.equal(decodeSafetensors(atLimit).tensors.size, 0);
  const over = rawFile("{}" + " ".repeat(MAX_HEADER_BYTES - 1));
  assert.throws(
    () => decodeSafetensors(over, "big.safetensors"),
    /^Error: big\.safetensors: header length 8000001 bytes exceeds tessera's 8 MB limit \(about 133 thousand tensors\); the file is corrupt, or too many tensors were saved into one file \(split it\)$/,
  );
});

Deno.test("loadSafetensors refuses an oversized header before reading the rest of the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The file claims a 100 MB header but holds 8 bytes: the limit, not the length, is reported.
    const path = `${dir}/huge-header.safetensors`;
    await Deno.writeFile(path, withHeaderLength(100_000_000n));
    await assert.rejects(
      loadSafetensors(path),
      new RegExp(
        `^Error: ${escapeRegExp(path)}: header length 100000000 bytes exceeds tessera's 8 MB`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("empty tensors on boundaries are accepted, out-of-order names come out sorted", () => {
  const file = rawFile(
    `{${f32Entry("z", "[1]", "[4,8]")},${f32Entry("e1", "[0]", "[4,4]")},${
      f32Entry("a", "[1]", "[0,4]")
    },${f32Entry("e0", "[0,3]", "[0,0]")},${f32Entry("e2", "[2,0]", "[8,8]")}}`,
    new Uint8Array(new Float32Array([1.5, -2]).buffer),
  );
  const { tensors } = decodeSafetensors(file);
  assert.deepEqual([...tensors.keys()], ["a", "e0", "e1", "e2", "z"]);
  assert.deepEqual([...tensors.get("a")!.data], [1.5]);
  assert.deepEqual([...tensors.get("z")!.data], [-2]);
  assert.deepEqual(tensors.get("e0")!.shape, [0, 3]);
  for (const name of ["e0", "e1", "e2"]) {
    assert.equal(tensors.get(name)!.data.constructor, Float32Array);
    assert.equal(tensors.get(name)!.data.length, 0);
  }
});

// ---------------------------------------------------------------------------------------------
// Encoder input checks

// deno-fmt-ignore
const badInputs: [string, Record<string, TensorEntry>, Record<string, string> | undefined, RegExp][] = [
  ["data of the wrong array type", { w: { dtype: "F32", shape: [1], data: new Float64Array(1) } }, undefined, /tensor 'w' is F32, so its data must be a Float32Array, got Float64Array/],
  ["shape disagrees with data", { w: { dtype: "I32", shape: [2, 2], data: new Int32Array(3) } }, undefined, /tensor 'w' has shape \[2,2\] \(4 elements\) but its data holds 3 elements/],
  ["negative dim", { w: { dtype: "U8", shape: [-1], data: new Uint8Array(0) } }, undefined, /tensor 'w' has shape \[-1\]/],
  ["unsupported dtype", { w: { dtype: "F16" as "F32", shape: [1], data: new Float32Array(1) } }, undefined, /tensor 'w' has dtype F16; expected one of F32, F64, I32, U8/],
  ["reserved name", { __metadata__: { dtype: "U8", shape: [0], data: new Uint8Array(0) } }, undefined, /'__metadata__' is reserved/],
  ["metadata value not a string", {}, { epoch: 3 as unknown as string }, /metadata\['epoch'\] must be a string, got number/],
];

Deno.test("encode refuses inconsistent tensors", async (t) => {
  for (const [label, tensors, metadata, message] of badInputs) {
    await t.step(label, () => {
      assert.throws(() => encodeSafetensors(tensors, metadata), message);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Fuzzing: mutated files either decode to something self-consistent or throw a plain Error.

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ITEMSIZE: Record<string, number> = { F32: 4, F64: 8, I32: 4, U8: 1 };
const ARRAY: Record<string, unknown> = {
  F32: Float32Array,
  F64: Float64Array,
  I32: Int32Array,
  U8: Uint8Array,
};

Deno.test("fuzz: 2000 mutated files decode consistently or throw a plain Error", () => {
  const random = mulberry32(20240601);
  const int = (n: number) => Math.floor(random() * n);
  const seeds = [
    referenceFile(),
    encodeSafetensors(roundTripCases, { note: "fuzz" }),
    encodeSafetensors({ s: { dtype: "F64", shape: [], data: new Float64Array([1]) } }),
  ];
  const outcomes = { decoded: 0, refused: 0 };
  for (let iteration = 0; iteration < 2000; iteration++) {
    const file = seeds[int(seeds.length)].slice();
    const headerLength = Number(new DataView(file.buffer).getBigUint64(0, true));
    let mutated: Uint8Array = file;
    switch (int(5)) {
      case 0: // truncate
        mutated = file.subarray(0, int(file.length));
        break;
      case 1: // flip bytes in the header, biased toward digits and punctuation
        for (let k = 1 + int(4); k > 0; k--) {
          file[8 + int(headerLength)] = random() < 0.5 ? 0x30 + int(10) : int(256);
        }
        break;
      case 2: // flip bytes in the data
        for (let k = 1 + int(8); k > 0 && file.length > 8 + headerLength; k--) {
          file[8 + headerLength + int(file.length - 8 - headerLength)] = int(256);
        }
        break;
      case 3: // splice a random header length, small or huge
        new DataView(file.buffer).setBigUint64(
          0,
          random() < 0.5 ? BigInt(int(file.length + 16)) : BigInt(int(2 ** 32)) << BigInt(int(32)),
          true,
        );
        break;
      case 4: // drop or duplicate a slice anywhere
        {
          const at = int(file.length);
          const length = int(16);
          mutated = random() < 0.5
            ? new Uint8Array([...file.subarray(0, at), ...file.subarray(at + length)])
            : new Uint8Array([...file.subarray(0, at + length), ...file.subarray(at)]);
        }
        break;
    }
    let result: ReturnType<typeof decodeSafetensors>;
    try {
      result = decodeSafetensors(mutated, "fuzz.safetensors");
    } catch (error) {
      assert.equal((error as object).constructor, Error, `iteration ${iteration}: ${error}`);
      assert.match((error as Error).message, /fuzz\.safetensors/);
      outcomes.refused++;
      continue;
    }
    outcomes.decoded++;
    let total = 0;
    for (const [name, tensor] of result.tensors) {
      const count = tensor.shape.reduce((a, b) => a * b, 1);
      assert.equal(tensor.data.constructor, ARRAY[tensor.dtype], name);
      assert.equal(tensor.data.length, count, `${name}: data length vs shape`);
      total += count * ITEMSIZE[tensor.dtype];
    }
    const decodedHeader = Number(
      new DataView(mutated.buffer, mutated.byteOffset).getBigUint64(0, true),
    );
    assert.equal(total, mutated.length - 8 - decodedHeader, "tensors must cover the data exactly");
    for (const value of Object.values(result.metadata)) assert.equal(typeof value, "string");
  }
  // Both outcomes must actually be exercised, or the fuzzer is not testing anything.
  assert.ok(outcomes.decoded > 100 && outcomes.refused > 100, JSON.stringify(outcomes));
});

// ---------------------------------------------------------------------------------------------
// Files

Deno.test("save and load round trip through a file, leaving no temp files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/model.safetensors`;
    await saveSafetensors(path, referenceTensors, { format: "pt" });
    await saveSafetensors(path, referenceTensors, { format: "pt", overwritten: "yes" });
    const { tensors, metadata } = await loadSafetensors(path);
    assert.deepEqual(metadata, { format: "pt", overwritten: "yes" });
    for (const [name, expected] of Object.entries(referenceTensors)) {
      assertSameTensor(tensors.get(name), expected, name);
    }
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["model.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("failed saves throw and leave the old file and the folder as they were", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/model.safetensors`;
    await saveSafetensors(path, referenceTensors);
    const before = await Deno.readFile(path);

    const inconsistent: TensorEntry = { dtype: "F32", shape: [3], data: new Float32Array(2) };
    await assert.rejects(saveSafetensors(path, { w: inconsistent }), /tensor 'w'/);
    await assert.rejects(saveSafetensors(`${dir}/missing/model.safetensors`, referenceTensors));
    // Renaming a file over a directory fails after the temp file was written.
    await Deno.mkdir(`${dir}/occupied`);
    await assert.rejects(saveSafetensors(`${dir}/occupied`, referenceTensors));

    assert.deepEqual(await Deno.readFile(path), before);
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names.sort(), ["model.safetensors", "occupied"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load errors name the path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/broken.safetensors`;
    await Deno.writeFile(
      path,
      rawFile('{"w":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', [0, 0]),
    );
    await assert.rejects(
      loadSafetensors(path),
      new RegExp(`unsupported dtype F16 for tensor 'w' in ${escapeRegExp(path)}`),
    );
    await Deno.writeFile(path, new Uint8Array(3));
    await assert.rejects(
      loadSafetensors(path),
      new RegExp(`${escapeRegExp(path)}: file is 3 bytes`),
    );
    await assert.rejects(loadSafetensors(`${dir}/absent.safetensors`), /absent\.safetensors/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
