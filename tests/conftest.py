import os
import shutil

import pytest

# One thread: deterministic float reductions, and the test run leaves the other core to training.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items):
    """``@pytest.mark.requires_programs("pandoc", ...)``: the test needs programs that a bare
    machine lacks; it is skipped, naming the missing ones, where they are not on PATH (and
    ``pytest -m requires_programs`` runs just these where they are)."""
    for item in items:
        for mark in item.iter_markers("requires_programs"):
            missing = [name for name in mark.args if shutil.which(name) is None]
            if missing:
                item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)} (not installed)"))


@pytest.fixture(scope="session")
def mnist():
    """The real binarized MNIST (fetched and cached on first use, then ~0.2 s to load)."""
    from seqmnist import load_mnist

    return load_mnist()
