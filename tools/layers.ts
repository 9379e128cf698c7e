/**
 * The layering check: imports between the project's folders run one way.
 *
 *     deno run --allow-read tools/layers.ts [ROOT]       (deno task check runs it)
 *
 * The library is built in floors, each importing only the floors below it:
 *
 *     backend/            the contract (backend.ts) and the device registry: imports nothing
 *     tensor/             tensors, autograd, the ops with their reference kernels, device "ref"
 *     cpu/    gpu/        the device backends: peers, never importing each other
 *     nn/     optim/      layers and optimizers: reach a device only through tensor/
 *     io/  data/  models/ checkpoints, data loading, the AlexNet builders
 *     mod.ts              the package's entry point
 *
 * The applications (examples/, bench/, tests/, web/, notebooks/, tools/) may import the
 * library, and the library never imports them; bench/ never imports examples/ (it measures the
 * library alone). Besides the table, no two folders may import
 * each other at run time, even through other folders (`import type` vanishes at run time and
 * does not count), and no cycle of files may cross a folder.
 *
 * Every static import, re-export and `import("...")` with a literal relative path of every .ts
 * file counts (node_modules/, runs/ and dotted folders are skipped). Prints each problem with
 * its file and line and exits 1 if there is any.
 *
 * @module
 */

/** Library folder -> the folders it may import. "." is the root (mod.ts). */
export const ALLOWED: Record<string, readonly string[]> = {
  backend: [],
  tensor: ["backend"],
  cpu: ["backend", "tensor"],
  gpu: ["backend", "tensor"],
  nn: ["backend", "tensor"],
  optim: ["backend", "tensor"],
  io: ["backend", "tensor", "nn", "optim"],
  data: ["backend", "tensor", "io"],
  models: ["backend", "tensor", "nn", "cpu", "data", "io"],
  ".": ["backend", "tensor", "cpu", "gpu", "nn", "optim", "io", "data", "models"],
};

/** Folders that use the library and that the library never imports. */
export const APPS: readonly string[] = ["examples", "bench", "tests", "web", "notebooks", "tools"];

/** Applications that must not lean on each other: the benchmark measures the library alone. */
export const APP_FORBIDS: Record<string, readonly string[]> = { bench: ["examples"] };

/** One import: the importing file, the imported file, its line, and whether only types. */
export interface Edge {
  from: string;
  to: string;
  line: number;
  typeOnly: boolean;
}

/** The folder a root-relative path belongs to: its first segment, or "." at the root. */
export const folderOf = (path: string): string => path.includes("/") ? path.split("/")[0] : ".";

const IMPORT =
  /^\s*(import|export)\s+(type\s+)?([^;]*?)\s*from\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm;

/** The imports of one file (`path` relative to the root) with relative specifiers of .ts files. */
export function importsOf(path: string, text: string): Edge[] {
  const edges: Edge[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[4] ?? m[5] ?? m[6];
    if (!spec.startsWith(".") || !spec.endsWith(".ts")) continue;
    const parts = path.split("/").slice(0, -1);
    for (const segment of spec.split("/")) {
      if (segment === "..") parts.pop();
      else if (segment !== ".") parts.push(segment);
    }
    const names = (m[3] ?? "").trim();
    const allTypes = names.startsWith("{") &&
      names.slice(1, -1).split(",").map((s) => s.trim()).filter(Boolean)
        .every((s) => s.startsWith("type "));
    edges.push({
      from: path,
      to: parts.join("/"),
      line: text.slice(0, m.index).split("\n").length,
      typeOnly: Boolean(m[2]) || allTypes,
    });
  }
  return edges;
}

/** The arrows the table forbids, one message each. */
export function forbidden(edges: readonly Edge[]): string[] {
  const problems: string[] = [];
  for (const e of edges) {
    const a = folderOf(e.from), b = folderOf(e.to);
    if (APP_FORBIDS[a]?.includes(b)) {
      problems.push(`${e.from}:${e.line} imports ${e.to}: ${a}/ must not import ${b}/`);
    }
    if (a === b || APPS.includes(a)) continue;
    const allowed = ALLOWED[a];
    if (allowed === undefined) {
      problems.push(`${e.from}: folder ${a}/ has no place in tools/layers.ts ALLOWED; add it`);
    } else if (!allowed.includes(b)) {
      const may = allowed.length ? allowed.map((f) => `${f}/`).join(", ") : "nothing else";
      problems.push(`${e.from}:${e.line} imports ${e.to}: ${a}/ may import ${may}`);
    }
  }
  return [...new Set(problems)];
}

/** Groups of nodes that reach each other (Tarjan's strongly connected components), size > 1. */
export function cycles(adjacency: Map<string, Set<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>(), found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of adjacency.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) found.push(component.sort());
  };
  for (const v of adjacency.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** Runtime cycles between folders, and cycles of files that cross a folder. */
export function runtimeCycles(edges: readonly Edge[]): string[] {
  const runtime = edges.filter((e) => !e.typeOnly);
  const graph = (key: (path: string) => string) => {
    const adjacency = new Map<string, Set<string>>();
    for (const e of runtime) {
      const a = key(e.from), b = key(e.to);
      if (a === b) continue;
      if (!adjacency.has(a)) adjacency.set(a, new Set());
      adjacency.get(a)!.add(b);
    }
    return adjacency;
  };
  const problems = cycles(graph(folderOf)).map((c) => `folder cycle: ${c.join(" <-> ")}`);
  for (const c of cycles(graph((p) => p))) {
    if (new Set(c.map(folderOf)).size > 1) {
      problems.push(`file cycle across folders: ${c.join(" -> ")}`);
    }
  }
  return problems;
}

/** Every .ts file under `root`, relative to it. */
async function sources(root: string, dir = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(`${root}/${dir}`)) {
    if (entry.name.startsWith(".") || ["node_modules", "runs"].includes(entry.name)) continue;
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory) files.push(...await sources(root, path));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) files.push(path);
  }
  return files;
}

/** Checks every .ts file under `root`: the number of files and imports, and the problems. */
export async function checkLayers(
  root: string,
): Promise<{ files: number; imports: number; problems: string[] }> {
  const edges: Edge[] = [];
  const files = await sources(root);
  for (const file of files) {
    edges.push(...importsOf(file, await Deno.readTextFile(`${root}/${file}`)));
  }
  const problems = [...forbidden(edges), ...runtimeCycles(edges)];
  return { files: files.length, imports: edges.length, problems };
}

if (import.meta.main) {
  const { files, imports, problems } = await checkLayers((Deno.args[0] ?? ".").replace(/\/$/, ""));
  for (const problem of problems) console.log(problem);
  console.log(`${files} files, ${imports} imports, ${problems.length} layering problems`);
  if (problems.length > 0) Deno.exit(1);
}
