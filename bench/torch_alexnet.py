"""PyTorch yardstick for bench/cpu_alexnet_bench.ts (and onnxruntime's, with --onnxruntime), on the same networks: AlexNet-mini (groups 2,
as tessera's alexnetMini(), or 1) and the paper's AlexNet (227 px, groups 2 in conv2/4/5, LRN).
Training step (forward, cross-entropy, backward, SGD momentum 0.9, weight decay 5e-4) and
inference (eval, no_grad), images/s, median of the runs after 2 warm-ups.

    python torch_alexnet.py --threads 1   (PyTorch 2.x CPU wheel; for the "tuned" figures set
    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296, see PERF.md)

--onnxruntime runs the inference rows on onnxruntime instead (the same network exported to ONNX
in eval mode, intra-op threads = --threads), and skips the training rows.

--simd128 limits PyTorch to 128-bit vectors, the width WebAssembly SIMD has: oneDNN (convolutions,
linear layers) to SSE4.1 (ONEDNN_MAX_CPU_ISA=SSE41) and ATen's own kernels to their baseline build
(ATEN_CPU_CAPABILITY=default). On a CPU with AVX-512 this is the same library with a quarter of the
vector width, the fair yardstick for a WebAssembly kernel.
"""
import argparse, os, time

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--quick", action="store_true")
p.add_argument("--onnxruntime", action="store_true", help="inference rows on onnxruntime, no training rows")
p.add_argument("--simd128", action="store_true", help="128-bit vectors only (SSE4.1), as WebAssembly")
args = p.parse_args()
os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
if args.simd128:
    os.environ["ONEDNN_MAX_CPU_ISA"] = "SSE41"
    os.environ["ATEN_CPU_CAPABILITY"] = "default"
import torch
from torch import nn

torch.set_num_threads(args.threads)


def alexnet(channels, kernels, strides, pads, hidden, classes, in_ch, groups):
    lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    c = [in_ch] + channels
    g = [1, groups, 1, groups, groups]
    layers = []
    for i in range(5):
        layers += [nn.Conv2d(c[i], c[i + 1], kernels[i], strides[i], pads[i], groups=g[i]), nn.ReLU()]
        if i < 2: layers += [lrn(), nn.MaxPool2d(3, 2)]
    layers += [nn.MaxPool2d(3, 2), nn.Flatten()]
    return layers, hidden, classes


def build(kind, groups):
    if kind == "mini":
        layers, hidden, classes = alexnet([32, 64, 96, 96, 64], [5, 5, 3, 3, 3], [1] * 5, [2, 2, 1, 1, 1], 256, 10, 1, groups)
        flat, shape = 64 * 2 * 2, (1, 28, 28)
    else:
        layers, hidden, classes = alexnet([96, 256, 384, 384, 256], [11, 5, 3, 3, 3], [4, 1, 1, 1, 1], [0, 2, 1, 1, 1], 4096, 1000, 3, groups)
        flat, shape = 256 * 6 * 6, (3, 227, 227)
    layers += [nn.Linear(flat, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, classes)]
    return nn.Sequential(*layers), shape, classes


def median_seconds(fn, reps):
    for _ in range(2): fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def onnx_session(net, x):
    """One inference of net on x in onnxruntime, as a function (the model exported in memory)."""
    import io, onnxruntime, warnings
    model = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding
        torch.onnx.export(net, (x,), model, input_names=["x"], dynamo=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    session = onnxruntime.InferenceSession(model.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    return lambda: session.run(None, feed)


def row(kind, groups, mode, batch, reps):
    if mode == "train" and args.onnxruntime: return
    torch.manual_seed(0)
    net, shape, classes = build(kind, groups)
    x = torch.randn(batch, *shape); y = torch.randint(0, classes, (batch,))
    if mode == "train":
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        loss = nn.CrossEntropyLoss()
        def step():
            opt.zero_grad(set_to_none=True); loss(net(x), y).backward(); opt.step()
    elif args.onnxruntime:
        step = onnx_session(net.eval(), x)
    else:
        net.eval()
        def step():
            with torch.no_grad(): net(x)
    s = median_seconds(step, reps)
    value = f"{s * 1000:.1f} ms" if batch == 1 else f"{batch / s:.1f} img/s"
    params = sum(p.numel() for p in net.parameters())
    print(f"| {mode} | {kind} groups {groups} ({params:,} params) | {batch} | {value} |", flush=True)


isa = f"{torch.backends.cpu.get_cpu_capability()}, oneDNN ISA limit {os.environ.get('ONEDNN_MAX_CPU_ISA', 'none')}"
engine = "torch " + torch.__version__
if args.onnxruntime:
    import onnxruntime
    engine = f"onnxruntime {onnxruntime.__version__} (model exported by torch {torch.__version__})"
print(f"# {engine}, {args.threads} thread(s), {isa}, loadavg {open('/proc/loadavg').read().split()[0]}")
print(f"| mode | network | batch | {'onnxruntime' if args.onnxruntime else 'PyTorch'} |\n|---|---|---:|---:|")
row("mini", 2, "train", 128, 7)
row("mini", 1, "train", 128, 7)
row("mini", 2, "infer", 128, 9)
row("mini", 2, "infer", 1, 15)
row("paper", 2, "infer", 1, 9)
if not args.quick:
    row("paper", 2, "train", 8, 5)
