"""How many connections a destination opens: its preflight, state and load sessions share one
(ConnectionCache); a failure never hands on a connection in an unknown state; close() closes it."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pytest
from pg_helpers import DSN, Scratch, scratch_schema, write

from conduit.connectors import StateKey, WriteRequest
from conduit.errors import ConnectorError
from conduit_postgres import connection as pg_connection
from conduit_postgres.connection import ConnectionCache
from conduit_postgres.options import PostgresDestinationOptions


def key(entity: str) -> StateKey:
    """The state key of ``entity`` in a flow with no name (as the helpers' ``write`` commits it)."""
    return StateKey("", entity)


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_schema() as scratch:
        yield scratch


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[psycopg2.extensions.connection]:
    """Every connection the connector opens, in order (psycopg2.connect as the connector calls it)."""
    made: list[psycopg2.extensions.connection] = []
    real = psycopg2.connect

    def counting(*args: object, **kwargs: object) -> psycopg2.extensions.connection:
        connection = real(*args, **kwargs)  # type: ignore[arg-type]
        made.append(connection)
        return connection

    monkeypatch.setattr(pg_connection.psycopg2, "connect", counting)
    return made


def table(ids: list[int]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "name": pa.array([f"n{i}" for i in ids])})


def test_preflight_state_and_checkpoint_sessions_share_one_connection(
    pg: Scratch, opened: list[psycopg2.extensions.connection]
) -> None:
    destination = pg.destination("people")
    destination.check()
    assert destination.current_schema() is None
    assert destination.read_state(key("t")) is None
    for commit in range(3):  # a run with three checkpoint commits
        write(destination, table([commit * 10 + i for i in range(5)]), state={"commit": commit})
    assert destination.read_state(key("t")) == {"commit": 2}
    destination.write_state(key("t"), {"commit": "set"})
    assert destination.current_schema() is not None
    assert len(opened) == 1
    assert pg.count("people") == 15
    destination.close()
    assert opened[0].closed
    destination.close()  # twice is fine


def test_the_lock_keeps_a_connection_of_its_own(
    pg: Scratch, opened: list[psycopg2.extensions.connection]
) -> None:
    destination = pg.destination("people")
    destination.check()
    with destination.lock(key("t")):
        write(destination, table([1, 2]))
        assert len(opened) == 2
    assert opened[1].closed and not opened[0].closed
    destination.close()
    assert opened[0].closed


def test_an_aborted_or_failed_session_does_not_hand_on_its_connection(
    pg: Scratch, opened: list[psycopg2.extensions.connection]
) -> None:
    destination = pg.destination("people")
    write(destination, table([1, 2]))
    with destination.open(WriteRequest("t", table([3]).schema, "append", "aborted")) as session:
        session.write(table([3]).to_batches()[0])
        session.abort()
    assert opened[0].closed  # the aborted session's connection (the kept one) was closed
    wrong = pa.table({"id": pa.array(["not a number"])})
    with pytest.raises(ConnectorError, match="binary COPY cannot convert"):
        write(destination, wrong)
    assert opened[1].closed
    write(destination, table([4]))  # a new connection, and nothing of the failed loads
    assert len(opened) == 3
    assert [row[0] for row in pg.rows("people")] == [1, 2, 4]
    destination.close()


def test_a_connection_given_back_mid_transaction_is_rolled_back_and_reusable(pg: Scratch) -> None:
    options = PostgresDestinationOptions.model_validate({"dsn": DSN, "table": pg.table("x")})
    cache = ConnectionCache(options)
    with cache.borrow() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {pg.schema}.x (a int)")  # never committed
    with cache.borrow() as again:
        assert again is connection
        assert again.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        assert not again.autocommit
        with again.cursor() as cursor:
            cursor.execute("SELECT 1")
    assert "x" not in pg.tables()
    with pytest.raises(ZeroDivisionError), cache.borrow() as failing:
        raise ZeroDivisionError
    assert failing.closed
    assert cache.take() is not failing
    cache.close()


def test_the_engine_run_opens_two_connections_whatever_the_checkpoints(
    pg: Scratch, opened: list[psycopg2.extensions.connection], tmp_path: object
) -> None:
    from pathlib import Path

    from conduit.config import load_flow
    from conduit.plugins import load_registry
    from conduit.run import run_flow

    base = Path(str(tmp_path))
    (base / "in.csv").write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(40_000)))
    (base / "flow.yml").write_text(
        "version: 1\nentities:\n  people:\n"
        "    source: {type: csv, options: {path: in.csv, columns: {id: int64, name: string}}}\n"
        f"    destination: {{type: postgres, options: {{dsn: '{DSN}', table: '{pg.table('people')}'}}}}\n"
        "    batch_size: 5000\n    commit_every: 10000\n"
    )
    registry = load_registry()
    result = run_flow(load_flow(base / "flow.yml", registry), registry)
    entity = result.entities[0]
    assert result.status == "success", entity.error
    assert entity.commits >= 4
    assert pg.count("people") == 40_000
    assert len(opened) == 2  # the shared one and the lock's
    assert all(connection.closed for connection in opened)
