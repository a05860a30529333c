"""seqmnist: recurrent networks that read binarized MNIST one pixel at a time."""

from .data import BinarizedMNIST, Split, binarize, load_mnist
from .errors import CheckpointError, ConfigError, DataError, SeqMnistError

__all__ = ["BinarizedMNIST", "Split", "binarize", "load_mnist",
           "SeqMnistError", "DataError", "ConfigError", "CheckpointError"]
