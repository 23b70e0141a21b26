"""One exception family for everything the workflow reports to a user.

Messages name the file or parameter at fault and say how to fix it; scripts print them without
a traceback and exit non-zero (see :func:`dial_core.cli.run_step`).
"""


class DialError(Exception):
    """Base class: an error a user can act on."""


class ConfigError(DialError):
    """A parameter file is invalid (unknown key, wrong type, out of range)."""


class DataError(DialError):
    """A dataset file is missing, corrupt or inconsistent."""


class CheckpointError(DialError):
    """A checkpoint is missing, corrupt or does not fit the requested network."""


class TrainingError(DialError):
    """Training diverged (NaN/inf loss) or cannot proceed."""


class OutputError(DialError):
    """An output cannot be written: the disk is full, over quota, read-only or not writable."""
