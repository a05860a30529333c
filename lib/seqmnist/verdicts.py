"""What the campaigns' whole runs say, in words for the notebooks and the report.

Most verdicts weigh a run against its twin: a finished run of the same model whose recipe differs
in one setting only (the peak learning rate, or the EMA of the weights). The words come from the
records (``results.campaign_runs``: architecture -> [(campaign, sidecar, ships)]), so a verdict
changes when the records do. ``selection_verdict`` weighs instead the runs of one recipe that
differ only by their seed (``results.seed_runs``).
"""

from __future__ import annotations

import math

from .campaign import (AVERAGED, AVERAGED_FIELDS, OWN_RATE, SWEPT_LR, SWEPT_UNITS, plans, recipe)
from .train import full_config

# How each task's validation figure reads: a classifier's accuracy at its kept epoch (higher is
# better), a predictor's loss in nats per pixel (lower is better).
FIGURE_WORDS = {
    "classify": dict(metric="validation accuracy at its kept epoch", unit="",
                     better="higher validation accuracy", scale="accuracy at the kept epoch"),
    "predict": dict(metric="validation loss", unit=" nats per pixel",
                    better="lower validation loss", scale="nats per pixel"),
}


def twin(meta: dict, runs, field: str, value: float):
    """The first of ``runs`` ([(campaign, sidecar, ships)]) whose config (``train.full_config``)
    equals ``meta``'s but has ``field`` at ``value``, as (campaign, sidecar); None without one."""
    wanted = full_config(meta)
    wanted.pop(field)
    for campaign, other, _ in runs:
        config = full_config(other)
        if math.isclose(config.pop(field), value) and config == wanted:
            return campaign, other
    return None


def first_pair(runs, candidate, field: str, value: float):
    """The first of ``runs`` for which ``candidate(campaign, sidecar)`` holds and that has a twin
    with ``field`` at ``value``, as ((campaign, sidecar), (campaign, sidecar)); None without."""
    for campaign, meta, _ in runs:
        found = candidate(campaign, meta) and twin(meta, runs, field, value)
        if found:
            return (campaign, meta), found
    return None


def learning_rate_note(record: dict, runs=()) -> str:
    """How the campaigns set each model's peak learning rate, against a sweep record
    (seqmnist.sweep) of the same task. ``runs`` are the swept model's campaign runs: a whole run at
    the sweep's best rate is weighed against its twin at the campaigns' rate."""
    task, best, epochs = record["task"], record["best_lr"], record["epochs"]
    used = SWEPT_LR[task]
    note = (f"The campaigns train at a peak rate of {used:g} at {SWEPT_UNITS} units per layer, "
            f"scaled by sqrt({SWEPT_UNITS} / units) for the other widths. ")
    if best == used:
        return note + f"After {epochs} epochs the sweep's lowest validation loss is at {used:g} too."
    note += f"After {epochs} epochs the sweep's lowest validation loss is at {best:g}, not {used:g}"
    twins = first_pair(runs, lambda _, meta: math.isclose(meta["config"]["lr"], best), "lr", used)
    if twins is None:
        run_epochs = recipe(task, f"lstm-1x{SWEPT_UNITS}")["epochs"]  # the shipped run's length
        return note + (
            f", but no campaign has trained at {best:g}: a sweep this short rewards a fast start, "
            f"not where the shipped run's {run_epochs}-epoch cosine schedule ends, so whether "
            f"{best:g} does better over a whole run is open.")
    (fast_campaign, fast), (slow_campaign, slow) = twins
    fast_value, slow_value, margin, _ = _weigh(task, fast, slow)
    metric, unit = FIGURE_WORDS[task]["metric"], FIGURE_WORDS[task]["unit"]
    verdict = "also wins" if margin > 0 else "does not win"
    return note + (
        f". Campaign {fast_campaign} trained {record['arch']} at {best:g} for a whole "
        f"{fast['config']['epochs']}-epoch run: {metric} {fast_value}{unit}, against "
        f"{slow_value}{unit} for campaign {slow_campaign} at {used:g} with every other setting "
        f"equal, so the short sweep's best rate {verdict} a whole run.")


def own_rate_verdict(task: str, runs: dict) -> str:
    """How campaign OWN_RATE's whole runs (each model at its own sweep's best rate) end against
    their twins at the rule's rate (campaign 3, every other setting equal), by validation loss."""
    epochs = recipe(task, "lstm-1x64", 3)["epochs"]
    pairs, untried = _against_twins(task, runs, OWN_RATE, "lr",
                                    lambda arch: recipe(task, arch, 3)["lr"])
    if not pairs:
        return (f"No whole run at a model's own sweep rate has finished yet (campaign {OWN_RATE}): "
                f"whether the sweeps' faster rates also win a whole {epochs}-epoch schedule is open.")
    return _conclusion(task, pairs, untried,
                  f"Whole {epochs}-epoch runs at each model's own sweep rate (campaign {OWN_RATE}) "
                  f"end with a lower validation loss than their twins at the rule's rate",
                  all_win="The sweeps' faster rates win whole runs too.",
                  none_win="The sweeps' faster rates do not carry over to whole runs: the rule's "
                           "rates stay.",
                  not_yet="Not trained at its own rate yet")


def averaged_verdict(task: str, runs: dict) -> str:
    """How campaign AVERAGED's whole runs (an EMA of the weights) end against their twins without
    it, by validation loss for a predictor and validation accuracy for a classifier."""
    decay = AVERAGED_FIELDS["ema"]
    pairs, untried = _against_twins(task, runs, AVERAGED, "ema", lambda arch: 0.0)
    if not pairs:
        return (f"No whole run with an exponential moving average of the weights (decay {decay:g}, "
                f"campaign {AVERAGED}) has finished yet: whether averaging helps is open.")
    return _conclusion(task, pairs, untried,
                  f"With an exponential moving average of the weights (decay {decay:g}, campaign "
                  f"{AVERAGED}), whole runs end with a {FIGURE_WORDS[task]['better']} than their "
                  f"twins without it",
                  all_win="The averaged weights win.",
                  none_win="Averaging the weights does not help at this decay: the raw weights "
                           "stay.",
                  not_yet="Not trained with the average yet")


def _against_twins(task: str, runs: dict, campaign: int, field: str, twin_value):
    """{arch: (campaign's sidecar, its twin's)} for each model whose run in ``campaign`` has a
    twin with ``field`` at ``twin_value(arch)``, and the models the campaign plans but has not
    paired yet."""
    def in_campaign(number, _):
        return number == str(campaign)

    pairs, untried = {}, []
    for arch, records in runs.items():
        pair = first_pair(records, in_campaign, field, twin_value(arch))
        if pair:
            (_, run), (_, other) = pair
            pairs[arch] = run, other
        elif plans(campaign, task, arch):
            untried.append(arch)
    return pairs, untried


def _weigh(task: str, run: dict, other: dict):
    """Both runs' validation figures in words (a classifier's accuracy at its kept epoch, a
    predictor's loss) and how much ``run`` beats ``other`` (negative: loses), in words too."""
    if task == "classify":
        values = [meta["validation"]["accuracy"] for meta in (run, other)]
        images = run["validation"]["images"]
        margin = round((values[0] - values[1]) * images)
        return (f"{100 * values[0]:.2f} %", f"{100 * values[1]:.2f} %", margin,
                f"{margin} of {images:,} validation images")
    values = [meta["validation"]["loss"] for meta in (run, other)]
    margin = (values[1] - values[0]) / values[1]
    return f"{values[0]:.4f}", f"{values[1]:.4f}", margin, f"{100 * margin:.2f} % of its twin's loss"


def _conclusion(task: str, pairs: dict, untried: list, claim: str, all_win: str, none_win: str,
                not_yet: str) -> str:
    """'``claim`` for k of n models (each run against its twin).', the conclusion that the count
    draws and the largest win, then the models not trained yet."""
    wins, details = [], []
    for arch, (run, other) in pairs.items():
        value, twin_value, margin, margin_words = _weigh(task, run, other)
        if margin > 0:
            wins.append((margin, arch, margin_words))
        details.append(f"{arch} {value} against {twin_value}")
    count = f"{len(wins) or 'none'} of {len(pairs)} models"
    scale = FIGURE_WORDS[task]["scale"]
    text = f"{claim} for {count}, one seed each ({scale}: {'; '.join(details)}). "
    if len(wins) == len(pairs):
        text += all_win
    elif not wins:
        text += none_win
    else:
        text += "The verdict differs by model: each ships whichever run is better on validation."
    if wins:
        _, arch, margin_words = max(wins)
        text += f" The largest win: {arch}, by {margin_words}."
    if untried:
        text += f" {not_yet}: {', '.join(untried)}."
    return text


def selection_verdict(task: str, seeds: dict) -> str:
    """What choosing one seed on validation does to the shipped figure, from the seed runs of each
    recipe (``seeds``: name -> ``results.seed_runs``): how often the seed best on validation is
    also best on test, how far the shipped test figure lies from its recipe's mean, and which
    recipes' seed ranges overlap, so that one run of each cannot rank them."""
    import numpy as np

    metric, sign, scale, unit, digits = (("accuracy", 1, 100, " points", 2) if task == "classify"
                                         else ("loss", -1, 1, " nats per pixel", 4))
    models = {name: runs for name, runs in seeds.items()
              if len(runs) >= 2 and any(run["ships"] for run in runs)}
    if not models:
        return "No recipe has several seeds with its shipped run among them yet."
    also_best, gains, ranges = [], {}, {}
    for name, runs in models.items():
        test = np.array([run["test"][metric] for run in runs])
        shipped = next(run["test"][metric] for run in runs if run["ships"])
        if sign * shipped == (sign * test).max():
            also_best.append(name)
        # How much better than the recipe's mean the shipped figure is, in its unit and in sds.
        gain = sign * scale * (shipped - test.mean())
        gains[name] = (gain, gain / (scale * test.std(ddof=1) or math.inf))
        ranges[name] = (test.min(), test.max())
    text = "Each model ships its seed best on validation. "
    if len(models) == 1:
        text += (f"{next(iter(models))} is the only recipe with several seeds, and its seed best "
                 f"on validation is {'also' if also_best else 'not'} the best on test. ")
    else:
        text += (f"For {len(also_best) or 'none'} of the {len(models)} recipes with several seeds, "
                 f"that seed is also the best on test"
                 f"{' (' + ', '.join(also_best) + ')' if also_best else ''}. ")
    mean_gain = float(np.mean([gain for gain, _ in gains.values()]))
    text += (f"{'On average the' if len(models) > 1 else 'The'} shipped test figure is "
             f"{abs(mean_gain):.{digits}f}{unit} {'better' if mean_gain >= 0 else 'worse'} than "
             f"its recipe's mean over seeds")
    name, (gain, in_sds) = max(gains.items(), key=lambda item: item[1][0])
    if len(models) > 1 and gain > 0:
        text += f" (most for {name}: {gain:.{digits}f}{unit}, {in_sds:.1f} sd of its seeds)"
    elif len(models) == 1:
        text += f" ({in_sds:+.1f} sd of its seeds)"
    text += (": choosing among seeds flatters the shipped figure, and the mean over seeds is what "
             "the recipe itself gives." if mean_gain > 0 else
             ": here choosing among seeds did not flatter the shipped figure.")
    names = list(ranges)
    overlapping = [f"{a} and {b}" for i, a in enumerate(names) for b in names[i + 1:]
                   if ranges[a][0] <= ranges[b][1] and ranges[b][0] <= ranges[a][1]]
    if overlapping:
        pairs = ", for ".join(overlapping[:-1]) + (" and for " if len(overlapping) > 1 else "")
        text += (f" Seed ranges overlap for {pairs}{overlapping[-1]}: one run of each cannot "
                 f"rank them.")
    elif len(names) > 1:
        text += (" No two of these recipes' seed ranges overlap: every seed of the better recipe "
                 "beats every seed of the other.")
    return text
