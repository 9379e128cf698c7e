/**
 * The paper's model parallelism (Krizhevsky et al. 2012, section 3.2), for learning: AlexNet
 * split over two devices, each holding half of the kernels of every layer, with activations
 * crossing between them only where the paper's two GPUs talked.
 *
 * ## The split
 *
 * Device k (k = 0, 1) holds output channels [k·O/2, (k+1)·O/2) of every convolution and
 * output features [k·O/2, (k+1)·O/2) of every fully connected layer, with the matching bias
 * slice: rows of the weight along its first axis. A layer then falls in one of two kinds:
 *
 * - grouped (conv2, conv4, conv5 with groups 2): group k reads exactly the channels device
 *   k already holds, so it runs there with no communication ("the GPUs communicate only in
 *   certain layers", section 3.2);
 * - ungrouped (conv3, fc6, fc7, fc8): every output reads every input channel, so before it
 *   each device needs both halves of the previous activation, concatenated on axis 1 in
 *   device order. conv1 is ungrouped too, but its input is the image, which both devices get.
 *
 * fc6's input needs no special care for the flatten: flatten of [N, C, H, W] is channel-major
 * within each sample, so concatenating two flattened channel halves row by row yields exactly
 * the flatten of the full tensor. The cut is therefore placed right before the Linear layer,
 * and each device flattens its own half (a view, no copy).
 * Finally fc8's two halves of the logits meet on device 0, where the loss is computed.
 *
 * ## Autograd across devices
 *
 * Ops are synchronous and each op's inputs must live on one device, while reading a GPU
 * tensor back is asynchronous: a cross-device copy (`fromArray(await t.data(), ...)`) cannot
 * sit inside a graph. So the network is cut into stages at the exchanges, as model-parallel
 * runtimes do. Every stage input is a fresh leaf (`requiresGrad`) on its device: the copy
 * received from the other device, and, for the device's own half, a detached view (no copy).
 * Forward runs stage by stage; backward runs the stages in reverse, `output.backward(upstream)`
 * on each device, after which each input leaf holds dL/d(that half). A stage's output feeds
 * its own device's next stage and the other device's, so its upstream gradient is the sum of
 * the two leaves' gradients: the local one, plus the remote one copied back.
 *
 * ## Where the split model differs from the one-device model
 *
 * - LRN (section 3.3) sums over 5 neighbouring channels. On a split model each device
 *   normalises its own half, as each of the paper's GPUs did: the window of the edge channels
 *   (47 and 48 of conv1's 96) stops at the device boundary. The one-device `alexnet()` lets
 *   it cross, so the two are not numerically the same network when LRN is on. The tests prove
 *   equality against a one-device reference whose LRN also sees only its own half, and that
 *   the plain one-device model differs.
 * - Dropout's counter-based mask depends on (seed, flat index); a half of fc6's output has
 *   other flat indices than the same elements of the whole, so the one-device masks cannot be
 *   reproduced. Each device draws its own masks, from two seeds taken from the source layer's
 *   generator. With dropout on, the two-device run is a different (equally valid) sample of
 *   the same training; the losses match the one-device run exactly only with dropout off.
 *
 * Each device has its own SGD over its own parameters; the update is elementwise, so the two
 * updates together are the one-device update.
 *
 * ## Transfer time
 *
 * WebGPU offers no peer-to-peer path between two devices (the paper's GPUs read each other's
 * memory over PCIe), so a copy goes through the host: read back, then write. Each exchange
 * first waits until both devices are idle, so the time reported is the copy itself, not the
 * compute queued before it. It ends once the values are written to the receiving device's
 * queue (`queue.writeBuffer` takes them from the host array at once; the device orders its
 * upload before the next kernel). Waiting for the upload to finish as well would measure
 * mostly the latency of that wait: on lavapipe it added 12 ms per exchange, for 40 KB.
 * On lavapipe a read-back costs about 12 ms whatever its size (gpu/README.md: the `mapAsync`
 * floor), so the exchanges of the mini model are latency, not bandwidth.
 *
 * ## Memory
 *
 * Each stage's `backward` releases that stage's graph. The rest is this file's to free, and
 * it does, every step: the images on each device, every leaf and its gradient, every received
 * copy, every stage output and every upstream gradient.
 *
 * This file is the split model only; two_devices.ts trains it (`--devices 2`) with the run
 * bookkeeping the one-device loop uses (trainer.ts).
 *
 * @module
 */

import {
  AdaptiveAvgPool2d,
  add,
  argmax,
  AvgPool2d,
  type Backend,
  concat,
  Conv2d,
  crossEntropy,
  Dropout,
  Flatten,
  fromArray,
  getBackend,
  type HostTensor,
  Identity,
  Linear,
  LocalResponseNorm,
  MaxPool2d,
  type Module,
  noGrad,
  ReLU,
  Rng,
  Sequential,
  type SGD,
  Tanh,
  type Tensor,
} from "../../mod.ts";

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const formatShape = (shape: readonly number[]) => `[${shape.join(", ")}]`;

/** Cross-device copies of one training step. */
export interface TransferStats {
  /** Milliseconds spent copying activations (forward). */
  forwardMs: number;
  /** Milliseconds spent copying gradients back (backward). */
  backwardMs: number;
  /** Bytes of activations copied (forward). */
  forwardBytes: number;
  /** Bytes of gradients copied (backward). */
  backwardBytes: number;
}

/** What {@link TwoDeviceAlexNet.trainStep} reports. */
export interface TwoDeviceStepResult {
  /** Mean cross-entropy of the batch, before the update. */
  loss: number;
  /** Images of the batch whose largest logit is the label. */
  correct: number;
  /** The step's cross-device copies. */
  transfer: TransferStats;
}

/** A weighted layer of the source model and its two halves. */
interface SplitLayer {
  /** Dotted name in the source model (`conv3`), for writing the halves back. */
  name: string;
  halves: [Conv2d | Linear, Conv2d | Linear];
}

/** The layers between two exchanges, one copy per device. */
interface Stage {
  halves: [Sequential, Sequential];
}

type Pair<T> = [T, T];

/** One copy to make: `tensor` to device `to`. */
interface CopyRequest {
  tensor: Tensor;
  to: 0 | 1;
}

/** Transfers of no step (a counter's start). */
export function zeroStats(): TransferStats {
  return { forwardMs: 0, backwardMs: 0, forwardBytes: 0, backwardBytes: 0 };
}

/** Resolves when a device has finished the work submitted to it (immediately on the CPU). */
async function waitForDevice(backend: Backend): Promise<void> {
  const runtime = (backend as unknown as { runtime?: { sync(): Promise<void> } }).runtime;
  await runtime?.sync();
}

/** Leaf modules of a Sequential (nested Sequentials walked in order) with dotted names. */
function layersInOrder(model: Sequential, prefix = ""): [string, Module][] {
  return model.children().flatMap(([name, child]): [string, Module][] => {
    const dotted = prefix ? `${prefix}.${name}` : name;
    if (child instanceof Sequential) return layersInOrder(child, dotted);
    if (child.children().length > 0) {
      throw new TypeError(
        `TwoDeviceAlexNet: "${dotted}" (${child.constructor.name}) is a container other than ` +
          `Sequential, whose forward order cannot be read from its children`,
      );
    }
    return [[dotted, child]];
  });
}

/**
 * Whether a parameterless layer gives, on each device's half of the channels, that half of
 * its output on the whole (LRN: by the paper's own definition of the split, section 3.3).
 * Flatten from axis 1 qualifies because flatten is channel-major within a sample: the two
 * flattened halves, concatenated row by row, are the flatten of the whole.
 */
function actsPerHalf(layer: Module): boolean {
  if (layer instanceof Flatten) return layer.startAxis === 1;
  return [ReLU, Tanh, LocalResponseNorm, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Identity].some(
    (kind) => layer instanceof kind,
  );
}

/** Row `k` of 2 equal row blocks of a host tensor (rows along the first axis). */
function halfRows(host: HostTensor, k: 0 | 1): HostTensor {
  const rows = host.shape[0] / 2;
  const rowSize = sizeOf(host.shape.slice(1));
  return {
    shape: [rows, ...host.shape.slice(1)],
    data: host.data.subarray(k * rows * rowSize, (k + 1) * rows * rowSize),
  };
}

/** The two halves of a weighted layer: device k holds rows [k·O/2, (k+1)·O/2) of its parameters. */
async function splitWeighted(name: string, layer: Conv2d | Linear): Promise<Pair<Conv2d | Linear>> {
  const out = layer instanceof Conv2d ? layer.outChannels : layer.outFeatures;
  if (out % 2 !== 0) {
    throw new RangeError(
      `TwoDeviceAlexNet: "${name}" has ${out} outputs, which do not split in two halves`,
    );
  }
  const bias = layer.bias !== null;
  const makeHalf = () =>
    layer instanceof Conv2d
      ? new Conv2d(
        // A grouped layer's half reads only its own group's channels (section 3.2).
        layer.groups === 1 ? layer.inChannels : layer.inChannels / 2,
        out / 2,
        layer.kernelSize,
        { stride: layer.stride, padding: layer.padding, bias, initialize: false },
      )
      : new Linear(layer.inFeatures, out / 2, { bias, initialize: false });
  const halves: Pair<Conv2d | Linear> = [makeHalf(), makeHalf()];
  const states = [new Map<string, HostTensor>(), new Map<string, HostTensor>()];
  for (const [param, tensor] of layer.localParameters()) {
    const whole = { shape: tensor.shape, data: await tensor.data() };
    states.forEach((state, k) => state.set(param, halfRows(whole, k as 0 | 1)));
  }
  await Promise.all(halves.map((half, k) => half.loadStateDict(states[k])));
  return halves;
}

/**
 * AlexNet split over two devices as in the paper's section 3.2 (see the module comment): build
 * it from a one-device model with {@link TwoDeviceAlexNet.fromModel}, train it with
 * {@link TwoDeviceAlexNet.trainStep}, write it back with {@link TwoDeviceAlexNet.toModel}.
 */
export class TwoDeviceAlexNet {
  /** The two device names, device 0 first (it also computes the loss). */
  readonly devices: readonly [string, string];
  readonly #backends: Pair<Backend>;
  readonly #stages: Stage[];
  readonly #splits: SplitLayer[];
  #training = true;

  private constructor(devices: readonly [string, string], stages: Stage[], splits: SplitLayer[]) {
    this.devices = devices;
    this.#backends = [getBackend(devices[0]), getBackend(devices[1])];
    this.#stages = stages;
    this.#splits = splits;
  }

  /**
   * Splits `model` (a Sequential from `alexnet()` or `alexnetMini()`, groups 1 or 2) over
   * `devices`: each half's weights are rows of the model's, so both start identical. The model
   * itself is left unchanged (and unused: {@link toModel} writes the trained halves back).
   */
  static async fromModel(
    model: Sequential,
    devices: readonly [string, string],
  ): Promise<TwoDeviceAlexNet> {
    const stageLayers: Pair<Record<string, Module>>[] = [[{}, {}]];
    const splits: SplitLayer[] = [];
    // Whether the activation at this point lives in two halves (one per device) or whole on
    // both (the image, or right after an exchange).
    let split = false;
    for (const [name, layer] of layersInOrder(model)) {
      // Module names cannot contain dots: `features.0` becomes `features_0` in a stage.
      const local = name.replaceAll(".", "_");
      if (layer instanceof Conv2d || layer instanceof Linear) {
        const groups = layer instanceof Conv2d ? layer.groups : 1;
        if (groups !== 1 && groups !== 2) {
          throw new RangeError(
            `TwoDeviceAlexNet: "${name}" has groups ${groups}; only 1 (exchange) or 2 (one group per device) split over two devices`,
          );
        }
        if (groups === 2 && !split) {
          throw new RangeError(
            `TwoDeviceAlexNet: "${name}" is grouped but its input is not split over the devices ` +
              `(the first weighted layer, and the one after an ungrouped layer's exchange, must be ungrouped)`,
          );
        }
        // An ungrouped layer reads every input channel: exchange the halves first.
        if (groups === 1 && split) stageLayers.push([{}, {}]);
        const halves = await splitWeighted(name, layer);
        splits.push({ name, halves });
        stageLayers.at(-1)![0][local] = halves[0];
        stageLayers.at(-1)![1][local] = halves[1];
        split = true;
      } else if (layer instanceof Dropout) {
        if (!split) {
          throw new RangeError(
            `TwoDeviceAlexNet: dropout "${name}" acts on an activation both devices hold whole; ` +
              `their masks would differ (build the model with dropout: false or dropout after a weighted layer)`,
          );
        }
        // Each device draws its own masks (see the module comment), from two seeds of the
        // source layer's generator so that the model's seed still decides them.
        const seeds = Rng.fromState(layer.rngState());
        stageLayers.at(-1)![0][local] = new Dropout(layer.p, { seed: seeds.nextU32() });
        stageLayers.at(-1)![1][local] = new Dropout(layer.p, { seed: seeds.nextU32() });
      } else if (actsPerHalf(layer)) {
        // No state, and elementwise or per channel: the same instance serves both devices.
        stageLayers.at(-1)![0][local] = layer;
        stageLayers.at(-1)![1][local] = layer;
      } else {
        throw new TypeError(
          `TwoDeviceAlexNet: cannot split "${name}" (${layer.constructor.name}): only Conv2d, ` +
            `Linear, Dropout and layers that act on each half alone (ReLU, Tanh, LRN, pooling, ` +
            `Flatten from axis 1, Identity) are known`,
        );
      }
    }
    if (!split) throw new RangeError("TwoDeviceAlexNet: the model has no Conv2d or Linear layer");
    const stages: Stage[] = [];
    for (const [layers0, layers1] of stageLayers) {
      stages.push({
        halves: [
          await new Sequential(layers0).to(devices[0]),
          await new Sequential(layers1).to(devices[1]),
        ],
      });
    }
    const net = new TwoDeviceAlexNet(devices, stages, splits);
    net.train(model.training);
    return net;
  }

  /** Number of stages: 1 + the number of exchanges (5 for AlexNet: conv3, fc6, fc7, fc8). */
  get stageCount(): number {
    return this.#stages.length;
  }

  /** Device `k`'s parameters, for its optimizer. */
  parameters(k: 0 | 1): Tensor[] {
    return this.#stages.flatMap((stage) => stage.halves[k].parameters());
  }

  /** Training mode (dropout active) on both devices. */
  train(mode = true): this {
    this.#training = mode;
    for (const stage of this.#stages) for (const half of stage.halves) half.train(mode);
    return this;
  }

  /** Evaluation mode: dropout is the identity. */
  eval(): this {
    return this.train(false);
  }

  /** Whether the model is in training mode. */
  get training(): boolean {
    return this.#training;
  }

  /**
   * Copies tensors between the devices through the host and adds the time and bytes to
   * `stats` (see "Transfer time" in the module comment). The copies are leaves that require
   * grad when `leaves` is true.
   */
  async #copy(
    requests: CopyRequest[],
    stats: TransferStats | null,
    phase: "forward" | "backward",
    leaves: boolean,
  ): Promise<Tensor[]> {
    if (stats) await Promise.all(this.#backends.map(waitForDevice));
    const start = performance.now();
    const values = await Promise.all(requests.map((r) => r.tensor.data()));
    const copies = values.map((data, i) =>
      fromArray(data, requests[i].tensor.shape, {
        device: this.#backends[requests[i].to],
        requiresGrad: leaves,
      })
    );
    if (!stats) return copies;
    const ms = performance.now() - start;
    const bytes = values.reduce((total, data) => total + data.byteLength, 0);
    if (phase === "forward") {
      stats.forwardMs += ms;
      stats.forwardBytes += bytes;
    } else {
      stats.backwardMs += ms;
      stats.backwardBytes += bytes;
    }
    return copies;
  }

  /**
   * The exchange before an ungrouped layer: returns, for each device k, [half 0, half 1] on
   * device k: its own half as a detached view, the other's as a received copy.
   */
  async #exchange(
    halves: Pair<Tensor>,
    stats: TransferStats | null,
    leaves: boolean,
  ): Promise<Pair<Pair<Tensor>>> {
    const [onDevice1, onDevice0] = await this.#copy(
      [{ tensor: halves[0], to: 1 }, { tensor: halves[1], to: 0 }],
      stats,
      "forward",
      leaves,
    );
    const own = halves.map((half) => {
      const view = half.detach();
      view.requiresGrad = leaves;
      return view;
    });
    return [[own[0], onDevice0], [onDevice1, own[1]]];
  }

  #checkBatch(where: string, images: Float32Array, shape: readonly number[]): void {
    if (shape.length !== 4 || images.length !== sizeOf(shape)) {
      throw new RangeError(
        `TwoDeviceAlexNet.${where}: images must be [N, C, H, W] with one value per element; got ${images.length} values for shape ${
          formatShape(shape)
        }`,
      );
    }
  }

  /** The logits [N, classes] for a batch, on the host; records no graph. */
  async forward(images: Float32Array, shape: readonly number[]): Promise<Float32Array> {
    this.#checkBatch("forward", images, shape);
    let inputs: Tensor[] = this.#backends.map((device) => fromArray(images, shape, { device }));
    let outputs: Tensor[] = [];
    try {
      for (const [s, stage] of this.#stages.entries()) {
        if (s > 0) {
          const received = await this.#exchange(outputs as Pair<Tensor>, null, false);
          for (const t of [...inputs, ...outputs]) t.dispose();
          outputs = [];
          inputs = received.map((pair) => noGrad(() => concat(pair, 1)));
          for (const t of received.flat()) t.dispose();
        }
        outputs = inputs.map((x, k) => noGrad(() => stage.halves[k].forward(x)));
      }
      // The logits' halves meet on the host: row n is [half 0's row n, half 1's row n].
      const [left, right] = await Promise.all(outputs.map((t) => t.data()));
      const [n, half] = outputs[0].shape;
      const logits = new Float32Array(n * 2 * half);
      for (let row = 0; row < n; row++) {
        logits.set(left.subarray(row * half, (row + 1) * half), row * 2 * half);
        logits.set(right.subarray(row * half, (row + 1) * half), (row * 2 + 1) * half);
      }
      return logits;
    } finally {
      for (const t of [...inputs, ...outputs]) t.dispose();
    }
  }

  /**
   * One SGD step on a batch: forward stage by stage, the loss on device 0, backward stage by
   * stage in reverse, then each device's optimizer (built over {@link parameters}) steps.
   */
  async trainStep(
    images: Float32Array,
    shape: readonly number[],
    labels: Int32Array,
    optimizers: readonly [SGD, SGD],
  ): Promise<TwoDeviceStepResult> {
    this.#checkBatch("trainStep", images, shape);
    if (labels.length !== shape[0]) {
      throw new RangeError(
        `TwoDeviceAlexNet.trainStep: ${labels.length} labels for a batch of ${shape[0]} images`,
      );
    }
    const stats = zeroStats();
    // Every tensor this step creates outside a stage's graph; disposing twice is harmless.
    const owned: Tensor[] = [];
    const own = <T extends Tensor | Tensor[]>(t: T): T => {
      owned.push(...(Array.isArray(t) ? t : [t]));
      return t;
    };
    try {
      for (const optimizer of optimizers) optimizer.zeroGrad();
      const images2 = own(this.#backends.map((device) => fromArray(images, shape, { device })));
      // outputs[s][k]: stage s's output on device k (the root of that stage's graph there);
      // stageLeaves[s][k]: the leaves [half 0, half 1] stage s reads on device k (s > 0).
      const outputs: Pair<Tensor>[] = [];
      const stageLeaves: Pair<Pair<Tensor>>[] = [];
      for (const [s, stage] of this.#stages.entries()) {
        let inputs = images2;
        if (s > 0) {
          const leaves = await this.#exchange(outputs[s - 1], stats, true);
          own(leaves.flat());
          stageLeaves[s] = leaves;
          inputs = leaves.map((pair) => concat(pair, 1));
        }
        outputs.push(own(inputs.map((x, k) => stage.halves[k].forward(x))) as Pair<Tensor>);
      }

      // The loss on device 0: its own half of the logits and device 1's, copied over.
      const last = outputs.at(-1)!;
      const [received] = own(
        await this.#copy([{ tensor: last[1], to: 0 }], stats, "forward", true),
      );
      const ownLogits = own(last[0].detach());
      ownLogits.requiresGrad = true;
      const logits = concat([ownLogits, received], 1);
      const predictions = own(argmax(logits)); // int32, not part of the graph
      const loss = own(crossEntropy(logits, labels));
      loss.backward();

      let upstream = own([
        this.#gradOf(ownLogits, "logits"),
        ...await this.#copy(
          [{ tensor: this.#gradOf(received, "logits"), to: 1 }],
          stats,
          "backward",
          false,
        ),
      ]) as Pair<Tensor>;
      for (let s = this.#stages.length - 1; s >= 0; s--) {
        outputs[s].forEach((output, k) => output.backward(upstream[k]));
        if (s === 0) break;
        // dL/d(stage s-1's output on device j) = the gradient of its half on device j (its own
        // leaf) + the gradient of the copy device 1-j received, copied back.
        const leaves = stageLeaves[s];
        const sent = own(
          await this.#copy(
            [
              { tensor: this.#gradOf(leaves[1][0], "exchange"), to: 0 },
              { tensor: this.#gradOf(leaves[0][1], "exchange"), to: 1 },
            ],
            stats,
            "backward",
            false,
          ),
        );
        upstream = own([
          add(this.#gradOf(leaves[0][0], "exchange"), sent[0]),
          add(this.#gradOf(leaves[1][1], "exchange"), sent[1]),
        ]) as Pair<Tensor>;
      }
      for (const optimizer of optimizers) optimizer.step();

      const [lossValue, predicted] = await Promise.all([loss.item(), predictions.data()]);
      let correct = 0;
      for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) correct++;
      return { loss: lossValue, correct, transfer: stats };
    } finally {
      for (const t of owned) {
        t.grad?.dispose();
        t.grad = null;
        t.dispose();
      }
    }
  }

  /** A leaf's gradient after backward; its absence means the graph was cut somewhere. */
  #gradOf(leaf: Tensor, where: string): Tensor {
    if (!leaf.grad) {
      throw new Error(
        `TwoDeviceAlexNet.trainStep: no gradient reached the ${where} leaf ${
          formatShape(leaf.shape)
        } on ${leaf.device}`,
      );
    }
    return leaf.grad;
  }

  /**
   * Writes the halves back into `model` (the one {@link fromModel} split, or another of the
   * same architecture): each weighted layer's rows from device 0, then device 1's.
   */
  async toModel(model: Sequential): Promise<void> {
    const state = new Map<string, HostTensor>();
    for (const { name, halves } of this.#splits) {
      const [params0, params1] = halves.map((h) => h.localParameters());
      for (const [param, half0] of params0) {
        const half1 = params1.get(param)!;
        const [data0, data1] = await Promise.all([half0.data(), half1.data()]);
        const data = new Float32Array(data0.length + data1.length);
        data.set(data0);
        data.set(data1, data0.length);
        state.set(`${name}.${param}`, {
          shape: [2 * half0.shape[0], ...half0.shape.slice(1)],
          data,
        });
      }
    }
    await model.loadStateDict(state);
  }

  /** Frees every parameter on both devices. */
  dispose(): void {
    for (const split of this.#splits) {
      for (const half of split.halves) {
        for (const p of half.parameters()) {
          p.grad?.dispose();
          p.grad = null;
          p.dispose("disposed by TwoDeviceAlexNet.dispose()");
        }
      }
    }
  }
}
