"""Each rank's share of the global batch: equal, fixed weights, or re-split by measured speed.

Synchronous data parallelism waits every step for the slowest rank.  Where the ranks' cores run
at different speeds (the lent 16-core node's cores fell into three groups, 67-129 GFLOP/s of
sgemm, with all 16 busy; BENCHMARKS.md session 11), equal shares hold every rank to the slowest
core's pace.  :class:`RankShares` gives rank r ``shares[r]`` images of each global batch, the
contiguous slice ``offsets[r] : offsets[r] + shares[r]`` of the batch's indices, so the global
batch is the same set of images however it is split, and the gradient the same mean over it (to
float rounding: the sums run in other chunks):

    g = (1/B) sum_r sum_{i in rank r's slice} grad loss_i,      B = sum_r shares[r]

With equal shares the trainer keeps its old arithmetic (scale 1/b, then the Allreduce's sum
divided by N), bit for bit; with unequal ones each rank scales by 1/B and the sum is the mean.

Re-splitting (``every`` K > 0 steps): each rank times its own part of every step (gathering its
images, forward and backward), and every K steps the ranks sum a (2, N) array of the window's
images and seconds, one small Allreduce; rank r's speed is then its images over its seconds, and
the new shares are proportional to the speeds (:func:`split`).  A step is as slow as
max_r shares[r] / speed[r]; new shares are taken only if they make that at least ``MIN_GAIN``
(5%) faster, so timing noise does not move them back and forth (with 2%, two ranks on two
quiet cores of the 2-vCPU VM lost 4-7% of their images/s to such moves, BENCHMARKS.md
session 23), and they come in multiples of 16 images (``RankShares.granule``).  Every rank computes the same shares
from the same summed array.  This is the static load balancing of heterogeneous data parallelism
(a batch share per worker in proportion to its measured throughput), re-measured as the machine
drifts; it changes no hyperparameter.

Deliberately left out: shares for evaluation (it is a third of an epoch's cost and split
equally), and keeping measured shares across a resume (a resumed run starts from the initial
shares and measures again).
"""

import numpy as np

MIN_GAIN = 0.05  # re-split only if the predicted step is at least 5% faster
GRANULE = 16     # shares in multiples of 16 images where each rank has at least 32


def split(global_batch, weights, granule=1):
    """Integer shares of ``global_batch`` in proportion to ``weights``, each at least ``granule``.

    global_batch: int >= len(weights) * granule.  weights: 1-D array-like of N > 0 finite floats
    (relative speeds).  granule: int >= 1, the unit the shares come in.  Returns int64 (N,)
    summing to ``global_batch``: global_batch // granule units shared out by Hamilton's
    largest-remainder method (the floors of the proportional shares, each raised to 1, then the
    units left over one each to the largest remainders, lowest rank first among equal ones), so
    equal weights give equal shares where N divides the units; the global_batch % granule images
    left go to the rank of the largest weight.  Raises ValueError naming a bad weight or a batch
    too small for N ranks.
    """
    if granule > 1:
        w = np.asarray(weights, dtype=np.float64)
        shares = granule * split(global_batch // granule, w)
        shares[int(np.argmax(w))] += global_batch % granule
        return shares
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not len(w) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"rank weights must be finite and > 0, got {list(np.atleast_1d(w))}")
    n = len(w)
    if not (isinstance(global_batch, (int, np.integer)) and global_batch >= n):
        raise ValueError(f"a global batch of {global_batch} cannot give each of {n} ranks an image")
    exact = global_batch * w / w.sum()
    shares = np.maximum(np.floor(exact).astype(np.int64), 1)
    left = global_batch - int(shares.sum())
    if left > 0:
        order = np.argsort(-(exact - shares), kind="stable")
        shares[order[:left]] += 1
    while left < 0:  # the raise to 1 overshot: take from the largest shares
        shares[int(np.argmax(shares))] -= 1
        left += 1
    return shares


def parse_weights(text):
    """``"2,1,1"`` -> [2.0, 1.0, 1.0]; "" -> None.  Raises ValueError naming the bad entry."""
    if not text:
        return None
    try:
        weights = [float(item) for item in text.split(",")]
    except ValueError:
        raise ValueError(f"rank weights must be comma-separated numbers, got {text!r}") from None
    if not all(np.isfinite(weights)) or min(weights) <= 0:
        raise ValueError(f"rank weights must be finite and > 0, got {text!r}")
    return weights


class RankShares:
    """The current split of the global batch over the ranks, and its re-measurement.

    global_batch: int B; n_ranks: int N <= B; weights: None (equal) or N relative speeds, the
    starting split; every: int K >= 0, steps between re-splits by measured speed (0: never).
    Attributes: ``shares`` and ``offsets`` (int64 (N,)), ``equal`` (bool: all shares equal),
    ``granule``: :data:`GRANULE` where B // N >= 2 :data:`GRANULE`, else 1.  Shares come in
    multiples of the granule because the AVX-512 kernels take 16 images at a time (conv1's fused
    passes, evaluation's Winograd) and a chunk's last N mod 16 image by image; it also keeps
    timing noise from moving a few images back and forth.
    """

    def __init__(self, global_batch, n_ranks, weights=None, every=0):
        self.global_batch, self.n_ranks, self.every = int(global_batch), int(n_ranks), int(every)
        self.granule = GRANULE if self.global_batch // self.n_ranks >= 2 * GRANULE else 1
        self._set(self._split(np.ones(n_ranks) if weights is None else weights))
        self._images = 0
        self._seconds = 0.0

    def _split(self, weights):
        return split(self.global_batch, weights, self.granule)

    def _set(self, shares):
        self.shares = np.asarray(shares, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.shares)[:-1]])
        self.equal = bool(np.all(self.shares == self.shares[0]))

    @property
    def harmonic_mean(self):
        """N / sum(1 / shares): the per-rank batch b of the gradient noise scale's estimator.

        The mean over ranks of |g_{b_r}|^2 has expectation |G|^2 + tr(Sigma) mean_r(1 / b_r)
        (McCandlish et al. 2018, App. A, for each rank's batch b_r), so it stands in for b
        there (:func:`hpclars.stats.noise_terms`); equal shares give b, exactly."""
        if self.equal:
            return float(self.shares[0])
        return self.n_ranks / float(np.sum(1.0 / self.shares))

    def record(self, images, seconds):
        """Add one step of this rank's own work: ``images`` (int) in ``seconds`` (float)."""
        self._images += images
        self._seconds += seconds

    def due(self, step):
        """True after optimizer step ``step`` (1-based) if a re-split is due; the same on every rank."""
        return self.every > 0 and step % self.every == 0

    def rebalance(self, comm):
        """Collective: sum every rank's window, re-split if that is ``MIN_GAIN`` faster, restart
        the window.  comm: :class:`hpclars.comm.Comm`.  Returns True if the shares changed."""
        window = np.zeros((2, self.n_ranks))
        window[:, comm.rank] = self._images, self._seconds
        comm.allreduce_sum_(window)
        self._images, self._seconds = 0, 0.0
        images, seconds = window
        if np.any(images <= 0) or np.any(seconds <= 0):
            return False
        speed = images / seconds
        new = self._split(speed)
        if np.max(new / speed) > (1.0 - MIN_GAIN) * np.max(self.shares / speed):
            return False
        self._set(new)
        return True
