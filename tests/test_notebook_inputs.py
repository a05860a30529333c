"""Bad notebook inputs stop the task notebooks at their parameter check (cell 2) with one line
naming what is wrong: missing weights, a device this torch cannot use, an output folder that
cannot be written; and the in-painting notebook says which model it uses, and why, truthfully."""

import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from papermill import execute_notebook
from papermill.exceptions import PapermillExecutionError

from seqmnist import notebook as nbk
from seqmnist.errors import ConfigError
from seqmnist.weights import read_sidecar

ROOT = Path(__file__).resolve().parents[1]
PREDICTORS = ["lstm-1x32", "lstm-1x64", "lstm-1x128", "lstm-3x32",
              "gru-1x32", "gru-1x64", "gru-1x128", "gru-3x32"]
WEIGHTS_NOTEBOOKS = ["classification", "prediction", "inpainting"]  # they load shipped weights


@pytest.fixture(autouse=True)
def venv_python_first(monkeypatch):
    """The `python3` kernel spec runs plain `python`: make that this interpreter."""
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def run(name, tmp_path, cells=None, **parameters):
    """Execute notebooks/<name>.ipynb, or only its first ``cells`` cells (a copy in tmp_path)."""
    path = ROOT / "notebooks" / f"{name}.ipynb"
    if cells is not None:
        nb = nbformat.read(path, as_version=4)
        nb.cells = nb.cells[:cells]
        path = tmp_path / f"{name}.head.ipynb"
        nbformat.write(nb, path)
    return execute_notebook(str(path), str(tmp_path / f"{name}.out.ipynb"), parameters=parameters,
                            kernel_name="python3", progress_bar=False, cwd=str(ROOT))


def stop_at_check(name, tmp_path, **parameters) -> str:
    """Run ``name`` expecting a ConfigError from its parameter check; returns the message."""
    never = tmp_path / "never"
    with pytest.raises(PapermillExecutionError) as info:
        run(name, tmp_path, **{"output_dir": str(never), **parameters})
    assert info.value.ename == "ConfigError"
    assert info.value.exec_count <= 3  # papermill injects a parameters cell after the tagged one
    assert not never.exists()
    return info.value.evalue


def partial_weights(tmp_path, names) -> Path:
    """A weights folder holding the shipped predictors ``names`` only."""
    folder = tmp_path / "weights"
    (folder / "predict").mkdir(parents=True)
    for name in names:
        for suffix in (".safetensors", ".json"):
            shutil.copy(ROOT / "weights" / "predict" / f"{name}{suffix}", folder / "predict")
    return folder


# check_weights

def test_shipped_weights_pass_the_check():
    assert nbk.check_weights("predict", PREDICTORS, "weights") == []
    assert nbk.check_weights("classify", PREDICTORS + ["cnn", "mlp"], "weights") == []


def test_mistyped_weights_dir_names_the_absolute_folder_and_the_files():
    with pytest.raises(ConfigError) as info:
        nbk.check_weights("classify", ["lstm-1x32", "cnn"], "wieghts")
    message = str(info.value)
    assert f"{ROOT / 'wieghts'} (no such folder)" in message
    assert "classify/lstm-1x32.safetensors" in message and "baselines/cnn.safetensors" in message
    assert "allow_missing=True" in message


def test_partial_weights_name_only_the_missing_files(tmp_path):
    folder = partial_weights(tmp_path, ["lstm-1x32"])
    with pytest.raises(ConfigError, match="1 of 2 models: predict/gru-1x32.safetensors;") as info:
        nbk.check_weights("predict", ["lstm-1x32", "gru-1x32"], str(folder))
    assert f"in {folder} for" in str(info.value)
    assert nbk.check_weights("predict", ["lstm-1x32", "gru-1x32"], str(folder),
                             allow_missing=True) == ["gru-1x32"]


# device and output_dir, in check_parameters

SPEC = {"seed": int, "device": str, "output_dir": str}


def test_check_parameters_accepts_usable_devices(tmp_path):
    for device in ("cpu", "auto"):
        nbk.check_parameters({"seed": 0, "device": device, "output_dir": str(tmp_path)}, SPEC)


@pytest.mark.parametrize("device, message", [
    ("banana", "unknown device 'banana'"),
    ("mps", "unsupported device 'mps'"),
    pytest.param("cuda", "sees no CUDA GPU", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="this torch has CUDA")),
])
def test_check_parameters_refuses_an_unusable_device(tmp_path, device, message):
    with pytest.raises(ConfigError, match=message):
        nbk.check_parameters({"seed": 0, "device": device, "output_dir": str(tmp_path)}, SPEC)


def test_output_dir_under_a_file_is_refused_and_nothing_is_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for path, message in [
            (blocker / "out", f"{blocker / 'out'} cannot be created: {blocker} is a file"),
            (blocker, f"{blocker} is a file")]:
        with pytest.raises(ConfigError, match="'output_dir': ") as info:
            nbk.check_parameters({"seed": 0, "device": "cpu", "output_dir": str(path)}, SPEC)
        assert message in str(info.value)
    fresh = tmp_path / "new" / "deeper"
    assert nbk.check_writable_folder(str(fresh)) == fresh and not (tmp_path / "new").exists()


# choose_model (the in-painting notebook's model for its figures)

@pytest.fixture(scope="module")
def sidecars():
    return {name: read_sidecar(ROOT / "weights" / "predict" / f"{name}.safetensors")
            for name in PREDICTORS}


def lowest(sidecars):
    return min(sidecars, key=lambda name: sidecars[name]["validation"]["loss"])


def test_a_requested_model_with_weights_is_used_without_a_missing_note(sidecars):
    requested = next(name for name in PREDICTORS if name != lowest(sidecars))
    chosen, note = nbk.choose_model(requested, sidecars, "the figures")
    assert chosen == requested
    assert note == f"The figures use `{requested}`, as requested."


def test_best_is_the_lowest_validation_loss(sidecars):
    chosen, note = nbk.choose_model("best", sidecars)
    assert chosen == lowest(sidecars) and f"`{chosen}`, the model with the lowest" in note


def test_a_requested_model_without_weights_falls_back_and_says_so(sidecars):
    others = {name: meta for name, meta in sidecars.items() if name != "lstm-1x64"}
    chosen, note = nbk.choose_model("lstm-1x64", others, "the figures")
    assert chosen == lowest(others)
    assert note == (f"The requested model `lstm-1x64` has no weights; the figures use `{chosen}`, "
                    "the model with the lowest validation loss, instead.")
    assert nbk.choose_model("lstm-1x64", {}) == (None, "")


# the notebooks

@pytest.mark.parametrize("name", WEIGHTS_NOTEBOOKS)
def test_mistyped_weights_dir_stops_at_the_check(tmp_path, name):
    message = stop_at_check(name, tmp_path, weights_dir="wieghts")
    assert str(ROOT / "wieghts") in message and "lstm-1x32.safetensors" in message


def test_train_from_scratch_needs_no_weights(tmp_path):
    run("classification", tmp_path, cells=3, weights_dir="wieghts", train_from_scratch=True,
        output_dir=str(tmp_path / "out"))
    assert (tmp_path / "out" / "manifest.json").exists()


def test_allow_missing_passes_the_check(tmp_path):
    folder = partial_weights(tmp_path, ["gru-1x32"])
    with pytest.raises(PapermillExecutionError):
        run("prediction", tmp_path, cells=3, weights_dir=str(folder),
            output_dir=str(tmp_path / "never"))
    run("prediction", tmp_path, cells=3, weights_dir=str(folder), allow_missing=True,
        output_dir=str(tmp_path / "out"))
    assert (tmp_path / "out" / "manifest.json").exists()  # written after the check


@pytest.mark.parametrize("name", WEIGHTS_NOTEBOOKS)
def test_bad_device_stops_at_the_check(tmp_path, name):
    assert "unknown device 'banana'" in stop_at_check(name, tmp_path, device="banana")


@pytest.mark.parametrize("name", ["theory"] + WEIGHTS_NOTEBOOKS)
def test_unwritable_output_dir_stops_at_the_check(tmp_path, name):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    message = stop_at_check(name, tmp_path, output_dir=str(blocker / "out"))
    assert f"{blocker / 'out'} cannot be created" in message


def test_inpainting_uses_a_requested_model_that_exists(tmp_path):
    """Up to the cell that loads the models and writes the weights note (no in-painting)."""
    nb = nbformat.read(ROOT / "notebooks" / "inpainting.ipynb", as_version=4)
    upto = next(i for i, cell in enumerate(nb.cells) if "choose_model" in cell.source) + 1
    executed = run("inpainting", tmp_path, cells=upto, quick=True, architecture="lstm-1x64",
                   output_dir=str(tmp_path / "out"))
    note = (tmp_path / "out" / "weights_note.md").read_text()
    assert note == "*The figures and Gibbs sampling use `lstm-1x64`, as requested.*"
    printed = [o for c in executed.cells for o in c.get("outputs", []) if o.get("name") == "stdout"]
    assert printed == []
