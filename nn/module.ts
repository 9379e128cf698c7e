/**
 * `Module`: the base of every layer and model, shaped like PyTorch's `torch.nn.Module`.
 *
 * A module owns named parameters and named child modules, both registered explicitly in the
 * constructor:
 *
 *     class Affine extends Module {
 *       constructor() {
 *         super();
 *         this.registerParameter("weight", parameter(ones([3])));
 *         this.registerModule("act", new ReLU());
 *       }
 *       get weight(): Tensor { return this.getParameter("weight"); }
 *       ...
 *     }
 *
 * The registry (not a field) is the single source of truth; layers read their parameters
 * through getters. Names are dotted paths through the children
 * (`features.0.weight`), exactly as PyTorch spells them, so a torchvision `state_dict` saved
 * to safetensors loads without renaming.
 *
 * Every module also knows the shape it produces (`outputShape`), so `summary()` can walk a
 * 227x227 AlexNet in microseconds without running a kernel.
 *
 * `to()` moves parameters in place, as PyTorch does: each parameter keeps its Tensor object
 * and gets memory on the new device (or of the new dtype), so an optimizer created before the
 * move keeps updating them (its velocities follow at the next step). A move from the CPU (to the
 * GPU, or a dtype change there) happens at once, inside the call; a move off the GPU must
 * read the weights back, which is asynchronous: until its promise settles, using the module
 * (forward, parameters, loadStateDict, another move) is an error that says to await it.
 *
 * @module
 */

import { type Device, fromArray, getBackend, isHostDevice, Tensor } from "../tensor/tensor.ts";
import { cast } from "../tensor/ops/elementwise.ts";
import type { Backend, DType, TypedArray } from "../backend/backend.ts";
import { checkShape, formatShape, sameShape, type Shape, sizeOf } from "../tensor/shape.ts";
import type { RngState } from "../tensor/random.ts";
import { buildSummary, type SummaryReport, type SummaryRow } from "./summary.ts";
import { checkArgument, checkOptions, declareOptions } from "../tensor/options.ts";

const LOAD_STATE_KEYS = declareOptions<LoadStateDictOptions>()("Module.loadStateDict", ["strict"]);
const TO_KEYS = declareOptions<Exclude<Parameters<Module["to"]>[0], Device>>()("Module.to", [
  "device",
  "dtype",
]);
const SUMMARY_KEYS = declareOptions<NonNullable<Parameters<Module["summary"]>[1]>>()(
  "Module.summary",
  ["print"],
);

/** Host values with a shape: what a safetensors file yields, accepted by `loadStateDict`. */
export interface HostTensor {
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Row-major values. */
  readonly data: TypedArray;
}

/** Options of {@link Module.loadStateDict}. */
export interface LoadStateDictOptions {
  /**
   * When true (the default, as in PyTorch), a parameter missing from the state dict or an
   * entry the model does not have is an error. Shape mismatches are errors either way.
   */
  strict?: boolean;
}

/**
 * Turns a tensor into a parameter: a leaf that requires grad and is kept, so that neither
 * `backward()` nor a `scope()` ever frees it. Returns the same tensor.
 */
export function parameter(t: Tensor): Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`parameter: expects a Tensor, got ${String(t)}`);
  if (t.dtype === "int32") throw new TypeError("parameter: int32 tensors cannot be parameters");
  t.requiresGrad = true;
  return t.keep();
}

/**
 * The base class of layers and models. Subclasses implement `forward` and `outputShape`.
 *
 * @example A model of your own
 * ```ts
 * import assert from "node:assert/strict";
 * import { Linear, Module, relu, type Shape, type Tensor } from "../mod.ts";
 *
 * // A two-layer perceptron: children registered by name, forward written by hand.
 * class Mlp extends Module {
 *   readonly hidden = this.registerModule("hidden", new Linear(4, 8, { rng: 1 }));
 *   readonly out = this.registerModule("out", new Linear(8, 2, { rng: 2 }));
 *
 *   forward(x: Tensor): Tensor {
 *     return this.out.forward(relu(this.hidden.forward(x)));
 *   }
 *   outputShape(inputShape: Shape): number[] {
 *     return [inputShape[0], 2];
 *   }
 * }
 *
 * const model = new Mlp();
 * assert.deepEqual([...model.namedParameters().keys()], [
 *   "hidden.weight",
 *   "hidden.bias",
 *   "out.weight",
 *   "out.bias",
 * ]);
 * assert.equal(model.parameterCount(), 4 * 8 + 8 + 8 * 2 + 2);
 * ```
 */
export abstract class Module {
  /** True in training mode (dropout active); set for the whole tree by `train()` / `eval()`. */
  training = true;
  readonly #parameters = new Map<string, Tensor | null>();
  readonly #children = new Map<string, Module>();
  /** The target of a `to()` still reading weights back, or null. */
  #pendingMove: string | null = null;

  /** Computes the output for input `x`. */
  abstract forward(x: Tensor): Tensor;

  /**
   * The shape `forward` returns for an input of `inputShape`, computed without running any
   * kernel; throws, naming the layer, when the input does not fit.
   */
  abstract outputShape(inputShape: Shape): number[];

  /**
   * Multiply-adds of one forward pass on `inputShape` spent by this module's own parameters
   * (convolutions and matrix products); 0 for layers without weights. Used by `summary()`.
   */
  multiplyAdds(_inputShape: Shape): number {
    return 0;
  }

  /** A short description of the layer's configuration for `summary()`, e.g. `96, 11x11/4`. */
  describe(): string {
    return "";
  }

  // ---- registration ----

  /**
   * Registers `value` (a tensor made with {@link parameter}, or null for an absent bias)
   * under `name`; it then appears in `parameters()`, `stateDict()` and moves with `to()`.
   */
  protected registerParameter(name: string, value: Tensor | null): void {
    this.#checkName(name);
    if (value && (!value.requiresGrad || !value.isKept)) {
      throw new Error(
        `registerParameter("${name}"): wrap the tensor in parameter() so that it requires grad and is kept`,
      );
    }
    this.#parameters.set(name, value);
  }

  /** Registers a child module under `name` (its parameters appear as `name.<param>`); returns it. */
  protected registerModule<M extends Module>(name: string, module: M): M {
    this.#checkName(name);
    this.#children.set(name, module);
    return module;
  }

  /** The parameter registered under `name` (throws if it is absent or null). */
  protected getParameter(name: string): Tensor {
    this.#checkSettled(`${this.constructor.name}.${name}`);
    const value = this.#parameters.get(name);
    if (!value) throw new Error(`${this.constructor.name}: no parameter "${name}"`);
    return value;
  }

  /** The parameter registered under `name`, or null (an optional bias). */
  protected getOptionalParameter(name: string): Tensor | null {
    this.#checkSettled(`${this.constructor.name}.${name}`);
    return this.#parameters.get(name) ?? null;
  }

  #checkName(name: string): void {
    if (typeof name !== "string" || name === "" || name.includes(".")) {
      throw new Error(`${this.constructor.name}: invalid name "${name}" (non-empty, no dots)`);
    }
    if (this.#parameters.has(name) || this.#children.has(name)) {
      throw new Error(`${this.constructor.name}: "${name}" is already registered`);
    }
  }

  // ---- traversal ----

  /** The direct children, in registration order. */
  children(): [string, Module][] {
    return [...this.#children.entries()];
  }

  /** This module and every descendant with its dotted name (`""` for this one), depth first. */
  namedModules(prefix = ""): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.#children) {
      out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    }
    return out;
  }

  /** Every parameter with its dotted name (`features.0.weight`), own parameters first. */
  namedParameters(prefix = ""): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, module] of this.namedModules(prefix)) {
      module.#checkSettled(`${module.constructor.name}.parameters()`);
      for (const [own, value] of module.#parameters) {
        if (value) out.set(name ? `${name}.${own}` : own, value);
      }
    }
    return out;
  }

  /** This module's own parameters (not its children's) by local name, nulls omitted. */
  localParameters(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, value] of this.#parameters) if (value) out.set(name, value);
    return out;
  }

  /**
   * Every parameter, in the order of {@link namedParameters}; a parameter shared by two layers
   * (tied weights) appears once, as in PyTorch.
   */
  parameters(): Tensor[] {
    return [...new Set(this.namedParameters().values())];
  }

  /** Total number of parameter elements (a shared parameter counts once). */
  parameterCount(): number {
    let count = 0;
    for (const p of this.parameters()) count += p.size;
    return count;
  }

  // ---- modes ----

  /** Sets training mode (`true`) or evaluation mode on this module and every descendant. */
  train(mode = true): this {
    for (const [, module] of this.namedModules()) module.training = mode;
    return this;
  }

  /** Evaluation mode: dropout becomes the identity. Same as `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  // ---- state ----

  /**
   * The model's state: every parameter under its dotted name. The tensors are the live
   * parameters, not copies (as in PyTorch); none of tessera's layers has buffers.
   */
  stateDict(): Map<string, Tensor> {
    return this.namedParameters();
  }

  /**
   * Copies values into the existing parameters (in place, with `backend.write`), so the
   * parameters stay the same leaf tensors that an optimizer holds. Every entry is checked
   * before anything is written: a shape mismatch, or in strict mode a missing or unexpected
   * key, throws naming the key (and both shapes) and leaves the model unchanged.
   */
  async loadStateDict(
    state: Map<string, Tensor | HostTensor>,
    options?: LoadStateDictOptions,
  ): Promise<void> {
    options = checkOptions("Module.loadStateDict", options, LOAD_STATE_KEYS);
    if (!(state instanceof Map)) {
      throw new TypeError(
        `loadStateDict: expects a Map from parameter names to tensors (as stateDict() or loadSafetensors() return), got ${
          state === null || typeof state !== "object"
            ? String(state)
            : (state as object).constructor.name
        }`,
      );
    }
    const own = this.namedParameters();
    const problems = stateProblems(
      own,
      state,
      options.strict ?? true,
      "the state dict",
      (key, value) =>
        !(value instanceof Tensor) && value.data.length !== sizeOf(value.shape)
          ? `"${key}" holds ${value.data.length} values for shape ${formatShape(value.shape)}`
          : undefined,
    );
    if (problems.length) throw new Error(`loadStateDict: ${problems.join("; ")}`);
    for (const [key, value] of state) {
      const target = own.get(key);
      if (!target) continue;
      const data = value instanceof Tensor ? await value.data() : value.data;
      target.backend.write(target.storage, toDtypeOf(target, data));
    }
  }

  /**
   * Moves every parameter to `device` (`"cpu"`, or `"gpu"` after `await initWebGPU()`) and/or
   * converts it to `dtype`: `await model.to("gpu")`, `await model.to({ dtype: "float64" })`
   * (for a gradient check of a whole model on the CPU). Parameters move in place, as in
   * PyTorch: the same Tensor objects get new memory, so an optimizer created before the move
   * keeps updating them; their gradients are disposed. Returns this module. Moves from the CPU are done when `to` returns; a move
   * off the GPU finishes when the promise settles, and using the module before that throws.
   */
  async to(target: Device | { device?: Device; dtype?: DType }): Promise<this> {
    if (target === undefined || target === null) {
      throw new TypeError(
        `Module.to: expects a device ("cpu", "gpu") or { device?, dtype? }, got ${String(target)}`,
      );
    }
    const options = typeof target === "object" && !("fromArray" in target)
      ? checkOptions("Module.to", target, TO_KEYS)
      : { device: target };
    const backend = options.device === undefined ? undefined : getBackend(options.device);
    if (options.dtype !== undefined && options.dtype !== "float32" && options.dtype !== "float64") {
      throw new TypeError(
        `Module.to: parameters must be float32 or float64, got dtype ${
          JSON.stringify(options.dtype)
        }`,
      );
    }
    const modules = this.namedModules();
    for (const [, module] of modules) module.#checkSettled(`${module.constructor.name}.to()`);
    const moves: [Module, string, Tensor][] = [];
    const seen = new Set<Tensor>(); // a shared layer's parameters move once
    for (const [, module] of modules) {
      for (const [name, value] of module.#parameters) {
        if (value && !seen.has(value)) moves.push([module, name, value]);
        if (value) seen.add(value);
      }
    }
    const gpuFloat64 = backend && !isHostDevice(backend) &&
      (options.dtype === "float64" ||
        (!options.dtype && moves.some(([, , p]) => p.dtype === "float64")));
    if (gpuFloat64) {
      throw new TypeError(
        `Module.to: the ${backend.name} backend has no float64; use ${
          options.dtype ? "" : '{ device, dtype: "float32" } or '
        }a float32 model there`,
      );
    }
    // In place, as in PyTorch: each parameter keeps its Tensor object (an optimizer created
    // before the move holds these objects) and takes the moved copy's memory.
    const replace = ([, , value]: [Module, string, Tensor], moved: Tensor) => {
      if (moved === value) return;
      value.grad?.dispose();
      value.grad = null;
      value.adoptStorage(moved);
    };
    const destination = (p: Tensor) => backend ?? p.backend;
    // From the CPU, or on the target device already: done now, before `to` returns.
    if (moves.every(([, , p]) => isHostDevice(p.backend) || p.backend === destination(p))) {
      for (const move of moves) {
        replace(move, convertNow(move[2], destination(move[2]), options.dtype));
      }
      return this;
    }
    // Off the GPU: reading back is asynchronous; the module is unusable until it is done.
    const label = backend?.name ?? options.dtype ?? "";
    for (const [, module] of modules) module.#pendingMove = label;
    try {
      for (const move of moves) {
        const view = move[2].detach();
        const moved = await view.to({ device: destination(move[2]), dtype: options.dtype });
        view.dispose();
        if (moved !== view) replace(move, moved);
      }
    } finally {
      for (const [, module] of modules) module.#pendingMove = null;
    }
    return this;
  }

  /** Throws while a `to()` of this module is still reading weights back. */
  #checkSettled(what: string): void {
    if (this.#pendingMove !== null) {
      throw new Error(
        `${what} used while model.to("${this.#pendingMove}") is still moving the weights; await the move first (await model.to(...))`,
      );
    }
  }

  /**
   * The state of a module's own random generator (Dropout's), or null if it has none.
   * Layers with randomness override this and {@link loadRngState}.
   */
  rngState(): RngState | null {
    return null;
  }

  /** Restores a state returned by {@link rngState}. */
  loadRngState(_state: RngState): void {
    throw new Error(`${this.constructor.name} has no random generator to restore`);
  }

  /**
   * The generator state of every module that has one, by dotted module name: saving it with
   * the weights lets a resumed run draw exactly the dropout masks an uninterrupted one would.
   */
  rngStates(): Record<string, RngState> {
    const out: Record<string, RngState> = {};
    for (const [name, module] of this.namedModules()) {
      const state = module.rngState();
      if (state) out[name] = state;
    }
    return out;
  }

  /** Restores {@link rngStates}; every module with a generator must be present, and only those. */
  loadRngStates(states: Record<string, RngState>): void {
    checkArgument("Module.loadRngStates", "states", states, "object");
    const modules = new Map(this.namedModules().filter(([, m]) => m.rngState() !== null));
    const missing = [...modules.keys()].filter((k) => !Object.hasOwn(states, k));
    const unexpected = Object.keys(states).filter((k) => !modules.has(k));
    if (missing.length || unexpected.length) {
      throw new Error(
        `loadRngStates: modules with a generator: ${[...modules.keys()].join(", ") || "none"}; ` +
          `missing states: ${missing.join(", ") || "none"}; unexpected: ${
            unexpected.join(", ") || "none"
          }`,
      );
    }
    for (const [name, module] of modules) module.loadRngState(states[name]);
  }

  // ---- inspection ----

  /**
   * Prints a table, one row per layer: name, output shape, parameters and multiply-adds of a
   * forward pass on `inputShape` (e.g. `[1, 3, 227, 227]`), with totals; returns the numbers.
   * Shapes are propagated with `outputShape`, so nothing is computed on real data.
   */
  summary(inputShape: Shape, options?: { print?: boolean }): SummaryReport {
    options = checkOptions("Module.summary", options, SUMMARY_KEYS);
    if (!Array.isArray(inputShape)) {
      throw new TypeError(
        `Module.summary: expects the input shape, e.g. summary([1, 3, 227, 227]), got ${
          inputShape === undefined ? "nothing" : JSON.stringify(inputShape)
        }`,
      );
    }
    const report = buildSummary(inputShape, this.summaryRows(inputShape, ""));
    if (options.print ?? true) console.log(report.text);
    return report;
  }

  /**
   * This module's rows of the summary table for an input of `inputShape`: one row for the
   * whole module by default; containers (Sequential) return one row per child instead.
   */
  summaryRows(inputShape: Shape, name: string): SummaryRow[] {
    checkShape(`${this.constructor.name}.summaryRows`, inputShape);
    const description = this.describe();
    return [{
      name: name || this.constructor.name,
      layer: description ? `${this.constructor.name}(${description})` : this.constructor.name,
      outputShape: this.outputShape(inputShape),
      parameters: this.parameterCount(),
      multiplyAdds: this.multiplyAdds(inputShape),
    }];
  }
}

/**
 * `value` (on the CPU, or on `backend` already) converted to `dtype` and placed on `backend`,
 * synchronously: the cast runs where the tensor is, then a CPU tensor is uploaded.
 */
function convertNow(value: Tensor, backend: Backend, dtype: DType | undefined): Tensor {
  if (value.backend === backend && (dtype === undefined || dtype === value.dtype)) return value;
  const source = value.detach();
  const converted = cast(source, dtype ?? value.dtype);
  if (converted !== source) source.dispose();
  if (converted.backend === backend) return converted;
  const moved = fromArray(converted.dataSync(), converted.shape, { device: backend });
  converted.dispose();
  return moved;
}

/** `data` converted to the element type of `target` (a copy only when the types differ). */
function toDtypeOf(target: Tensor, data: TypedArray): TypedArray {
  const want = target.dtype === "float64"
    ? Float64Array
    : target.dtype === "int32"
    ? Int32Array
    : Float32Array;
  return data instanceof want ? data : want.from(data);
}

/**
 * Why `incoming` cannot be loaded into the parameters `own`, as messages (none: it can): in
 * strict mode the missing and unexpected keys, then per key a shape that differs from the
 * model's (`source` says where the values come from) or else `otherProblem`'s message.
 */
export function stateProblems<Entry extends { shape: readonly number[] }>(
  own: Map<string, Tensor>,
  incoming: Map<string, Entry>,
  strict: boolean,
  source: string,
  otherProblem?: (key: string, entry: Entry) => string | undefined,
): string[] {
  const problems: string[] = [];
  if (strict) {
    const missing = [...own.keys()].filter((k) => !incoming.has(k));
    const unexpected = [...incoming.keys()].filter((k) => !own.has(k));
    if (missing.length) problems.push(`missing keys: ${missing.join(", ")}`);
    if (unexpected.length) problems.push(`unexpected keys: ${unexpected.join(", ")}`);
  }
  for (const [key, entry] of incoming) {
    const target = own.get(key);
    if (target && !sameShape(target.shape, entry.shape)) {
      problems.push(
        `"${key}" has shape ${formatShape(target.shape)} in the model but ${
          formatShape(entry.shape)
        } in ${source}`,
      );
    } else {
      const other = otherProblem?.(key, entry);
      if (other) problems.push(other);
    }
  }
  return problems;
}
