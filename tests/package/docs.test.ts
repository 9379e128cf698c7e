/**
 * The generated documentation of the package: what a learner starts with has a runnable
 * `@example` (`deno task test:doc` runs them all), and no public doc comment sends the
 * reader to a module comment that the symbol's page does not show.
 */

import assert from "node:assert/strict";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

/** Symbols a learner starts with, by export entry. */
const WITH_EXAMPLES: Record<string, string[]> = {
  "mod.ts": [
    "Tensor",
    "tensor",
    "fromArray",
    "randn",
    "zeros",
    "manualSeed",
    "add",
    "matmul",
    "conv2d",
    "localResponseNorm",
    "maxPool2d",
    "dropout",
    "softmax",
    "crossEntropy",
    "noGrad",
    "scope",
    "gradcheck",
    "Module",
    "Sequential",
    "Conv2d",
    "Linear",
    "LocalResponseNorm",
    "MaxPool2d",
    "Dropout",
    "SGD",
    "StepLR",
    "ReduceLROnPlateau",
    "saveCheckpoint",
    "loadCheckpoint",
    "initWebGPU",
  ],
  "data/mod.ts": ["loadFashionMnist"],
  "models/alexnet.ts": ["alexnet", "alexnetMini", "alexnetTorchvision"],
};

interface DocNode {
  name: string;
  declarations: { jsDoc?: { doc?: string; tags?: { kind: string }[] } }[];
}

/** The exported symbols of `entry` as `deno doc --json` describes them. */
async function symbolsOf(entry: string): Promise<DocNode[]> {
  const output = await new Deno.Command("deno", {
    args: ["doc", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  const json = JSON.parse(new TextDecoder().decode(output.stdout));
  const [module] = Object.values(json.nodes) as { symbols: DocNode[] }[];
  return module.symbols;
}

for (const [entry, names] of Object.entries(WITH_EXAMPLES)) {
  Deno.test(`docs: ${entry} has examples for what a learner starts with, and self-contained docs`, async () => {
    const symbols = await symbolsOf(entry);
    const missing = names.filter((name) => {
      const symbol = symbols.find((s) => s.name === name);
      assert.ok(symbol, `${entry} does not export ${name}`);
      return !symbol.declarations.some((d) => d.jsDoc?.tags?.some((t) => t.kind === "example"));
    });
    assert.deepEqual(missing, [], `symbols of ${entry} without an @example`);
    const pointing = symbols
      .filter((s) => s.declarations.some((d) => /module (comment|doc)/i.test(d.jsDoc?.doc ?? "")))
      .map((s) => s.name);
    assert.deepEqual(pointing, [], `docs of ${entry} that point to a module comment`);
  });
}
