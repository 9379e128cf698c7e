/**
 * Every notebook in notebooks/ runs top to bottom without an error in Deno's Jupyter kernel
 * (`jupyter nbconvert --execute`, kernel "deno", registered by `deno jupyter --install`), and
 * is stored with its outputs stripped.
 *
 * Without `jupyter` the notebooks are only checked for stripped outputs, with a message,
 * except in CI (env CI=true), where a missing jupyter fails.
 *
 * @module
 */

import assert from "node:assert/strict";

const DIR = new URL("../../notebooks/", import.meta.url);

const notebooks = [...Deno.readDirSync(DIR)]
  .filter((entry) => entry.name.endsWith(".ipynb"))
  .map((entry) => entry.name)
  .sort();

const jupyterAvailable = await (async () => {
  try {
    const args = ["nbconvert", "--version"];
    return (await new Deno.Command("jupyter", { args, stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
})();

if (!jupyterAvailable) {
  if (Deno.env.get("CI") === "true") {
    throw new Error("CI=true but jupyter is missing: apt-get install jupyter-nbconvert");
  }
  console.warn("jupyter not found: notebooks are not executed (apt-get install jupyter-nbconvert)");
}

interface Cell {
  cell_type: string;
  source: string[];
  outputs?: { output_type: string; ename?: string; evalue?: string }[];
  execution_count?: number | null;
}

function cellsOf(text: string): Cell[] {
  return (JSON.parse(text) as { cells: Cell[] }).cells;
}

Deno.test("notebooks: there are five, stored with outputs stripped", () => {
  assert.equal(notebooks.length, 5, `notebooks/: ${notebooks.join(", ")}`);
  for (const name of notebooks) {
    const cells = cellsOf(Deno.readTextFileSync(new URL(name, DIR)));
    cells.filter((c) => c.cell_type === "code").forEach((cell, i) => {
      assert.deepEqual(cell.outputs, [], `${name}: code cell ${i} has stored outputs`);
      assert.equal(cell.execution_count, null, `${name}: code cell ${i} has an execution count`);
    });
  }
});

/** The package's entry points (deno.json "exports"), as a notebook in notebooks/ imports them. */
const PACKAGE_ENTRY_POINTS = ["../mod.ts", "../data/mod.ts", "../models/alexnet.ts"];

Deno.test("notebooks: import only what the package exports (its entry points)", () => {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  assert.deepEqual(
    PACKAGE_ENTRY_POINTS.map((path) => path.replace("../", "./")).sort(),
    (Object.values(config.exports) as string[]).sort(),
  );
  for (const name of notebooks) {
    const code = cellsOf(Deno.readTextFileSync(new URL(name, DIR)))
      .filter((c) => c.cell_type === "code")
      .map((c) => c.source.join(""))
      .join("\n");
    const specifiers = [...code.matchAll(/^\s*(?:import|export)\b[^;]*?from\s*"([^"]+)"/gm)]
      .map((m) => m[1]);
    assert.ok(specifiers.length > 0, `${name}: no imports found`);
    for (const specifier of specifiers) {
      assert.ok(
        PACKAGE_ENTRY_POINTS.includes(specifier),
        `${name} imports ${specifier}; import from ${PACKAGE_ENTRY_POINTS.join(", ")} only`,
      );
    }
  }
});

Deno.test({
  name: "notebooks: each runs without an error in Deno's Jupyter kernel",
  ignore: !jupyterAvailable,
  async fn(t) {
    const out = await Deno.makeTempDir({ prefix: "tessera-notebooks-" });
    try {
      for (const name of notebooks) {
        await t.step(name, async () => {
          const result = await new Deno.Command("jupyter", {
            args: [
              "nbconvert",
              "--to",
              "notebook",
              "--execute",
              "--ExecutePreprocessor.kernel_name=deno",
              "--ExecutePreprocessor.timeout=180",
              "--output-dir",
              out,
              new URL(name, DIR).pathname,
            ],
            stdout: "piped",
            stderr: "piped",
          }).output();
          const stderr = new TextDecoder().decode(result.stderr);
          assert.ok(result.success, `${name} failed:\n${stderr.slice(-3000)}`);
          const errors = cellsOf(await Deno.readTextFile(`${out}/${name}`))
            .flatMap((cell) => cell.outputs ?? [])
            .filter((output) => output.output_type === "error");
          assert.deepEqual(errors, [], `${name}: a cell raised an error`);
        });
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
