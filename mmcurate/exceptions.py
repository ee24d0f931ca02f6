"""Domain errors raised by mmcurate.

Bad arguments raise the builtin ``ValueError``/``TypeError``; the classes here describe states of
data, models and projects that a user must act on. Every message says what was expected, what
arrived, and how to fix it.
"""

from __future__ import annotations


class MmcurateError(Exception):
    """Base class of every mmcurate domain error."""


class DataError(MmcurateError):
    """A pair source or labels file cannot be read as a whole (wrong columns, bad encoding)."""


class ModelNotAvailableError(MmcurateError):
    """Model weights are not on this machine and cannot be downloaded.

    ``reason`` says what is missing; ``how_to`` lists the ways to supply it (the CLI replaces it
    with the commands that fit the command that failed).
    """

    def __init__(self, reason: str, how_to: str = "") -> None:
        super().__init__(f"{reason}\n{how_to}" if how_to else reason)
        self.reason, self.how_to = reason, how_to


class ModelMismatchError(MmcurateError):
    """Stored vectors were made by another model than the one asked for."""


class ProjectError(MmcurateError):
    """A project directory is missing, incomplete or in an unexpected state."""


class UndecidedRoundError(ProjectError):
    """A new round was asked for while the latest one still has undecided pairs."""


class ProjectLockedError(ProjectError):
    """Another process holds the project's write lock."""


class LedgerLockedError(ProjectLockedError):
    """Another writer held the labels ledger's write lock for longer than the busy timeout."""


class NotEmbeddedError(ProjectError):
    """A stage needs embeddings that have not been computed yet."""


class NoDecisionsError(ProjectError):
    """A stage needs review decisions (``train``) and the project has none yet."""


class QueryError(MmcurateError):
    """A query strategy or selector cannot produce what was asked."""


class UnsupportedStrategyError(QueryError, ValueError):
    """An engine cannot compute what a strategy (with these options) reads; the message says what
    to use instead. Raised before the engine does any work."""


class PoolExhaustedError(QueryError):
    """Fewer unlabelled pairs remain than the requested batch size."""


class MissingDependencyError(MmcurateError, ImportError):
    """An optional dependency is not installed; the message gives the pip command."""


class DeviceError(MmcurateError):
    """A compute device was asked for by name but this machine does not have it."""
