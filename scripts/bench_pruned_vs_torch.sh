#!/usr/bin/env bash
# The same random pruning plans timed in prunelab and in PyTorch: for each round, network and
# fraction, `prunelab latency --prune-random F` times the network against its pruned copy
# (fused inference form, interleaved) and writes the plan; Torch-Pruning applies that plan to
# the same network in PyTorch (BatchNorm folded, interleaved; the parameter counts must agree),
# and both speedups are printed beside the MAC ratio, medians over the rounds.
#   scripts/bench_pruned_vs_torch.sh [rounds=3] [nets=resnet18,resnet50,resnet20] [fractions=0.3,0.5] [threads=2]
# PYTHON (default python3) must have torch and torch-pruning: pip install torch torch-pruning.
# REPEATS (default 30) timed passes per model and batch size; BATCHES (default 1,64).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; nets=${2:-resnet18,resnet50,resnet20}; fractions=${3:-0.3,0.5}; threads=${4:-2}
python=${PYTHON:-python3}; repeats=${REPEATS:-30}; batches=${BATCHES:-1,64}
"$python" -c "import torch, torch_pruning" 2>/dev/null || { echo "$python lacks torch or torch-pruning: pip install torch torch-pruning" >&2; exit 1; }
cargo build --release -q
out=$(mktemp -d)
for round in $(seq "$rounds"); do
  for net in ${nets//,/ }; do
    for fraction in ${fractions//,/ }; do
      run="$out/$round-$net-$fraction"
      mkdir -p "$run"
      cat > "$run/experiment.toml" <<TOML
name = "bench"
seed = 0
[data]
dataset = "cifar10"
[model]
arch = "$net"
[latency]
batch_sizes = [$batches]
warmup = 3
repeats = $repeats
TOML
      ./target/release/prunelab latency "$run/experiment.toml" --prune-random "$fraction" --seed "$round" \
        --threads "$threads" --results "$run" > "$run/prunelab.txt"
      parameters=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['sizes'][1]['parameters'])" "$run/bench/latency.json")
      "$python" scripts/bench_pruned_torch.py --arch "$net" --plan "$run/bench/pruning_plan.json" --batches "$batches" \
        --threads "$threads" --repeats "$repeats" --expect-parameters "$parameters" --json "$run/pytorch.json" > /dev/null
      echo "round $round/$rounds: $net, $fraction removed" >&2
    done
  done
done
"$python" - "$out" "$rounds" "$threads" <<'PY'
import glob, json, os, platform, statistics, sys, datetime
out, rounds, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cells = {}
for run in sorted(glob.glob(out + "/*-*-*")):
    _, net, fraction = os.path.basename(run).split("-")
    ours = json.load(open(run + "/bench/latency.json"))
    torch = json.load(open(run + "/pytorch.json"))
    for b, t in zip(ours["batches"], torch["batches"]):
        assert b["batch"] == t["batch"]
        c = cells.setdefault((net, fraction, b["batch"]), {k: [] for k in ["mac", "ours", "torch", "ours_ms", "torch_ms"]})
        c["mac"].append(1 / ours["mac_ratio"])
        c["ours"].append(b["speedup"]); c["torch"].append(t["speedup"])
        c["ours_ms"].append(b["unpruned"]["median_ms"]); c["torch_ms"].append(t["unpruned_ms"])
print(f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {threads} threads, torch {torch['torch']}, "
      f"Torch-Pruning {torch['torch_pruning']}; medians over {rounds} interleaved rounds (random plans, seed = round)\n")
print("| net | removed | batch | MAC ratio | prunelab speedup | PyTorch speedup | prunelab / MAC ratio | unpruned ms: prunelab | PyTorch | PyTorch / prunelab |")
print("|---|---|---|---|---|---|---|---|---|---|")
m = statistics.median
for (net, fraction, batch), c in cells.items():
    print(f"| {net} | {float(fraction):.0%} | {batch} | {m(c['mac']):.2f}× | {m(c['ours']):.2f}× | {m(c['torch']):.2f}× | "
          f"{m(c['ours']) / m(c['mac']):.2f} | {m(c['ours_ms']):.2f} | {m(c['torch_ms']):.2f} | {m(c['torch_ms']) / m(c['ours_ms']):.2f}× |")
PY
