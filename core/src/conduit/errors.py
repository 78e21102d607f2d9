"""One error hierarchy, sorted by what the runner should do about an error.

* :class:`ConfigError` and :class:`PluginError` are the user's to fix before anything runs (exit code 2).
* :class:`ConnectorError` means a source or destination failed. :class:`RetriableConnectorError` marks
  the transient kind (a refused connection, a timeout) that retry logic may try again; nothing else is
  ever retried.
* :class:`Interrupted` means the run was stopped by SIGINT (Ctrl-C) or SIGTERM (exit code 130); what
  it committed before stays committed (see :mod:`conduit.interrupts`).
* :class:`DataError` means the input itself is bad (a ragged row, a value that does not fit its column).
  It carries the file, line, row and column so the message can point at the problem. Retrying never
  helps; a later release routes such rows to the dead-letter queue instead of failing.

Every error renders as one readable message (``str(err)``); the CLI prints that message and never a
traceback for a :class:`ConduitError`.
"""

from __future__ import annotations

from dataclasses import dataclass


class ConduitError(Exception):
    """Base of every error Conduit raises on purpose."""

    exit_code = 1


class ConfigError(ConduitError):
    """The configuration is wrong: a file, a key or a value. Exit code 2."""

    exit_code = 2


class PluginError(ConduitError):
    """A plugin could not be loaded, clashes with another, or a type is unknown. Exit code 2."""

    exit_code = 2


class UnknownTypeError(PluginError):
    """A config names a source, destination or check type that no installed plugin provides."""


class ConnectorError(ConduitError):
    """A source or destination failed (fatal: retrying will not help)."""


class RetriableConnectorError(ConnectorError):
    """A transient failure (connection refused, timeout): the runner may retry."""


class Interrupted(ConduitError):
    """The run was asked to stop (SIGINT, SIGTERM) and stopped at a batch boundary: the open load
    session was aborted, earlier commits stay. Exit code 130. See :mod:`conduit.interrupts`."""

    exit_code = 130


class SchemaError(ConduitError):
    """Incoming data does not fit the destination's schema and the schema policy refused the change."""

    changes: list[dict[str, object]] = []  # set per instance: the drift that was refused


@dataclass(frozen=True)
class DataLocation:
    """Where in the input a problem is. Every field is optional; render what is known."""

    file: str | None = None
    line: int | None = None
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file is not None:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)


class DataError(ConduitError):
    """The input data is bad. The message names the file, line, row and column where known."""

    def __init__(self, message: str, location: DataLocation | None = None) -> None:
        self.location = location or DataLocation()
        self.reason = message
        where = str(self.location)
        super().__init__(f"{where}: {message}" if where else message)
