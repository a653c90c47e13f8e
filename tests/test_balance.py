"""hpclars.balance: the split of the global batch over the ranks, and its validation.

The trainer's use of it under real MPI (unequal shares train what one rank trains, the re-split
by measured speed) is in test_mpi.py.
"""

import numpy as np
import pytest

from _util import run, train_args
from hpclars.balance import RankShares, parse_weights, split
from hpclars.comm import Comm


@pytest.mark.parametrize("batch,weights,expected", [
    (64, [1, 1], [32, 32]),
    (64, [3, 1], [48, 16]),
    (10, [1, 1, 1], [4, 3, 3]),         # the left-over image to the lowest rank among equal remainders
    (100, [1, 2, 3, 4], [10, 20, 30, 40]),
    (7, [1, 1, 1, 1, 1, 1, 1], [1] * 7),
    (5, [1000, 1, 1], [3, 1, 1]),       # every rank keeps an image
    (1000, [2.5, 1.0], [714, 286]),     # 714.29 and 285.71: the larger remainder gets the image
])
def test_split_is_proportional_and_sums_to_the_batch(batch, weights, expected):
    shares = split(batch, weights)
    assert shares.dtype == np.int64
    assert shares.tolist() == expected
    assert shares.sum() == batch and shares.min() >= 1


@pytest.mark.parametrize("batch,weights,granule,expected", [
    (512, [1, 1], 16, [256, 256]),
    (512, [2, 1], 16, [336, 176]),      # 341.3 and 170.7 in units of 16: 21 and 11
    (520, [1, 2], 16, [176, 344]),      # 32 units: 10.7 and 21.3 -> 11 and 21; 8 images left: the faster rank
    (64, [7, 1], 16, [48, 16]),         # every rank keeps a granule
])
def test_split_in_granules(batch, weights, granule, expected):
    shares = split(batch, weights, granule)
    assert shares.tolist() == expected and shares.sum() == batch


def test_rank_shares_come_in_granules_where_each_rank_has_two():
    assert RankShares(512, 2, [2, 1]).granule == 16 and RankShares(512, 2, [2, 1]).shares.tolist() == [336, 176]
    assert RankShares(64, 2).granule == 16 and RankShares(60, 2).granule == 1
    assert RankShares(60, 2, [2, 1]).shares.tolist() == [40, 20]


def test_split_stays_within_one_image_of_proportional():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 17))
        batch = int(rng.integers(n, 5000))
        w = rng.uniform(0.1, 10.0, n)
        shares = split(batch, w)
        assert shares.sum() == batch and shares.min() >= 1
        exact = batch * w / w.sum()
        assert np.all(np.abs(shares - exact) < 1 + 1e-9) or exact.min() < 1


@pytest.mark.parametrize("batch,weights,message", [
    (64, [1, 0], "rank weights must be finite and > 0"),
    (64, [1, float("nan")], "rank weights must be finite and > 0"),
    (64, [], "rank weights must be finite and > 0"),
    (2, [1, 1, 1], "a global batch of 2 cannot give each of 3 ranks an image"),
])
def test_split_refuses_bad_input(batch, weights, message):
    with pytest.raises(ValueError, match=message):
        split(batch, weights)


def test_parse_weights():
    assert parse_weights("") is None
    assert parse_weights("2,1, 1.5") == [2.0, 1.0, 1.5]
    for bad in ("2,,1", "a,b", "1,-1", "1,inf"):
        with pytest.raises(ValueError):
            parse_weights(bad)


def test_equal_shares_keep_the_equal_path_and_its_batch():
    s = RankShares(256, 4)
    assert s.equal and s.shares.tolist() == [64] * 4 and s.offsets.tolist() == [0, 64, 128, 192]
    assert s.harmonic_mean == 64.0
    u = RankShares(256, 2, weights=[3, 1])
    assert not u.equal and u.shares.tolist() == [192, 64] and u.offsets.tolist() == [0, 192]
    assert u.harmonic_mean == pytest.approx(2 / (1 / 192 + 1 / 64))  # 96: below the mean share 128


def test_rebalance_on_one_rank_keeps_the_whole_batch():
    """One real process: the window is summed (a no-op) and the one share stays the batch."""
    s = RankShares(128, 1, every=3)
    assert [s.due(t) for t in range(1, 7)] == [False, False, True, False, False, True]
    s.record(128, 0.01)
    assert s.rebalance(Comm()) is False and s.shares.tolist() == [128]
    assert not RankShares(128, 1).due(3)  # every=0: never


@pytest.mark.parametrize("flags,message", [
    (dict(rank_weights="1,0"), "--rank-weights: rank weights must be finite and > 0, got '1,0'"),
    (dict(rank_weights="fast,slow"), "--rank-weights: rank weights must be comma-separated numbers"),
    (dict(rank_weights="2,1"), "--rank-weights: 2 weight(s) for 1 rank(s); give one per rank"),
    (dict(balance_every=-1), "--balance-every: must be an integer >= 0 (0: off), got -1"),
])
def test_bad_balance_flags_get_one_line_before_any_work(tmp_path, data_dir, flags, message):
    proc = run(train_args(tmp_path / "x.h5", data_dir, epochs=1, **flags))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "x.h5").exists()
