"""Start MPI after leaving random bytes in the C heap: python heap_then_mpi.py hpclars|mpi4py.

MPICH's UCX netmod publishes 4096 bytes from a UCX address buffer of a few hundred bytes at
MPI_Init (hpclars.comm.slurm_pmi1_netmod says why that matters under srun); what it publishes
beyond the address is whatever heap follows it.  Here that is random bytes: 2000 chunks of 600
random bytes are allocated and every other one freed, so the holes cannot merge or go back to
the system.  Then MPI starts through hpclars.comm, or through plain mpi4py, and rank 0 prints
the hosts of all ranks and the netmod chosen.
"""

import os
import sys

chunks = [os.urandom(600) for _ in range(2000)]
kept = chunks[::2]
del chunks

if sys.argv[1] == "hpclars":
    from hpclars.comm import MPI
else:
    from mpi4py import MPI

comm = MPI.COMM_WORLD
hosts = comm.allgather(MPI.Get_processor_name())
if comm.rank == 0:
    print("hosts", " ".join(hosts))
    print("netmod", os.environ.get("MPIR_CVAR_CH4_NETMOD", "default"))
