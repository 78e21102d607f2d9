"""The SQL the destination runs, composed with :mod:`psycopg2.sql` (every name quoted, every value
bound). Type names come from :mod:`conduit_postgres.types` or from ``format_type``, never from data.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg2 import sql

from conduit_postgres.identifiers import TableName, column_list

STATE_TABLE = "_conduit_state"
LOAD_ORDER = "_conduit_load_order"
"""The merge staging table's own column numbering rows in load order (last one wins)."""


def create_table(
    name: TableName, columns: Sequence[tuple[str, str]], primary_key: Sequence[str] | None
) -> sql.Composed:
    """``CREATE TABLE name (col type, ..., PRIMARY KEY (...))`` from ``(column, type)`` pairs."""
    parts = [sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(ddl)) for column, ddl in columns]
    if primary_key:
        parts.append(sql.SQL("PRIMARY KEY ({})").format(column_list(primary_key)))
    return sql.SQL("CREATE TABLE {} ({})").format(name.sql, sql.SQL(", ").join(parts))


def create_like(name: TableName, like: TableName) -> sql.Composed:
    """A new table with ``like``'s columns, defaults, constraints, indexes, storage and comments."""
    return sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(name.sql, like.sql)


def add_columns(name: TableName, columns: Sequence[tuple[str, str]]) -> sql.Composed:
    actions = sql.SQL(", ").join(
        sql.SQL("ADD COLUMN {} {}").format(sql.Identifier(column), sql.SQL(ddl)) for column, ddl in columns
    )
    return sql.SQL("ALTER TABLE {} {}").format(name.sql, actions)


def add_column(name: TableName, column: str, ddl: str) -> sql.Composed:
    """``ALTER TABLE name ADD COLUMN column type``: nullable, no default (existing rows get NULL)."""
    return sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(name.sql, sql.Identifier(column), sql.SQL(ddl))


def alter_column_type(
    name: TableName, column: str, ddl: str, *, from_naive_timestamp: bool = False
) -> sql.Composed:
    """``ALTER TABLE name ALTER COLUMN column TYPE type USING column::type``. A naive timestamp
    becoming ``timestamptz`` is taken as UTC (``USING column AT TIME ZONE 'UTC'``), as Arrow and the
    binary COPY take it, not in the server's ``TimeZone``."""
    using = (
        sql.SQL("{} AT TIME ZONE 'UTC'").format(sql.Identifier(column))
        if from_naive_timestamp
        else sql.SQL("{}::{}").format(sql.Identifier(column), sql.SQL(ddl))
    )
    return sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}").format(
        name.sql, sql.Identifier(column), sql.SQL(ddl), using
    )


def create_merge_stage(name: str, columns: Sequence[tuple[str, str]]) -> sql.Composed:
    """A temporary table (dropped at commit or rollback) with a load-order column."""
    parts = [sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(ddl)) for column, ddl in columns]
    parts.append(sql.SQL("{} bigint GENERATED ALWAYS AS IDENTITY").format(sql.Identifier(LOAD_ORDER)))
    return sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
        sql.Identifier(name), sql.SQL(", ").join(parts)
    )


def copy_from_stdin(table: sql.Composable, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(table, column_list(columns))


def latest_rows(
    latest: str, stage: str, columns: Sequence[str], key: Sequence[str], order_by: str | None
) -> sql.Composed:
    """One row per key from the merge stage: the greatest ``order_by``, then the last loaded."""
    ordering = [sql.Identifier(column) for column in key]
    if order_by is not None:
        ordering.append(sql.SQL("{} DESC NULLS LAST").format(sql.Identifier(order_by)))
    ordering.append(sql.SQL("{} DESC").format(sql.Identifier(LOAD_ORDER)))
    return sql.SQL(
        "CREATE TEMPORARY TABLE {latest} ON COMMIT DROP AS SELECT DISTINCT ON ({key}) {columns} "
        "FROM {stage} ORDER BY {ordering}"
    ).format(
        latest=sql.Identifier(latest),
        key=column_list(key),
        columns=column_list(columns),
        stage=sql.Identifier(stage),
        ordering=sql.SQL(", ").join(ordering),
    )


def _key_match(key: Sequence[str]) -> sql.Composed:
    return sql.SQL(" AND ").join(sql.SQL("t.{0} = l.{0}").format(sql.Identifier(column)) for column in key)


def delete_flagged(target: TableName, latest: str, key: Sequence[str], flag: str) -> sql.Composed:
    """Delete the target's rows whose key's latest row has ``flag`` true."""
    return sql.SQL("DELETE FROM {} AS t USING {} AS l WHERE {} AND l.{} IS TRUE").format(
        target.sql, sql.Identifier(latest), _key_match(key), sql.Identifier(flag)
    )


def upsert(
    target: TableName, latest: str, columns: Sequence[str], key: Sequence[str], flag: str | None
) -> sql.Composed:
    """Insert the latest rows (those not flagged for deletion), updating the rows whose key exists."""
    updates = [column for column in columns if column not in key]
    if updates:
        action = sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column)) for column in updates
            )
        )
    else:
        action = sql.SQL("DO NOTHING")
    keep = sql.SQL(" WHERE {} IS NOT TRUE").format(sql.Identifier(flag)) if flag is not None else sql.SQL("")
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}{} ON CONFLICT ({}) {}").format(
        target.sql,
        column_list(columns),
        column_list(columns),
        sql.Identifier(latest),
        keep,
        column_list(key),
        action,
    )


def rename_table(name: TableName, to: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} RENAME TO {}").format(name.sql, sql.Identifier(to))


def rename_relation(schema: str, name: str, kind: str, to: str) -> sql.Composed:
    """Rename an index (``kind`` ``i``) or a sequence (``S``)."""
    keyword = sql.SQL("INDEX" if kind == "i" else "SEQUENCE")
    return sql.SQL("ALTER {} {} RENAME TO {}").format(
        keyword, sql.Identifier(schema, name), sql.Identifier(to)
    )


def drop_table(name: TableName) -> sql.Composed:
    return sql.SQL("DROP TABLE {}").format(name.sql)


def create_schema(schema: str) -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


def create_state_table(schema: str) -> sql.Composed:
    """One row per target, flow and entity (see :mod:`conduit_postgres.statestore`)."""
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (target text NOT NULL, flow text NOT NULL, entity text NOT NULL, "
        "state jsonb NOT NULL, run_id text, updated_at timestamptz NOT NULL DEFAULT now(), "
        "PRIMARY KEY (target, flow, entity))"
    ).format(sql.Identifier(schema, STATE_TABLE))


def state_table_layout(schema: str) -> sql.Composed:
    """Whether the state table exists, and whether it has the ``flow`` column (a table of versions
    before flow-and-target keys has ``entity`` alone as its key). One row, or none."""
    return sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid "
        "AND a.attname = 'flow' AND NOT a.attisdropped) "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = {} AND c.relname = {}"
    ).format(sql.Literal(schema), sql.Literal(STATE_TABLE))


def lock_state_table(schema: str) -> sql.Composed:
    return sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(schema, STATE_TABLE))


def migrate_state_table(schema: str) -> list[sql.Composed]:
    """Turn a state table keyed by ``entity`` alone into one keyed by target, flow and entity. Its
    rows keep ``''`` as target and flow: each is taken over by the first load of its entity
    (:func:`claim_legacy_state`)."""
    table = sql.Identifier(schema, STATE_TABLE)
    return [
        sql.SQL(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS target text NOT NULL DEFAULT '', "
            "ADD COLUMN IF NOT EXISTS flow text NOT NULL DEFAULT ''"
        ).format(table),
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
            table, sql.Identifier(f"{STATE_TABLE}_pkey")
        ),
        sql.SQL(
            "ALTER TABLE {} ADD PRIMARY KEY (target, flow, entity), ALTER COLUMN target DROP DEFAULT, "
            "ALTER COLUMN flow DROP DEFAULT"
        ).format(table),
    ]


def upsert_state(schema: str) -> sql.Composed:
    """Parameters: target, flow, entity, state (JSON), run_id."""
    return sql.SQL(
        "INSERT INTO {} (target, flow, entity, state, run_id, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, clock_timestamp()) "
        "ON CONFLICT (target, flow, entity) DO UPDATE SET state = EXCLUDED.state, run_id = EXCLUDED.run_id, "
        "updated_at = EXCLUDED.updated_at"
    ).format(sql.Identifier(schema, STATE_TABLE))


def select_state(schema: str) -> sql.Composed:
    """Parameters: target, flow, entity. The state as JSON text (parsed by the caller, not by a
    global typecaster); the row of an earlier version (target and flow ``''``) when there is no other."""
    return sql.SQL(
        "SELECT state::text FROM {} WHERE ((target = %s AND flow = %s) OR (target = '' AND flow = '')) "
        "AND entity = %s ORDER BY target DESC LIMIT 1"
    ).format(sql.Identifier(schema, STATE_TABLE))


def select_legacy_state(schema: str) -> sql.Composed:
    """Parameter: entity. From a state table of versions before flow-and-target keys."""
    return sql.SQL("SELECT state::text FROM {} WHERE entity = %s").format(sql.Identifier(schema, STATE_TABLE))


def delete_state(schema: str) -> sql.Composed:
    """Parameters: target, flow, entity; the earlier version's row of the entity goes too."""
    return sql.SQL(
        "DELETE FROM {} WHERE ((target = %s AND flow = %s) OR (target = '' AND flow = '')) AND entity = %s"
    ).format(sql.Identifier(schema, STATE_TABLE))


def claim_legacy_state(schema: str) -> sql.Composed:
    """Parameter: entity. Run with every upsert: the entity's row from before flow-and-target keys,
    once read by this load, is replaced by the row the upsert wrote."""
    return sql.SQL("DELETE FROM {} WHERE target = '' AND flow = '' AND entity = %s").format(
        sql.Identifier(schema, STATE_TABLE)
    )


def reown_sequence(schema: str, sequence: str, table: TableName, column: str) -> sql.Composed:
    """Make ``table.column`` own the sequence (so dropping the table it came with keeps it)."""
    return sql.SQL("ALTER SEQUENCE {} OWNED BY {}").format(
        sql.Identifier(schema, sequence), sql.Identifier(table.schema, table.name, column)
    )
