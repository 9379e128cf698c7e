import assert from "node:assert/strict";
import {
  isTempFileOf,
  removeStaleTempsOf,
  writeFileAtomic,
  writeTextFileAtomic,
} from "../../io/atomic.ts";

async function listing(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

const UUID = "0b7c8a4e-5d2f-4a71-9c3e-2f1d6b8e9a10";

Deno.test("atomic writer: temp names match only its own pattern for that target", () => {
  assert.ok(isTempFileOf("ckpt.safetensors", `.ckpt.safetensors.${UUID}.tmp`));
  assert.ok(!isTempFileOf("ckpt.safetensors", `.ckpt.safetensors.${UUID}.tmp.keep`));
  assert.ok(!isTempFileOf("ckpt.safetensors", `.ckptXsafetensors.${UUID}.tmp`));
  assert.ok(!isTempFileOf("ckpt.safetensors", `.other.safetensors.${UUID}.tmp`));
  assert.ok(!isTempFileOf("ckpt.safetensors", ".ckpt.safetensors.not-a-uuid.tmp"));
  assert.ok(!isTempFileOf("ckpt", `.ckpt.safetensors.${UUID}.tmp`));
});

Deno.test("atomic writer: a successful write removes stale temps of killed writes to the same target only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ckpt.safetensors`;
    await writeTextFileAtomic(path, "old");
    // What a write killed before its rename leaves behind, and neighbours that must survive.
    const stale = [`.ckpt.safetensors.${UUID}.tmp`, `.ckpt.safetensors.${crypto.randomUUID()}.tmp`];
    const keep = [
      `.other.safetensors.${UUID}.tmp`, // another target's temp
      ".ckpt.safetensors.mine.tmp", // not the writer's pattern
      "notes.txt",
    ];
    const past = new Date(Date.now() - 60_000);
    for (const name of [...stale, ...keep]) {
      await Deno.writeTextFile(`${dir}/${name}`, "half-written");
      await Deno.utime(`${dir}/${name}`, past, past);
    }
    // A temp modified after the new write began belongs to a write in progress: kept.
    const inProgress = `.ckpt.safetensors.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(`${dir}/${inProgress}`, "being written");
    const future = new Date(Date.now() + 60_000);
    await Deno.utime(`${dir}/${inProgress}`, future, future);

    await writeFileAtomic(path, new TextEncoder().encode("new"));
    assert.equal(await Deno.readTextFile(path), "new");
    assert.deepEqual(await listing(dir), ["ckpt.safetensors", ...keep, inProgress].sort());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic writer: a failed write keeps the old file and the stale temps, removes its own temp", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/occupied`);
    const stale = `.occupied.${UUID}.tmp`;
    await Deno.writeTextFile(`${dir}/${stale}`, "half-written");
    await assert.rejects(writeTextFileAtomic(`${dir}/occupied`, "x"));
    assert.deepEqual(await listing(dir), [stale, "occupied"].sort());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic writer: overwriting leaves exactly the new file, no temp", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeTextFileAtomic(`${dir}/a.txt`, "one");
    await writeTextFileAtomic(`${dir}/a.txt`, "two");
    assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "two");
    assert.deepEqual(await listing(dir), ["a.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic writer: removeStaleTempsOf clears a target's leftovers before a streamed write", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const old = `.images.u8.${UUID}.tmp`;
    await Deno.writeTextFile(`${dir}/${old}`, "half");
    await Deno.writeTextFile(`${dir}/images.u8`, "current");
    await removeStaleTempsOf(`${dir}/images.u8`, Date.now() + 1000);
    assert.deepEqual(await listing(dir), ["images.u8"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
