# Pieces shared by jobs/local_slurm.sh and jobs/local_cluster.sh; sourced, never run.
#
# The caller sets PROG and STATE_DIR and calls set_common_paths; every function below works on
# that state directory only.  What a cluster started is recorded in $PIDS as "name pid [tag]"
# lines, and `stop` ends exactly those processes, never processes found by name.
#
# Exit status convention of the callers: 0 success, 1 failure, 2 bad usage, 3 when SLURM is
# missing and cannot be installed here (not root, or no apt-get): the tests use 3 to skip.

readonly MUNGE_KEY=/etc/munge/munge.key

die() { echo "$PROG: error: $*" >&2; exit 1; }
cannot_run_here() { echo "$PROG: error: $*" >&2; exit 3; }

set_common_paths() {
    # Absolute, so that the printed SLURM_CONF works from any directory.
    STATE_DIR=$(realpath -m -- "$1")
    CONF=$STATE_DIR/slurm.conf
    PIDS=$STATE_DIR/pids                  # "name pid [tag]" per line: the daemons started here
    RUN=$STATE_DIR/run                    # daemon PID files
    LOG=$STATE_DIR/log
    MUNGE_DIR=$STATE_DIR/munge            # this cluster's own munged: socket, pid, log, seed
    MUNGE_SOCKET=$MUNGE_DIR/munge.socket
    export SLURM_CONF=$CONF               # for the scontrol/sinfo/squeue calls
}

# --- recorded daemons ----------------------------------------------------------------------------
# A recorded PID counts as ours only while it is alive and still runs the program we started
# (PIDs are reused), so a stale file after a reboot is harmless.
recorded_pids() {                         # prints "name pid [tag]" for each recorded daemon alive
    [[ -f $PIDS ]] || return 0
    local name pid tag
    while read -r name pid tag; do
        [[ -n $pid && -r /proc/$pid/comm && $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] \
            && echo "$name $pid${tag:+ $tag}"
    done < "$PIDS"
    return 0
}

record_pid() {                            # record_pid NAME PIDFILE [TAG]: wait for the PID file
    local name=$1 pidfile=$2 tag=${3:-} i pid
    for ((i = 0; i < 100; i++)); do
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]; then
            echo "$name $pid${tag:+ $tag}" >> "$PIDS"
            return 0
        fi
        sleep 0.1
    done
    die "$name${tag:+ ($tag)} did not start; see $LOG/ and $MUNGE_DIR/munged.log"
}

stop_pid() {                              # stop_pid NAME PID: TERM, then KILL after 10 s
    local name=$1 pid=$2 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        [[ -d /proc/$pid ]] || return 0
        sleep 0.1
    done
    echo "$PROG: $name ($pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    while [[ -d /proc/$pid ]]; do sleep 0.1; done
}

# Cancel this cluster's jobs, so that no slurmstepd or rank outlives its slurmd.
cancel_all_jobs() {
    local jobs i
    scontrol ping 2>/dev/null | grep -q 'is UP' || return 0
    jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
    [[ -n ${jobs// /} ]] || return 0
    # shellcheck disable=SC2086  # one argument per job id
    scancel $jobs 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        [[ -z $(squeue -h -o '%A' 2>/dev/null) ]] && return 0
        sleep 0.2
    done
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

# --- munge ---------------------------------------------------------------------------------------
# One munged per cluster, on a socket inside STATE_DIR (AuthInfo=socket=...), so that a cluster
# neither depends on nor disturbs a munged the machine may already run.  It shares the machine's
# key, which munged insists is owned by the munge user and not readable by others.  The socket
# is a file, so daemons in other network namespaces reach it too.
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
# The settings both clusters share (see the comments in local_slurm.sh for why each is there).
# The caller appends the hosts, ports, file locations and nodes.
write_common_conf() {
    cat <<EOC
ClusterName=hpclars
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
SlurmctldLogFile=$LOG/slurmctld.log
SlurmctldPidFile=$RUN/slurmctld.pid
EOC
}
