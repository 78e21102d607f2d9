"""Connecting: retries on transient failures, one-line errors with host:port, never a password."""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest
from pg_helpers import DSN, require_postgres

from conduit.errors import ConnectorError, RetriableConnectorError
from conduit_postgres import PostgresSource
from conduit_postgres.connection import connect, endpoint
from conduit_postgres.options import ConnectionOptions, PostgresSourceOptions

SECRET = "hunter2-Very-Secret"


class Attempts:
    """Counts ``psycopg2.connect`` calls (and lets them through)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = psycopg2.connect

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(psycopg2, "connect", counting)


def options(**values: Any) -> ConnectionOptions:
    return ConnectionOptions.model_validate({"connect_backoff": 0, **values})


def test_a_refused_connection_is_retried_then_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = Attempts(monkeypatch)
    waits: list[float] = []
    refused = options(
        host="127.0.0.1",
        port=1,
        user="loader",
        password=SECRET,
        dbname="test",
        connect_retries=2,
        connect_backoff=0.5,
    )
    with pytest.raises(RetriableConnectorError) as info:
        connect(refused, sleep=waits.append)
    message = str(info.value)
    assert (
        message == "cannot connect to PostgreSQL at 127.0.0.1:1 (test): Connection refused (after 3 attempts)"
    )
    assert attempts.count == 3
    assert waits == [0.5, 1.0]


def test_a_password_in_the_dsn_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = Attempts(monkeypatch)
    with pytest.raises(RetriableConnectorError) as info:
        connect(options(dsn=f"postgresql://loader:{SECRET}@127.0.0.1:1/warehouse", connect_retries=1))
    message = str(info.value)
    assert SECRET not in message and "\n" not in message
    assert message.startswith("cannot connect to PostgreSQL at 127.0.0.1:1 (warehouse): ")
    assert attempts.count == 2


def test_a_malformed_dsn_is_not_echoed() -> None:
    with pytest.raises(ConnectorError) as info:
        connect(options(dsn=f"host=db password={SECRET} this is not a dsn"))
    assert SECRET not in str(info.value) and "not a valid connection string" in str(info.value)


def test_a_permanent_failure_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    require_postgres()
    attempts = Attempts(monkeypatch)
    dsn = DSN.rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(ConnectorError) as info:
        connect(options(dsn=dsn, connect_retries=3))
    assert not isinstance(info.value, RetriableConnectorError)
    assert 'database "no_such_database_here" does not exist' in str(info.value)
    assert attempts.count == 1


def test_fields_override_the_dsn() -> None:
    require_postgres()
    parsed = psycopg2.extensions.parse_dsn(DSN)
    wrong_port = options(
        dsn=DSN.replace(f":{parsed.get('port', '5432')}/", ":1/"), port=int(parsed.get("port", 5432))
    )
    connection = connect(wrong_port)
    connection.close()
    assert endpoint(options(dsn="postgresql://u@db.internal:6543/app")).__str__() == "db.internal:6543 (app)"
    assert str(endpoint(options(dsn="postgresql://u@db/app", host="other", dbname="x"))) == "other:5432 (x)"


def test_the_source_fails_the_same_way() -> None:
    source = PostgresSource(
        PostgresSourceOptions.model_validate(
            {
                "host": "127.0.0.1",
                "port": 1,
                "password": SECRET,
                "dbname": "test",
                "table": "t",
                "connect_retries": 0,
            }
        )
    )
    with pytest.raises(RetriableConnectorError) as info:
        source.check()
    assert str(info.value) == "cannot connect to PostgreSQL at 127.0.0.1:1 (test): Connection refused"


def test_the_target_is_the_table_on_its_server_and_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """``target_id`` tells apart the same table name in two databases, connects to nothing, and never
    holds a password (it is shown in messages about entities sharing a target)."""
    from conduit_postgres import PostgresDestination
    from conduit_postgres.options import PostgresDestinationOptions

    def destination(**values: Any) -> PostgresDestination:
        return PostgresDestination(PostgresDestinationOptions.model_validate({"table": "orders", **values}))

    monkeypatch.setattr(psycopg2, "connect", lambda *a, **k: pytest.fail("target_id connected"))
    for key in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(key, raising=False)
    app = destination(dsn=f"postgresql://u:{SECRET}@db.internal:6543/app")
    assert app.target_id() == "db.internal:6543 (app)/public.orders"
    assert SECRET not in app.target_id()
    other = destination(dsn=f"postgresql://u:{SECRET}@db.internal:6543/other")
    assert other.target_id() != app.target_id()
    fields = destination(host="db.internal", port=6543, dbname="app", password=SECRET, schema="sales")
    assert fields.target_id() == "db.internal:6543 (app)/sales.orders"
