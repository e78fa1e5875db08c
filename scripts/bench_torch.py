#!/usr/bin/env python3
"""PyTorch's side of `prunelab bench`: the same models, shapes, thread count and protocol.

    python3 scripts/bench_torch.py --models resnet20 --threads 2 [--json out.json]

Training images/s: the median time of SGD steps (momentum 0.9, weight decay 5e-4, train mode,
cross-entropy) on a random batch; inference images/s at batch 1 and at --batch (eval mode,
inference_mode); peak resident memory of the process (run one model per process for per-model
peaks). Needs PyTorch: pip install torch.
"""
import argparse
import json
import resource
import statistics
import sys
import time
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def median_seconds(f, warmup=2, min_runs=5, min_time=5.0, max_runs=200):
    for _ in range(warmup):
        f()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < min_time and len(times) < max_runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(arch, size, batch, budget, torch):
    from torch_models import build

    net = build(arch)
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, size, size)
    y = torch.arange(batch) % 10

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    net.train()
    train = batch / median_seconds(step, **budget)
    net.eval()
    rates = {}
    for n in (1, batch):
        xi = torch.randn(n, 3, size, size)

        def infer():
            with torch.inference_mode():
                net(xi)

        rates[n] = n / median_seconds(infer, **budget)
    return {
        "model": arch,
        "conv": "pytorch",
        "threads": torch.get_num_threads(),
        "train_batch": batch,
        "train_images_per_second": train,
        "infer_batch1_images_per_second": rates[1],
        "infer_batch_images_per_second": rates[batch],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet20,resnet56,resnet50")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seconds", type=float, default=5.0, help="least time per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    p.add_argument("--min-runs", type=int, default=5, help="least timed runs (the median is reported)")
    p.add_argument("--json")
    args = p.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is not installed: pip install torch (the CPU wheel is enough)")
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    budget = {"warmup": args.warmup, "min_runs": args.min_runs, "min_time": args.seconds}
    rows = [bench(m, args.size, args.batch, budget, torch) for m in args.models.split(",")]
    print(f"| model | conv | threads | train img/s (batch {args.batch}) | infer img/s batch 1 | infer img/s batch {args.batch} | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | pytorch {torch.__version__} | {r['threads']} | {r['train_images_per_second']:.1f} | "
              f"{r['infer_batch1_images_per_second']:.1f} | {r['infer_batch_images_per_second']:.1f} | {r['peak_rss_mib']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
