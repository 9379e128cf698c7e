/**
 * A program that trains AlexNet-mini for one step on the cpu device and ends without calling
 * anything to stop the threads (tests/cpu/threads.test.ts runs it and checks that it exits by
 * itself). Prints the thread count it ran on and the loss.
 *
 * @module
 */

import { cpuOptions, crossEntropy, fromArray, SGD } from "../../../mod.ts";
import { alexnetMini } from "../../../models/alexnet.ts";
import { Rng } from "../../../tensor/random.ts";

const batch = 16;
const model = alexnetMini();
model.train();
const optimizer = new SGD(model.parameters(), { lr: 1e-3, momentum: 0.9 });
const rng = new Rng(0);
const images = new Float32Array(batch * 28 * 28).map(() => rng.normal());
const labels = new Int32Array(batch).map(() => rng.int(10));
const x = fromArray(images, [batch, 1, 28, 28]);
const y = fromArray(labels, [batch]);
const loss = crossEntropy(model.forward(x), y);
loss.backward();
optimizer.step();
console.log(`threads ${cpuOptions().threads} loss ${loss.dataSync()[0]}`);
