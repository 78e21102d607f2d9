"""Write modes, atomicity and the state row, against the real server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from pg_helpers import DSN, Scratch, scratch_schema, write

from conduit.connectors import WriteRequest
from conduit.errors import ConfigError, ConnectorError, DataError


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_schema() as scratch:
        yield scratch


def people(ids: list[int], names: list[str | None], **more: list[Any]) -> pa.Table:
    columns: dict[str, Any] = {"id": pa.array(ids, pa.int64()), "name": pa.array(names, pa.string())}
    for key, values in more.items():
        columns[key] = pa.array(values)
    return pa.table(columns)


def helper_tables(pg: Scratch) -> list[str]:
    return [t for t in pg.tables() if t.startswith("_conduit_") and t != "_conduit_state"]


# -- append -------------------------------------------------------------------------------------


def test_append_creates_the_table_and_appending_twice_doubles(pg: Scratch) -> None:
    destination = pg.destination("people")
    assert destination.current_schema() is None
    data = people([1, 2, 3], ["a", "b", None])
    write(destination, data)
    write(destination, data)
    assert pg.count("people") == 6
    assert sorted(pg.query(f"SELECT id, name FROM {pg.schema}.people")) == sorted(
        [(1, "a"), (2, "b"), (3, None)] * 2
    )
    assert destination.current_schema() == pa.schema([("id", pa.int64()), ("name", pa.string())])


def test_append_into_an_existing_table_fits_the_columns(pg: Scratch) -> None:
    pg.execute(
        f"CREATE TABLE {pg.schema}.people (id integer, name varchar(10), extra text DEFAULT 'x', "
        "score numeric(6,2))"
    )
    data = pa.table(
        {
            "name": pa.array(["a", "b"]),
            "id": pa.array([1, 2], pa.int64()),
            "score": pa.array([1, 2], pa.int64()),
        }
    )
    write(pg.destination("people"), data)
    assert pg.rows("people") == [(1, "a", "x", Decimal("1.00")), (2, "b", "x", Decimal("2.00"))]


def test_append_overflowing_the_column_is_a_data_error_and_loads_nothing(pg: Scratch) -> None:
    pg.execute(f"CREATE TABLE {pg.schema}.people (id integer, name text)")
    with pytest.raises(DataError) as info:
        write(pg.destination("people"), people([1, 2**40], ["a", "b"]))
    assert "id" in str(info.value)
    assert pg.count("people") == 0


def test_append_without_create_table_needs_the_table(pg: Scratch) -> None:
    with pytest.raises(ConnectorError, match="does not exist"):
        write(pg.destination("people", create_table=False), people([1], ["a"]))


def test_a_violated_constraint_is_a_data_error_naming_the_row(pg: Scratch) -> None:
    pg.execute(f"CREATE TABLE {pg.schema}.people (id bigint PRIMARY KEY, name text NOT NULL)")
    with pytest.raises(DataError) as info:
        write(pg.destination("people"), people([1, 2, 3], ["a", None, "c"]), batch_rows=1)
    message = str(info.value)
    assert "\n" not in message and "row 2" in message and "name" in message
    assert pg.count("people") == 0


# -- replace ------------------------------------------------------------------------------------


def test_replace_leaves_exactly_the_new_data(pg: Scratch) -> None:
    destination = pg.destination("people")
    write(destination, people([1, 2, 3], ["a", "b", "c"]), "replace")
    write(destination, people([7, 8], ["x", "y"]), "replace")
    assert pg.rows("people") == [(7, "x"), (8, "y")]
    assert helper_tables(pg) == []


def test_replace_keeps_the_tables_definition_when_the_columns_are_the_same(pg: Scratch) -> None:
    pg.execute(
        f"CREATE TABLE {pg.schema}.people (id bigint PRIMARY KEY, name text DEFAULT 'n', "
        "CONSTRAINT name_short CHECK (length(name) < 10))"
    )
    pg.execute(f"CREATE INDEX people_name_idx ON {pg.schema}.people (name)")
    destination = pg.destination("people")
    for _ in range(2):
        write(destination, people([1, 2], ["a", "b"]), "replace")
    indexes = pg.query(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s ORDER BY 1",
        (pg.schema, "people"),
    )
    assert [row[0] for row in indexes] == ["people_name_idx", "people_pkey"]
    with pytest.raises(DataError):
        write(destination, people([3], ["much too long a name"]), "replace")
    assert pg.rows("people") == [(1, "a"), (2, "b")]


def test_replace_keeps_a_serial_column_and_its_sequence(pg: Scratch) -> None:
    pg.execute(f"CREATE TABLE {pg.schema}.people (id bigserial PRIMARY KEY, name text)")
    destination = pg.destination("people")
    for _ in range(3):
        write(destination, people([10, 20], ["a", "b"]), "replace")
    pg.execute(f"INSERT INTO {pg.schema}.people (name) VALUES ('from the sequence')")
    assert pg.rows("people") == [(1, "from the sequence"), (10, "a"), (20, "b")]
    sequences = pg.query(
        "SELECT relname FROM pg_class WHERE relkind = 'S' AND relnamespace = %s::regnamespace", (pg.schema,)
    )
    assert sequences == [("people_id_seq",)]
    indexes = pg.query(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s", (pg.schema, "people")
    )
    assert indexes == [("people_pkey",)]


def test_replace_with_different_columns_builds_a_new_table(pg: Scratch) -> None:
    destination = pg.destination("people")
    write(destination, people([1], ["a"]), "replace")
    write(destination, people([2], ["b"], score=[1.5]), "replace")
    assert destination.current_schema() == pa.schema(
        [("id", pa.int64()), ("name", pa.string()), ("score", pa.float64())]
    )
    assert pg.rows("people") == [(2, "b", 1.5)]


def test_replace_refuses_while_a_view_depends_on_the_table(pg: Scratch) -> None:
    destination = pg.destination("people")
    write(destination, people([1], ["a"]), "replace")
    pg.execute(f"CREATE VIEW {pg.schema}.v AS SELECT * FROM {pg.schema}.people")
    with pytest.raises(ConnectorError) as info:
        write(destination, people([2], ["b"]), "replace")
    assert "depend" in str(info.value) and "\n" not in str(info.value)
    assert pg.rows("people") == [(1, "a")]


def test_a_reader_never_sees_an_empty_or_partial_table_during_replaces(pg: Scratch) -> None:
    rows = 2_000
    destination = pg.destination("people")
    data = people(list(range(rows)), [f"n{i}" for i in range(rows)])
    write(destination, data, "replace", batch_rows=500)
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        import psycopg2

        try:
            connection = psycopg2.connect(DSN)
            connection.autocommit = True
            with connection.cursor() as cursor:
                while not stop.is_set() and len(seen) < 100_000:
                    cursor.execute(f"SELECT count(*) FROM {pg.schema}.people")
                    seen.append(int(cursor.fetchone()[0]))
            connection.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for _ in range(15):
            write(destination, data, "replace", batch_rows=500)
    finally:
        stop.set()
        reader.join(timeout=60)
    assert not errors, errors
    assert seen, "the reader never ran"
    assert set(seen) == {rows}
    assert helper_tables(pg) == []


# -- merge --------------------------------------------------------------------------------------


def test_merge_updates_inserts_and_keeps_the_last_row_of_a_key(pg: Scratch) -> None:
    destination = pg.destination("people", primary_key=["id"])
    write(destination, people([1, 2, 3], ["a", "b", "c"]), "merge")
    write(destination, people([2, 4, 2, 5, 4], ["b1", "d1", "b2", "e", "d2"]), "merge", batch_rows=2)
    assert pg.rows("people") == [(1, "a"), (2, "b2"), (3, "c"), (4, "d2"), (5, "e")]
    constraint = pg.query(
        "SELECT contype FROM pg_constraint WHERE conrelid = %s::regclass", (f"{pg.schema}.people",)
    )
    assert constraint == [("p",)]


def test_merge_with_order_by_keeps_the_greatest_then_the_last(pg: Scratch) -> None:
    destination = pg.destination("people", primary_key=["id"], order_by="version")
    data = people([1, 1, 1, 2, 2], ["newest", "old", "tie-last", "x", "y"], version=[3, 1, 3, 5, None])
    write(destination, data, "merge")
    assert pg.rows("people") == [(1, "tie-last", 3), (2, "x", 5)]


def test_merge_on_a_composite_key(pg: Scratch) -> None:
    destination = pg.destination("people", primary_key=["id", "name"])
    write(destination, people([1, 1], ["a", "b"], value=[1, 2]), "merge")
    write(destination, people([1, 2], ["b", "a"], value=[20, 3]), "merge")
    assert pg.rows("people", order_by="value") == [(1, "a", 1), (2, "a", 3), (1, "b", 20)]


def test_merge_hard_delete_removes_rows_and_the_flag_is_not_stored(pg: Scratch) -> None:
    destination = pg.destination("people", primary_key=["id"], hard_delete="deleted")
    write(destination, people([1, 2, 3], ["a", "b", "c"], deleted=[False, False, None]), "merge")
    assert [f.name for f in destination.current_schema() or []] == ["id", "name"]
    write(
        destination,
        people([2, 3, 4, 5, 5], ["b", "c2", "d", "e", "e"], deleted=[True, False, True, False, True]),
        "merge",
    )
    assert pg.rows("people") == [(1, "a"), (3, "c2")]


def test_merge_needs_a_primary_key_option(pg: Scratch) -> None:
    with pytest.raises(ConfigError, match="primary_key"):
        write(pg.destination("people"), people([1], ["a"]), "merge")


def test_merge_needs_a_unique_key_on_an_existing_table(pg: Scratch) -> None:
    pg.execute(f"CREATE TABLE {pg.schema}.people (id bigint, name text)")
    with pytest.raises(ConnectorError, match="primary key or unique index") as info:
        write(pg.destination("people", primary_key=["id"]), people([1], ["a"]), "merge")
    assert "\n" not in str(info.value)
    pg.execute(f"CREATE UNIQUE INDEX ON {pg.schema}.people (id)")
    write(pg.destination("people", primary_key=["id"]), people([1], ["a"]), "merge")
    assert pg.rows("people") == [(1, "a")]


def test_merge_key_columns_must_be_in_the_data(pg: Scratch) -> None:
    with pytest.raises(ConnectorError, match="no column"):
        write(pg.destination("people", primary_key=["code"]), people([1], ["a"]), "merge")


# -- atomicity and state ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_abort_leaves_the_table_as_it_was_and_no_helper_tables(pg: Scratch, mode: str) -> None:
    destination = pg.destination("people", primary_key=["id"])
    write(destination, people([1, 2], ["a", "b"]), state={"n": 1})
    data = people([2, 3], ["changed", "new"])
    with pytest.raises(RuntimeError):
        with destination.open(WriteRequest("t", data.schema, mode, "second")) as session:  # type: ignore[arg-type]
            session.write(data.to_batches()[0])
            raise RuntimeError("the source failed mid-load")
    assert pg.rows("people") == [(1, "a"), (2, "b")]
    assert helper_tables(pg) == []
    assert pg.query(f"SELECT state, run_id FROM {pg.schema}._conduit_state") == [({"n": 1}, "run")]


def test_nothing_is_visible_before_commit(pg: Scratch) -> None:
    destination = pg.destination("people")
    data = people([1, 2], ["a", "b"])
    with destination.open(WriteRequest("t", data.schema, "append", "r")) as session:
        session.write(data.to_batches()[0])
        assert pg.tables() == []
        session.commit({})
        session.committed = True
    assert pg.count("people") == 2


def test_the_state_row_commits_with_the_data(pg: Scratch) -> None:
    destination = pg.destination("people")
    write(destination, people([1], ["a"]), state={"position": {"row": 1}}, entity="people", run_id="r1")
    write(destination, people([2], ["b"]), state={"position": {"row": 2}}, entity="people", run_id="r2")
    write(destination, people([3], ["c"]), state={"other": True}, entity="other", run_id="r3")
    rows = pg.query(f"SELECT entity, state, run_id FROM {pg.schema}._conduit_state ORDER BY entity")
    assert rows == [("other", {"other": True}, "r3"), ("people", {"position": {"row": 2}}, "r2")]


def test_a_killed_load_leaves_nothing_behind(pg: Scratch) -> None:
    destination_options = {"dsn": DSN, "table": f"{pg.schema}.people"}
    write(pg.destination("people"), people([1], ["a"]))
    script = textwrap.dedent(
        f"""
        import os, signal
        import pyarrow as pa
        from conduit.connectors import WriteRequest
        from conduit_postgres import PostgresDestination
        from conduit_postgres.options import PostgresDestinationOptions
        options = PostgresDestinationOptions.model_validate({json.dumps(destination_options)})
        data = pa.table({{"id": pa.array(range(100_000), pa.int64()), "name": pa.array(["x"] * 100_000)}})
        for mode in ("append", "replace"):
            session = PostgresDestination(options).open(WriteRequest("t", data.schema, mode, "killed"))
            for batch in data.to_batches(max_chunksize=10_000):
                session.write(batch)
        print("loaded", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "loaded" in done.stdout, done.stderr
    assert done.returncode == -9
    assert pg.rows("people") == [(1, "a")]
    assert helper_tables(pg) == []
