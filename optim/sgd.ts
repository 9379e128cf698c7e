/**
 * Stochastic gradient descent with momentum and weight decay, with two update rules: the
 * paper's ("paper", Krizhevsky et al. 2012, section 5) and PyTorch's ("pytorch"). The rules,
 * and why they part ways when the learning rate changes, are stated in tensor/ops/sgd.ts.
 *
 * The update itself is one backend kernel (`sgdUpdate`: CPU in tensor/ops/sgd.ts, WGSL in
 * gpu/kernels/sgd.ts), applied in place to each parameter and its velocity, so a GPU step
 * never leaves the GPU.
 *
 * The optimizer, its parameter groups and its state dict (exact resume) sit together: they
 * check the same hyperparameter rules and the same velocity shapes. The update math itself is
 * in tensor/ops/sgd.ts.
 *
 * @module
 */

import type { SgdParams, TypedArray } from "../backend/backend.ts";
import { fromArray, Tensor, zeros } from "../tensor/tensor.ts";
import { formatShape, sameShape } from "../tensor/shape.ts";
import { checkOptions, declareOptions } from "../tensor/options.ts";
import {
  checkNumber,
  checkObject,
  describeValue,
  type NumberRule,
  optionalNumber,
} from "./options.ts";

/**
 * Which velocity update to use. `"paper"` (section 5): v ← m·v − wd·lr·w − lr·g, w ← w + v.
 * `"pytorch"` (torch.optim.SGD): v ← m·v + g + wd·w, w ← w − lr·v. They give the same weights
 * while lr is constant and differ after a learning-rate drop: the paper's velocity keeps the
 * old lr inside it and decays by m per step, PyTorch's is rescaled by the new lr at once.
 */
export type SgdRule = SgdParams["rule"];

/** Defaults of the optional hyperparameters, and where each comes from. */
export const SGD_DEFAULTS = {
  /** No momentum: torch.optim.SGD's default (the paper uses 0.9, section 5). */
  momentum: 0,
  /** No weight decay: torch.optim.SGD's default (the paper uses 0.0005, section 5). */
  weightDecay: 0,
  /**
   * Undamped momentum: torch.optim.SGD's default, and the only value tessera implements (the
   * paper's rule has no dampening).
   */
  dampening: 0,
  /** The paper's own rule (section 5). */
  rule: "paper",
} as const;

/** Hyperparameters shared by the optimizer and its groups. */
export interface SgdHyperparameters {
  /** Learning rate, finite and >= 0 (required; the paper starts at 0.01: section 5). */
  lr: number;
  /** Momentum coefficient in [0, 1) (default 0, PyTorch's; the paper uses 0.9: section 5). */
  momentum?: number;
  /** L2 weight decay, >= 0 (default 0, PyTorch's; the paper uses 0.0005: section 5). */
  weightDecay?: number;
  /** Must be 0 if given (PyTorch's default; see {@link SGD_DEFAULTS}). */
  dampening?: number;
}

/** Options of {@link SGD}. */
export interface SgdOptions extends Partial<SgdHyperparameters> {
  /** Update rule (default "paper": AlexNet's own, section 5). */
  rule?: SgdRule;
}

/** A set of parameters with its own hyperparameters (absent ones come from the options). */
export interface ParamGroupSpec {
  /** The parameters of this group. */
  params: Iterable<Tensor>;
  /** Learning rate of this group. */
  lr?: number;
  /** Momentum of this group. */
  momentum?: number;
  /** Weight decay of this group (e.g. 0 for biases). */
  weightDecay?: number;
  /** Must be 0 if given. */
  dampening?: number;
}

/**
 * A parameter group as the optimizer holds it; `lr`, `momentum`, `weightDecay` are settable,
 * and setting one to a value out of its range throws.
 */
export interface ParamGroup {
  /** The parameters of this group. */
  readonly params: readonly Tensor[];
  /** Learning rate. */
  lr: number;
  /** Momentum coefficient. */
  momentum: number;
  /** Weight decay coefficient. */
  weightDecay: number;
}

/** Velocity given as host values (what a checkpoint file yields). */
export interface HostVelocity {
  /** Dimensions. */
  readonly shape: readonly number[];
  /** Row-major values. */
  readonly data: TypedArray;
}

/** Everything needed to resume the optimizer exactly. */
export interface SgdState {
  /** The update rule (a velocity is meaningless under the other one). */
  rule: SgdRule;
  /** Each group's hyperparameters and parameter count, in order. */
  groups: { lr: number; momentum: number; weightDecay: number; size: number }[];
  /**
   * Velocities by flat parameter index (group by group, as in `parameters()`); parameters
   * that never took a step have none.
   */
  velocities: Map<number, Tensor | HostVelocity>;
}

const RULES: Record<"lr" | "momentum" | "weightDecay", NumberRule> = {
  lr: { min: 0 },
  momentum: { min: 0, below: 1 },
  weightDecay: { min: 0 },
};
const OPTION_KEYS = declareOptions<SgdOptions>()("SGD", [
  "lr",
  "momentum",
  "weightDecay",
  "dampening",
  "rule",
]);
const GROUP_KEYS = declareOptions<ParamGroupSpec>()("SGD group", [
  "params",
  "lr",
  "momentum",
  "weightDecay",
  "dampening",
]);

function checkRule(where: string, rule: unknown): SgdRule {
  if (rule !== "paper" && rule !== "pytorch") {
    throw new RangeError(
      `${where}: rule must be "paper" or "pytorch", got ${describeValue(rule)}`,
    );
  }
  return rule;
}

/** Dampening other than 0 is refused rather than ignored. */
function checkDampening(where: string, source: object): void {
  const dampening = optionalNumber(where, source, "dampening", 0, { min: 0, below: 1 });
  if (dampening !== 0) {
    throw new RangeError(
      `${where}: dampening must be 0 (PyTorch's default; tessera's SGD has no dampening), got ${dampening}`,
    );
  }
}

/** Parameter groups from either form of the constructor's first argument. */
function groupSpecs(
  params: Iterable<Tensor> | ParamGroupSpec[],
): { specs: ParamGroupSpec[]; grouped: boolean } {
  const iterable = params !== null && typeof params === "object" &&
    typeof (params as Iterable<unknown>)[Symbol.iterator] === "function";
  if (!iterable) {
    throw new TypeError(
      `SGD: params must be parameters (e.g. model.parameters()) or an array of groups ` +
        `{ params, lr?, momentum?, weightDecay? }, got ${describeValue(params)}`,
    );
  }
  const list: unknown[] = [...(params as Iterable<unknown>)];
  if (list.length === 0) {
    throw new RangeError("SGD: params is empty; pass model.parameters() of a model with weights");
  }
  if (list.every((p) => p instanceof Tensor)) {
    return { specs: [{ params: list as Tensor[] }], grouped: false };
  }
  list.forEach((spec, g) => {
    const where = `SGD group ${g}`;
    if (spec instanceof Tensor) {
      throw new TypeError(
        `SGD: params mixes tensors and groups (item ${g} is a tensor); put every tensor in a group`,
      );
    }
    const group = checkObject("SGD", `group ${g}`, spec);
    checkOptions(where, group, GROUP_KEYS);
    const inner = group.params as Iterable<unknown> | undefined;
    if (
      inner === null || typeof inner !== "object" ||
      typeof inner[Symbol.iterator] !== "function"
    ) {
      throw new TypeError(
        `${where}: params must be an iterable of parameters, got ${describeValue(inner)}`,
      );
    }
  });
  return { specs: list as ParamGroupSpec[], grouped: true };
}

function missingLr(group: number, grouped: boolean): never {
  throw new TypeError(
    grouped
      ? `SGD: group ${group} has no lr and the options give none; give { lr } (the paper starts at 0.01, section 5)`
      : "SGD: lr is required, e.g. new SGD(model.parameters(), { lr: 0.01 }) (the paper's starting value, section 5)",
  );
}

/** A group whose hyperparameters are checked whenever they are set. */
class Group implements ParamGroup {
  #lr = 0;
  #momentum = 0;
  #weightDecay = 0;
  readonly #where: string;

  constructor(
    readonly params: readonly Tensor[],
    where: string,
    values: { lr: number; momentum: number; weightDecay: number },
  ) {
    this.#where = where;
    this.lr = values.lr;
    this.momentum = values.momentum;
    this.weightDecay = values.weightDecay;
  }

  get lr(): number {
    return this.#lr;
  }
  set lr(value: number) {
    this.#lr = checkNumber(this.#where, "lr", value, RULES.lr);
  }
  get momentum(): number {
    return this.#momentum;
  }
  set momentum(value: number) {
    this.#momentum = checkNumber(this.#where, "momentum", value, RULES.momentum);
  }
  get weightDecay(): number {
    return this.#weightDecay;
  }
  set weightDecay(value: number) {
    this.#weightDecay = checkNumber(this.#where, "weightDecay", value, RULES.weightDecay);
  }
}

/**
 * SGD with momentum, weight decay and parameter groups. `rule` picks the velocity update:
 * `"paper"` (default, AlexNet's section 5: v ← m·v − wd·lr·w − lr·g; w ← w + v) or
 * `"pytorch"` (v ← m·v + g + wd·w; w ← w − lr·v); the two agree until the learning rate
 * changes. The update runs as one kernel per parameter on the parameter's device.
 *
 * @example A training loop
 * ```ts
 * import assert from "node:assert/strict";
 * import { crossEntropy, Linear, randn, SGD } from "../mod.ts";
 *
 * const model = new Linear(4, 3, { rng: 1 });
 * const optimizer = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
 * const x = randn([8, 4], { seed: 2 });
 * const labels = [0, 1, 2, 0, 1, 2, 0, 1];
 * const losses: number[] = [];
 * for (let step = 0; step < 20; step++) {
 *   const loss = crossEntropy(model.forward(x), labels);
 *   losses.push(await loss.item());
 *   optimizer.zeroGrad();
 *   loss.backward();
 *   optimizer.step();
 * }
 * assert.ok(losses[19] < losses[0]); // it learns
 * ```
 */
export class SGD {
  /** The update rule. */
  readonly rule: SgdRule;
  /** Parameter groups with their hyperparameters. */
  readonly groups: ParamGroup[];
  // Velocities are allocated on a parameter's first step, on its device, and kept.
  readonly #velocities = new Map<Tensor, Tensor>();

  /**
   * Creates the optimizer over parameters (e.g. `model.parameters()`) or parameter groups.
   * `lr` is required (in the options, or in every group); each hyperparameter must be a finite
   * number in its range, absent ones take {@link SGD_DEFAULTS}, and unknown options
   * (`weight_decay`, `nesterov`) are errors.
   */
  constructor(params: Iterable<Tensor> | ParamGroupSpec[], options: SgdOptions) {
    checkObject("SGD", "options", options);
    checkOptions("SGD", options, OPTION_KEYS);
    this.rule = Object.hasOwn(options, "rule") ? checkRule("SGD", options.rule) : SGD_DEFAULTS.rule;
    checkDampening("SGD", options);
    const topLr = Object.hasOwn(options, "lr")
      ? checkNumber("SGD", "lr", options.lr, RULES.lr)
      : undefined;
    const momentum = optionalNumber(
      "SGD",
      options,
      "momentum",
      SGD_DEFAULTS.momentum,
      RULES.momentum,
    );
    const weightDecay = optionalNumber(
      "SGD",
      options,
      "weightDecay",
      SGD_DEFAULTS.weightDecay,
      RULES.weightDecay,
    );
    const { specs, grouped } = groupSpecs(params);
    const seen = new Set<Tensor>();
    this.groups = specs.map((spec, g) => {
      const where = `SGD group ${g}`;
      // Tied weights (one tensor listed twice in a group) are updated once, as PyTorch's
      // `parameters()` yields them once; the same tensor in two groups would get two learning
      // rates, which PyTorch refuses too.
      const groupParams = [...new Set(spec.params)];
      for (const p of groupParams) {
        if (!(p instanceof Tensor) || !p.requiresGrad || p.node !== null) {
          throw new TypeError(
            `SGD: group ${g} holds something that is not a parameter (a leaf that requires grad)`,
          );
        }
        if (seen.has(p)) {
          throw new Error(
            `SGD: a parameter ${formatShape(p.shape)} appears in more than one parameter group`,
          );
        }
        seen.add(p);
      }
      checkDampening(where, spec);
      const lr = Object.hasOwn(spec, "lr")
        ? checkNumber(where, "lr", spec.lr, RULES.lr)
        : topLr ?? missingLr(g, grouped);
      return new Group(groupParams, where, {
        lr,
        momentum: optionalNumber(where, spec, "momentum", momentum, RULES.momentum),
        weightDecay: optionalNumber(where, spec, "weightDecay", weightDecay, RULES.weightDecay),
      });
    });
  }

  /** Every parameter, group by group: the order `stateDict()` indexes velocities in. */
  parameters(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** The learning rate of the first group. */
  get lr(): number {
    return this.groups[0].lr;
  }

  /** Sets every group's learning rate. */
  set lr(value: number) {
    checkNumber("SGD.lr", "lr", value, RULES.lr);
    for (const g of this.groups) g.lr = value;
  }

  /** Multiplies every group's learning rate by `factor` (keeping their ratios). */
  scaleLr(factor: number): void {
    checkNumber("SGD.scaleLr", "factor", factor, { min: 0 });
    const scaled = this.groups.map((g, i) =>
      checkNumber("SGD.scaleLr", `group ${i} lr * factor`, g.lr * factor, RULES.lr)
    );
    this.groups.forEach((g, i) => (g.lr = scaled[i]));
  }

  /** Disposes every gradient and sets it to null (the next backward allocates fresh ones). */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Updates every parameter that has a gradient, in place. */
  step(): void {
    for (const group of this.groups) {
      const params: SgdParams = {
        lr: group.lr,
        momentum: group.momentum,
        weightDecay: group.weightDecay,
        rule: this.rule,
      };
      for (const p of group.params) {
        const grad = p.grad;
        if (!grad) continue;
        if (!sameShape(grad.shape, p.shape) || grad.backend !== p.backend) {
          throw new Error(
            `SGD.step: gradient ${
              formatShape(grad.shape)
            } on ${grad.device} does not match parameter ${formatShape(p.shape)} on ${p.device}`,
          );
        }
        let velocity = this.#velocities.get(p);
        if (velocity && (velocity.backend !== p.backend || velocity.dtype !== p.dtype)) {
          velocity = this.#followParameter(p, velocity);
        }
        if (!velocity) {
          velocity = zeros(p.shape, { dtype: p.dtype, device: p.backend }).keep();
          this.#velocities.set(p, velocity);
        }
        p.backend.sgdUpdate(p.storage, grad.storage, velocity.storage, params);
      }
    }
  }

  /**
   * The velocity of a parameter that `Module.to` moved (in place) after earlier steps, moved
   * along: at once from the CPU; from another device the values cannot be read synchronously,
   * so that is an error saying what to do.
   */
  #followParameter(p: Tensor, velocity: Tensor): Tensor {
    if (velocity.device !== "cpu") {
      throw new Error(
        `SGD.step: a parameter moved to ${p.device} (${p.dtype}) after its velocity was made on ${velocity.device}; move the model before the first step, or save optimizer.stateDict() and load it after the move`,
      );
    }
    const source = velocity.dtype === p.dtype
      ? velocity.dataSync()
      : velocity.cast(p.dtype).dataSync();
    const moved = fromArray(source, p.shape, { dtype: p.dtype, device: p.backend }).keep();
    velocity.dispose();
    this.#velocities.set(p, moved);
    return moved;
  }

  /** The velocity of `param`, or null before its first step. */
  velocity(param: Tensor): Tensor | null {
    return this.#velocities.get(param) ?? null;
  }

  /** The optimizer's state; velocities are the live tensors, not copies. */
  stateDict(): SgdState {
    const velocities = new Map<number, Tensor>();
    this.parameters().forEach((p, i) => {
      const v = this.#velocities.get(p);
      if (v) velocities.set(i, v);
    });
    return {
      rule: this.rule,
      groups: this.groups.map((g) => ({
        lr: g.lr,
        momentum: g.momentum,
        weightDecay: g.weightDecay,
        size: g.params.length,
      })),
      velocities,
    };
  }

  /**
   * Checks a saved state against this optimizer without changing anything, and returns it
   * typed: the rule, the group layout, every hyperparameter (present, finite, in range), and
   * every velocity (index, shape, length, finite values). Errors name `where` and the field,
   * e.g. `groups[0].lr`. Used by {@link loadStateDict} and by `loadCheckpoint` before it
   * writes anything.
   */
  checkStateDict(state: unknown, where = "SGD.loadStateDict"): SgdState {
    const s = checkObject(where, "the state", state);
    const rule = checkRule(where, s.rule);
    if (rule !== this.rule) {
      throw new Error(
        `${where}: the state was saved with rule "${rule}" but this optimizer uses "${this.rule}" (the velocities mean different things)`,
      );
    }
    if (!Array.isArray(s.groups)) {
      throw new TypeError(
        `${where}: groups must be an array of { lr, momentum, weightDecay, size }, got ${
          describeValue(s.groups)
        }`,
      );
    }
    const groups = s.groups.map((value, i) => {
      const g = checkObject(where, `groups[${i}]`, value);
      return {
        lr: checkNumber(where, `groups[${i}].lr`, g.lr, RULES.lr),
        momentum: checkNumber(where, `groups[${i}].momentum`, g.momentum, RULES.momentum),
        weightDecay: checkNumber(
          where,
          `groups[${i}].weightDecay`,
          g.weightDecay,
          RULES.weightDecay,
        ),
        size: checkNumber(where, `groups[${i}].size`, g.size, { min: 0, integer: true }),
      };
    });
    const layout = (sizes: number[]) => `[${sizes.join(", ")}]`;
    const saved = groups.map((g) => g.size), own = this.groups.map((g) => g.params.length);
    if (saved.length !== own.length || saved.some((n, i) => n !== own[i])) {
      throw new Error(
        `${where}: the state has groups of sizes ${layout(saved)}, this optimizer ${layout(own)}`,
      );
    }
    if (!(s.velocities instanceof Map)) {
      throw new TypeError(
        `${where}: velocities must be a Map from parameter index to tensor, got ${
          describeValue(s.velocities)
        }`,
      );
    }
    const params = this.parameters();
    const velocities = new Map<number, Tensor | HostVelocity>();
    for (const [index, v] of s.velocities as Map<unknown, unknown>) {
      const p = typeof index === "number" ? params[index] : undefined;
      if (!p || !Number.isInteger(index)) {
        throw new RangeError(
          `${where}: velocity index ${
            describeValue(index)
          } is out of range (${params.length} parameters)`,
        );
      }
      velocities.set(index as number, checkVelocity(where, index as number, v, p));
    }
    return { rule, groups, velocities };
  }

  /**
   * Restores hyperparameters and velocities (copied onto each parameter's device). Everything
   * is checked first ({@link checkStateDict}): anything wrong throws and changes nothing.
   */
  async loadStateDict(state: SgdState): Promise<void> {
    const checked = this.checkStateDict(state);
    const params = this.parameters();
    const restored = new Map<Tensor, Tensor>();
    for (const [index, v] of checked.velocities) {
      const p = params[index];
      const data = v instanceof Tensor ? await v.data() : v.data;
      restored.set(p, fromArray(data, p.shape, { dtype: p.dtype, device: p.backend }).keep());
    }
    this.dispose();
    for (const [p, v] of restored) this.#velocities.set(p, v);
    checked.groups.forEach((g, i) => {
      this.groups[i].lr = g.lr;
      this.groups[i].momentum = g.momentum;
      this.groups[i].weightDecay = g.weightDecay;
    });
  }

  /** Frees every velocity (momentum restarts from zero on the next step). */
  dispose(): void {
    for (const v of this.#velocities.values()) v.dispose();
    this.#velocities.clear();
  }
}

/** A velocity's shape must be its parameter's, and host values must be finite floats. */
function checkVelocity(where: string, index: number, v: unknown, p: Tensor): Tensor | HostVelocity {
  const shapeOf = (value: unknown) =>
    Array.isArray(value) ? formatShape(value) : describeValue(value);
  if (v instanceof Tensor) {
    if (!sameShape(v.shape, p.shape)) {
      throw new RangeError(
        `${where}: velocity ${index} has shape ${formatShape(v.shape)} but its parameter has ${
          formatShape(p.shape)
        }`,
      );
    }
    return v;
  }
  const host = checkObject(where, `velocity ${index}`, v);
  if (!Array.isArray(host.shape) || !sameShape(host.shape, p.shape)) {
    throw new RangeError(
      `${where}: velocity ${index} has shape ${shapeOf(host.shape)} but its parameter has ${
        formatShape(p.shape)
      }`,
    );
  }
  const data = host.data;
  if (!(data instanceof Float32Array || data instanceof Float64Array)) {
    throw new TypeError(
      `${where}: velocity ${index} must hold a Float32Array or Float64Array, got ${
        (data as object)?.constructor?.name ?? describeValue(data)
      }`,
    );
  }
  if (data.length !== p.size) {
    throw new RangeError(
      `${where}: velocity ${index} holds ${data.length} values for shape ${formatShape(p.shape)}`,
    );
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new RangeError(
        `${where}: velocity ${index} holds ${data[i]} at element ${i}; a non-finite velocity ` +
          `turns every weight it touches into NaN (the run that saved it diverged)`,
      );
    }
  }
  return { shape: host.shape as number[], data };
}
