"""Datasets (MNIST, CIFAR-10), their provenance, and the task builder.

Formats
-------
* **MNIST** is read from the four official IDX files, gzip-compressed::

      train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
      t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

  The md5 of the *uncompressed* payload of each file is checked against the official
  value (gzip wrappers differ between mirrors, the IDX bytes do not).
* **CIFAR-10** is read from either

  - the official ``cifar-10-python.tar.gz`` (md5 ``c58f30108f718f92721af3b95e74349a``;
    pickled batches ``data_batch_1..5``, ``test_batch``, ``batches.meta``), or its
    extracted folder ``cifar-10-batches-py/``; the pickles are read with a restricted
    unpickler that only accepts numpy arrays, lists, dicts, strings and numbers;
  - an *image-folder* tree ``train/<class>/*.jpg|png`` and ``test/<class>/*.jpg|png``
    (classes ``airplane automobile bird cat deer dog frog horse ship truck`` = labels
    0..9), as a directory or as a tarball such as ``cifar10-jpeg-imagefolder.tar.gz``.
    Images are decoded with Pillow; within a split the examples are ordered by class,
    then by file name. The JPEG copy is **lossy** (pixel values differ from the
    official CIFAR-10 by a few levels) and its :class:`Provenance` says so.

Lookup order
------------
For each dataset the loader looks for its source files in

1. ``data_dir`` (argument) or, when it is ``None``, the ``NTKNB_DATA_DIR`` environment
   variable: MNIST files in ``<dir>/mnist/`` or ``<dir>/``; CIFAR-10 as
   ``<dir>/cifar-10-python.tar.gz``, ``<dir>/cifar-10-batches-py/``,
   ``<dir>/cifar10-jpeg-imagefolder.tar.gz``, ``<dir>/cifar10-jpeg-imagefolder/`` (also
   under ``<dir>/cifar10/``; the official archive wins over the JPEG copy);
2. the user cache directory, :func:`cache_dir` (``NTKNB_CACHE_DIR`` or platformdirs'
   ``user_cache_dir("ntknb")``), with the same layout;
3. if ``download=True``: the official URLs. A download is written to a temporary file in
   the cache directory and renamed (``os.replace``) only once its checksum verifies; on
   any failure nothing is left behind. Offline, :class:`DataNotFoundError` says exactly
   which files to put in which directory.

Decoded arrays are cached as uint8 ``.npz`` files in ``<cache_dir>/decoded/`` (atomic
write), keyed by the checksum of the source, so a different source never reuses a stale
cache; on load the cache must name that source checksum, hold uint8 images and in-range
integer labels of the expected shapes, and match the sha256 of its arrays stored with it,
or it is decoded again. Loading from that cache takes well under two seconds.

Arrays follow the package conventions (see DEVELOPERS.md): images float32 in [0, 1],
NHWC, ``(N, H, W, C)`` with ``C = 1`` for MNIST and ``C = 3`` for CIFAR-10. Task labels
are ±1 of shape ``(n, 1)`` for binary tasks and centred one-hot ``one_hot - 1/k`` of
shape ``(n, k)`` for ``k > 2`` classes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import logging
import os
import pickle
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ntknb.validation import SEED_LIMIT, check_int

__all__ = [
    "DATASETS",
    "CIFAR10_CLASSES",
    "CLASS_COUNTS",
    "CLASS_NAMES",
    "MNIST_CLASSES",
    "ChecksumError",
    "CorruptArchiveError",
    "DataError",
    "DataNotFoundError",
    "Dataset",
    "Provenance",
    "Task",
    "average_pool",
    "cache_dir",
    "check_task_sizes",
    "download",
    "downsample",
    "load_cifar10",
    "load_dataset",
    "load_mnist",
    "make_task",
    "read_cifar10_python",
    "read_image_folder",
    "read_mnist_idx",
]

log = logging.getLogger(__name__)

DATASETS = ("mnist", "cifar10")
MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

CLASS_NAMES = {"mnist": MNIST_CLASSES, "cifar10": CIFAR10_CLASSES}
#: Images per class (by class index) in each split of the standard releases: MNIST's 60,000 /
#: 10,000 (digit 5 is the smallest class: 5,421 / 892) and CIFAR-10's 50,000 / 10,000 (5,000 /
#: 1,000 per class). They bound the class-balanced subsamples of :func:`make_task` before any
#: data is loaded (:func:`check_task_sizes`, used by the chapters' parameter schemas).
CLASS_COUNTS = {
    "mnist": {"train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
              "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)},
    "cifar10": {"train": (5000,) * 10, "test": (1000,) * 10},
}

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
#: md5 of the *uncompressed* IDX payload of each official MNIST file.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_JPEG_ARCHIVE = "cifar10-jpeg-imagefolder.tar.gz"
CIFAR10_JPEG_SHA256 = "45b041e867f5a40f79bfde38d3dd1fd511103d50068c1afecf6445e25234d4db"

_CACHE_VERSION = 2  # 2: the cache stores a sha256 of its arrays and is checked on load
_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
_CHUNK = 1 << 20

#: The function used to open URLs; replace it (monkeypatch) or pass ``urlopen=`` to the
#: loaders to run without network. Called as ``urlopen(url, timeout=...)``; must return
#: a context manager with a ``read(n)`` method.
urlopen: Callable[..., Any] = urllib.request.urlopen


# --------------------------------------------------------------------------- errors
class DataError(RuntimeError):
    """A data file is missing, corrupted or fails its checksum."""


class ChecksumError(DataError):
    """A file's checksum differs from the expected (official) value."""


class CorruptArchiveError(DataError):
    """An archive or data file cannot be decoded (truncated gzip, bad tar, bad IDX...)."""


class DataNotFoundError(DataError, FileNotFoundError):
    """The source files are not on disk and could not be downloaded."""


# --------------------------------------------------------------------------- records
@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a dataset's arrays came from.

    Attributes:
        dataset: ``"mnist"`` or ``"cifar10"``.
        source: path (or URL) of the file or directory the arrays were decoded from.
        checksum_algorithm: e.g. ``"md5"``, ``"sha256"``.
        checksum: hex digest of the source (see ``note`` for what exactly was hashed).
        lossy: True when the pixels are not bit-exact (the JPEG copy of CIFAR-10).
        note: human-readable remarks (verification, format, caveats).
    """

    dataset: str
    source: str
    checksum_algorithm: str
    checksum: str
    lossy: bool
    note: str = ""

    def describe(self) -> str:
        """One paragraph, suitable for printing in a notebook."""
        name = {"mnist": "MNIST", "cifar10": "CIFAR-10"}.get(self.dataset, self.dataset)
        text = (
            f"{name} loaded from "
            f"{self.source if '://' in self.source else 'the local copy ' + repr(self.display_source())} "
            f"({self.checksum_algorithm} {self.checksum})."
        )
        if self.lossy:
            text += (
                f" WARNING: this is a lossy JPEG re-encoding of {name}, not the official"
                " data: pixel values differ from the original by a few levels, so"
                " numbers measured on it are close to, but not exactly, those on the"
                " official dataset."
            )
        else:
            text += " Pixel values are exact (official data)."
        if self.note:
            text += " " + self.note.strip()
        return text

    def display_source(self) -> str:
        """The source as a reader sees it: a URL whole, a local file or folder by its name only
        (the machine's absolute path says nothing to a reader; the checksum identifies the data)."""
        if "://" in self.source:
            return self.source
        return os.path.basename(os.path.normpath(self.source)) or self.source

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Provenance:
        return cls(**json.loads(text))


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A full dataset, read-only arrays.

    Attributes:
        name: ``"mnist"`` or ``"cifar10"``.
        x_train: float32 ``(N_train, H, W, C)`` in [0, 1] (NHWC; MNIST ``C = 1``).
        labels_train: int64 ``(N_train,)`` class indices into ``class_names`` (integer
            classes are ``labels_*`` everywhere; ``y_*`` are encoded targets, as in :class:`Task`).
        x_test: float32 ``(N_test, H, W, C)``.
        labels_test: int64 ``(N_test,)``.
        class_names: tuple of str, index = label.
        provenance: :class:`Provenance`.
    """

    name: str
    x_train: np.ndarray
    labels_train: np.ndarray
    x_test: np.ndarray
    labels_test: np.ndarray
    class_names: tuple[str, ...]
    provenance: Provenance

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)``."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, x_train={self.x_train.shape}, "
            f"x_test={self.x_test.shape}, classes={len(self.class_names)}, "
            f"lossy={self.provenance.lossy})"
        )


def average_pool(x, factor: int, dtype=np.float32) -> np.ndarray:
    """Downsample NHWC images by averaging ``factor x factor`` blocks (``factor = 1``: unchanged): the one
    pooling rule of the package. ``x (m, H, W, C)`` with ``H, W`` divisible by ``factor`` ->
    ``(m, H / factor, W / factor, C)`` in ``dtype`` (the mean is taken in ``dtype``). Pixels stay in
    [0, 1], so an l-inf radius keeps its meaning on pooled images; the cost of the analytic CNN kernels
    grows with the number of pixels, which is why chapters pool on a CPU."""
    factor = check_int("factor", factor, min=1)
    x = np.asarray(x, dtype)
    if x.ndim != 4 or x.shape[1] % factor or x.shape[2] % factor:
        raise ValueError(f"parameter 'x' must be (m, H, W, C) with H and W divisible by factor={factor}, "
                         f"got shape {x.shape}")
    m, h, w, c = x.shape
    return x.reshape(m, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def downsample(ds: Dataset, factor: int) -> Dataset:
    """``ds`` with every image average-pooled over ``factor x factor`` blocks (:func:`average_pool`,
    float32; ``factor = 1``: ``ds`` itself). Labels, class names and provenance unchanged."""
    if factor == 1:
        return ds
    return Dataset(ds.name, average_pool(ds.x_train, factor), ds.labels_train, average_pool(ds.x_test, factor),
                   ds.labels_test, ds.class_names, ds.provenance)


@dataclasses.dataclass(frozen=True)
class Task:
    """A class-balanced subsample of a :class:`Dataset` with encoded targets.

    Attributes:
        x_train: float32 ``(n_train, H, W, C)`` in [0, 1].
        y_train: float32 targets: ``(n_train, 1)`` with -1 for ``classes[0]`` and +1 for
            ``classes[1]`` when binary; otherwise centred one-hot ``one_hot - 1/k``,
            shape ``(n_train, k)``.
        x_test, y_test: same for the test split.
        labels_train: int64 ``(n_train,)``, index into ``classes``.
        labels_test: int64 ``(n_test,)``.
        classes: tuple of class names, in task order.
        provenance: provenance of the parent dataset.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels_train: np.ndarray
    labels_test: np.ndarray
    classes: tuple[str, ...]
    provenance: Provenance

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_binary(self) -> bool:
        return len(self.classes) == 2

    def __repr__(self) -> str:
        return (
            f"Task(classes={self.classes}, x_train={self.x_train.shape}, "
            f"y_train={self.y_train.shape}, x_test={self.x_test.shape})"
        )


# --------------------------------------------------------------------------- paths
def cache_dir() -> Path:
    """The user cache directory: ``$NTKNB_CACHE_DIR`` or ``user_cache_dir("ntknb")``."""
    env = os.environ.get("NTKNB_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("ntknb"))


def _resolve_dirs(data_dir: str | os.PathLike | None, cache: Path) -> list[Path]:
    dirs: list[Path] = []
    if data_dir is not None:
        dirs.append(Path(data_dir).expanduser())
    elif os.environ.get("NTKNB_DATA_DIR"):
        dirs.append(Path(os.environ["NTKNB_DATA_DIR"]).expanduser())
    dirs.append(cache)
    return dirs


# --------------------------------------------------------------------------- hashing
def _hash_file(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _hash_gunzip(path: Path, algorithm: str) -> str:
    """Hash of the decompressed content of a gzip file."""
    h = hashlib.new(algorithm)
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptArchiveError(f"{path}: not a valid gzip file ({e})") from e
    return h.hexdigest()


def _tree_stat_hash(root: Path) -> str:
    """sha256 over (relative path, size, mtime) of the files of a tree (a cache key)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- download
def download(
    urls: str | Sequence[str],
    dest: str | os.PathLike,
    *,
    algorithm: str,
    expected: str,
    gunzipped: bool = False,
    urlopen: Callable[..., Any] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download a file atomically, verifying its checksum.

    The bytes go to a temporary file next to ``dest``; it is renamed to ``dest`` with
    ``os.replace`` only if its ``algorithm`` digest equals ``expected`` (of the gunzipped
    content when ``gunzipped=True``). On any failure the temporary file is removed and
    ``dest`` is left untouched. Mirrors in ``urls`` are tried in order.

    Args:
        urls: a URL or a list of mirror URLs of the same file.
        dest: final path.
        algorithm: hashlib name, e.g. ``"md5"``.
        expected: expected hex digest.
        gunzipped: hash the decompressed content of a ``.gz`` file.
        urlopen: ``urlopen(url, timeout=...)`` replacement (default: module ``urlopen``).

    Raises:
        ChecksumError: the downloaded bytes do not verify (from every mirror).
        CorruptArchiveError: ``gunzipped`` and the bytes are not valid gzip.
        DataError: no mirror could be reached (the message lists the errors).
    """
    if isinstance(urls, str):
        urls = [urls]
    if not urls:
        raise ValueError("urls: expected at least one URL")
    opener = urlopen if urlopen is not None else globals()["urlopen"]
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    data_errors: list[DataError] = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            h = hashlib.new(algorithm)
            with os.fdopen(fd, "wb") as out:
                try:
                    with opener(url, timeout=timeout) as response:
                        while chunk := response.read(_CHUNK):
                            out.write(chunk)
                            if not gunzipped:
                                h.update(chunk)
                except DataError:
                    raise
                except Exception as e:  # network failure of any kind
                    errors.append(f"{url}: {type(e).__name__}: {e}")
                    continue
            digest = _hash_gunzip(tmp, algorithm) if gunzipped else h.hexdigest()
            if digest != expected:
                what = "uncompressed content of " if gunzipped else ""
                raise ChecksumError(
                    f"checksum mismatch for the {what}{url}: expected {algorithm} "
                    f"{expected}, got {digest}; the file was not saved."
                )
            os.replace(tmp, dest)
            log.info("downloaded %s -> %s", url, dest)
            return dest
        except DataError as e:
            errors.append(f"{url}: {e}")
            data_errors.append(e)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    if data_errors:
        err = data_errors[-1]
        raise type(err)("; ".join(errors)) from err
    raise DataError(f"could not download {dest.name}: " + "; ".join(errors))


# --------------------------------------------------------------------------- decoded cache
def _cache_path(cache: Path, dataset: str, kind: str, algorithm: str, digest: str) -> Path:
    return cache / "decoded" / f"{dataset}-{kind}-{algorithm}-{digest}-v{_CACHE_VERSION}.npz"


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the name, dtype, shape and bytes of the four arrays."""
    h = hashlib.sha256()
    for key in _ARRAY_KEYS:
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}\n".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _save_cache(path: Path, arrays: dict[str, np.ndarray], prov: Provenance, classes: Sequence[str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    provenance=np.array(prov.to_json()),
                    class_names=np.array(json.dumps(list(classes))),
                    arrays_sha256=np.array(_arrays_digest(arrays)),
                    **arrays,
                )
            os.replace(tmp_name, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
    except OSError as e:  # a read-only cache must not break loading
        log.warning("could not write the decoded cache %s: %s", path, e)


def _cache_problem(arrays, prov: Provenance, classes, stored_digest: str, dataset: str, algorithm: str,
                   digest: str, image_shape: tuple[int, ...] | None) -> str | None:
    """Why a decoded cache cannot be trusted (``None``: it can)."""
    if (prov.dataset, prov.checksum_algorithm, prov.checksum) != (dataset, algorithm, digest):
        return (f"it was decoded from another source ({prov.dataset} {prov.checksum_algorithm} "
                f"{prov.checksum[:16]}..., expected {dataset} {algorithm} {digest[:16]}...)")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
            return f"x_{split} is {x.dtype} {x.shape}, expected uint8 (n, h, w, 1 or 3)"
        if image_shape is not None and x.shape[1:] != image_shape:
            return f"x_{split} has images of shape {x.shape[1:]}, expected {image_shape}"
        if not np.issubdtype(y.dtype, np.integer) or y.shape != (x.shape[0],):
            return f"y_{split} is {y.dtype} {y.shape}, expected integers of shape ({x.shape[0]},)"
        if y.size and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            return f"y_{split} holds labels outside 0..{len(classes) - 1}"
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        return "train and test images differ in shape"
    if stored_digest != _arrays_digest(arrays):
        return "its arrays do not match their stored sha256"
    return None


def _load_cache(path: Path, dataset: str, algorithm: str, digest: str,
                image_shape: tuple[int, ...] | None = None) -> tuple[dict[str, np.ndarray], Provenance, tuple[str, ...]] | None:
    """The decoded arrays cached at ``path`` if it exists and can be trusted: decoded from
    the source with this checksum, uint8 images of the expected shape, labels in range,
    arrays matching their stored sha256. Otherwise ``None`` (with a warning), and the
    caller decodes again and overwrites the file."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in _ARRAY_KEYS}
            prov = Provenance.from_json(str(z["provenance"]))
            classes = tuple(json.loads(str(z["class_names"])))
            stored_digest = str(z["arrays_sha256"])
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile, EOFError) as e:
        log.warning("ignoring unreadable decoded cache %s: %s", path, e)
        return None
    problem = _cache_problem(arrays, prov, classes, stored_digest, dataset, algorithm, digest, image_shape)
    if problem:
        log.warning("ignoring decoded cache %s: %s; decoding the source again", path, problem)
        return None
    return arrays, prov, classes


def _to_dataset(name: str, arrays: dict[str, np.ndarray], classes: Sequence[str], prov: Provenance) -> Dataset:
    def images(a: np.ndarray) -> np.ndarray:
        # one pass uint8 -> float32, correctly rounded (255 -> 1.0 exactly)
        x = np.divide(a, np.float32(255), dtype=np.float32)
        x.setflags(write=False)
        return x

    def labels(a: np.ndarray) -> np.ndarray:
        y = a.astype(np.int64)
        y.setflags(write=False)
        return y

    return Dataset(
        name=name,
        x_train=images(arrays["x_train"]),
        labels_train=labels(arrays["y_train"]),
        x_test=images(arrays["x_test"]),
        labels_test=labels(arrays["y_test"]),
        class_names=tuple(classes),
        provenance=prov,
    )


# --------------------------------------------------------------------------- MNIST
def _read_idx(path: Path, expected_md5: str | None) -> tuple[np.ndarray, str]:
    """Decode one gzipped IDX file; returns (array, md5 of uncompressed bytes)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptArchiveError(f"{path}: corrupted gzip file ({e}); delete it and retry") from e
    md5 = hashlib.md5(raw).hexdigest()
    if expected_md5 is not None and md5 != expected_md5:
        raise ChecksumError(
            f"{path}: md5 of the uncompressed IDX payload is {md5}, expected {expected_md5} "
            "(official MNIST); replace the file or pass verify=False"
        )
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CorruptArchiveError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptArchiveError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape)) if shape else 0
    if len(raw) - header != size:
        raise CorruptArchiveError(
            f"{path}: IDX payload has {len(raw) - header} bytes, header says {shape} = {size}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape), md5


def read_mnist_idx(directory: str | os.PathLike, verify: bool = True) -> dict[str, np.ndarray]:
    """Decode the four MNIST IDX ``.gz`` files of ``directory`` into uint8 arrays.

    Returns ``{"x_train": (60000, 28, 28, 1), "y_train": (60000,), "x_test":
    (10000, 28, 28, 1), "y_test": (10000,)}`` (uint8). With ``verify`` the md5 of each
    uncompressed payload must equal the official value (:class:`ChecksumError`).
    """
    d = Path(directory)
    out = {}
    keys = {
        "train-images-idx3-ubyte.gz": "x_train",
        "train-labels-idx1-ubyte.gz": "y_train",
        "t10k-images-idx3-ubyte.gz": "x_test",
        "t10k-labels-idx1-ubyte.gz": "y_test",
    }
    for fname, key in keys.items():
        arr, _ = _read_idx(d / fname, MNIST_FILES[fname] if verify else None)
        out[key] = arr
    for split in ("train", "test"):
        x, y = out[f"x_{split}"], out[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise CorruptArchiveError(f"{d}: MNIST {split} images {x.shape} and labels {y.shape} do not match")
        out[f"x_{split}"] = x[..., None]
    return out


def _find_mnist(dirs: Iterable[Path]) -> Path | None:
    for d in dirs:
        for cand in (d / "mnist", d):
            if all((cand / f).is_file() for f in MNIST_FILES):
                return cand
    return None


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    *,
    verify: bool = True,
    urlopen: Callable[..., Any] | None = None,
) -> Dataset:
    """Load MNIST: x ``(60000, 28, 28, 1)`` / ``(10000, 28, 28, 1)`` float32 in [0, 1].

    Looks in ``data_dir`` (or ``$NTKNB_DATA_DIR``), then :func:`cache_dir`, then downloads
    the official files (if ``download``) into ``<cache_dir>/mnist/``. See the module
    docstring. ``verify=False`` skips the official-md5 check of local files (the
    provenance then says so). ``urlopen`` replaces the network opener (tests).
    """
    cache = cache_dir()
    dirs = _resolve_dirs(data_dir, cache)
    src = _find_mnist(dirs)
    if src is None:
        target = cache / "mnist"
        if download:
            errors = []
            for fname, md5 in MNIST_FILES.items():
                if (target / fname).is_file():
                    continue
                try:
                    globals()["download"](
                        [m + fname for m in MNIST_MIRRORS], target / fname,
                        algorithm="md5", expected=md5, gunzipped=True, urlopen=urlopen,
                    )
                except (ChecksumError, CorruptArchiveError):
                    raise
                except DataError as e:
                    errors.append(str(e))
            if errors:
                raise DataNotFoundError(_mnist_missing_message(dirs, "; ".join(errors)))
            src = target
        else:
            raise DataNotFoundError(_mnist_missing_message(dirs, "download=False"))

    files = [src / f for f in MNIST_FILES]
    sha = hashlib.sha256()
    for p in files:
        sha.update(f"{p.name}:{_hash_file(p, 'sha256')}\n".encode())
    digest = sha.hexdigest()
    cpath = _cache_path(cache, "mnist", "idx" if verify else "idx-unverified", "sha256", digest)
    hit = _load_cache(cpath, "mnist", "sha256", digest, (28, 28, 1))
    if hit is not None:
        arrays, prov, classes = hit
        return _to_dataset("mnist", arrays, classes, prov)

    arrays = read_mnist_idx(src, verify=verify)
    note = (
        "Official MNIST IDX files; "
        + ("md5 of each uncompressed payload verified against the official values. "
           if verify else "md5 of the payloads NOT verified (verify=False). ")
        + "The checksum is sha256 over the per-file sha256 digests of the four .gz files."
    )
    prov = Provenance("mnist", str(src), "sha256", digest, lossy=False, note=note)
    _save_cache(cpath, arrays, prov, MNIST_CLASSES)
    return _to_dataset("mnist", arrays, MNIST_CLASSES, prov)


def _brief(reason: str, limit: int = 300) -> str:
    """The reason a download failed, on one short line (the fix comes first in the message)."""
    if reason == "download=False":
        return "Not downloaded (download=False)."
    text = " ".join(reason.split())
    return "Download failed: " + (text if len(text) <= limit else text[: limit - 3] + "...")


def _mnist_missing_message(dirs: Sequence[Path], reason: str) -> str:
    files = ", ".join(MNIST_FILES)
    return (
        f"MNIST not found: put the four official files {files} into {dirs[0] / 'mnist'}"
        + (f" or {dirs[-1] / 'mnist'}" if len(dirs) > 1 else "")
        + f", or set NTKNB_DATA_DIR to a directory containing mnist/ with them (from {MNIST_MIRRORS[0]}). "
        + _brief(reason)
    )


# --------------------------------------------------------------------------- CIFAR-10
class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays (as found in the CIFAR-10 batches)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
        ("_codecs", "encode"): ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        target = self._ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch")
        return super().find_class(*target)


def _unpickle(data: bytes, what: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:
        raise CorruptArchiveError(f"{what}: cannot unpickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise CorruptArchiveError(f"{what}: expected a dict, got {type(obj).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_batch(data: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(data, what)
    try:
        x = np.asarray(d["data"], dtype=np.uint8)
        y = np.asarray(d["labels"], dtype=np.int64)
        x = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (KeyError, ValueError) as e:
        raise CorruptArchiveError(f"{what}: not a CIFAR-10 batch ({e})") from e
    if x.shape[0] != y.shape[0]:
        raise CorruptArchiveError(f"{what}: {x.shape[0]} images but {y.shape[0]} labels")
    return x, y


def read_cifar10_python(source: str | os.PathLike) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Decode the official CIFAR-10 python version (``.tar.gz`` or extracted folder).

    Returns (uint8 arrays ``x_train (N, 32, 32, 3)``, ``y_train (N,)``, ``x_test``,
    ``y_test``; class names from ``batches.meta``). Raises :class:`CorruptArchiveError`
    on a truncated or invalid archive.
    """
    source = Path(source)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    blobs: dict[str, bytes] = {}
    if source.is_dir():
        for n in names:
            p = source / n
            if not p.is_file():
                raise CorruptArchiveError(f"{source}: missing {n}")
            blobs[n] = p.read_bytes()
    else:
        try:
            with tarfile.open(source, "r:*") as tar:
                for m in tar:
                    base = m.name.rsplit("/", 1)[-1]
                    if m.isfile() and base in names:
                        f = tar.extractfile(m)
                        assert f is not None
                        blobs[base] = f.read()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise CorruptArchiveError(
                f"{source}: corrupted or truncated archive ({type(e).__name__}: {e}); delete it and retry"
            ) from e
        missing = [n for n in names if n not in blobs]
        if missing:
            raise CorruptArchiveError(f"{source}: not a CIFAR-10 python archive, missing {missing}")
    xs, ys = zip(*(_cifar_batch(blobs[f"data_batch_{i}"], f"{source}:data_batch_{i}") for i in range(1, 6)))
    x_test, y_test = _cifar_batch(blobs["test_batch"], f"{source}:test_batch")
    meta = _unpickle(blobs["batches.meta"], f"{source}:batches.meta")
    classes = tuple(
        (c.decode() if isinstance(c, bytes) else str(c)) for c in meta.get("label_names", CIFAR10_CLASSES)
    )
    arrays = {
        "x_train": np.concatenate(xs), "y_train": np.concatenate(ys),
        "x_test": x_test, "y_test": y_test,
    }
    return arrays, classes


def _decode_image(data: bytes, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise CorruptArchiveError(f"{what}: cannot decode image ({e})") from e


def read_image_folder(
    source: str | os.PathLike, class_names: Sequence[str] = CIFAR10_CLASSES, *,
    image_shape: tuple[int, int, int] | None = None, complete: bool = False,
) -> dict[str, np.ndarray]:
    """Decode an image-folder tree ``{train,test}/<class>/<file>`` (directory or tarball).

    Class ``class_names[i]`` gets label ``i``; files are ordered by class, then by file
    name. An optional single top-level folder in a tarball is allowed. Returns uint8
    arrays ``x_train (N, H, W, 3)``, ``y_train (N,)``, ``x_test``, ``y_test``.

    ``complete``: every class must have images in both splits; ``image_shape``: every image
    must decode to this ``(H, W, 3)`` (CIFAR-10: ``(32, 32, 3)``). Otherwise
    :class:`CorruptArchiveError` (a :class:`DataError`) naming the missing classes or the
    first image of another size -- before any image of a wrong tree is cached.
    """
    source = Path(source)
    index = {c: i for i, c in enumerate(class_names)}
    found: dict[tuple[str, int], list[tuple[str, bytes | Path]]] = {}
    seen_classes: set[str] = set()

    def add(parts: list[str], payload: bytes | Path) -> None:
        # parts: [..., split, class, file]
        if len(parts) < 3 or not parts[-1].lower().endswith(_IMAGE_SUFFIXES):
            return
        split, cls, fname = parts[-3], parts[-2], parts[-1]
        if split not in ("train", "test") or fname.startswith("."):
            return
        if cls not in index:
            raise CorruptArchiveError(
                f"{source}: unknown class folder {split}/{cls!r}; expected one of {list(class_names)}"
            )
        seen_classes.add(cls)
        found.setdefault((split, index[cls]), []).append((fname, payload))

    if source.is_dir():
        for p in source.rglob("*"):
            if p.is_file():
                add(list(p.relative_to(source).parts), p)
    else:
        try:
            with tarfile.open(source, "r:*") as tar:
                for m in tar:
                    if m.isfile():
                        parts = m.name.strip("/").split("/")
                        if parts[-1].lower().endswith(_IMAGE_SUFFIXES):
                            f = tar.extractfile(m)
                            assert f is not None
                            add(parts, f.read())
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise CorruptArchiveError(
                f"{source}: corrupted or truncated archive ({type(e).__name__}: {e}); delete it and retry"
            ) from e

    if complete:
        for split in ("train", "test"):
            missing = [c for i, c in enumerate(class_names) if not found.get((split, i))]
            if missing:
                raise CorruptArchiveError(
                    f"{source}: no images for class(es) {missing} under {split}/; an image-folder copy of this "
                    f"dataset needs {split}/<class>/ for each of {list(class_names)}"
                )
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        xs, ys = [], []
        for label in range(len(class_names)):
            for fname, payload in sorted(found.get((split, label), []), key=lambda t: t[0]):
                data = payload.read_bytes() if isinstance(payload, Path) else payload
                img = _decode_image(data, f"{source}:{split}/{class_names[label]}/{fname}")
                if image_shape is not None and img.shape != tuple(image_shape):
                    raise CorruptArchiveError(
                        f"{source}:{split}/{class_names[label]}/{fname}: image of shape {img.shape}, expected "
                        f"{tuple(image_shape)}; this is not a copy of the dataset at its own resolution"
                    )
                xs.append(img)
                ys.append(label)
        if not xs:
            raise CorruptArchiveError(f"{source}: no images under {split}/<class>/")
        shapes = {x.shape for x in xs}
        if len(shapes) != 1:
            raise CorruptArchiveError(f"{source}: images of different sizes in {split}: {sorted(shapes)}")
        out[f"x_{split}"] = np.stack(xs)
        out[f"y_{split}"] = np.asarray(ys, dtype=np.int64)
    return out


def _find_cifar(dirs: Iterable[Path]) -> tuple[str, Path] | None:
    """(kind, path) of the first CIFAR-10 source; official before the JPEG copy."""
    dirs = list(dirs)
    for d in dirs:
        for base in (d, d / "cifar10"):
            if (base / CIFAR10_ARCHIVE).is_file():
                return "official", base / CIFAR10_ARCHIVE
            if (base / "cifar-10-batches-py" / "data_batch_1").is_file():
                return "official-dir", base / "cifar-10-batches-py"
        for base in (d, d / "cifar10"):
            if (base / CIFAR10_JPEG_ARCHIVE).is_file():
                return "imagefolder-tar", base / CIFAR10_JPEG_ARCHIVE
            folder = base / CIFAR10_JPEG_ARCHIVE.removesuffix(".tar.gz")
            if (folder / "train").is_dir() and (folder / "test").is_dir():
                return "imagefolder-dir", folder
    return None


def load_cifar10(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    *,
    verify: bool = True,
    urlopen: Callable[..., Any] | None = None,
) -> Dataset:
    """Load CIFAR-10: x ``(50000, 32, 32, 3)`` / ``(10000, 32, 32, 3)`` float32 in [0, 1].

    Sources, in order (see the module docstring): the official ``cifar-10-python.tar.gz``
    (md5 verified) or ``cifar-10-batches-py/``; the lossy JPEG image-folder copy
    ``cifar10-jpeg-imagefolder.tar.gz`` (sha256 verified) or ``cifar10-jpeg-imagefolder/``
    -- each in ``data_dir`` (or ``$NTKNB_DATA_DIR``), then :func:`cache_dir`; then the
    official download (if ``download``). ``verify=False`` skips the checks of local
    archives against the known checksums. Decoding the 60,000 JPEGs takes a while the
    first time; the decoded arrays are then cached in ``<cache_dir>/decoded/``.
    """
    cache = cache_dir()
    dirs = _resolve_dirs(data_dir, cache)
    found = _find_cifar(dirs)
    url = None
    if found is None:
        if not download:
            raise DataNotFoundError(_cifar_missing_message(dirs, "download=False"))
        try:
            path = globals()["download"](
                CIFAR10_URL, cache / CIFAR10_ARCHIVE, algorithm="md5", expected=CIFAR10_MD5, urlopen=urlopen
            )
        except (ChecksumError, CorruptArchiveError):
            raise
        except DataError as e:
            raise DataNotFoundError(_cifar_missing_message(dirs, str(e))) from e
        found = ("official", path)
        url = CIFAR10_URL
    kind, path = found

    if kind == "official":
        algo, digest = "md5", _hash_file(path, "md5")
        expected = CIFAR10_MD5
    elif kind == "imagefolder-tar":
        algo, digest = "sha256", _hash_file(path, "sha256")
        expected = CIFAR10_JPEG_SHA256 if path.name == CIFAR10_JPEG_ARCHIVE else None
    else:  # a directory: hash of the listing (path, size, mtime) as the cache key
        algo, digest, expected = "sha256-tree-stat", _tree_stat_hash(path), None
    verified = expected is not None and verify
    if verified and digest != expected:
        raise ChecksumError(
            f"{path}: {algo} is {digest}, expected {expected}; the file is corrupted or not the "
            "expected release. Delete it (it will be downloaded again) or pass verify=False."
        )

    cpath = _cache_path(cache, "cifar10", kind, algo, digest)
    hit = _load_cache(cpath, "cifar10", algo, digest, (32, 32, 3))
    if hit is not None:
        arrays, prov, classes = hit
        return _to_dataset("cifar10", arrays, classes, prov)

    lossy = kind.startswith("imagefolder")
    if lossy:
        arrays = read_image_folder(path, CIFAR10_CLASSES, image_shape=(32, 32, 3), complete=True)
        classes = CIFAR10_CLASSES
        note = (
            "Image-folder copy of CIFAR-10 (the shared copy is JPEG quality 75 with chroma "
            "subsampling); within a class the order is by file name, not the official order."
        )
    else:
        arrays, classes = read_cifar10_python(path)
        note = "Official CIFAR-10 python version (pickled batches)."
    if kind.endswith("dir"):
        note += " Source is a directory; its checksum hashes the file listing (path, size, mtime)."
    elif verified:
        note += f" {algo} verified against the known value."
    elif expected is not None:
        note += f" {algo} NOT verified (verify=False)."
    else:
        note += f" {algo} not checked against a known value."
    if url:
        note += f" Downloaded from {url}."
    prov = Provenance("cifar10", str(path), algo, digest, lossy=lossy, note=note)
    _save_cache(cpath, arrays, prov, classes)
    return _to_dataset("cifar10", arrays, classes, prov)


def _cifar_missing_message(dirs: Sequence[Path], reason: str) -> str:
    where = " or ".join(str(d) for d in dirs)
    return (
        f"CIFAR-10 not found: put the official {CIFAR10_ARCHIVE} (or an image-folder copy "
        f"{CIFAR10_JPEG_ARCHIVE}) into {where}, or set NTKNB_DATA_DIR to a directory containing it "
        f"(from {CIFAR10_URL}, md5 {CIFAR10_MD5}). " + _brief(reason)
    )


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    **kwargs: Any,
) -> Dataset:
    """Load ``name`` in :data:`DATASETS` (``"mnist"``, ``"cifar10"``); see the loaders."""
    loaders = {"mnist": load_mnist, "cifar10": load_cifar10}
    if name not in loaders:
        raise ValueError(f"name: unknown dataset {name!r}; allowed values are {list(DATASETS)}")
    return loaders[name](data_dir, download, **kwargs)


# --------------------------------------------------------------------------- tasks
def _resolve_classes(dataset: Dataset, classes: Sequence[str | int] | None) -> list[int]:
    return _class_indices(dataset.class_names, classes)


def _class_indices(names: Sequence[str], classes: Sequence[str | int] | None, what: str = "classes") -> list[int]:
    """The indices of ``classes`` (``None``: all) among ``names``; ``ValueError`` starting with
    ``what`` on an unknown, repeated or single class."""
    names = tuple(names)
    if classes is None:
        return list(range(len(names)))
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise ValueError(
            f"{what}: expected None or a tuple of class names/indices, got {classes!r}; "
            f"allowed names {list(names)} or indices 0..{len(names) - 1}"
        )
    out = []
    for c in classes:
        if isinstance(c, (bool, np.bool_)):
            idx = None
        elif isinstance(c, (int, np.integer)):
            idx = int(c) if 0 <= int(c) < len(names) else None
        elif isinstance(c, str):
            idx = names.index(c) if c in names else None
        else:
            idx = None
        if idx is None:
            raise ValueError(
                f"{what}: unknown class {c!r}; allowed names {list(names)} or indices 0..{len(names) - 1}"
            )
        out.append(idx)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: duplicate classes in {tuple(classes)!r}; each class may appear once")
    if len(out) < 2:
        raise ValueError(
            f"{what}: need at least 2 classes, got {tuple(classes)!r}; allowed names {list(names)}"
        )
    return out


def check_task_sizes(
    dataset: str,
    classes: Sequence[str | int] | None = None,
    *,
    train: Sequence[tuple[str, int]] = (),
    test: Sequence[tuple[str, int]] = (),
    classes_name: str = "classes",
) -> list[int]:
    """The checks of :func:`make_task` that need no loaded data, against the standard release of
    ``dataset`` (:data:`CLASS_COUNTS`): for a parameter schema, so that ``ntknb run --dry-run``
    refuses what the run would refuse after loading the data.

    ``classes``: ``None`` (all classes) or at least two distinct class names / indices of
    ``dataset`` (parameter ``classes_name``). ``train`` / ``test``: ``(parameter, size)`` pairs
    of the sizes drawn from that split (a name such as ``"n_test + n_heldout"`` for a sum); each
    must be a positive multiple of the number of classes ``k``, at most ``k`` times the smallest
    of those classes in that split. Returns the class indices; ``ValueError`` naming the
    parameter and its allowed values otherwise. :func:`make_task` checks the loaded data again."""
    if dataset not in CLASS_COUNTS:
        raise ValueError(f"dataset: expected one of {list(CLASS_COUNTS)}, got {dataset!r}")
    idx = _class_indices(CLASS_NAMES[dataset], classes, what=_param_label(classes_name))
    k = len(idx)
    names = CLASS_NAMES[dataset]
    for split, sizes in (("train", train), ("test", test)):
        counts = [CLASS_COUNTS[dataset][split][i] for i in idx]
        smallest = min(counts)
        for name, value in sizes:
            label = _param_label(name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{label} must be a positive multiple of the number of classes {k}, got {value!r}")
            if value % k:
                lo, hi = (value // k) * k, (value // k + 1) * k
                raise ValueError(f"{label} must be a multiple of the number of classes {k} (class-balanced "
                                 f"subsample), got {value}: e.g. {lo or k} or {hi}")
            if value > k * smallest:
                worst = names[idx[counts.index(smallest)]]
                raise ValueError(
                    f"{label} must be at most {k * smallest} ({k} x {smallest}, the images of class {worst!r} in "
                    f"{dataset}'s {split} split: a class-balanced subsample of {k} classes), got {value}"
                )
    return idx


def _param_label(name: str) -> str:
    return f"parameter {name!r}" if name.isidentifier() else f"parameters {name}"


def _check_size(name: str, value: Any, k: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer divisible by the number of classes {k}, got {value!r}")
    value = int(value)
    if value % k:
        lo, hi = (value // k) * k, (value // k + 1) * k
        raise ValueError(
            f"{name}={value} is not divisible by the number of classes {k}; "
            f"allowed values are multiples of {k}, e.g. {lo or k} or {hi}"
        )
    return value


def _encode(labels: np.ndarray, k: int) -> np.ndarray:
    if k == 2:
        return np.where(labels == 0, -1.0, 1.0).astype(np.float32)[:, None]
    return (np.eye(k, dtype=np.float32)[labels] - np.float32(1.0 / k)).astype(np.float32)


def make_task(
    dataset: Dataset,
    classes: Sequence[str | int] | None = None,
    n_train: int = 1000,
    n_test: int = 200,
    seed: int = 0,
) -> Task:
    """Class-balanced, seeded subsample of ``dataset`` with encoded targets.

    Args:
        dataset: a :class:`Dataset`.
        classes: ``None`` (all classes) or a tuple of at least two distinct class names
            or indices, e.g. ``("airplane", "automobile")`` or ``(3, 5)``; task label
            ``i`` is ``classes[i]``.
        n_train, n_test: total sizes, split evenly over the classes (must be divisible
            by the number of classes ``k`` and at most ``k`` times the smallest class).
        seed: non-negative int; same seed, same subset and order.

    Returns:
        :class:`Task` with ``x_* (n, H, W, C)`` float32, ``y_*`` float32 ``(n, 1)`` (±1,
        binary: -1 for ``classes[0]``) or ``(n, k)`` centred one-hot, ``labels_*`` int64
        ``(n,)``. Examples are shuffled (classes interleaved).
    """
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset: expected an ntknb.data.Dataset, got {type(dataset).__name__}")
    idx = _resolve_classes(dataset, classes)
    k = len(idx)
    n_train = _check_size("n_train", n_train, k)
    n_test = _check_size("n_test", n_test, k)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed: expected an integer with 0 <= seed < 2**32, got {seed!r}")
    for pname, n, y in (("n_train", n_train, dataset.labels_train), ("n_test", n_test, dataset.labels_test)):
        counts = np.bincount(y, minlength=dataset.n_classes)[idx]
        if n // k > counts.min():
            worst = dataset.class_names[idx[int(np.argmin(counts))]]
            raise ValueError(
                f"{pname}={n} asks for {n // k} examples per class but class {worst!r} has only "
                f"{counts.min()}; allowed values are multiples of {k} up to {k * int(counts.min())}"
            )

    rng = np.random.default_rng(int(seed))

    def sample(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        per = n // k
        chosen, labels = [], []
        for i, c in enumerate(idx):
            pool = np.flatnonzero(y == c)
            chosen.append(np.sort(rng.choice(pool, size=per, replace=False)))
            labels.append(np.full(per, i, dtype=np.int64))
        order = rng.permutation(n)
        sel = np.concatenate(chosen)[order]
        return np.ascontiguousarray(x[sel], dtype=np.float32), np.concatenate(labels)[order]

    x_tr, l_tr = sample(dataset.x_train, dataset.labels_train, n_train)
    x_te, l_te = sample(dataset.x_test, dataset.labels_test, n_test)
    return Task(
        x_train=x_tr, y_train=_encode(l_tr, k),
        x_test=x_te, y_test=_encode(l_te, k),
        labels_train=l_tr, labels_test=l_te,
        classes=tuple(dataset.class_names[c] for c in idx),
        provenance=dataset.provenance,
    )
