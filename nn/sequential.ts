/**
 * The container: {@link Sequential} runs its children in order, names them like PyTorch
 * (`features.0.weight`), propagates shapes and summary rows through them, and prefixes an
 * error inside a child with the child's dotted name and type.
 *
 * @module
 */

import type { Tensor } from "../tensor/tensor.ts";
import { isGradEnabled } from "../tensor/autograd.ts";
import { checkShape, type Shape } from "../tensor/shape.ts";
import { Module } from "./module.ts";
import type { SummaryRow } from "./summary.ts";

/**
 * Runs its children in order. Given an array, the children are named "0", "1", ... like
 * PyTorch's `nn.Sequential`, so torchvision's `features.0.weight` comes out by itself; given
 * an object, they take its keys (`{ conv1: ..., relu1: ... }`, PyTorch's OrderedDict form).
 *
 * @example A small convolutional network
 * ```ts
 * import assert from "node:assert/strict";
 * import { Conv2d, Flatten, Linear, MaxPool2d, randn, ReLU, Sequential } from "../mod.ts";
 *
 * const model = new Sequential([
 *   new Conv2d(1, 8, 3, { padding: 1 }), // [N, 8, 28, 28]
 *   new ReLU(),
 *   new MaxPool2d({ kernelSize: 2 }), // [N, 8, 14, 14]
 *   new Flatten(),
 *   new Linear(8 * 14 * 14, 10),
 * ]);
 * assert.deepEqual(model.outputShape([5, 1, 28, 28]), [5, 10]); // shapes without running
 * const logits = model.forward(randn([5, 1, 28, 28], { seed: 1 }));
 * assert.deepEqual(logits.shape, [5, 10]);
 * assert.ok(model.namedParameters().has("4.weight")); // children are named "0", "1", ...
 * ```
 */
export class Sequential extends Module {
  readonly #layers: Module[] = [];

  /** Creates the container from layers (named by index) or named layers (in key order). */
  constructor(layers: Module[] | Record<string, Module>) {
    super();
    if (layers === null || typeof layers !== "object") {
      throw new TypeError(
        `Sequential: expects an array of modules or an object of named modules, got ${
          String(layers)
        }`,
      );
    }
    const entries = Array.isArray(layers)
      ? layers.map((m, i) => [String(i), m] as const)
      : Object.entries(layers);
    for (const [name, layer] of entries) {
      if (!(layer instanceof Module)) {
        throw new TypeError(
          `Sequential: child "${name}" is not a Module (got ${
            layer === null || typeof layer !== "object"
              ? String(layer)
              : (layer as object).constructor.name
          })`,
        );
      }
      this.#layers.push(this.registerModule(name, layer));
    }
  }

  /** Number of children. */
  get length(): number {
    return this.#layers.length;
  }

  /** The i-th child. */
  at(index: number): Module {
    const layer = Number.isInteger(index) ? this.#layers.at(index) : undefined;
    if (!layer) {
      throw new RangeError(`Sequential.at: index ${index} out of range (${this.length} layers)`);
    }
    return layer;
  }

  /**
   * Feeds x through every child in order. An error inside a child is rethrown (the same
   * error object) with the child's dotted name and type in front of its message:
   * `features.3 (Linear): linear: ...`. Under `noGrad` no graph keeps the activations
   * between the children, so each is disposed as soon as the next child has made its own (not
   * x itself, one a child passed through unchanged, a kept one, or one that requires
   * gradients: a child that returned a parameter).
   */
  forward(x: Tensor): Tensor {
    const input = x, release = !isGradEnabled();
    for (const [name, layer] of this.children()) {
      let y: Tensor;
      try {
        y = layer.forward(x);
      } catch (error) {
        throw nameFailingChild(error, name, layer);
      }
      if (release && x !== input && y !== x && !x.requiresGrad && !x.isKept) x.dispose();
      x = y;
    }
    return x;
  }

  /** The shape after every child, propagated without running anything; errors name the child. */
  outputShape(inputShape: Shape): number[] {
    checkShape("Sequential.outputShape", inputShape);
    let shape = [...inputShape];
    for (const [name, layer] of this.children()) {
      try {
        shape = layer.outputShape(shape);
      } catch (error) {
        throw nameFailingChild(error, name, layer);
      }
    }
    return shape;
  }

  /** Sum over the children. */
  override multiplyAdds(inputShape: Shape): number {
    checkShape("Sequential.multiplyAdds", inputShape);
    let total = 0;
    let shape = [...inputShape];
    for (const layer of this.#layers) {
      total += layer.multiplyAdds(shape);
      shape = layer.outputShape(shape);
    }
    return total;
  }

  /** One row per child (recursively), each fed the shape its predecessor produced. */
  override summaryRows(inputShape: Shape, name: string): SummaryRow[] {
    checkShape("Sequential.summaryRows", inputShape);
    const rows: SummaryRow[] = [];
    let shape = [...inputShape];
    for (const [child, layer] of this.children()) {
      const childRows = layer.summaryRows(shape, name ? `${name}.${child}` : child);
      rows.push(...childRows);
      shape = layer.outputShape(shape);
    }
    return rows;
  }
}

/** Where a failure inside nested Sequentials happened: the dotted path and the message. */
const failure = Symbol("tessera.failingModule");

interface NamedFailure {
  path: string[];
  layer: string;
  message: string;
}

/**
 * `error` with `name` prefixed to the dotted path of the failing module in its message. The
 * same object is returned (so its class and stack stay), each enclosing Sequential adding
 * its own child's name.
 */
function nameFailingChild(error: unknown, name: string, layer: Module): unknown {
  if (!(error instanceof Error)) return error;
  const tagged = error as Error & { [failure]?: NamedFailure };
  const info = tagged[failure] ??
    { path: [], layer: layer.constructor.name, message: error.message };
  info.path.unshift(name);
  tagged[failure] = info;
  const message = `${info.path.join(".")} (${info.layer}): ${info.message}`;
  if (error.stack?.includes(error.message)) {
    error.stack = error.stack.replace(error.message, message);
  }
  error.message = message;
  return error;
}
