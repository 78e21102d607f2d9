"""Helpers for the conduit-postgres tests: the test server, a scratch schema per test, connectors
built as the engine builds them.

Deliberately not a ``conftest.py``: the repository's top-level tests do ``from conftest import ...``,
which a second conftest module on ``sys.path`` would shadow when pytest runs every package at once.

The server is ``CONDUIT_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``). When
it cannot be reached the tests skip, saying why, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pytest
from psycopg2 import sql

from conduit.connectors import ReadRequest, WriteMode, WriteRequest
from conduit_postgres import PostgresDestination, PostgresSource
from conduit_postgres.options import PostgresDestinationOptions, PostgresSourceOptions

DSN = os.environ.get("CONDUIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def _unreachable() -> str | None:
    try:
        psycopg2.connect(DSN, connect_timeout=5).close()
    except psycopg2.Error as exc:
        return " ".join(str(exc).split())
    return None


def require_postgres() -> None:
    """Skip (or, with ``CI=true``, fail) the test when the test server cannot be reached."""
    reason = _unreachable()
    if reason is None:
        return
    message = f"PostgreSQL at CONDUIT_TEST_PG_DSN is unreachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def connect() -> psycopg2.extensions.connection:
    connection = psycopg2.connect(DSN)
    connection.autocommit = True
    return connection


@dataclass
class Scratch:
    """A schema of one's own on the test server, dropped after the test."""

    schema: str
    connection: psycopg2.extensions.connection

    def table(self, name: str) -> str:
        """``schema.name`` as the ``table`` option spells it (quoted when the name needs it)."""
        quoted = (
            '"' + name.replace('"', '""') + '"' if not name.isidentifier() or name != name.lower() else name
        )
        return f"{self.schema}.{quoted}"

    def execute(self, statement: str | sql.Composable, params: Any = None) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(statement, params)

    def query(self, statement: str | sql.Composable, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall())

    def rows(self, table: str, order_by: str = "id") -> list[tuple[Any, ...]]:
        statement = sql.SQL("SELECT * FROM {} ORDER BY {}").format(
            sql.Identifier(self.schema, table), sql.Identifier(order_by)
        )
        return self.query(statement)

    def count(self, table: str) -> int:
        return int(
            self.query(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.schema, table)))[0][0]
        )

    def tables(self) -> list[str]:
        found = self.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
            (self.schema,),
        )
        return [str(row[0]) for row in found]

    def destination(self, table: str, **options: Any) -> PostgresDestination:
        values = {"dsn": DSN, "table": self.table(table), **options}
        return PostgresDestination(PostgresDestinationOptions.model_validate(values))

    def source(self, **options: Any) -> PostgresSource:
        values = {"dsn": DSN, **options}
        if isinstance(values.get("table"), str) and "." not in values["table"]:
            values["table"] = self.table(values["table"])
        return PostgresSource(PostgresSourceOptions.model_validate(values))


@contextmanager
def scratch_schema() -> Iterator[Scratch]:
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    connection = connect()
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield Scratch(schema, connection)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        connection.close()


def write(
    destination: PostgresDestination,
    table: pa.Table,
    mode: WriteMode = "append",
    *,
    batch_rows: int = 3,
    state: dict[str, Any] | None = None,
    entity: str = "t",
    run_id: str = "run",
) -> None:
    """One load session: every batch, then commit."""
    with destination.open(WriteRequest(entity, table.schema, mode, run_id)) as session:
        for batch in table.to_batches(max_chunksize=batch_rows):
            session.write(batch)
        session.commit(state or {"rows": table.num_rows})
        session.committed = True


def read(source: PostgresSource, batch_size: int = 65_536) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Everything the source reads, and the position after each batch."""
    schema = source.discover()
    batches, positions = [], []
    try:
        for item in source.read(ReadRequest("t", schema, batch_size)):
            assert item.data.schema.equals(schema)
            batches.append(item.data)
            positions.append(dict(item.position))
    finally:
        source.close()
    return pa.Table.from_batches(batches, schema=schema), positions


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m conduit ARGS`` as a user runs ``conduit ARGS``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    return subprocess.run(
        [sys.executable, "-m", "conduit", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
