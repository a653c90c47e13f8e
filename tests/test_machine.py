"""The machine probes of `hpclars bench machine`: the triad and FMA kernels compute what they
say, bad arguments are refused by name, and the command reports every probe for every rank.
Never a timing: rates are only checked to be positive and finite."""

import json
import math

import numpy as np
import pytest

from _util import assert_ok, run
from hpclars.kernels import probes
from hpclars.machine import PROBES


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("n", [0, 1, 17, 100_003])
def test_triad_is_b_plus_s_times_c(n, nthreads):
    rng = np.random.default_rng(n)
    b, c = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    a = np.full(n, np.nan, np.float32)
    probes.triad(a, b, c, 3.0, nthreads)
    # The build contracts b + s * c into one FMA (-ffp-contract=fast): compare with the exact
    # value, to float32 rounding.
    np.testing.assert_allclose(a, b.astype(np.float64) + 3.0 * c.astype(np.float64), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, args", [
    ("a", (np.zeros(4, np.float64), np.zeros(4, np.float32), np.zeros(4, np.float32))),
    ("b", (np.zeros(4, np.float32), np.zeros(5, np.float32), np.zeros(4, np.float32))),
    ("c", (np.zeros(4, np.float32), np.zeros(4, np.float32), np.zeros(8, np.float32)[::2])),
])
def test_triad_refuses_a_bad_argument_by_name(name, args):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        probes.triad(*args, 1.0)


def test_fma_peak_runs_the_recurrence_it_counts():
    # acc <- acc * m + a, FMA_CHAINS chains x FMA_LANES lanes starting at i + j; one round by hand.
    m, a = np.float32(0.999999), np.float32(1e-6)
    start = np.add.outer(np.arange(probes.FMA_CHAINS), np.arange(probes.FMA_LANES)).astype(np.float32)
    assert probes.FMA_FLOPS_PER_ROUND == 2 * start.size
    assert probes.fma_peak(0) == pytest.approx(float(start.sum()), rel=1e-6)
    assert probes.fma_peak(1) == pytest.approx(float((start * m + a).sum()), rel=1e-6)
    with pytest.raises(ValueError, match="^rounds"):
        probes.fma_peak(-1)


def test_fma_peak_vectors_are_one_register_of_the_build():
    # Wider vectors than the registers are split by the compiler into shuffles and stack
    # traffic: with 16 lanes on an AVX2 build the probe measured 7 GFLOP/s on a 100 GFLOP/s core.
    # (A portable build is SSE's 4 lanes, or AVX's 8 on a CPU with AVX but not AVX2 + FMA.)
    from hpclars.kernels import KERNEL_PATH
    assert probes.FMA_LANES in {"avx512": {16}, "avx2": {8}, "portable": {4, 8}}.get(KERNEL_PATH, {4, 8, 16})


def test_bench_machine_reports_every_probe_for_every_rank():
    proc = run(["bench", "machine", "--json", "--seconds", "0.05", "--repeats", "1", "--triad-mib", "4"], ranks=2)
    assert_ok(proc)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ranks"] == 2 and len(report["per_rank"]) == 2
    for rates in report["per_rank"] + [report["median"], report["min"]]:
        assert set(rates) == set(PROBES)
        assert all(math.isfinite(v) and v > 0 for v in rates.values())


def test_bench_machine_refuses_a_non_positive_time():
    proc = run(["bench", "machine", "--seconds", "0"])
    assert proc.returncode != 0 and "--seconds" in proc.stderr and "Traceback" not in proc.stderr


def test_traffic_model_counts_the_models_flops_and_activation_sizes():
    from hpclars import kernels
    from hpclars.bench import TRAIN_FLOPS
    from hpclars.machine import traffic_per_image
    from hpclars.model import LeNet

    table = traffic_per_image()
    assert sum(flops for *_, flops in table) == TRAIN_FLOPS
    m = LeNet(kernels, chunk_size=1)
    rows = {name: (r, w) for name, r, w, _ in table}
    # Each fused forward kernel writes what the model allocates for one image (index maps in uint8).
    assert rows["conv1 + pool1 + relu1 forward"] == (m.x.nbytes, m.p1.nbytes + m.i1.nbytes)
    assert rows["conv2 + pool2 + relu2 forward"] == (m.p1.nbytes, m.p2.nbytes + m.i2.nbytes)
    # The model keeps no pre-pool activations: they stay in the kernels' scratch.
    assert not hasattr(m, "a1") and not hasattr(m, "da2")
    assert rows["conv2 backward (relu, pool, dw, db, dx)"] == (
        m.p1.nbytes + m.p2.nbytes + m.dp2.nbytes + m.i2.nbytes, m.dp1.nbytes)
