import assert from "node:assert/strict";
import { classCounts } from "../../data/dataset.ts";
import {
  downloadFashionMnist,
  FASHION_MNIST_BUILTIN_DIR,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_FILES,
  FASHION_MNIST_SYSTEM_DIR,
  loadFashionMnist,
  sha256Hex,
} from "../../data/fashion_mnist.ts";
import { encodeIdx, gzip } from "../../data/idx.ts";

const NOWHERE = "/nonexistent/tessera-test";

// Its load time is a benchmark (bench/data_bench.ts), not an assertion: tests never time.
Deno.test("fashion-mnist: the committed subset loads offline and balanced", async () => {
  const fm = await loadFashionMnist({ systemDir: NOWHERE, cacheDir: NOWHERE });
  assert.equal(fm.kind, "builtin");
  assert.equal(fm.source, FASHION_MNIST_BUILTIN_DIR);
  assert.deepEqual(fm.train.shape, [10000, 1, 28, 28]);
  assert.deepEqual(fm.test.shape, [2000, 1, 28, 28]);
  assert.deepEqual(classCounts(fm.train), new Array(10).fill(1000));
  assert.deepEqual(classCounts(fm.test), new Array(10).fill(200));
  assert.deepEqual(fm.train.classNames, FASHION_MNIST_CLASSES);
  // Real images, not zeros: Fashion-MNIST's mean pixel is about 0.286 * 255 = 73.
  const mean = fm.train.images.reduce((a, b) => a + b, 0) / fm.train.images.length;
  assert.ok(mean > 60 && mean < 85, `mean pixel ${mean}`);
});

Deno.test({
  name: "fashion-mnist: the system copy is found first and is the full set",
  ignore: !(await Deno.stat(FASHION_MNIST_SYSTEM_DIR).then(() => true, () => false)),
  fn: async () => {
    const fm = await loadFashionMnist({ cacheDir: NOWHERE });
    assert.equal(fm.kind, "system");
    assert.equal(fm.train.shape[0], 60000);
    assert.equal(fm.test.shape[0], 10000);
  },
});

async function writeTinySet(dir: string, n = 20, seed = 1) {
  const images = Uint8Array.from({ length: n * 28 * 28 }, (_, i) => (i * 7 + seed) & 255);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
  const files: Record<string, Uint8Array> = {
    [FASHION_MNIST_FILES.trainImages]: await gzip(encodeIdx([n, 28, 28], images)),
    [FASHION_MNIST_FILES.trainLabels]: await gzip(encodeIdx([n], labels)),
    [FASHION_MNIST_FILES.testImages]: await gzip(
      encodeIdx([n / 2, 28, 28], images.subarray(0, (n / 2) * 784)),
    ),
    [FASHION_MNIST_FILES.testLabels]: await gzip(encodeIdx([n / 2], labels.subarray(0, n / 2))),
  };
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) await Deno.writeFile(`${dir}/${name}`, bytes);
  return files;
}

Deno.test("fashion-mnist: search order is dir, system, cache, built-in", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await writeTinySet(`${tmp}/dir`, 20);
    await writeTinySet(`${tmp}/system`, 40);
    await writeTinySet(`${tmp}/cache`, 60);
    const cases: [string, Parameters<typeof loadFashionMnist>[0], string, number][] = [
      ["explicit dir wins", { dir: `${tmp}/dir`, systemDir: `${tmp}/system` }, "dir", 20],
      [
        "system before cache",
        { systemDir: `${tmp}/system`, cacheDir: `${tmp}/cache` },
        "system",
        40,
      ],
      ["cache when no system", { systemDir: NOWHERE, cacheDir: `${tmp}/cache` }, "cache", 60],
      ["built-in last", { systemDir: NOWHERE, cacheDir: NOWHERE }, "builtin", 10000],
    ];
    for (const [name, options, kind, n] of cases) {
      const fm = await loadFashionMnist(options);
      assert.equal(fm.kind, kind, name);
      assert.equal(fm.train.shape[0], n, name);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("fashion-mnist: an incomplete dir is an error naming the missing files", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await writeTinySet(tmp);
    await Deno.remove(`${tmp}/${FASHION_MNIST_FILES.testLabels}`);
    await assert.rejects(
      loadFashionMnist({ dir: tmp }),
      new RegExp(`folder ${tmp} \\(options.dir\\) lacks t10k-labels-idx1-ubyte.gz`),
    );
    const error = await loadFashionMnist({
      systemDir: NOWHERE,
      cacheDir: NOWHERE,
      allowBuiltin: false,
    }).then(() => undefined, (e: Error) => e);
    assert.ok(error instanceof Error, "no data must be an error");
    assert.match(
      error.message,
      /no folder has the four Fashion-MNIST files; looked in \/nonexistent/,
    );
    // Written for a library user: it names options and functions, never a command-line flag.
    assert.match(error.message, /\{ download: true \}/);
    assert.doesNotMatch(error.message, /--\w/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** Serves `files` on 127.0.0.1, counting requests; returns its base URL and a stopper. */
function serve(files: Record<string, Uint8Array>) {
  const requests: string[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request) => {
    const name = new URL(request.url).pathname.slice("/fm/".length);
    requests.push(name);
    const body = files[name];
    return body
      ? new Response(body as Uint8Array<ArrayBuffer>)
      : new Response("not found", { status: 404 });
  });
  return {
    baseUrl: `http://127.0.0.1:${server.addr.port}/fm/`,
    requests,
    stop: () => server.shutdown(),
  };
}

Deno.test("fashion-mnist: download verifies SHA-256, stores atomically and skips verified files", async () => {
  const tmp = await Deno.makeTempDir();
  const files = await writeTinySet(`${tmp}/served`);
  const sha256: Record<string, string> = {};
  for (const [name, bytes] of Object.entries(files)) sha256[name] = await sha256Hex(bytes);
  const server = serve(files);
  try {
    const dir = await downloadFashionMnist({
      baseUrl: server.baseUrl,
      cacheDir: `${tmp}/cache`,
      sha256,
    });
    assert.equal(dir, `${tmp}/cache`);
    for (const [name, bytes] of Object.entries(files)) {
      assert.deepEqual(await Deno.readFile(`${dir}/${name}`), bytes);
    }
    const fm = await loadFashionMnist({ systemDir: NOWHERE, cacheDir: dir });
    assert.equal(fm.kind, "cache");
    assert.equal(server.requests.length, 4);
    await downloadFashionMnist({ baseUrl: server.baseUrl, cacheDir: dir, sha256 });
    assert.equal(server.requests.length, 4, "verified files are not fetched again");
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, Object.values(FASHION_MNIST_FILES).sort(), "no temporary files left");
  } finally {
    await server.stop();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("fashion-mnist: download: true fetches into the cache only when no folder has the files", async () => {
  const tmp = await Deno.makeTempDir();
  const files = await writeTinySet(`${tmp}/served`, 30);
  const sha256: Record<string, string> = {};
  for (const [name, bytes] of Object.entries(files)) sha256[name] = await sha256Hex(bytes);
  const server = serve(files);
  try {
    const options = {
      systemDir: NOWHERE,
      cacheDir: `${tmp}/cache`,
      allowBuiltin: false,
      download: { baseUrl: server.baseUrl, sha256 },
    };
    const fm = await loadFashionMnist(options);
    assert.equal(fm.kind, "cache");
    assert.equal(fm.source, `${tmp}/cache`);
    assert.equal(fm.train.shape[0], 30);
    assert.equal(server.requests.length, 4);
    await loadFashionMnist(options);
    assert.equal(server.requests.length, 4, "a complete cache is read, not downloaded again");
  } finally {
    await server.stop();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("fashion-mnist: a corrupted download is rejected and not stored", async () => {
  const tmp = await Deno.makeTempDir();
  const files = await writeTinySet(`${tmp}/served`);
  const sha256: Record<string, string> = {};
  for (const [name, bytes] of Object.entries(files)) sha256[name] = await sha256Hex(bytes);
  const corrupted = { ...files };
  const bad = corrupted[FASHION_MNIST_FILES.trainLabels].slice();
  bad[bad.length - 1] ^= 0xff;
  corrupted[FASHION_MNIST_FILES.trainLabels] = bad;
  const server = serve(corrupted);
  try {
    await assert.rejects(
      downloadFashionMnist({ baseUrl: server.baseUrl, cacheDir: `${tmp}/cache`, sha256 }),
      new RegExp(
        `train-labels-idx1-ubyte.gz: SHA-256 mismatch, expected ${
          sha256[FASHION_MNIST_FILES.trainLabels]
        }`,
      ),
    );
    await assert.rejects(
      Deno.stat(`${tmp}/cache/${FASHION_MNIST_FILES.trainLabels}`),
      Deno.errors.NotFound,
    );
    const missing = serve({});
    try {
      await assert.rejects(
        downloadFashionMnist({ baseUrl: missing.baseUrl, cacheDir: `${tmp}/cache2`, sha256 }),
        /train-images-idx3-ubyte.gz: HTTP 404/,
      );
    } finally {
      await missing.stop();
    }
  } finally {
    await server.stop();
    await Deno.remove(tmp, { recursive: true });
  }
});
