"""Run under mpiexec by test_mpi.py: train, then report every rank's parameter digest.

Usage: mpiexec -n N python mpi_gather.py DATA_DIR OUT DIGESTS_JSON
"""

import hashlib
import json
import sys

import hpclars  # noqa: F401
from hpclars import config as C
from hpclars.comm import Comm, abort_on_error
from hpclars.train import Trainer


def main():
    data_dir, out, digests = sys.argv[1], sys.argv[2], sys.argv[3]
    comm = Comm()
    cfg = C.build(optimizer="lars", batch_size=32 * comm.size, epochs=1, max_steps=15, lr=0.5,
                  data_dir=data_dir, out=out, overwrite=True, progress=False)
    with abort_on_error(comm):
        trainer = Trainer(cfg, comm)
        status = trainer.run()
        mine = hashlib.sha256(trainer.flat.tobytes()).hexdigest()
        everyone = comm.comm.gather(mine, root=0)
        if comm.is_root:
            with open(digests, "w") as f:
                json.dump({"status": status, "size": comm.size, "digests": everyone}, f)


if __name__ == "__main__":
    main()
