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


def test_recipe_table_lists_every_campaigns_run_and_which_ships(tmp_path):
    import json

    from seqmnist.results import campaign_runs
    from seqmnist.tables import recipe_table

    def sidecar(epochs, shift, train_loss, val_loss, accuracy=None):
        validation = {"loss": val_loss, **({} if accuracy is None else {"accuracy": accuracy})}
        return {"task": "classify", "architecture": "lstm-1x64", "epochs_trained": epochs,
                "best_epoch": epochs - 3,
                "config": {"shift": shift, "epochs": 40 if shift else 25},
                "validation": validation,
                "history": [{"train_loss": 9.0}, {"train_loss": train_loss}]}

    first = sidecar(25, 0, 0.03, 0.0732, 0.9766)
    second = sidecar(40, 2, 0.05, 0.0721, 0.9774)
    under_way = sidecar(12, 2, 0.09, 0.0900, 0.9700)  # 12 of 40 epochs: not a record yet
    for number, meta in ((1, first), (2, second), (3, under_way)):
        folder = tmp_path / "sweeps" / f"campaign{number}" / "classify"
        folder.mkdir(parents=True)
        (folder / "lstm-1x64.json").write_text(json.dumps(meta))
    (tmp_path / "classify").mkdir()
    (tmp_path / "classify" / "lstm-1x64.safetensors").write_bytes(b"")
    (tmp_path / "classify" / "lstm-1x64.json").write_text(json.dumps(second))
    runs = campaign_runs("classify", ["lstm-1x64", "gru-1x32"], weights_dir=tmp_path)
    assert [(c, ships) for c, _, ships in runs["lstm-1x64"]] == [("1", False),
                                                                ("2", True)]
    assert runs["gru-1x32"] == []
    rows = [line for line in recipe_table(runs).splitlines() if "lstm-1x64" in line]
    assert rows == ["| lstm-1x64 | 1 | 25 | 0 | 22 | loss | 0.0300 | 0.0732 | 97.66 % |  |",
                    "| lstm-1x64 | 2 | 40 | 2 | 37 | loss | 0.0500 | 0.0721 | 97.74 % | yes |"]
    predictor = {"a": [("campaign 1", {"validation": {"loss": 0.1}}, True)]}
    assert "accuracy" not in recipe_table(predictor)


def test_sweep_table_marks_the_rate_of_lowest_loss_and_shows_accuracy_for_classifiers():
    from seqmnist.tables import sweep_table

    def candidate(lr, loss, accuracy=None):
        validation = {"loss": loss, **({} if accuracy is None else {"accuracy": accuracy})}
        return {"lr": lr, "best_val_loss": loss, "best_validation": validation}

    record = {"task": "classify", "best_lr": 0.01,
              "candidates": [candidate(0.003, 0.5624, 0.813), candidate(0.01, 0.3868, 0.8666)]}
    assert sweep_table(record).splitlines()[2:] == ["| 0.003 | 0.5624 | 81.30 % |  |",
                                                    "| 0.01 | 0.3868 | 86.66 % | yes |"]
    predictor = {"task": "predict", "best_lr": 0.001, "candidates": [candidate(0.001, 0.2025)]}
    assert sweep_table(predictor).splitlines()[2] == "| 0.001 | 0.2025 | yes |"


def test_short_hardware_names():
    from seqmnist.tables import short_hardware

    assert short_hardware("cuda: NVIDIA H200 + cpu: x86_64, 2 cores") == "NVIDIA H200 + 2-core CPU"
    assert short_hardware("cpu: arm64, 16 cores") == "16-core CPU"
    assert short_hardware("?") == "?"


def test_training_table_reads_each_sidecar_and_marks_untrained_models():
    from seqmnist.tables import training_table

    meta = {"epochs_trained": 30, "best_epoch": 27, "wall_seconds": 5400,
            "config": {"epochs": 40, "lr": 0.00707}, "hardware": "cpu: x86_64, 2 cores"}
    lines = training_table({"gru-1x64": meta, "lstm-1x32": None}).splitlines()
    assert "kept epoch" in lines[0]
    assert lines[2:] == ["| gru-1x64 | 30/40 | 27 | 0.00707 | 1.50 | 2-core CPU |",
                         "| lstm-1x32 | not trained yet |  |  |  |  |"]


def test_learning_curves_pair_cells_of_one_size_by_colour_and_tell_them_apart_by_style():
    from seqmnist import plots

    history = [{"epoch": 1, "val_loss": 0.2}, {"epoch": 2, "val_loss": 0.1}]
    fig = plots.learning_curves({"lstm-1x64": history, "gru-1x64": history, "lstm-1x32": history},
                                ("val_loss",))
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert lines["lstm-1x64"].get_color() == lines["gru-1x64"].get_color()
    assert lines["lstm-1x64"].get_color() != lines["lstm-1x32"].get_color()
    assert (lines["lstm-1x64"].get_linestyle(), lines["gru-1x64"].get_linestyle()) == ("-", "--")


def test_lowest_validation_loss_picks_by_the_validation_split_only():
    from seqmnist.results import lowest_validation_loss

    sidecars = {"a": {"validation": {"loss": 0.08}, "test": {"loss": 0.01}},
                "b": {"validation": {"loss": 0.07}, "test": {"loss": 0.09}}}
    assert lowest_validation_loss(sidecars) == "b"
    assert lowest_validation_loss({}) is None


def test_inpainting_columns_can_put_one_image_per_column(mnist):
    import matplotlib.pyplot as plt
    import numpy as np

    from seqmnist.plots import inpainting_columns

    truth = mnist.test.x[:4].astype(np.float32)
    masked = truth.copy()
    masked[:, 400:404] = -1
    columns = {"filling": truth, "p(x = 1)": np.full_like(truth, 0.5)}
    labels = ["a", "b", "c", "d"]
    tall = inpainting_columns(masked, columns, row_labels=labels)
    wide = inpainting_columns(masked, columns, row_labels=labels, transpose=True)
    assert len(tall.axes) == len(wide.axes) == 12
    assert [ax.get_title() for ax in tall.axes[:3]] == ["masked", "filling", "p(x = 1)"]
    assert [ax.get_title() for ax in wide.axes[:4]] == labels
    assert [wide.axes[4 * r].get_ylabel() for r in range(3)] == ["masked", "filling", "p(x = 1)"]
    # the image in row r, column c of the wide figure is row c, column r of the tall one
    assert np.array_equal(wide.axes[1 * 4 + 3].images[0].get_array(),
                          tall.axes[3 * 3 + 1].images[0].get_array())
    plt.close("all")


def test_seed_table_summarizes_the_seeds_and_names_the_shipped_one(tmp_path):
    """results.seed_runs reads each seed folder's metrics and sidecar; tables.seed_table gives
    mean +- sd and range of the test accuracy and the shipped seed."""
    import json

    from seqmnist.models import build_model
    from seqmnist.results import BASELINE_SEEDS_DIR, seed_runs
    from seqmnist.tables import seed_table
    from seqmnist.weights import save_weights, shipped_path

    for seed, (val, test) in enumerate([(0.990, 0.9900), (0.994, 0.9930), (0.992, 0.9960)]):
        folder = tmp_path / BASELINE_SEEDS_DIR / f"seed{seed}"
        path = shipped_path("classify", "mlp", folder)
        save_weights(build_model("classify", "mlp", seed=seed), path,
                     {"config": {"seed": seed}, "validation": {"accuracy": val}})
        rows = [{"file": "baselines/mlp.safetensors", "test_accuracy": test}]
        (folder / "metrics.json").write_text(json.dumps({"rows": rows}))
        if seed == 1:  # the seed best on validation ships
            shipped = shipped_path("classify", "mlp", tmp_path)
            shipped.parent.mkdir(parents=True)
            shipped.write_bytes(path.read_bytes())
    runs = seed_runs("mlp", tmp_path)
    assert [(r["seed"], r["ships"]) for r in runs] == [(0, False), (1, True), (2, False)]
    table = seed_table({"mlp": runs})
    assert "| mlp | 0, 1, 2 | 99.00 / 99.40 / 99.20 | 99.00 / 99.30 / 99.60 | 99.30 ± 0.30 |" in table
    assert table.rstrip().endswith("| 99.00 to 99.60 | 1 |")
    assert seed_runs("cnn", tmp_path) == []
