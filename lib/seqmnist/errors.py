"""One exception family, so that the command line prints a single clear line for bad input."""


class SeqMnistError(Exception):
    """Base class: a problem the user can fix (bad input, missing or damaged file)."""


class DataError(SeqMnistError):
    """A data source, cache or in-painting file is missing, damaged or not what it claims."""


class ConfigError(SeqMnistError):
    """An unknown model name or a nonsensical hyperparameter."""


class CheckpointError(SeqMnistError):
    """A checkpoint or weights file is damaged, missing its sidecar, or for another model."""


class TrainingDiverged(SeqMnistError):
    """The training loss or gradient norm became NaN or infinite (a learning rate too high).
    ``history`` holds the records of the epochs completed before."""

    def __init__(self, message: str, history=()):
        super().__init__(message)
        self.history = list(history)
