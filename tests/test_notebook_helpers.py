"""Parameter checks and the output manifest that report.ipynb reads."""

import json
from pathlib import Path

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


def test_outputs_manifest_round_trip(tmp_path, monkeypatch):
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
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda item: shown.append(
        getattr(item, "filename", None) or item.data))
    nbk.show_outputs(tmp_path, "task", ["t", "missing", "p"])
    assert "| 3 |" in shown[0] and "missing" in shown[1] and "computed" in shown[2]
    shown.clear()
    nbk.show_outputs(tmp_path, "task", exclude=["p"])   # the rest, in the manifest's order
    assert shown[0].endswith("f.png") and "Figure" in shown[1] and "| 3 |" in shown[2]
    assert not any("computed" in str(item) for item in shown)
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


def _seed_run(root, folder, task, arch, seed, validation, test, **config):
    """A finished run saved under ``root/folder`` with its sidecar and its scored metrics.json."""
    import json

    from seqmnist.evaluate import file_sha256
    from seqmnist.models import build_model
    from seqmnist.weights import save_weights, shipped_path

    config = {"task": task, "arch": arch, "seed": seed, "epochs": 4, **config}
    path = shipped_path(task, arch, root / folder)
    save_weights(build_model(task, arch, seed=seed), path,
                 {"config": config, "epochs_trained": 4, "validation": validation})
    rows = [{"file": str(path.relative_to(root / folder)), "weights_sha256": file_sha256(path),
             **{f"test_{key}": value for key, value in test.items()}}]
    (root / folder / "metrics.json").write_text(json.dumps({"rows": rows}))
    return path


def test_seed_table_summarizes_the_seeds_and_names_the_shipped_one(tmp_path):
    """results.seed_runs reads each seed folder's metrics and sidecar; tables.seed_table gives
    mean +- sd and range of the test accuracy and the shipped seed."""
    from seqmnist.campaign import BASELINE_SEEDS_DIR
    from seqmnist.results import seed_runs
    from seqmnist.tables import seed_table
    from seqmnist.weights import shipped_path

    for seed, (val, test) in enumerate([(0.990, 0.9900), (0.994, 0.9930), (0.992, 0.9960)]):
        path = _seed_run(tmp_path, BASELINE_SEEDS_DIR / f"seed{seed}", "classify", "mlp", seed,
                         {"accuracy": val}, {"accuracy": test, "loss": 0.03})
        if seed == 1:  # the seed best on validation ships
            shipped = shipped_path("classify", "mlp", tmp_path)
            shipped.parent.mkdir(parents=True)
            shipped.write_bytes(path.read_bytes())
            shipped.with_suffix(".json").write_bytes(path.with_suffix(".json").read_bytes())
    runs = seed_runs("classify", "mlp", tmp_path)
    assert [(r["seed"], r["ships"]) for r in runs] == [(0, False), (1, True), (2, False)]
    table = seed_table({"mlp": runs})
    assert "| mlp | 0, 1, 2 | 99.00 / 99.40 / 99.20 | 99.00 / 99.30 / 99.60 | 99.30 ± 0.30 |" in table
    assert table.rstrip().endswith("| 99.00 to 99.60 | 1 |")
    assert seed_runs("classify", "cnn", tmp_path) == []


def test_seed_runs_of_a_recurrent_model_are_the_campaign_runs_of_its_recipe(tmp_path):
    """Campaign runs that differ from the shipped one by more than the seed (another rate) are
    other recipes, not seeds; a run nobody scored yet is left out."""
    import json

    from seqmnist.models import build_model
    from seqmnist.results import seed_runs
    from seqmnist.tables import seed_row, seed_summary, seed_table
    from seqmnist.weights import save_weights, shipped_path

    sweeps = Path("sweeps")
    shipped = _seed_run(tmp_path, sweeps / "campaign3", "predict", "lstm-1x4", 0,
                        {"loss": 0.090}, {"loss": 0.0900, "loss_per_image": 70.0}, lr=0.01)
    _seed_run(tmp_path, sweeps / "campaign4", "predict", "lstm-1x4", 1, {"loss": 0.094},
              {"loss": 0.0950}, lr=0.01)
    _seed_run(tmp_path, sweeps / "campaign7", "predict", "lstm-1x4", 2, {"loss": 0.080},
              {"loss": 0.0800}, lr=0.03)   # another rate: not a seed of the recipe
    unscored = _seed_run(tmp_path, sweeps / "campaign5", "predict", "lstm-1x4", 2,
                         {"loss": 0.092}, {"loss": 0.0920}, lr=0.01)
    (unscored.parents[1] / "metrics.json").write_text('{"rows": []}')
    target = shipped_path("predict", "lstm-1x4", tmp_path)
    target.parent.mkdir(parents=True)
    for suffix in (".safetensors", ".json"):
        target.with_suffix(suffix).write_bytes(shipped.with_suffix(suffix).read_bytes())
    runs = seed_runs("predict", "lstm-1x4", tmp_path)
    assert [(r["folder"], r["seed"], r["ships"]) for r in runs] == [
        ("sweeps/campaign3", 0, True), ("sweeps/campaign4", 1, False)]
    assert seed_summary(runs, "loss") == "0.0925 ± 0.0035 (0.0900 to 0.0950, 2 seeds)"
    assert seed_summary(runs[:1], "loss") == "1 run" and seed_summary([], "loss") == "n/a"
    assert seed_row("lstm", {"lstm-1x4": runs}, "loss")[1] == "n/a"   # no 1x4 column
    assert "| lstm-1x4 | 0, 1 | 0.0900 / 0.0940 | 0.0900 / 0.0950 | 0.0925 ± 0.0035 |" in \
        seed_table({"lstm-1x4": runs}, task="predict")
    retrained = shipped_path("predict", "lstm-1x4", tmp_path / sweeps / "campaign4")
    save_weights(build_model("predict", "lstm-1x4", seed=5), retrained,
                 json.loads(retrained.with_suffix(".json").read_text()))
    assert [r["folder"] for r in seed_runs("predict", "lstm-1x4", tmp_path)] == [
        "sweeps/campaign3"]   # its folder's score is of the file it replaced: stale, left out


def test_sweep_overview_says_whether_the_grid_brackets_the_best_rate():
    from seqmnist.sweep import best_position
    from seqmnist.tables import sweep_overview

    def record(arch, losses, best):
        return {"arch": arch, "epochs": 3, "best_lr": best,
                "candidates": [{"lr": lr, "best_val_loss": loss} for lr, loss in losses.items()]}

    inside = record("lstm-1x32", {0.005: 0.4, 0.01: 0.3, 0.02: 0.35}, 0.01)
    edge = record("gru-1x32", {0.005: 0.4, 0.01: 0.3, 0.02: 0.25}, 0.02)
    first = record("gru-1x64", {0.01: 0.3}, 0.01)   # a sweep cut short after its first rate
    assert [best_position(r) for r in (inside, edge, first)] == ["inside", "highest", "only"]
    lines = sweep_overview({"lstm-1x32": inside, "gru-1x32": edge, "gru-1x64": first},
                           {"lstm-1x32": 0.0141, "gru-1x32": None, "gru-1x64": 0.01}).splitlines()
    assert lines[2] == "| lstm-1x32 | 3: 0.005 to 0.02 | 3 | 0.01 | 0.3000 | yes | 0.0141 | 1.4 |"
    assert lines[3] == "| gru-1x32 | 3: 0.005 to 0.02 | 3 | 0.02 | 0.2500 | no (highest rate) | n/a | n/a |"
    assert lines[4] == ("| gru-1x64 | 1: 0.01 to 0.01 | 3 | 0.01 | 0.3000 | no (one rate) | 0.01 "
                        "| 1 |")


def test_the_rate_verdict_follows_the_sweeps_it_is_given():
    """Made-up sweeps: best rates at the shipped ones confirm them, best rates four to eight
    times faster do not, and a sweep whose best rate is at an end of its grid is not counted."""
    from seqmnist.sweep import rate_verdict

    def record(best, grid=(0.0025, 0.005, 0.01, 0.02, 0.04)):
        return {"epochs": 3, "best_lr": best,
                "candidates": [{"lr": lr, "best_val_loss": 0.1} for lr in grid]}

    shipped = {"lstm-1x32": 0.005, "gru-1x32": 0.005, "gru-1x64": 0.0025}
    agreeing = rate_verdict({"lstm-1x32": record(0.005), "gru-1x32": record(0.01)}, shipped)
    assert agreeing.startswith("2 of 2 sweeps put their best rate after 3 epochs within a factor "
                               "of 2 of the shipped run's rate; the best rate is 1.5 times")
    assert "The sweeps confirm the shipped rates to within one step of their grid." in agreeing
    one_off = rate_verdict({"lstm-1x32": record(0.005), "gru-1x32": record(0.02),
                            "gru-1x64": record(0.005)}, shipped)
    assert one_off.startswith("2 of 3 sweeps") and "2 times the shipped one at the median (1 to 4)" \
        in one_off
    assert "confirm the shipped rates to within one step of their grid, except for gru-1x32 (4 " \
           "times)." in one_off
    faster = rate_verdict({"lstm-1x32": record(0.02), "gru-1x32": record(0.04, grid=(
        0.01, 0.02, 0.04, 0.08)), "gru-1x64": record(0.04)}, shipped)
    assert faster.startswith("None of 2 sweeps") and "at the median (4 to 8)" in faster
    assert "do not confirm the shipped rates: they point to faster ones." in faster
    assert faster.endswith("Not counted, as their best rate lies at an end of the grid swept so "
                           "far: gru-1x64.")
    slower = rate_verdict({"lstm-1x32": record(0.0025, grid=(0.0003, 0.001, 0.0025, 0.005))},
                          {"lstm-1x32": 0.02, "gru-1x32": None})
    assert "they point to slower ones" in slower
    assert rate_verdict({"gru-1x64": record(0.04)}, shipped).startswith("No sweep brackets")


def test_load_sweeps_reads_one_tasks_records_by_architecture(tmp_path):
    import json

    from seqmnist.sweep import load_sweeps

    for name in ("classify-gru-1x32", "classify-lstm-1x32", "predict-lstm-1x32"):
        task, arch = name.split("-", 1)
        (tmp_path / f"{name}.json").write_text(json.dumps({"task": task, "arch": arch}))
    assert list(load_sweeps("classify", tmp_path)) == ["gru-1x32", "lstm-1x32"]
    assert list(load_sweeps("predict", tmp_path)) == ["lstm-1x32"]
    assert load_sweeps("classify", tmp_path / "missing") == {}


def test_result_tables_put_the_spread_over_seeds_beside_the_shipped_model():
    from seqmnist.tables import classification_table, prediction_table

    shipped = {"lstm-1x32": {"test": {"loss": 0.07, "accuracy": 0.979},
                             "train": {"loss": 0.05, "accuracy": 0.985}}}
    seeds = {"lstm-1x32": [{"test": {"accuracy": a, "loss": 0.07}} for a in (0.978, 0.980)]}
    lines = classification_table("lstm", shipped, seeds).splitlines()
    assert lines[4] == "| Testing Accuracy | 97.90 % | n/a | n/a | n/a |"
    assert lines[-1] == ("| Testing Accuracy over seeds (%) | 97.90 ± 0.14 (97.80 to 98.00, 2 "
                         "seeds) | n/a | n/a | n/a |")
    assert len(classification_table("lstm", shipped).splitlines()) == len(lines) - 1
    assert prediction_table("lstm", {}, {}).splitlines()[-1].startswith("| Testing Loss over seeds")


def test_seed_curves_band_spans_the_lowest_to_the_highest_seed():
    from seqmnist.plots import seed_curves

    def run(*losses):
        return {"history": [{"epoch": e + 1, "val_loss": v} for e, v in enumerate(losses)]}

    fig = seed_curves({"lstm-1x32": [run(0.5, 0.3), run(0.7, 0.2), run(0.6, 0.1)],
                       "gru-1x32": [run(0.4, 0.2)]})   # one seed: no band to draw
    ax = fig.axes[0]
    (line,) = ax.get_lines()
    assert line.get_label() == "lstm-1x32 (3 seeds)"
    assert list(line.get_ydata()) == pytest.approx([0.6, 0.2])
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(0.1) and band[:, 1].max() == pytest.approx(0.7)
    plt.close("all")


def test_model_summary_gives_each_models_recipe_sweep_and_seeds_in_one_row():
    from seqmnist.tables import model_summary

    meta = {"config": {"lr": 0.01414, "epochs": 40, "shift": 2, "dropout": 0.0, "seed": 1}}
    sweep = {"best_lr": 0.02, "epochs": 3,
             "candidates": [{"lr": lr} for lr in (0.005, 0.01, 0.02)]}
    seeds = [{"test": {"accuracy": a}} for a in (0.98, 0.99)]
    first = {"best_lr": 0.01, "epochs": 3, "candidates": [{"lr": 0.01}]}
    lines = model_summary("classify", {"lstm-1x32": meta, "gru-1x32": meta, "lstm-1x64": None,
                                       "gru-1x64": meta},
                          {"lstm-1x32": sweep, "gru-1x64": first},
                          {"lstm-1x32": seeds}).splitlines()
    assert lines[2] == ("| lstm-1x32 | lr 0.0141, 40 epochs, shift 2, seed 1 | best 0.02 of 3 "
                        "rates, 3 epochs (at the highest end) | 98.50 ± 0.71 (98.00 to 99.00, 2 "
                        "seeds) |")
    assert lines[3].endswith("| not swept yet | n/a |")
    assert lines[4] == "| lstm-1x64 | not trained yet |  |  |"
    assert "| best 0.01 of 1 rates, 3 epochs (one rate so far) |" in lines[5]


def test_the_report_keeps_its_outputs_apart_from_hand_runs(tmp_path):
    """`make report` has the task notebooks write under build/report/, where report.ipynb reads;
    a notebook run by hand (its default output_dir) writes to build/<notebook>/, outside it."""
    from pathlib import Path

    import nbformat

    from seqmnist.notebook import resolve
    from seqmnist.paths import ROOT
    from seqmnist.report import NOTEBOOKS, notebook_parameters, outputs_dir, report_parameters

    def defaults(path):
        cell = next(c for c in nbformat.read(path, as_version=4).cells
                    if "parameters" in c.metadata.get("tags", []))
        values = {}
        exec(cell.source, values)
        return values

    assert outputs_dir(tmp_path) == tmp_path / "report"
    assert report_parameters(tmp_path) == {"build_dir": str(tmp_path / "report")}
    assert resolve(defaults(ROOT / "report.ipynb")["build_dir"]) == outputs_dir(ROOT / "build")
    for name in NOTEBOOKS:
        assert Path(notebook_parameters(name, tmp_path)["output_dir"]) == tmp_path / "report" / name
        by_hand = resolve(defaults(ROOT / "notebooks" / f"{name}.ipynb")["output_dir"])
        assert by_hand == ROOT / "build" / name
        assert not by_hand.is_relative_to(outputs_dir(ROOT / "build"))


def test_sweep_overview_plot_rings_each_models_best_rate():
    from seqmnist.plots import sweep_overview

    record = {"best_lr": 0.01, "candidates": [
        {"lr": 0.005, "best_val_loss": 0.4}, {"lr": 0.01, "best_val_loss": 0.3},
        {"lr": 0.02, "best_val_loss": None}]}   # a diverged rate has no point
    ax = sweep_overview({"lstm-1x32": record}, {"lstm-1x32": 0.0141}).axes[0]
    curve, ring, cross = ax.get_lines()
    assert list(curve.get_xdata()) == [0.005, 0.01] and list(curve.get_ydata()) == [0.4, 0.3]
    assert (list(ring.get_xdata()), list(ring.get_ydata())) == ([0.01], [0.3])
    assert list(cross.get_xdata()) == [0.0141]
    plt.close("all")


def test_misclassified_takes_the_wrong_images_of_a_pass_in_order():
    import numpy as np

    from seqmnist.results import misclassified

    pixels = np.arange(5)[:, None] * np.ones((5, 784))
    images, titles = misclassified(pixels, np.array([1, 2, 3, 4, 5]),
                                   np.array([1, 0, 3, 9, 8]), count=2)
    assert titles == ["0 / 2", "9 / 4"] and [int(i[0]) for i in images] == [1, 3]
