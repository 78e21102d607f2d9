"""One load into PostgreSQL: a transaction, a binary COPY streaming the batches, and the mode's
finishing statements at commit (see :mod:`conduit_postgres.destination` for the modes).

Opening a session takes the destination's kept connection (or connects), and a committed session
gives it back for the next one; the transaction's work starts with the first of
:meth:`~PostgresLoadSession.apply_schema_changes` (the schema changes' DDL), ``write`` or ``commit``.
The table is prepared for the mode (created, staged) and the COPY started at the first ``write`` (or
``commit``), after any DDL, so the staging table, the merge's temporary table and the column
conversions all see the table as the DDL left it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import psycopg2
import pyarrow as pa
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

from conduit.connectors import WRITE_MODES, LoadSession, WriteRequest
from conduit.errors import ConfigError, ConnectorError, DataError
from conduit_postgres import catalog, evolution, statements, statestore
from conduit_postgres.catalog import Table
from conduit_postgres.connection import ConnectionCache
from conduit_postgres.copy_in import CopyIn
from conduit_postgres.encoding import BatchEncoder
from conduit_postgres.errors import one_line, statement_error
from conduit_postgres.identifiers import TableName, check_column_names, helper_name, identifier_problem, shown
from conduit_postgres.options import PostgresDestinationOptions
from conduit_postgres.types import PgType, column_ddl, storage_type

BOOLEAN = PgType("bool", -1, "B", "boolean")
Targets = dict[str, PgType | None]
"""The type of the column each loaded column goes into (``None``: created from its Arrow type)."""
DEPENDENT_OBJECTS = "2BP01"


def destination_label(target: TableName) -> str:
    """How messages name the destination: ``postgres destination sales.orders``."""
    return f"postgres destination {target}"


def _validate(options: PostgresDestinationOptions, request: WriteRequest, where: str) -> None:
    """Refuse, before connecting, a load whose columns or options cannot work."""
    if request.mode not in WRITE_MODES:
        raise ConnectorError(f"{where}: unknown write mode {request.mode!r}")
    names = request.schema.names
    check_column_names(names, where)
    if not names:
        raise ConnectorError(f"{where}: the data has no columns")
    merge = request.mode == "merge"
    if merge and not options.primary_key:
        raise ConfigError(
            f"{where}: mode merge needs primary_key (the column or columns that identify a row) "
            "in the destination's options"
        )
    if merge and statements.LOAD_ORDER in names:
        raise ConnectorError(f"{where}: column name {statements.LOAD_ORDER} is reserved for merge loads")
    named = [("primary_key", key) for key in options.primary_key or []]
    if merge:
        named += [(option, getattr(options, option)) for option in ("order_by", "hard_delete")]
    missing = [
        f"{column} ({option})" for option, column in named if column is not None and column not in names
    ]
    if missing:
        raise ConnectorError(
            f"{where}: the data has no column {', '.join(missing)}; its columns are: "
            + ", ".join(shown(n) for n in names)
        )
    if merge and options.hard_delete is not None:
        flag = request.schema.field(options.hard_delete).type
        if not pa.types.is_boolean(storage_type(flag)):
            raise ConnectorError(
                f"{where}: hard_delete column {shown(options.hard_delete)} must be boolean, not {flag}"
            )


def _ddl(field: pa.Field, where: str) -> tuple[str, str]:
    try:
        return field.name, column_ddl(field.type)
    except ConnectorError:
        raise ConnectorError(
            f"{where}: column {shown(field.name)} has type {field.type}, which has no PostgreSQL counterpart"
        ) from None


class PostgresLoadSession(LoadSession):
    """One load: a transaction and a COPY streaming the batches; see the module docstring."""

    def __init__(
        self,
        options: PostgresDestinationOptions,
        request: WriteRequest,
        connections: ConnectionCache,
        held: statestore.HeldLock | None = None,
    ) -> None:
        self.options = options
        self.held = held
        """The entity's lock, when the run holds it: the commit verifies it is still held."""
        self.request = request
        self.target = options.target
        self.where = destination_label(self.target)
        self._status: Literal["open", "committed", "aborted"] = "open"
        self._rows = 0
        self._copy: CopyIn | None = None
        self._encoder: BatchEncoder | None = None
        self._staging: TableName | None = None
        self._merge_stage: str | None = None
        self._reused = False
        _validate(options, request, self.where)
        self._connections = connections
        self.connection = connections.take()

    # -- schema changes -------------------------------------------------------------------------

    def apply_schema_changes(self, statements: Sequence[str]) -> None:
        """Run the planned DDL in this load's transaction, before the table is prepared and the COPY
        starts: it commits with the data and the state, or rolls back with them. A failing
        statement aborts the session with a :class:`ConnectorError` naming it."""
        if self._status != "open":
            raise ConnectorError(
                f"{self.where}: schema changes after {self._status}: the load session is over"
            )
        if self._copy is not None:
            raise ConnectorError(f"{self.where}: schema changes must be applied before the first write")
        if not statements:
            return
        try:
            with self.connection.cursor() as cursor:
                evolution.run_statements(cursor, statements, self.where)
        except psycopg2.Error as exc:
            self._discard()
            raise statement_error(exc, self.where) from None
        except BaseException:
            self._discard()
            raise

    # -- starting -------------------------------------------------------------------------------

    def _start(self) -> tuple[CopyIn, BatchEncoder]:
        """The running COPY and its encoder, started on first use: the table prepared for the mode
        (after any schema changes), then ``COPY ... FROM STDIN`` and the binary header."""
        if self._copy is not None and self._encoder is not None:
            return self._copy, self._encoder
        try:
            with self.connection.cursor() as cursor:
                targets, load_into = self._prepare(cursor)
            encoder = BatchEncoder(self.request.schema, targets, self.where)
            statement = statements.copy_from_stdin(load_into, self.request.schema.names)
            self._encoder = encoder
            self._copy = copy = CopyIn(self.connection, statement.as_string(self.connection))
            copy.send(encoder.header())
        except psycopg2.Error as exc:
            self._discard()
            raise statement_error(exc, self.where) from None
        except BaseException:
            self._discard()
            raise
        return copy, encoder

    # -- preparing ------------------------------------------------------------------------------

    def _prepare(self, cursor: Cursor) -> tuple[Targets, sql.Composable]:
        """Create what the mode needs; return the column types to encode for and the COPY target."""
        if not catalog.schema_exists(cursor, self.target.schema):
            if not self.options.create_table:
                raise ConnectorError(f"{self.where}: schema {shown(self.target.schema)} does not exist")
            cursor.execute(statements.create_schema(self.target.schema))
        table = self._existing(cursor)
        if self.request.mode == "append":
            table = self._ensure_table(cursor, table, list(self.request.schema))
            return {c.name: c.type for c in table.columns}, self.target.sql
        if self.request.mode == "replace":
            stage = self._stage_replace(cursor, table)
            return {c.name: c.type for c in stage.columns}, stage.name.sql
        return self._stage_merge(cursor, table)

    def _existing(self, cursor: Cursor) -> Table | None:
        relation = catalog.find_relation(cursor, self.target)
        if relation is None:
            return None
        if not relation.is_table:
            raise ConnectorError(f"{self.where}: {self.target} is {relation.describe_kind()}, not a table")
        return catalog.describe_table(cursor, self.target, relation.oid)

    def _create(self, cursor: Cursor, name: TableName, fields: list[pa.Field]) -> Table:
        columns = [_ddl(field, self.where) for field in fields]
        cursor.execute(statements.create_table(name, columns, self.options.primary_key))
        relation = catalog.find_relation(cursor, name)
        assert relation is not None
        return catalog.describe_table(cursor, name, relation.oid)

    def _ensure_table(self, cursor: Cursor, table: Table | None, fields: list[pa.Field]) -> Table:
        """The target, created when missing, with any column the data brings and it lacks added."""
        if table is None:
            if not self.options.create_table:
                raise ConnectorError(f"{self.where}: the table does not exist (and create_table is false)")
            return self._create(cursor, self.target, fields)
        added = [field for field in fields if table.column(field.name) is None]
        if added:
            cursor.execute(statements.add_columns(self.target, [_ddl(f, self.where) for f in added]))
            table = catalog.describe_table(cursor, self.target, table.oid)
        generated = [shown(f.name) for f in fields if (c := table.column(f.name)) is not None and c.generated]
        if generated:
            raise ConnectorError(
                f"{self.where}: column {', '.join(generated)} is generated; it cannot be loaded"
            )
        return table

    def _stage_replace(self, cursor: Cursor, table: Table | None) -> Table:
        """The staging table: the target's own definition (indexes, defaults, constraints) when the
        data has exactly its columns and types, otherwise a new one from the Arrow schema."""
        if table is None and not self.options.create_table:
            raise ConnectorError(f"{self.where}: the table does not exist (and create_table is false)")
        stage = self.target.sibling(helper_name("stage"))
        fields = list(self.request.schema)
        same = table is not None and sorted(table.names) == sorted(f.name for f in fields)
        if same and table is not None:
            for field in fields:
                column = table.column(field.name)
                same = same and column is not None and column.type.display == _ddl(field, self.where)[1]
        if same:
            cursor.execute(statements.create_like(stage, self.target))
            relation = catalog.find_relation(cursor, stage)
            assert relation is not None
            staged = catalog.describe_table(cursor, stage, relation.oid)
            self._reused = True
        else:
            staged = self._create(cursor, stage, fields)
        self._staging = stage
        return staged

    def _stage_merge(self, cursor: Cursor, table: Table | None) -> tuple[Targets, sql.Composable]:
        flag = self.options.hard_delete
        key = self.options.primary_key or []
        stored = [field for field in self.request.schema if field.name != flag]
        existed = table is not None
        table = self._ensure_table(cursor, table, stored)
        if existed and set(key) not in catalog.unique_keys(cursor, table.oid):
            columns = ", ".join(shown(k) for k in key)
            raise ConnectorError(
                f"{self.where}: merge needs a primary key or unique index on exactly ({columns}), "
                f"and the table has none; add one (ALTER TABLE {self.target} ADD PRIMARY KEY ({columns})) "
                "or change primary_key"
            )
        types: dict[str, PgType] = {}
        for field in stored:
            column = table.column(field.name)
            assert column is not None  # _ensure_table added every stored column
            types[field.name] = column.type
        if flag is not None:
            types[flag] = BOOLEAN
        stage = helper_name("merge")
        cursor.execute(statements.create_merge_stage(stage, [(n, pg.display) for n, pg in types.items()]))
        self._merge_stage = stage
        return dict(types), sql.Identifier(stage)

    # -- the session ----------------------------------------------------------------------------

    def write(self, batch: pa.RecordBatch) -> None:
        if self._status != "open":
            raise ConnectorError(f"{self.where}: write after {self._status}: the load session is over")
        if not batch.schema.equals(self.request.schema):
            batch = self._conform(batch)
        if batch.num_rows == 0:
            return
        copy, encoder = self._start()
        chunk = encoder.encode(batch, self._rows + 1)
        self._rows += batch.num_rows
        try:
            copy.send(chunk)
        except psycopg2.Error as exc:
            self._discard()
            raise statement_error(exc, self.where) from None

    def _conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with the load's schema: reordered, or cast when its types differ."""
        schema = self.request.schema
        if sorted(batch.schema.names) == sorted(schema.names):
            batch = batch.select(schema.names)
            if [f.type for f in batch.schema] == [f.type for f in schema]:  # nullability or metadata only
                return pa.RecordBatch.from_arrays(batch.columns, schema=schema)
        try:
            table = pa.Table.from_batches([batch]).select(schema.names).cast(schema)
        except (KeyError, ValueError, pa.ArrowException) as exc:
            raise DataError(
                f"{self.where}: a batch does not match the load's schema: {one_line(str(exc))}"
            ) from None
        batches = table.combine_chunks().to_batches()
        return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema)

    def commit(self, state: Mapping[str, Any]) -> None:
        """Finish the COPY, apply the mode, upsert the state row, COMMIT: one transaction."""
        if self._status != "open":
            raise ConnectorError(f"{self.where}: commit after {self._status}: the load session is over")
        try:
            payload = statestore.state_json(state, self.where)
            copy, encoder = self._start()
            copy.send(encoder.finish())
            copy.finish()
            self._copy = None
            with self.connection.cursor() as cursor:
                if self._staging is not None:
                    self._swap(cursor, self._staging)
                if self._merge_stage is not None:
                    self._apply_merge(cursor, self._merge_stage)
                if self.held is not None:
                    self.held.verify(cursor, self.where)
                statestore.upsert_state(cursor, self.options, self.request.key, payload, self.request.run_id)
            self.connection.commit()
        except psycopg2.Error as exc:
            self._discard()
            raise self._commit_error(exc) from None
        except BaseException:
            self._discard()
            raise
        self._status = "committed"
        self.committed = True
        self._connections.give_back(self.connection)

    def _commit_error(self, exc: psycopg2.Error) -> Exception:
        if exc.pgcode == DEPENDENT_OBJECTS:
            detail = one_line(exc.diag.message_detail or "")
            return ConnectorError(
                f"{self.where}: cannot replace the table, other objects depend on it ({detail}); "
                "drop them first, or load with mode append or merge"
            )
        return statement_error(exc, self.where)

    def _swap(self, cursor: Cursor, stage: TableName) -> None:
        """Put the staging table in the target's place and drop the old table."""
        current = catalog.find_relation(cursor, self.target)
        old: TableName | None = None
        if current is not None:
            if not current.is_table:
                raise ConnectorError(f"{self.where}: {self.target} is {current.describe_kind()}, not a table")
            old = self.target.sibling(helper_name("old"))
            cursor.execute(statements.rename_table(self.target, old.name))
        cursor.execute(statements.rename_table(stage, self.target.name))
        if old is not None and current is not None:
            if self._reused:  # the copied defaults still use the old table's serial sequences
                for sequence, column in catalog.owned_sequences(cursor, current.oid):
                    cursor.execute(
                        statements.reown_sequence(self.target.schema, sequence, self.target, column)
                    )
            cursor.execute(statements.drop_table(old))
        for name, kind in catalog.helper_relations(cursor, self.target.schema, stage.name):
            renamed = self.target.name + name[len(stage.name) :]
            if (
                identifier_problem(renamed) is None
                and catalog.find_relation(cursor, self.target.sibling(renamed)) is None
            ):
                cursor.execute(statements.rename_relation(self.target.schema, name, kind, renamed))

    def _apply_merge(self, cursor: Cursor, stage: str) -> None:
        key = self.options.primary_key or []
        flag = self.options.hard_delete
        names = self.request.schema.names
        latest = helper_name("latest")
        cursor.execute(statements.latest_rows(latest, stage, names, key, self.options.order_by))
        if flag is not None:
            cursor.execute(statements.delete_flagged(self.target, latest, key, flag))
        stored = [name for name in names if name != flag]
        cursor.execute(statements.upsert(self.target, latest, stored, key, flag))

    def abort(self) -> None:
        """Cancel the COPY and roll back; the table is as it was. Safe to call again."""
        if self._status == "committed":
            return
        self._status = "aborted"
        self._discard()

    def _discard(self) -> None:
        self._status = "aborted" if self._status == "open" else self._status
        if self._copy is not None:
            self._copy.cancel()
            self._copy = None
        try:
            if not self.connection.closed:
                self.connection.rollback()
        except psycopg2.Error:
            pass
        self._connections.discard(self.connection)  # closed, no longer cancelled on an interrupt
