"""Tests for hpclars.data: the real MNIST, broken copies of it, and downloads from a local server.

The real files come from where conftest.py finds them ($HPCLARS_DATA, else
../shared/data/mnist beside the project, else the per-user cache); they are only ever read.
Every broken or downloaded copy lives in a pytest tmp dir.  No test reaches the network: an
autouse fixture refuses every connection that is not to 127.0.0.1.
"""

import functools
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from hpclars import data
from hpclars.data import FILES, DataError, load_mnist, read_idx, resolve_data_dir, to_float

from conftest import DATA_DIR as SHARED  # noqa: E402  ($HPCLARS_DATA, ../shared, or the cache)

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
LABELS = "t10k-labels-idx1-ubyte"
IMAGES = "t10k-images-idx3-ubyte"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family not in (socket.AF_INET, socket.AF_INET6) or address[0] in ("127.0.0.1",):
            return real_connect(self, address)
        raise AssertionError(f"test tried to reach the network: {address}")

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(SHARED, download=False)


def _copy_shared(dst):
    for name in FILES:
        shutil.copyfile(SHARED / f"{name}.gz", dst / f"{name}.gz")
    return dst


def _raw(name):
    return gzip.decompress((SHARED / f"{name}.gz").read_bytes())


def _error(tmp_path, **kwargs):
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=False, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the real data -------------------------------------------------------------------------

def test_real_mnist_shapes_dtypes_and_labels(mnist):
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_labels.shape == (60000,)
    assert mnist.test_labels.shape == (10000,)
    for images in (mnist.train_images, mnist.test_images):
        assert images.dtype == np.uint8
        assert images.flags.c_contiguous
        assert images.max() == 255 and images.min() == 0
    for labels in (mnist.train_labels, mnist.test_labels):
        assert labels.dtype == np.int32
        assert labels.min() == 0 and labels.max() == 9
    train_hist = np.bincount(mnist.train_labels, minlength=10)
    assert train_hist.sum() == 60000
    assert all(5400 <= c <= 6800 for c in train_hist)
    assert train_hist.tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.test_labels, minlength=10).tolist() == TEST_COUNTS


def test_arrays_are_read_only(mnist):
    for arr in (mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels):
        assert not arr.flags.writeable
    with pytest.raises(ValueError):
        mnist.train_labels[0] = 3


def test_to_float_scales_into_the_callers_buffer(mnist):
    batch = mnist.train_images[:64]
    out = np.full((64, 1, 28, 28), -1.0, dtype=np.float32)
    assert to_float(batch, out) is out
    assert out.min() == 0.0 and out.max() == 1.0
    # One rounded multiplication by float32(1/255): within one ulp of the exact quotient, and
    # exactly what the model feeds its first layer.
    np.testing.assert_array_max_ulp(out[:, 0], (batch.astype(np.float64) / 255).astype(np.float32), maxulp=1)
    np.testing.assert_array_equal(out[:, 0], batch * np.float32(1 / 255))


def test_to_float_rejects_mismatched_buffers(mnist):
    batch = mnist.test_images[:8]
    with pytest.raises(ValueError, match=r"out must be float32 or float64 \(8, 1, 28, 28\)"):
        to_float(batch, np.empty((8, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match="out must be float32 or float64"):
        to_float(batch, np.empty((8, 1, 28, 28), dtype=np.float16))
    with pytest.raises(ValueError, match="images must be uint8"):
        to_float(batch.astype(np.float32), np.empty((8, 1, 28, 28), dtype=np.float32))


def test_raw_copies_load_like_gz(tmp_path, mnist):
    for name in FILES:
        (tmp_path / name).write_bytes(_raw(name))
    raw = load_mnist(tmp_path, download=False)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(raw, field), getattr(mnist, field))
        assert getattr(raw, field).dtype == getattr(mnist, field).dtype


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    (tmp_path / "labels.gz").write_bytes(_raw(LABELS))           # raw bytes, misleading name
    (tmp_path / "labels.idx").write_bytes((SHARED / f"{LABELS}.gz").read_bytes())  # gzip, no .gz
    a, b = read_idx(tmp_path / "labels.gz"), read_idx(tmp_path / "labels.idx")
    assert a.shape == (10000,) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


# --- broken copies ---------------------------------------------------------------------------

def test_truncated_gz_file(tmp_path):
    _copy_shared(tmp_path)
    path = tmp_path / f"{IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:100000])
    message = _error(tmp_path)
    assert str(path) in message and "truncated gzip stream" in message
    assert "delete it to re-download" in message


def test_truncated_raw_file(tmp_path):
    _copy_shared(tmp_path)
    (tmp_path / f"{LABELS}.gz").unlink()
    path = tmp_path / LABELS
    path.write_bytes(_raw(LABELS)[:5000])
    message = _error(tmp_path)
    assert str(path) in message
    assert "truncated, header says shape (10000,) (10008 bytes) but the content has 5000 bytes" \
        in message


def test_flipped_byte_is_an_md5_mismatch_unless_verify_is_off(tmp_path):
    _copy_shared(tmp_path)
    (tmp_path / f"{IMAGES}.gz").unlink()
    content = bytearray(_raw(IMAGES))
    content[5000] ^= 0xFF
    path = tmp_path / IMAGES
    path.write_bytes(bytes(content))
    message = _error(tmp_path)
    assert str(path) in message
    assert f"content MD5 mismatch (got {hashlib.md5(content).hexdigest()}, " \
           f"expected {FILES[IMAGES][1]})" in message
    assert load_mnist(tmp_path, download=False, verify=False).test_images.shape == (10000, 28, 28)


def test_bad_magic(tmp_path):
    _copy_shared(tmp_path)
    content = bytearray(_raw(LABELS))
    content[2] = 0x0D  # float type instead of unsigned byte
    path = tmp_path / f"{LABELS}.gz"
    path.write_bytes(gzip.compress(bytes(content)))
    message = _error(tmp_path, verify=False)
    assert str(path) in message and "bad magic 0x00000d01" in message


def test_garbage_gzip(tmp_path):
    _copy_shared(tmp_path)
    path = tmp_path / f"{LABELS}.gz"
    path.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 8)
    message = _error(tmp_path)
    assert str(path) in message and "corrupt gzip data" in message


def test_label_out_of_range(tmp_path):
    _copy_shared(tmp_path)
    content = bytearray(_raw(LABELS))
    content[8 + 17] = 10
    path = tmp_path / f"{LABELS}.gz"
    path.write_bytes(gzip.compress(bytes(content)))
    message = _error(tmp_path, verify=False)
    assert str(path) in message and "label 10 out of range 0..9" in message


def test_files_swapped_have_the_wrong_shape(tmp_path):
    _copy_shared(tmp_path)
    shutil.copyfile(SHARED / "train-labels-idx1-ubyte.gz", tmp_path / f"{LABELS}.gz")
    message = _error(tmp_path, verify=False)
    assert str(tmp_path / f"{LABELS}.gz") in message
    assert "IDX shape (60000,), expected (10000,)" in message


def test_missing_file_without_download_never_downloads(tmp_path, monkeypatch):
    _copy_shared(tmp_path)
    (tmp_path / f"{LABELS}.gz").unlink()

    def forbidden(*args, **kwargs):
        raise AssertionError("download attempted with download=False")

    monkeypatch.setattr(data, "download_mnist", forbidden)
    monkeypatch.setattr(data.urllib.request, "urlopen", forbidden)
    message = _error(tmp_path)
    assert str(tmp_path / LABELS) in message
    assert f"missing (neither {LABELS} nor {LABELS}.gz)" in message
    assert "HPCLARS_DATA" in message


def test_missing_directory_without_download_is_not_created(tmp_path):
    where = tmp_path / "nowhere"
    message = _error(where)
    assert f"{where}: directory does not exist" in message
    assert not where.exists()


# --- resolve_data_dir --------------------------------------------------------------------------

def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCLARS_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("HPCLARS_DATA")
    assert resolve_data_dir(None) == tmp_path / "xdg" / "hpclars" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "hpclars" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec says: ignore it
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "hpclars" / "mnist"


# --- downloads from a local mirror ----------------------------------------------------------------

@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server over tmp_path/'srv', holding copies of the shared .gz files.

    Yields (url, served directory, gz_md5): the shared files were recompressed, so their .gz MD5s
    are not the published mirror MD5s; gz_md5 is the table of what this mirror really serves.
    """
    served = tmp_path / "srv"
    served.mkdir()
    _copy_shared(served)
    gz_md5 = {name: hashlib.md5((served / f"{name}.gz").read_bytes()).hexdigest()
              for name in FILES}

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served, gz_md5
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_verifies_and_loads(tmp_path, mirror, mnist):
    url, _, gz_md5 = mirror
    dest = tmp_path / "new" / "cache"  # does not exist yet
    data.download_mnist(dest, mirrors=[url + "absent/", url], gz_md5=gz_md5)
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{n}.gz" for n in FILES)
    got = load_mnist(dest, download=False)
    np.testing.assert_array_equal(got.train_images, mnist.train_images)
    np.testing.assert_array_equal(got.test_labels, mnist.test_labels)


def test_load_downloads_only_what_is_missing(tmp_path, mirror, monkeypatch):
    url, _, gz_md5 = mirror
    dest = tmp_path / "partial"
    dest.mkdir()
    # gzip bytes under the raw name: found as present, and read by content, not by name
    shutil.copyfile(SHARED / "train-images-idx3-ubyte.gz", dest / "train-images-idx3-ubyte")
    requested = []
    real_fetch = data._fetch

    def fetch(url, target, name, expected_gz, timeout):
        requested.append(name)
        return real_fetch(url, target, name, expected_gz, timeout)

    monkeypatch.setattr(data, "_fetch", fetch)
    monkeypatch.setattr(data, "MIRRORS", (url,))
    real_download = data.download_mnist
    monkeypatch.setattr(data, "download_mnist",
                        lambda root: real_download(root, mirrors=(url,), gz_md5=gz_md5))
    assert load_mnist(dest).train_labels.shape == (60000,)
    assert sorted(requested) == sorted(n for n in FILES if n != "train-images-idx3-ubyte")


def test_download_checks_the_published_gz_md5_by_default(tmp_path, mirror):
    url, _, _ = mirror
    dest = tmp_path / "dest"
    with pytest.raises(DataError) as info:
        data.download_mnist(dest, mirrors=[url])
    message = str(info.value)
    name = next(iter(FILES))
    assert f"{dest / name}.gz: download failed from all 1 mirrors ({url})" in message
    assert ".gz MD5 mismatch (got " in message and f"expected {FILES[name][2]})" in message
    assert list(dest.iterdir()) == []  # no partial or temporary file left behind


def test_corrupt_mirror_is_rejected(tmp_path, mirror):
    url, served, gz_md5 = mirror
    path = served / f"{LABELS}.gz"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    dest = tmp_path / "dest"
    with pytest.raises(DataError) as info:
        data.download_mnist(dest, mirrors=[url], gz_md5=gz_md5)
    message = str(info.value)
    assert f"{dest / LABELS}.gz: download failed" in message
    assert f"last error: {url}{LABELS}.gz: .gz MD5 mismatch" in message
    assert not (dest / f"{LABELS}.gz").exists()
    assert not [p for p in dest.iterdir() if p.name.endswith(".part")]


def test_wrong_content_is_rejected_even_when_the_gz_md5_is_vouched_for(tmp_path, mirror):
    url, served, gz_md5 = mirror
    content = bytearray(_raw(LABELS))
    content[100] = (content[100] + 1) % 10
    path = served / f"{LABELS}.gz"
    path.write_bytes(gzip.compress(bytes(content)))
    gz_md5 = dict(gz_md5, **{LABELS: hashlib.md5(path.read_bytes()).hexdigest()})
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=f"{LABELS}.gz: content MD5 mismatch"):
        data.download_mnist(dest, mirrors=[url], gz_md5=gz_md5)
    assert not (dest / f"{LABELS}.gz").exists()


def test_unreachable_mirrors_name_all_mirrors_and_the_last_error(tmp_path):
    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirrors = [f"http://127.0.0.1:{port}/a/", f"http://127.0.0.1:{port}/b/"]
    with pytest.raises(DataError) as info:
        data.download_mnist(tmp_path / "dest", mirrors=mirrors, timeout=5)
    message = str(info.value)
    assert f"download failed from all 2 mirrors ({', '.join(mirrors)})" in message
    assert f"last error: {mirrors[1]}" in message and "refused" in message.lower()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_is_named(tmp_path):
    dest = tmp_path / "ro"
    dest.mkdir()
    dest.chmod(0o555)
    try:
        with pytest.raises(DataError, match=f"{dest}: directory is not writable"):
            data.download_mnist(dest, mirrors=["http://127.0.0.1:9/"])
    finally:
        dest.chmod(0o755)


def test_uncreatable_directory_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    dest = blocker / "mnist"
    with pytest.raises(DataError, match=f"{dest}: cannot create the MNIST directory"):
        load_mnist(dest, download=True)


# --- `hpclars data`: the command a cluster user runs on a login node -------------------------

def test_data_command_verifies_a_complete_copy(tmp_path, capsys):
    from hpclars import cli

    assert cli.main(["data", "--data-dir", str(_copy_shared(tmp_path))]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{tmp_path}: MNIST complete and verified (60000 training and 10000 test images)")


def test_data_command_names_a_corrupt_file_and_keeps_it(tmp_path, capsys):
    from hpclars import cli

    _copy_shared(tmp_path)
    (tmp_path / f"{IMAGES}.gz").unlink()
    content = bytearray(_raw(IMAGES))
    content[123] ^= 0x01
    (tmp_path / IMAGES).write_bytes(bytes(content))
    assert cli.main(["data", "--data-dir", str(tmp_path), "--no-download"]) == 2  # a corrupt input file is bad input
    err = capsys.readouterr().err
    assert err.startswith(f"hpclars data: data error: {tmp_path / IMAGES}: content MD5 mismatch")
    assert (tmp_path / IMAGES).read_bytes() == bytes(content)  # reported, never deleted


def test_data_command_downloads_only_the_missing_files(tmp_path, mirror, monkeypatch, capsys):
    """A partial copy: the command fetches what is missing (from the local mirror) and verifies all."""
    from hpclars import cli, data

    url, served, gz_md5 = mirror
    root = tmp_path / "mnist"
    root.mkdir()
    _copy_shared(root)
    (root / f"{LABELS}.gz").unlink()
    before = {name: (root / f"{name}.gz").stat().st_mtime_ns for name in FILES if name != LABELS}
    real = data.download_mnist
    monkeypatch.setattr(data, "download_mnist", lambda d: real(d, mirrors=[url], gz_md5=gz_md5))
    assert cli.main(["data", "--data-dir", str(root)]) == 0
    assert "complete and verified" in capsys.readouterr().out
    assert (root / f"{LABELS}.gz").read_bytes() == (served / f"{LABELS}.gz").read_bytes()
    assert before == {name: (root / f"{name}.gz").stat().st_mtime_ns for name in before}


def test_data_print_dir_is_the_directory_hpclars_uses(tmp_path, monkeypatch, capsys):
    """What the job scripts pass as --data-dir when DATA_DIR is empty: $HPCLARS_DATA, else the
    per-user cache under an absolute $XDG_CACHE_HOME, else ~/.cache."""
    from hpclars import cli

    monkeypatch.delenv("HPCLARS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cli.main(["data", "--print-dir"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "xdg" / "hpclars" / "mnist")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert cli.main(["data", "--print-dir"]) == 0
    assert capsys.readouterr().out.strip() == str(Path.home() / ".cache" / "hpclars" / "mnist")
    monkeypatch.setenv("HPCLARS_DATA", str(tmp_path / "named"))
    assert cli.main(["data", "--print-dir"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "named")


def test_to_float_gives_the_same_values_from_a_strided_batch_and_into_float64(mnist):
    # The float32 kernel takes contiguous batches; a strided one and a float64 buffer take NumPy.
    batch = mnist.train_images[:64]
    fast, strided = np.empty((32, 1, 28, 28), np.float32), np.empty((32, 1, 28, 28), np.float32)
    to_float(np.ascontiguousarray(batch[::2]), fast)
    to_float(batch[::2], strided)
    np.testing.assert_array_equal(fast.view(np.int32), strided.view(np.int32))
    wide = to_float(batch[::2], np.empty((32, 1, 28, 28), np.float64))
    np.testing.assert_array_equal(wide, batch[::2, None].astype(np.float64) * (1.0 / 255.0))
