#!/usr/bin/env bash
# Start, stop or inspect a real single-node SLURM cluster on this machine.
#
#   jobs/local_slurm.sh start  [STATE_DIR]   # install if needed, start, wait until the node is idle
#   jobs/local_slurm.sh status [STATE_DIR]   # daemons, node state, queue
#   jobs/local_slurm.sh stop   [STATE_DIR]   # cancel this cluster's jobs, stop its daemons
#
# What it is for: running the job scripts in jobs/ (and tests/test_slurm.py) on a workstation or a
# CI machine, against the same slurmctld/slurmd/munge a cluster uses, with no cluster at hand.
# `start` prints the line to paste into your shell so that sbatch/squeue/sinfo talk to it:
#
#   eval "$(jobs/local_slurm.sh start | tail -n 1)"    # sets SLURM_CONF
#   sbatch --wait jobs/train.sbatch --epochs 1
#
# Everything the cluster owns lives in STATE_DIR (default /tmp/hpclars-slurm): slurm.conf, logs,
# state, spool, its own munged socket, and the PIDs of the daemons this script started.  `stop`
# kills exactly those PIDs, never processes found by name, so it leaves alone any other SLURM or
# munge on the machine.  Two clusters can run side by side if they use different state
# directories and ports (HPCLARS_SLURMCTLD_PORT, HPCLARS_SLURMD_PORT; defaults 6817 and 6818).
#
# Needs root: the daemons run as root (SlurmUser=root, which lets one node run jobs as any user
# without a shared user database), munge's key lives in /etc/munge, and the host name may need an
# /etc/hosts line.  If slurmctld is missing it is installed with apt-get (Debian/Ubuntu).
#
# The configuration's choices (measured on Debian 12, slurm 22.05):
#   - CPUs=4 with SlurmdParameters=config_overrides, so a 4-rank job fits on a 2-core machine;
#   - MpiDefault=pmi2, so `srun` and mpiexec-through-srun give one 4-rank job (with `none`, srun
#     silently starts 4 separate 1-rank jobs);
#   - a fast scheduler, MinJobAge=5 and cred_expire=10, so `sbatch --wait` returns in ~2 s and a
#     requeued job restarts in ~15 s instead of ~2 min.
# It leaves out accounting (no slurmdbd), cgroups and real memory enforcement: it is a test
# cluster, not a production one.
#
# Exit status: 0 on success, 1 on failure, 2 on bad usage, 3 when SLURM is missing and cannot be
# installed here (not root, or no apt-get): callers such as the tests use 3 to skip.
set -euo pipefail

readonly PROG=${0##*/}
readonly DEFAULT_STATE_DIR=/tmp/hpclars-slurm
# shellcheck source=jobs/slurm_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/slurm_common.sh"

usage() {
    echo "usage: $PROG {start|stop|status} [STATE_DIR]   (default STATE_DIR: $DEFAULT_STATE_DIR)" >&2
    exit 2
}

# --- host name -----------------------------------------------------------------------------------
# slurmctld and slurmd compare the node name with `hostname -s`, and mpiexec's proxies connect
# back by name: the name must resolve.  Add an /etc/hosts line only when it does not.
ensure_hostname_resolves() {
    HOST=$(hostname -s)
    if ! getent hosts "$HOST" >/dev/null; then
        echo "$PROG: '$HOST' does not resolve; adding '127.0.0.1 $HOST' to /etc/hosts"
        echo "127.0.0.1 $HOST" >> /etc/hosts
    fi
}

# --- slurm.conf ----------------------------------------------------------------------------------
write_conf() {
    local ctld_port=${HPCLARS_SLURMCTLD_PORT:-6817} slurmd_port=${HPCLARS_SLURMD_PORT:-6818} mem
    # RealMemory must not exceed what slurmd detects, or the node is drained.
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    [[ -n $mem ]] || die "could not read RealMemory from 'slurmd -C'"
    cat > "$CONF" <<EOF
# Written by jobs/local_slurm.sh: a single-node test cluster (see the comments in that script).
$(write_common_conf)
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmdSpoolDir=$STATE_DIR/spool
SlurmdLogFile=$LOG/slurmd.log
SlurmdPidFile=$RUN/slurmd.pid
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=4 Sockets=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=$mem
PartitionName=debug Nodes=ALL Default=YES MaxTime=02:00:00 State=UP
EOF
}

# --- waiting -------------------------------------------------------------------------------------
# The daemons exit 0 even when they die a moment later, so readiness is what the controller says.
node_state() { sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n 1; }

wait_until_idle() {
    local i state=""
    for ((i = 0; i < 150; i++)); do
        if scontrol ping 2>/dev/null | grep -q 'is UP'; then
            state=$(node_state)
            case $state in
                idle|mixed|allocated) return 0 ;;
                *drain*|*down*|*fail*|*inval*)
                    scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
            esac
        fi
        sleep 0.2
    done
    die "the node is not idle after 30 s (state: '${state:-controller down}'); see $LOG/"
}

# --- commands ------------------------------------------------------------------------------------
cmd_start() {
    [[ $EUID -eq 0 ]] || cannot_run_here "starting a local SLURM needs root (SlurmUser=root, munge key)"
    ensure_installed
    HOST=$(hostname -s)
    if [[ -n $(recorded_pids) ]]; then
        if [[ -f $CONF ]] && scontrol ping 2>/dev/null | grep -q 'is UP'; then
            wait_until_idle
            echo "$PROG: already running ($STATE_DIR)"
            echo "export SLURM_CONF=$CONF"
            return 0
        fi
        echo "$PROG: a previous start left some daemons but no working cluster; restarting"
        cmd_stop
    fi
    ensure_hostname_resolves
    # The state directory must be reachable by munged (munge user); the rest is root's.
    mkdir -p "$STATE_DIR"
    chmod 0755 "$STATE_DIR"
    mkdir -p "$RUN" "$LOG" "$STATE_DIR/ctld" "$STATE_DIR/spool"
    : > "$PIDS"
    start_munge
    write_conf
    # -c: start from a clean state, not from jobs a previous run of this cluster left behind.
    slurmctld -c -f "$CONF" || die "slurmctld did not start; see $LOG/slurmctld.log"
    record_pid slurmctld "$RUN/slurmctld.pid"
    slurmd -f "$CONF" || die "slurmd did not start; see $LOG/slurmd.log"
    record_pid slurmd "$RUN/slurmd.pid"
    wait_until_idle
    echo "$PROG: SLURM is up on $HOST (node idle, 4 CPUs, partition debug); state in $STATE_DIR"
    echo "export SLURM_CONF=$CONF"
}

cmd_stop() {
    local live name pid
    live=$(recorded_pids)
    if [[ -z $live ]]; then
        echo "$PROG: nothing running for $STATE_DIR"
        rm -f "$PIDS"
        return 0
    fi
    cancel_all_jobs
    # slurmd before slurmctld before munged: each still needs the next while shutting down.
    for name in slurmd slurmctld munged; do
        pid=$(awk -v n="$name" '$1 == n { print $2 }' <<< "$live")
        if [[ -n $pid ]]; then stop_pid "$name" "$pid"; fi
    done
    rm -f "$PIDS"
    echo "$PROG: stopped ($STATE_DIR)"
}

cmd_status() {
    local live name pid
    live=$(recorded_pids)
    if [[ -z $live ]]; then
        echo "$PROG: not running ($STATE_DIR)"
        return 1
    fi
    echo "state dir: $STATE_DIR"
    echo "daemons (name pid):"
    while read -r name pid; do echo "  $name $pid"; done <<< "$live"
    export PATH=$PATH:/usr/sbin:/sbin
    scontrol ping || true
    sinfo || true
    squeue || true
    echo "export SLURM_CONF=$CONF"
}

main() {
    [[ $# -ge 1 && $# -le 2 ]] || usage
    set_common_paths "${2:-$DEFAULT_STATE_DIR}"
    case $1 in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        *) usage ;;
    esac
}

main "$@"
