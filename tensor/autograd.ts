/**
 * Reverse-mode automatic differentiation.
 *
 * Every op that sees an input requiring grad records a {@link GraphNode} on its output: the
 * inputs, and a `backward` closure that maps the gradient of the output to the gradients of
 * the inputs (the chain rule for that one op). `backward(loss)` visits the graph in reverse
 * topological order, so each tensor's gradient is complete (summed over all its uses) before
 * it is passed on, and gradients reaching leaves are *accumulated* into `.grad`:
 *
 *     leaf.grad = leaf.grad + incoming     // += : a parameter used twice gets both terms
 *
 * As it goes, backward releases what it no longer needs (see the memory rule in
 * `tensor/tensor.ts`): each intermediate once its own backward has run, and each gradient
 * once it has been passed on.
 *
 * @module
 */

import { onesLike, Tensor, wrap } from "./tensor.ts";
import { checkArgument, checkOptions, declareOptions } from "./options.ts";

const BACKWARD_KEYS = declareOptions<BackwardOptions>()("backward", ["retainGraph"]);
import { formatShape, sameShape } from "./shape.ts";
import { add } from "./ops/elementwise.ts";

/** How a tensor was computed: the op, its inputs, and the chain rule for it. */
export interface GraphNode {
  /** Op name, for error messages and debugging. */
  readonly op: string;
  /** The tensors the op read. */
  readonly inputs: readonly Tensor[];
  /** Given dL/d(output), returns dL/d(input) for each input (null where none flows). */
  readonly backward: (grad: Tensor) => (Tensor | null)[];
  /** Extra tensors the op keeps only for its backward (argmax indices, say); freed with the node. */
  readonly saved: readonly Tensor[];
}

// ---------------------------------------------------------------------------------------------
// Grad mode and scopes

let gradEnabled = true;
const scopes: Set<Tensor>[] = [];

/** Whether ops currently record the graph. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** The innermost active scope's set of tensors, if any (tensors register themselves). */
export function currentScope(): Set<Tensor> | undefined {
  return scopes[scopes.length - 1];
}

/** Anything a scope callback may return; every tensor found inside survives the scope. */
export type ScopeResult = unknown;

/**
 * Runs `fn` and then releases every tensor created inside it, except those it returns (found
 * in arrays and plain objects), those kept with `.keep()`, and those a returned tensor's graph
 * still needs for backward.
 *
 * @example Release intermediates deterministically
 * ```ts
 * import assert from "node:assert/strict";
 * import { add, mul, scope, tensor, type Tensor } from "../mod.ts";
 *
 * const x = tensor([1, 2, 3]);
 * let temporary: Tensor | undefined;
 * const y = scope(() => {
 *   temporary = mul(x, 2); // released when the scope ends
 *   return add(temporary, 1); // returned: survives
 * });
 * assert.deepEqual([...y.dataSync()], [3, 5, 7]);
 * assert.throws(() => temporary!.dataSync()); // using a released tensor is an error
 * ```
 */
export function scope<T extends ScopeResult>(fn: () => T): T {
  if (typeof fn !== "function") {
    throw new TypeError(`scope/noGrad: expects a function, got ${typeof fn} ${String(fn)}`);
  }
  const created = new Set<Tensor>();
  scopes.push(created);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  for (const t of [...survivors]) markGraph(t, survivors);
  const outer = currentScope();
  for (const t of created) {
    if (survivors.has(t) || t.isKept) outer?.add(t);
    else t.release("released when the scope() or noGrad() that created it ended");
  }
  if (result instanceof Promise) {
    // Tensors made after an await would escape the scope (and grad mode would be back on).
    result.catch(() => {}); // the error below is the one to report
    throw new TypeError(
      "scope/noGrad: the callback returned a Promise; they track synchronous code only: " +
        "await outside, e.g. const y = noGrad(() => model.forward(x)); await y.data()",
    );
  }
  return result;
}

/**
 * Runs `fn` without recording a graph; like {@link scope}, it releases what `fn` created but did not return.
 *
 * @example Evaluate without building a graph
 * ```ts
 * import assert from "node:assert/strict";
 * import { matmul, noGrad, randn } from "../mod.ts";
 *
 * const w = randn([3, 2], { seed: 1, requiresGrad: true });
 * const x = randn([4, 3], { seed: 2 });
 * const y = noGrad(() => matmul(x, w)); // evaluation: no graph is recorded
 * assert.equal(y.requiresGrad, false);
 * assert.equal(matmul(x, w).requiresGrad, true); // outside, the graph is back
 * ```
 */
export function noGrad<T extends ScopeResult>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return scope(fn);
  } finally {
    gradEnabled = previous;
  }
}

/** Runs `fn` with graph recording switched on or off, releasing nothing. */
export function withGradEnabled<T>(enabled: boolean, fn: () => T): T {
  checkArgument("withGradEnabled", "fn", fn, "function");
  const previous = gradEnabled;
  gradEnabled = enabled;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/**
 * Adds every tensor found in `value` (and its gradient) to `into`, searching arrays, Maps and
 * plain objects to any depth. Each container is visited once, so a cycle cannot loop.
 */
function collectTensors(value: unknown, into: Set<Tensor>): void {
  const seen = new Set<object>();
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (v === null || typeof v !== "object" || seen.has(v)) continue;
    seen.add(v);
    if (v instanceof Tensor) {
      into.add(v);
      if (v.grad) into.add(v.grad);
    } else if (Array.isArray(v)) {
      for (const item of v) stack.push(item);
    } else if (v instanceof Map) {
      for (const item of v.values()) stack.push(item);
    } else if (Object.getPrototypeOf(v) === Object.prototype) {
      for (const item of Object.values(v)) stack.push(item);
    }
  }
}

function markGraph(t: Tensor, into: Set<Tensor>): void {
  const stack = [t];
  while (stack.length) {
    const node = stack.pop()!.node;
    if (!node) continue;
    for (const x of [...node.inputs, ...node.saved]) {
      if (!into.has(x)) {
        into.add(x);
        stack.push(x);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward

/** Tensors with a graph node reachable from `root`, inputs before outputs. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative depth-first search: AlexNet's graph is shallow, but a user's RNN may not be.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, next] = top;
    const inputs = t.node?.inputs ?? [];
    if (next < inputs.length) {
      top[1]++;
      const input = inputs[next];
      if (consumed.has(input)) throw alreadyBackpropagated(input);
      if (input.node && !visited.has(input)) {
        visited.add(input);
        stack.push([input, 0]);
      }
    } else {
      stack.pop();
      if (t.node) order.push(t);
    }
  }
  return order;
}

/** Options of {@link backward}. */
export interface BackwardOptions {
  /**
   * Keep the graph (PyTorch's `retain_graph`): its intermediates and saved tensors survive,
   * so a second `backward()` through it works (and accumulates into `.grad` again). They are
   * then released by that last backward, or by `dispose()`, or with the scope.
   */
  retainGraph?: boolean;
}

/**
 * Tensors whose graph node a backward() released: reaching one again means backpropagating
 * twice through the same graph, which would silently stop there (its inputs would get no
 * gradient), so it is an error.
 */
const consumed = new WeakSet<Tensor>();

function alreadyBackpropagated(t: Tensor): Error {
  return new Error(
    `backward: the graph through tensor ${formatShape(t.shape)} was already used by an earlier ` +
      "backward(), which released it; to backpropagate through it twice, pass " +
      "{ retainGraph: true } to the first backward() (loss.backward({ retainGraph: true })), " +
      "or compute the forward again",
  );
}

/**
 * Back-propagates from `root`. A non-scalar root needs an upstream gradient of its shape.
 * Gradients accumulate (`+=`) into the `.grad` of every leaf that requires grad. Unless
 * `options.retainGraph`, the graph is released as it goes: every intermediate and everything
 * the ops saved for backward is disposed once its gradient has been passed on, so only `root`
 * and the leaves survive (call `.keep()` on an intermediate you still need).
 */
export function backward(root: Tensor, upstream?: Tensor, options?: BackwardOptions): void {
  options = checkOptions("backward", options, BACKWARD_KEYS);
  checkBackwardArguments(root, upstream);
  const grads = new Map<Tensor, Tensor>();
  grads.set(root, upstream ?? withGradEnabled(false, () => onesLike(root)));
  withGradEnabled(false, () => {
    if (!root.node) {
      // backward() on a leaf: its gradient is the upstream one.
      accumulate(grads, root, upstream ? upstream.detach() : grads.get(root)!);
      return;
    }
    const order = topologicalOrder(root);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const node = t.node!;
      const g = grads.get(t);
      grads.delete(t);
      if (g) {
        // The closure's temporaries die with this scope; the input gradients it returns live on.
        const inputGrads = scope(() => node.backward(g));
        const passedOn = new Set<Tensor>([g]);
        node.inputs.forEach((input, j) => {
          let ig = inputGrads[j];
          // An op may hand the same tensor to two inputs (add) or pass g through (reshape):
          // give each its own reference to the shared memory.
          if (ig && passedOn.has(ig)) ig = ig.detach();
          if (ig) passedOn.add(ig);
          if (ig && input.requiresGrad) accumulate(grads, input, ig);
          else ig?.dispose();
        });
        if (g !== upstream) g.dispose();
      }
      if (options.retainGraph) continue;
      for (const s of node.saved) s.release("released by backward()");
      t.node = null;
      consumed.add(t);
      if (t !== root) t.release("released by backward()");
    }
  });
}

/** Throws, naming the argument, unless `upstream` can seed the backward pass from `root`. */
function checkBackwardArguments(root: Tensor, upstream: Tensor | undefined): void {
  if (!(root instanceof Tensor)) {
    throw new TypeError(
      `backward: expects the tensor to differentiate (a scalar loss), got ${String(root)}`,
    );
  }
  if (upstream !== undefined && !(upstream instanceof Tensor)) {
    throw new TypeError(
      `backward: the upstream gradient must be a Tensor of shape ${formatShape(root.shape)}, got ${
        Array.isArray(upstream) ? "an array" : typeof upstream
      }`,
    );
  }
  if (consumed.has(root)) throw alreadyBackpropagated(root);
  if (!root.requiresGrad) {
    throw new Error(
      `backward: tensor ${
        formatShape(root.shape)
      } does not require grad (no input of its graph has requiresGrad)`,
    );
  }
  if (upstream === undefined && root.size !== 1) {
    throw new Error(
      `backward: tensor ${
        formatShape(root.shape)
      } is not a scalar; pass an upstream gradient of that shape, or reduce it first`,
    );
  }
  if (upstream && (upstream.dtype !== root.dtype || upstream.device !== root.device)) {
    throw new TypeError(
      `backward: the upstream gradient is ${upstream.dtype} on ${upstream.device}, the tensor ${root.dtype} on ${root.device}; they must match`,
    );
  }
  if (upstream && !sameShape(upstream.shape, root.shape)) {
    throw new RangeError(
      `backward: upstream gradient ${formatShape(upstream.shape)} does not match tensor ${
        formatShape(root.shape)
      }`,
    );
  }
}

/**
 * Adds gradient `g` to tensor `t`: into `.grad` for a leaf (which the user owns), into the
 * pending gradients `grads` for an intermediate. Takes ownership of `g`.
 */
function accumulate(grads: Map<Tensor, Tensor>, t: Tensor, g: Tensor): void {
  if (!sameShape(g.shape, t.shape)) {
    throw new Error(
      `backward: gradient ${formatShape(g.shape)} does not match ${formatShape(t.shape)} (op ${
        t.node?.op ?? "leaf"
      })`,
    );
  }
  if (!t.node) {
    // A leaf: accumulate into .grad, which the user owns (and the optimizer reads). A
    // gradient that shares memory (the upstream tensor passed to backward(g), or one tensor
    // handed to two inputs) is copied, so no .grad aliases another tensor, as in PyTorch.
    if (t.grad) {
      const sum = add(t.grad, g);
      t.grad.dispose();
      g.dispose();
      t.grad = sum.keep();
    } else if (g.sharesMemory) {
      // A copy on any device: x · 1 + (−0) is x exactly, −0 included.
      t.grad = wrap(g.backend.affine(g.storage, 1, -0), g.shape).keep();
      g.dispose();
    } else t.grad = g.keep();
    return;
  }
  const previous = grads.get(t);
  if (previous) {
    grads.set(t, add(previous, g));
    previous.dispose();
    g.dispose();
  } else grads.set(t, g);
}
