#!/usr/bin/env python3
"""PyTorch's side of `scripts/bench_pruned_vs_torch.sh`: a channel plan written by prunelab
(`prunelab latency --prune-random F` writes pruning_plan.json) applied by Torch-Pruning to the
same network, both sides timed in eval mode with BatchNorm folded into the convolutions (as
prunelab times its fused form), interleaved, medians.

    python3 scripts/bench_pruned_torch.py --arch resnet18 --plan pruning_plan.json \\
        --batches 1,64 --threads 2 --repeats 30 --expect-parameters N --json out.json

Needs torch and torch-pruning (pip install torch torch-pruning).
"""
import argparse
import copy
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def prune(model, plan, example, torch, tp):
    """Removes each DFC's channels: the group of its first producer, as Torch-Pruning's
    DepGraph finds it (every layer coupled with those channels)."""
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    for name, channels in plan["remove"].items():
        module = model.get_submodule(name)
        how = tp.prune_linear_out_channels if isinstance(module, torch.nn.Linear) else tp.prune_conv_out_channels
        group = graph.get_pruning_group(module, how, idxs=list(channels))
        group.prune()
    return model


def interleaved(models, x, warmup, repeats, torch):
    times = [[] for _ in models]
    with torch.inference_mode():
        for _ in range(warmup):
            for m in models:
                m(x)
        for _ in range(repeats):
            for m, t in zip(models, times):
                started = time.perf_counter()
                m(x)
                t.append(time.perf_counter() - started)
    return [statistics.median(t) * 1e3 for t in times]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", required=True)
    p.add_argument("--plan", required=True)
    p.add_argument("--shape", default="3,32,32", help="input channels,height,width")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batches", default="1,64")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--expect-parameters", type=int, help="the pruned network's parameter count on prunelab's side")
    p.add_argument("--json")
    args = p.parse_args()
    try:
        import torch
        import torch_pruning as tp
        from torch.fx.experimental.optimization import fuse
    except ImportError as err:
        sys.exit(f"{err}: pip install torch torch-pruning")
    from torch_models import build

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    shape = [int(v) for v in args.shape.split(",")]
    with open(args.plan) as f:
        plan = json.load(f)
    unpruned = build(args.arch, shape[0], args.classes).eval()
    pruned = prune(copy.deepcopy(unpruned), plan, torch.randn(1, *shape), torch, tp).eval()
    parameters = sum(t.numel() for t in pruned.parameters())
    if args.expect_parameters is not None and parameters != args.expect_parameters:
        sys.exit(f"Torch-Pruning's network has {parameters} parameters, prunelab's {args.expect_parameters}: not the same network")
    models = [fuse(unpruned), fuse(pruned)]
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        x = torch.randn(batch, *shape)
        unpruned_ms, pruned_ms = interleaved(models, x, args.warmup, args.repeats, torch)
        rows.append({"batch": batch, "unpruned_ms": unpruned_ms, "pruned_ms": pruned_ms, "speedup": unpruned_ms / pruned_ms})
    result = {"arch": args.arch, "torch": torch.__version__, "torch_pruning": tp.__version__,
              "threads": torch.get_num_threads(), "pruned_parameters": parameters, "batches": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
