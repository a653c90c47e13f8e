"""The alpha-beta model of `hpclars bench allreduce`: the fit, the latency rounds, the output
that analysis/comm_table.py reads.  Never a timing: the fit is checked on synthetic times."""

import sys
from pathlib import Path

import numpy as np
import pytest

from _util import assert_ok, run
from hpclars.bench import LINK_LATENCY, fit_alpha_beta, latency_rounds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
import comm_table  # noqa: E402


def test_fit_recovers_alpha_and_beta_from_exact_times():
    n = np.array([4096, 65536, 262144, 431160, 1048576, 4194304])
    alpha, beta = 30e-6, 1 / 120e6          # 30 us, 120 MB/s
    a, b = fit_alpha_beta(n, alpha + beta * n)
    assert a == pytest.approx(alpha, rel=1e-6) and b == pytest.approx(beta, rel=1e-9)


def test_fit_refuses_a_single_message_size():
    with pytest.raises(ValueError, match="at least two different message sizes"):
        fit_alpha_beta([4096, 4096], [1e-5, 2e-5])


@pytest.mark.parametrize("size, rounds", [(1, 0), (2, 2), (3, 4), (4, 4), (8, 6), (16, 8)])
def test_latency_rounds_are_2_ceil_log2_p(size, rounds):
    assert latency_rounds(size) == rounds


def test_bench_allreduce_prints_modelled_rows_that_add_the_link_latency(tmp_path):
    proc = run(["bench", "allreduce", "--iters", "5", "--warmup", "1", "--sizes", "1024,65536",
                "--batch-size", "64"], ranks=2)
    assert_ok(proc)
    out = tmp_path / "allreduce.txt"
    out.write_text(proc.stdout)
    assert "MODELLED, not measured" in proc.stdout
    measured, modelled = comm_table.read_allreduce(out)
    assert measured > 0 and set(modelled) == set(LINK_LATENCY)
    fit = float(next(line.split()[-2] for line in proc.stdout.splitlines()
                     if line.strip().startswith("fit (this network)")))
    for link, (low, high) in LINK_LATENCY.items():
        lo, hi = (float(v) for v in modelled[link].split("-"))
        assert lo == pytest.approx(fit + latency_rounds(2) * 1e6 * low, abs=1)
        assert hi == pytest.approx(fit + latency_rounds(2) * 1e6 * high, abs=1)
