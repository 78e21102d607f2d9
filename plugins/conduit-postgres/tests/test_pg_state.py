"""State in the destination (``_conduit_state``), the per-entity run lock, and the source's cursor
pushdown (the engine's :class:`~conduit.connectors.CursorFilter`)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg2
import pyarrow as pa
import pytest
from pg_helpers import DSN, Scratch, scratch_schema, write
from psycopg2 import sql

from conduit.connectors import CursorFilter, ReadRequest, StateKey, WriteRequest
from conduit.errors import ConnectorError
from conduit_postgres import PostgresDestination, PostgresSource
from conduit_postgres.options import PostgresDestinationOptions

UTC = dt.UTC


def key(entity: str) -> StateKey:
    """The state key of ``entity`` in a flow with no name (as the helpers' ``write`` commits it)."""
    return StateKey("", entity)


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_schema() as scratch:
        yield scratch


def destination_in(schema: str, table: str, **options: Any) -> PostgresDestination:
    """A destination for ``schema.table`` (``Scratch.destination`` is for the scratch schema)."""
    values = {"dsn": DSN, "table": table, "schema": schema, **options}
    return PostgresDestination(PostgresDestinationOptions.model_validate(values))


def test_capabilities() -> None:
    assert PostgresDestination.capabilities.stores_state
    assert PostgresSource.capabilities.cursor_pushdown


# -- state ----------------------------------------------------------------------------------------


def test_read_state_is_none_without_a_state_table_or_row(pg: Scratch) -> None:
    destination = pg.destination("orders")
    assert destination.read_state(key("orders")) is None
    assert "_conduit_state" not in pg.tables()  # reading creates nothing
    write(destination, pa.table({"id": [1]}), entity="other", state={"rows": 1})
    assert destination.read_state(key("orders")) is None
    assert destination.read_state(key("other")) == {"rows": 1}


def test_read_state_is_none_when_the_schema_is_missing(pg: Scratch) -> None:
    destination = destination_in(pg.schema + "_missing", "orders")
    assert destination.read_state(key("orders")) is None


STATE: dict[str, Any] = {
    "run_id": "r-1",
    "rows": 12,
    "big": 2**70,
    "floats": [0.1, 1e20, -1.5e-7, 123.0, 5e-324, 1.7976931348623157e308, -0.5],
    "cursor": {"column": "updated_at", "value": "2024-06-01T00:00:00+00:00", "inclusive": True},
    "nothing": None,
    "flags": [True, False],
    "text": 'ünï "quoted" \\ back\nslash \u2028',
    "empty": {},
    "list": [],
    "a longer key name": {"x": [1, [2, {"y": None}]]},
}


def test_commit_stores_the_state_read_state_returns_it_exactly(pg: Scratch) -> None:
    destination = pg.destination("orders")
    write(destination, pa.table({"id": [1, 2]}), entity="orders", state=STATE)
    stored = destination.read_state(key("orders"))
    assert stored == STATE
    assert stored is not None
    assert [type(x) for x in stored["floats"]] == [float] * len(STATE["floats"])
    assert type(stored["big"]) is int
    # the row is the one commit wrote, in the same transaction as the data
    assert pg.query(f"SELECT run_id FROM {pg.schema}._conduit_state WHERE entity = 'orders'") == [("run",)]
    write(destination, pa.table({"id": [3]}), entity="orders", state={"rows": 1}, run_id="run2")
    assert destination.read_state(key("orders")) == {"rows": 1}


def test_commit_writes_values_without_a_json_form_as_text(pg: Scratch) -> None:
    destination = pg.destination("orders")
    state = {"day": dt.date(2024, 1, 2), "amount": Decimal("1.50"), ("tuple",): (1, 2), 3: "int key"}
    write(destination, pa.table({"id": [1]}), entity="orders", state=state)
    assert destination.read_state(key("orders")) == {
        "day": "2024-01-02",
        "amount": "1.50",
        "('tuple',)": [1, 2],
        "3": "int key",
    }


def test_a_state_jsonb_cannot_hold_fails_the_commit_and_nothing_is_loaded(pg: Scratch) -> None:
    destination = pg.destination("orders")
    for bad in ({"x": float("nan")}, {"x": [float("inf")]}, {"x": "a\x00b"}):
        with pytest.raises(ConnectorError, match="cannot store the state"):
            write(destination, pa.table({"id": [1]}), entity="orders", state=bad)
    assert pg.tables() == []  # the created table was rolled back with the load
    with pytest.raises(ConnectorError, match="cannot store the state"):
        destination.write_state(key("orders"), {"x": float("-inf")})
    assert destination.read_state(key("orders")) is None


def test_write_state_sets_replaces_and_deletes(pg: Scratch) -> None:
    destination = pg.destination("orders")
    destination.write_state(key("orders"), None)  # nothing to delete: no table, no error
    assert "_conduit_state" not in pg.tables()
    destination.write_state(key("orders"), {"cursor": 5, "f": 1e20})
    assert "orders" not in pg.tables()  # only the state table is created
    assert destination.read_state(key("orders")) == {"cursor": 5, "f": 1e20}
    destination.write_state(key("orders"), STATE)
    assert destination.read_state(key("orders")) == STATE
    destination.write_state(key("other"), {"cursor": 1})
    destination.write_state(key("orders"), None)
    assert destination.read_state(key("orders")) is None
    assert destination.read_state(key("other")) == {"cursor": 1}
    destination.write_state(key("orders"), None)  # already gone
    rows = pg.query(f"SELECT entity, run_id FROM {pg.schema}._conduit_state")
    assert rows == [("other", None)]


def test_write_state_creates_the_schema(pg: Scratch) -> None:
    schema = pg.schema + "_new"
    try:
        destination = destination_in(schema, "orders")
        destination.write_state(key("orders"), {"rows": 3})
        assert destination.read_state(key("orders")) == {"rows": 3}
        refused = destination_in(schema + "_none", "orders", create_table=False)
        with pytest.raises(ConnectorError, match="does not exist"):
            refused.write_state(key("orders"), {"rows": 3})
    finally:
        pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_state_is_per_schema(pg: Scratch) -> None:
    schema = pg.schema + "_b"
    try:
        pg.destination("orders").write_state(key("orders"), {"where": "a"})
        other = destination_in(schema, "orders")
        assert other.read_state(key("orders")) is None
        other.write_state(key("orders"), {"where": "b"})
        assert pg.destination("orders").read_state(key("orders")) == {"where": "a"}
    finally:
        pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_an_aborted_load_keeps_the_previous_state(pg: Scratch) -> None:
    destination = pg.destination("orders")
    write(destination, pa.table({"id": [1]}), entity="orders", state={"cursor": 1})
    data = pa.table({"id": [2]})
    with destination.open(WriteRequest("orders", data.schema, "append", "run2")) as session:
        session.write(data.to_batches()[0])
    assert destination.read_state(key("orders")) == {"cursor": 1}
    assert pg.count("orders") == 1


# -- the lock -------------------------------------------------------------------------------------


def lock_holders(pg: Scratch, entity: str) -> list[tuple[Any, ...]]:
    """``(pid, state)`` of the sessions holding ``entity``'s lock for the scratch schema."""
    return pg.query(
        "SELECT a.pid, a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
        "AND l.classid = hashtext('conduit')::oid AND l.objid = hashtext(%s)::oid",
        ("\x1f".join((pg.schema, "orders", "", entity)),),
    )


def test_a_second_lock_fails_at_once_naming_the_holder(pg: Scratch) -> None:
    first = pg.destination("orders")
    second = pg.destination("orders", password="s3cr3t-pw")  # trust auth: ignored, but never shown
    with first.lock(key("orders")):
        started = time.monotonic()
        with pytest.raises(ConnectorError) as caught:
            with second.lock(key("orders")):
                pytest.fail("the lock was taken twice")
        assert time.monotonic() - started < 2
        message = str(caught.value)
        assert message.startswith(f"postgres destination {pg.schema}.orders: entity 'orders' is being loaded")
        assert "another run" in message
        [(pid, _)] = lock_holders(pg, "orders")
        assert f"held by PostgreSQL backend pid {pid} (user " in message
        assert "connected since" in message
        assert "s3cr3t-pw" not in message
        with second.lock(key("customers")):  # another entity is not blocked
            pass
        other_schema = destination_in(pg.schema + "_elsewhere", "orders")
        with other_schema.lock(key("orders")):  # nor the same entity in another schema
            pass
    with second.lock(key("orders")):  # released on exit
        with pytest.raises(ConnectorError, match="another run"):
            with first.lock(key("orders")):
                pass
    with first.lock(key("orders")):
        pass


def test_the_lock_is_released_when_the_block_raises(pg: Scratch) -> None:
    destination = pg.destination("orders")
    with pytest.raises(RuntimeError):
        with destination.lock(key("orders")):
            raise RuntimeError("boom")
    with destination.lock(key("orders")):
        pass


def test_the_lock_holds_no_transaction_open(pg: Scratch) -> None:
    with pg.destination("orders").lock(key("orders")):
        [(_, state)] = lock_holders(pg, "orders")
        assert state == "idle"
    assert lock_holders(pg, "orders") == []


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from conduit.connectors import StateKey
    from conduit_postgres import PostgresDestination
    from conduit_postgres.options import PostgresDestinationOptions

    options = PostgresDestinationOptions.model_validate({"dsn": sys.argv[1], "table": sys.argv[2]})
    with PostgresDestination(options).lock(StateKey("", "orders")):
        print("locked", flush=True)
        time.sleep(120)
    """
)


def test_the_lock_is_released_when_the_holder_is_killed(pg: Scratch) -> None:
    destination = pg.destination("orders")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, DSN, pg.table("orders")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line.strip() == "locked", holder.stderr.read() if holder.stderr else ""
        with pytest.raises(ConnectorError, match=r"another run \(held by PostgreSQL backend pid \d+"):
            with destination.lock(key("orders")):
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 15
        while True:  # the server notices the closed connection within moments
            try:
                with destination.lock(key("orders")):
                    break
            except ConnectorError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for stream in (holder.stdout, holder.stderr):
            if stream is not None:
                stream.close()


# -- cursor pushdown ------------------------------------------------------------------------------


@pytest.fixture
def events(pg: Scratch) -> Scratch:
    pg.execute(
        f"CREATE TABLE {pg.schema}.events (id int, k bigint, at timestamptz, day date, amount numeric(8,2), "
        "x double precision, label text)"
    )
    # inserted in no particular order, with NULL cursors in between
    pg.execute(
        f"""INSERT INTO {pg.schema}.events VALUES
        (1, 5, '2024-01-01 05:00+00', '2024-01-05', 5.00, 0.5, 'e'),
        (2, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, 1, '2024-01-01 01:00+00', '2024-01-01', 1.00, 0.1, 'a'),
        (4, 3, '2024-01-01 03:00+00', '2024-01-03', 3.00, 0.3, 'c'),
        (5, 4, '2024-01-01 04:00+00', '2024-01-04', 4.00, 0.4, 'd'),
        (6, NULL, NULL, NULL, NULL, NULL, NULL),
        (7, 2, '2024-01-01 02:00+00', '2024-01-02', 2.00, 0.2, 'b'),
        (8, 3, '2024-01-01 03:00+00', '2024-01-03', 3.00, 0.3, 'c')"""
    )
    return pg


def pushed(
    source: PostgresSource, cursor: CursorFilter | None, batch_size: int = 65_536
) -> tuple[pa.Table, list[dict[str, Any]]]:
    schema = source.discover()
    batches, positions = [], []
    try:
        for item in source.read(ReadRequest("events", schema, batch_size, cursor=cursor)):
            assert item.data.schema.equals(schema)
            batches.append(item.data)
            positions.append(dict(item.position))
    finally:
        source.close()
    return pa.Table.from_batches(batches, schema=schema), positions


def ids(table: pa.Table) -> list[int]:
    return list(table.column("id").to_pylist())


def test_inclusive_filter_keeps_nulls_last(events: Scratch) -> None:
    table, positions = pushed(events.source(table="events"), CursorFilter("k", 3), batch_size=2)
    assert table.column("k").to_pylist() == [3, 3, 4, 5, None, None]
    assert sorted(ids(table)[:2]) == [4, 8]
    assert sorted(ids(table)[4:]) == [2, 6]
    assert positions == [
        {"row": 2, "cursor": 3},
        {"row": 4, "cursor": 5},
        {"row": 6, "cursor": 5},  # a batch of NULL cursors keeps the last value
    ]


def test_exclusive_filter(events: Scratch) -> None:
    table, _ = pushed(events.source(table="events"), CursorFilter("k", 3, inclusive=False))
    assert table.column("k").to_pylist() == [4, 5, None, None]


def test_no_value_reads_everything_in_cursor_order(events: Scratch) -> None:
    table, positions = pushed(events.source(table="events"), CursorFilter("k", None))
    assert table.column("k").to_pylist() == [1, 2, 3, 3, 4, 5, None, None]
    assert positions == [{"row": 8, "cursor": 5}]


def test_timestamptz_cursor_compares_instants(events: Scratch) -> None:
    value = dt.datetime(2024, 1, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 03:00 UTC
    table, positions = pushed(events.source(table="events"), CursorFilter("at", value))
    assert sorted(ids(table)[:2]) == [4, 8]
    assert ids(table)[2:4] == [5, 1]
    assert len(table) == 6
    assert positions[-1]["cursor"] == "2024-01-01T05:00:00+00:00"
    table, _ = pushed(events.source(table="events"), CursorFilter("at", value, inclusive=False))
    assert ids(table)[:2] == [5, 1]
    # an ISO string (a value read back from JSON state) works the same
    table, _ = pushed(events.source(table="events"), CursorFilter("at", "2024-01-01T03:00:00+00:00", False))
    assert ids(table)[:2] == [5, 1]


def test_date_numeric_and_float_cursors(events: Scratch) -> None:
    table, positions = pushed(events.source(table="events"), CursorFilter("day", dt.date(2024, 1, 4)))
    assert ids(table)[:2] == [5, 1]
    assert positions[-1]["cursor"] == "2024-01-05"
    table, positions = pushed(events.source(table="events"), CursorFilter("amount", Decimal("4.00")))
    assert ids(table)[:2] == [5, 1]
    assert positions[-1]["cursor"] == "5.00"
    table, _ = pushed(events.source(table="events"), CursorFilter("x", 0.4, inclusive=False))
    assert ids(table)[:1] == [1] and len(table) == 3


def test_text_cursor_compares_by_code_point(pg: Scratch) -> None:
    collation = pg.query("SELECT collname FROM pg_collation WHERE collname IN ('en-x-icu', 'en_US.utf8')")
    if not collation:
        pytest.skip("no linguistic collation on this server to tell code point order apart")
    pg.execute(
        sql.SQL("CREATE TABLE {} (id int, s text COLLATE {})").format(
            sql.Identifier(pg.schema, "words"), sql.Identifier(collation[0][0])
        )
    )
    pg.execute(
        sql.SQL("INSERT INTO {} VALUES (1, 'b'), (2, 'B'), (3, 'a'), (4, 'A'), (5, NULL)").format(
            sql.Identifier(pg.schema, "words")
        )
    )
    table, _ = pushed(pg.source(table="words"), CursorFilter("s", "B"))
    # code point order (as Arrow compares strings): A < B < a < b; linguistic order would be a A b B
    assert table.column("s").to_pylist() == ["B", "a", "b", None]


def test_pushdown_on_a_query_source(events: Scratch) -> None:
    source = events.source(query=f"SELECT id, k AS cursor, label FROM {events.schema}.events WHERE id <> 4")
    table, _ = pushed(source, CursorFilter("cursor", 3))
    assert ids(table) == [8, 5, 1, 2, 6] or ids(table) == [8, 5, 1, 6, 2]


def test_pushdown_with_cursor_column_options_applies_both(events: Scratch) -> None:
    source = events.source(table="events", cursor_column="k", cursor_after=2)
    table, _ = pushed(source, CursorFilter("k", 4))
    assert table.column("k").to_pylist() == [4, 5]  # cursor_after excludes NULLs
    source = events.source(table="events", cursor_column="id", cursor_after=4)
    table, positions = pushed(source, CursorFilter("k", 3))
    assert ids(table) == [8, 5, 6]  # in the engine's cursor order
    assert positions[-1]["cursor"] == 4  # the engine's cursor column


def test_pushdown_with_columns_and_where(events: Scratch) -> None:
    source = events.source(table="events", columns=["k", "id"], where="id > 2")
    table, _ = pushed(source, CursorFilter("k", 3))
    assert table.column_names == ["k", "id"]
    assert table.column("k").to_pylist() == [3, 3, 4, None]


def test_pushdown_value_is_a_literal_not_sql(events: Scratch) -> None:
    table, _ = pushed(events.source(table="events"), CursorFilter("label", "z' OR '1'='1"))
    assert table.column("label").to_pylist() == [None, None]


def test_pushdown_cursor_must_be_a_read_column(events: Scratch) -> None:
    source = events.source(table="events", columns=["id", "k"])
    with pytest.raises(
        ConnectorError, match=r"cursor column at is not a column of the result \(columns: id, k\)"
    ):
        pushed(source, CursorFilter("at", None))
    with pytest.raises(ConnectorError, match="cannot use the cursor value"):
        pushed(events.source(table="events"), CursorFilter("k", object()))


# -- a lock the server took away --------------------------------------------------------------------


def _terminate_and_take_over(pg: Scratch, pid: int) -> PostgresDestination:
    """End the session holding the lock (as a pooler or a failover would), and return another run's
    destination once it holds the lock."""
    pg.query("SELECT pg_terminate_backend(%s)", (pid,))
    return pg.destination("orders")


def test_a_commit_after_the_lock_was_lost_is_rolled_back(pg: Scratch) -> None:
    destination = pg.destination("orders")
    data = pa.table({"id": [1, 2, 3]})
    write(destination, data, entity="orders", state={"rows": 3})
    with destination.lock(key("orders")):
        [(pid, _)] = lock_holders(pg, "orders")
        session = destination.open(WriteRequest("orders", data.schema, "append", "run2"))
        session.write(data.to_batches()[0])
        other = _terminate_and_take_over(pg, pid)
        deadline = time.monotonic() + 15
        while True:  # the server releases the ended session's lock within moments
            try:
                with other.lock(key("orders")):
                    with pytest.raises(ConnectorError) as caught:
                        session.commit({"rows": 6})
                break
            except ConnectorError as exc:
                if "being loaded by another run" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    message = str(caught.value)
    assert "lock on the entity was lost" in message and f"backend pid {pid}" in message
    assert "--resume" in message
    # before: the commit landed while another run held the lock (duplicates)
    assert pg.count("orders") == 3
    assert destination.read_state(key("orders")) == {"rows": 3}


def test_a_state_write_after_the_lock_was_lost_is_refused(pg: Scratch) -> None:
    destination = pg.destination("orders")
    destination.write_state(key("orders"), {"rows": 1})
    with destination.lock(key("orders")):
        [(pid, _)] = lock_holders(pg, "orders")
        pg.query("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 15
        while lock_holders(pg, "orders") and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(ConnectorError, match="lock on the entity was lost"):
            destination.write_state(key("orders"), None)
    assert destination.read_state(key("orders")) == {"rows": 1}


def test_taking_the_lock_waits_for_a_commit_still_under_way(pg: Scratch) -> None:
    """A run that lost its lock may be inside its commit (past the check) when another run takes the
    lock: the newcomer waits for that commit to end before it reads the state (the commit fence)."""
    destination = pg.destination("orders")
    fence_key = "\x1f".join((pg.schema, "orders", "", "orders"))
    committing = psycopg2.connect(DSN)
    entered = threading.Event()

    def take() -> None:
        with destination.lock(key("orders")):
            entered.set()

    try:
        with committing.cursor() as cursor:  # a commit under way holds the fence for its transaction
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext('conduit-commit'), hashtext(%s))", (fence_key,)
            )
        taker = threading.Thread(target=take)
        taker.start()
        assert not entered.wait(0.5), "the lock was taken while a commit was still under way"
        committing.commit()
        taker.join(timeout=15)
        assert entered.is_set()
    finally:
        committing.close()
