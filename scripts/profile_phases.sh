#!/usr/bin/env bash
# Where a training step's (or a batch's inference) time goes: records `prunelab bench` on one
# model with call graphs (perf, DWARF unwinding) and prints the share of samples per phase
# (scripts/profile_phases.py).
#   scripts/profile_phases.sh [model=resnet20] [threads=2] [seconds=8] [binary] [part=training]
# (seconds: the bench's least time per measurement; the first 2.5 s of training, its warm-up,
# are not counted; binary: another build of prunelab to profile, instead of this checkout's;
# part: training, or inference at the bench's batch size)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-resnet20}; threads=${2:-2}; seconds=${3:-8}; binary=${4:-}; part=${5:-training}
command -v perf > /dev/null || { echo "perf is not installed (Debian: linux-perf)" >&2; exit 1; }
if [ -z "$binary" ]; then cargo build --release -q; binary=./target/release/prunelab; fi
data=$(mktemp)
trap 'rm -f "$data"' EXIT
perf record -q -F 499 --call-graph dwarf,16384 -o "$data" \
    "$binary" bench --models "$model" --threads "$threads" --seconds "$seconds" --warmup 1 --min-runs 3 > /dev/null
perf script -i "$data" -F tid,time,ip,sym 2> /dev/null | python3 scripts/profile_phases.py 2.5 "$part" "$seconds"
