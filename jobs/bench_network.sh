#!/usr/bin/env bash
# The shaped-network benchmark behind BENCHMARKS.md's communication table, on the local cluster.
#
#   eval "$(jobs/local_cluster.sh start 4 | tail -n 1)"
#   jobs/bench_network.sh OUT_DIR [REPEATS]         # default 3 repeats
#   python analysis/comm_table.py OUT_DIR           # the table (medians over the repeats)
#   jobs/local_cluster.sh stop
#
# For each bandwidth profile (loopback, 10gbe, 1gbe; set with `local_cluster.sh shape`) and for
# 2 and 4 nodes with one rank per node, it submits with sbatch --wait:
#   - `hpclars bench allreduce` (OSU-style Allreduce times, the alpha-beta fit and the modelled
#     link latencies) -> OUT_DIR/allreduce-PROFILE-nN.txt;
#   - REPEATS weak-scaling training runs (256 images per rank, STEPS steps, LARS) with the
#     blocking Allreduce and REPEATS with --overlap-allreduce, interleaved so that drift in the
#     machine's load hits both alike -> OUT_DIR/PROFILE-nN-{blocking,overlap}-rR.h5.
# The cluster is left on the loopback profile.
#
# Needs: a cluster started by jobs/local_cluster.sh with at least 4 nodes (SLURM_CONF set, and
# HPCLARS_CLUSTER_STATE/HPCLARS_CLUSTER_SUBNET as at its start), hpclars and mpiexec on PATH
# (or HPCLARS, MPIEXEC), MNIST in DATA_DIR (default $HPCLARS_DATA).
#
# Exit status: 0 done, 1 a job failed, 2 bad usage.
set -euo pipefail

readonly PROG=${0##*/}
usage() { echo "usage: $PROG OUT_DIR [REPEATS]   (run with SLURM_CONF of a local_cluster.sh cluster)" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
OUT=$(realpath -m -- "$1")
REPEATS=${2:-3}
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || { echo "$PROG: error: REPEATS: must be a positive integer, got '$REPEATS'" >&2; exit 2; }
[[ -n ${SLURM_CONF:-} ]] || { echo "$PROG: error: SLURM_CONF is unset; start a cluster with jobs/local_cluster.sh first" >&2; exit 2; }
HPCLARS=${HPCLARS:-$(command -v hpclars)}
MPIEXEC=${MPIEXEC:-$(command -v mpiexec)}
DATA_DIR=${DATA_DIR:-${HPCLARS_DATA:-$HOME/.cache/hpclars/mnist}}
STEPS=${STEPS:-30}
CLUSTER="$(dirname "$0")/local_cluster.sh"
export PATH=$PATH:/usr/sbin

mkdir -p "$OUT"
trap 'bash "$CLUSTER" shape loopback >/dev/null 2>&1 || true' EXIT

# A job that fails is tried once more (the machine is shared: a failure is reported, kept in
# OUTPUT.failed, and does not end a 20-minute benchmark); a second failure ends the benchmark.
submit() {                                # submit NODES OUTPUT COMMAND...
    local nodes=$1 output=$2 try
    shift 2
    for try in 1 2; do
        if sbatch --wait --quiet --nodes="$nodes" --ntasks-per-node=1 --output="$output" \
            --wrap="$MPIEXEC -n $nodes $*"; then
            return 0
        fi
        mv "$output" "$output.failed"
        echo "$PROG: job failed (attempt $try); its output is in $output.failed" >&2
    done
    exit 1
}

for profile in loopback 10gbe 1gbe; do
    bash "$CLUSTER" shape "$profile"
    for nodes in 2 4; do
        echo "$(date +%T) $profile, $nodes nodes"
        submit "$nodes" "$OUT/allreduce-$profile-n$nodes.txt" \
            "$HPCLARS" bench allreduce --batch-size $((256 * nodes)) --iters 100
        for ((r = 1; r <= REPEATS; r++)); do
            for mode in blocking overlap; do
                flag=--no-overlap-allreduce
                [[ $mode == overlap ]] && flag=--overlap-allreduce
                submit "$nodes" "$OUT/$profile-n$nodes-$mode-r$r.out" \
                    "$HPCLARS" train --preset paper --optimizer lars --batch-size $((256 * nodes)) \
                    --epochs 1 --max-steps "$STEPS" --eval-every 1 --no-progress --seed 0 \
                    --data-dir "$DATA_DIR" --out "$OUT/$profile-n$nodes-$mode-r$r.h5" --overwrite "$flag"
            done
        done
    done
done
echo "$(date +%T) done; summarize with: python analysis/comm_table.py $OUT"
