"""Parameter checks and the output manifest that report.ipynb reads."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from seqmnist import notebook as nbk  # noqa: E402
from seqmnist.errors import ConfigError  # noqa: E402

SPEC = {"seed": int, "quick": bool, "show_progress": bool, "output_dir": str}
GOOD = {"seed": 0, "quick": True, "show_progress": False, "output_dir": "build/theory"}


def test_check_parameters_accepts_good_values():
    nbk.check_parameters(GOOD, SPEC)


@pytest.mark.parametrize("name, value, message", [
    ("seed", "x", "'seed' must be int, got str 'x'"),
    ("seed", True, "'seed' must be int, got bool"),
    ("seed", 1.5, "'seed' must be int, got float"),
    ("quick", 1, "'quick' must be bool, got int"),
    ("output_dir", 3, "'output_dir' must be str, got int"),
    ("seed", -1, "'seed' must be >= 0"),
    ("output_dir", " ", "'output_dir' must be a non-empty path"),
])
def test_check_parameters_rejects_wrong_values(name, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        nbk.check_parameters({**GOOD, name: value}, SPEC)


def test_check_parameters_reports_a_missing_parameter():
    with pytest.raises(ConfigError, match="'quick' is missing"):
        nbk.check_parameters({k: v for k, v in GOOD.items() if k != "quick"}, SPEC)


def test_unknown_model_name_is_refused():
    assert nbk.check_model_names("classify", ["LSTM-1x32", "cnn"]) == ["lstm-1x32", "cnn"]
    with pytest.raises(ConfigError, match="unknown model name"):
        nbk.check_model_names("predict", ["cnn"])


def test_outputs_manifest_round_trip(tmp_path, capsys):
    out = nbk.Outputs(tmp_path / "task", "task")
    out.table("t", nbk.markdown_table(["a", "b"], [[1, 2]]), caption="Table", display=False)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    out.figure("f", fig, caption="Figure", display=False)
    out.text("p", "Some *computed* prose.", display=False)
    out.table("t", "| a |\n|---|\n| 3 |", display=False)  # replaced, keeps one entry
    manifest = json.loads((tmp_path / "task" / "manifest.json").read_text())
    assert [item["name"] for item in manifest["items"]] == ["f", "p", "t"]
    assert (tmp_path / "task" / "f.png").stat().st_size > 1000
    assert "| 3 |" in (tmp_path / "task" / "t.md").read_text()
    nbk.show_outputs(tmp_path, "task", ["t", "missing", "p"])
    with pytest.raises(ConfigError, match="run the task notebook first"):
        nbk.show_outputs(tmp_path, "nothing")


def test_recipe_table_puts_each_first_run_beside_the_shipped_one():
    from seqmnist.tables import recipe_table

    def sidecar(epochs, shift, train_loss, val_loss, accuracy=None):
        validation = {"loss": val_loss, **({} if accuracy is None else {"accuracy": accuracy})}
        return {"epochs_trained": epochs, "config": {"shift": shift},
                "history": [{"train_loss": 9.0}, {"train_loss": train_loss}],
                "validation": validation}

    first = {"lstm-1x64": sidecar(25, 0, 0.03, 0.0732, 0.9766), "gru-1x32": None}
    shipped = {"lstm-1x64": sidecar(40, 2, 0.05, 0.0721, 0.9774)}
    rows = [line for line in recipe_table(first, shipped).splitlines() if "lstm-1x64" in line]
    assert rows == ["| lstm-1x64 | first | 25 | 0 | 0.0300 | 0.0732 | 97.66 % |",
                    "| lstm-1x64 | shipped | 40 | 2 | 0.0500 | 0.0721 | 97.74 % |"]
    assert "gru-1x32" not in recipe_table(first, shipped)
    assert "accuracy" not in recipe_table({"a": sidecar(30, 0, 0.1, 0.1)}, {})  # predictors


def test_short_hardware_names():
    from seqmnist.tables import short_hardware

    assert short_hardware("cuda: NVIDIA H200 + cpu: x86_64, 2 cores") == "NVIDIA H200 + 2-core CPU"
    assert short_hardware("cpu: arm64, 16 cores") == "16-core CPU"
    assert short_hardware("?") == "?"
