#!/bin/bash
# The whole single-node scaling study in one command (4 minutes on the lent 16-core node on
# 2026-11-30, before the concurrent and back-to-back steps and parts 5-7 were added, which
# should add about 2; 82 s on 2 cores with all of them on 2026-12-02, results/bench-epyc-zen5-2026-12-02-s23/node_study_dryrun): hpclars's weak scaling beside the machine's own per-rank rates at the same rank counts
# and bindings, ranks x threads, the single-core step against sgemm (and PyTorch, if
# installed), every core timing the step at once, the bare Allreduce, weak scaling at a second
# per-rank batch, and the probes' absolute rates.  Writes one text file per part under OUT_DIR; each part runs even if an
# earlier one failed, and the script exits non-zero if any did.
#
#   bash jobs/node_study.sh OUT_DIR [CORES]        # CORES: default all (nproc)
#
# Environment: TORCH=0 skips the PyTorch baselines (DDP and the single-core step; they need
# torch installed and add about a minute on 16 cores).
# Bindings: one thread per rank is bound to a core (--bind-to core: the probes and the trainer
# alike, and what Open MPI does by default only up to 2 ranks); the ranks x threads study is
# unbound (--bind-to none), since a rank of T threads bound to one core would run them on it.
#
# Needs hpclars installed (pip install -e .) and MNIST where hpclars finds it ($HPCLARS_DATA,
# else the per-user cache).  Every figure is a median over repeats, and each file starts with
# the machine and the date (hpclars bench prints them), so the results can be committed as
# they are (BENCHMARKS.md says where they went).  Nothing here is hpclars-specific to a
# cluster: run it on a compute node with srun, or on a workstation.  With Open MPI as root (a
# container), export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 first.
set -uo pipefail
OUT_DIR=${1:?usage: bash jobs/node_study.sh OUT_DIR [CORES]}
NPROC=$(OMP_NUM_THREADS='' nproc --all)   # nproc alone honours OMP_NUM_THREADS
CORES=${2:-$NPROC}
mkdir -p "$OUT_DIR" || exit 1
export OMP_NUM_THREADS=1
NO_TORCH=$([ "${TORCH:-1}" = 0 ] && echo --no-torch)

RANKS=()
for ((k = 1; k < CORES; k *= 2)); do RANKS+=("$k"); done
RANKS+=("$CORES")
LIST=$(IFS=,; echo "${RANKS[*]}")

{
    echo "# node study $(date '+%Y-%m-%dT%H:%M:%S%z') on $(hostname): $CORES cores of $NPROC"
    lscpu | grep -E 'Model name|Socket|Core|Thread|NUMA node\(s\)|L2|L3|MHz' || true
    mpiexec --version 2>&1 | head -2
} | tee "$OUT_DIR/machine.txt"

FAILED=()
step() {   # step NAME COMMAND...: run, keep its output, say how long it took; go on if it fails
    local name=$1; shift
    local t0=$SECONDS
    echo "== $name: $*"
    "$@" 2>&1 | tee "$OUT_DIR/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "== $name took $((SECONDS - t0)) s (exit $rc)"
    [ "$rc" = 0 ] || FAILED+=("$name")
}

# 1. Weak scaling, 256 images per rank, beside the machine's probes at the same rank counts
#    and bindings; 3 repeats with the rank counts interleaved, each repeat's efficiency against
#    its own 1-rank run; PyTorch DDP (gloo) in the last repeat.
step scaling hpclars bench scaling --ranks "$LIST" --batch-per-rank 256 --steps 40 --warmup 10 --repeats 3 \
    --mpiexec-args="--bind-to core" $NO_TORCH --keep-logs "$OUT_DIR/scaling-logs"
# 2. Ranks x threads on all cores, one global batch.
step hybrid hpclars bench hybrid --cores "$CORES" --batch-size 4096 --steps 20 --warmup 5 \
    --mpiexec-args="--bind-to none"
# 3. One core: the training step against the same run's sgemm (and PyTorch), and evaluation
#    against training; then where the step's time goes, part by part.
step train hpclars bench train --batch-sizes 256,1024 --threads 1 --repeats 7 $NO_TORCH
step step-parts hpclars bench step --batch 256 --threads 1 --repeats 21
#    The same steps back to back, as the trainer runs them (on the 2026-11-30 node the trainer's
#    1-rank step was 1.4x faster than bench step's, each of whose steps follows an sgemm).
step step-b2b hpclars bench step --batch 256 --threads 1 --repeats 21 --back-to-back
# 4. Every core at once: each rank times the same steps with no communication, so the spread of
#    per-rank compute (and what it costs a synchronous step) is seen without the Allreduce.
step step-concurrent mpiexec --bind-to core -n "$CORES" hpclars bench step --batch 256 --threads 1 --repeats 21
# 5. The bare Allreduce of the gradient on all cores, beside the step's compute.
step allreduce mpiexec --bind-to core -n "$CORES" hpclars bench allreduce --batch-size $((256 * CORES)) --threads 1
# 6. Weak scaling at a second per-rank batch, one repeat: with the first, the step times that
#    analysis/time_to_target.py --step-times fits a(N) B/N + c(N) to.
step scaling-b64 hpclars bench scaling --ranks "$LIST" --batch-per-rank 64 --steps 40 --warmup 10 --no-torch \
    --mpiexec-args="--bind-to core" --keep-logs "$OUT_DIR/scaling-logs-b64"
# 7. Weak scaling as in 1, with the global batch re-split every 10 steps by each rank's measured
#    speed (--balance-every 10; hpclars.balance): on the 2026-11-30 node the cores ran at three
#    speeds with all 16 busy, and equal shares hold every step to the slowest.  Two repeats.
step scaling-balanced hpclars bench scaling --ranks "$LIST" --batch-per-rank 256 --steps 40 --warmup 10 \
    --repeats 2 --balance-every 10 --no-torch --mpiexec-args="--bind-to core" \
    --keep-logs "$OUT_DIR/scaling-logs-balanced"
# 8. The machine's own rates in absolute units at every rank count (no hpclars code).
for k in "${RANKS[@]}"; do
    step "probes-n$k" mpiexec --bind-to core -n "$k" hpclars bench machine --seconds 0.5
done

if [ ${#FAILED[@]} -gt 0 ]; then
    echo "node study: failed parts: ${FAILED[*]} (see their files in $OUT_DIR)"
    exit 1
fi
echo "node study done: $OUT_DIR"
