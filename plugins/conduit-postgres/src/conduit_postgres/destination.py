"""The ``postgres`` destination: binary COPY into a table, one transaction per load.

Each load is a :class:`~conduit_postgres.session.PostgresLoadSession`: it opens a transaction and a
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

The destination stores state (:mod:`conduit_postgres.statestore`): ``read_state``/``write_state`` on
the ``_conduit_state`` row, and ``lock``, a session advisory lock per schema and entity on a
connection of its own, held for the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import psycopg2
import pyarrow as pa
from psycopg2.extensions import cursor as Cursor

from conduit.connectors import Destination, DestinationCapabilities, LoadSession, WriteRequest
from conduit.errors import ConnectorError
from conduit_postgres import catalog, statements, statestore
from conduit_postgres.connection import close_quietly, connect
from conduit_postgres.errors import statement_error
from conduit_postgres.identifiers import TableName, shown
from conduit_postgres.options import PostgresDestinationOptions
from conduit_postgres.session import PostgresLoadSession, destination_label
from conduit_postgres.types import stored_type, to_arrow


class PostgresDestination(Destination):
    """Loads into one table with binary COPY; append, replace or merge, atomically."""

    options_model = PostgresDestinationOptions
    capabilities = DestinationCapabilities(
        write_modes=frozenset({"append", "replace", "merge"}),
        default_mode="append",
        atomic=True,
        preserves_types=True,
        stores_state=True,
    )
    options: PostgresDestinationOptions

    def check(self) -> None:
        """Connect (with retries), then make sure the load can create or insert into the table."""
        target = self.options.target
        connection = connect(self.options)
        try:
            with connection.cursor() as cursor:
                problem = _access_problem(cursor, target, self.options.create_table)
        except psycopg2.Error as exc:
            raise statement_error(exc, destination_label(target)) from None
        finally:
            close_quietly(connection)
        if problem:
            raise ConnectorError(f"{destination_label(target)}: {problem}")

    def current_schema(self) -> pa.Schema | None:
        """The table's columns as Arrow types (as the source reads them), or ``None`` if it is missing."""
        target = self.options.target
        connection = connect(self.options)
        try:
            with connection.cursor() as cursor:
                relation = catalog.find_relation(cursor, target)
                if relation is None or not relation.is_table:
                    return None
                table = catalog.describe_table(cursor, target, relation.oid)
        except psycopg2.Error as exc:
            raise statement_error(exc, destination_label(target)) from None
        finally:
            close_quietly(connection)
        return pa.schema([pa.field(c.name, to_arrow(c.type)) for c in table.columns])

    def stored_schema(self, incoming: pa.Schema) -> pa.Schema:
        """Incoming types as a table created for them reads back (timestamp[s] -> timestamp[us], ...)."""
        return pa.schema([pa.field(f.name, stored_type(f.type)) for f in incoming])

    def open(self, request: WriteRequest) -> LoadSession:
        return PostgresLoadSession(self.options, request)

    # -- state ------------------------------------------------------------------------------------

    def read_state(self, entity: str) -> dict[str, Any] | None:
        """The state last committed with ``entity``'s data (its ``_conduit_state`` row), or ``None``."""
        return statestore.read_state(self.options, entity, destination_label(self.options.target))

    def write_state(self, entity: str, state: Mapping[str, Any] | None) -> None:
        """Upsert (``None``: delete) ``entity``'s ``_conduit_state`` row in a transaction of its own."""
        statestore.write_state(self.options, entity, state, destination_label(self.options.target))

    def lock(self, entity: str) -> AbstractContextManager[None]:
        """A session advisory lock on a connection of its own, held for the block; raises
        :class:`ConnectorError` at once, naming the holder, when another run has it."""
        return statestore.entity_lock(self.options, entity, destination_label(self.options.target))


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
