# The bare Allreduce of LeNet's gradient (61,706 float32) at N ranks: mpiexec -n 2 python ar.py
from mpi4py import MPI
import numpy as np, time
c = MPI.COMM_WORLD
a = np.ones(61706, np.float32); b = np.empty_like(a)
for _ in range(50): c.Allreduce(a, b)
ts = []
for _ in range(500):
    c.Barrier(); t = time.perf_counter(); c.Allreduce(a, b); ts.append(time.perf_counter() - t)
if c.rank == 0: print("allreduce 61706 floats: median %.3f ms, min %.3f" % (np.median(ts)*1e3, min(ts)*1e3))
