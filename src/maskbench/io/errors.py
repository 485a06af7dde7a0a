"""Exceptions with messages meant for users: they name the file or key and what was expected."""


class MaskbenchError(Exception):
    """Base class of every error maskbench reports to a user (CLI exits 2 with the message)."""


class ConfigError(MaskbenchError, ValueError):
    """A configuration key or value is wrong."""


class DataError(MaskbenchError, ValueError):
    """A data file is missing, empty or malformed."""


class MaskFileError(MaskbenchError, ValueError):
    """A saved mask directory is corrupt, truncated, or belongs to another base model."""


class OutputError(MaskbenchError, ValueError):
    """An output path cannot be written, or holds something that is not maskbench's to replace."""


class RecordError(DataError):
    """A record maskbench wrote (a run's ``metrics.json``, a selection round, an aggregate) is missing, not valid
    JSON, of the wrong shape, inconsistent, or disagrees with the run's stored predictions
    (:mod:`maskbench.records`)."""


class SettingError(ConfigError):
    """A value of the workflow's configuration is unusable; ``key`` is its place (``results_dir``,
    ``lr_grid.masking``), ``problem`` what is wrong and what was expected."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
