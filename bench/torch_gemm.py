"""PyTorch's GFLOP/s on the products of bench/gemm_bench.ts, to print beside tessera's in one sitting.

    /usr/bin/python3 bench/torch_gemm.py --threads 1 --blas openblas   (after ../shared/pytorch/setup.sh)

Best and median of several runs, like gemm_bench.ts.
"""
import os, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'pytorch'))
import benchutil  # noqa: E402

args = benchutil.parser('torch.mm GFLOP/s on tessera\'s gemm shapes').parse_args()
torch = benchutil.setup(args)
benchutil.header(torch, args)

# name, m, n, k, transA, transB: the rows of bench/gemm_bench.ts
SHAPES = [
    ('matmul 512', 512, 512, 512, False, False),
    ('matmul 1024', 1024, 1024, 1024, False, False),
    ('matmul 2048', 2048, 2048, 2048, False, False),
    ('mini fc6/7 y = x·Wᵀ', 128, 256, 256, False, True),
    ('mini fc6/7 dx = G·W', 128, 256, 256, False, False),
    ('mini fc6/7 dW = Gᵀ·x', 256, 256, 128, True, False),
    ('mini fc8 y = x·Wᵀ', 128, 10, 256, False, True),
    ('mini fc6 batch 1', 1, 256, 256, False, True),
    ('paper fc6 batch 8', 8, 4096, 9216, False, True),
]

print('| product | best (median) GFLOP/s |')
print('|---|---:|')
for name, m, n, k, trans_a, trans_b in SHAPES:
    a = torch.rand(k, m) if trans_a else torch.rand(m, k)
    b = torch.rand(n, k) if trans_b else torch.rand(k, n)
    op_a = a.t() if trans_a else a
    op_b = b.t() if trans_b else b
    flops = 2 * m * n * k
    reps = 5 if flops > 5e8 else 50
    times = benchutil.bench(lambda: torch.mm(op_a, op_b), warmup=2, reps=reps)
    print(f'| {name} | {flops / min(times) / 1e9:.1f} ({flops / benchutil.med(times) / 1e9:.1f}) |', flush=True)
