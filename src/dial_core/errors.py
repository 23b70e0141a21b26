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


class InvalidRequest(DialError):
    """A request to the annotation server names something that does not exist (a click outside the
    image, an unknown class): the client must change the request (HTTP 422)."""


class StateConflict(DialError):
    """A request to the annotation server does not fit its current state (nothing to undo, DISCA
    without clicks or without a learning rate): nothing was changed (HTTP 409)."""
