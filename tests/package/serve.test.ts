/**
 * The published package, imported the way a user imports it from JSR.
 *
 * The test asks `deno publish --dry-run` which files the package holds, serves exactly those
 * over 127.0.0.1 with bare specifiers rewritten through deno.json's `imports` (as JSR does at
 * publish time: `imagescript/...` becomes `npm:imagescript@1.3.1/...`), and runs a fresh
 * `deno` process with narrow permissions that imports every export from there and trains one
 * step of AlexNet-mini on the CPU; a second one decodes a PNG, the first use of imagescript; a
 * third runs notebook 2's custom op (softplus through `record` and `customOp`, gradchecked).
 * A file the package leaves out but the code needs shows up as a failed import; a module that
 * asks for a permission at import time fails the child.
 *
 * Offline: the child's npm packages come from the npm cache that `deno install` filled (its
 * remote modules go to a fresh DENO_DIR that links that cache), and its proxy variables point
 * every non-local request at a closed port, so nothing but 127.0.0.1 can answer.
 */

import assert from "node:assert/strict";
import { encodePng } from "../../data/codecs.ts";

const ROOT = new URL("../../", import.meta.url);
const ROOT_PATH = decodeURIComponent(ROOT.pathname);
/** The Fashion-MNIST subset in the repository, which the child reads as its cache. */
const DATA_DIR = `${ROOT_PATH}data/fashion-mnist`;
/** Package bytes that are neither code nor docs must stay under this. */
const MAX_OTHER_BYTES = 512 * 1024;

const config = JSON.parse(await Deno.readTextFile(`${ROOT_PATH}deno.json`)) as {
  exports: Record<string, string>;
  imports: Record<string, string>;
};

/** Runs `deno` with `args`; returns its output, failing with it when it exits non-zero. */
async function deno(
  args: string[],
  options: Deno.CommandOptions = {},
): Promise<{ stdout: string; stderr: string }> {
  const output = await new Deno.Command("deno", {
    args,
    stdout: "piped",
    stderr: "piped",
    ...options,
  })
    .output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  if (!output.success) {
    throw new Error(`deno ${args.join(" ")} failed (${output.code}):\n${stdout}\n${stderr}`);
  }
  return { stdout, stderr };
}

/** The package's files as paths relative to the root, from `deno publish --dry-run`. */
async function publishedFiles(): Promise<string[]> {
  const output = await deno(["publish", "--dry-run", "--allow-dirty", "--no-check"], {
    cwd: ROOT_PATH,
    env: { NO_COLOR: "1" },
  });
  const text = output.stdout + output.stderr;
  const files = [...text.matchAll(/^\s+(file:\/\/\S+) \(/gm)].map((m) =>
    decodeURIComponent(new URL(m[1]).pathname).slice(ROOT_PATH.length)
  );
  assert.ok(files.length > 20, `deno publish --dry-run listed ${files.length} files:\n${text}`);
  return files;
}

/** What an import specifier becomes after JSR's rewrite; undefined when none applies. */
function mapSpecifier(specifier: string): string | undefined {
  if (/^(\.{0,2}\/|[a-z][a-z0-9+.-]*:)/i.test(specifier)) return specifier; // relative or URL
  if (config.imports[specifier]) return config.imports[specifier];
  for (const [key, target] of Object.entries(config.imports)) {
    if (specifier.startsWith(`${key}/`)) return `${target}${specifier.slice(key.length)}`;
  }
  return undefined;
}

/**
 * Rewrites the specifiers of static, type-only, re-export and literal dynamic imports;
 * collects bare specifiers that deno.json does not map (JSR would refuse those).
 */
function rewriteImports(source: string, file: string, unmapped: string[]): string {
  const rewrite = (whole: string, lead: string, quote: string, specifier: string) => {
    const mapped = mapSpecifier(specifier);
    if (mapped === undefined) {
      unmapped.push(`${file}: ${specifier}`);
      return whole;
    }
    return `${lead}${quote}${mapped}${quote}`;
  };
  // Statements at the start of a line: `import ... from "x"`, `import "x"`, `export { ... }
  // from "x"`, `export * from "x"` (no string or `;` before the specifier, so the contents of
  // strings and doc comments are never taken for imports).
  const statement =
    /(^[ \t]*(?:import\s+(?:[^;"'`]*?\bfrom\s*)?|export\s+(?:type\s+)?(?:\{[^}]*\}|\*(?:\s+as\s+[\w$]+)?)\s*from\s*))(["'])([^"'\n]+)\2/gm;
  // Dynamic imports with a literal specifier (not a method named `import`).
  const dynamic = /((?<![.\w$])import\s*\(\s*)(["'])([^"'\n]+)\2/g;
  return source.replace(statement, rewrite).replace(dynamic, rewrite);
}

const CONTENT_TYPES: Record<string, string> = {
  ts: "application/typescript",
  js: "application/javascript",
  json: "application/json",
};

/** Serves `files` (paths relative to the root) on 127.0.0.1, TypeScript and JavaScript rewritten. */
async function servePackage(files: string[]) {
  const bodies = new Map<string, Uint8Array | string>();
  const unmapped: string[] = [];
  for (const file of files) {
    const extension = file.slice(file.lastIndexOf(".") + 1);
    bodies.set(
      file,
      extension === "ts" || extension === "js"
        ? rewriteImports(await Deno.readTextFile(`${ROOT_PATH}${file}`), file, unmapped)
        : await Deno.readFile(`${ROOT_PATH}${file}`),
    );
  }
  const served: string[] = [];
  const missing: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname).slice(1);
    const body = bodies.get(path);
    if (body === undefined) {
      missing.push(path);
      return new Response("not in the package", { status: 404 });
    }
    served.push(path);
    const type = CONTENT_TYPES[path.slice(path.lastIndexOf(".") + 1)];
    return new Response(body as BodyInit, {
      headers: { "content-type": type ?? "application/octet-stream" },
    });
  });
  return { port: server.addr.port, served, missing, unmapped, stop: () => server.shutdown() };
}

/** The child: imports every export, then one AlexNet-mini step on the CPU; prints JSON. */
const CHILD = `
const [base, entriesJson, dataDir] = Deno.args;
const entries = JSON.parse(entriesJson);
const exported = {};
const modules = {};
for (const [name, path] of Object.entries(entries)) {
  modules[name] = await import(new URL(path, base).href);
  exported[name] = Object.keys(modules[name]).sort();
}
const { crossEntropy, fromArray, noGrad, SGD } = modules["."];
const { DataLoader, fashionMnistSpec, loadFashionMnist } = modules["./data"];
const { alexnetMini } = modules["./alexnet"];

const fm = await loadFashionMnist({ cacheDir: dataDir });
const loader = new DataLoader(fm.train, { batchSize: 16, spec: fashionMnistSpec(), seed: 1 });
const { value: batch } = await loader.epoch(0)[Symbol.asyncIterator]().next();
const model = alexnetMini({ inChannels: 1, numClasses: 10, seed: 1 });
const optimizer = new SGD(model.parameters(), { lr: 0.01 });
const x = fromArray(batch.images, batch.shape);
const evalLoss = () => {
  model.eval();
  const loss = noGrad(() => crossEntropy(model.forward(x), batch.labels));
  model.train();
  return loss.item();
};
const before = await evalLoss();
const weight = model.parameters()[0];
const weightBefore = Float64Array.from(weight.dataSync());
const loss = crossEntropy(model.forward(x), batch.labels);
const trainLoss = await loss.item();
optimizer.zeroGrad();
loss.backward();
optimizer.step();
const moved = weight.dataSync().some((v, i) => v !== weightBefore[i]);
console.log(JSON.stringify({
  exported, kind: fm.kind, batchShape: batch.shape, before, trainLoss, after: await evalLoss(), moved,
}));
`;

/**
 * A second child, without the root module: builds AlexNet-mini from `./alexnet` alone (which
 * must register the CPU backend itself) and decodes a PNG through `./data`, which imports
 * imagescript's decoders on first use.
 */
const ENTRY_CHILD = `
const [base, base64] = Deno.args;
const { alexnetMini } = await import(base + "models/alexnet.ts");
const { decodeImage } = await import(base + "data/mod.ts");
const parameters = alexnetMini({ inChannels: 1, numClasses: 10 }).parameterCount();
const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
const image = await decodeImage(bytes, "tiny.png");
const shape = [image.channels, image.height, image.width];
console.log(JSON.stringify({ parameters, shape, data: [...image.data] }));
`;

Deno.test("package: served as JSR serves it, every export imports, AlexNet-mini trains a step, images decode, notebook 2 runs", async () => {
  const files = await publishedFiles();

  // What the package carries: code and docs, not the 5 MB of committed Fashion-MNIST images.
  assert.ok(files.includes("mod.ts") && files.includes("models/alexnet.ts"), files.join(" "));
  assert.deepEqual(files.filter((f) => f.startsWith("data/fashion-mnist/")), []);
  let other = 0;
  for (const file of files) {
    if (!/\.(ts|js|md)$/.test(file)) other += (await Deno.stat(`${ROOT_PATH}${file}`)).size;
  }
  assert.ok(other < MAX_OTHER_BYTES, `${other} bytes of the package are neither code nor docs`);
  for (const path of Object.values(config.exports)) {
    assert.ok(files.includes(path.replace(/^\.\//, "")), `export ${path} is not in the package`);
  }

  const npmCache = JSON.parse((await deno(["info", "--json"])).stdout).npmCache as string;
  const denoDir = await Deno.makeTempDir({ prefix: "tessera-package-" });
  const server = await servePackage(files);
  try {
    await Deno.symlink(npmCache, `${denoDir}/npm`);
    await Deno.writeTextFile(`${denoDir}/child.ts`, CHILD);
    const base = `http://127.0.0.1:${server.port}/`;
    const childEnv = {
      DENO_DIR: denoDir,
      NO_COLOR: "1",
      HTTP_PROXY: "http://127.0.0.1:9",
      HTTPS_PROXY: "http://127.0.0.1:9",
      NO_PROXY: "127.0.0.1",
    };
    const { stdout, stderr } = await deno([
      "run",
      "--no-config",
      "--no-lock",
      `--allow-import=127.0.0.1:${server.port}`, // what jsr.io is granted by default
      `--allow-read=${DATA_DIR}`,
      "child.ts",
      base,
      JSON.stringify(config.exports),
      DATA_DIR,
    ], { cwd: denoDir, clearEnv: true, env: childEnv });
    assert.deepEqual(server.unmapped, [], "bare specifiers that deno.json's imports do not map");
    assert.deepEqual(server.missing, [], "modules the code imports but the package leaves out");
    // Apart from the download lines, a user sees nothing while the package loads and trains.
    const noise = stderr.split("\n").filter((line) => line && !line.startsWith("Download "));
    assert.deepEqual(noise, [], "unexpected output on stderr");
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!);

    // Every export entry exposes what it exposes locally.
    for (const [name, path] of Object.entries(config.exports)) {
      const local = Object.keys(await import(new URL(path, ROOT).href)).sort();
      assert.deepEqual(result.exported[name], local, `export ${name}`);
    }
    assert.ok(server.served.includes("models/alexnet.ts"));

    // The data came through the library's search (cache step, since the child may only read
    // DATA_DIR), and one SGD step lowered the loss on its own batch.
    assert.equal(result.kind, "cache");
    assert.deepEqual(result.batchShape, [16, 1, 28, 28]);
    assert.ok(Math.abs(result.before - Math.log(10)) < 0.5, `initial loss ${result.before}`);
    assert.ok(Number.isFinite(result.trainLoss), `training loss ${result.trainLoss}`);
    assert.equal(result.moved, true, "the first conv weight did not change");
    console.log(`  loss on the batch: ${result.before} before the step, ${result.after} after`);
    assert.ok(result.after < result.before, `loss ${result.before} -> ${result.after}`);

    // `./alexnet` works without the root module. Decoding an image is what needs permissions:
    // the npm package's files and its one variable; the decoders' dynamic imports resolve
    // through the same rewrite.
    const pixels = Uint8Array.from({ length: 3 * 2 * 3 }, (_, i) => i * 10);
    const png = encodePng({ data: pixels, channels: 3, height: 2, width: 3 });
    await Deno.writeTextFile(`${denoDir}/entries.ts`, ENTRY_CHILD);
    const decoded = await deno([
      "run",
      "--no-config",
      "--no-lock",
      `--allow-import=127.0.0.1:${server.port}`,
      `--allow-read=${npmCache}`,
      "--allow-env=IMAGESCRIPT_WASM_SIMD",
      "entries.ts",
      base,
      btoa(String.fromCharCode(...png)),
    ], { cwd: denoDir, clearEnv: true, env: childEnv });
    const image = JSON.parse(decoded.stdout.trim().split("\n").at(-1)!);
    assert.ok(image.parameters > 100_000, `AlexNet-mini has ${image.parameters} parameters`);
    assert.deepEqual(image.shape, [3, 2, 3]);
    assert.deepEqual(image.data, [...pixels]);
    assert.deepEqual(server.missing, []);

    // Notebook 2's custom op (record, customOp, gradcheck), its code cells run as one module
    // against the served package: a notebook may import only the package's entry points.
    const notebook = JSON.parse(
      await Deno.readTextFile(`${ROOT_PATH}notebooks/02_custom_op_and_gradcheck.ipynb`),
    ) as { cells: { cell_type: string; source: string[] }[] };
    const code = notebook.cells.filter((c) => c.cell_type === "code")
      .map((c) => c.source.join("")).join("\n");
    const entries = Object.values(config.exports).map((path) => path.replace(/^\.\//, ""));
    const onServer = code.replace(/(from\s*)"\.\.\/([^"]+)"/g, (_whole, lead, path) => {
      assert.ok(entries.includes(path), `notebook 2 imports ../${path}, not a package export`);
      return `${lead}"${base}${path}"`;
    });
    assert.doesNotMatch(onServer, /from\s*"\./, "notebook 2 imports a local file");
    await Deno.writeTextFile(`${denoDir}/notebook2.ts`, onServer);
    const ran = await deno([
      "run",
      "--no-config",
      "--no-lock",
      `--allow-import=127.0.0.1:${server.port}`,
      "notebook2.ts",
    ], { cwd: denoDir, clearEnv: true, env: childEnv });
    // Both correct versions of softplus pass gradcheck; the wrong one is caught (else it throws).
    assert.equal(ran.stdout.match(/^gradcheck passed/gm)?.length, 2, ran.stdout);
    assert.match(ran.stdout, /^gradcheck FAILED/m, ran.stdout);
    assert.deepEqual(server.missing, []);
  } finally {
    await server.stop();
    await Deno.remove(denoDir, { recursive: true });
  }
});
