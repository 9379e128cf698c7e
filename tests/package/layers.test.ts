/** The layering check of tools/layers.ts: its rules catch a wrong arrow, and the repository has none. */
import assert from "node:assert/strict";
import { checkLayers, type Edge, forbidden, importsOf, runtimeCycles } from "../../tools/layers.ts";

Deno.test("layers: a reference kernel importing the cpu device is forbidden, and named", () => {
  const edges = importsOf(
    "tensor/ops/gemm.ts",
    'import { engineFor } from "../../cpu/kernels/gemm.ts";\n',
  );
  assert.deepEqual(edges, [{
    from: "tensor/ops/gemm.ts",
    to: "cpu/kernels/gemm.ts",
    line: 1,
    typeOnly: false,
  }]);
  assert.deepEqual(forbidden(edges), [
    "tensor/ops/gemm.ts:1 imports cpu/kernels/gemm.ts: tensor/ may import backend/",
  ]);
});

Deno.test("layers: the devices are peers, backend/ imports nothing, apps are free", () => {
  const edge = (from: string, to: string, typeOnly = false): Edge => ({
    from,
    to,
    line: 1,
    typeOnly,
  });
  assert.equal(forbidden([edge("gpu/backend.ts", "cpu/pool.ts")]).length, 1);
  assert.equal(forbidden([edge("cpu/backend.ts", "gpu/pool.ts")]).length, 1);
  assert.equal(forbidden([edge("backend/registry.ts", "tensor/shape.ts", true)]).length, 1);
  assert.equal(forbidden([edge("nn/layers.ts", "cpu/mod.ts")]).length, 1);
  assert.deepEqual(
    forbidden([edge("tests/x.test.ts", "cpu/pool.ts"), edge("cpu/pool.ts", "tensor/ref.ts")]),
    [],
  );
  assert.match(forbidden([edge("lib2/a.ts", "tensor/ref.ts")])[0], /folder lib2\/ has no place/);
  assert.deepEqual(forbidden([edge("bench/bench.ts", "examples/alexnet/trainer.ts")]), [
    "bench/bench.ts:1 imports examples/alexnet/trainer.ts: bench/ must not import examples/",
  ]);
});

Deno.test("layers: runtime cycles across folders are found, type-only ones are not", () => {
  const a = { from: "io/a.ts", to: "data/b.ts", line: 1, typeOnly: false };
  const b = { from: "data/b.ts", to: "io/a.ts", line: 1, typeOnly: false };
  assert.deepEqual(runtimeCycles([a, b]), [
    "folder cycle: data <-> io",
    "file cycle across folders: data/b.ts -> io/a.ts",
  ]);
  assert.deepEqual(runtimeCycles([a, { ...b, typeOnly: true }]), []);
});

Deno.test("layers: the repository has no layering problem", async () => {
  const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const { files, problems } = await checkLayers(root);
  assert.ok(files > 100, `only ${files} files found under ${root}`);
  assert.deepEqual(problems, []);
});
