/**
 * A failed write during a save (a full disk, ENOSPC) names the file being written and leaves
 * the previous file intact. The failure is injected where the disk would report it: every
 * write to the writer's temporary file (`.<name>.<uuid>.tmp`) fails with the operating
 * system's ENOSPC message, as on a full disk (opening /dev/full itself needs --allow-all).
 */

import assert from "node:assert/strict";
import {
  Linear,
  loadCheckpoint,
  saveCheckpoint,
  saveSafetensors,
  SGD,
  writeFileAtomic,
} from "../../mod.ts";

/** Runs `fn` with every write to a temporary file failing as on a full disk. */
async function withFullDisk<T>(fn: () => Promise<T>): Promise<T> {
  const open = Deno.open;
  (Deno as { open: typeof Deno.open }).open = async (path, options) => {
    const file = await open(path, options);
    if (!String(path).endsWith(".tmp")) return file;
    return new Proxy(file, {
      get(target, key) {
        if (key === "write") {
          return () => Promise.reject(new Error("No space left on device (os error 28)"));
        }
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  };
  try {
    return await fn();
  } finally {
    (Deno as { open: typeof Deno.open }).open = open;
  }
}

Deno.test({
  name: "a full disk during a checkpoint save names the file and keeps the previous checkpoint",
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/run.safetensors`;
    const model = new Linear(3, 2, { rng: 1 });
    const optimizer = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
    await saveCheckpoint(path, { model, optimizer, metadata: { epoch: 1 } });
    const before = await Deno.readFile(path);

    model.weight.dataSync().fill(7); // a later state, which the failed save does not reach
    const error = await withFullDisk(() =>
      saveCheckpoint(path, { model, optimizer, metadata: { epoch: 2 } }).then(
        () => assert.fail("the save succeeded on a full disk"),
        (e: Error) => e,
      )
    );
    assert.match(error.message, new RegExp(`writing ${path} failed \\(No space left on device`));
    assert.match(error.message, /the previous .* is intact/);
    assert.deepEqual(await Deno.readFile(path), before);
    const restored = new Linear(3, 2, { rng: 2 });
    assert.equal((await loadCheckpoint(path, { model: restored })).epoch, 1);
    // No temporary file is left behind.
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["run.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "saveSafetensors and writeFileAtomic name the file on a write error too",
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/weights.safetensors`;
    const entry = { dtype: "F32" as const, shape: [2], data: new Float32Array([1, 2]) };
    await withFullDisk(async () => {
      await assert.rejects(
        saveSafetensors(path, { w: entry }),
        new RegExp(`writing ${path} failed`),
      );
      await assert.rejects(
        writeFileAtomic(`${dir}/notes.txt`, new Uint8Array(10)),
        (e: Error) => e instanceof Error && e.message.includes(`${dir}/notes.txt`),
      );
    });
    await assert.rejects(
      writeFileAtomic(`${dir}/missing-folder/x.bin`, new Uint8Array(1)),
      new RegExp(`writing ${dir}/missing-folder/x.bin failed`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
