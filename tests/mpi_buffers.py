"""Run by test_mpi.py at 1 and 2 ranks: every comm helper refuses, by the same message at
any world size, the buffers mpi4py refuses at N ranks.

Usage: [mpiexec -n N] python mpi_buffers.py REPORT_JSON
"""

import json
import sys

import numpy as np

import hpclars  # noqa: F401
from hpclars.comm import Comm


def bad_buffers():
    read_only = np.zeros(4, np.float32)
    read_only.flags.writeable = False
    return {"strided": np.zeros(8, np.float32)[::2], "read-only": read_only,
            "object": np.array([1, "a"], dtype=object), "float16": np.zeros(4, np.float16),
            "list": [0.0, 1.0], "transposed": np.zeros((3, 4), np.float64).T}


def main():
    comm = Comm()
    report = {}
    for call in ("allreduce_sum_", "allreduce_max_", "bcast_"):
        for name, buf in bad_buffers().items():
            try:
                getattr(comm, call)(buf)
                report[f"{call} {name}"] = "accepted"
            except ValueError as exc:  # refused before any communication, on every rank alike
                report[f"{call} {name}"] = str(exc)
    good = np.arange(4, dtype=np.float32)
    report["good sum"] = comm.allreduce_sum_(good).tolist()
    everyone = comm.comm.gather(report, root=0)
    if comm.is_root:
        with open(sys.argv[1], "w") as f:
            json.dump(everyone, f)


if __name__ == "__main__":
    main()
