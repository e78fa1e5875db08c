#!/usr/bin/env bash
# prunelab against PyTorch on the same models, shapes and thread count, interleaved so that
# machine drift hits both alike: for each round and model, prunelab (our conv), prunelab
# (candle's conv) and PyTorch run back to back, one process each. Prints the medians over the
# rounds and the ratios to PyTorch.
#   scripts/bench_vs_torch.sh [rounds=3] [models=resnet20,resnet56,resnet50] [threads=2]
# (CANDLE_CONV=0 leaves out candle's convolution, which is slow on the large models.)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; models=${2:-resnet20,resnet56,resnet50}; threads=${3:-2}; seconds=${SECONDS_PER_MEASUREMENT:-5}
python3 -c "import torch" 2>/dev/null || { echo "PyTorch is not installed: pip install torch" >&2; exit 1; }
cargo build --release -q
out=$(mktemp -d)
for round in $(seq "$rounds"); do
  for model in ${models//,/ }; do
    convs="ours candle"; [ "${CANDLE_CONV:-1}" = 0 ] && convs=ours
    for conv in $convs; do
      ./target/release/prunelab bench --models "$model" --threads "$threads" --conv "$conv" --seconds "$seconds" --warmup 1 --min-runs 3 \
        --json "$out/$round-$model-$conv.json" > /dev/null
    done
    python3 scripts/bench_torch.py --models "$model" --threads "$threads" --seconds "$seconds" --warmup 1 --min-runs 3 \
      --json "$out/$round-$model-pytorch.json" > /dev/null
    echo "round $round/$rounds: $model done" >&2
  done
done
python3 - "$out" <<'PY'
import glob, json, statistics, sys, platform, datetime
rows = [r for f in sorted(glob.glob(sys.argv[1] + "/*.json")) for r in json.load(open(f))]
keys = ["train_images_per_second", "infer_batch1_images_per_second", "infer_batch_images_per_second", "peak_rss_mib"]
med = {}
for r in rows:
    med.setdefault((r["model"], r["conv"]), []).append(r)
batch = rows[0]["train_batch"]
print(f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {rows[0]['threads']} threads, "
      f"medians of {len(next(iter(med.values())))} interleaved rounds\n")
print(f"| model | implementation | train img/s (batch {batch}) | infer img/s batch 1 | infer img/s batch {batch} | peak RSS MiB |")
print("|---|---|---|---|---|---|")
models = list(dict.fromkeys(r["model"] for r in rows))
for m in models:
    torch = {k: statistics.median(r[k] for r in med[(m, "pytorch")]) for k in keys}
    for conv in [c for c in ["ours", "candle", "pytorch"] if (m, c) in med]:
        v = {k: statistics.median(r[k] for r in med[(m, conv)]) for k in keys}
        cells = [f"{v[k]:.1f}" + ("" if conv == "pytorch" else f" ({v[k] / torch[k]:.2f}×)") for k in keys[:3]]
        name = {"ours": "prunelab", "candle": "prunelab, candle's conv", "pytorch": "PyTorch"}[conv]
        print(f"| {m} | {name} | " + " | ".join(cells) + f" | {v['peak_rss_mib']:.0f} |")
PY
