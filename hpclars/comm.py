"""Data-parallel communication: the few MPI calls the trainer needs, and the gradient reducer.

:class:`GradientReducer` owns the step's flat buffer (the gradient and its named extra
slots) and sums it over the ranks: what the trainer and ``hpclars bench allreduce`` use.

Everything goes through buffer-based (capital-letter) mpi4py calls on
contiguous arrays; the step's gradient is averaged with ONE in-place
``Allreduce``.  Every helper is a no-op at one process, so the same code runs
with and without ``mpiexec``; but it checks its buffer (dtype, C-contiguous,
writeable) at every world size, so a buffer MPI would refuse at N ranks fails
the 1-rank tests too.

A failure on any rank must end the whole job, never hang it:
:func:`abort_on_error` prints the failing rank's message and calls
``MPI_Abort``, which makes the launcher kill every rank and exit non-zero.

Importing this module starts MPI (mpi4py's ``MPI_Init_thread``), after one choice mpi4py cannot
make: under ``srun --mpi=pmi2`` with the ``mpich`` wheel it selects MPICH's OFI netmod, because
the UCX one can fail ``MPI_Init`` there (:func:`slurm_pmi1_netmod` says why and when).

Deliberately left out: anything about the model or the optimizer.
"""

import array
import contextlib
import fcntl
import hashlib
import os
import sys
import termios
import time
import traceback

import mpi4py
import numpy as np


def mpich_setting(environ, name):
    """The value of MPICH setting ``name`` (e.g. "CH4_NETMOD") in ``environ``, or None.

    MPICH reads each setting under three spellings, MPIR_CVAR_ first (MPICH's README.envvar).
    """
    return next((environ[p + name] for p in ("MPIR_CVAR_", "MPIR_PARAM_", "MPICH_")
                 if environ.get(p + name)), None)


def launched_by_slurm_pmi(environ):
    """True if Slurm's own PMI server started this process (``srun --mpi=pmi2``, or plain
    ``srun`` where ``MpiDefault=pmi2``): ``SLURM_MPI_TYPE`` is pmi2 and ``PMI_FD`` is set, and
    MPICH's hydra (``mpiexec``), whose ranks have ``MPI_LOCALNRANKS``, did not."""
    return (environ.get("SLURM_MPI_TYPE", "").startswith("pmi2") and "PMI_FD" in environ
            and "MPI_LOCALNRANKS" not in environ)


def slurm_pmi1_netmod(library_version, environ):
    """The MPICH netmod to select before ``MPI_Init``, or None to leave MPICH's own choice.

    library_version: str, ``MPI.Get_library_version()`` (callable before ``MPI_Init``, MPI-3.1
    section 8.1.1).  environ: the process environment (a mapping of str to str).  Raises nothing.

    Why (measured with the ``mpich`` 5.0.2 wheel and Slurm 22.05, 2026-12-01; jobs/README.md):
    MPICH's UCX netmod publishes each node's address at ``MPI_Init`` as ``MPID_MAX_BC_SIZE`` =
    4096 bytes read from UCX's address buffer of a few hundred bytes (MPICH,
    ``src/mpid/ch4/netmod/ucx/ucx_init.c``, ``MPIDI_UCX_comm_addr_exchange``: "FIXME: use the
    actual addrname_len"), so most of what it publishes is whatever heap memory follows that
    buffer.  MPICH's own PMI-1 client sends it as hex, 511 bytes of it per ``cmd=put`` line (up to
    1022 hex characters), with runs of zero bytes compressed.  Slurm's ``mpi/pmi2`` plugin serves PMI-1 with one
    1024-byte ``read`` per request (Slurm, ``src/plugins/mpi/pmi2/pmi1.c``, ``MAX_READLINE``).  A
    segment of heap with few zero bytes makes a line of up to about 1080 bytes, Slurm splits it
    ("value not properly terminated", then "request not begin with 'cmd='"), and ``MPI_Init``
    fails.  It depends on the process's heap, so one program can fail on most or every launch.
    MPICH's OFI netmod publishes only its real address (16 bytes with libfabric's sockets
    provider, which it took on the test cluster).  It also picks its own network
    interface (libfabric's ``FI_PROVIDER``, ``FI_SOCKETS_IFACE``, ``FI_TCP_IFACE``; jobs/README.md).

    Returns "ofi" when all of these hold, else None:
    - the library is MPICH (its version text starts with "MPICH Version") built with both the
      UCX and the OFI netmods (its "MPICH Device:" line names both), as the PyPI wheel is;
    - :func:`launched_by_slurm_pmi`;
    - MPICH speaks PMI-1 (its PMI_VERSION setting unset or 1; the wheel has no PMI-2 client, and
      with PMI_VERSION 2 its ``MPI_Init`` fails at once) and the user has not chosen a
      netmod (CH4_NETMOD unset, in any of :func:`mpich_setting`'s spellings).
    """
    lines = library_version.splitlines()
    if not lines or not lines[0].startswith("MPICH Version"):
        return None
    device = next((line.split(":", 1)[1] for line in lines if line.startswith("MPICH Device:")), "")
    if "ucx" not in device or "ofi" not in device or not launched_by_slurm_pmi(environ):
        return None
    if mpich_setting(environ, "PMI_VERSION") not in (None, "1") or mpich_setting(environ, "CH4_NETMOD"):
        return None
    return "ofi"


_THREAD_LEVELS = ("single", "funneled", "serialized", "multiple")


def _start_mpi():
    """Import mpi4py.MPI, choosing MPICH's netmod (:func:`slurm_pmi1_netmod`) before ``MPI_Init``.

    Only under Slurm's PMI (:func:`launched_by_slurm_pmi`) does this start MPI itself, as
    mpi4py would: the thread level of ``mpi4py.rc``, ``MPI_Finalize`` at exit.  Everywhere else,
    and also there when MPI is already imported (a program that imported mpi4py.MPI first gets
    no choice), when the caller turned mpi4py's initialisation off (``hpclars bench`` does before
    it starts ``mpiexec`` itself), or when ``mpi4py.rc`` or ``MPI4PY_RC_*`` variables configure
    the start-up beyond its boolean thread flag and level names, mpi4py starts MPI on import.
    """
    rc = mpi4py.rc
    if ("mpi4py.MPI" in sys.modules or rc.initialize is not True or not launched_by_slurm_pmi(os.environ)
            or rc.threads not in (True, False) or rc.thread_level not in _THREAD_LEVELS
            or any(k.startswith("MPI4PY_RC_") for k in os.environ)):
        from mpi4py import MPI

        return MPI
    rc.initialize = False
    if rc.finalize is None:  # None: finalize only what mpi4py initialised; this does now
        rc.finalize = True
    try:
        from mpi4py import MPI
    finally:
        rc.initialize = True
    netmod = slurm_pmi1_netmod(MPI.Get_library_version(), os.environ)
    if netmod is not None:
        os.environ["MPIR_CVAR_CH4_NETMOD"] = netmod
        if os.environ.get("PMI_RANK") == "0":
            print(f"hpclars: srun's PMI with MPICH: MPIR_CVAR_CH4_NETMOD={netmod}, because MPICH's UCX "
                  "netmod can fail MPI_Init there (jobs/README.md); set MPIR_CVAR_CH4_NETMOD "
                  "yourself to choose", file=sys.stderr, flush=True)
    if rc.threads:
        MPI.Init_thread(getattr(MPI, f"THREAD_{rc.thread_level.upper()}"))
    else:
        MPI.Init()
    return MPI


MPI = _start_mpi()

REDUCIBLE = tuple(np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64))
BROADCASTABLE = REDUCIBLE + tuple(np.dtype(t) for t in (np.uint8, np.int8, np.uint32, np.uint64))


def _check_buffer(buf, call, dtypes):
    """What the N-rank path requires of a buffer, checked at every world size."""
    if not isinstance(buf, np.ndarray):
        raise ValueError(f"{call}: buffer must be a numpy.ndarray, got {type(buf).__name__}")
    if buf.dtype not in dtypes:
        raise ValueError(f"{call}: buffer dtype {buf.dtype} is not one of "
                         f"{', '.join(str(d) for d in dtypes)}")
    if not buf.flags.c_contiguous:
        raise ValueError(f"{call}: buffer must be C-contiguous (got a strided view of shape {buf.shape})")
    if not buf.flags.writeable:
        raise ValueError(f"{call}: buffer must be writeable (it is received into in place)")


class Comm:
    """COMM_WORLD with the trainer's collective operations."""

    def __init__(self, comm=None):
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()

    @property
    def is_root(self):
        return self.rank == 0

    def allreduce_sum_(self, buf):
        """Sum ``buf`` over ranks, in place; returns it.

        buf: C-contiguous, writeable ndarray of float32, float64, int32 or int64 (any
        shape).  Raises ValueError naming what is wrong otherwise, at every world
        size: mpi4py refuses such buffers at N ranks, so one rank refuses them too.
        """
        _check_buffer(buf, "allreduce_sum_", REDUCIBLE)
        if self.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return buf

    def allreduce_max_(self, buf):
        """Elementwise maximum over ranks, in place; ``buf`` as for :meth:`allreduce_sum_`."""
        _check_buffer(buf, "allreduce_max_", REDUCIBLE)
        if self.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.MAX)
        return buf

    def bcast_(self, buf, root=0):
        """Broadcast ``buf`` from ``root``, in place; returns it.

        buf: C-contiguous, writeable ndarray of a numeric dtype (uint8, int32, float32,
        ...), the same shape on every rank.  Raises ValueError as :meth:`allreduce_sum_`.
        """
        _check_buffer(buf, "bcast_", BROADCASTABLE)
        if self.size > 1:
            self.comm.Bcast(buf, root=root)
        return buf

    def bcast_obj(self, obj, root=0):
        """Broadcast a small Python object (set-up only, never in the step)."""
        return self.comm.bcast(obj, root=root) if self.size > 1 else obj

    def barrier(self):
        if self.size > 1:
            self.comm.Barrier()

    def same_everywhere(self, buf):
        """True on every rank if ``buf`` is bitwise identical on all ranks."""
        if self.size == 1:
            return True
        digest = hashlib.sha256(np.ascontiguousarray(buf).tobytes()).digest()
        mine = np.frombuffer(digest[:8], dtype=np.int64).copy()
        low, high = mine.copy(), mine.copy()
        self.comm.Allreduce(MPI.IN_PLACE, low, op=MPI.MIN)
        self.comm.Allreduce(MPI.IN_PLACE, high, op=MPI.MAX)
        return bool(low[0] == high[0])

    def gather_obj(self, obj, root=0):
        """A list of every rank's small Python object on ``root``, None elsewhere (set-up only)."""
        if self.size == 1:
            return [obj]
        return self.comm.gather(obj, root=root)

    def overlapped_sum(self, buf, buckets):
        """An :class:`OverlappedAllreduce` of ``buf`` by ``buckets`` (a no-op at one process)."""
        return OverlappedAllreduce(self.comm if self.size > 1 else None, buf, buckets)

    def on_root(self, fn, share_result=True):
        """Run ``fn`` on rank 0 and give every rank its result (pickled: keep it
        small, or pass ``share_result=False`` and broadcast it yourself), or its error.

        For set-up work whose failure is the same for everyone (reading the
        data): one message from rank 0 and a clean exit on all ranks, instead of
        N copies of the traceback and an abort.
        """
        result, error = None, None
        if self.is_root:
            try:
                result = fn()
            except Exception as exc:  # re-raised on every rank below
                error = exc
        error = self.bcast_obj(error)
        if error is not None:
            raise error
        return self.bcast_obj(result) if share_result else result


class OverlappedAllreduce:
    """Sum one flat buffer over ranks bucket by bucket, overlapping communication with compute.

    DDP and Horovod do this with the gradient: the backward pass produces the last layer's
    gradient first, so its bucket can travel while earlier layers are still computed.
    ``buckets`` maps a name to a slice of ``buf``; the slices must not overlap.  Call
    :meth:`start` with a bucket's name as soon as that part of ``buf`` is final (it starts a
    non-blocking in-place ``Iallreduce`` on that view), and :meth:`wait` before reading any of
    it.  The buffer stays one contiguous array, so the optimizer sees the same layout as after
    a single ``Allreduce``.

    Results: at 2 ranks each element is ``a + b`` either way, so they are bitwise identical to
    one ``Allreduce`` of the whole buffer; at more ranks MPI may choose another algorithm (and
    so another summation order) for a smaller message, so they agree to rounding only.

    With ``comm`` None (one process) every call is a no-op.
    """

    def __init__(self, comm, buf, buckets):
        self.comm = comm
        self.views = {name: buf[s] for name, s in buckets.items()}
        self.requests = []
        self.started = set()

    def start(self, name):
        if name in self.started:
            raise RuntimeError(f"bucket {name!r} started twice in one step")
        self.started.add(name)
        if self.comm is not None:
            self.requests.append(self.comm.Iallreduce(MPI.IN_PLACE, self.views[name], op=MPI.SUM))
            # MPICH moves a non-blocking collective on only inside MPI calls (no progress
            # thread by default): testing the ones in flight lets them advance at each start.
            MPI.Request.Testall(self.requests)

    def wait(self):
        """Complete every started reduction; every bucket must have been started."""
        missing = set(self.views) - self.started
        if missing:
            raise RuntimeError(f"buckets never started: {', '.join(sorted(missing))}")
        if self.requests:
            MPI.Request.Waitall(self.requests)
        self.requests = []
        self.started = set()


class GradientReducer:
    """The step's one flat float32 buffer: this rank's gradient, then named scalar slots.

    As Horovod's DistributedOptimizer owns its fusion buffer, the reducer owns the step's
    buffer and knows what is in it: ``grads`` (a view, float32 (n_params,), the buffer the
    backward pass accumulates into) followed by one float32 slot per name in :data:`SLOTS`.
    :meth:`reduce` sums the whole buffer over the ranks with ONE in-place Allreduce and then
    divides ``grads`` by the number of ranks, so the gradient becomes the mean over ranks
    and each slot the sum (``reduce(mean=False)``: no division, for unequal shares whose
    ranks scaled by 1 / global batch already); every rank then holds the same values.

    Slots (read and written by name, ``reducer["loss_sum"] = x``; reading gives a float):
      loss_sum  this rank's summed minibatch loss (after reduce: the global sum)
      local_sq  the squared norm of this rank's mean gradient, for the gradient noise scale
                (:func:`hpclars.stats.noise_terms`; after reduce: the sum over ranks)
      stop      1 if this rank was asked to stop, else 0 (after reduce: > 0 if any rank was)

    ``buckets`` (the --overlap-allreduce path): a dict layer -> slice of ``grads`` (see
    :func:`hpclars.model.layer_slices`).  Then :meth:`layer_done`, the model's
    ``on_layer_done`` callback, starts that layer's non-blocking Allreduce as soon as the
    backward pass has written it (an :class:`OverlappedAllreduce`), and :meth:`reduce` starts
    the slots' and waits for all.  The squared norm is then summed layer by layer, so it
    may differ from the blocking path's single dot product in the last bits.

    At one process every reduction is a no-op, as everywhere in this module.
    """

    SLOTS = ("loss_sum", "local_sq", "stop")

    def __init__(self, comm, n_params, buckets=None):
        self.comm = comm
        self.buf = np.zeros(n_params + len(self.SLOTS), dtype=np.float32)
        self.grads = self.buf[:n_params]
        self._index = {name: n_params + i for i, name in enumerate(self.SLOTS)}
        self._overlap = None
        self.on_layer_done = None  # what the model calls as each layer's gradient is final
        if buckets is not None:
            self._overlap = comm.overlapped_sum(self.buf, {**buckets, "slots": slice(n_params, None)})
            self.on_layer_done = self.layer_done
        self._layer_sq = 0.0

    @property
    def size(self):
        """Floats in the buffer: the parameters plus the slots."""
        return self.buf.size

    def __getitem__(self, name):
        return float(self.buf[self._index[name]])

    def __setitem__(self, name, value):
        self.buf[self._index[name]] = value

    def zero(self):
        """Clear the gradient and the slots before a step's backward pass."""
        self.buf[...] = 0
        self._layer_sq = 0.0

    def layer_done(self, layer):
        """Overlap only: ``layer``'s gradient is final; add its squared norm, start its sum."""
        g = self._overlap.views[layer]
        self._layer_sq += float(np.dot(g, g))
        self._overlap.start(layer)

    def local_sq_norm(self):
        """The squared norm of this rank's gradient (call before :meth:`reduce`)."""
        return self._layer_sq if self._overlap is not None else np.dot(self.grads, self.grads)

    def reduce(self, mean=True):
        """Sum the buffer over the ranks (collective), then, if ``mean``, divide ``grads`` by the
        number of ranks (False: each rank already scaled its part by 1 / global batch, as with
        unequal shares, :mod:`hpclars.balance`, and the sum is the mean)."""
        if self._overlap is not None:
            self._overlap.start("slots")
            self._overlap.wait()
        else:
            self.comm.allreduce_sum_(self.buf)
        if mean and self.comm.size > 1:
            self.grads *= np.float32(1.0 / self.comm.size)


def _wait_for_launcher_to_read(stream, timeout=3.0):
    """Wait until the launcher has read what this rank wrote to ``stream``.

    Under ``mpiexec`` a rank's stderr is a pipe to the launcher's proxy, and
    ``MPI_Abort`` makes the proxy kill the ranks and stop forwarding: a message
    still in the pipe is lost (seen with MPICH's Hydra on a loaded machine,
    where the user got a non-zero exit and no word why).  So poll the unread
    byte count of the pipe (``FIONREAD``, Linux pipe(7)) until it is empty or
    ``timeout`` seconds pass, then give the proxy a moment to pass it on.  On a
    terminal or a file there is nothing to wait for.
    """
    try:
        fd = stream.fileno()
        if not os.path.exists(f"/proc/self/fd/{fd}") or "pipe:" not in os.readlink(f"/proc/self/fd/{fd}"):
            return
        unread = array.array("i", [0])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fcntl.ioctl(fd, termios.FIONREAD, unread)
            if unread[0] == 0:
                break
            time.sleep(0.01)
        time.sleep(0.2)
    except (OSError, ValueError, AttributeError):
        pass  # not a pipe we can query: abort at once, as before


@contextlib.contextmanager
def abort_on_error(comm, expected=()):
    """End the whole MPI job if this rank raises.

    Exceptions of the ``expected`` types are raised on every rank at once (the
    caller made sure of that), so they propagate for a clean exit.  Anything
    else may be local to this rank: print it, naming the rank, and abort.
    """
    try:
        yield
    except expected:
        raise
    except (Exception, KeyboardInterrupt) as exc:
        if comm.size == 1:
            raise
        sys.stderr.write(f"hpclars: rank {comm.rank} of {comm.size} failed: {type(exc).__name__}: {exc}\n")
        traceback.print_exc(file=sys.stderr)
        sys.stderr.write("hpclars: aborting all ranks (the other ranks' messages, if any, are consequences)\n")
        sys.stderr.flush()
        _wait_for_launcher_to_read(sys.stderr)
        comm.comm.Abort(1)
        os._exit(1)  # Abort does not return; if an MPI ever lets it, still never hang
