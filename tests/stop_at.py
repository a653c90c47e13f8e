"""Run by test_stop.py: `hpclars train ARGS`, with a real stop request at one chosen moment.

Usage: [mpiexec -n N] python stop_at.py MOMENT RANK HOW train ARGS...

MOMENT  load           while the data is being loaded
        eval:T         during the first evaluation once T optimizer steps are done
                       (eval:0 is epoch 0's, before training)
        step:T         in the forward pass of step T (0-based), before its Allreduce
        checkpoint:T   while rank 0 writes the checkpoint after T steps
RANK    the rank that is asked to stop (the others learn it from rank 0 or the Allreduce)
HOW     SIGTERM, SIGINT or SIGUSR1 (sent to that rank's own process), or file (that
        rank creates the --stop-file)

The hooks only decide *when*; the stop itself is a real signal or a real file.
"""

import os
import signal
import sys
from pathlib import Path

import hpclars  # noqa: F401
from hpclars import checkpoint, cli, kernels
from hpclars import train as T
from hpclars.comm import Comm


def main():
    moment, rank, how, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    kind, _, at = moment.partition(":")
    at = int(at or 0)
    me = Comm().rank
    optimizers = []
    fired = []

    def fire():
        if fired or me != rank:
            return
        fired.append(True)
        if how == "file":
            Path(args[args.index("--stop-file") + 1]).touch()
        else:
            os.kill(os.getpid(), getattr(signal, how))

    def steps():
        return optimizers[-1].t if optimizers else -1

    def make_optimizer(*a):
        optimizers.append(real_make_optimizer(*a))
        return optimizers[-1]

    def load_data(*a):
        if kind == "load":
            fire()
        return real_load_data(*a)

    def softmax_xent(logits, labels, dlogits, *a):
        training = dlogits is not None
        if steps() == at and ((kind == "step" and training) or (kind == "eval" and not training)):
            fire()
        return real_xent(logits, labels, dlogits, *a)

    def save(*a, **kw):
        if kind == "checkpoint" and steps() == at:
            fire()
        return real_save(*a, **kw)

    real_make_optimizer, T.make_optimizer = T.make_optimizer, make_optimizer
    real_load_data, T.load_data = T.load_data, load_data
    real_xent, kernels.softmax_xent = kernels.softmax_xent, softmax_xent
    real_save, checkpoint.save = checkpoint.save, save
    sys.exit(cli.main(args))


if __name__ == "__main__":
    main()
