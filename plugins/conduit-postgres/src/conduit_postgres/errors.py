"""Turning psycopg2 errors raised by statements into Conduit's errors, as one readable line.

* SQLSTATE class 22 (data exception: a value out of range, a bad encoding) and 23 (integrity: a NULL
  in a NOT NULL column, a duplicate key) are :class:`DataError`, located at the load's row and column
  when the server's COPY context gives them.
* A lost connection is a :class:`RetriableConnectorError`.
* A statement cancelled because the run was interrupted (SIGINT, SIGTERM: the connection's cancel
  is registered with :mod:`conduit.interrupts`) is :class:`~conduit.errors.Interrupted`, not an
  error of the statement. A cancel for any other reason (``statement_timeout``) stays an error.
* Everything else (a missing table or column, a syntax error in ``where``, a permission) is a
  :class:`ConnectorError`, and so is any failure of a schema change's DDL (which names the statement).
"""

from __future__ import annotations

import re

import psycopg2

from conduit import interrupts
from conduit.errors import ConduitError, ConnectorError, DataError, DataLocation, RetriableConnectorError

QUERY_CANCELED = "57014"
_COPY_CONTEXT = re.compile(r"^COPY [^\n]*?, line (\d+)(?:, column ([^:\n]+))?")


def one_line(text: str) -> str:
    return " ".join(text.split())


def _primary(exc: psycopg2.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        return str(primary)
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return re.sub(r"^(ERROR|FATAL):\s*", "", text.strip())


def statement_error(exc: psycopg2.Error, what: str) -> ConduitError:
    """The Conduit error for ``exc``, raised while doing ``what`` (``loading into public.orders``)."""
    code = exc.pgcode or ""
    if code == QUERY_CANCELED and interrupts.requested():
        return interrupts.error()
    if not code and isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        primary = one_line(_primary(exc))
        return RetriableConnectorError(f"{what}: the connection to PostgreSQL failed: {primary}")
    message = _message(exc, what)
    if code.startswith(("22", "23")):
        return DataError(message, _copy_location(exc.diag.context or ""))
    return ConnectorError(message)


def schema_change_error(exc: psycopg2.Error, statement: str, where: str) -> ConduitError:
    """The error for a schema-change statement that failed: a :class:`ConnectorError` naming the
    statement (even for a data exception: the rows at fault are already in the table, not in the
    load), :class:`RetriableConnectorError` for a lost connection, or the interruption."""
    if exc.pgcode == QUERY_CANCELED and interrupts.requested():
        return interrupts.error()
    what = f"{where}: the schema change `{one_line(statement)}` failed"
    if not exc.pgcode and isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        primary = one_line(_primary(exc))
        return RetriableConnectorError(f"{what}: the connection to PostgreSQL failed: {primary}")
    return ConnectorError(f"{_message(exc, what)} (nothing was changed)")


def _message(exc: psycopg2.Error, what: str) -> str:
    diag = exc.diag
    detail = one_line(diag.message_detail or "")
    hint = one_line(diag.message_hint or "")
    message = f"{what}: {one_line(_primary(exc))}"
    if detail:
        message += f" ({detail})"
    if hint:
        message += f"; {hint}"
    return message


def _copy_location(context: str) -> DataLocation:
    match = _COPY_CONTEXT.search(context)
    if not match:
        return DataLocation()
    column = match.group(2)
    return DataLocation(row=int(match.group(1)), column=column.strip() if column else None)
