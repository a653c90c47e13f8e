# Pieces shared by train.sbatch, sweep.sbatch and scaling.sbatch; sourced, never run.
#
# The job scripts find this file through job_common_path below (sbatch runs a copy of a job
# script from its spool directory, so the script cannot look beside itself).  The caller sets
# STOP_FILE (the file `hpclars --stop-file` polls) and REQUEUE_ID (the job, or the array task,
# to requeue), then calls arm_stop_file.
#
# Preemption and time limits: 90 s before the limit SLURM sends USR1 to the batch shell
# (#SBATCH --signal=B:USR1@90); the trap creates the stop file; the trainer finishes its
# step, checkpoints and exits 75; requeue_or_exit then requeues the job, and the requeued job
# continues from the checkpoint (every run passes --resume).

# An empty DATA_DIR becomes the directory hpclars itself would use ($HPCLARS_DATA, else the
# per-user cache under $XDG_CACHE_HOME or ~/.cache), asked of hpclars so that the rule lives in
# one place (hpclars.data.resolve_data_dir).  It is then passed explicitly: a named directory
# without the files stops the job at once instead of starting a download on a compute node.
resolve_data_dir() {
    [ -n "$DATA_DIR" ] && return 0
    DATA_DIR=$("$HPCLARS" data --print-dir) && [ -n "$DATA_DIR" ] && return 0
    echo "${0##*/}: DATA_DIR is empty and '$HPCLARS data --print-dir' failed; set DATA_DIR" >&2
    exit 1
}

arm_stop_file() {
    rm -f "$STOP_FILE"            # left over if the previous attempt was killed before cleaning up
    usr1=0
    trap 'usr1=1; echo "USR1 at $(date +%T): time limit or preemption near; asking for a checkpoint"; touch "$STOP_FILE"' USR1
}

# Run "$@" in the background and wait for it, so that the trap runs as soon as USR1 arrives.
# The trap interrupts `wait` (it returns 138 = 128 + USR1) while the launcher keeps running:
# wait again.  Returns the launcher's exit status.
run_and_wait() {
    local pid rc
    "$@" &
    pid=$!
    while :; do
        wait "$pid"
        rc=$?
        if [ "$rc" -eq 138 ] && [ "$usr1" -eq 1 ]; then
            usr1=0
            continue
        fi
        return "$rc"
    done
}

# 75 (EX_TEMPFAIL) means: stopped by the stop file after a checkpoint.  Requeue this job; it
# starts again later with the same job id and continues from the checkpoint.
requeue_or_exit() {
    local rc=$1
    rm -f "$STOP_FILE"
    if [ "$rc" -eq 75 ]; then
        echo "checkpointed; requeueing job $REQUEUE_ID at $(date +%T)"
        scontrol requeue "$REQUEUE_ID" || { echo "scontrol requeue failed" >&2; exit 75; }
        exit 0
    fi
    echo "finished with exit code $rc at $(date '+%Y-%m-%dT%H:%M:%S%z')"
    exit "$rc"
}
