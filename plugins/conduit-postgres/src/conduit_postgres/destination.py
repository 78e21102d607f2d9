"""The ``postgres`` destination: binary COPY into a table, one transaction per load.

Each load is a :class:`~conduit_postgres.session.PostgresLoadSession`: a transaction (which starts
with the load's schema changes, if any) and, from the first write, a
``COPY ... FROM STDIN (FORMAT binary)`` that pgpq's encoded batches stream into as they are written.
Nothing is visible to other connections before ``commit``, which finishes the COPY, applies the
mode, upserts the ``_conduit_state`` row and commits, all in that one transaction; ``abort`` (or a
killed process: the server rolls back) leaves no trace.

* ``append``: COPY straight into the table (created from the Arrow schema when missing).
* ``replace``: COPY into a staging table in the same schema; at commit the table is renamed away,
  the staging table renamed into its place and the old one dropped. Readers block on the lock for
  that moment and then see the new table; never an empty or partial one.
* ``merge``: COPY into a temporary table, keep the last row per ``primary_key`` (greatest
  ``order_by`` first when set, then load order), delete the keys whose latest row has the
  ``hard_delete`` flag, and ``INSERT ... ON CONFLICT DO UPDATE`` the rest.

Schema evolution (:mod:`conduit_postgres.evolution`): :meth:`PostgresDestination.plan_schema_changes`
gives the DDL for added columns and widened types (``ALTER TABLE ... ADD COLUMN`` / ``ALTER COLUMN ...
TYPE``); a load runs it first thing in its own transaction
(:meth:`~conduit_postgres.session.PostgresLoadSession.apply_schema_changes`), so it commits or rolls
back with the data, and ``conduit schema approve`` runs it with the state row in a transaction of its
own (:meth:`PostgresDestination.apply_schema_changes`).

The destination stores state (:mod:`conduit_postgres.statestore`): ``read_state``/``write_state`` on
the ``_conduit_state`` row, and ``lock``, a session advisory lock per schema and entity on a
connection of its own, held for the run.

Everything else shares one connection through a
:class:`~conduit_postgres.connection.ConnectionCache`: the preflight, the state reads and every load
session (one per checkpoint) take it in turn, so a run connects twice (this and the lock) however
many checkpoints it commits; :meth:`PostgresDestination.close` closes it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg2
import pyarrow as pa
from psycopg2.extensions import cursor as Cursor

from conduit.connectors import Destination, DestinationCapabilities, LoadSession, StateKey, WriteRequest
from conduit.errors import ConnectorError
from conduit_postgres import catalog, evolution, statements, statestore
from conduit_postgres.connection import ConnectionCache, endpoint
from conduit_postgres.errors import statement_error
from conduit_postgres.identifiers import TableName, shown
from conduit_postgres.options import PostgresDestinationOptions
from conduit_postgres.session import PostgresLoadSession, destination_label
from conduit_postgres.types import arrow_field, stored_type

if TYPE_CHECKING:
    from conduit.schema import ColumnChange


class PostgresDestination(Destination):
    """Loads into one table with binary COPY; append, replace or merge, atomically."""

    options_model = PostgresDestinationOptions
    capabilities = DestinationCapabilities(
        write_modes=frozenset({"append", "replace", "merge"}),
        default_mode="append",
        atomic=True,
        preserves_types=True,
        stores_state=True,
        schema_changes=frozenset({"add_column", "widen_type"}),
    )
    options: PostgresDestinationOptions

    def __init__(self, options: PostgresDestinationOptions) -> None:
        super().__init__(options)
        self._connections = ConnectionCache(options)
        self._held: dict[StateKey, statestore.HeldLock] = {}
        """The entity locks this destination holds now: every commit of such an entity verifies it."""

    def target_id(self) -> str:
        """The server, database and schema-qualified table, as messages show them
        (``db.internal:5432 (app)/public.orders``): the same table name in another database is another
        target. Parsed from the options without connecting; never holds a password."""
        return f"{endpoint(self.options)}/{self.options.target}"

    def close(self) -> None:
        """Close the connection kept between uses (the lock's and sessions' are their own)."""
        self._connections.close()

    def check(self) -> None:
        """Connect (with retries), then make sure the load can create or insert into the table."""
        target = self.options.target
        try:
            with self._connections.borrow() as connection, connection.cursor() as cursor:
                problem = _access_problem(cursor, target, self.options.create_table)
        except psycopg2.Error as exc:
            raise statement_error(exc, destination_label(target)) from None
        if problem:
            raise ConnectorError(f"{destination_label(target)}: {problem}")

    def current_schema(self) -> pa.Schema | None:
        """The table's columns as Arrow types (as the source reads them), or ``None`` if it is missing.
        A ``varchar(n)``/``char(n)`` column is a string field with ``{b"conduit.max_length": b"<n>"}``
        metadata (see :func:`conduit_postgres.types.arrow_field`)."""
        target = self.options.target
        try:
            with self._connections.borrow() as connection, connection.cursor() as cursor:
                relation = catalog.find_relation(cursor, target)
                if relation is None or not relation.is_table:
                    return None
                table = catalog.describe_table(cursor, target, relation.oid)
        except psycopg2.Error as exc:
            raise statement_error(exc, destination_label(target)) from None
        return pa.schema([arrow_field(c.name, c.type) for c in table.columns])

    def stored_schema(self, incoming: pa.Schema) -> pa.Schema:
        """Incoming types as a table created for them reads back (timestamp[s] -> timestamp[us], ...)."""
        return pa.schema([pa.field(f.name, stored_type(f.type)) for f in incoming])

    def open(self, request: WriteRequest) -> LoadSession:
        return PostgresLoadSession(self.options, request, self._connections, self._held.get(request.key))

    # -- schema evolution -------------------------------------------------------------------------

    def plan_schema_changes(self, target: pa.Schema, changes: Sequence[ColumnChange]) -> list[str]:
        """One ``ALTER TABLE`` per added column (``ADD COLUMN "c" <type>``, nullable, no default) and
        per widened type (``ALTER COLUMN "c" TYPE <type> USING "c"::<type>``), checked against the
        table as it is now (see :mod:`conduit_postgres.evolution`). Removed columns, types that fit
        and a table that does not exist yet get no statement. ``target`` (the evolved schema) is what
        the next load writes; the statements are built from ``changes``."""
        where = destination_label(self.options.target)
        try:
            with self._connections.borrow() as connection:
                with connection.cursor() as cursor:
                    table = _existing_table(cursor, self.options.target, where)
                return evolution.plan_statements(
                    connection,
                    self.options.target,
                    table,
                    changes,
                    where,
                    never_added=self.options.hard_delete,
                )
        except psycopg2.Error as exc:
            raise statement_error(exc, where) from None

    def apply_schema_changes(
        self, key: StateKey, statements: Sequence[str], state: Mapping[str, Any] | None
    ) -> None:
        """Outside a load (``conduit schema approve``): run ``statements`` and upsert ``entity``'s
        ``_conduit_state`` row (``None``: delete it) in one transaction; any failure changes nothing.
        The caller holds the entity's lock; the statements take the table's own lock."""
        statestore.write_state(
            self.options,
            self._connections,
            key,
            state,
            destination_label(self.options.target),
            ddl=statements,
            held=self._held.get(key),
        )

    # -- state ------------------------------------------------------------------------------------

    def read_state(self, key: StateKey) -> dict[str, Any] | None:
        """The state last committed with ``key``'s data (its ``_conduit_state`` row), or ``None``."""
        return statestore.read_state(
            self.options, self._connections, key, destination_label(self.options.target)
        )

    def write_state(self, key: StateKey, state: Mapping[str, Any] | None) -> None:
        """Upsert (``None``: delete) ``key``'s ``_conduit_state`` row in a transaction of its own."""
        statestore.write_state(
            self.options,
            self._connections,
            key,
            state,
            destination_label(self.options.target),
            held=self._held.get(key),
        )

    @contextmanager
    def lock(self, key: StateKey) -> Iterator[None]:
        """A session advisory lock on a connection of its own, held for the block; raises
        :class:`ConnectorError` at once, naming the holder, when another run has it. While it is
        held, every commit of ``key`` through this destination checks that it still is."""
        with statestore.entity_lock(self.options, key, destination_label(self.options.target)) as held:
            self._held[key] = held
            try:
                yield
            finally:
                self._held.pop(key, None)


def _existing_table(cursor: Cursor, target: TableName, where: str) -> catalog.Table | None:
    relation = catalog.find_relation(cursor, target)
    if relation is None:
        return None
    if not relation.is_table:
        raise ConnectorError(f"{where}: {target} is {relation.describe_kind()}, not a table")
    return catalog.describe_table(cursor, target, relation.oid)


def _access_problem(cursor: Cursor, target: TableName, create_table: bool) -> str | None:
    schema = shown(target.schema)
    if not catalog.schema_exists(cursor, target.schema):
        if not create_table:
            return f"schema {schema} does not exist (and create_table is false)"
        if not catalog.can_create_schema(cursor):
            return f"schema {schema} does not exist and this user may not create it"
        return None
    state = catalog.find_relation(cursor, target.sibling(statements.STATE_TABLE))
    if state is None and not catalog.can_create_in_schema(cursor, target.schema):
        return f"this user may not create tables in schema {schema} (needed for {statements.STATE_TABLE})"
    relation = catalog.find_relation(cursor, target)
    if relation is None:
        if not create_table:
            return "the table does not exist (and create_table is false)"
        if not catalog.can_create_in_schema(cursor, target.schema):
            return f"the table does not exist and this user may not create tables in schema {schema}"
        return None
    if not relation.is_table:
        return f"{target} is {relation.describe_kind()}, not a table"
    if not catalog.can_insert(cursor, relation.oid):
        return "this user may not insert into the table"
    return None
