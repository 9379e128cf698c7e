/**
 * loadTorch: PyTorch's own files (written by tools/torch_fixtures.py with PyTorch 1.13) load
 * with every value exact and every layout (zip, legacy, deflated; views, strides, shared
 * storages) honoured; models trained in PyTorch give PyTorch's logits; malicious and broken
 * files are refused with a TorchLoadError naming the file and the problem.
 *
 * The full-size tests (torchvision's AlexNet, and with TESSERA_SLOW=1 the paper's; 233 MB per
 * file) generate their files with python3-torch and are skipped, saying why, where PyTorch is
 * not installed.
 */

import "../../mod.ts";
import assert from "node:assert/strict";
import { alexnet, alexnetMini, alexnetTorchvision } from "../../models/alexnet.ts";
import { Linear, ReLU, Sequential } from "../../nn/layers.ts";
import type { Module } from "../../nn/module.ts";
import { fromArray, type Tensor } from "../../tensor/tensor.ts";
import { noGrad } from "../../tensor/autograd.ts";
import { loadTorch, loadTorchBytes, TorchLoadError } from "../../io/torch.ts";
import { readZipDirectory } from "../../io/zip.ts";
import { assertClose } from "../support/close.ts";
import {
  bytes,
  fixture,
  le,
  LEGACY_HEADER,
  legacyFile,
  str,
  zipArchive,
} from "../support/torch_helpers.ts";

type Expected = Record<string, { dtype: string; shape: number[]; values: (number | string)[] }>;

function number(value: number | string): number {
  return typeof value === "number"
    ? value
    : value === "nan"
    ? NaN
    : value === "inf"
    ? Infinity
    : -Infinity;
}

async function readJson<T>(name: string): Promise<T> {
  return JSON.parse(await Deno.readTextFile(fixture(name)));
}

/** Every tensor with PyTorch's dtype (as converted), shape and exact values, in PyTorch's order. */
function assertSameTensors(actual: Map<string, Tensor>, expected: Expected, file: string): void {
  assert.deepEqual([...actual.keys()], Object.keys(expected), file);
  for (const [name, want] of Object.entries(expected)) {
    const tensor = actual.get(name)!;
    assert.equal(tensor.dtype, want.dtype, `${file} ${name} dtype`);
    assert.deepEqual(tensor.shape, want.shape, `${file} ${name} shape`);
    const data = tensor.dataSync();
    assert.equal(data.length, want.values.length, `${file} ${name} length`);
    want.values.forEach((v, i) => {
      assert.ok(
        Object.is(data[i], number(v)),
        `${file} ${name}[${i}] is ${data[i]}, PyTorch says ${v}`,
      );
    });
  }
}

Deno.test("loadTorch reads one state_dict saved in both formats and re-packed with deflate, every value exact", async () => {
  const expected = await readJson<Expected>("small.json");
  for (const file of ["small_zip.pth", "small_legacy.pth", "small_deflated.pth"]) {
    assertSameTensors(await loadTorch(fixture(file)), expected, file);
  }
  // The layouts the file exercises, so the check above covers them.
  assert.deepEqual(expected.transposed.shape, [5, 3]);
  assert.deepEqual(expected.scalar.shape, []);
  assert.deepEqual(expected.empty.values, []);
  assert.equal(expected.u8.dtype, "int32");
});

Deno.test("loadTorch takes bytes, a file URL or a path; loadTorchBytes names the file with `name`", async () => {
  const path = fixture("small_zip.pth");
  const fromBytes = await loadTorch(await Deno.readFile(path));
  const fromUrl = await loadTorch(new URL(`file://${path}`));
  const fromPath = await loadTorch(path);
  for (const map of [fromBytes, fromUrl]) {
    assert.deepEqual([...map.keys()], [...fromPath.keys()]);
    assert.deepEqual(map.get("f32")!.dataSync(), fromPath.get("f32")!.dataSync());
  }
  await assert.rejects(
    loadTorchBytes(new Uint8Array([1, 2, 3]), { name: "dropped.pth" }),
    (e: Error) =>
      e instanceof TorchLoadError && e.message.startsWith("dropped.pth: not a torch.save file"),
  );
  await assert.rejects(loadTorchBytes(new Uint8Array(0)), /^TorchLoadError: <bytes>: .*empty/);
});

Deno.test("loadTorch checks its options", async () => {
  const data = await Deno.readFile(fixture("small_zip.pth"));
  await assert.rejects(
    loadTorchBytes(data, { max_bytes: 1 } as never),
    /unknown option "max_bytes" \(did you mean maxBytes\?\)/,
  );
  await assert.rejects(
    loadTorchBytes(data, { maxBytes: -1 }),
    /maxBytes must be a non-negative integer, got -1/,
  );
  await assert.rejects(loadTorchBytes(data, { name: 3 } as never), /name must be a string/);
  await assert.rejects(loadTorch(42 as never), /source must be a path, a file URL or a Uint8Array/);
});

Deno.test("a training checkpoint's state_dict is found under 'state_dict' or 'model' and loads into the model", async () => {
  const expected = await readJson<Expected>("nested.json");
  for (const file of ["nested.pth", "model_key.pth"]) {
    const state = await loadTorch(fixture(file));
    assertSameTensors(state, expected, file);
    const model = new Sequential([new Linear(3, 2), new ReLU(), new Linear(2, 1)]);
    await model.loadStateDict(state);
    assert.deepEqual(model.stateDict().get("2.bias")!.dataSync(), state.get("2.bias")!.dataSync());
  }
});

Deno.test("an AlexNet-mini trained in PyTorch gives PyTorch's logits (float32 zip; float16 legacy)", async () => {
  const mini = await readJson<{
    input: { shape: number[]; values: number[] };
    logits_zip: number[];
    logits_legacy: number[];
  }>("mini.json");
  const input = fromArray(Float32Array.from(mini.input.values), mini.input.shape);
  for (
    const [file, expected] of [["mini_zip.pth", mini.logits_zip], [
      "mini_legacy.pth",
      mini.logits_legacy,
    ]] as const
  ) {
    const model = alexnetMini({ seed: 5 }).eval();
    await model.loadStateDict(await loadTorch(fixture(file))); // strict: every name and shape
    const logits = noGrad(() => model.forward(input)).dataSync();
    // Within 1e-5 of the logits' scale: float32 sums in a different order than PyTorch's.
    const scale = Math.max(...expected.map(Math.abs));
    assertClose(logits, expected, { rtol: 1e-5, atol: 1e-5 * scale, what: `${file} logits` });
  }
});

// ---- refusals ----------------------------------------------------------------------------------

const REFUSED_FIXTURES: [string, RegExp, object?][] = [
  ["evil_posix_system.pth", /imports posix\.system, which tessera does not allow/],
  ["evil_unlisted_reduce.pth", /imports __builtin__\.eval, which tessera does not allow/],
  ["module.pth", /imports torch\.nn\.modules\.linear\.Linear.*save model\.state_dict\(\)/],
  [
    "evil_storage_too_big_zip.pth",
    /storage '0' claims 1000000000 float32 elements \(4 GB\) but its record 'archive\/data\/0' holds 24 bytes/,
  ],
  [
    "evil_storage_too_big_legacy.pth",
    /storage '0' claims 1000000000 float32 elements \(4 GB\) but only 24 bytes remain in the file/,
  ],
  [
    "evil_view_outside.pth",
    /size \[2,3\], stride \[3,1\], offset 2 reads element 7 of storage '0', which holds 6 elements/,
  ],
  [
    "evil_recursive.pth",
    /no state_dict found: the top-level dict \(keys: 'self', 'list'\) holds a dict of 2 under 'self', not a tensor/,
  ],
  [
    "evil_zip_bomb.pth",
    /tensor 'weight' needs 20 MB, beyond the 1\.05 MB left of this load's maxBytes/,
  ],
  [
    "evil_zip_bomb.pth",
    /inflating zip entry 'archive\/data\/0' needs 20 MB, beyond the 5 MB left/,
    { maxBytes: 25e6 },
  ],
  [
    "evil_zip_bomb_lying.pth",
    /entry 'archive\/data\/0' inflates past its declared 24 bytes \(a zip bomb/,
  ],
  [
    "int64_overflow.pth",
    /tensor 'big' is int64 and its element 1 \(row-major\) is 1099511627776, outside int32's range/,
  ],
  ["list.pth", /the file holds a list of 2, not a state_dict/],
];

Deno.test("malicious and non-state_dict files are refused, naming the file and the problem", async () => {
  for (const [file, problem, options] of REFUSED_FIXTURES) {
    const path = fixture(file);
    await assert.rejects(loadTorch(path, options), (e: Error) => {
      assert.ok(e instanceof TorchLoadError, `${file}: ${e}`);
      assert.ok(e.message.startsWith(`${path}: `), e.message);
      assert.match(e.message, problem);
      return true;
    });
  }
});

Deno.test("a zip bomb within an explicit maxBytes is an ordinary (large, zero) tensor", async () => {
  const state = await loadTorch(fixture("evil_zip_bomb.pth"), { maxBytes: 50e6 });
  const weight = state.get("weight")!.dataSync();
  assert.equal(weight.length, 5_000_000);
  assert.ok(weight.every((v) => v === 0));
});

/** A pickle body between PROTO 2 and STOP. */
const pickle = (...body: (number | string | Uint8Array)[]) => bytes(0x80, 2, ...body, ".");
const REBUILD = "ctorch._utils\n_rebuild_tensor_v2\n";

const REFUSED_PICKLES: [string, Uint8Array, RegExp][] = [
  [
    "a memo read before its write",
    pickle("h", 5),
    /pickle byte \d+: memo entry 5 is read before it is written/,
  ],
  ["a pop from an empty stack", pickle("0"), /stack underflow/],
  ["a pickle without STOP", bytes(0x80, 2, "}"), /ends without a STOP opcode/],
  ["an unknown opcode", pickle(0xff), /unknown opcode 0xff/],
  [
    "a 2 GB integer",
    pickle(0x8b, le(0x7fffffff, 4)),
    /an integer of 2147483647 bytes is larger than/,
  ],
  ["a string past the end", pickle("X", le(65535, 4), "ab"), /needs 65535 bytes but \d+ remain/],
  ["invalid UTF-8", pickle("X", le(2, 4), 0xff, 0xfe), /not valid UTF-8/],
  [
    "STACK_GLOBAL os.system",
    bytes(0x80, 4, 0x8c, 2, "os", 0x8c, 6, "system", 0x93, "."),
    /imports os\.system/,
  ],
  ["INST", pickle("ios\nsystem\n"), /opcode INST \(protocol 0 object creation\) is not supported/],
  ["REDUCE on None", pickle("N)R"), /REDUCE calls None, which is not callable/],
  [
    "NEWOBJ on a function",
    pickle(REBUILD, ")", 0x81),
    /NEWOBJ on torch\._utils\._rebuild_tensor_v2, which is not a class/,
  ],
  ["BUILD on a list", pickle("]}b"), /BUILD \(setting attributes\) on a list of 0 is not allowed/],
  ["APPEND to a tuple", pickle(")Na"), /APPEND to a tuple of 0, not a list/],
  ["an odd SETITEMS", pickle("}(Nu"), /odd number of keys and values/],
  ["an unhashable key", pickle("}]Ns"), /a dict key is a list of 0, which Python cannot hash/],
  ["protocol 6", bytes(0x80, 6, "."), /pickle protocol 6 is newer than 5/],
  ["a bad persistent id", pickle("NQ"), /persistent id None is not \('storage'/],
  [
    "a rebuild with 2 arguments",
    pickle(REBUILD, "NN", 0x86, "R"),
    /_rebuild_tensor_v2 takes 6 or 7 arguments, got 2/,
  ],
  [
    "a self-containing list",
    pickle("]q", 0, "h", 0, "a"),
    /the file holds a list of 1, not a state_dict/,
  ],
];

Deno.test("hand-built pickles: each malformation is refused by the pickle machine, naming it", async () => {
  for (const [what, object, problem] of REFUSED_PICKLES) {
    await assert.rejects(loadTorchBytes(legacyFile(object), { name: what }), (e: Error) => {
      assert.ok(e instanceof TorchLoadError, `${what}: ${e}`);
      assert.ok(e.message.startsWith(`${what}: `), e.message);
      assert.match(e.message, problem, what);
      return true;
    });
  }
});

Deno.test("the pickle machine's memory is bounded by maxBytes; depth costs no native stack", async () => {
  // 100,000 nested lists: the machine is a loop, so depth is only memory (about 8 MB here).
  const nested = legacyFile(pickle("]".repeat(100_000), "a".repeat(99_999)));
  await assert.rejects(
    loadTorchBytes(nested, { maxBytes: 20e6 }),
    /the file holds a list of 1, not a state_dict/,
  );
  // A million empty dicts: 1 MB of pickle, about 80 MB of JavaScript objects.
  const dicts = legacyFile(pickle("}".repeat(1_000_000)));
  await assert.rejects(
    loadTorchBytes(dicts, { name: "dicts.pth" }),
    /^TorchLoadError: dicts\.pth: pickle byte \d+: the pickle's values need more than \d+ bytes of memory \(estimated: 64 per list, tuple, dict or set, 16 per item\), beyond what is left of this load's maxBytes/,
  );
});

/** ('storage', FloatStorage, '0', 'cpu', 6[, None]) -> a [2, 3] tensor 'w' at offset 0. */
function sixFloats(legacy: boolean): Uint8Array {
  return pickle(
    "}",
    str("w"),
    REBUILD,
    "((",
    str("storage"),
    "ctorch\nFloatStorage\n",
    str("0"),
    str("cpu"),
    "K",
    6,
    legacy ? "Nt" : "t",
    "QK",
    0,
    "K",
    2,
    "K",
    3,
    0x86,
    "K",
    3,
    "K",
    1,
    0x86,
    0x89,
    "}t",
    "Rs",
  );
}
const SIX_FLOATS = sixFloats(true);
const SIX_KEYS = pickle("]", str("0"), "a");
const SIX_DATA = bytes(le(6, 8), new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer));

Deno.test("Python 2 era pickles load: byte strings, OrderedDict([[key, value]]), _rebuild_tensor", async () => {
  const short = (text: string) => bytes("U", text.length, text);
  const tensor = bytes(
    "ctorch._utils\n_rebuild_tensor\n(",
    bytes("(", short("storage"), "ctorch\nFloatStorage\n", short("0"), short("cpu"), "K", 6, "NtQ"),
    bytes("K", 0, "(K", 2, "K", 3, "t(K", 1, "K", 2, "tt"), // a transposed [2, 3] view
    "R",
  );
  const object = pickle("ccollections\nOrderedDict\n(](", short("w"), tensor, "latR");
  const keys = pickle("]", short("0"), "a");
  const state = await loadTorchBytes(legacyFile(object, keys, SIX_DATA));
  assert.deepEqual(state.get("w")!.shape, [2, 3]);
  assert.deepEqual([...state.get("w")!.dataSync()], [1, 3, 5, 2, 4, 6]);
});

Deno.test("legacy layout: the hand-built file loads, and each broken part is named", async () => {
  const good = await loadTorchBytes(legacyFile(SIX_FLOATS, SIX_KEYS, SIX_DATA));
  assert.deepEqual([...good.get("w")!.dataSync()], [1, 2, 3, 4, 5, 6]);
  const { MAGIC, PROTOCOL, SYS_INFO } = LEGACY_HEADER;
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "bad magic",
      legacyFile(SIX_FLOATS, SIX_KEYS, SIX_DATA, bytes(pickle("K", 5), PROTOCOL, SYS_INFO)),
      /it starts with number 5, not torch's magic number/,
    ],
    [
      "protocol",
      legacyFile(SIX_FLOATS, SIX_KEYS, SIX_DATA, bytes(MAGIC, pickle("M", le(1000, 2)), SYS_INFO)),
      /protocol version number 1000; tessera reads 1001/,
    ],
    [
      "big-endian",
      legacyFile(
        SIX_FLOATS,
        SIX_KEYS,
        SIX_DATA,
        bytes(MAGIC, PROTOCOL, pickle("}", str("little_endian"), 0x89, "s")),
      ),
      /does not say little_endian: True/,
    ],
    [
      "unknown key",
      legacyFile(SIX_FLOATS, pickle("]", str("9"), "a"), SIX_DATA),
      /names str "9", which the object does not use as a storage/,
    ],
    [
      "count",
      legacyFile(SIX_FLOATS, SIX_KEYS, bytes(le(5, 8), SIX_DATA.subarray(8))),
      /storage '0' holds 5 elements in the file but 6 in the pickle/,
    ],
    [
      "no data",
      legacyFile(SIX_FLOATS),
      /tensor 'w' uses storage '0', whose data is not in the file/,
    ],
    [
      "truncated",
      legacyFile(SIX_FLOATS, SIX_KEYS, SIX_DATA.subarray(0, 20)),
      /claims 6 float32 elements \(24 bytes\) but only 12 bytes remain/,
    ],
    [
      "a global in the header",
      legacyFile(SIX_FLOATS, SIX_KEYS, SIX_DATA, bytes(pickle("cos\nsystem\n"))),
      /imports os\.system where only plain data belongs/,
    ],
  ];
  for (const [what, file, problem] of cases) {
    await assert.rejects(loadTorchBytes(file, { name: what }), problem, what);
  }
  const tar = new Uint8Array(600);
  tar.set(bytes("ustar"), 257);
  await assert.rejects(loadTorchBytes(tar), /a tar archive, PyTorch's earliest torch\.save format/);
});

Deno.test("zip layout: a hand-built archive with and without zip64 loads; broken archives are named", async () => {
  const floats = SIX_DATA.subarray(8);
  const SIX_FLOATS = sixFloats(false);
  for (const zip64 of [true, false]) {
    const archive = zipArchive([["a/data.pkl", SIX_FLOATS], ["a/data/0", floats], [
      "a/byteorder",
      bytes("little"),
    ]], zip64);
    assert.deepEqual([...(await loadTorchBytes(archive)).get("w")!.dataSync()], [1, 2, 3, 4, 5, 6]);
  }
  const good = zipArchive([["a/data.pkl", SIX_FLOATS], ["a/data/0", floats]]);
  const corrupt = good.slice();
  corrupt[readZipDirectory(good).get("a/data/0")!.dataOffset] ^= 1;
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "corrupt data",
      corrupt,
      /entry 'a\/data\/0' is corrupt: its CRC-32 is 0x[0-9a-f]{8}, the directory says/,
    ],
    ["truncated", good.subarray(0, good.length - 1), /no end-of-central-directory record/],
    [
      "big-endian",
      zipArchive([["a/data.pkl", SIX_FLOATS], ["a/data/0", floats], ["a/byteorder", bytes("big")]]),
      /the byteorder record says "big"/,
    ],
    [
      "no record",
      zipArchive([["a/data.pkl", SIX_FLOATS]]),
      /storage '0' has no record 'a\/data\/0' in the archive/,
    ],
    [
      "no data.pkl",
      zipArchive([["a/other", floats]]),
      /holds one <archive>\/data\.pkl; this one holds 0 \(entries: 'a\/other'\)/,
    ],
    [
      "TorchScript",
      zipArchive([["m/data.pkl", SIX_FLOATS], ["m/constants.pkl", pickle(")")]]),
      /a TorchScript archive \(torch\.jit\.save\)/,
    ],
    [
      "duplicate",
      zipArchive([["a/data.pkl", SIX_FLOATS], ["a/data.pkl", SIX_FLOATS]]),
      /entry 'a\/data\.pkl' appears twice/,
    ],
  ];
  for (const [what, file, problem] of cases) {
    await assert.rejects(loadTorchBytes(file, { name: what }), problem, what);
  }
});

// ---- torchvision's AlexNet, 233 MB per file --------------------------------------------------

const PYTHON = Deno.env.get("TESSERA_PYTHON") ?? "python3";

/** Why the AlexNet test cannot run here (PyTorch is absent), or undefined when it can. */
async function torchMissing(): Promise<string | undefined> {
  try {
    const { success } = await new Deno.Command(PYTHON, {
      args: ["-c", "import torch, torchvision"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success ? undefined : `${PYTHON} cannot import torch and torchvision`;
  } catch (error) {
    // CI may skip only because PyTorch is absent, never because the test may not look for it.
    if (error instanceof Deno.errors.NotCapable && Deno.env.get("CI") === "true") {
      throw new Error(`CI=true but the test may not run ${PYTHON}: add it to --allow-run`);
    }
    return `${PYTHON} cannot be run (${error instanceof Error ? error.message : error})`;
  }
}

const skipAlexNet = await torchMissing();
if (skipAlexNet) {
  console.warn(
    `torch_load.test.ts: the torchvision AlexNet test is skipped: ${skipAlexNet}. ` +
      "Install python3-torch and python3-torchvision (or set TESSERA_PYTHON) to run it.",
  );
}

const SLOW = Deno.env.get("TESSERA_SLOW") === "1";
if (!skipAlexNet && !SLOW) {
  console.warn(
    "torch_load.test.ts: the paper's AlexNet test is skipped: it runs with TESSERA_SLOW=1 (about twice the time of the torchvision one).",
  );
}

/** Writes `net`'s files with PyTorch, loads each into `model`, and compares the logits. */
async function assertPyTorchLogits(
  net: "alexnet" | "paper",
  model: Module,
  size: number,
  formats: string[],
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const script = new URL("../../tools/torch_fixtures.py", import.meta.url).pathname;
    const run = await new Deno.Command(PYTHON, { args: [script, `--${net}`, dir] }).output();
    assert.ok(run.success, new TextDecoder().decode(run.stderr));
    const raw = async (name: string) =>
      new Float32Array((await Deno.readFile(`${dir}/${name}`)).buffer);
    const input = fromArray(await raw(`${net}_input.f32`), [2, 3, size, size]);
    const expected = await raw(`${net}_logits.f32`);
    const scale = Math.max(...Array.from(expected, Math.abs));
    model.eval();
    for (const format of formats) {
      // Strict: every parameter is overwritten, so the second file cannot lean on the first.
      await model.loadStateDict(await loadTorch(`${dir}/${net}_${format}.pth`));
      const logits = noGrad(() => model.forward(input)).dataSync();
      const what = `${net}_${format}.pth logits`;
      assertClose(logits, expected, { rtol: 1e-5, atol: 1e-5 * scale, what });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "torchvision's AlexNet (random weights, 233 MB) saved by PyTorch in both formats gives PyTorch's logits",
  ignore: skipAlexNet !== undefined,
  fn: () => assertPyTorchLogits("alexnet", alexnetTorchvision(), 224, ["zip", "legacy"]),
});

Deno.test({
  name: "the paper's AlexNet (tessera's alexnet(), 233 MB) saved by PyTorch gives PyTorch's logits",
  ignore: skipAlexNet !== undefined || !SLOW,
  fn: () => assertPyTorchLogits("paper", alexnet(), 227, ["zip"]),
});
