"""Weights files: a damaged, swapped or ill-described file is refused with one clear line, and
the same weights always give the same bytes."""

import errno
import json
import os
import struct
import subprocess
import sys

import pytest
import torch

from seqmnist import weights as w
from seqmnist.errors import CheckpointError
from seqmnist.models import build_model
from seqmnist.paths import ROOT

META = {"epochs_trained": 1, "config": {"epochs": 1}}


def save(tmp_path, task="classify", arch="lstm-1x8", seed=0, name="w.safetensors"):
    path = tmp_path / name
    w.save_weights(build_model(task, arch, seed=seed), path, META)
    return path


def tensor_region(path, name):
    """Where tensor ``name``'s bytes lie in the file (start, end)."""
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    start, end = json.loads(data[8:8 + size])[name]["data_offsets"]
    return 8 + size + start, 8 + size + end


def patch(path, offset, new: bytes):
    data = bytearray(path.read_bytes())
    data[offset:offset + len(new)] = new
    path.write_bytes(bytes(data))


def edit_sidecar(path, **changes):
    side = w.sidecar_path(path)
    meta = json.loads(side.read_text())
    meta.update(changes)
    side.write_text(json.dumps(meta))


@pytest.mark.parametrize("task, arch", [("classify", "lstm-1x8"), ("predict", "gru-3x8"),
                                        ("classify", "mlp")])
def test_round_trip(tmp_path, task, arch):
    model = build_model(task, arch, seed=3)
    path = tmp_path / "m.safetensors"
    w.save_weights(model, path, META)
    loaded, meta = w.load_weights(path, task=task, arch=arch)
    assert (meta["task"], meta["architecture"], meta["epochs_trained"]) == (task, arch, 1)
    assert meta["tensors_sha256"] == w.tensors_sha256(path.read_bytes())
    expected = model.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key


@pytest.mark.parametrize("new, message", [
    (struct.pack("<f", float("nan")), "non-finite weights .* core.input.weight"),
    (struct.pack("<f", float("inf")), "non-finite weights .* core.input.weight"),
    (None, "tensors differ from the tensors_sha256")])
def test_a_damaged_tensor_is_refused(tmp_path, new, message):
    path = save(tmp_path)
    start, end = tensor_region(path, "core.input.weight")
    offset = start + 4  # the second value, well inside the tensor data
    if new is None:  # one flipped low mantissa bit: still a finite number
        new = bytes([path.read_bytes()[offset] ^ 0x01])
    patch(path, offset, new)
    with pytest.raises(CheckpointError, match=f"{path}: {message}"):
        w.load_weights(path)


def test_non_finite_weights_are_refused_even_with_a_matching_hash(tmp_path):
    path = save(tmp_path)
    start, _ = tensor_region(path, "head.0.bias")
    patch(path, start, struct.pack("<f", float("nan")))
    edit_sidecar(path, tensors_sha256=w.tensors_sha256(path.read_bytes()))
    with pytest.raises(CheckpointError, match="non-finite weights .* head.0.bias"):
        w.load_weights(path)
    model = build_model("classify", "lstm-1x8", seed=0)
    with torch.no_grad():
        model.head[0].bias[0] = float("inf")
    with pytest.raises(CheckpointError, match="non-finite"):  # never written in the first place
        w.save_weights(model, tmp_path / "inf.safetensors", META)
    assert not list(tmp_path.glob("inf*"))


def test_a_sidecar_hash_of_other_tensors_is_refused(tmp_path):
    path = save(tmp_path)
    other = save(tmp_path, seed=1, name="other.safetensors")
    edit_sidecar(path, tensors_sha256=json.loads(w.sidecar_path(other).read_text())[
        "tensors_sha256"])
    with pytest.raises(CheckpointError, match="tensors differ from the tensors_sha256"):
        w.load_weights(path)


def test_a_sidecar_without_hash_is_refused_until_recorded(tmp_path):
    path = save(tmp_path)
    side = w.sidecar_path(path)
    meta = json.loads(side.read_text())
    digest = meta.pop("tensors_sha256")
    side.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="records no tensors_sha256.*record_tensors_sha256"):
        w.load_weights(path)
    assert w.record_tensors_sha256(path) == digest
    assert json.loads(side.read_text()) == {**meta, "tensors_sha256": digest}
    w.load_weights(path)
    edit_sidecar(path, tensors_sha256="0" * 64)
    with pytest.raises(CheckpointError, match="tensors differ"):
        w.record_tensors_sha256(path)


@pytest.mark.parametrize("content, message", [
    ({"task": "classify"}, "no architecture name"),
    ({"task": "classify", "architecture": 128}, "no architecture name"),
    ({"task": "classify", "architecture": "lstm-one"}, "unknown model name 'lstm-one'"),
    ({"task": "predict", "architecture": "mlp"}, "unknown model name 'mlp'"),
    ({"task": "regress", "architecture": "lstm-1x8"}, "unknown task 'regress'"),
    ({"architecture": "lstm-1x8"}, "unknown task None"),
    (["classify", "lstm-1x8"], "a JSON list, not an object")])
def test_an_ill_formed_sidecar_is_refused(tmp_path, content, message):
    path = save(tmp_path)
    w.sidecar_path(path).write_text(json.dumps(content))
    for read in (w.read_sidecar, w.load_weights):
        with pytest.raises(CheckpointError, match=message) as info:
            read(path)
        assert str(w.sidecar_path(path)) in str(info.value)


def test_a_sidecar_only_record_reads_without_weights(tmp_path):
    """Campaigns 1 and 2 kept only sidecars: read_sidecar needs no file beside them."""
    side = tmp_path / "lstm-1x64.json"
    side.write_text(json.dumps({"task": "classify", "architecture": "lstm-1x64", "x": 1}))
    assert w.read_sidecar(tmp_path / "lstm-1x64.safetensors")["x"] == 1
    records = sorted((ROOT / "weights" / "sweeps").glob("campaign[12]/*/*.json"))
    assert records and all(w.read_sidecar(p.with_suffix(".safetensors")) for p in records)


def test_a_header_or_tensors_of_another_model_are_refused(tmp_path):
    path = save(tmp_path)
    edit_sidecar(path, architecture="gru-1x8")  # the sidecar of another model
    with pytest.raises(CheckpointError, match="header records classify lstm-1x8, its sidecar "
                                              "classify gru-1x8"):
        w.load_weights(path)
    # header and sidecar agree, the tensors are another model's
    swapped = tmp_path / "swapped.safetensors"
    swapped.write_bytes(w.save_bytes(build_model("classify", "lstm-1x16").state_dict(),
                                     metadata={"model": json.dumps(
                                         {"architecture": "lstm-1x8", "task": "classify"})}))
    w.sidecar_path(swapped).write_text(json.dumps(
        {"task": "classify", "architecture": "lstm-1x8",
         "tensors_sha256": w.tensors_sha256(swapped.read_bytes())}))
    with pytest.raises(CheckpointError, match="tensors do not match a classify lstm-1x8"):
        w.load_weights(swapped)


SAVE_SCRIPT = """
import sys
from pathlib import Path
from seqmnist.models import build_model
from seqmnist.weights import save_weights
model = build_model("predict", "gru-1x8", seed=5)
for i in range(6):
    save_weights(model, Path(sys.argv[1]) / f"{i}.safetensors", {"config": {"epochs": 1}})
"""


def test_the_same_weights_give_the_same_bytes_in_every_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        subprocess.run([sys.executable, "-c", SAVE_SCRIPT, str(tmp_path / name)], env=env,
                       check=True, timeout=120)
    files = sorted(tmp_path.glob("*/*.safetensors"))
    assert len(files) == 12 and len({p.read_bytes() for p in files}) == 1
    assert len({w.sidecar_path(p).read_bytes() for p in files}) == 1
    w.load_weights(files[0], task="predict", arch="gru-1x8")


def test_a_failed_write_raises_naming_the_path_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = save(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    model = build_model("classify", "lstm-1x8", seed=1)
    with pytest.raises(CheckpointError, match=f"{path}: cannot write .*No space left"):
        w.save_weights(model, path, META)
    with pytest.raises(CheckpointError, match=f"{w.sidecar_path(path)}: cannot write"):
        w.write_sidecar(path, model, META)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary file
    w.load_weights(path)

    def cannot_serialize(*args, **kwargs):
        raise RuntimeError("tensors share memory")

    monkeypatch.setattr(w, "save_bytes", cannot_serialize)
    with pytest.raises(CheckpointError, match=f"{path}: cannot serialize .*share memory"):
        w.save_weights(model, path, META)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_the_temporary_file_name_is_unique(tmp_path):
    """Two processes saving the same path never share a temporary file: the old fixed name
    ``.NAME.tmp``, here taken by a folder, is not used."""
    (tmp_path / ".w.safetensors.tmp").mkdir()
    w.load_weights(save(tmp_path))


def test_a_longer_history_keeps_the_hash_of_the_weights_on_disk(tmp_path):
    """train rewrites only the sidecar when an epoch does not improve: the file still holds the
    best weights, and the sidecar still vouches for them, not for the model in memory."""
    path = save(tmp_path)
    best = w.load_weights(path)[0].state_dict()
    w.write_sidecar(path, build_model("classify", "lstm-1x8", seed=9), {**META, "epochs_trained": 2})
    model, meta = w.load_weights(path)
    assert meta["epochs_trained"] == 2
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())


def test_every_committed_weights_file_loads_with_every_check():
    """The shipped models and the campaigns' runs (weights/sweeps/campaign3 onwards)."""
    root = ROOT / "weights"
    files = sorted(root.rglob("*.safetensors"))
    shipped = [p for p in files if p.parent.name in ("classify", "predict", "baselines")
               and p.parent.parent == root]
    assert len(shipped) == 18 and len(files) > len(shipped)
    for path in files:
        model, meta = w.load_weights(path)
        assert meta["tensors_sha256"] == w.tensors_sha256(path.read_bytes()), path
