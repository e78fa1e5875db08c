#!/usr/bin/env bash
# Grids on this machine, measured: (1) the oracle of the Fashion-MNIST ResNet-20 study (1024
# images, tiles of 8) as one task with 2 threads against 2 shards of 1 thread each, under the
# local executor and under SLURM; (2) what a SLURM task costs beyond its work: the smoke grid's
# tasks, finished already (each only checks its records), through SLURM and locally.
# Needs a running SLURM (scripts/slurm_one_node.sh) and a trained ResNet-20 of
# experiments/fashion_r20_seeds.toml. Usage:
#   scripts/bench_grid.sh results/fashion_r20_seeds/runs/<hash8>/model/model.safetensors [prunelab]
set -euo pipefail
weights=$(realpath "$1")
bin=$(realpath "${2:-target/release/prunelab}")
smoke_grid=$(realpath experiments/smoke_grid.toml)
work=$(mktemp -d)
cd "$work"
cat > oracle_r20.toml <<EOF
# The oracle of fashion_r20_seeds (seed 0's network and images), with one data-free criterion.
name = "oracle_r20"
[data]
dataset = "fashion-mnist"
validation = 5000
[model]
arch = "resnet20"
weights = "$weights"
[train]
epochs = 0
[saliency]
criteria = ["l1"]
[oracle]
batch = 64
tile = 8
[oracle.images]
count = 1024
seed = 1
[correlation]
bootstrap = 0
null_seeds = 0
[slurm]
cpus = 1
EOF
now() { date +%s.%N; }
# The oracle's own time, as its stage or each shard reports it.
oracle_seconds() { grep -ho '^oracle: .* in [0-9.]* s$\|^oracle shard .* in [0-9.]* s$' "$@" | sed 's/.* in \([0-9.]*\) s$/\1/'; }
wait_jobs() { while [ -n "$(squeue -h -o %i)" ]; do sleep 0.5; done; }

t0=$(now); "$bin" oracle_r20.toml --results one --threads 2 > one.log 2>&1; t1=$(now)
one=$(oracle_seconds one.log)
t2=$(now); "$bin" oracle_r20.toml oracle.shards=2 --jobs 2 --threads 1 --results local > local.log 2>&1; t3=$(now)
local_shards=$(oracle_seconds local/oracle_r20/logs/parts-*.log | sort -g | tail -1)
t4=$(now); "$bin" oracle_r20.toml oracle.shards=2 --executor slurm --results slurm > slurm.log 2>&1; wait_jobs; t5=$(now)
slurm_shards=$(oracle_seconds slurm/oracle_r20/slurm/*.out | sort -g | tail -1)
for f in one/oracle_r20 local/oracle_r20/runs/* slurm/oracle_r20/runs/*; do sha256sum "$f/oracle/oracle.csv"; done > oracle_digests.txt
same=$(awk '{print $1}' oracle_digests.txt | sort -u | wc -l)

"$bin" "$smoke_grid" --jobs 2 --threads 1 --results smoke > /dev/null 2>&1
t6=$(now); "$bin" "$smoke_grid" --jobs 2 --threads 1 --results smoke > /dev/null 2>&1; t7=$(now)
t8=$(now); "$bin" "$smoke_grid" --executor slurm --results smoke > /dev/null 2>&1; wait_jobs; t9=$(now)
tasks=$(ls smoke/smoke_grid/slurm/ | grep -c '^[0-9]*_[0-9]*\.out$')

awk -v one="$one" -v ls="$local_shards" -v ss="$slurm_shards" \
    -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" -v t4="$t4" -v t5="$t5" -v t6="$t6" \
    -v t7="$t7" -v t8="$t8" -v t9="$t9" -v same="$same" -v tasks="$tasks" 'BEGIN {
  w1 = t1 - t0; wl = t3 - t2; ws = t5 - t4; sl = t7 - t6; ss2 = t9 - t8
  printf "| oracle of the ResNet-20 study (1024 images) | oracle s | whole command s | scaling efficiency |\n|---|---|---|---|\n"
  printf "| 1 task × 2 threads | %.1f | %.1f | 1 |\n", one, w1
  printf "| 2 shards × 1 thread, local executor (slower shard) | %.1f | %.1f | %.2f |\n", ls, wl, one / ls
  printf "| 2 shards × 1 thread, SLURM (slower shard) | %.1f | %.1f | %.2f |\n", ss, ws, one / ss
  printf "\noracle.csv of the three runs: %s distinct digest(s)\n", same
  printf "\nthe smoke grid finished already, %d tasks, 2 at a time: local %.1f s, SLURM %.1f s (submission to the collect job done): %.2f s more per task\n", tasks, sl, ss2, (ss2 - sl) * 2 / tasks
}'
