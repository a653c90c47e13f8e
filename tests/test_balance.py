"""hpclars.balance: the split of the global batch over the ranks, and its validation.

The trainer's use of it under real MPI (unequal shares train what one rank trains, the re-split
by measured speed) is in test_mpi.py.
"""

import numpy as np
import pytest

from _util import run, train_args
from hpclars.balance import RankShares, parse_weights, resplit, split
from hpclars.comm import Comm
from hpclars.stats import noise_terms


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
    (64, [7, 1], 16, [48, 16]),         # every rank keeps a granule
])
def test_split_in_granules(batch, weights, granule, expected):
    shares = split(batch, weights, granule)
    assert shares.tolist() == expected and shares.sum() == batch
    with pytest.raises(ValueError, match="a granule of 16 does not divide the global batch 520"):
        split(520, weights, 16)


@pytest.mark.parametrize("batch,ranks,granule,shares", [
    (512, 2, 16, [256, 256]),
    (64, 2, 16, [32, 32]),
    (1000, 4, 1, [250] * 4),            # 250 is no multiple of 16: granule 1, still equal
    (520, 2, 1, [260, 260]),
    (60, 2, 1, [30, 30]),               # under 2 granules per rank
    (4000, 16, 1, [250] * 16),
    (63, 2, 1, [32, 31]),               # not divisible: one image apart
])
def test_equal_weights_give_equal_shares_whatever_the_granule(batch, ranks, granule, shares):
    s = RankShares(batch, ranks, every=10)
    assert s.granule == granule and s.shares.tolist() == shares
    assert RankShares(batch, ranks, [1.0] * ranks).shares.tolist() == shares


def test_rank_shares_refuse_a_weight_count_other_than_the_ranks():
    with pytest.raises(ValueError, match="3 rank weight"):
        RankShares(64, 2, [1, 1, 1])


def test_resplit_follows_speed_and_ignores_small_gains():
    # Rank 1 at half speed: 256/256 -> 336/176 (granules of 16), a 2/3 -> ~1/2 shorter step.
    assert resplit([256, 256], [2560, 1280], [1.0, 1.0], 16).tolist() == [336, 176]
    assert resplit([256, 256], [2560, 1280], [1.0, 1.0], 1).tolist() == [341, 171]
    # 3% apart: the best split is at most 3% faster, under MIN_GAIN (5%): keep the shares.
    assert resplit([256, 256], [2560, 2560], [1.0, 1.03], 1) is None
    # Already proportional: nothing to gain.
    assert resplit([336, 176], [3360, 1760], [1.0, 1.0], 16) is None
    # Back to equal when the slow rank recovers.
    assert resplit([336, 176], [3360, 1760], [1.0, 0.5], 16).tolist() == [256, 256]
    # A rank that timed nothing gives nothing to go by.
    assert resplit([256, 256], [0, 2560], [0.0, 1.0]) is None


def test_noise_scale_terms_are_unbiased_with_unequal_shares():
    """McCandlish et al.'s estimators with the per-rank means of unequal shares b_r: unbiased
    with b = the shares' harmonic mean (what the trainer passes), biased with the mean share."""
    rng = np.random.default_rng(1)
    d, shares = 40, np.array([48, 16])
    G, sigma = rng.normal(size=d), 1.5      # per-example gradient G + N(0, sigma^2 I)
    true_g2, true_tr = float(G @ G), d * sigma ** 2
    B = int(shares.sum())
    est = {"harmonic": [], "mean": []}
    for _ in range(4000):
        per_example = G + sigma * rng.normal(size=(B, d))
        parts = np.split(per_example, np.cumsum(shares)[:-1])
        local_sq_mean = np.mean([np.sum(p.mean(axis=0) ** 2) for p in parts])
        global_sq = float(np.sum(per_example.mean(axis=0) ** 2))
        est["harmonic"].append(noise_terms(local_sq_mean, global_sq, RankShares(B, 2, shares).harmonic_mean, B))
        est["mean"].append(noise_terms(local_sq_mean, global_sq, B / 2, B))
    g2, tr = np.mean(est["harmonic"], axis=0)
    assert abs(g2 - true_g2) < 0.02 * true_g2 and abs(tr - true_tr) < 0.05 * true_tr, (g2, tr, true_g2, true_tr)
    g2_wrong, tr_wrong = np.mean(est["mean"], axis=0)
    assert abs(tr_wrong - true_tr) > 0.2 * true_tr  # the mean share would overstate tr(Sigma)


def test_the_first_step_is_not_timed_and_a_short_window_waits():
    """A re-split needs K // 2 timed steps since the last; the first step after a start or a
    resume is not timed (cold caches, page faults)."""
    s = RankShares(128, 1, every=4)
    s.record(128, 5.0)                   # step 1: cold, left out
    assert s.window == (0, 0, 0.0)
    for _ in range(3):                   # steps 2-4
        s.record(128, 0.01)
    assert s.window == (3, 384, pytest.approx(0.03))
    assert not s.due(3) and s.due(4)
    r = RankShares(128, 1, every=4)      # a resume after step 6
    r.record(128, 0.01)                  # step 7: cold
    r.record(128, 0.01)                  # step 8: one timed step, under 4 // 2
    assert not r.due(8)


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
    due = []
    for t in range(1, 8):
        s.record(128, 0.01)
        due.append(s.due(t))
        if due[-1]:
            assert s.rebalance(Comm()) is False and s.shares.tolist() == [128]
            assert s.window == (0, 0, 0.0)  # a new window
    assert due == [False, False, True, False, False, True, False]
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
