"""The verdicts' words follow the records they are given: made-up campaign runs, each against its
twin, and the committed records."""

from seqmnist import campaign, verdicts


def _sidecar(lr: float, accuracy: float, **config) -> dict:
    return {"task": "classify", "architecture": "lstm-1x64",
            "config": {"lr": lr, "epochs": 40, "shift": 2, **config},
            "validation": {"accuracy": accuracy, "loss": 1 - accuracy, "images": 5000}}


def test_learning_rate_note_weighs_a_whole_run_at_the_sweeps_best_rate_against_its_twin():
    used = campaign.SWEPT_LR["classify"]
    record = {"task": "classify", "arch": "lstm-1x64", "epochs": 2, "best_lr": used}
    assert verdicts.learning_rate_note(record).endswith(f"validation loss is at {used:g} too.")
    record["best_lr"] = best = 3 * used
    note = verdicts.learning_rate_note(record)
    assert f"lowest validation loss is at {best:g}, not {used:g}" in note
    assert f"no campaign has trained at {best:g}" in note
    # a run at the best rate with a twin at the campaigns' rate settles the question
    runs = [("3", _sidecar(used, 0.987), True), ("7", _sidecar(best, 0.980), False)]
    note = verdicts.learning_rate_note(record, runs)
    assert f"Campaign 7 trained lstm-1x64 at {best:g} for a whole 40-epoch run" in note
    assert "98.00 %, against 98.70 % for campaign 3" in note
    assert "best rate does not win a whole run" in note
    runs[1] = ("7", _sidecar(best, 0.990), False)
    assert "best rate also wins a whole run" in verdicts.learning_rate_note(record, runs)
    # runs that differ in anything but the rate are no twins
    runs[1] = ("7", _sidecar(best, 0.990, shift=3), False)
    assert "no campaign has trained at" in verdicts.learning_rate_note(record, runs)
    predictor = {"task": "predict", "arch": "lstm-1x64", "epochs": 2, "best_lr": 0.01}
    runs = [("3", _sidecar(0.003, 0.92), True), ("7", _sidecar(0.01, 0.93), False)]
    note = verdicts.learning_rate_note(predictor, runs)
    assert "validation loss 0.0700 nats per pixel, against 0.0800" in note
    assert "also wins" in note  # lower loss is better


def test_the_own_rate_verdict_follows_the_whole_runs_it_is_given():
    """Made-up campaign records: the paragraph on whole runs at each model's own sweep rate
    changes with who wins against its twin at the rule's rate."""
    rule = {arch: campaign.recipe("predict", arch, 3)["lr"] for arch in ("lstm-1x32", "gru-1x32")}

    def runs(own_losses):
        made = {}
        for arch, rate in rule.items():
            older = _predictor(rate, 0.090)
            del older["config"]["ema"]   # a sidecar from before the option: its default
            made[arch] = [("3", older, True)]
            if arch in own_losses:
                made[arch].append((str(campaign.OWN_RATE), _predictor(4 * rate, own_losses[arch]), False))
        return made

    assert verdicts.own_rate_verdict("predict", runs({})).startswith("No whole run")
    text = verdicts.own_rate_verdict("predict", runs({"lstm-1x32": 0.085, "gru-1x32": 0.080}))
    assert "for 2 of 2 models" in text and "lstm-1x32 0.0850 against 0.0900" in text
    assert "win whole runs too" in text and "Not trained" not in text
    assert "The largest win: gru-1x32, by 11.11 % of its twin's loss." in text
    text = verdicts.own_rate_verdict("predict", runs({"lstm-1x32": 0.095, "gru-1x32": 0.099}))
    assert "for none of 2 models" in text and "rule's rates stay" in text
    assert "largest win" not in text
    text = verdicts.own_rate_verdict("predict", runs({"lstm-1x32": 0.085}))
    assert "1 of 1" in text and "Not trained at its own rate yet: gru-1x32." in text
    text = verdicts.own_rate_verdict("predict", runs({"lstm-1x32": 0.085, "gru-1x32": 0.095}))
    assert "1 of 2" in text and "differs by model" in text


def _predictor(lr: float, loss: float, **config) -> dict:
    return {"task": "predict", "architecture": "lstm-1x32",
            "config": {"lr": lr, "epochs": 80, "shift": 0, "seed": 0, "ema": 0.0, **config},
            "validation": {"loss": loss}}


def test_the_averaged_verdict_weighs_each_run_with_an_ema_against_its_twin_without():
    """Made-up records: campaign 11's runs (an EMA of the weights) against campaign 10's or 6's
    twins; a classifier by validation accuracy, a predictor by loss."""
    lstm = [("10", _predictor(0.017, 0.094), True)]
    assert verdicts.averaged_verdict("predict", {"lstm-1x32": lstm}).startswith("No whole run")
    averaged = _predictor(0.017, 0.092, ema=campaign.AVERAGED_FIELDS["ema"])
    lstm.append((str(campaign.AVERAGED), averaged, False))
    text = verdicts.averaged_verdict("predict", {"lstm-1x32": lstm, "gru-1x32": []})
    assert "lower validation loss than their twins without it for 1 of 1 models" in text
    assert "lstm-1x32 0.0920 against 0.0940" in text and "averaged weights win" in text
    assert text.endswith("Not trained with the average yet: gru-1x32.")

    def classifier(accuracy, **config):
        return _sidecar(0.0125, accuracy, dropout=0.25, shift=3, **config)

    averaged = classifier(0.982, ema=campaign.AVERAGED_FIELDS["ema"])
    runs = {"lstm-1x128": [("6", classifier(0.985), True), ("11", averaged, False)],
            "lstm-1x32": [("3", classifier(0.980), True)]}
    text = verdicts.averaged_verdict("classify", runs)
    assert "higher validation accuracy" in text and "for none of 1 models" in text
    assert "lstm-1x128 98.20 % against 98.50 %" in text and "raw weights stay" in text
    assert "Not trained" not in text   # campaign 11 does not plan the 1x32 classifiers
    runs["lstm-1x128"][1] = ("11", {**averaged, "validation": {**averaged["validation"],
                                                               "accuracy": 0.987}}, False)
    text = verdicts.averaged_verdict("classify", runs)
    assert "for 1 of 1 models" in text and "by 10 of 5,000 validation images." in text
    runs["lstm-1x128"][0] = ("6", classifier(0.985, seed=1), True)   # no twin: another seed
    assert verdicts.averaged_verdict("classify", runs).startswith("No whole run")


def test_committed_records_settle_the_classifier_sweeps_open_question():
    from seqmnist.paths import ROOT
    from seqmnist.results import campaign_runs
    from seqmnist.sweep import load_sweep

    record = load_sweep("classify", "lstm-1x64", ROOT / "weights" / "sweeps")
    runs = campaign_runs("classify", ["lstm-1x64"], weights_dir=ROOT / "weights")["lstm-1x64"]
    note = verdicts.learning_rate_note(record, runs)
    assert f"Campaign {campaign.SWEEP_BEST} trained lstm-1x64 at {record['best_lr']:g}" in note




def _seeds(tests: list[float], shipped: int, metric: str = "accuracy") -> list[dict]:
    return [{"seed": seed, "test": {metric: value}, "ships": seed == shipped}
            for seed, value in enumerate(tests)]


def test_the_selection_verdict_follows_the_seed_runs_it_is_given():
    """Made-up seed runs: the words for the shipped seed's luck and for overlapping ranges change
    with the figures."""
    assert verdicts.selection_verdict("classify", {"mlp": _seeds([0.98], 0)}).startswith(
        "No recipe has several seeds")
    lucky = {"lstm-1x32": _seeds([0.970, 0.980, 0.975], 1),      # best on test, +0.50 points
             "gru-1x32": _seeds([0.978, 0.986, 0.982], 0)}       # overlaps, ships its worst
    text = verdicts.selection_verdict("classify", lucky)
    assert "For 1 of the 2 recipes with several seeds, that seed is also the best on test " \
           "(lstm-1x32)" in text
    assert "0.05 points better" in text and "most for lstm-1x32: 0.50 points, 1.0 sd" in text
    assert "choosing among seeds flatters the shipped figure" in text
    assert "Seed ranges overlap for lstm-1x32 and gru-1x32: one run" in text
    lucky["lstm-1x64"] = _seeds([0.976, 0.979], 0)
    assert "overlap for lstm-1x32 and gru-1x32, for lstm-1x32 and lstm-1x64 and for gru-1x32 " \
           "and lstm-1x64:" in verdicts.selection_verdict("classify", lucky)
    apart = {"lstm-1x32": _seeds([0.970, 0.980, 0.975], 0),
             "gru-1x32": _seeds([0.990, 0.992, 0.994], 2)}
    text = verdicts.selection_verdict("classify", apart)
    assert "(gru-1x32)" in text and "0.15 points worse" in text and "did not flatter" in text
    assert "No two of these recipes' seed ranges overlap" in text
    predictor = {"lstm-1x32": _seeds([0.0900, 0.0950, 0.1000], 0, "loss")}
    text = verdicts.selection_verdict("predict", predictor)
    assert "lstm-1x32 is the only recipe with several seeds" in text
    assert "also the best on test" in text and "0.0050 nats per pixel better" in text
    assert "+1.0 sd" in text and "overlap" not in text
