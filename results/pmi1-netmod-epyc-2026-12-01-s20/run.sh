#!/usr/bin/env bash
# Session 20: MPICH's UCX start-up under srun --mpi=pmi2, and what OFI costs, on the 2-node
# cluster jobs/local_cluster.sh simulates on this machine (loopback links; 2 vCPUs in all).
#   SLURM_CONF=... bash run.sh > run.txt 2>&1     (a cluster must be up: jobs/local_cluster.sh start 2)
# 1. tests/heap_then_mpi.py under srun --mpi=pmi2, 2 nodes x 2 ranks: plain mpi4py (MPICH picks
#    UCX) and through hpclars.comm (which picks OFI), 3 times each.
# 2. The gradient buffer's Allreduce, 1 rank per node, UCX against OFI under the same mpiexec,
#    alternating, 3 rounds; then OFI under srun (hpclars's own choice there).
set -u
cd "$(dirname "$0")/../.."
date -u; lscpu | grep "Model name"; python -c "from mpi4py import MPI; print(MPI.Get_library_version().splitlines()[0])"
for round in 1 2 3; do
    for how in mpi4py hpclars; do
        out=$(srun -N2 --ntasks-per-node=2 --mpi=pmi2 --kill-on-bad-exit=1 -t 1 python tests/heap_then_mpi.py $how 2>&1)
        echo "heap round $round $how: exit $? | $(echo "$out" | grep -E '^(hosts|netmod)|not properly terminated' | sort -u | tr '\n' '|')"
    done
done
for round in 1 2 3; do
    for nm in ucx ofi; do
        line=$(salloc -N2 --ntasks-per-node=1 -t 2 env MPIR_CVAR_CH4_NETMOD=$nm mpiexec -n 2 hpclars bench allreduce --sizes 1024 --iters 300 2>/dev/null | grep -E "^ +107789 ")
        echo "allreduce round $round mpiexec netmod $nm: $line"
    done
    line=$(srun -N2 --ntasks-per-node=1 --mpi=pmi2 -t 2 hpclars bench allreduce --sizes 1024 --iters 300 2>/dev/null | grep -E "^ +107789 ")
    echo "allreduce round $round srun (hpclars picks ofi): $line"
done
