"""Connecting to PostgreSQL: a DSN and/or fields, retries with exponential backoff on transient
failures, and a one-line error that names host, port and database but never a password.

libpq's own messages can quote the connection string (an invalid DSN is echoed whole), so the error
is rebuilt from the reason alone, with every secret scrubbed from it as well.
"""

from __future__ import annotations

import getpass
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2.extensions import connection as Connection

from conduit import interrupts
from conduit.errors import ConnectorError, RetriableConnectorError
from conduit_postgres.options import ConnectionOptions

APPLICATION_NAME = "conduit"
MAX_BACKOFF = 30.0

_FAILED = re.compile(r"failed:\s*(.*)$")
_TRANSIENT = (
    "connection refused",
    "timeout expired",
    "timed out",
    "could not receive data",
    "server closed the connection",
    "connection reset",
    "no route to host",
    "network is unreachable",
    "temporary failure in name resolution",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients",
    "no such file or directory",
)


@dataclass(frozen=True)
class Endpoint:
    """Where a connection goes, for messages: ``127.0.0.1:5432 (test)``."""

    host: str
    port: str
    dbname: str

    def __str__(self) -> str:
        where = f"socket {self.host}" if self.host.startswith("/") else f"{self.host}:{self.port}"
        return f"{where} ({self.dbname})"


def _parsed_dsn(options: ConnectionOptions) -> dict[str, str]:
    if options.dsn is None:
        return {}
    try:
        return dict(psycopg2.extensions.parse_dsn(options.dsn.get_secret_value()))
    except psycopg2.ProgrammingError:
        raise ConnectorError(
            "cannot connect to PostgreSQL: the dsn is not a valid connection string "
            "(postgresql://user@host:5432/dbname or 'host=... dbname=...')"
        ) from None


def connection_arguments(options: ConnectionOptions) -> dict[str, Any]:
    """The keyword arguments of ``psycopg2.connect``: the DSN plus every field that is set."""
    arguments: dict[str, Any] = {"connect_timeout": options.connect_timeout}
    if options.dsn is not None:
        arguments["dsn"] = options.dsn.get_secret_value()
    for key in ("host", "port", "user", "dbname", "sslmode", "options"):
        value = getattr(options, key)
        if value is not None:
            arguments[key] = value
    if options.password is not None:
        arguments["password"] = options.password.get_secret_value()
    arguments.setdefault("application_name", APPLICATION_NAME)
    return arguments


def endpoint(options: ConnectionOptions) -> Endpoint:
    """Host, port and database the options lead to, with libpq's defaults where none is given."""
    dsn = _parsed_dsn(options)

    def pick(field: str, env: str, default: str) -> str:
        value = getattr(options, field)
        if value is not None:
            return str(value)
        return dsn.get(field) or os.environ.get(env) or default

    user = pick("user", "PGUSER", _login_name())
    host = pick("host", "PGHOST", "localhost").split(",")[0]
    port = pick("port", "PGPORT", "5432").split(",")[0]
    return Endpoint(host, port, pick("dbname", "PGDATABASE", user))


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


def _secrets(options: ConnectionOptions) -> list[str]:
    values = []
    if options.password is not None:
        values.append(options.password.get_secret_value())
    if options.dsn is not None:
        dsn = options.dsn.get_secret_value()
        values.append(dsn)
        try:
            password = psycopg2.extensions.parse_dsn(dsn).get("password")
        except psycopg2.ProgrammingError:
            password = None
        if password:
            values.append(password)
    return sorted((v for v in values if v), key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def failure_reason(error: BaseException, secrets: list[str]) -> str:
    """The reason libpq gives for a failed connection, on one line and without secrets:
    ``Connection refused``, ``password authentication failed for user "loader"``..."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons: list[str] = []
    for line in lines:
        if line.startswith("Is the server"):
            continue
        match = _FAILED.search(line)
        reason = match.group(1) if match else line
        reason = re.sub(r"^(FATAL|ERROR):\s*", "", reason).strip()
        if reason and reason not in reasons:
            reasons.append(reason)
    return scrub("; ".join(reasons) or type(error).__name__, secrets)


def is_transient(reason: str) -> bool:
    """A refused connection, a timeout, a server starting up: worth trying again."""
    lowered = reason.lower()
    return any(marker in lowered for marker in _TRANSIENT)


def connect(
    options: ConnectionOptions,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Connection:
    """A new connection, trying ``1 + connect_retries`` times with exponential backoff while the
    failure is transient. Raises :class:`RetriableConnectorError` (transient) or
    :class:`ConnectorError` with ``cannot connect to PostgreSQL at host:port (dbname): reason``."""
    where = endpoint(options)
    arguments = connection_arguments(options)
    secrets = _secrets(options)
    attempts = 1 + options.connect_retries
    attempt = 0
    while True:
        try:
            connection: Connection = psycopg2.connect(**arguments)
        except psycopg2.OperationalError as exc:
            reason = failure_reason(exc, secrets)
            transient = is_transient(reason)
            attempt += 1
            if transient and attempt < attempts:
                interrupts.raise_if_requested()
                sleep(min(options.connect_backoff * 2 ** (attempt - 1), MAX_BACKOFF))
                continue
            tried = f" (after {attempts} attempts)" if transient and attempts > 1 else ""
            error = RetriableConnectorError if transient else ConnectorError
            raise error(f"cannot connect to PostgreSQL at {where}: {reason}{tried}") from None
        except psycopg2.Error as exc:
            reason = failure_reason(exc, secrets)
            raise ConnectorError(f"cannot connect to PostgreSQL at {where}: {reason}") from None
        connection.set_client_encoding("UTF8")
        return connection


def close_quietly(connection: Connection | None) -> None:
    """Close a connection; never raises (cleanup after a failure)."""
    if connection is None:
        return
    try:
        connection.close()
    except psycopg2.Error:
        pass


class ConnectionCache:
    """At most one idle connection kept for the next use with the same options.

    A destination's preflight (``check``, ``current_schema``, state reads) and its successive load
    sessions (one per checkpoint) each used to open a connection of their own: five before the first
    row of a run and one more per checkpoint, each a server process started and, over TLS to a
    remote server, a handshake. Through the cache they share one (the entity's lock keeps its own:
    a session lock must not be lost with a connection that a failure closes).

    A connection comes back only in a known state: not closed, its transaction rolled back (a
    successful user commits first) and ``autocommit`` off; one a failure left in an unknown state is
    closed instead (:meth:`borrow` closes it when the block raises, a user calls :meth:`discard`).

    While a connection is lent out (from :meth:`take` to :meth:`give_back` or :meth:`discard`), an
    interrupted run (:mod:`conduit.interrupts`) cancels what it is running on the server, so a
    statement or COPY waiting for a lock or a slow server returns at once (with ``QueryCanceled``,
    which :func:`conduit_postgres.errors.statement_error` reports as the interruption). Cancelling
    and closing a lent connection are serialized: psycopg2 frees the cancel handle on close.
    """

    def __init__(self, options: ConnectionOptions) -> None:
        self._options = options
        self._idle: Connection | None = None
        self._closed = False
        self._lent: set[Connection] = set()
        self._lock = threading.Lock()
        self._stop_cancelling = interrupts.register(self._cancel_lent)

    def _cancel_lent(self) -> None:
        """Cancel what every lent-out connection runs (from the interrupt watcher thread)."""
        with self._lock:
            for connection in list(self._lent):
                if not connection.closed:
                    try:
                        connection.cancel()
                    except psycopg2.Error:
                        pass

    def take(self) -> Connection:
        """The idle connection, or a new one (:func:`connect`, with its retries)."""
        idle, self._idle = self._idle, None
        connection = idle if idle is not None and not idle.closed else connect(self._options)
        with self._lock:
            self._lent.add(connection)
        return connection

    def discard(self, connection: Connection) -> None:
        """Close a lent connection that a failure left in an unknown state. Never raises."""
        with self._lock:
            self._lent.discard(connection)
            close_quietly(connection)

    def give_back(self, connection: Connection) -> None:
        """Keep ``connection`` for the next :meth:`take` (its open transaction rolled back), or
        close it when one is already kept, the cache is closed, or resetting it fails."""
        with self._lock:
            self._lent.discard(connection)
        if connection.closed:
            return
        try:
            connection.rollback()
            connection.autocommit = False
        except psycopg2.Error:
            close_quietly(connection)
            return
        if self._idle is not None or self._closed:
            close_quietly(connection)
        else:
            self._idle = connection

    @contextmanager
    def borrow(self) -> Iterator[Connection]:
        """A connection for the block: given back after it, closed if the block raises."""
        connection = self.take()
        try:
            yield connection
        except BaseException:
            self.discard(connection)
            raise
        self.give_back(connection)

    def close(self) -> None:
        """Close the idle connection; later give-backs close theirs. Never raises."""
        self._stop_cancelling()
        self._closed = True
        idle, self._idle = self._idle, None
        close_quietly(idle)
