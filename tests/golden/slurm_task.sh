#!/bin/bash
# One task of the grid <manifest>/experiments/smoke_grid.toml (prunelab): phase $1, task $SLURM_ARRAY_TASK_ID.
#SBATCH --job-name=prunelab-smoke_grid
#SBATCH --partition=cpu
#SBATCH --account=lab
#SBATCH --time=2:00:00
#SBATCH --mem=4G
#SBATCH --cpus-per-task=1
#SBATCH --output=<cwd>/results/smoke_grid/slurm/%A_%a.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
cd <cwd>
exec <prunelab> <cwd>/results/smoke_grid/slurm/smoke_grid.toml slurm.partition=cpu slurm.time=2:00:00 slurm.mem=4G slurm.account=lab --results <cwd>/results --threads 1 --conv ours --phase "$1" --index "$SLURM_ARRAY_TASK_ID"
