"""The destination's state for each entity, kept in ``<schema>._conduit_state``, and the lock that keeps
two runs of one entity apart.

State is stored as ``jsonb``, which holds numbers as ``numeric`` and prints them without an exponent:
``json.dumps`` would write the float ``1e20`` as ``1e+20`` and read it back as the int
``100000000000000000000``. :func:`state_json` therefore spells every float positionally with a
fractional part (``100000000000000000000.0``), which ``numeric`` keeps as written, so
:func:`read_state` returns what was committed (objects may come back with their keys in ``jsonb``'s
order). A value JSON has no form for is written as its ``str()``, as ``json.dumps(default=str)``
would; NaN, infinities and NUL characters, which ``jsonb`` cannot hold, are refused.

State rows are keyed by the target table's name, the flow and the entity (``_conduit_state`` lives in
the table's schema): two flows with an entity of the same name writing different tables share
nothing, and a run of the same flow from another machine finds the same row.

The lock is a session-level advisory lock, ``pg_try_advisory_lock(hashtext('conduit'),
hashtext(<schema, table, flow and entity joined by U+001F>))``, taken on a connection of its own that
stays open for the run. It never waits; the server releases it when that connection closes, which
includes the process holding it dying (or its connection being cut). Because the server can also end
that connection while the run goes on, every commit checks inside its transaction that the lock is
still held (:class:`HeldLock`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg2
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

from conduit.connectors import StateKey
from conduit.errors import ConnectorError
from conduit_postgres import catalog, evolution, statements
from conduit_postgres.connection import ConnectionCache, close_quietly, connect
from conduit_postgres.errors import statement_error
from conduit_postgres.identifiers import shown
from conduit_postgres.options import PostgresDestinationOptions

LOCK_NAMESPACE = "conduit"
"""The first key of every entity lock (``hashtext`` of it), so other advisory locks rarely collide."""

IDLE_SESSION_TIMEOUT_VERSION = 140000
"""``idle_session_timeout`` (which would end the lock's idle connection) exists from PostgreSQL 14."""

_TRY_LOCK = "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext(%s), pg_catalog.hashtext(%s))"
_UNLOCK = "SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext(%s), pg_catalog.hashtext(%s))"
FENCE_NAMESPACE = "conduit-commit"
"""The first key of an entity's commit fence (its second is the lock's): a commit holds it for its
transaction; a run that has just taken the entity's lock waits on it once (see :class:`HeldLock`)."""
_FENCE_XACT = (
    f"SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('{FENCE_NAMESPACE}'), "
    "pg_catalog.hashtext(%s))"
)
_FENCE_WAIT = (
    f"SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext('{FENCE_NAMESPACE}'), pg_catalog.hashtext(%s))"
)
_FENCE_RELEASE = (
    f"SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('{FENCE_NAMESPACE}'), pg_catalog.hashtext(%s))"
)
_STILL_HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.objsubid = 2 "
    "AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) "
    "AND l.classid = pg_catalog.hashtext(%s)::oid AND l.objid = pg_catalog.hashtext(%s)::oid AND l.pid = %s)"
)
_HOLDER = (
    "SELECT l.pid, a.usename, pg_catalog.host(a.client_addr), a.backend_start "
    "FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
    "AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) "
    "AND l.classid = pg_catalog.hashtext(%s)::oid AND l.objid = pg_catalog.hashtext(%s)::oid "
    "AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid() "
    "ORDER BY a.backend_start NULLS LAST LIMIT 1"
)
"""The session holding the lock (keys as for ``_TRY_LOCK``): pid, user, client address, connected since.
Two int4 keys show in ``pg_locks`` as ``classid``/``objid`` (as ``oid``) with ``objsubid`` 2."""


# -- the state as JSON ----------------------------------------------------------------------------


class _Unstorable(ValueError):
    pass


def state_json(state: Mapping[str, Any], where: str) -> str:
    """``state`` as JSON text that ``jsonb`` stores and gives back unchanged (see the module docstring)."""
    try:
        return _json(dict(state))
    except _Unstorable as exc:
        raise ConnectorError(f"{where}: cannot store the state: {exc}") from None


def _json(value: Any) -> str:
    if isinstance(value, str):
        if "\x00" in value:
            raise _Unstorable(f"{_short(value)} contains a NUL character, which jsonb cannot hold")
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, bool | int):
        return json.dumps(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Mapping):
        items = (f"{_json(_key(key))}: {_json(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_json(item) for item in value) + "]"
    return _json(str(value))


def _key(key: Any) -> str:
    """An object key as ``json.dumps`` spells it: ``true``, ``null``, ``1``, ``1.5``."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return str(key)


def _float(value: float) -> str:
    """A float without an exponent and with a fractional part, so ``numeric`` keeps it a float."""
    text = repr(value)
    if text in ("nan", "inf", "-inf"):
        raise _Unstorable(f"the float {text} has no JSON form")
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text if "." in text else text + ".0"


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


# -- reading and writing it -----------------------------------------------------------------------
# A row is keyed by target (the table's name: the state table lives in the table's schema), flow and
# entity. A state table written by versions before that key has ``entity`` alone: it is read as it
# is, and migrated in place by the first write (its rows keep ``''`` as target and flow, and each is
# taken over by the first load of its entity, which deletes it in the transaction that writes its own).


def state_key(options: PostgresDestinationOptions, key: StateKey) -> tuple[str, str, str]:
    """The row's key: target (the table's name), flow, entity."""
    return options.target.name, key.flow, key.entity


def read_state(
    options: PostgresDestinationOptions, connections: ConnectionCache, key: StateKey, where: str
) -> dict[str, Any] | None:
    """The state stored for ``key`` at this table, or ``None`` when there is none (nor any state table)."""
    schema = options.target.schema
    try:
        with connections.borrow() as connection, connection.cursor() as cursor:
            cursor.execute(statements.state_table_layout(schema))
            layout = cursor.fetchone()
            if layout is None:
                return None
            if layout[0]:
                cursor.execute(statements.select_state(schema), state_key(options, key))
            else:
                cursor.execute(statements.select_legacy_state(schema), (key.entity,))
            row = cursor.fetchone()
    except psycopg2.Error as exc:
        raise statement_error(exc, where) from None
    if row is None:
        return None
    value = json.loads(row[0])
    if not isinstance(value, dict):
        raise ConnectorError(
            f"{where}: the state of {key} in {options.target.sibling(statements.STATE_TABLE)} is not a "
            f"JSON object: {_short(row[0])}"
        )
    return value


def ensure_state_table(cursor: Cursor, schema: str) -> None:
    """Create the state table, or migrate one keyed by entity alone, in the caller's transaction."""
    cursor.execute(statements.state_table_layout(schema))
    layout = cursor.fetchone()
    if layout is None:
        cursor.execute(statements.create_state_table(schema))
    elif not layout[0]:
        cursor.execute(statements.lock_state_table(schema))
        cursor.execute(statements.state_table_layout(schema))  # another load may have migrated it
        again = cursor.fetchone()
        if again is not None and not again[0]:
            for statement in statements.migrate_state_table(schema):
                cursor.execute(statement)


def upsert_state(
    cursor: Cursor, options: PostgresDestinationOptions, key: StateKey, payload: str, run_id: str | None
) -> None:
    """Store ``key``'s state in the caller's transaction (creating or migrating the table first)."""
    schema = options.target.schema
    ensure_state_table(cursor, schema)
    cursor.execute(statements.upsert_state(schema), (*state_key(options, key), payload, run_id))
    cursor.execute(statements.claim_legacy_state(schema), (key.entity,))


def write_state(
    options: PostgresDestinationOptions,
    connections: ConnectionCache,
    key: StateKey,
    state: Mapping[str, Any] | None,
    where: str,
    *,
    ddl: Sequence[str] = (),
    held: HeldLock | None = None,
) -> None:
    """Replace ``key``'s state (``None``: delete it) in a transaction of its own, creating the
    schema (with ``create_table``) and the state table when needed. ``ddl`` (schema changes
    from :func:`conduit_postgres.evolution.plan_statements`) run first in the same transaction: the
    DDL and the state commit together, and a failing statement leaves both as they were. With
    ``held`` (the entity's lock), the transaction commits only if the lock is still held."""
    payload = None if state is None else state_json(state, where)
    target = options.target
    try:
        with connections.borrow() as connection:  # a failure closes it: the transaction rolls back
            with connection.cursor() as cursor:
                if held is not None:
                    held.verify(cursor, where)
                evolution.run_statements(cursor, ddl, where)
                if payload is None:
                    cursor.execute(statements.state_table_layout(target.schema))
                    layout = cursor.fetchone()
                    if layout is not None and layout[0]:
                        cursor.execute(statements.delete_state(target.schema), state_key(options, key))
                    elif layout is not None:
                        cursor.execute(statements.select_legacy_state(target.schema), (key.entity,))
                        if cursor.fetchone() is not None:
                            ensure_state_table(cursor, target.schema)
                            cursor.execute(statements.delete_state(target.schema), state_key(options, key))
                else:
                    if not catalog.schema_exists(cursor, target.schema):
                        if not options.create_table:
                            raise ConnectorError(
                                f"{where}: schema {shown(target.schema)} does not exist (and create_table is false)"
                            )
                        cursor.execute(statements.create_schema(target.schema))
                    upsert_state(cursor, options, key, payload, None)
            connection.commit()
    except psycopg2.Error as exc:
        raise statement_error(exc, where) from None


# -- the lock -------------------------------------------------------------------------------------


def lock_keys(options: PostgresDestinationOptions, key: StateKey) -> tuple[str, str]:
    """The texts whose ``hashtext`` are the lock's two keys: the namespace, and the state's identity
    (schema, table, flow, entity)."""
    target = options.target
    return LOCK_NAMESPACE, "\x1f".join((target.schema, target.name, key.flow, key.entity))


@dataclass(frozen=True)
class HeldLock:
    """An entity's lock as held by a run: the keys, and the server process of the connection that
    holds it. A session lock lives as long as that process: if the server ends it (a pooler, a
    failover, ``pg_terminate_backend``), the lock is gone while the run goes on, and another run can
    take it. So every commit of the entity checks, inside its transaction, that it still holds it
    (:meth:`verify`), and a run that takes the lock waits for a commit of an earlier holder that is
    still under way (the commit fence) before it reads the state: between them no commit of a run
    that lost its lock can land after another run has read the state."""

    keys: tuple[str, str]
    pid: int

    def verify(self, cursor: Cursor, where: str) -> None:
        """In the caller's transaction: take the commit fence for this transaction, then raise
        :class:`ConnectorError` unless the lock is still held by our process."""
        cursor.execute(_FENCE_XACT, self.keys[1:])
        cursor.execute(_STILL_HELD, (*self.keys, self.pid))
        row = cursor.fetchone()
        if row is None or not row[0]:
            raise ConnectorError(
                f"{where}: the run's lock on the entity was lost (PostgreSQL ended the session that held "
                f"it, backend pid {self.pid}: a pooler, a failover or pg_terminate_backend), so another "
                "run may be loading the entity now; this commit was rolled back. Make sure no other run "
                "is loading it, then run again with --resume"
            )


@contextmanager
def entity_lock(options: PostgresDestinationOptions, key: StateKey, where: str) -> Iterator[HeldLock]:
    """Hold ``key``'s lock at this target for the block, or raise :class:`ConnectorError` at once,
    naming the session that holds it."""
    keys = lock_keys(options, key)
    connection = connect(options)
    try:
        connection.autocommit = True  # a session lock; no transaction left open for the run
        with connection.cursor() as cursor:
            if connection.server_version >= IDLE_SESSION_TIMEOUT_VERSION:
                cursor.execute("SET idle_session_timeout = 0")
            holder = _take(cursor, keys)
            if holder is None:
                cursor.execute(_FENCE_WAIT, keys[1:])  # a commit of a holder that lost the lock ends first
                cursor.execute(_FENCE_RELEASE, keys[1:])
    except psycopg2.Error as exc:
        close_quietly(connection)
        raise statement_error(exc, where) from None
    except BaseException:
        close_quietly(connection)
        raise
    if holder is not None:
        close_quietly(connection)
        raise ConnectorError(
            f"{where}: {key} is being loaded by another run ({holder}; wait for it to finish or stop it)"
        )
    try:
        yield HeldLock(keys, connection.get_backend_pid())
    finally:
        _release(connection, keys)


def _take(cursor: Cursor, keys: tuple[str, str]) -> str | None:
    """``None`` once the lock is held, else who holds it. A holder that lets go between the attempt
    and the look-up is tried again."""
    for _ in range(3):
        cursor.execute(_TRY_LOCK, keys)
        row = cursor.fetchone()
        if row is not None and row[0]:
            return None
        cursor.execute(_HOLDER, keys)
        holder = cursor.fetchone()
        if holder is not None:
            return _describe_holder(holder)
    return "held by another PostgreSQL session"


def _describe_holder(row: tuple[Any, ...]) -> str:
    pid, user, client, since = row
    text = f"held by PostgreSQL backend pid {pid}"
    details = [f"{label} {value}" for label, value in (("user", user), ("client", client)) if value]
    if details:
        text += f" ({', '.join(details)})"
    if isinstance(since, dt.datetime):
        if since.tzinfo is not None:
            since = since.astimezone(dt.UTC)
        text += f", connected since {since:%Y-%m-%d %H:%M:%S} UTC"
    return text


def _release(connection: Connection, keys: tuple[str, str]) -> None:
    """Unlock (so the next run sees it free at once), then close; never raises. Closing alone
    releases it too, but the server may notice a moment later."""
    try:
        if not connection.closed:
            with connection.cursor() as cursor:
                cursor.execute(_UNLOCK, keys)
    except psycopg2.Error:
        pass
    close_quietly(connection)
