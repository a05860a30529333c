"""In-painting sets: generator invariants, determinism, files and their validation."""

import json
import stat

import numpy as np
import pytest

import seqmnist
from seqmnist import masks
from seqmnist.errors import DataError
from seqmnist.masks import InpaintingSet, load_inpainting_file


@pytest.fixture(scope="module")
def mnist():
    return seqmnist.load_mnist()


@pytest.fixture(scope="module")
def sets(mnist):
    return {"task2": masks.task2_set(mnist), "1x1": masks.one_pixel_set(mnist),
            "2x2": masks.window_set(mnist, size=2)}


def near_ink(truth_image: np.ndarray, rows, cols) -> bool:
    """Brute force: does the union of the clipped 3x3 neighbourhoods of the pixels hold ink?"""
    image = truth_image.reshape(28, 28)
    for r, c in zip(rows, cols):
        if image[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].any():
            return True
    return False


def check_provenance(inpainting: InpaintingSet, mnist, count: int):
    assert len(inpainting) == count
    assert inpainting.masked.shape == inpainting.truth.shape == (count, 784)
    assert inpainting.masked.dtype == inpainting.truth.dtype == np.float32
    indices = inpainting.indices
    assert indices.dtype == np.int64 and indices.shape == (count,)
    assert np.all(np.diff(indices) > 0) and 0 <= indices[0] and indices[-1] < 10000
    assert np.array_equal(inpainting.truth, mnist.test.x[indices].astype(np.float32))
    known = ~inpainting.missing
    assert np.array_equal(inpainting.masked[known], inpainting.truth[known])
    assert set(np.unique(inpainting.masked)) <= {-1.0, 0.0, 1.0}


def test_task2_masks_the_last_300_pixels(sets, mnist):
    task2 = sets["task2"]
    check_provenance(task2, mnist, 100)
    assert task2.missing[:, 484:].all() and not task2.missing[:, :484].any()
    assert task2.seed == masks.TASK2_SEED == 2
    expected = np.sort(np.random.default_rng(2).choice(10000, 100, replace=False))
    assert np.array_equal(task2.indices, expected)


def test_one_pixel_set(sets, mnist):
    one = sets["1x1"]
    check_provenance(one, mnist, 1000)
    assert np.array_equal(one.missing.sum(axis=1), np.ones(1000))
    assert one.seed == masks.ONE_PIXEL_SEED == 31
    pixels = np.flatnonzero(one.missing) % 784
    for image, pixel in zip(one.truth, pixels):
        assert near_ink(image, [pixel // 28], [pixel % 28])
    # the missing pixel is sometimes ink, sometimes background next to a stroke
    assert 0.2 < one.truth[one.missing].mean() < 0.9


def test_two_by_two_set(sets, mnist):
    window = sets["2x2"]
    check_provenance(window, mnist, 1000)
    assert np.array_equal(window.missing.sum(axis=1), np.full(1000, 4))
    assert window.seed == masks.WINDOW_SEED == 32
    for image, missing in zip(window.truth, window.missing):
        rows, cols = np.divmod(np.flatnonzero(missing), 28)
        top, left = rows.min(), cols.min()
        assert top <= 26 and left <= 26
        assert sorted(zip(rows, cols)) == [(top, left), (top, left + 1),
                                           (top + 1, left), (top + 1, left + 1)]
        assert near_ink(image, rows, cols)
    assert 0.1 < window.truth[window.missing].mean() < 0.9


def test_eligible_windows_match_brute_force(mnist):
    truth = mnist.test.x[:20]
    for size in (1, 2, 3):
        eligible = masks.eligible_windows(truth, size)
        span = 29 - size
        assert eligible.shape == (20, span, span)
        for i in (0, 7, 19):
            for r in range(span):
                for c in range(span):
                    rows = [r + dr for dr in range(size) for dc in range(size)]
                    cols = [c + dc for dr in range(size) for dc in range(size)]
                    assert eligible[i, r, c] == near_ink(truth[i], rows, cols)


def test_three_by_three_window(mnist):
    window = masks.window_set(mnist, count=50, size=3, seed=5)
    assert np.array_equal(window.missing.sum(axis=1), np.full(50, 9))
    assert window.name == "3x3"


def test_generators_are_deterministic(mnist, sets):
    for name, make in (("task2", masks.task2_set), ("1x1", masks.one_pixel_set),
                       ("2x2", masks.window_set)):
        again = make(mnist)
        assert np.array_equal(again.masked, sets[name].masked)
        assert np.array_equal(again.indices, sets[name].indices)
        other = make(mnist, seed=12345)
        assert not np.array_equal(other.indices, sets[name].indices)


# --------------------------------------------------------------------------- files


def test_save_load_round_trip(sets, tmp_path):
    for name, inpainting in sets.items():
        path = inpainting.save(tmp_path / f"{name}.npy")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        course = np.load(path, allow_pickle=False)
        assert course.shape == (2, len(inpainting), 784) and course.dtype == np.float32
        assert np.array_equal(course, inpainting.to_course_array())
        sidecar = json.loads(masks.sidecar_path(path).read_text())
        assert sidecar["indices"] == inpainting.indices.tolist()
        assert sidecar["seed"] == inpainting.seed and sidecar["rule"] == inpainting.rule
        loaded = load_inpainting_file(path)
        assert loaded.name == name and loaded.seed == inpainting.seed
        assert loaded.rule == inpainting.rule
        assert np.array_equal(loaded.masked, inpainting.masked)
        assert np.array_equal(loaded.truth, inpainting.truth)
        assert np.array_equal(loaded.indices, inpainting.indices)
        assert np.array_equal(loaded.missing, inpainting.missing)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_course_file_without_sidecar(sets, tmp_path):
    path = tmp_path / "one_pixel_inpainting.npy"
    np.save(path, sets["1x1"].to_course_array().astype(np.float64))
    loaded = load_inpainting_file(path)
    assert loaded.indices is None and loaded.name == "one_pixel_inpainting"
    assert loaded.masked.dtype == np.float32
    assert np.array_equal(loaded.masked, sets["1x1"].masked)


def small_course_array():
    truth = np.zeros((3, 784), np.float32)
    truth[:, 100:110] = 1
    masked = truth.copy()
    masked[:, 105] = -1
    return np.stack([masked, truth])


def rejected(tmp_path, name, array=None, raw=None, match=""):
    path = tmp_path / name
    if array is not None:
        np.save(path, array)
    else:
        path.write_bytes(raw)
    with pytest.raises(DataError, match=match) as info:
        load_inpainting_file(path)
    assert str(path) in str(info.value)
    return info.value


def test_loader_rejections(tmp_path):
    good = small_course_array()
    np.save(tmp_path / "good.npy", good)
    assert len(load_inpainting_file(tmp_path / "good.npy")) == 3

    rejected(tmp_path, "flat.npy", good[0], match=r"shape \(3, 784\), expected \(2, N, 784\)")
    rejected(tmp_path, "three.npy", np.concatenate([good, good[:1]]), match="expected")
    rejected(tmp_path, "narrow.npy", good[:, :, :783], match="expected")
    rejected(tmp_path, "empty.npy", good[:, :0], match="expected")

    truth_gray = good.copy()
    truth_gray[1, 0, 3] = 0.5
    rejected(tmp_path, "gray.npy", truth_gray, match="ground truth is not binary")

    for value in (2.0, 0.5, np.nan, -0.5):
        bad = good.copy()
        bad[0, 1, 7] = value
        rejected(tmp_path, "values.npy", bad, match="masked image 1 holds.*0, 1 and -1")

    disagree = good.copy()
    disagree[0, 2, 100] = 0
    rejected(tmp_path, "disagree.npy", disagree,
             match="masked image 2 disagrees with its ground truth at pixel 100")

    complete = good.copy()
    complete[0, 1] = complete[1, 1]
    rejected(tmp_path, "complete.npy", complete, match="image 1")
    rejected(tmp_path, "complete.npy", complete, match="no missing pixel")

    rejected(tmp_path, "text.npy", raw=b"this is not numpy\n", match="not a readable .npy")
    (tmp_path / "good.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:200])
    with pytest.raises(DataError, match="good.npy: not a readable .npy"):
        load_inpainting_file(tmp_path / "good.npy")
    rejected(tmp_path, "objects.npy", np.array([{"a": 1}], dtype=object),
             match="not a readable .npy")
    np.savez(tmp_path / "archive.npz", good)
    with pytest.raises(DataError, match="archive.npz: not a single .npy array"):
        load_inpainting_file(tmp_path / "archive.npz")
    rejected(tmp_path, "strings.npy", np.array([["a"] * 784] * 2).reshape(2, 1, 784),
             match="not numeric")
    with pytest.raises(DataError, match="nowhere.npy: cannot read"):
        load_inpainting_file(tmp_path / "nowhere.npy")
    with pytest.raises(DataError, match="cannot read"):
        load_inpainting_file(tmp_path)


def test_sidecar_rejections(sets, tmp_path):
    path = sets["task2"].save(tmp_path / "task2.npy")
    sidecar = masks.sidecar_path(path)
    assert sidecar.name == "task2.npy.json"
    np.save(path, small_course_array())  # the .npy replaced, the sidecar left stale
    with pytest.raises(DataError, match="task2.npy.json: describes another version"):
        load_inpainting_file(path)
    sidecar.write_text("{broken")
    with pytest.raises(DataError, match="task2.npy.json: unreadable sidecar"):
        load_inpainting_file(path)
    sidecar.write_text(json.dumps({"indices": [1, 2]}))
    with pytest.raises(DataError, match="task2.npy.json: 'indices' must be a list of 3"):
        load_inpainting_file(path)


def test_constructor_validates():
    good = small_course_array()
    InpaintingSet(good[0], good[1], name="ok")
    with pytest.raises(DataError, match="in-painting set 'bad'.*no missing pixel"):
        InpaintingSet(good[1], good[1], name="bad")
    with pytest.raises(DataError, match="indices"):
        InpaintingSet(good[0], good[1], indices=[1, 2], name="bad")


# --------------------------------------------------------------------------- default sets


def test_prepare_and_load_sets(mnist, sets, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQMNIST_DATA", str(tmp_path))
    assert masks.default_directory() == tmp_path / "inpainting"
    course = tmp_path / "inpainting" / "2X2_pixels_inpainting.npy"
    course.parent.mkdir()
    np.save(course, small_course_array())  # a user's original course file: kept as it is
    paths = masks.prepare_inpainting_sets(mnist)
    assert {k: p.name for k, p in paths.items()} == {
        "task2": "task2_last300.npy", "1x1": "one_pixel_inpainting.npy",
        "2x2": "2X2_pixels_inpainting.npy"}
    assert all(p.parent == tmp_path / "inpainting" for p in paths.values())
    loaded = masks.load_sets()
    assert np.array_equal(loaded["task2"].masked, sets["task2"].masked)
    assert np.array_equal(loaded["1x1"].indices, sets["1x1"].indices)
    assert len(loaded["2x2"]) == 3 and loaded["2x2"].indices is None
    assert [s.name for s in loaded.values()] == ["task2", "1x1", "2x2"]

    def no_loading(*args, **kwargs):
        raise AssertionError("MNIST loaded although every file exists")

    monkeypatch.setattr(seqmnist.data, "load_mnist", no_loading)
    assert masks.prepare_inpainting_sets(directory=tmp_path / "inpainting") == paths


def test_load_sets_names_a_damaged_file(mnist, tmp_path):
    paths = masks.prepare_inpainting_sets(mnist, tmp_path)
    paths["1x1"].write_bytes(b"garbage")
    with pytest.raises(DataError, match="one_pixel_inpainting.npy.*delete the file"):
        masks.load_sets(mnist, tmp_path)


# --------------------------------------------------------------------------- plots


def test_plots_smoke(sets):
    import matplotlib

    matplotlib.use("Agg")
    from seqmnist import plots

    window = sets["2x2"]
    figure = plots.image_grid(window.truth[:7], titles=list("abcdefg"), ncols=4)
    assert len([ax for ax in figure.axes if ax.images]) == 7
    figure = plots.show_inpainting(window.masked[:3], window.truth[:3] * 0.5,
                                   truth=window.truth[:3])
    assert len(figure.axes) == 9
    rgb = plots.inpainting_rgb(window.masked[:1])
    assert np.array_equal(rgb[0][window.missing[0].reshape(28, 28)], np.tile([1, 0, 0], (4, 1)))
