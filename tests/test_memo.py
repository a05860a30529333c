"""The notebooks' disk cache returns stored results only for the same inputs and code."""

import dataclasses

import numpy as np
import torch

from seqmnist import masks, memo
from seqmnist.continuation import task2_experiment
from seqmnist.gibbs import gibbs_inpaint
from seqmnist.inpaint import exact_posterior
from seqmnist.models import build_model


def assert_same(a, b, skip=()):
    assert type(a) is type(b)
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            if f.name not in skip:
                assert_same(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    else:
        assert a == b or (a != a and b != b)  # NaN equals NaN here


def test_results_round_trip_and_hit_only_for_the_same_inputs(tmp_path, mnist):
    model = build_model("predict", "lstm-1x4", seed=0).eval()
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights v1")
    window = masks.window_set(mnist, count=4, size=2)
    calls = []

    def compute():
        calls.append(1)
        return exact_posterior(model, window)

    def get(**kw):
        args = dict(files=[weights], arrays=[window.masked], params={"k": 1}, cache_dir=tmp_path)
        return memo.cached("posterior", compute, **{**args, **kw})

    first = get()
    again = get()
    assert len(calls) == 1
    assert_same(first, again)
    get(params={"k": 2})
    get(arrays=[window.truth])
    weights.write_bytes(b"weights v2")
    get()
    assert len(calls) == 4
    get(enabled=False)
    assert len(calls) == 5

    for entry in tmp_path.glob("posterior-*.npz"):
        entry.write_bytes(b"damaged")
    assert_same(get(), first, skip=("seconds",))  # recomputed: the same up to its timing
    assert len(calls) == 6


def test_gibbs_and_task2_results_round_trip(tmp_path, mnist):
    model = build_model("predict", "lstm-1x4", seed=0).eval()
    window = masks.window_set(mnist, count=3, size=2)
    gibbs = gibbs_inpaint(model, window, sweeps=3, burn_in=1,
                          generator=torch.Generator().manual_seed(0))
    sets = masks.load_sets(mnist)
    task2 = masks.InpaintingSet(sets["task2"].masked[:4], sets["task2"].truth[:4], name="task2")
    result = task2_experiment(model, task2, horizons=(1, 10), samples=3)
    value = {"gibbs": gibbs, "task2": result, 3: (1.5, None, "x"), "nan": float("nan")}
    memo.save(tmp_path / "entry.npz", value)
    assert_same(memo.load(tmp_path / "entry.npz"), value)
