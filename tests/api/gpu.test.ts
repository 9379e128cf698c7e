/**
 * The API cases that need a real second device: typed arrays uploaded to the GPU, a model
 * moved without `await`, printing a GPU tensor, and float64 asked of the GPU.
 *
 * @module
 */

import assert from "node:assert/strict";
import { cast, fromArray, Linear, manualSeed, randn, ReLU, Sequential, tensor } from "../../mod.ts";
import { gpuTest } from "../support/gpu_helpers.ts";

gpuTest("a Uint8Array uploaded to the GPU reads back as the same numbers", async () => {
  const bytes = [1, 2, 250, 255, 7, 9, 11, 13];
  const t = fromArray(new Uint8Array(bytes), [8], { device: "gpu" });
  assert.equal(t.dtype, "float32");
  assert.deepEqual([...await t.data()], bytes);
  t.dispose();
});

gpuTest(
  "model.to('gpu') without await, then loadStateDict: the loaded weights are on the GPU",
  async () => {
    manualSeed(0);
    const model = new Sequential([new Linear(3, 2), new ReLU()]);
    const trained = new Map([...model.stateDict()].map(([k, v]) => [k, v.add(1).detach()]));
    void model.to("gpu");
    assert.equal(model.parameters()[0].device, "gpu");
    await model.loadStateDict(trained);
    for (const [k, v] of model.stateDict()) {
      assert.deepEqual([...await v.data()], [...trained.get(k)!.dataSync()], k);
    }
    const back = model.to("cpu");
    assert.throws(() => model.parameters(), /still moving the weights; await the move first/);
    await back;
    assert.equal(model.parameters()[0].device, "cpu");
  },
);

gpuTest("a GPU tensor prints its shape and says how to read its values", async () => {
  const x = tensor([1, 2, 3], { device: "gpu" });
  assert.equal(
    Deno.inspect(x),
    "Tensor([3], float32, gpu): values on the gpu; read them with await x.data() or await x.toArray()",
  );
  const moved = await x.to({ device: "cpu", dtype: "float64" });
  assert.equal(moved.dtype, "float64");
  assert.deepEqual([...moved.dataSync()], [1, 2, 3]);
  x.dispose();
});

gpuTest("float64 is refused on the GPU by name, with what to do", async () => {
  const x = tensor([1, 2], { device: "gpu" });
  assert.throws(
    () => cast(x, "float64"),
    /cast: the gpu backend has no float64; move the tensor to the cpu first/,
  );
  await assert.rejects(x.to({ dtype: "float64" }), /to: the gpu backend has no float64/);
  manualSeed(1);
  const model = new Linear(2, 2);
  await model.to({ dtype: "float64" });
  await assert.rejects(
    model.to("gpu"),
    /Module.to: the gpu backend has no float64; use \{ device, dtype: "float32" \}/,
  );
  await model.to({ device: "gpu", dtype: "float32" });
  assert.equal(model.weight.device, "gpu");
  assert.equal(model.forward(randn([1, 2], { device: "gpu" })).device, "gpu");
  x.dispose();
});
