"""Run under mpiexec by test_mpi.py: one rank raises mid-training.

Usage: mpiexec -n N python mpi_fault.py DATA_DIR OUT FAULT_RANK
The kernels are wrapped so that FAULT_RANK raises in its third training step
(evaluation chunks are larger than the 8-image local batch), as a bug or bad
data on one node would.
"""

import sys

import hpclars  # noqa: F401
from hpclars import config as C
from hpclars import kernels
from hpclars.comm import Comm, abort_on_error
from hpclars.train import train


class FaultyKernels:
    def __init__(self, rank, fault_rank):
        self.calls = 0
        self.fault = rank == fault_rank

    def __getattr__(self, name):
        return getattr(kernels, name)

    def conv2d_pool_relu_forward(self, *args):
        self.calls += args[0].shape[0] == 8
        if self.fault and self.calls == 3:
            raise RuntimeError("injected fault in conv2d_pool_relu_forward")
        return kernels.conv2d_pool_relu_forward(*args)


def main():
    data_dir, out, fault_rank = sys.argv[1], sys.argv[2], int(sys.argv[3])
    comm = Comm()
    cfg = C.build(batch_size=8 * comm.size, epochs=1, max_steps=50, data_dir=data_dir, out=out,
                  overwrite=True, progress=False)
    with abort_on_error(comm):
        train(cfg, comm, FaultyKernels(comm.rank, fault_rank))


if __name__ == "__main__":
    main()
