"""Hostile identifiers load under their exact quoted names, or fail clearly; nothing else is touched."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest
from pg_helpers import DSN, Scratch, read, scratch_schema, write
from pydantic import ValidationError

from conduit.errors import ConnectorError
from conduit_postgres.identifiers import TableName, identifier_problem
from conduit_postgres.options import PostgresDestinationOptions

HOSTILE = [
    "Mixed Case",
    "id",
    "Id",
    'quote"d',
    "it's",
    "semi;colon",
    "select",
    "ünïcødé ✓ 日本",
    'x"; DROP TABLE sentinel; --',
    "tab\tand\nnewline",
    "a" * 63,
]


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_schema() as scratch:
        scratch.execute(
            f"CREATE TABLE {scratch.schema}.sentinel (id int); INSERT INTO {scratch.schema}.sentinel VALUES (1)"
        )
        yield scratch
        assert scratch.count("sentinel") == 1


@pytest.mark.parametrize("table", ["plain", "Robert'); DROP TABLE sentinel;--", "My Table", "ünï.cødé"])
@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_hostile_names_round_trip_exactly(pg: Scratch, table: str, mode: str) -> None:
    data = pa.table({name: pa.array([index, index + 100], pa.int64()) for index, name in enumerate(HOSTILE)})
    destination = pg.destination(table, primary_key=["id"] if mode != "append" else None)
    write(destination, data, mode)  # type: ignore[arg-type]
    write(destination, data, mode)  # type: ignore[arg-type]
    assert pg.tables() == sorted(["_conduit_state", "sentinel", table])
    back, _ = read(pg.source(table=pg.table(table), cursor_column="Mixed Case"))
    assert back.column_names == HOSTILE
    expected = pa.concat_tables([data, data]).sort_by("Mixed Case") if mode == "append" else data
    assert back.equals(expected)
    schema = destination.current_schema()
    assert schema is not None and schema.names == HOSTILE


def test_a_64_byte_column_name_is_an_error_naming_it(pg: Scratch) -> None:
    for name in ["b" * 64, "é" * 32]:
        data = pa.table({"id": [1], name: [2]})
        with pytest.raises(ConnectorError) as info:
            write(pg.destination("t"), data)
        message = str(info.value)
        assert name in message and "64 bytes" in message and "63" in message
    assert pg.tables() == ["sentinel"]


def test_a_repeated_column_name_is_an_error(pg: Scratch) -> None:
    data = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["dup", "dup"])
    with pytest.raises(ConnectorError, match="dup.*more than once"):
        write(pg.destination("t"), data)


def test_case_matters_and_nothing_is_folded(pg: Scratch) -> None:
    write(pg.destination("Orders"), pa.table({"ID": [1]}))
    write(pg.destination("orders"), pa.table({"id": [2]}))
    assert pg.tables() == ["Orders", "_conduit_state", "orders", "sentinel"]


def test_long_table_and_schema_names_fail_validation() -> None:
    with pytest.raises(ValidationError, match="63 bytes"):
        PostgresDestinationOptions.model_validate({"dsn": DSN, "table": "t" * 64})
    with pytest.raises(ValidationError, match="63 bytes"):
        PostgresDestinationOptions.model_validate({"dsn": DSN, "table": "x", "schema": "s" * 64})
    with pytest.raises(ValidationError, match="63 bytes"):
        PostgresDestinationOptions.model_validate({"dsn": DSN, "table": "x", "primary_key": ["k" * 64]})
    assert PostgresDestinationOptions.model_validate({"dsn": DSN, "table": "t" * 63}).target.name == "t" * 63


def test_table_names() -> None:
    assert TableName.parse("orders", "public") == TableName("public", "orders")
    assert TableName.parse("Sales.Orders", "public") == TableName("Sales", "Orders")
    assert TableName.parse('"a.b"."c""d"', "public") == TableName("a.b", 'c"d')
    assert str(TableName("Sales", "orders")) == '"Sales".orders'
    assert identifier_problem("") == "is empty"
    assert identifier_problem("a\x00b") == "contains a NUL character"
    with pytest.raises(ValueError, match="unclosed"):
        TableName.parse('"open', "public")
