"""Tests of ntknb.data: loaders (real shared copies and tiny synthetic archives),
downloader, decoded cache, provenance and the task builder."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ntknb import data

REPO = Path(__file__).resolve().parents[1]
_ENV_DATA_DIR = os.environ.get("NTKNB_DATA_DIR")
REAL_DATA = Path(_ENV_DATA_DIR) if _ENV_DATA_DIR else REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Every test gets its own cache dir and no NTKNB_DATA_DIR, and no network."""
    monkeypatch.setenv("NTKNB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NTKNB_DATA_DIR", raising=False)

    def no_network(url, timeout=None):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(data, "urlopen", no_network)


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory):
    """One decoded-cache dir for the whole session (the CIFAR JPEGs are decoded once)."""
    return tmp_path_factory.mktemp("real-cache")


def _need_real(sub: str) -> Path:
    p = REAL_DATA / sub
    if not p.exists():
        pytest.skip(f"real data not available: {p} is absent (set NTKNB_DATA_DIR to the shared data copy)")
    return REAL_DATA


# --------------------------------------------------------------------------- real data
def test_real_mnist(monkeypatch, real_cache):
    root = _need_real("mnist")
    monkeypatch.setenv("NTKNB_CACHE_DIR", str(real_cache))
    ds = data.load_mnist(root, download=False)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.labels_train.shape == (60000,) and ds.labels_test.shape == (10000,)
    assert ds.x_train.dtype == np.float32
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    x = ds.x_train.astype(np.float64)
    assert x.mean() == pytest.approx(0.1307, abs=5e-5)
    assert x.std() == pytest.approx(0.3081, abs=5e-5)
    assert ds.labels_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ds.labels_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert ds.class_names == tuple("0123456789")
    # the per-class counts the schemas check sizes against before loading (data.check_task_sizes)
    assert tuple(np.bincount(ds.labels_train).tolist()) == data.CLASS_COUNTS["mnist"]["train"]
    assert tuple(np.bincount(ds.labels_test).tolist()) == data.CLASS_COUNTS["mnist"]["test"]
    assert not ds.provenance.lossy
    assert "verified" in ds.provenance.note
    # second load comes from the decoded cache, identical
    ds2 = data.load_dataset("mnist", root, download=False)
    np.testing.assert_array_equal(ds2.x_test, ds.x_test)
    assert ds2.provenance == ds.provenance


@pytest.mark.slow
def test_real_cifar10_jpeg(monkeypatch, real_cache):
    root = _need_real("cifar10-jpeg-imagefolder.tar.gz")
    monkeypatch.setenv("NTKNB_CACHE_DIR", str(real_cache))
    ds = data.load_cifar10(root, download=False)
    assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    assert ds.x_train.dtype == np.float32
    assert ds.class_names == data.CIFAR10_CLASSES
    assert np.bincount(ds.labels_train).tolist() == [5000] * 10
    assert np.bincount(ds.labels_test).tolist() == [1000] * 10
    means = ds.x_train.reshape(-1, 3).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(means, [0.4912, 0.4821, 0.4465], atol=3e-4)
    prov = ds.provenance
    assert prov.lossy and prov.checksum == data.CIFAR10_JPEG_SHA256
    assert "lossy" in prov.describe().lower() and "jpeg" in prov.describe().lower()
    # cached: no decoding the second time
    monkeypatch.setattr(data, "read_image_folder", _fail)
    ds2 = data.load_cifar10(root, download=False)
    np.testing.assert_array_equal(ds2.x_test[:100], ds.x_test[:100])
    assert ds2.provenance == prov


def _fail(*args, **kwargs):
    raise AssertionError("should have been served from the decoded cache")


# --------------------------------------------------------------------------- tiny fixtures
def _idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return header + arr.tobytes()


def _tiny_mnist(rng):
    return {
        "x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "y_train": np.array([5, 0, 4, 1, 9, 2], np.uint8),
        "x_test": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "y_test": np.array([7, 2, 1, 0], np.uint8),
    }


_MNIST_KEYS = {
    "train-images-idx3-ubyte.gz": "x_train",
    "train-labels-idx1-ubyte.gz": "y_train",
    "t10k-images-idx3-ubyte.gz": "x_test",
    "t10k-labels-idx1-ubyte.gz": "y_test",
}


def _mnist_payloads(arrays) -> dict[str, bytes]:
    """file name -> gzip bytes."""
    return {f: gzip.compress(_idx_bytes(arrays[k])) for f, k in _MNIST_KEYS.items()}


def _write_mnist(directory: Path, arrays) -> dict[str, str]:
    """Writes the 4 gz files; returns their uncompressed md5s."""
    directory.mkdir(parents=True, exist_ok=True)
    md5s = {}
    for f, blob in _mnist_payloads(arrays).items():
        (directory / f).write_bytes(blob)
        md5s[f] = hashlib.md5(gzip.decompress(blob)).hexdigest()
    return md5s


def _tiny_cifar_batches(rng, n_train_per_batch=2, n_test=3):
    def batch(n):
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, n)]
        return {b"batch_label": b"x", b"labels": y, b"data": x, b"filenames": [b"f"] * n}

    batches = {f"data_batch_{i}": batch(n_train_per_batch) for i in range(1, 6)}
    batches["test_batch"] = batch(n_test)
    batches["batches.meta"] = {
        b"label_names": [c.encode() for c in data.CIFAR10_CLASSES],
        b"num_cases_per_batch": n_train_per_batch,
    }
    return batches


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def _cifar_archive(batches) -> bytes:
    return _tar_gz({f"cifar-10-batches-py/{k}": pickle.dumps(v, protocol=2) for k, v in batches.items()})


def _expected_cifar(batches):
    xs = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    ys = np.concatenate([batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)])
    to_nhwc = lambda x: x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # noqa: E731
    return to_nhwc(xs), ys, to_nhwc(batches["test_batch"][b"data"]), np.array(batches["test_batch"][b"labels"])


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _image_folder_files(rng, classes=data.CIFAR10_CLASSES):
    """{relpath: png bytes}, and the expected arrays (ordered by class index then name)."""
    files, expected = {}, {"train": [], "test": []}
    for split, n in (("train", 3), ("test", 2)):
        for c in sorted(classes, key=data.CIFAR10_CLASSES.index):
            names = [f"{i:04d}.png" for i in range(n)]
            imgs = {nm: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for nm in names}
            for nm in reversed(names):  # written out of order on purpose
                files[f"{split}/{c}/{nm}"] = _png(imgs[nm])
            expected[split] += [(imgs[nm], data.CIFAR10_CLASSES.index(c)) for nm in names]
    return files, expected


class FakeURL:
    """urlopen replacement serving {basename: bytes}; records the requested URLs."""

    def __init__(self, blobs: dict[str, bytes], fail_hosts=()):
        self.blobs, self.fail_hosts, self.calls = blobs, fail_hosts, []

    def __call__(self, url, timeout=None):
        self.calls.append(url)
        if any(h in url for h in self.fail_hosts):
            raise urllib.error.URLError("host down")
        name = url.rsplit("/", 1)[-1]
        if name not in self.blobs:
            raise urllib.error.HTTPError(url, 404, "not found", None, None)
        return io.BytesIO(self.blobs[name])


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob("*") if p.is_file()) if d.exists() else []


# --------------------------------------------------------------------------- MNIST synthetic
def test_tiny_mnist_verified(tmp_path, monkeypatch):
    arrays = _tiny_mnist(np.random.default_rng(0))
    md5s = _write_mnist(tmp_path / "d" / "mnist", arrays)
    with pytest.raises(data.ChecksumError, match="md5"):
        data.load_mnist(tmp_path / "d", download=False)
    monkeypatch.setattr(data, "MNIST_FILES", md5s)
    ds = data.load_mnist(tmp_path / "d", download=False)
    assert ds.x_train.shape == (6, 28, 28, 1) and ds.x_test.shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["x_train"].astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.labels_test, [7, 2, 1, 0])
    assert ds.labels_train.dtype == np.int64
    assert not ds.x_train.flags.writeable


def test_tiny_mnist_unverified_and_flat_layout(tmp_path):
    arrays = _tiny_mnist(np.random.default_rng(1))
    _write_mnist(tmp_path / "flat", arrays)  # files directly in data_dir
    ds = data.load_mnist(tmp_path / "flat", download=False, verify=False)
    np.testing.assert_array_equal(ds.labels_train, arrays["y_train"])
    assert "NOT verified" in ds.provenance.note


def test_mnist_truncated_gzip(tmp_path):
    d = tmp_path / "mnist"
    _write_mnist(d, _tiny_mnist(np.random.default_rng(2)))
    blob = (d / "train-images-idx3-ubyte.gz").read_bytes()
    (d / "train-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(data.CorruptArchiveError, match="gzip"):
        data.load_mnist(tmp_path, download=False, verify=False)


def test_mnist_bad_idx_size(tmp_path):
    arrays = _tiny_mnist(np.random.default_rng(3))
    d = tmp_path / "mnist"
    _write_mnist(d, arrays)
    bad = _idx_bytes(arrays["y_test"])[:-1]
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bad))
    with pytest.raises(data.CorruptArchiveError, match="IDX"):
        data.load_mnist(tmp_path, download=False, verify=False)


def test_mnist_download_then_cache(tmp_path, monkeypatch):
    arrays = _tiny_mnist(np.random.default_rng(4))
    blobs = _mnist_payloads(arrays)
    monkeypatch.setattr(data, "MNIST_FILES", {f: hashlib.md5(gzip.decompress(b)).hexdigest() for f, b in blobs.items()})
    fake = FakeURL(blobs, fail_hosts=("ossci-datasets",))  # first mirror down
    ds = data.load_mnist(tmp_path / "empty", urlopen=fake)
    np.testing.assert_array_equal(ds.labels_train, arrays["y_train"])
    cache = tmp_path / "cache"
    assert _listing(cache / "mnist") == sorted(blobs)
    assert any("storage.googleapis.com" in u for u in fake.calls)
    assert len(list((cache / "decoded").glob("mnist-*.npz"))) == 1
    assert not list(cache.rglob("*.part"))
    # Second call: files in the cache dir, decoded arrays cached; no network, no decode.
    monkeypatch.setattr(data, "read_mnist_idx", _fail)
    ds2 = data.load_mnist(tmp_path / "empty", urlopen=_fail)
    np.testing.assert_array_equal(ds2.x_train, ds.x_train)


def test_mnist_offline_message(tmp_path):
    with pytest.raises(data.DataNotFoundError) as e:
        data.load_mnist(tmp_path / "nowhere")
    msg = str(e.value)
    for f in data.MNIST_FILES:
        assert f in msg
    assert str(tmp_path / "nowhere" / "mnist") in msg and str(tmp_path / "cache" / "mnist") in msg
    assert isinstance(e.value, FileNotFoundError)
    assert _listing(tmp_path / "cache") == []
    with pytest.raises(data.DataNotFoundError, match="download=False"):
        data.load_mnist(tmp_path / "nowhere", download=False)


# --------------------------------------------------------------------------- CIFAR synthetic
def test_tiny_cifar_official_archive(tmp_path, monkeypatch):
    batches = _tiny_cifar_batches(np.random.default_rng(5))
    blob = _cifar_archive(batches)
    (tmp_path / data.CIFAR10_ARCHIVE).write_bytes(blob)
    with pytest.raises(data.ChecksumError, match=data.CIFAR10_MD5):
        data.load_cifar10(tmp_path, download=False)
    monkeypatch.setattr(data, "CIFAR10_MD5", hashlib.md5(blob).hexdigest())
    ds = data.load_cifar10(tmp_path, download=False)
    xtr, ytr, xte, yte = _expected_cifar(batches)
    assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(ds.x_train, xtr.astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.labels_train, ytr)
    np.testing.assert_array_equal(ds.x_test, xte.astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.labels_test, yte)
    assert ds.class_names == data.CIFAR10_CLASSES
    assert not ds.provenance.lossy and ds.provenance.checksum_algorithm == "md5"
    assert "lossy" not in ds.provenance.describe().lower()


def test_tiny_cifar_extracted_dir(tmp_path):
    batches = _tiny_cifar_batches(np.random.default_rng(6))
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for k, v in batches.items():
        (d / k).write_bytes(pickle.dumps(v, protocol=5))
    ds = data.load_cifar10(tmp_path, download=False)
    np.testing.assert_array_equal(ds.labels_test, _expected_cifar(batches)[3])


def test_cifar_refuses_malicious_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    batches = _tiny_cifar_batches(np.random.default_rng(7))
    files = {f"cifar-10-batches-py/{k}": pickle.dumps(v, protocol=2) for k, v in batches.items()}
    files["cifar-10-batches-py/test_batch"] = pickle.dumps(Evil(), protocol=2)
    (tmp_path / data.CIFAR10_ARCHIVE).write_bytes(_tar_gz(files))
    with pytest.raises(data.CorruptArchiveError, match="refusing"):
        data.load_cifar10(tmp_path, download=False, verify=False)


@pytest.mark.parametrize("damage", ["truncated", "not-a-tar", "missing-batch"])
def test_cifar_corrupted_archive(tmp_path, damage):
    batches = _tiny_cifar_batches(np.random.default_rng(8))
    blob = _cifar_archive(batches)
    if damage == "truncated":
        blob = blob[: len(blob) * 2 // 3]
    elif damage == "not-a-tar":
        blob = gzip.compress(b"this is not a tar archive" * 40)
    else:
        del batches["data_batch_3"]
        blob = _cifar_archive(batches)
    (tmp_path / data.CIFAR10_ARCHIVE).write_bytes(blob)
    with pytest.raises(data.CorruptArchiveError, match=str(tmp_path / data.CIFAR10_ARCHIVE)):
        data.load_cifar10(tmp_path, download=False, verify=False)
    assert not (tmp_path / "cache" / "decoded").exists() or _listing(tmp_path / "cache" / "decoded") == []


def _check_image_folder(ds, expected):
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"labels_{split}")
        np.testing.assert_array_equal(x, np.stack([a for a, _ in expected[split]]).astype(np.float32) / 255)
        np.testing.assert_array_equal(y, [c for _, c in expected[split]])


def test_image_folder_tree(tmp_path):
    files, expected = _image_folder_files(np.random.default_rng(9))
    root = tmp_path / "cifar10-jpeg-imagefolder"
    for rel, blob in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(blob)
    ds = data.load_cifar10(tmp_path, download=False)
    _check_image_folder(ds, expected)
    assert ds.provenance.lossy and ds.provenance.checksum_algorithm == "sha256-tree-stat"
    assert "lossy" in ds.provenance.describe().lower()


def test_image_folder_tarball_and_stale_cache(tmp_path, monkeypatch):
    rng = np.random.default_rng(10)
    files, expected = _image_folder_files(rng)
    tar = tmp_path / data.CIFAR10_JPEG_ARCHIVE
    tar.write_bytes(_tar_gz({f"copy/{k}": v for k, v in files.items()}))  # with a top folder
    with pytest.raises(data.ChecksumError, match="sha256"):
        data.load_cifar10(tmp_path, download=False)
    ds = data.load_cifar10(tmp_path, download=False, verify=False)
    _check_image_folder(ds, expected)
    assert ds.provenance.checksum == hashlib.sha256(tar.read_bytes()).hexdigest()
    # A different source with the same name must not reuse the stale decoded cache.
    files2, expected2 = _image_folder_files(rng)
    tar.write_bytes(_tar_gz(files2))
    ds2 = data.load_cifar10(tmp_path, download=False, verify=False)
    _check_image_folder(ds2, expected2)
    assert len(list((tmp_path / "cache" / "decoded").glob("cifar10-*.npz"))) == 2
    # The same source is served from the cache.
    monkeypatch.setattr(data, "read_image_folder", _fail)
    ds3 = data.load_cifar10(tmp_path, download=False, verify=False)
    np.testing.assert_array_equal(ds3.x_train, ds2.x_train)


def test_image_folder_bad_class_and_bad_image(tmp_path):
    files, _ = _image_folder_files(np.random.default_rng(11))
    bad = dict(files)
    bad["train/unicorn/0000.png"] = next(iter(files.values()))
    (tmp_path / "a.tar.gz").write_bytes(_tar_gz(bad))
    with pytest.raises(data.CorruptArchiveError, match="unicorn"):
        data.read_image_folder(tmp_path / "a.tar.gz")
    bad = dict(files)
    bad["train/bird/0009.jpg"] = b"\xff\xd8 not really a jpeg"
    (tmp_path / "b.tar.gz").write_bytes(_tar_gz(bad))
    with pytest.raises(data.CorruptArchiveError, match="0009.jpg"):
        data.read_image_folder(tmp_path / "b.tar.gz")


def test_cifar_official_preferred_over_jpeg(tmp_path, monkeypatch):
    batches = _tiny_cifar_batches(np.random.default_rng(12))
    blob = _cifar_archive(batches)
    (tmp_path / data.CIFAR10_ARCHIVE).write_bytes(blob)
    files, _ = _image_folder_files(np.random.default_rng(13))
    (tmp_path / data.CIFAR10_JPEG_ARCHIVE).write_bytes(_tar_gz(files))
    monkeypatch.setattr(data, "CIFAR10_MD5", hashlib.md5(blob).hexdigest())
    assert not data.load_cifar10(tmp_path, download=False).provenance.lossy


def test_cifar_download(tmp_path, monkeypatch):
    batches = _tiny_cifar_batches(np.random.default_rng(14))
    blob = _cifar_archive(batches)
    monkeypatch.setattr(data, "CIFAR10_MD5", hashlib.md5(blob).hexdigest())
    fake = FakeURL({data.CIFAR10_ARCHIVE: blob})
    monkeypatch.setattr(data, "urlopen", fake)  # the module-level hook
    ds = data.load_cifar10(tmp_path / "empty")
    assert fake.calls == [data.CIFAR10_URL]
    assert (tmp_path / "cache" / data.CIFAR10_ARCHIVE).read_bytes() == blob
    assert data.CIFAR10_URL in ds.provenance.note
    np.testing.assert_array_equal(ds.labels_train, _expected_cifar(batches)[1])


def test_cifar_download_wrong_checksum_leaves_nothing(tmp_path):
    fake = FakeURL({data.CIFAR10_ARCHIVE: b"garbage"})
    with pytest.raises(data.ChecksumError, match="checksum mismatch"):
        data.load_cifar10(tmp_path / "empty", urlopen=fake)
    assert _listing(tmp_path / "cache") == []


def test_cifar_offline_message(tmp_path):
    with pytest.raises(data.DataNotFoundError) as e:
        data.load_cifar10(tmp_path / "nowhere")
    msg = str(e.value)
    assert data.CIFAR10_ARCHIVE in msg and data.CIFAR10_URL in msg and data.CIFAR10_MD5 in msg
    assert str(tmp_path / "nowhere") in msg and str(tmp_path / "cache") in msg
    assert "network disabled" in msg
    assert _listing(tmp_path / "cache") == []


# --------------------------------------------------------------------------- downloader
def test_download_good(tmp_path):
    blob = os.urandom(3 * (1 << 20) + 17)  # several chunks
    fake = FakeURL({"f.bin": blob})
    dest = data.download("https://x/f.bin", tmp_path / "d" / "f.bin", algorithm="sha256",
                         expected=hashlib.sha256(blob).hexdigest(), urlopen=fake)
    assert dest.read_bytes() == blob
    assert _listing(tmp_path / "d") == ["f.bin"]


def test_download_bad_checksum_leaves_nothing(tmp_path):
    fake = FakeURL({"f.bin": b"abc"})
    with pytest.raises(data.ChecksumError, match="expected md5 0+"):
        data.download(["https://a/f.bin", "https://b/f.bin"], tmp_path / "f.bin", algorithm="md5",
                      expected="0" * 32, urlopen=fake)
    assert len(fake.calls) == 2  # every mirror tried
    assert _listing(tmp_path) == []


def test_download_keeps_existing_file_on_failure(tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")
    with pytest.raises(data.ChecksumError):
        data.download("https://a/f.bin", dest, algorithm="md5", expected="0" * 32,
                      urlopen=FakeURL({"f.bin": b"new"}))
    assert dest.read_bytes() == b"old" and _listing(tmp_path) == ["f.bin"]


def test_download_truncated_gzip(tmp_path):
    blob = gzip.compress(os.urandom(5000))[:-100]
    with pytest.raises(data.CorruptArchiveError, match="gzip"):
        data.download("https://a/x.gz", tmp_path / "x.gz", algorithm="md5", expected="0" * 32,
                      gunzipped=True, urlopen=FakeURL({"x.gz": blob}))
    assert _listing(tmp_path) == []


def test_download_gunzipped_checksum(tmp_path):
    payload = b"payload" * 100
    blob = gzip.compress(payload, mtime=123)  # the wrapper is not what is hashed
    dest = data.download("https://a/x.gz", tmp_path / "x.gz", algorithm="md5",
                         expected=hashlib.md5(payload).hexdigest(), gunzipped=True,
                         urlopen=FakeURL({"x.gz": blob}))
    assert gzip.decompress(dest.read_bytes()) == payload


class _BrokenStream(io.BytesIO):
    def read(self, n=-1):
        raise ConnectionResetError("connection dropped")


def test_download_network_errors(tmp_path):
    with pytest.raises(data.DataError, match="connection dropped"):
        data.download("https://a/x", tmp_path / "x", algorithm="md5", expected="0" * 32,
                      urlopen=lambda url, timeout=None: _BrokenStream())
    assert _listing(tmp_path) == []


# --------------------------------------------------------------------------- cache, lookup, API
def test_cache_dir_env(monkeypatch, tmp_path):
    assert data.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("NTKNB_CACHE_DIR")
    assert data.cache_dir().name.lower() == "ntknb" or "ntknb" in str(data.cache_dir()).lower()


def test_lookup_order(tmp_path, monkeypatch):
    rng = np.random.default_rng(15)
    a, b, c = _tiny_mnist(rng), _tiny_mnist(rng), _tiny_mnist(rng)
    _write_mnist(tmp_path / "arg" / "mnist", a)
    _write_mnist(tmp_path / "env" / "mnist", b)
    _write_mnist(tmp_path / "cache" / "mnist", c)
    monkeypatch.setenv("NTKNB_DATA_DIR", str(tmp_path / "env"))
    load = lambda d=None: data.load_mnist(d, download=False, verify=False).x_test[..., 0]  # noqa: E731
    np.testing.assert_array_equal(load(tmp_path / "arg"), a["x_test"] / np.float32(255))
    np.testing.assert_array_equal(load(), b["x_test"] / np.float32(255))
    monkeypatch.delenv("NTKNB_DATA_DIR")
    np.testing.assert_array_equal(load(), c["x_test"] / np.float32(255))
    np.testing.assert_array_equal(load(tmp_path / "empty"), c["x_test"] / np.float32(255))


def test_corrupt_decoded_cache_is_ignored(tmp_path):
    _write_mnist(tmp_path / "mnist", _tiny_mnist(np.random.default_rng(16)))
    ds = data.load_mnist(tmp_path, download=False, verify=False)
    (npz,) = (tmp_path / "cache" / "decoded").glob("*.npz")
    npz.write_bytes(b"not a zip")
    ds2 = data.load_mnist(tmp_path, download=False, verify=False)
    np.testing.assert_array_equal(ds.x_train, ds2.x_train)


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match=r"name.*'imagenet'.*mnist.*cifar10"):
        data.load_dataset("imagenet")


def test_provenance_describe_and_json():
    p = data.Provenance("cifar10", "/x.tar.gz", "sha256", "ab", lossy=True, note="hi")
    text = p.describe()
    assert "CIFAR-10" in text and "lossy JPEG" in text and "'x.tar.gz'" in text and "\n" not in text
    # a reader sees the file's name, never the build machine's absolute path; a URL stays whole
    assert "/home/u" not in data.Provenance("mnist", "/home/u/data/mnist/", "sha256", "cd", False).describe()
    assert "'mnist'" in data.Provenance("mnist", "/home/u/data/mnist/", "sha256", "cd", False).describe()
    assert "https://h/m.gz" in data.Provenance("mnist", "https://h/m.gz", "sha256", "cd", False).describe()
    assert data.Provenance.from_json(p.to_json()) == p
    assert "exact" in data.Provenance("mnist", "/m", "sha256", "cd", lossy=False).describe()


# --------------------------------------------------------------------------- task builder
def _toy_dataset(n_train_per=20, n_test_per=6, k=4):
    """Pixel value encodes (class, example) so a task's x can be checked against its labels."""
    def split(per):
        y = np.repeat(np.arange(k), per)
        x = np.zeros((k * per, 2, 2, 1), np.float32)
        x[:, 0, 0, 0] = y / 10
        x[:, 0, 1, 0] = np.tile(np.arange(per), k) / 100
        return x, y

    xtr, ytr = split(n_train_per)
    xte, yte = split(n_test_per)
    prov = data.Provenance("toy", "/toy", "sha256", "00", lossy=False)
    names = tuple(f"c{i}" for i in range(k))
    return data.Dataset("toy", xtr, ytr, xte, yte, names, prov)


def test_task_binary():
    ds = _toy_dataset()
    t = data.make_task(ds, classes=("c2", "c0"), n_train=10, n_test=4, seed=0)
    assert t.is_binary and t.n_classes == 2 and t.classes == ("c2", "c0")
    assert t.x_train.shape == (10, 2, 2, 1) and t.y_train.shape == (10, 1) and t.y_test.shape == (4, 1)
    for arr in (t.x_train, t.y_train, t.x_test, t.y_test):
        assert arr.dtype == np.float32
    assert np.bincount(t.labels_train).tolist() == [5, 5] and np.bincount(t.labels_test).tolist() == [2, 2]
    np.testing.assert_array_equal(t.y_train[:, 0], np.where(t.labels_train == 0, -1, 1))
    # classes[0] = "c2" -> -1: pixel (0,0) of those images encodes class 2
    np.testing.assert_allclose(t.x_train[t.y_train[:, 0] == -1, 0, 0, 0], 0.2)
    np.testing.assert_allclose(t.x_train[t.y_train[:, 0] == 1, 0, 0, 0], 0.0)
    assert t.provenance is ds.provenance
    # no duplicates within a split
    assert len({tuple(x.ravel()) for x in t.x_train}) == 10


def test_task_multiclass_and_indices():
    ds = _toy_dataset()
    t = data.make_task(ds, classes=(3, 1, 2), n_train=12, n_test=6, seed=1)
    assert not t.is_binary and t.n_classes == 3 and t.classes == ("c3", "c1", "c2")
    assert t.y_train.shape == (12, 3)
    expected = np.eye(3, dtype=np.float32)[t.labels_train] - np.float32(1 / 3)
    np.testing.assert_array_equal(t.y_train, expected)
    np.testing.assert_allclose(t.y_train.sum(axis=1), 0, atol=1e-6)
    class_of = np.array([3, 1, 2])[t.labels_test]
    np.testing.assert_allclose(t.x_test[:, 0, 0, 0], class_of / 10, rtol=1e-6)
    full = data.make_task(ds, n_train=8, n_test=4)
    assert full.classes == ds.class_names and full.y_train.shape == (8, 4)
    assert np.bincount(full.labels_train).tolist() == [2, 2, 2, 2]


def test_task_determinism_and_seed():
    ds = _toy_dataset()
    a = data.make_task(ds, ("c0", "c1"), n_train=10, n_test=4, seed=7)
    b = data.make_task(ds, ("c0", "c1"), n_train=10, n_test=4, seed=7)
    c = data.make_task(ds, ("c0", "c1"), n_train=10, n_test=4, seed=8)
    for f in ("x_train", "y_train", "x_test", "y_test", "labels_train", "labels_test"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    subset = lambda t: {tuple(x.ravel()) for x in t.x_train}  # noqa: E731
    assert subset(a) != subset(c)
    # maximal request takes every example of each class
    m = data.make_task(ds, ("c0", "c1"), n_train=40, n_test=12)
    assert len(subset(m)) == 40


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(classes=("c0", "nope")), r"classes.*'nope'.*c0.*c3"),
        (dict(classes=(0, 9)), r"classes.*9.*0\.\.3"),
        (dict(classes=("c1", "c1")), r"classes.*duplicate"),
        (dict(classes=("c1", 1)), r"classes.*duplicate"),
        (dict(classes=("c1",)), r"classes.*at least 2"),
        (dict(classes="c1"), r"classes"),
        (dict(classes=(True, False)), r"classes"),
        (dict(n_train=0), r"n_train.*positive"),
        (dict(n_train=-4), r"n_train.*positive"),
        (dict(n_train=2.0), r"n_train"),
        (dict(n_test=-1), r"n_test.*positive"),
        (dict(n_train=9), r"n_train=9.*divisible.*2.*8 or 10"),
        (dict(n_train=42), r"n_train=42.*21 examples per class.*only 20.*up to 40"),
        (dict(n_test=14), r"n_test=14.*up to 12"),
        (dict(seed=-1), r"seed"),
    ],
)
def test_task_errors(kwargs, match):
    ds = _toy_dataset()
    args = dict(classes=("c0", "c1"), n_train=10, n_test=4, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        data.make_task(ds, **args)


def test_task_rejects_non_dataset():
    with pytest.raises(ValueError, match="dataset"):
        data.make_task("mnist")


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("cifar10", ("cat", "dgo")), {}, r"parameter 'classes': unknown class 'dgo'"),
        (("cifar10", ("cat", "cat")), {}, r"parameter 'classes': duplicate"),
        (("cifar10", ("cat",)), {}, r"at least 2"),
        (("mnist", ("3", 3)), dict(classes_name="lin_classes"), r"'lin_classes': duplicate"),
        (("mnist",), dict(train=[("n_train", 54220)]), r"'n_train' must be at most 54210 .*class '5'"),
        (("mnist",), dict(test=[("n_test", 8930)]), r"'n_test' must be at most 8920"),
        (("mnist", (3, 5)), dict(train=[("n", 10844)]), r"'n' must be at most 10842 \(2 x 5421"),
        (("cifar10", ("cat", "dog")), dict(test=[("n_select + n_eval", 2002)]),
         r"parameters n_select \+ n_eval must be at most 2000"),
        (("cifar10",), dict(train=[("n_train", 1005)]), r"multiple of the number of classes 10.*1000 or 1010"),
        (("cifar10",), dict(train=[("n_train", 0)]), r"positive multiple"),
        (("svhn",), {}, r"dataset"),
    ],
)
def test_check_task_sizes_refuses_before_loading(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.check_task_sizes(*args, **kwargs)


def test_check_task_sizes_accepts_the_largest_subsamples():
    assert data.check_task_sizes("mnist", train=[("n", 54210)], test=[("m", 8920)]) == list(range(10))
    assert data.check_task_sizes("cifar10", ("cat", "dog"), train=[("n", 10000)], test=[("m", 2000)]) == [3, 5]
    assert data.check_task_sizes("cifar10", train=[("n", 50000)], test=[("m", 10000)]) == list(range(10))


# --------------------------------------------------------------- cache trust (issue 14)
def _decoded(tmp_path, pattern="mnist-*.npz"):
    files = list((tmp_path / "cache" / "decoded").glob(pattern))
    assert len(files) == 1
    return files[0]


@pytest.mark.parametrize("tamper", ["other-arrays", "wrong-dtype", "wrong-shape", "other-source", "bad-labels"])
def test_decoded_cache_with_wrong_arrays_is_not_used(tmp_path, tamper, caplog):
    arrays = _tiny_mnist(np.random.default_rng(10))
    _write_mnist(tmp_path / "flat", arrays)
    ds = data.load_mnist(tmp_path / "flat", download=False, verify=False)
    path = _decoded(tmp_path)
    with np.load(path, allow_pickle=False) as z:
        stored = {k: z[k] for k in z.files}
    x = stored["x_train"]
    if tamper == "other-arrays":  # a valid cache file holding other images of the same shape
        stored["x_train"] = 255 - x
    elif tamper == "wrong-dtype":
        stored["x_train"] = x.astype(np.float32)
    elif tamper == "wrong-shape":
        stored["x_train"] = x[:, :27]
    elif tamper == "other-source":
        prov = data.Provenance.from_json(str(stored["provenance"]))
        stored["provenance"] = np.array(dataclasses.replace(prov, checksum="0" * 64).to_json())
    elif tamper == "bad-labels":
        stored["y_train"] = stored["y_train"] + 10
    np.savez(path, **stored)
    with caplog.at_level("WARNING", logger=data.log.name):
        ds2 = data.load_mnist(tmp_path / "flat", download=False, verify=False)
    assert "ignoring decoded cache" in caplog.text  # noticed, and decoded again
    np.testing.assert_array_equal(ds2.x_train, ds.x_train)
    np.testing.assert_array_equal(ds2.labels_train, ds.labels_train)
    # the rewritten cache is good again and used
    with np.load(_decoded(tmp_path), allow_pickle=False) as z:
        np.testing.assert_array_equal(z["x_train"], x)


def test_offline_message_puts_the_fix_first(tmp_path):
    long_error = "x" * 2000

    def down(url, timeout=None):
        raise urllib.error.URLError(f"<urlopen error [Errno -3] Temporary failure in name resolution {long_error}>")

    for load, name in ((data.load_mnist, "MNIST"), (data.load_cifar10, "CIFAR-10")):
        with pytest.raises(data.DataNotFoundError) as e:
            load(tmp_path / "nowhere", urlopen=down)
        msg = str(e.value)
        assert msg.startswith(f"{name} not found") and len(msg) < 900, msg
        assert "NTKNB_DATA_DIR" in msg[:500] and str(tmp_path / "nowhere") in msg[:500]
        assert "name resolution" in msg  # the reason, kept short


def test_task_seed_bounded():
    ds = _toy_dataset()
    for bad in (2**32, 2**64, -1):
        with pytest.raises(ValueError, match=r"seed.*2\*\*32"):
            data.make_task(ds, ("c0", "c1"), n_train=10, n_test=4, seed=bad)
    data.make_task(ds, ("c0", "c1"), n_train=10, n_test=4, seed=2**32 - 1)


def test_image_folder_missing_class_or_wrong_size_is_not_cifar10(tmp_path):
    """Issue 31: a tree missing a class, or with 64x64 images, is refused as CIFAR-10 (DataError)."""
    files, _ = _image_folder_files(np.random.default_rng(12))
    root = tmp_path / "cifar10-jpeg-imagefolder"
    for rel, blob in files.items():
        if "/truck/" in rel and rel.startswith("test/"):
            continue
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(blob)
    with pytest.raises(data.DataError, match=r"class\(es\) \['truck'\] under test/"):
        data.load_cifar10(tmp_path, download=False)
    (root / "test" / "truck").mkdir()
    (root / "test" / "truck" / "0000.png").write_bytes(_png(np.zeros((64, 64, 3), np.uint8)))
    with pytest.raises(data.DataError, match=r"shape \(64, 64, 3\), expected \(32, 32, 3\)"):
        data.load_cifar10(tmp_path, download=False)
    assert not (tmp_path / "cache" / "decoded").exists() or _listing(tmp_path / "cache" / "decoded") == []


def test_average_pool_is_the_block_mean():
    """Each pooled pixel is the mean of its ``factor x factor`` block (a loop as the reference), in the
    dtype asked for; factor 1 leaves the images as they are; a shape the factor does not divide is
    refused naming the parameter."""
    x = np.random.default_rng(0).random((2, 6, 6, 3))
    pooled = data.average_pool(x, 3, dtype=np.float64)
    ref = np.array([[[[x[m, 3 * i:3 * i + 3, 3 * j:3 * j + 3, c].mean() for c in range(3)] for j in range(2)]
                     for i in range(2)] for m in range(2)])
    np.testing.assert_allclose(pooled, ref, rtol=1e-14)
    assert data.average_pool(x, 2).dtype == np.float32 and data.average_pool(x, 2).shape == (2, 3, 3, 3)
    np.testing.assert_array_equal(data.average_pool(x, 1), x.astype(np.float32))
    with pytest.raises(ValueError, match="parameter 'x' must be .*divisible by factor=4"):
        data.average_pool(x, 4)
    with pytest.raises(ValueError, match="factor"):
        data.average_pool(x, 0)


def test_downsample_pools_both_splits_and_keeps_the_labels():
    x = np.random.default_rng(1).random((4, 4, 4, 1)).astype(np.float32)
    labels = np.arange(4, dtype=np.int64)
    prov = data.Provenance(**{f.name: None for f in dataclasses.fields(data.Provenance)})
    ds = data.Dataset("mnist", x, labels, x[:2], labels[:2], ("a", "b", "c", "d"), prov)
    small = data.downsample(ds, 2)
    assert small.x_train.shape == (4, 2, 2, 1) and small.x_test.shape == (2, 2, 2, 1)
    np.testing.assert_array_equal(small.x_test, data.average_pool(x[:2], 2))
    assert small.labels_train is labels and small.class_names == ds.class_names and small.provenance is prov
    assert data.downsample(ds, 1) is ds
