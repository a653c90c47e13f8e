"""--overlap-allreduce: one Iallreduce per layer as backward produces it, against the blocking
Allreduce of the whole buffer, with real MPI processes.

At 2 ranks every element is a + b either way, so the runs must be bitwise identical; at 4 ranks
MPI may pick another algorithm (another summation order) for the smaller per-layer messages, so
they must agree to 1e-6.  Per-rank batches of 3 chunks make the layer callbacks come from the
last chunk only, the path where accumulation and communication could interfere.
"""

import numpy as np
import pytest

from _util import assert_ok, read_log, run, train_args
from hpclars import kernels
from hpclars.comm import Comm
from hpclars.model import LAYOUT, LeNet, init_params, layer_slices

STEPS = 20
CHUNK = 64


def _pair(tmp_path, data_dir, ranks):
    logs = {}
    for flag in ("no_overlap_allreduce", "overlap_allreduce"):
        path = tmp_path / f"{flag}.h5"
        assert_ok(run(train_args(path, data_dir, preset="paper", optimizer="lars",
                                 batch_size=3 * CHUNK * ranks, chunk_size=CHUNK, epochs=1,
                                 max_steps=STEPS, **{flag: True}), ranks=ranks))
        logs[flag] = read_log(path)
    blocking, overlapped = logs["no_overlap_allreduce"], logs["overlap_allreduce"]
    assert (blocking.config["overlap_allreduce"], overlapped.config["overlap_allreduce"]) == (False, True)
    assert blocking.status == overlapped.status == "completed"
    assert blocking.world_size == overlapped.world_size == ranks
    assert overlapped.epochs["step"][-1] == STEPS
    # Not vacuous: the steps moved the parameters away from their initial values.
    init = init_params(np.zeros(LAYOUT.size, np.float32), 0)
    moved = np.concatenate([overlapped.params[n].ravel() for n in LAYOUT.names])
    assert np.max(np.abs(moved - init)) > 1e-4
    return blocking, overlapped


def test_overlap_is_bitwise_identical_to_blocking_at_2_ranks(tmp_path, data_dir):
    blocking, overlapped = _pair(tmp_path, data_dir, 2)
    for name in blocking.tensor_names:
        assert np.array_equal(blocking.params[name], overlapped.params[name]), name
    assert np.array_equal(blocking.epochs["step_loss"], overlapped.epochs["step_loss"], equal_nan=True)


def test_overlap_equals_blocking_to_1e_6_at_4_ranks(tmp_path, data_dir):
    blocking, overlapped = _pair(tmp_path, data_dir, 4)
    for name in blocking.tensor_names:
        np.testing.assert_allclose(overlapped.params[name], blocking.params[name], rtol=0, atol=1e-6,
                                   err_msg=name)


def test_layer_callbacks_come_once_per_step_last_layer_first_after_its_gradient_is_final(mnist):
    """Each layer is reported once, fc3 .. conv1, during the last chunk, with its final gradient."""
    flat = init_params(np.zeros(LAYOUT.size, np.float32), 0)
    P = LAYOUT.views(flat)
    images, labels = mnist.train_images[:3 * CHUNK], mnist.train_labels[:3 * CHUNK]
    final = np.zeros_like(flat)
    LeNet(kernels, CHUNK).forward_backward(P, LAYOUT.views(final), images, labels, 1.0)
    grads = np.zeros_like(flat)
    seen = []

    def done(layer):
        s = layer_slices()[layer]
        seen.append((layer, np.array_equal(grads[s], final[s])))

    LeNet(kernels, CHUNK).forward_backward(P, LAYOUT.views(grads), images, labels, 1.0, done)
    assert seen == [(layer, True) for layer in ("fc3", "fc2", "fc1", "conv2", "conv1")]


def test_layer_slices_tile_the_buffer_in_order():
    spans = list(layer_slices().values())
    assert [s.start for s in spans] == [0] + [s.stop for s in spans[:-1]]
    assert spans[-1].stop == LAYOUT.size


def test_overlapped_allreduce_refuses_a_step_with_a_bucket_never_started():
    buf = np.ones(8, np.float32)
    reducer = Comm().overlapped_sum(buf, {"a": slice(0, 4), "b": slice(4, 8)})
    reducer.start("a")
    with pytest.raises(RuntimeError, match="buckets never started: b"):
        reducer.wait()
    reducer.start("b")
    with pytest.raises(RuntimeError, match="bucket 'b' started twice"):
        reducer.start("b")
