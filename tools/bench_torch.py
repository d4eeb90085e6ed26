#!/usr/bin/python3
"""PyTorch CPU training throughput of the reference networks, for comparison
with bench/bench_train (the same networks, batch and optimizer).

Usage: /usr/bin/python3 tools/bench_torch.py [--batch N] [--steps N] [--inference] SPEC...

PyTorch runs at its best on this machine: torch.set_num_threads(the number of
cores), and the bench wrapper (bench/train_vs_torch.sh) starts it without
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which this machine's environment sets
and which halve PyTorch's GEMM speed. The script prints how it ran.
Timing: wall clock over the steps after 5 warm-up steps.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_parity import build  # noqa: E402  (the same spec -> torch.nn.Sequential)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--inference", action="store_true", help="forward passes in eval mode instead of training steps")
    p.add_argument("--gemm", action="store_true", help="torch.mm GFLOP/s on the GEMM shapes of bench_gemm instead")
    p.add_argument("--device", default="cpu", help="cpu, or cuda (fp32 with TF32 off) on a GPU machine")
    p.add_argument("specs", nargs="*")
    a = p.parse_args()
    cores = os.cpu_count()
    torch.set_num_threads(cores)
    dev = torch.device(a.device)
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True  # cuDNN picks its fastest convolution per shape, as tuned runs do
        print(f"pytorch on {torch.cuda.get_device_name(0)}, fp32, TF32 off, cuDNN autotuning on")

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads on {cores} cores, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}, "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', 'unset')}")
    if a.gemm:
        for m, n, k in [(128, 784, 256), (36864, 32, 25), (4096, 64, 800), (64, 288, 50176), (1024, 1024, 1024)]:
            x, y = torch.rand(m, k, device=dev), torch.rand(k, n, device=dev)
            for _ in range(3):
                torch.mm(x, y)
            times = []
            for _ in range(10):
                sync()
                t0 = time.perf_counter()
                torch.mm(x, y)
                sync()
                times.append(time.perf_counter() - t0)
            t = sorted(times)[len(times) // 2]
            print(f"{m}x{n}x{k:<10} torch.mm {1e3 * t:9.3f} ms {2.0 * m * n * k / t * 1e-9:9.2f} GFLOP/s")
        return
    for spec in a.specs:
        torch.manual_seed(1)
        model, shape = build(spec)
        model = model.to(dev)
        x = torch.rand(a.batch, *shape, device=dev)
        y = torch.randint(0, 10, (a.batch,), device=dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            if a.inference:
                with torch.no_grad():
                    model(x)
                return
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()

        model.eval() if a.inference else model.train()
        for _ in range(5):
            step()
        sync()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        sync()
        t = time.perf_counter() - t0
        kind = "inference" if a.inference else "training"
        print(f"{os.path.basename(spec):18s} pytorch {kind} batch {a.batch}: {1e3 * t / a.steps:.2f} ms/step, "
              f"{a.batch * a.steps / t:.0f} images/s")


if __name__ == "__main__":
    main()
