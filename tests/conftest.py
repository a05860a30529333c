import os

import pytest

# One thread: deterministic float reductions, and the test run leaves the other core to training.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def mnist():
    """The real binarized MNIST (fetched and cached on first use, then ~0.2 s to load)."""
    from seqmnist import load_mnist

    return load_mnist()
