"""In-painting datasets: images with missing pixels (-1) and their ground truth.

File format (the course's, kept for every set): one ``.npy`` array of shape (2, N, 784), float32;
index 0 = the masked images (missing pixels set to -1, the others 0 or 1), index 1 = the binary
ground truth. Images are flattened row-major from 28x28. Files written here get a small JSON
sidecar ``<file>.npy.json`` (test indices, seed, rule, sha256 of the ``.npy``); the course's
original files (``one_pixel_inpainting.npy``, ``2X2_pixels_inpainting.npy``) have none and load
all the same.

All sets are drawn from the binarized MNIST **test** split (threshold 0.1), deterministically:

* **Task 2** (``task2_set``, file ``task2_last300.npy``): ``rng = numpy.random.default_rng(2)``
  (``TASK2_SEED``); ``indices = sort(rng.choice(10000, 100, replace=False))``; in each image the
  last 300 pixels (reading positions 484..783: row 17 from column 8 on, and rows 18-27) are
  missing.
* **Task 3, one pixel** (``one_pixel_set``, file ``one_pixel_inpainting.npy``):
  ``rng = default_rng(31)`` (``ONE_PIXEL_SEED``); 1000 images, one missing pixel each.
* **Task 3, 2x2 window** (``window_set``, file ``2X2_pixels_inpainting.npy``):
  ``rng = default_rng(32)`` (``WINDOW_SEED``); 1000 images, one 2x2 square of 4 missing pixels
  each, fully inside the 28x28 image (``size`` x ``size`` in general).

Task 3 placement rule ("on or next to a stroke, never in empty background"): a placement is
eligible when the union of the 3x3 neighbourhoods (clipped at the image border) of its missing
pixels contains at least one ink pixel (a 1 in the ground truth). The missing pixels themselves
may be ink or background. Draws, in this order from the one generator:

1. ``indices = sort(rng.choice(candidates, count, replace=False))`` where ``candidates`` are the
   test images with at least one ink pixel (all 10,000 of them in MNIST);
2. ``k = rng.integers(0, n_eligible)``, one vectorized call over the chosen images in index
   order, where ``n_eligible[i]`` counts image i's eligible placements; the placement is the k-th
   eligible one in row-major order of its top-left pixel (top-left row and column in
   0..28-size), i.e. uniform among the eligible placements.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import PIXELS, SIDE, BinarizedMNIST, atomic_write_bytes
from .errors import DataError
from .paths import data_dir

TASK2_SEED = 2
ONE_PIXEL_SEED = 31
WINDOW_SEED = 32
TASK2_COUNT = 100
TASK2_MASKED = 300
TASK3_COUNT = 1000
MISSING = -1.0

#: set name -> file name, as written by ``prepare_inpainting_sets`` (the Task 3 names are the
#: course's, so its original files can be dropped in their place).
SET_FILES = {
    "task2": "task2_last300.npy",
    "1x1": "one_pixel_inpainting.npy",
    "2x2": "2X2_pixels_inpainting.npy",
}

TASK2_RULE = "the last {masked} pixels (reading order) of each image are missing"
TASK3_RULE = ("one {size}x{size} window fully inside the image is missing, placed uniformly "
              "(seeded) among the windows whose missing pixels' 3x3 neighbourhoods (clipped at "
              "the border, union) hold at least one ink pixel")
ONE_PIXEL_RULE = ("one pixel is missing, placed uniformly (seeded) among the pixels whose 3x3 "
                  "neighbourhood (clipped at the border) holds at least one ink pixel")


def _check_arrays(masked: np.ndarray, truth: np.ndarray, origin: str) -> None:
    """Raise DataError (naming ``origin``) unless (masked, truth) is a valid in-painting set."""
    if masked.ndim != 2 or masked.shape[1] != PIXELS or masked.shape[0] < 1:
        raise DataError(f"{origin}: masked images have shape {masked.shape}, "
                        f"expected (N, {PIXELS})")
    if truth.shape != masked.shape:
        raise DataError(f"{origin}: ground truth shape {truth.shape} differs from the masked "
                        f"images' {masked.shape}")
    bad = ~((truth == 0) | (truth == 1))
    if bad.any():
        image = int(np.argwhere(bad)[0, 0])
        raise DataError(f"{origin}: ground truth is not binary (image {image} holds "
                        f"{truth[bad][0]!r}; expected only 0 and 1)")
    missing = masked == MISSING
    bad = ~(missing | (masked == 0) | (masked == 1))
    if bad.any():
        image = int(np.argwhere(bad)[0, 0])
        raise DataError(f"{origin}: masked image {image} holds {masked[bad][0]!r}; "
                        f"expected only 0, 1 and -1 (missing)")
    bad = ~missing & (masked != truth)
    if bad.any():
        image, pixel = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{origin}: masked image {image} disagrees with its ground truth at "
                        f"pixel {pixel}, which is not missing")
    empty = ~missing.any(axis=1)
    if empty.any():
        raise DataError(f"{origin}: {int(empty.sum())} image(s) have no missing pixel "
                        f"(first: image {int(np.flatnonzero(empty)[0])})")


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of an in-painting file: ``<file>.npy.json``."""
    return Path(f"{path}.json")


@dataclass
class InpaintingSet:
    """Masked images (-1 = missing) with their ground truth and provenance.

    ``masked`` and ``truth`` are (N, 784) float32; ``indices`` are the test-split indices of the
    images (None for files without a sidecar, such as the course's originals).
    """

    masked: np.ndarray
    truth: np.ndarray
    indices: np.ndarray | None = None
    name: str = ""
    seed: int | None = None
    rule: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.masked = np.ascontiguousarray(self.masked, dtype=np.float32)
        self.truth = np.ascontiguousarray(self.truth, dtype=np.float32)
        if self.indices is not None:
            self.indices = np.asarray(self.indices, dtype=np.int64)
            if self.indices.shape != (len(self.masked),):
                raise DataError(f"in-painting set {self.name!r}: {self.indices.shape} indices "
                                f"for {len(self.masked)} images")
        _check_arrays(self.masked, self.truth, f"in-painting set {self.name!r}")

    def __len__(self) -> int:
        return len(self.masked)

    @property
    def missing(self) -> np.ndarray:
        """(N, 784) bool: True at the missing pixels."""
        return self.masked == MISSING

    def to_course_array(self) -> np.ndarray:
        """(2, N, 784) float32: index 0 the masked images, index 1 the ground truth."""
        return np.stack([self.masked, self.truth]).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.npy, course format) and its JSON sidecar, each atomically."""
        path = Path(path)
        buffer = io.BytesIO()
        np.save(buffer, self.to_course_array(), allow_pickle=False)
        raw = buffer.getvalue()
        atomic_write_bytes(path, lambda handle: handle.write(raw))
        meta = {
            "name": self.name,
            "format": "(2, N, 784) float32: [0] masked images (-1 = missing), [1] ground truth",
            "source": "binarized MNIST test split (threshold 0.1)",
            "count": len(self),
            "seed": self.seed,
            "rule": self.rule,
            "npy_sha256": hashlib.sha256(raw).hexdigest(),
            "indices": None if self.indices is None else [int(i) for i in self.indices],
            **self.extra,
        }
        text = json.dumps(meta, indent=1).encode()
        atomic_write_bytes(sidecar_path(path), lambda handle: handle.write(text))
        return path


def load_inpainting_file(path: str | Path, name: str | None = None) -> InpaintingSet:
    """Load and validate a (2, N, 784) in-painting file (ours or the course's original).

    Raises DataError naming the file when it is unreadable, not an ``.npy`` array, misshapen,
    has a non-binary ground truth, masked values outside {0, 1, -1}, masked images that disagree
    with the ground truth outside the missing pixels, or an image without a missing pixel.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if raw.startswith(b"PK"):
        raise DataError(f"{path}: not a single .npy array (an .npz archive?)")
    if not raw.startswith(b"\x93NUMPY"):
        raise DataError(f"{path}: not a readable .npy array (no NumPy header)")
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as error:  # truncated header or data, object array, ...
        raise DataError(f"{path}: not a readable .npy array ({type(error).__name__}: {error})"
                        ) from None
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: dtype {array.dtype} is not numeric")
    if array.ndim != 3 or array.shape[0] != 2 or array.shape[2] != PIXELS or array.shape[1] < 1:
        raise DataError(f"{path}: shape {array.shape}, expected (2, N, {PIXELS}) "
                        f"(masked images, ground truth)")
    masked, truth = array[0], array[1]
    _check_arrays(masked, truth, str(path))
    meta = {}
    sidecar = sidecar_path(path)
    if sidecar.exists():
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as error:
            raise DataError(f"{sidecar}: unreadable sidecar ({error})") from None
        if not isinstance(meta, dict):
            raise DataError(f"{sidecar}: unreadable sidecar (not a JSON object)")
        if meta.get("npy_sha256") not in (None, hashlib.sha256(raw).hexdigest()):
            raise DataError(f"{sidecar}: describes another version of {path.name} (sha256 "
                            f"differs); delete the sidecar or regenerate the set")
        indices = meta.get("indices")
        if indices is not None and not (
                isinstance(indices, list) and len(indices) == len(masked)
                and all(isinstance(i, int) and 0 <= i for i in indices)):
            raise DataError(f"{sidecar}: 'indices' must be a list of {len(masked)} "
                            f"non-negative integers")
    indices = meta.get("indices")
    return InpaintingSet(
        masked=masked, truth=truth,
        indices=None if indices is None else np.asarray(indices, np.int64),
        name=name or meta.get("name") or path.stem, seed=meta.get("seed"),
        rule=meta.get("rule", ""))


# --------------------------------------------------------------------------- generators


def _test_bits(mnist: BinarizedMNIST) -> np.ndarray:
    x = np.asarray(mnist.test.x)
    if x.ndim != 2 or x.shape[1] != PIXELS:
        raise DataError(f"test split has shape {x.shape}, expected (N, {PIXELS})")
    return x


def task2_set(mnist: BinarizedMNIST, count: int = TASK2_COUNT, masked: int = TASK2_MASKED,
              seed: int = TASK2_SEED) -> InpaintingSet:
    """``count`` test images (seeded choice, sorted) with their last ``masked`` pixels missing."""
    x = _test_bits(mnist)
    if not 0 < masked <= PIXELS:
        raise ValueError(f"masked must be in 1..{PIXELS}, got {masked}")
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(len(x), size=count, replace=False))
    truth = x[indices].astype(np.float32)
    images = truth.copy()
    images[:, PIXELS - masked:] = MISSING
    return InpaintingSet(images, truth, indices, name="task2", seed=seed,
                         rule=TASK2_RULE.format(masked=masked))


def _dilate3x3(ink: np.ndarray) -> np.ndarray:
    """(N, 28, 28) bool: True where the clipped 3x3 neighbourhood holds ink."""
    padded = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros_like(ink)
    for dr in range(3):
        for dc in range(3):
            out |= padded[:, dr:dr + SIDE, dc:dc + SIDE]
    return out


def eligible_windows(truth: np.ndarray, size: int) -> np.ndarray:
    """(N, 29-size, 29-size) bool: windows (by top-left pixel) that satisfy the placement rule."""
    near_ink = _dilate3x3(np.asarray(truth).reshape(-1, SIDE, SIDE) > 0)
    span = SIDE - size + 1
    out = np.zeros((len(near_ink), span, span), bool)
    for dr in range(size):
        for dc in range(size):
            out |= near_ink[:, dr:dr + span, dc:dc + span]
    return out


def window_set(mnist: BinarizedMNIST, count: int = TASK3_COUNT, size: int = 2,
               seed: int = WINDOW_SEED, name: str | None = None) -> InpaintingSet:
    """``count`` test images, each missing one ``size`` x ``size`` window on or next to ink."""
    if not 1 <= size <= SIDE:
        raise ValueError(f"size must be in 1..{SIDE}, got {size}")
    x = _test_bits(mnist)
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(x.any(axis=1))
    indices = np.sort(rng.choice(candidates, size=count, replace=False))
    truth = x[indices].astype(np.float32)
    eligible = eligible_windows(truth, size).reshape(count, -1)
    n_eligible = eligible.sum(axis=1)
    picks = rng.integers(0, n_eligible)
    span = SIDE - size + 1
    images = truth.reshape(count, SIDE, SIDE).copy()
    for i in range(count):
        top_left = int(np.flatnonzero(eligible[i])[picks[i]])
        row, col = divmod(top_left, span)
        images[i, row:row + size, col:col + size] = MISSING
    return InpaintingSet(images.reshape(count, PIXELS), truth, indices,
                         name=name or f"{size}x{size}", seed=seed,
                         rule=ONE_PIXEL_RULE if size == 1 else TASK3_RULE.format(size=size))


def one_pixel_set(mnist: BinarizedMNIST, count: int = TASK3_COUNT,
                  seed: int = ONE_PIXEL_SEED) -> InpaintingSet:
    """``count`` test images, each missing one pixel on or next to ink (a 1x1 window)."""
    return window_set(mnist, count=count, size=1, seed=seed, name="1x1")


# --------------------------------------------------------------------------- files


def default_directory() -> Path:
    return data_dir() / "inpainting"


def _generate(name: str, mnist: BinarizedMNIST) -> InpaintingSet:
    if name == "task2":
        return task2_set(mnist)
    if name == "1x1":
        return one_pixel_set(mnist)
    if name == "2x2":
        return window_set(mnist, size=2)
    raise ValueError(f"unknown in-painting set {name!r}: use one of {sorted(SET_FILES)}")


def prepare_inpainting_sets(mnist: BinarizedMNIST | None = None,
                            directory: str | Path | None = None) -> dict[str, Path]:
    """Write the three default sets into ``directory`` where their files are missing.

    ``directory`` defaults to ``seqmnist.paths.data_dir() / "inpainting"``. An existing file is
    never overwritten, so the course's original Task 3 files can be dropped in place of ours.
    ``mnist`` (loaded on demand) must be the binarized MNIST. Returns {set name: path}.
    """
    directory = Path(directory) if directory is not None else default_directory()
    paths = {}
    for name, filename in SET_FILES.items():
        path = directory / filename
        if not path.exists():
            if mnist is None:
                from .data import load_mnist

                mnist = load_mnist()
            _generate(name, mnist).save(path)
        paths[name] = path
    return paths


def load_sets(mnist: BinarizedMNIST | None = None,
              directory: str | Path | None = None) -> dict[str, InpaintingSet]:
    """The three sets {"task2", "1x1", "2x2"}, generated first where their files are missing."""
    sets = {}
    for name, path in prepare_inpainting_sets(mnist, directory).items():
        try:
            sets[name] = load_inpainting_file(path, name=name)
        except DataError as error:
            raise DataError(f"{error} (delete the file to regenerate the default set)") from None
    return sets
