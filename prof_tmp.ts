import { fromArray, crossEntropy, randn, Rng } from "./mod.ts";
import { tryWebGPU } from "./examples/alexnet/device.ts";
import { alexnetMini } from "./examples/alexnet/models.ts";
const { backend } = await tryWebGPU();
const rt = (backend as any).runtime;
const model = await alexnetMini({ inChannels: 1, numClasses: 10, inputSize: 28 }).to("gpu");
const x = randn([128, 1, 28, 28], { device: "gpu" });
const labels = fromArray(new Int32Array(128).map((_, i) => i % 10), [128], { device: "gpu" });
const layers = [...(model as any).children()];
const sync = async () => { rt.flush(); await rt.device.queue.onSubmittedWorkDone(); };
for (let rep = 0; rep < 3; rep++) {
  let h = x; const times: string[] = [];
  await sync();
  for (const [name, layer] of layers) {
    const t0 = performance.now(); h = layer.forward(h); await sync();
    times.push(`${name}:${(performance.now() - t0).toFixed(0)}`);
  }
  const loss = crossEntropy(h, labels);
  // time backward per node: monkeypatch node backward closures
  const t0 = performance.now();
  const order: any[] = [];
  // wrap each node's backward to time it
  const seen = new Set();
  const stack = [loss];
  while (stack.length) { const t = stack.pop(); if (!t.node || seen.has(t)) continue; seen.add(t); const n = t.node; const orig = n.backward; const op = n.op;
    (n as any).backward = (g: any) => { const s = performance.now(); const r = orig(g); rt.flush(); order.push([op, s]); return r; };
    for (const i of n.inputs) stack.push(i); }
  loss.backward(); await sync();
  console.log(times.join(" "), "| backward total", (performance.now() - t0).toFixed(0));
}
