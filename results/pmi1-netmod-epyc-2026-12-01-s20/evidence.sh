#!/usr/bin/env bash
# Session 20: the observations behind jobs/README.md's srun entry that run.sh does not make.
#   SLURM_CONF=... bash evidence.sh > evidence.txt 2>&1    (a cluster up: jobs/local_cluster.sh start 2)
# 1. The PMI-1 put lines MPICH sends at MPI_Init (strace of rank 0's PMI socket): their count
#    and lengths, with a fresh heap and with tests/heap_then_mpi.py's random heap.
# 2. The random heap under mpiexec (hydra's PMI server reads whole lines).
# 3. MPIR_CVAR_PMI_VERSION=2 under srun (the wheel has no PMI-2 client).
# 4. Which libfabric provider MPICH's OFI netmod took under srun (MPIR_CVAR_DEBUG_SUMMARY=1).
# 5. The netmod hpclars bench allreduce ran with under srun (its provenance header).
set -u
cd "$(dirname "$0")/../.."
date -u; lscpu | grep "Model name"
tmp=$(mktemp -d)
cat > "$tmp/wrap.sh" <<'EOW'
#!/bin/bash
[ "$SLURM_PROCID" = 0 ] && exec strace -f -e trace=write -s 4000 -o "$STRACE_OUT" "$@"
exec "$@"
EOW
chmod +x "$tmp/wrap.sh"
fresh="import os; from mpi4py import MPI; c = MPI.COMM_WORLD; c.Barrier(); c.rank or print('started')"
for what in fresh random; do
    if [ $what = fresh ]; then cmd=(python -c "$fresh"); else cmd=(python tests/heap_then_mpi.py mpi4py); fi
    STRACE_OUT=$tmp/$what.st timeout 90 srun -N2 --ntasks-per-node=2 --mpi=pmi2 --kill-on-bad-exit=1 -t 1 \
        "$tmp/wrap.sh" "${cmd[@]}" > "$tmp/$what.out" 2>&1
    echo "1. $what heap, plain mpi4py under srun: exit $?; $(grep -c 'not properly terminated' "$tmp/$what.out") 'not properly terminated'"
    grep -o 'write([0-9]*, "cmd=put [^"]*' "$tmp/$what.st" | sed 's/^write([0-9]*, "//' |
        awk '{ n++; l = length($0) + 1; if (l > m) m = l; if (l > 1024) o++ } END { printf "   rank 0 sent %d put lines, longest %d bytes (newline included), %d over 1024\n", n, m, o }'
done
salloc -N2 --ntasks-per-node=2 -t 1 mpiexec -n 4 python tests/heap_then_mpi.py mpi4py > "$tmp/hydra.out" 2>&1
echo "2. random heap, plain mpi4py under mpiexec: exit $?; $(grep -E '^(hosts|netmod)' "$tmp/hydra.out" | tr '\n' ' ')"
MPIR_CVAR_PMI_VERSION=2 timeout 60 srun -N2 --ntasks-per-node=1 --mpi=pmi2 --kill-on-bad-exit=1 -t 1 \
    python -c "from mpi4py import MPI" > "$tmp/pmi2.out" 2>&1
echo "3. MPIR_CVAR_PMI_VERSION=2 under srun: exit $?; $(grep -m1 -o 'MPIR_pmi_init([0-9]*)' "$tmp/pmi2.out") $(grep -m1 -o 'Internal MPI error!' "$tmp/pmi2.out")"
MPIR_CVAR_DEBUG_SUMMARY=1 timeout 60 srun -N2 --ntasks-per-node=1 --mpi=pmi2 -t 1 \
    python -c "from hpclars.comm import MPI" > "$tmp/summary.out" 2>&1
echo "4. OFI under srun, through hpclars.comm: exit $?; $(grep -m1 'libfabric provider:' "$tmp/summary.out")"
timeout 120 srun -N2 --ntasks-per-node=1 --mpi=pmi2 -t 2 hpclars bench allreduce --sizes 1024 --iters 5 > "$tmp/bench.out" 2>&1
echo "5. hpclars bench allreduce under srun: exit $?; $(grep -m1 '^# mpi_library' "$tmp/bench.out")"
rm -rf "$tmp"
