#!/usr/bin/env bash
# Runs the experiments behind paper_figures/ (each skips the stages it finished and resumes an
# interrupted one), then writes their tables and figures with `prunelab report`, stamped with
# the commit and this command, beside the raw result tables they are drawn from (so that
# `prunelab report paper_figures/<name> --out paper_figures` rebuilds them from a checkout).
# Usage: scripts/regenerate_paper.sh [experiments/x.toml …]
#   (default: experiments/fashion_r20_correlation.toml experiments/fashion_r20_prune.toml)
# ORACLE_BENCH=1 also times the oracle against the naive one (oracle_bench.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
    set -- experiments/fashion_r20_correlation.toml experiments/fashion_r20_prune.toml
fi
cargo build --release --quiet
bin=target/release/prunelab
commit=$(git rev-parse --short HEAD)
dirty=$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock "$@" || echo " (with uncommitted changes)")
stamp="Produced by commit $commit$dirty with: scripts/regenerate_paper.sh $* (see PROVENANCE.md)"
sources=()
for experiment in "$@"; do
    name=$(basename "$experiment" .toml)
    "$bin" "$experiment" | tee "/tmp/$name.run.txt"
    sources+=("results/$name")
done
"$bin" report "${sources[@]}" --out paper_figures --stamp "$stamp"
for experiment in "$@"; do
    name=$(basename "$experiment" .toml)
    run=results/$name
    out=paper_figures/$name
    # The raw tables behind the figures, and what the run printed.
    cp "$run"/model/train_metrics.csv "$out"/
    [ -f "$run"/scores/scores.csv ] && cp "$run"/scores/scores.csv "$out"/
    [ -f "$run"/oracle/oracle.csv ] && cp "$run"/oracle/oracle.csv "$out"/
    { echo "$stamp: prunelab $experiment"; cat "/tmp/$name.run.txt"; } > "$out/run.txt"
    if [ "${ORACLE_BENCH:-0}" = 1 ] && [ -f "$run"/oracle/oracle.csv ]; then
        { echo "$stamp: prunelab oracle-bench $experiment"; "$bin" oracle-bench "$experiment"; } > "$out/oracle_bench.txt"
    fi
    cat > "$out/PROVENANCE.md" <<EOT
# $name: provenance

Every file in this folder was produced by commit $commit$dirty on $(nproc) CPU cores with:

    scripts/regenerate_paper.sh $*

which runs \`prunelab $experiment\` (output: \`run.txt\`; it trains the model or finds it
trained, then runs or skips each stage), then \`prunelab report results/$name --out
paper_figures\`, which writes every table and figure here from the stored results
(\`study.json\` and \`scorings.json\` for the correlation study, \`results.json\` for pruning),
and copies the raw tables \`train_metrics.csv\`, \`scores.csv\` and \`oracle.csv\`.
\`prunelab report paper_figures/$name --out paper_figures\` rebuilds the tables and figures
from this folder alone.${ORACLE_BENCH:+ \`oracle_bench.txt\`: \`prunelab oracle-bench $experiment\`.}
${MODEL_NOTE:+
$MODEL_NOTE}
EOT
done
