#!/usr/bin/env bash
# Two prunelab binaries on the same models, interleaved (A B A B …, one process per
# measurement) so that machine drift hits both alike: for a change's before/after. Prints the
# medians over the rounds and B's ratio to A.
#   scripts/bench_ab.sh A_BINARY B_BINARY [rounds=3] [models=resnet20,resnet56,resnet50] [threads=2]
set -euo pipefail
a=$1; b=$2; rounds=${3:-3}; models=${4:-resnet20,resnet56,resnet50}; threads=${5:-2}
seconds=${SECONDS_PER_MEASUREMENT:-4}
out=$(mktemp -d)
for round in $(seq "$rounds"); do
  for model in ${models//,/ }; do
    for side in a b; do
      binary=$a; [ "$side" = b ] && binary=$b
      "$binary" bench --models "$model" --threads "$threads" --seconds "$seconds" --warmup 1 --min-runs 3 \
        --json "$out/$round-$model-$side.json" > /dev/null
    done
    echo "round $round/$rounds: $model done" >&2
  done
done
python3 - "$out" "$a" "$b" <<'PY'
import glob, json, statistics, sys
out, a, b = sys.argv[1:]
keys = ["train_images_per_second", "infer_batch1_images_per_second", "infer_batch_images_per_second", "peak_rss_mib"]
runs = {}
for f in sorted(glob.glob(out + "/*.json")):
    side = f.rsplit("-", 1)[1].split(".")[0]
    for r in json.load(open(f)):
        runs.setdefault((r["model"], side), []).append(r)
batch = next(iter(runs.values()))[0]["train_batch"]
print(f"A = {a}\nB = {b}\nmedians of {len(next(iter(runs.values())))} interleaved rounds; B/A in brackets\n")
print(f"| model | binary | train img/s (batch {batch}) | infer img/s batch 1 | infer img/s batch {batch} | peak RSS MiB |")
print("|---|---|---|---|---|---|")
for model in dict.fromkeys(m for m, _ in runs):
    med = {s: {k: statistics.median(r[k] for r in runs[(model, s)]) for k in keys} for s in "ab"}
    print(f"| {model} | A | " + " | ".join(f"{med['a'][k]:.1f}" for k in keys) + " |")
    print(f"| {model} | B | " + " | ".join(f"{med['b'][k]:.1f} ({med['b'][k] / med['a'][k]:.2f}×)" for k in keys) + " |")
PY
