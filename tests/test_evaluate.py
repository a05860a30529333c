"""Evaluation of shipped weights: the cache (hits, misses, invalidation), the table, the CLI."""

import json

import pytest

from seqmnist import eval_cache
from seqmnist import evaluate as ev
from seqmnist.eval_cache import evaluate_file
from seqmnist.__main__ import main
from seqmnist.errors import CheckpointError
from seqmnist.metrics_report import WEIGHT_FOLDERS, evaluate_all
from seqmnist.models import build_model
from seqmnist.weights import save_weights

LIMIT = 120


def ship(root, task, arch, seed, folder=None, **meta):
    path = root / (folder or task) / f"{arch}.safetensors"
    save_weights(build_model(task, arch, seed=seed), path,
                 {"epochs_trained": 3, "wall_seconds": 5400.0, "hardware": "cpu: test",
                  "config": {"epochs": 5}, **meta})
    return path


def approx_floats(value):
    """``value`` with each float, however deeply nested, compared to a relative 1e-5."""
    if isinstance(value, dict):
        return {key: approx_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [approx_floats(item) for item in value]
    return pytest.approx(value, rel=1e-5) if isinstance(value, float) else value


def test_evaluate_file_caches_and_invalidates(tmp_path, mnist):
    cache = tmp_path / "cache"
    path = ship(tmp_path / "weights", "predict", "lstm-1x4", seed=0)
    first = evaluate_file(path, ("test",), cache, mnist=mnist, limit=LIMIT)
    assert first["cache"] == "miss" and first["splits"]["test"]["images"] == LIMIT
    model = build_model("predict", "lstm-1x4", seed=0)
    pixels, _ = mnist.test.tensors()
    expected = ev.evaluate(model, pixels[:LIMIT])
    assert first["splits"]["test"]["loss"] == pytest.approx(expected["loss"], rel=1e-6)

    second = evaluate_file(path, ("test",), cache, mnist=mnist, limit=LIMIT)
    assert second["cache"] == "hit" and second["splits"] == first["splits"]
    both = evaluate_file(path, ("train", "test"), cache, mnist=mnist, limit=LIMIT)
    assert both["cache"] == "partial" and both["splits"]["test"] == first["splits"]["test"]
    assert evaluate_file(path, ("train", "test"), cache, mnist=mnist,
                         limit=LIMIT)["cache"] == "hit"

    ship(tmp_path / "weights", "predict", "lstm-1x4", seed=1)  # retrained: the file changes
    changed = evaluate_file(path, ("test",), cache, mnist=mnist, limit=LIMIT)
    assert changed["cache"] == "miss" and changed["weights_sha256"] != first["weights_sha256"]
    assert changed["splits"]["test"]["loss"] != first["splits"]["test"]["loss"]
    entries = json.loads((cache / eval_cache.CACHE_FILE).read_text())["entries"]
    assert len(entries) == 1 and next(iter(entries)).startswith(changed["weights_sha256"])
    fresh = evaluate_file(path, ("test",), cache, use_cache=False, mnist=mnist, limit=LIMIT)
    assert fresh["cache"] == "off" and fresh["splits"] == changed["splits"]

    # a damaged cache is ignored, then rewritten
    (cache / eval_cache.CACHE_FILE).write_text("{not json")
    assert evaluate_file(path, ("test",), cache, mnist=mnist, limit=LIMIT)["cache"] == "miss"
    assert evaluate_file(path, ("test",), cache, mnist=mnist, limit=LIMIT)["cache"] == "hit"


def test_evaluate_file_errors(tmp_path, mnist):
    path = ship(tmp_path, "classify", "gru-1x4", seed=0)
    with pytest.raises(CheckpointError):
        evaluate_file(tmp_path / "missing.safetensors", mnist=mnist)
    meta = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**meta, "task": "mystery"}))
    with pytest.raises(CheckpointError, match="unknown task 'mystery'"):
        evaluate_file(path, mnist=mnist, cache_dir=tmp_path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="sidecar"):
        evaluate_file(path, mnist=mnist, cache_dir=tmp_path)


def test_evaluate_all_table_baselines_and_cli(tmp_path, mnist, monkeypatch, capsys):
    root = tmp_path / "weights"
    ship(root, "classify", "gru-1x4", seed=0)
    ship(root, "classify", "lstm-1x4", seed=0)
    ship(root, "predict", "lstm-1x4", seed=0)
    ship(root, "classify", "mlp", seed=0, folder="baselines")  # a whole-image baseline
    report = evaluate_all(root, cache_dir=tmp_path / "cache", mnist=mnist, limit=LIMIT)
    rows = report["rows"]
    assert [(r["task"], r["model"], r["file"]) for r in rows] == [
        ("classify", "lstm-1x4", "classify/lstm-1x4.safetensors"),
        ("classify", "gru-1x4", "classify/gru-1x4.safetensors"),
        ("classify", "mlp", "baselines/mlp.safetensors"),
        ("predict", "lstm-1x4", "predict/lstm-1x4.safetensors")]
    assert report["skipped"] == []
    baseline = rows[2]
    assert baseline["images"] == {"train": LIMIT, "test": LIMIT, ev.CHECK: LIMIT}
    for split in ("train", "test"):
        assert 0 <= baseline[f"{split}_accuracy"] <= 1 and baseline[f"{split}_loss"] > 0
    pixels, labels = mnist.test.tensors()
    expected = ev.evaluate(build_model("classify", "mlp", seed=0), pixels[:LIMIT], labels[:LIMIT])
    assert baseline["test_loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert baseline["test_accuracy"] == expected["accuracy"]
    classifier = rows[0]
    assert 0 <= classifier["test_accuracy"] <= 1 and classifier["training_hours"] == 1.5
    assert classifier["epochs"] == 3 and classifier["hardware"] == "cpu: test"
    assert "train_loss_per_image" in rows[3] and "test_accuracy" not in rows[3]
    written = json.loads((root / "metrics.json").read_text())
    assert written["rows"] == json.loads(json.dumps(rows))
    markdown = (root / "metrics.md").read_text()
    assert "| gru-1x4 |" in markdown and "| mlp |" in markdown
    assert "| 3/5 | 1.50 | cpu: test |" in markdown  # trained/planned epochs
    assert markdown.count("## Classification (cross-entropy per image, accuracy)") == 1

    monkeypatch.setenv("SEQMNIST_BUILD", str(tmp_path / "build"))
    assert main(["evaluate", "--weights-dir", str(root), "--limit", str(LIMIT)]) == 0
    assert "| lstm-1x4 |" in capsys.readouterr().out
    assert (tmp_path / "build" / "eval-cache" / eval_cache.CACHE_FILE).exists()
    assert main(["evaluate", "--weights-dir", str(root), "--limit", str(LIMIT),
                 "--no-cache"]) == 0
    # a campaign's seed runs need only the test split: no train columns then
    assert main(["evaluate", "--weights-dir", str(root), "--limit", str(LIMIT),
                 "--splits", "test", "--quiet"]) == 0
    only_test = json.loads((root / "metrics.json").read_text())["rows"][0]
    assert "test_accuracy" in only_test and "train_accuracy" not in only_test


def test_metrics_record_every_seed_run_of_the_shipped_recipe(tmp_path, mnist):
    """Each seed folder is scored by evaluate on its own; evaluate of weights/ then records, per
    shipped model, every seed run of its recipe with its test figures (and which one ships)."""
    root = tmp_path / "weights"
    finished = {"epochs_trained": 5, "validation": {"accuracy": 0.5, "loss": 1.0}}
    folders = [root / "sweeps" / "baselines" / f"seed{seed}" for seed in (0, 1, 2)]
    for seed, folder in enumerate(folders):
        ship(folder, "classify", "mlp", seed=seed, folder="baselines",
             **{**finished, "config": {"epochs": 5, "seed": seed, "lr": 0.003 if seed < 2 else 0.01}})
        evaluate_all(folder, cache_dir=tmp_path / "cache", mnist=mnist, splits=("test",),
                     limit=LIMIT)
    (root / "baselines").mkdir(parents=True)
    for suffix in (".safetensors", ".json"):  # seed 1 ships
        (root / "baselines" / f"mlp{suffix}").write_bytes(
            (folders[1] / "baselines" / f"mlp{suffix}").read_bytes())
    row = evaluate_all(root, cache_dir=tmp_path / "cache", mnist=mnist, limit=LIMIT)["rows"][0]
    scored = [json.loads((folder / "metrics.json").read_text())["rows"][0] for folder in folders]
    assert [(s["seed"], s["folder"], s["ships"]) for s in row["seeds"]] == [
        (0, "sweeps/baselines/seed0", False), (1, "sweeps/baselines/seed1", True)]  # seed 2: lr
    assert [s["test"] for s in row["seeds"]] == [
        {"loss": r["test_loss"], "accuracy": r["test_accuracy"]} for r in scored[:2]]
    assert row["seeds"][1]["test"]["accuracy"] == row["test_accuracy"]
    assert json.loads((root / "metrics.json").read_text())["rows"][0]["seeds"] == row["seeds"]
    assert " ± " in (root / "metrics.md").read_text()
    assert row["seeds"] and evaluate_all(folders[0], cache_dir=tmp_path / "cache", mnist=mnist,
                                         limit=LIMIT, write=False)["rows"][0]["seeds"] == []


def small_mnist(mnist):
    """The first 64 training and 32 test images, scored in full like the real splits."""
    from seqmnist.data import BinarizedMNIST, Split

    return BinarizedMNIST(train=Split(mnist.train.x[:64], mnist.train.y[:64]),
                          validation=mnist.validation,
                          test=Split(mnist.test.x[:32], mnist.test.y[:32]),
                          source_hash=mnist.source_hash)


def test_committed_metrics_serve_a_fresh_checkout(tmp_path, mnist, monkeypatch):
    small = small_mnist(mnist)
    root = tmp_path / "weights"
    path = ship(root, "classify", "lstm-1x4", seed=0)
    written = evaluate_all(root, cache_dir=tmp_path / "build-a", mnist=small)
    monkeypatch.setattr(eval_cache, "evaluate", lambda *args, **kwargs: pytest.fail("re-evaluated"))
    fresh = evaluate_file(path, cache_dir=tmp_path / "build-b", mnist=small)
    assert fresh["cache"] == "hit"
    assert fresh["splits"]["test"]["accuracy"] == written["rows"][0]["test_accuracy"]
    assert fresh["splits"]["train"]["images"] == 64
    monkeypatch.undo()
    ship(root, "classify", "lstm-1x4", seed=1)  # a changed file: the record no longer applies
    assert evaluate_file(path, cache_dir=tmp_path / "build-b", mnist=small)["cache"] == "miss"


def test_the_committed_record_wins_over_the_local_cache(tmp_path, mnist):
    """Scoring again on other threads moves a loss by up to about 6e-6 relative (float32 sums in
    another order): a local cache entry that differs from the committed metrics.json never
    replaces its figures, and writing the report again leaves metrics.json byte for byte."""
    root = tmp_path / "weights"
    path = ship(root, "classify", "lstm-1x4", seed=0)
    cache = tmp_path / "build"
    small = small_mnist(mnist)
    committed = evaluate_all(root, cache_dir=cache, mnist=small)["rows"][0]
    record = (root / "metrics.json").read_bytes()
    entries = json.loads((cache / eval_cache.CACHE_FILE).read_text())
    for entry in entries["entries"].values():
        entry["splits"]["test"]["loss"] *= 1 + 6e-6   # the jitter of another thread count
    (cache / eval_cache.CACHE_FILE).write_text(json.dumps(entries))
    served = evaluate_file(path, cache_dir=cache, mnist=small)
    assert served["cache"] == "hit"
    assert served["splits"]["test"]["loss"] == committed["test_loss"]
    evaluate_all(root, cache_dir=cache, mnist=small)
    assert (root / "metrics.json").read_bytes() == record
    fresh = evaluate_file(path, cache_dir=cache, use_cache=False, mnist=small)
    assert fresh["cache"] == "off"
    assert fresh["splits"]["test"]["loss"] == pytest.approx(committed["test_loss"], rel=1e-6)


def test_a_refused_file_stops_evaluate_without_touching_the_metrics(tmp_path, mnist, monkeypatch,
                                                                   capsys):
    """A damaged or foreign weights file: the others are scored, but metrics.md and .json keep
    their last good contents and the command exits 2 naming the file."""
    root = tmp_path / "weights"
    ship(root, "classify", "lstm-1x4", seed=0)
    monkeypatch.setenv("SEQMNIST_BUILD", str(tmp_path / "build"))
    assert main(["evaluate", "--weights-dir", str(root), "--limit", str(LIMIT), "--quiet"]) == 0
    before = {name: (root / name).read_bytes() for name in ("metrics.md", "metrics.json")}
    odd = root / "baselines" / "odd.safetensors"  # real tensors, a sidecar for no known task
    save_weights(build_model("classify", "gru-1x4", seed=0), odd, {"task": "unknown-task"})
    capsys.readouterr()
    assert main(["evaluate", "--weights-dir", str(root), "--limit", str(LIMIT)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: 1 weights file(s) refused, metrics not written")
    assert "baselines/odd.safetensors" in error and "unknown-task" in error
    assert {name: (root / name).read_bytes() for name in before} == before


def test_cache_is_keyed_by_the_evaluation_code(tmp_path, mnist, monkeypatch):
    path = ship(tmp_path / "weights", "classify", "lstm-1x4", seed=0)
    cache = tmp_path / "cache"
    assert evaluate_file(path, ("test",), cache, mnist=mnist, limit=LIMIT)["cache"] == "miss"
    assert evaluate_file(path, ("test",), cache, mnist=mnist, limit=LIMIT)["cache"] == "hit"
    monkeypatch.setattr(eval_cache, "evaluation_code_sha256", lambda: "0" * 64)  # the code changed
    assert evaluate_file(path, ("test",), cache, mnist=mnist, limit=LIMIT)["cache"] == "miss"


def test_shipped_metrics_are_what_the_code_computes_now(mnist):
    """weights/metrics.json was written by this evaluation code on these exact files, and its
    fingerprint (the first CHECK_IMAGES test images) is recomputed here for every shipped model:
    a change to the evaluation code, the models or the weights can never leave the shipped
    numbers stale. (After such a change: python -m seqmnist evaluate, and commit weights/.)"""
    from seqmnist.metrics_report import recorded_seeds
    from seqmnist.paths import ROOT
    from seqmnist.weights import load_weights

    root = ROOT / "weights"
    report = json.loads((root / "metrics.json").read_text())
    assert report["evaluation_code_sha256"] == eval_cache.evaluation_code_sha256(), \
        "the evaluation code changed since weights/metrics.json was written: re-run evaluate"
    assert report["data_sha256"] == mnist.data_sha256 and report["limit"] is None
    shipped = sorted(str(p.relative_to(root)) for folder in WEIGHT_FOLDERS
                     for p in (root / folder).glob("*.safetensors"))
    assert sorted(row["file"] for row in report["rows"]) == shipped and len(shipped) == 18
    pixels, labels = ev.split_tensors(mnist, ev.CHECK)
    for row in report["rows"]:
        path = root / row["file"]
        assert ev.file_sha256(path) == row["weights_sha256"], row["file"]
        model, _ = load_weights(path)
        now = ev.evaluate(model, pixels, labels)
        assert row["images"][ev.CHECK] == now["images"] == ev.CHECK_IMAGES
        assert row[f"{ev.CHECK}_loss"] == pytest.approx(now["loss"], rel=1e-5, abs=1e-7), row["file"]
        if "accuracy" in now:
            assert row[f"{ev.CHECK}_accuracy"] == now["accuracy"], row["file"]
        # to 1e-5: re-scoring a campaign folder with --no-cache on other threads moves a loss by up
        # to about 6e-6 relative
        assert row["seeds"] == approx_floats(recorded_seeds(row["task"], row["model"], root)), \
            row["file"]
        assert [s["ships"] for s in row["seeds"]].count(True) <= 1, row["file"]


def test_the_evaluate_command_offers_exactly_the_splits_evaluate_knows():
    from seqmnist.__main__ import EVALUATED_SPLITS

    assert EVALUATED_SPLITS == ev.SPLITS
