"""Where things live. Environment variables override the defaults so tests can use temp dirs."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """Downloaded sources, the binarized cache and generated in-painting sets (git-ignored)."""
    return Path(os.environ.get("SEQMNIST_DATA", ROOT / "data"))


def weights_dir() -> Path:
    """Shipped weights and the campaign's checkpoints (committed)."""
    return Path(os.environ.get("SEQMNIST_WEIGHTS", ROOT / "weights"))


def build_dir() -> Path:
    """Executed notebooks, caches of evaluations, HTML and PDF (git-ignored)."""
    return Path(os.environ.get("SEQMNIST_BUILD", ROOT / "build"))
