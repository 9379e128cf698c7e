/**
 * Stochastic gradient descent with momentum and weight decay, with two update rules: the
 * paper's ("paper", Krizhevsky et al. 2012, section 5) and PyTorch's ("pytorch"). The rules,
 * and why they part ways when the learning rate changes, are stated in tensor/ops/sgd.ts.
 *
 * The update itself is one backend kernel (`sgdUpdate`: CPU in tensor/ops/sgd.ts, WGSL in
 * gpu/kernels/sgd.ts), applied in place to each parameter and its velocity, so a GPU step
 * never leaves the GPU.
 *
 * @module
 */

import type { SgdParams, TypedArray } from "../backend/backend.ts";
import { fromArray, Tensor, zeros } from "../tensor/tensor.ts";
import { formatShape, sameShape } from "../tensor/shape.ts";

/** Which velocity update to use; see the module comment. */
export type SgdRule = SgdParams["rule"];

/** Hyperparameters shared by the optimizer and its groups. */
export interface SgdHyperparameters {
  /** Learning rate (the paper starts at 0.01: section 5). */
  lr: number;
  /** Momentum coefficient (default 0; the paper uses 0.9: section 5). */
  momentum?: number;
  /** L2 weight decay (default 0; the paper uses 0.0005: section 5). */
  weightDecay?: number;
}

/** Options of {@link SGD}. */
export interface SgdOptions extends SgdHyperparameters {
  /** Update rule (default "paper": AlexNet's own, section 5). */
  rule?: SgdRule;
}

/** A set of parameters with its own hyperparameters (unset ones come from the options). */
export interface ParamGroupSpec {
  /** The parameters of this group. */
  params: Iterable<Tensor>;
  /** Learning rate of this group. */
  lr?: number;
  /** Momentum of this group. */
  momentum?: number;
  /** Weight decay of this group (e.g. 0 for biases). */
  weightDecay?: number;
}

/** A parameter group as the optimizer holds it; `lr`, `momentum`, `weightDecay` are settable. */
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

function checkHyperparameters(where: string, h: Partial<SgdHyperparameters>): void {
  if (h.lr !== undefined && !(h.lr >= 0)) {
    throw new RangeError(`${where}: lr must be >= 0, got ${h.lr}`);
  }
  if (h.momentum !== undefined && !(h.momentum >= 0 && h.momentum < 1)) {
    throw new RangeError(`${where}: momentum must be in [0, 1), got ${h.momentum}`);
  }
  if (h.weightDecay !== undefined && !(h.weightDecay >= 0)) {
    throw new RangeError(`${where}: weightDecay must be >= 0, got ${h.weightDecay}`);
  }
}

/** SGD with momentum, weight decay and parameter groups (see the module comment). */
export class SGD {
  /** The update rule. */
  readonly rule: SgdRule;
  /** Parameter groups with their hyperparameters. */
  readonly groups: ParamGroup[];
  // Velocities are allocated on a parameter's first step, on its device, and kept.
  readonly #velocities = new Map<Tensor, Tensor>();

  /** Creates the optimizer over parameters (e.g. `model.parameters()`) or parameter groups. */
  constructor(params: Iterable<Tensor> | ParamGroupSpec[], options: SgdOptions) {
    checkHyperparameters("SGD", options);
    this.rule = options.rule ?? "paper";
    if (this.rule !== "paper" && this.rule !== "pytorch") {
      throw new RangeError(
        `SGD: rule must be "paper" or "pytorch", got ${JSON.stringify(this.rule)}`,
      );
    }
    const list = [...params];
    const specs: ParamGroupSpec[] = list.every((p) => p instanceof Tensor)
      ? [{ params: list as Tensor[] }]
      : (list as ParamGroupSpec[]);
    const seen = new Set<Tensor>();
    this.groups = specs.map((spec, g) => {
      checkHyperparameters(`SGD group ${g}`, spec);
      const groupParams = [...spec.params];
      for (const p of groupParams) {
        if (!(p instanceof Tensor) || !p.requiresGrad || p.node !== null) {
          throw new TypeError(
            `SGD: group ${g} holds something that is not a parameter (a leaf that requires grad)`,
          );
        }
        if (seen.has(p)) throw new Error(`SGD: a parameter ${formatShape(p.shape)} appears twice`);
        seen.add(p);
      }
      return {
        params: groupParams,
        lr: spec.lr ?? options.lr,
        momentum: spec.momentum ?? options.momentum ?? 0,
        weightDecay: spec.weightDecay ?? options.weightDecay ?? 0,
      };
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
    checkHyperparameters("SGD.lr", { lr: value });
    for (const g of this.groups) g.lr = value;
  }

  /** Multiplies every group's learning rate by `factor` (keeping their ratios). */
  scaleLr(factor: number): void {
    checkHyperparameters("SGD.scaleLr", { lr: factor });
    for (const g of this.groups) g.lr *= factor;
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
        if (!velocity) {
          velocity = zeros(p.shape, { dtype: p.dtype, device: p.backend }).keep();
          this.#velocities.set(p, velocity);
        }
        p.backend.sgdUpdate(p.storage, grad.storage, velocity.storage, params);
      }
    }
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
   * Restores hyperparameters and velocities (copied onto each parameter's device). Everything
   * is checked first: a different rule, group layout, index or velocity shape throws and
   * changes nothing.
   */
  async loadStateDict(state: SgdState): Promise<void> {
    const where = "SGD.loadStateDict";
    if (state.rule !== this.rule) {
      throw new Error(
        `${where}: the state was saved with rule "${state.rule}" but this optimizer uses "${this.rule}" (the velocities mean different things)`,
      );
    }
    const layout = (sizes: number[]) => `[${sizes.join(", ")}]`;
    const saved = state.groups.map((g) => g.size), own = this.groups.map((g) => g.params.length);
    if (saved.length !== own.length || saved.some((n, i) => n !== own[i])) {
      throw new Error(
        `${where}: the state has groups of sizes ${layout(saved)}, this optimizer ${layout(own)}`,
      );
    }
    state.groups.forEach((g, i) => checkHyperparameters(`${where} group ${i}`, g));
    const params = this.parameters();
    for (const [index, v] of state.velocities) {
      const p = params[index];
      if (!p) {
        throw new RangeError(
          `${where}: velocity index ${index} is out of range (${params.length} parameters)`,
        );
      }
      if (!sameShape(v.shape, p.shape)) {
        throw new RangeError(
          `${where}: velocity ${index} has shape ${formatShape(v.shape)} but its parameter has ${
            formatShape(p.shape)
          }`,
        );
      }
    }
    const restored = new Map<Tensor, Tensor>();
    for (const [index, v] of state.velocities) {
      const p = params[index];
      const data = v instanceof Tensor ? await v.data() : v.data;
      restored.set(p, fromArray(data, p.shape, { dtype: p.dtype, device: p.backend }).keep());
    }
    this.dispose();
    for (const [p, v] of restored) this.#velocities.set(p, v);
    state.groups.forEach((g, i) => {
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
