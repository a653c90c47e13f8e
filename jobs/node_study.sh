#!/bin/bash
# The whole single-node scaling study in one command (84 s on 2 cores, 2026-11-30; estimated
# 4-6 minutes on 16, not yet run there): what the
# machine itself delivers per rank, hpclars's weak scaling beside it, ranks x threads, and the
# single-core step against sgemm.  Writes one text file per part and a summary under OUT_DIR.
#
#   bash jobs/node_study.sh OUT_DIR [CORES]        # CORES: default all (nproc)
#
# Needs hpclars installed (pip install -e .) and MNIST where hpclars finds it ($HPCLARS_DATA,
# else the per-user cache).  Every figure is a median over repeats, and each file starts with
# the machine and the date (hpclars bench prints them), so the results can be committed as
# they are (BENCHMARKS.md says where they went).  Nothing here is hpclars-specific to a
# cluster: run it on a compute node with srun, or on a workstation.  With Open MPI as root (a
# container), export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 first.
set -euo pipefail
OUT_DIR=${1:?usage: bash jobs/node_study.sh OUT_DIR [CORES]}
NPROC=$(OMP_NUM_THREADS='' nproc --all)   # nproc alone honours OMP_NUM_THREADS
CORES=${2:-$NPROC}
mkdir -p "$OUT_DIR"
export OMP_NUM_THREADS=1

RANKS=()
for ((k = 1; k < CORES; k *= 2)); do RANKS+=("$k"); done
RANKS+=("$CORES")
LIST=$(IFS=,; echo "${RANKS[*]}")

{
    echo "# node study $(date '+%Y-%m-%dT%H:%M:%S%z') on $(hostname): $CORES cores of $NPROC"
    lscpu | grep -E 'Model name|Socket|Core|Thread|NUMA node\(s\)|L2|L3' || true
} | tee "$OUT_DIR/machine.txt"

step() {   # step NAME COMMAND...: run, keep its output, say how long it took
    local name=$1; shift
    local t0=$SECONDS
    echo "== $name: $*"
    "$@" 2>&1 | tee "$OUT_DIR/$name.txt"
    echo "== $name took $((SECONDS - t0)) s"
}

# 1. The machine's own ceiling at every rank count (no hpclars code).
for k in "${RANKS[@]}"; do
    step "probes-n$k" mpiexec -n "$k" hpclars bench machine --seconds 0.5
done
# 2. Weak scaling, 256 images per rank, beside the probes at the same rank counts; 3 repeats
#    with the rank counts interleaved, each repeat's efficiency against its own 1-rank run.
step scaling hpclars bench scaling --ranks "$LIST" --batch-per-rank 256 --steps 30 --warmup 5 --repeats 3 \
    --no-torch --keep-logs "$OUT_DIR/scaling-logs"
# 3. Ranks x threads on all cores, one global batch.
step hybrid hpclars bench hybrid --cores "$CORES" --batch-size 4096 --steps 20 --warmup 5
# 4. One core: the training step against the same run's sgemm, and evaluation against training;
#    then where the step's time goes, part by part.
step train hpclars bench train --batch-sizes 256,1024 --threads 1 --repeats 7 --no-torch
step step-parts hpclars bench step --batch 256 --threads 1 --repeats 21

echo "node study done: $OUT_DIR"
