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
images, forward and backward; not the first step after a start or resume), and every K steps
the ranks sum a (2, N) array of the window's images and seconds, one small Allreduce; rank r's
speed is then its images over its seconds, and the new shares are proportional to the speeds
(:func:`resplit`).  A step is as slow as max_r shares[r] / speed[r] (the compute: the optimizer
step, the same on every rank, is not balanced); new shares are taken only if they make that at
least ``MIN_GAIN`` (5%) shorter, and they come in multiples of 16 images where the equal split
does (``RankShares.granule``), so that timing noise does not move a few images back and forth
(with the first version, any integer shares and a 2% threshold, two ranks on two quiet vCPUs
read 4-7 points lower efficiency than equal shares; BENCHMARKS.md session 23).  Every rank computes the same shares from
the same summed array.  This is static load balancing of heterogeneous data parallelism (a
batch share per worker in proportion to its measured throughput), re-measured as the machine
drifts; it changes no hyperparameter.

Deliberately left out: shares for evaluation (it is a third of an epoch's cost and split
equally), and keeping measured shares across a resume (a resumed run starts from the initial
shares and measures again).
"""

import numpy as np

MIN_GAIN = 0.05  # re-split only if the predicted step is at least 5% faster
GRANULE = 16     # shares in multiples of 16 images where each rank has at least 32


def split(global_batch, weights, granule=1):
    """Integer shares of ``global_batch`` in proportion to ``weights``.

    global_batch: int >= len(weights) * granule.  weights: 1-D array-like of N > 0 finite floats
    (relative speeds).  granule: int >= 1 dividing global_batch, the unit the shares come in.
    Returns int64 (N,) summing to ``global_batch``, each at least ``granule``: global_batch //
    granule units shared out by Hamilton's largest-remainder method (the floors of the
    proportional shares, each raised to 1, then the units left over one each to the largest
    remainders, lowest rank first among equal ones), so equal weights give equal shares where N
    divides the units, else shares one unit apart.  Raises ValueError naming a bad weight, a
    granule that does not divide the batch, or a batch too small for N ranks.
    """
    if granule > 1:
        if global_batch % granule:
            raise ValueError(f"a granule of {granule} does not divide the global batch {global_batch}")
        return granule * split(global_batch // granule, weights)
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
    ``granule``: :data:`GRANULE` where B / N is a multiple of it and at least twice it (so that
    equal shares are granular), else 1.  Shares come in multiples of the granule because the
    AVX-512 kernels take 16 images at a time (conv1's fused passes, evaluation's Winograd) and a
    chunk's last N mod 16 image by image; it also keeps timing noise from moving a few images
    back and forth.  Raises ValueError if ``weights`` is not one per rank.
    """

    def __init__(self, global_batch, n_ranks, weights=None, every=0):
        self.global_batch, self.n_ranks, self.every = int(global_batch), int(n_ranks), int(every)
        if weights is not None and len(weights) != self.n_ranks:
            raise ValueError(f"{len(weights)} rank weight(s) for {self.n_ranks} rank(s); give one per rank")
        per_rank, rest = divmod(self.global_batch, self.n_ranks)
        self.granule = GRANULE if rest == 0 and per_rank % GRANULE == 0 and per_rank >= 2 * GRANULE else 1
        self._set(self._split(np.ones(n_ranks) if weights is None else weights))
        self._steps, self._images, self._seconds = -1, 0, 0.0  # -1: the first step is not timed

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

    @property
    def window(self):
        """(timed steps, images, seconds) of this rank since the last re-split (or the start)."""
        return max(self._steps, 0), self._images, self._seconds

    def record(self, images, seconds):
        """Add one step of this rank's own work: ``images`` (int) in ``seconds`` (float).  The
        first step after the shares were made (a start or a resume) is left out: cold caches,
        page faults and lazy allocation."""
        if self._steps >= 0:
            self._images += images
            self._seconds += seconds
        self._steps += 1

    def due(self, step):
        """True after optimizer step ``step`` (1-based) if a re-split is due: every K steps, with
        at least K // 2 steps timed since the last (a resume's first window may be short).  The
        same on every rank: each records every step."""
        return self.every > 0 and step % self.every == 0 and self._steps >= max(self.every // 2, 1)

    def rebalance(self, comm):
        """Collective: sum every rank's window, take :func:`resplit`'s shares if any, restart the
        window.  comm: :class:`hpclars.comm.Comm`.  Returns True if the shares changed.  Every
        rank ends with the same shares: each entry of the summed (2, N) array has one nonzero
        term, so the sum is exact and the same everywhere."""
        window = np.zeros((2, self.n_ranks))
        window[:, comm.rank] = self._images, self._seconds
        comm.allreduce_sum_(window)
        self._steps, self._images, self._seconds = 0, 0, 0.0
        new = resplit(self.shares, *window, self.granule)
        if new is None:
            return False
        self._set(new)
        return True


def resplit(shares, images, seconds, granule=1, min_gain=MIN_GAIN):
    """The shares by measured speed, or None if they would not shorten the step by ``min_gain``.

    shares: int (N,) the current split; images, seconds: float (N,) each rank's images and
    seconds over the window; granule: as :func:`split`.  A rank's speed is images / seconds; a
    synchronous step takes max_r shares[r] / speed[r]; the new split is :func:`split` of the
    global batch by the speeds, taken only if its step is at least ``min_gain`` shorter.  None
    also where a rank has no timed image (nothing to go by).
    """
    images, seconds = np.asarray(images, dtype=np.float64), np.asarray(seconds, dtype=np.float64)
    if np.any(images <= 0) or np.any(seconds <= 0):
        return None
    speed = images / seconds
    new = split(int(np.sum(shares)), speed, granule)
    if np.max(new / speed) > (1.0 - min_gain) * np.max(np.asarray(shares) / speed):
        return None
    return new
