#!/usr/bin/env python3
"""PyTorch's answers for tessera's semantics tests, written once so CI needs no torch.

Run from the repository root with Debian's python3-torch (1.13):

    /usr/bin/python3 tools/semantics_fixtures.py      (then formats them with deno fmt)

It writes tests/fixtures/semantics/*.json: the inputs (float64, row-major, with shapes), the
options, and PyTorch's outputs and input gradients, for
  - cross_entropy.json: weight, ignore_index, label_smoothing and their combinations;
  - conv2d_dilation.json: conv2d with dilation (and stride, padding, groups);
  - pool.json: max_pool2d with ceil_mode, avg_pool2d with ceil_mode / count_include_pad;
  - edges.json: NaN, integer and edge-gradient conventions (relu, abs, sqrt, log, pow, max,
    argmax, int32 wrap-around, max-pool with NaN).
Every gradient is of sum(output * r) for a fixed random r, so no gradient is trivially ones.
"""

import json
import math
import os
import subprocess

import torch
import torch.nn.functional as F

OUT = os.path.join("tests", "fixtures", "semantics")
torch.manual_seed(0)
torch.set_default_dtype(torch.float64)


def flat(t):
    """A tensor as {shape, data}; NaN and infinities as strings (JSON has none)."""
    values = []
    for v in t.detach().reshape(-1).tolist():
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            values.append(str(v))  # "nan", "inf", "-inf"
        else:
            values.append(v)
    return {"shape": list(t.shape), "data": values}


def grads_of(fn, inputs):
    """fn(*inputs), and the gradient of sum(out * r) with respect to each input."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    r = torch.rand(out.shape) + 0.5
    (out * r).sum().backward()
    return out, r, [x.grad for x in leaves]


def write(name, cases):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, indent=None)
        f.write("\n")


def cross_entropy_cases():
    cases = []
    option_sets = [
        {},
        {"labelSmoothing": 0.1},
        {"weight": [0.5, 2.0, 1.0, 3.0]},
        {"ignoreIndex": 2},
        {"weight": [0.5, 2.0, 1.0, 3.0], "labelSmoothing": 0.25},
        {"weight": [0.5, 2.0, 1.0, 3.0], "ignoreIndex": 1, "labelSmoothing": 0.3},
        {"ignoreIndex": -100, "labelSmoothing": 1.0},
    ]
    logits = torch.randn(6, 4) * 2
    labels = [0, 3, 2, 1, 2, 3]
    for options in option_sets:
        for reduction in ["mean", "sum", "none"]:
            kwargs = {"reduction": reduction}
            if "weight" in options:
                kwargs["weight"] = torch.tensor(options["weight"])
            if "ignoreIndex" in options:
                kwargs["ignore_index"] = options["ignoreIndex"]
            if "labelSmoothing" in options:
                kwargs["label_smoothing"] = options["labelSmoothing"]
            target = list(labels)
            if options.get("ignoreIndex") == -100:
                target[1] = -100
            out, r, (grad,) = grads_of(
                lambda x: F.cross_entropy(x, torch.tensor(target), **kwargs), [logits]
            )
            cases.append({
                "options": {**options, "reduction": reduction},
                "logits": flat(logits),
                "labels": target,
                "r": flat(r),
                "out": flat(out),
                "grad": flat(grad),
            })
    return cases


def conv_cases():
    cases = []
    configs = [
        ([1, 1, 7, 7], [1, 1, 3, 3], 1, 0, 2, 1),
        ([2, 2, 9, 8], [3, 2, 3, 2], 2, 1, (2, 3), 1),
        ([1, 4, 10, 10], [4, 2, 3, 3], 1, 2, 3, 2),
        ([1, 1, 5, 5], [2, 1, 2, 2], (1, 2), (1, 0), (4, 1), 1),
    ]
    for x_shape, w_shape, stride, padding, dilation, groups in configs:
        x, w, b = torch.randn(x_shape), torch.randn(w_shape), torch.randn(w_shape[0])
        out, r, (gx, gw, gb) = grads_of(
            lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups), [x, w, b]
        )
        pair = lambda v: list(v) if isinstance(v, tuple) else v
        cases.append({
            "options": {"stride": pair(stride), "padding": pair(padding),
                        "dilation": pair(dilation), "groups": groups},
            "x": flat(x), "w": flat(w), "b": flat(b), "r": flat(r),
            "out": flat(out), "gx": flat(gx), "gw": flat(gw), "gb": flat(gb),
        })
    return cases


def pool_cases():
    cases = []
    configs = [
        ([1, 1, 5, 5], 2, 2, 0),
        ([1, 2, 6, 7], 3, 2, 1),
        ([2, 1, 8, 5], (3, 2), (2, 2), (1, 1)),
        ([1, 1, 4, 4], 3, 3, 1),
        ([1, 1, 9, 9], 2, 3, 1),
    ]
    for shape, k, s, p in configs:
        x = torch.randn(shape)
        pair = lambda v: list(v) if isinstance(v, tuple) else v
        for ceil in [False, True]:
            out, r, (g,) = grads_of(lambda x: F.max_pool2d(x, k, s, p, ceil_mode=ceil), [x])
            cases.append({"op": "maxPool2d", "options": {"kernelSize": pair(k), "stride": pair(s),
                          "padding": pair(p), "ceilMode": ceil},
                          "x": flat(x), "r": flat(r), "out": flat(out), "grad": flat(g)})
            for include in [True, False]:
                out, r, (g,) = grads_of(
                    lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=include),
                    [x],
                )
                cases.append({"op": "avgPool2d", "options": {
                    "kernelSize": pair(k), "stride": pair(s), "padding": pair(p),
                    "ceilMode": ceil, "countIncludePad": include},
                    "x": flat(x), "r": flat(r), "out": flat(out), "grad": flat(g)})
    return cases


def unary_edge(name, fn, values):
    x = torch.tensor(values).requires_grad_(True)
    y = fn(x)
    y.backward(torch.ones_like(y))
    return {"op": name, "x": flat(x), "out": flat(y), "grad": flat(x.grad)}


def edge_cases():
    nan, inf = float("nan"), float("inf")
    cases = [
        unary_edge("relu", torch.relu, [nan, -1.0, 0.0, 2.0]),
        unary_edge("abs", torch.abs, [-2.0, 0.0, 3.0, nan]),
        unary_edge("sqrt", torch.sqrt, [0.0, 4.0]),
        unary_edge("log", torch.log, [0.0, 1.0, -1.0]),
        unary_edge("exp", torch.exp, [nan, -inf, 0.0]),
        unary_edge("tanh", torch.tanh, [nan, 0.0]),
        unary_edge("sigmoid", torch.sigmoid, [nan, 0.0]),
        unary_edge("pow0", lambda x: torch.pow(x, 0), [0.0, 2.0, -3.0]),
        unary_edge("pow2", lambda x: torch.pow(x, 2), [0.0, -3.0]),
        unary_edge("pow0.5", lambda x: torch.pow(x, 0.5), [0.0, 4.0]),
        unary_edge("pow-1", lambda x: torch.pow(x, -1), [0.0, 2.0]),
        unary_edge("amax_ties", lambda x: torch.amax(x, 0, keepdim=True), [1.0, 3.0, 3.0, 2.0]),
        unary_edge("amax_nan", lambda x: torch.amax(x, 0, keepdim=True), [1.0, nan, 3.0]),
        unary_edge("sum_nan", lambda x: torch.sum(x, 0, keepdim=True), [1.0, nan, 3.0]),
    ]
    rows = torch.tensor([[1.0, nan, 3.0, nan], [2.0, 5.0, 5.0, 1.0], [-inf, -inf, -inf, -inf]])
    cases.append({"op": "argmax", "x": flat(rows), "out": torch.argmax(rows, 1).tolist()})
    big = torch.tensor([2147483647, -2147483648, 65536, 123456789], dtype=torch.int32)
    other = torch.tensor([1, -1, 65536, 987654321], dtype=torch.int32)
    cases.append({"op": "int32", "a": big.tolist(), "b": other.tolist(),
                  "add": (big + other).tolist(), "sub": (big - other).tolist(),
                  "mul": (big * other).tolist()})
    x = torch.tensor([[[[1.0, nan, 2.0], [3.0, 4.0, 5.0], [0.0, 1.0, nan]]]])
    cases.append({"op": "maxPool2dNan", "x": flat(x),
                  "out": flat(F.max_pool2d(x, 2, 1))})
    return cases


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write("cross_entropy.json", cross_entropy_cases())
    write("conv2d_dilation.json", conv_cases())
    write("pool.json", pool_cases())
    write("edges.json", edge_cases())
    # The repository's formatter owns the layout (deno fmt --check runs in CI).
    subprocess.run(["deno", "fmt", OUT], check=False)
    print("wrote", OUT)
