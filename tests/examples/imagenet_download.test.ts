/**
 * predict --download's fetch, against a local server (tests never leave 127.0.0.1): the file
 * arrives whole into the cache with its SHA-256 checked against the prefix in its name, a
 * corrupt download leaves nothing behind, and a cached file is not fetched again.
 */

import assert from "node:assert/strict";
import { sha256Hex } from "../../data/mod.ts";
import { downloadWeights, TORCHVISION_ALEXNET } from "../../examples/alexnet/pretrained.ts";

/** Serves `body` at every path on a free 127.0.0.1 port, counting requests. */
async function withServer(
  body: Uint8Array<ArrayBuffer>,
  fn: (base: string, requests: () => number) => Promise<void>,
  status = 200,
) {
  let count = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    count++;
    return new Response(status === 200 ? body : "not here", { status });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, () => count);
  } finally {
    await server.shutdown();
  }
}

async function withCache(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "tessera-download-" });
  try {
    await fn(`${dir}/cache`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const listing = async (dir: string) => {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
};

// A generated "weights file": 3 MB of a pattern, named after its digest as torchvision does.
const body = Uint8Array.from({ length: 3_000_000 }, (_, i) => (i * 7919) % 251);
const prefix = (await sha256Hex(body)).slice(0, 8);

Deno.test("download: fetched whole into the cache, hash checked, progress reported, cached after", async () => {
  await withServer(body, async (base, requests) => {
    await withCache(async (cacheDir) => {
      const progress: [number, number | null][] = [];
      const url = `${base}/models/alexnet-test-${prefix}.pth`;
      const path = await downloadWeights({
        url,
        cacheDir,
        sha256Prefix: prefix,
        onProgress: (received, total) => progress.push([received, total]),
      });
      assert.equal(path, `${cacheDir}/alexnet-test-${prefix}.pth`);
      assert.deepEqual(await Deno.readFile(path), body);
      assert.deepEqual(progress.at(-1), [body.length, body.length]);
      assert.ok(progress.every(([r], i) => i === 0 || r > progress[i - 1][0]));
      assert.deepEqual(await listing(cacheDir), [`alexnet-test-${prefix}.pth`]); // no temp files
      // Second call: the cached file, no request.
      assert.equal(await downloadWeights({ url, cacheDir, sha256Prefix: prefix }), path);
      assert.equal(requests(), 1);
    });
  });
});

Deno.test("download: a file whose SHA-256 does not start with the name's prefix is not kept", async () => {
  const corrupt = body.slice();
  corrupt[1234] ^= 1;
  await withServer(corrupt, async (base) => {
    await withCache(async (cacheDir) => {
      await assert.rejects(
        downloadWeights({ url: `${base}/alexnet-${prefix}.pth`, cacheDir, sha256Prefix: prefix }),
        new RegExp(`SHA-256 [0-9a-f]{64}, which does not start with ${prefix}.*nothing was saved`),
      );
      assert.deepEqual(await listing(cacheDir), []);
    });
  });
});

Deno.test("download: an HTTP error is named, nothing is saved", async () => {
  await withServer(body, async (base) => {
    await withCache(async (cacheDir) => {
      await assert.rejects(
        downloadWeights({ url: `${base}/missing-${prefix}.pth`, cacheDir, sha256Prefix: prefix }),
        /missing-.*\.pth answered 404/,
      );
      assert.deepEqual(await listing(cacheDir), []);
    });
  }, 404);
});

Deno.test("download: a connection cut short leaves nothing in the cache", async () => {
  // A raw HTTP server that promises the whole file and closes after half of it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const connection of listener) {
      await connection.read(new Uint8Array(4096));
      const head = `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`;
      await connection.write(new TextEncoder().encode(head));
      await connection.write(body.subarray(0, body.length / 2));
      connection.close();
    }
  })();
  try {
    await withCache(async (cacheDir) => {
      const url = `http://127.0.0.1:${listener.addr.port}/alexnet-${prefix}.pth`;
      await assert.rejects(
        downloadWeights({ url, cacheDir, sha256Prefix: prefix }),
        /broke off after \d+ bytes .*nothing was saved/,
      );
      assert.deepEqual(await listing(cacheDir), []);
    });
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("download: options are checked", async () => {
  await assert.rejects(
    downloadWeights({ url: "http://127.0.0.1:9/x.pth", cache_dir: "/tmp" } as never),
    /downloadWeights: unknown option "cache_dir" \(did you mean cacheDir\?\)/,
  );
});

Deno.test("download: torchvision's file and its hash prefix", () => {
  assert.equal(
    TORCHVISION_ALEXNET.url,
    "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
  );
  assert.ok(TORCHVISION_ALEXNET.url.endsWith(`-${TORCHVISION_ALEXNET.sha256Prefix}.pth`));
});
