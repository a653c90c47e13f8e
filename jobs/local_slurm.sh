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
readonly MUNGE_KEY=/etc/munge/munge.key

die() { echo "$PROG: error: $*" >&2; exit 1; }
cannot_run_here() { echo "$PROG: error: $*" >&2; exit 3; }

usage() {
    echo "usage: $PROG {start|stop|status} [STATE_DIR]   (default STATE_DIR: $DEFAULT_STATE_DIR)" >&2
    exit 2
}

# --- paths -------------------------------------------------------------------------------------
set_paths() {
    # Absolute, so that the printed SLURM_CONF works from any directory.
    STATE_DIR=$(realpath -m -- "${1:-$DEFAULT_STATE_DIR}")
    CONF=$STATE_DIR/slurm.conf
    PIDS=$STATE_DIR/pids                  # "name pid" per line: the daemons this script started
    RUN=$STATE_DIR/run                    # daemon PID files
    LOG=$STATE_DIR/log
    MUNGE_DIR=$STATE_DIR/munge            # this cluster's own munged: socket, pid, log, seed
    MUNGE_SOCKET=$MUNGE_DIR/munge.socket
    export SLURM_CONF=$CONF               # for the scontrol/sinfo/squeue calls below
}

# --- recorded daemons ----------------------------------------------------------------------------
# A recorded PID counts as ours only while it is alive and still runs the program we started
# (PIDs are reused), so a stale file after a reboot is harmless.
recorded_pids() {                         # prints "name pid" for each recorded daemon still alive
    [[ -f $PIDS ]] || return 0
    local name pid
    while read -r name pid; do
        [[ -n $pid && -r /proc/$pid/comm && $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] \
            && echo "$name $pid"
    done < "$PIDS"
    return 0
}

record_pid() {                            # record_pid NAME PIDFILE: wait for the daemon's PID file
    local name=$1 pidfile=$2 i pid
    for ((i = 0; i < 100; i++)); do
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]; then
            echo "$name $pid" >> "$PIDS"
            return 0
        fi
        sleep 0.1
    done
    die "$name did not start; see $LOG/ and $MUNGE_DIR/munged.log"
}

# --- install -------------------------------------------------------------------------------------
ensure_installed() {
    # The daemons are in /usr/sbin, which a non-login root shell may not have on PATH.
    export PATH=$PATH:/usr/sbin:/sbin
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null; then
        return 0
    fi
    [[ $EUID -eq 0 ]] || cannot_run_here "slurmctld/slurmd/munged not found and not root:" \
        "install slurm-wlm and munge (Debian/Ubuntu: apt-get install slurm-wlm munge), or run as root"
    command -v apt-get >/dev/null || cannot_run_here "slurmctld not found and no apt-get to" \
        "install it: install SLURM (slurmctld, slurmd) and munge with your package manager"
    echo "$PROG: installing slurm-wlm and munge with apt-get (~10 s)"
    mkdir -p "$LOG"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                  --no-install-recommends slurm-wlm munge; } > "$LOG/apt.log" 2>&1; then
        tail -n 20 "$LOG/apt.log" >&2
        cannot_run_here "apt-get could not install slurm-wlm and munge (log: $LOG/apt.log)"
    fi
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

# --- munge ---------------------------------------------------------------------------------------
# One munged per cluster, on a socket inside STATE_DIR (AuthInfo=socket=... below), so that this
# cluster neither depends on nor disturbs a munged the machine may already run.  It shares the
# machine's key, which munged insists is owned by the munge user and not readable by others.
start_munge() {
    if [[ ! -f $MUNGE_KEY ]]; then
        mkdir -p "${MUNGE_KEY%/*}"
        mungekey --create --keyfile="$MUNGE_KEY"
    fi
    chown munge:munge "${MUNGE_KEY%/*}" "$MUNGE_KEY"
    chmod 0700 "${MUNGE_KEY%/*}"
    chmod 0400 "$MUNGE_KEY"
    # The default socket directory, for `munge`/`unmunge` users who do not pass -S.
    install -d -o munge -g munge -m 0755 /run/munge
    # munged runs as munge and refuses a socket directory that not everyone can traverse.
    install -d -o munge -g munge -m 0755 "$MUNGE_DIR"
    runuser -u munge -- test -x "$STATE_DIR" \
        || die "the munge user cannot reach $STATE_DIR: use a state directory whose parents are world-traversable (e.g. under /tmp)"
    rm -f "$MUNGE_DIR/munged.pid"
    runuser -u munge -- munged --socket="$MUNGE_SOCKET" --pid-file="$MUNGE_DIR/munged.pid" \
        --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed" \
        || die "munged did not start; see $MUNGE_DIR/munged.log"
    record_pid munged "$MUNGE_DIR/munged.pid"
    munge -S "$MUNGE_SOCKET" -n | unmunge -S "$MUNGE_SOCKET" >/dev/null \
        || die "munged does not answer on $MUNGE_SOCKET; see $MUNGE_DIR/munged.log"
}

# --- slurm.conf ----------------------------------------------------------------------------------
write_conf() {
    local ctld_port=${HPCLARS_SLURMCTLD_PORT:-6817} slurmd_port=${HPCLARS_SLURMD_PORT:-6818} mem
    # RealMemory must not exceed what slurmd detects, or the node is drained.
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    [[ -n $mem ]] || die "could not read RealMemory from 'slurmd -C'"
    cat > "$CONF" <<EOF
# Written by jobs/local_slurm.sh: a single-node test cluster (see the comments in that script).
ClusterName=hpclars
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=pmi2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=2,sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MinJobAge=5
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldPidFile=$RUN/slurmctld.pid
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
    local live name pid i
    live=$(recorded_pids)
    if [[ -z $live ]]; then
        echo "$PROG: nothing running for $STATE_DIR"
        rm -f "$PIDS"
        return 0
    fi
    # Cancel this cluster's jobs first, so that no slurmstepd or rank outlives its slurmd.
    if scontrol ping 2>/dev/null | grep -q 'is UP'; then
        local jobs
        jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
        if [[ -n ${jobs// /} ]]; then
            # shellcheck disable=SC2086  # one argument per job id
            scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                [[ -z $(squeue -h -o '%A' 2>/dev/null) ]] && break
                sleep 0.2
            done
        fi
    fi
    # slurmd before slurmctld before munged: each still needs the next while shutting down.
    for name in slurmd slurmctld munged; do
        pid=$(awk -v n="$name" '$1 == n { print $2 }' <<< "$live")
        [[ -n $pid ]] || continue
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            [[ -d /proc/$pid ]] || break
            sleep 0.1
        done
        if [[ -d /proc/$pid ]]; then
            echo "$PROG: $name ($pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            while [[ -d /proc/$pid ]]; do sleep 0.1; done
        fi
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
    set_paths "${2:-}"
    case $1 in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        *) usage ;;
    esac
}

main "$@"
