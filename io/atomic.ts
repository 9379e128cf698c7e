/**
 * Atomic file writes: the bytes go to a temporary file in the same folder
 * (`.<name>.<uuid>.tmp`), which is flushed to disk (fsync) and renamed over the target; then
 * the folder itself is flushed, so the rename is on disk too. A crash or a power loss at any
 * point leaves either the old file or the new one in place, never a half-written one.
 *
 * A write killed before its rename leaves its temporary file behind. The next successful
 * write to the same target removes such leftovers: only files named like this writer's own
 * temporary files for that target, and only those last modified before the new write began
 * (so a concurrent write's file in progress is left alone).
 *
 * @module
 */

import { checkArgument } from "../tensor/options.ts";

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

function splitPath(path: string): { dir: string; base: string } {
  const slash = path.lastIndexOf("/");
  return {
    dir: slash >= 0 ? path.slice(0, slash) || "/" : ".",
    base: slash >= 0 ? path.slice(slash + 1) : path,
  };
}

/** The names this writer gives its temporary files for `base`: `.<base>.<uuid>.tmp`. */
export function isTempFileOf(base: string, name: string): boolean {
  const escaped = base.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^\\.${escaped}\\.${UUID}\\.tmp$`).test(name);
}

/**
 * Writes `data` to `path` atomically (temp file in the same folder, fsync, rename, fsync of the
 * folder), then removes temp files that earlier, interrupted writes to `path` left behind.
 *
 * @example
 * ```ts ignore
 * await writeFileAtomic("runs/a/notes.txt", new TextEncoder().encode("hello"));
 * ```
 */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  checkArgument("writeFileAtomic", "path", path, "string");
  checkArgument("writeFileAtomic", "data", data, "bytes");
  const { dir, base } = splitPath(path);
  const started = Date.now();
  const temp = `${dir}/.${base}.${crypto.randomUUID()}.tmp`;
  try {
    const file = await Deno.open(temp, { write: true, create: true, truncate: true });
    try {
      let written = 0;
      while (written < data.length) written += await file.write(data.subarray(written));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw nameTheFile(error, path);
  }
  await syncFolder(dir, path);
  await removeStaleTemps(dir, base, started);
}

/**
 * The error of a failed write, its message prefixed with the file being written and the fact
 * that the previous file is intact (a full disk says only "No space left on device"). The
 * error keeps its class (Deno.errors.*) and stack.
 */
function nameTheFile(error: unknown, path: string): unknown {
  if (!(error instanceof Error)) return error;
  error.message = `writeFileAtomic: writing ${path} failed (${error.message}); ` +
    `nothing was replaced: the previous ${path}, if any, is intact`;
  return error;
}

/** Flushes a folder's entries (the rename) to disk; Windows cannot open folders, so it skips. */
async function syncFolder(dir: string, path: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  let folder: Deno.FsFile;
  try {
    folder = await Deno.open(dir, { read: true });
  } catch (error) {
    throw new Error(
      `writeFileAtomic: ${path} was written, but its folder ${dir} could not be opened to flush ` +
        `the rename to disk (${(error as Error).message}); grant read permission on the folder`,
    );
  }
  try {
    await folder.sync();
  } finally {
    folder.close();
  }
}

/**
 * Removes the temporary files that interrupted atomic writes to `path` left behind: files
 * named `.<name>.<uuid>.tmp` in its folder, last modified before `before` (ms since the epoch).
 * {@link writeFileAtomic} calls it after each successful write; a writer that streams into a
 * temp file of the same pattern (as the ImageFolder shard does) calls it before starting.
 */
export async function removeStaleTempsOf(path: string, before = Date.now()): Promise<void> {
  const { dir, base } = splitPath(path);
  await removeStaleTemps(dir, base, before);
}

async function removeStaleTemps(dir: string, base: string, before: number): Promise<void> {
  // Another cleaner may remove a file between the listing and the removal: that is fine.
  const gone = (error: unknown) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return null;
  };
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !isTempFileOf(base, entry.name)) continue;
    const stale = `${dir}/${entry.name}`;
    const info = await Deno.stat(stale).catch(gone);
    if (info && (info.mtime?.getTime() ?? 0) < before) await Deno.remove(stale).catch(gone);
  }
}

/**
 * Writes a UTF-8 string to `path` atomically (see {@link writeFileAtomic}).
 *
 * @example
 * ```ts ignore
 * await writeTextFileAtomic("runs/a/config.json", JSON.stringify({ lr: 0.01 }));
 * ```
 */
export function writeTextFileAtomic(path: string, text: string): Promise<void> {
  checkArgument("writeTextFileAtomic", "path", path, "string");
  checkArgument("writeTextFileAtomic", "text", text, "string");
  return writeFileAtomic(path, new TextEncoder().encode(text));
}
