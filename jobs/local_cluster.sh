#!/usr/bin/env bash
# Start, shape, break or stop a real multi-node SLURM cluster simulated on this machine.
#
#   jobs/local_cluster.sh start [--profile P] [N]   # N nodes (default 2), wait until all are idle
#   jobs/local_cluster.sh shape P                   # change the links' bandwidth while running
#   jobs/local_cluster.sh crash K                   # node K dies: link cut, every process killed
#   jobs/local_cluster.sh revive K                  # node K boots again: link up, slurmd started
#   jobs/local_cluster.sh status                    # daemons, nodes, links, queue
#   jobs/local_cluster.sh stop                      # cancel jobs, stop daemons, remove the network
#
#   P (bandwidth profile of every node's link, both directions, shaped with tc tbf):
#     loopback  no limit (what veth pairs give: memory copies through the kernel)
#     10gbe     1.2 GB/s  (9600 Mbit/s)
#     1gbe      120 MB/s  (960 Mbit/s)
#   The kernels this is built for have tbf and htb but not netem: bandwidth is shaped, latency is
#   NOT added.  `hpclars bench allreduce --model` adds a link latency analytically instead.
#
# What it is for: running the job scripts in jobs/ across nodes (and tests/test_cluster.py) with
# the launcher, PMI and TCP traffic crossing real network interfaces, with no cluster at hand:
#
#   eval "$(jobs/local_cluster.sh start 2 | tail -n 1)"            # sets SLURM_CONF
#   sbatch --wait --nodes=2 --ntasks-per-node=2 jobs/train.sbatch --epochs 1
#
# Each node K (node1 .. nodeN) is a network namespace with its own host name (a UTS namespace),
# its own /etc/hosts (bind-mounted inside its mount namespace only) and address 10.213.S.(10+K)
# on a private bridge whose address 10.213.S.1 is the controller's; S is HPCLARS_CLUSTER_SUBNET
# (default 0).  Every node runs its own `slurmd -N nodeK`; one slurmctld and one munged run in
# the root namespace.  The file system is this machine's, so data and run directories are shared
# by all nodes, as on a cluster with a parallel file system.  Only addresses inside this private
# /24 are ever used, and `start` refuses a subnet that is already configured on the machine.
#
# Everything the cluster owns is recorded in HPCLARS_CLUSTER_STATE (default
# /tmp/hpclars-cluster): slurm.conf, logs, state, spool, munge socket, the PIDs of the daemons it
# started and the names of the namespaces, veths and bridge it created.  `stop` ends exactly
# those, so it never touches another SLURM (jobs/local_slurm.sh uses ports 6817/6818 and
# /tmp/hpclars-slurm; this script defaults to 6917/6918, see HPCLARS_CLUSTER_CTLD_PORT and
# HPCLARS_CLUSTER_SLURMD_PORT).  A failed `start` stops what it had started.
#
# slurm.conf is local_slurm.sh's (shared in slurm_common.sh) plus: CPUs per node
# (HPCLARS_CLUSTER_CPUS, default 2, so `--nodes=2 --ntasks-per-node=2` fits a 2-core machine),
# SlurmdTimeout=10 so a crashed node is declared DOWN (and its jobs requeued) in ~20 s instead
# of 5 minutes, and MessageTimeout=4 (default 10): slurmctld's ping of a silent node fails only
# after it, and the node is declared DOWN at the next ping round after that (31 s after a
# crash with the default, 19 s with 4; every RPC on these links answers in milliseconds).
#
# Needs root (namespaces, tc, the daemons) and `ip` from iproute2.  Installs slurm-wlm and munge
# with apt-get if they are missing.
#
# Exit status: 0 on success, 1 on failure, 2 on bad usage, 3 when this cannot run here (not
# root, no SLURM and no apt-get, no network namespaces): the tests use 3 to skip.
set -euo pipefail

readonly PROG=${0##*/}
# shellcheck source=jobs/slurm_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/slurm_common.sh"

readonly MAX_NODES=16
readonly PROFILES="loopback 10gbe 1gbe"

usage() {
    cat >&2 <<EOF
usage: $PROG start [--profile loopback|10gbe|1gbe] [N]   (N nodes, 1-$MAX_NODES, default 2)
       $PROG shape loopback|10gbe|1gbe
       $PROG crash K | revive K                          (K: node number, 1-N)
       $PROG status | stop
environment: HPCLARS_CLUSTER_STATE (default /tmp/hpclars-cluster), HPCLARS_CLUSTER_SUBNET (0-255,
  default 0: 10.213.0.0/24), HPCLARS_CLUSTER_CTLD_PORT / _SLURMD_PORT (6917/6918),
  HPCLARS_CLUSTER_CPUS (CPUs per node, default 2)
EOF
    exit 2
}

# --- names ---------------------------------------------------------------------------------------
set_paths() {
    set_common_paths "${HPCLARS_CLUSTER_STATE:-/tmp/hpclars-cluster}"
    SUBNET=${HPCLARS_CLUSTER_SUBNET:-0}
    [[ $SUBNET =~ ^[0-9]+$ && $SUBNET -le 255 ]] \
        || { echo "$PROG: error: HPCLARS_CLUSTER_SUBNET: must be 0-255, got '$SUBNET'" >&2; exit 2; }
    NET=10.213.$SUBNET
    TAG=hpcl$SUBNET                       # prefix of every interface and namespace created here
    BRIDGE=${TAG}br
    NETREC=$STATE_DIR/net                 # "kind name" per network object created here
    HOSTS=$STATE_DIR/hosts                # the nodes' /etc/hosts
    NODES_FILE=$STATE_DIR/nodes           # the node count of the running cluster
}
netns_of() { echo "${TAG}n$1"; }
veth_of() { echo "${TAG}v$1"; }           # the root-namespace end of node K's link
addr_of() { echo "$NET.$((10 + $1))"; }

check_node_number() {                     # check_node_number K: K names a node of this cluster
    local n
    n=$(cat "$NODES_FILE" 2>/dev/null || echo 0)
    [[ $1 =~ ^[0-9]+$ && $1 -ge 1 && $1 -le $n ]] \
        || { echo "$PROG: error: node number: '$1' is not a node of this cluster (1-$n)" >&2; exit 2; }
}

check_profile() {
    [[ " $PROFILES " == *" $1 "* ]] \
        || { echo "$PROG: error: --profile: '$1' is not one of: $PROFILES" >&2; exit 2; }
}

# --- network -------------------------------------------------------------------------------------
net_record() { echo "$1 $2" >> "$NETREC"; }

create_network() {                        # create_network N
    local n=$1 k ns veth
    if ip -4 -o addr show | grep -qF " $NET."; then
        die "$NET.0/24 is already configured on this machine; choose another HPCLARS_CLUSTER_SUBNET"
    fi
    ip link show "$BRIDGE" >/dev/null 2>&1 && die "interface $BRIDGE exists already; is another cluster using HPCLARS_CLUSTER_SUBNET=$SUBNET?"
    ip link add "$BRIDGE" type bridge
    net_record bridge "$BRIDGE"
    ip addr add "$NET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    {
        echo "127.0.0.1 localhost"
        echo "$NET.1 $CTLD_HOST"
        for ((k = 1; k <= n; k++)); do echo "$(addr_of "$k") node$k"; done
    } > "$HOSTS"
    for ((k = 1; k <= n; k++)); do
        ns=$(netns_of "$k")
        veth=$(veth_of "$k")
        ip netns add "$ns" || cannot_run_here "cannot create network namespace $ns (ip netns add failed)"
        net_record netns "$ns"
        ip link add "$veth" type veth peer name "${TAG}p$k"
        net_record veth "$veth"
        ip link set "${TAG}p$k" netns "$ns"
        ip -n "$ns" link set "${TAG}p$k" name eth0
        ip -n "$ns" addr add "$(addr_of "$k")/24" dev eth0
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
        ip link set "$veth" master "$BRIDGE" up
    done
}

# Both directions of each node's link get the profile's rate: the root-side veth shapes what
# the node receives, the node's eth0 what it sends, like a full-duplex NIC on a non-blocking
# switch.  The bucket (burst) is 64 KiB, well below the 431 KB gradient, so an Allreduce sees
# the rate rather than a burst.
shape_dev() {                             # shape_dev RATE DEV [NETNS]: RATE "" removes the limit
    local rate=$1 dev=$2 where=()
    [[ -n ${3:-} ]] && where=(-n "$3")
    tc "${where[@]}" qdisc del dev "$dev" root 2>/dev/null || true
    [[ -n $rate ]] || return 0
    tc "${where[@]}" qdisc add dev "$dev" root tbf rate "$rate" burst 64kb latency 50ms \
        || die "tc could not add a tbf qdisc on $dev${3:+ in $3} (kernel without sch_tbf?)"
}

apply_profile() {                         # apply_profile P
    local profile=$1 n k rate=""
    case $profile in
        loopback) ;;
        10gbe) rate=9600mbit ;;
        1gbe) rate=960mbit ;;
    esac
    n=$(cat "$NODES_FILE")
    for ((k = 1; k <= n; k++)); do
        shape_dev "$rate" "$(veth_of "$k")"
        shape_dev "$rate" eth0 "$(netns_of "$k")"
    done
    echo "$profile" > "$STATE_DIR/profile"
}

remove_network() {
    local kind name pid
    [[ -f $NETREC ]] || return 0
    # Namespaces first (their processes are what our slurmds started), then the bridge; a
    # veth goes with its namespace.
    while read -r kind name; do
        [[ $kind == netns ]] || continue
        ip netns list | grep -qw "^$name" || continue
        for pid in $(ip netns pids "$name" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$name" 2>/dev/null || true
    done < "$NETREC"
    while read -r kind name; do
        case $kind in
            veth|bridge) ip link del "$name" 2>/dev/null || true ;;
        esac
    done < "$NETREC"
    rm -f "$NETREC"
}

# --- daemons -------------------------------------------------------------------------------------
# The nodes share one kernel, and UCX (the netmod of the mpich wheel) decides that two processes
# can use shared memory when their kernels' boot ids match, not their host names: left alone,
# it would move inter-node traffic through /dev/shm and never touch the links (or their
# shaping).  Every task of this cluster therefore gets UCX_TLS=tcp,self unless the job sets
# UCX_TLS itself; MPICH still uses its own shared memory between ranks on the same node.
write_task_prolog() {
    cat > "$STATE_DIR/task_prolog.sh" <<'EOF'
#!/bin/sh
# Written by jobs/local_cluster.sh: make UCX cross the simulated links (see that script).
[ -n "$UCX_TLS" ] || echo "export UCX_TLS=tcp,self"
EOF
    chmod 0755 "$STATE_DIR/task_prolog.sh"
}

write_conf() {
    local n=$1 k
    write_task_prolog
    {
        echo "# Written by jobs/local_cluster.sh: a $n-node test cluster (see the comments in that script)."
        write_common_conf
        cat <<EOF
SlurmctldHost=$CTLD_HOST($NET.1)
SlurmctldPort=${HPCLARS_CLUSTER_CTLD_PORT:-6917}
SlurmdPort=${HPCLARS_CLUSTER_SLURMD_PORT:-6918}
SlurmdTimeout=10
MessageTimeout=4
SlurmdSpoolDir=$STATE_DIR/spool/%n
SlurmdLogFile=$LOG/slurmd-%n.log
SlurmdPidFile=$RUN/slurmd-%n.pid
TaskProlog=$STATE_DIR/task_prolog.sh
EOF
        for ((k = 1; k <= n; k++)); do
            echo "NodeName=node$k NodeAddr=$(addr_of "$k") CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1"
        done
        echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=02:00:00 State=UP"
    } > "$CONF"
}

# slurmd of node K inside its namespaces: network, UTS for the host name, and mount for the
# cluster's hosts file over /etc/hosts (private to that namespace).  Everything slurmd starts
# (slurmstepd, the ranks) inherits them.  nsenter rather than `ip netns exec`, which remounts
# /sys and so hides /sys/fs/cgroup, without which slurmd refuses to start.
start_slurmd() {                          # start_slurmd K
    local k=$1
    mkdir -p "$STATE_DIR/spool/node$k"
    rm -f "$RUN/slurmd-node$k.pid"
    nsenter --net="/run/netns/$(netns_of "$k")" -- unshare --uts --mount -- sh -c \
        'hostname "$1" && mount --bind "$2" /etc/hosts && exec slurmd -N "$1" -f "$3"' \
        sh "node$k" "$HOSTS" "$CONF" || die "slurmd of node$k did not start; see $LOG/slurmd-node$k.log"
    record_pid slurmd "$RUN/slurmd-node$k.pid" "node$k"
}

node_states() { sinfo -h -N -o '%N %T' 2>/dev/null | sort -u; }

wait_until_idle() {                       # wait_until_idle NODE...: each idle, mixed or allocated
    local i node state states=""
    for ((i = 0; i < 150; i++)); do
        if scontrol ping 2>/dev/null | grep -q 'is UP'; then
            states=$(node_states)
            local ready=1
            for node in "$@"; do
                state=$(awk -v n="$node" '$1 == n { print $2 }' <<< "$states")
                case $state in
                    idle|mixed|allocated|completing) ;;
                    *drain*|*down*|*fail*|*inval*)
                        ready=0
                        scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
                    *) ready=0 ;;
                esac
            done
            [[ $ready -eq 1 ]] && return 0
        fi
        sleep 0.2
    done
    die "nodes not idle after 30 s (${states:-controller down}); see $LOG/"
}

# --- commands ------------------------------------------------------------------------------------
cmd_start() {
    local profile=loopback n=2 k nodes=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            -p|--profile) [[ $# -ge 2 ]] || usage; profile=$2; shift 2 ;;
            --profile=*) profile=${1#*=}; shift ;;
            -*) usage ;;
            *) n=$1; shift; [[ $# -eq 0 ]] || usage ;;
        esac
    done
    check_profile "$profile"
    [[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le $MAX_NODES ]] \
        || { echo "$PROG: error: N: the number of nodes must be 1-$MAX_NODES, got '$n'" >&2; exit 2; }
    CPUS=${HPCLARS_CLUSTER_CPUS:-2}
    [[ $CPUS =~ ^[0-9]+$ && $CPUS -ge 1 ]] \
        || { echo "$PROG: error: HPCLARS_CLUSTER_CPUS: must be a positive integer, got '$CPUS'" >&2; exit 2; }
    [[ $EUID -eq 0 ]] || cannot_run_here "a local multi-node cluster needs root (network namespaces, tc, SLURM as root)"
    command -v ip >/dev/null && command -v tc >/dev/null && command -v unshare >/dev/null \
        || cannot_run_here "ip, tc and unshare (iproute2, util-linux) are needed"
    ensure_installed
    if [[ -n $(recorded_pids) || -f $NETREC ]]; then
        die "a cluster is already running in $STATE_DIR ($PROG status); stop it first"
    fi
    CTLD_HOST=$(hostname -s)
    mkdir -p "$STATE_DIR"
    chmod 0755 "$STATE_DIR"
    mkdir -p "$RUN" "$LOG" "$STATE_DIR/ctld" "$STATE_DIR/spool"
    : > "$PIDS"
    : > "$NETREC"
    echo "$n" > "$NODES_FILE"
    # From here on, a failure stops whatever was started.
    trap 'rc=$?; if [[ $rc -ne 0 ]]; then echo "$PROG: start failed; stopping what it started" >&2; cmd_stop >&2 || true; fi' EXIT
    create_network "$n"
    apply_profile "$profile"
    start_munge
    write_conf "$n"
    slurmctld -c -f "$CONF" || die "slurmctld did not start; see $LOG/slurmctld.log"
    record_pid slurmctld "$RUN/slurmctld.pid"
    for ((k = 1; k <= n; k++)); do
        start_slurmd "$k"
        nodes+=("node$k")
    done
    wait_until_idle "${nodes[@]}"
    trap - EXIT
    echo "$PROG: SLURM is up: $n node(s) node1..node$n ($CPUS CPUs each) on $NET.0/24, profile $profile; state in $STATE_DIR"
    echo "export SLURM_CONF=$CONF"
}

cmd_shape() {
    [[ $# -eq 1 ]] || usage
    check_profile "$1"
    [[ -f $NETREC ]] || die "no cluster running in $STATE_DIR"
    apply_profile "$1"
    echo "$PROG: profile $1 on all links"
}

cmd_crash() {
    [[ $# -eq 1 ]] || usage
    check_node_number "$1"
    local k=$1 ns pid
    ns=$(netns_of "$k")
    # Link down first, so that the dying processes' FIN/RST never reach the other nodes: to
    # them the node simply goes silent, as when a machine loses power.
    ip link set "$(veth_of "$k")" down
    for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null || true; done
    echo "$PROG: node$k crashed (link down, its slurmd and every process on it killed)"
}

cmd_revive() {
    [[ $# -eq 1 ]] || usage
    check_node_number "$1"
    local k=$1
    CPUS=${HPCLARS_CLUSTER_CPUS:-2}
    for pid in $(ip netns pids "$(netns_of "$k")"); do kill -KILL "$pid" 2>/dev/null || true; done
    ip link set "$(veth_of "$k")" up
    start_slurmd "$k"
    wait_until_idle "node$k"
    echo "$PROG: node$k is back"
}

cmd_stop() {
    local live name pid tag
    live=$(recorded_pids)
    if [[ -n $live ]]; then
        cancel_all_jobs
        # slurmds before slurmctld before munged: each still needs the next while shutting down.
        for name in slurmd slurmctld munged; do
            while read -r _ pid tag; do
                stop_pid "$name${tag:+ $tag}" "$pid"
            done < <(awk -v n="$name" '$1 == n' <<< "$live")
        done
    fi
    remove_network
    rm -f "$PIDS" "$NODES_FILE"
    echo "$PROG: stopped ($STATE_DIR)"
}

cmd_status() {
    local live n k
    live=$(recorded_pids)
    if [[ -z $live && ! -f $NETREC ]]; then
        echo "$PROG: not running ($STATE_DIR)"
        return 1
    fi
    export PATH=$PATH:/usr/sbin:/sbin
    n=$(cat "$NODES_FILE" 2>/dev/null || echo 0)
    echo "state dir: $STATE_DIR; profile $(cat "$STATE_DIR/profile" 2>/dev/null || echo '?')"
    echo "daemons (name pid [node]):"
    sed 's/^/  /' <<< "$live"
    echo "nodes (namespace, address, link):"
    for ((k = 1; k <= n; k++)); do
        echo "  node$k $(netns_of "$k") $(addr_of "$k") $(ip -br link show "$(veth_of "$k")" 2>/dev/null | awk '{print $2}')" \
             "$(tc qdisc show dev "$(veth_of "$k")" 2>/dev/null | grep -o 'rate [^ ]*' || echo 'unshaped')"
    done
    scontrol ping || true
    sinfo || true
    squeue || true
    echo "export SLURM_CONF=$CONF"
}

main() {
    [[ $# -ge 1 ]] || usage
    set_paths
    local cmd=$1
    shift
    case $cmd in
        start) cmd_start "$@" ;;
        shape) cmd_shape "$@" ;;
        crash) cmd_crash "$@" ;;
        revive) cmd_revive "$@" ;;
        stop) [[ $# -eq 0 ]] || usage; cmd_stop ;;
        status) [[ $# -eq 0 ]] || usage; cmd_status ;;
        *) usage ;;
    esac
}

main "$@"
