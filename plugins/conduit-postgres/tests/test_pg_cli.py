"""Through the real CLI: CSV -> PostgreSQL and PostgreSQL -> Parquet, values identical end to end."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pg_helpers import DSN, Scratch, run_cli, scratch_schema

CSV = (
    "id,big,ratio,amount,label,created_at,day\n"
    '1,9007199254740993,1.5,12345678901234567890123456789.123456789,"comma, ""quoted""",'
    "2024-02-29T23:59:59.999999+05:30,2024-02-29\n"
    "2,-9223372036854775808,nan,-0.000000001,,1970-01-01T00:00:00Z,0001-01-01\n"
    '3,9223372036854775807,inf,0,"",1969-12-31T23:59:59.000001Z,9999-12-31\n'
    '4,,-inf,,"ünïcødé ✓ 日本語 🚀\nline two",,\n'
    "5,0,-0.0,-99999999999999999999999999999.999999999,plain,9999-12-31T23:59:59Z,1900-03-01\n"
)
COLUMNS = {
    "id": "int64",
    "big": "int64",
    "ratio": "float64",
    "amount": "decimal(38,9)",
    "label": "string",
    "created_at": "timestamptz",
    "day": "date",
}


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_schema() as scratch:
        yield scratch


def flow(path: Path, source: dict[str, object], destination: dict[str, object], mode: str) -> Path:
    text = {
        "version": 1,
        "entities": {"orders": {"source": source, "destination": destination, "mode": mode}},
    }
    path.write_text(json.dumps(text))  # JSON is YAML
    return path


def test_csv_to_postgres_to_parquet(pg: Scratch, tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(CSV, encoding="utf-8")
    table = f"{pg.schema}.orders"
    load = flow(
        tmp_path / "load.yml",
        {"type": "csv", "options": {"path": "orders.csv", "columns": COLUMNS}},
        {"type": "postgres", "options": {"dsn": DSN, "table": table, "primary_key": ["id"]}},
        "merge",
    )
    for _ in range(2):  # merge twice: the same rows, once
        loaded = run_cli("run", load, cwd=tmp_path)
        assert loaded.returncode == 0, loaded.stderr
        assert "5 rows" in loaded.stdout
    assert pg.count("orders") == 5
    state = pg.query(f"SELECT entity, state->>'rows_loaded_total' FROM {pg.schema}._conduit_state")
    assert state == [("orders", "10")]  # committed with the data: 5 rows loaded by each run

    export = flow(
        tmp_path / "export.yml",
        {"type": "postgres", "options": {"dsn": DSN, "query": f"SELECT * FROM {table} ORDER BY id"}},
        {"type": "parquet", "options": {"path": "out/orders.parquet"}},
        "replace",
    )
    exported = run_cli("run", export, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    back = pq.read_table(tmp_path / "out" / "orders.parquet")
    assert back.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("big", pa.int64()),
            ("ratio", pa.float64()),
            ("amount", pa.decimal128(38, 9)),
            ("label", pa.string()),
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("day", pa.date32()),
        ]
    )
    rows = back.to_pylist()
    assert [r["big"] for r in rows] == [2**53 + 1, -(2**63), 2**63 - 1, None, 0]
    assert [str(r["ratio"]) for r in rows] == ["1.5", "nan", "inf", "-inf", "-0.0"]
    assert rows[0]["amount"] == Decimal("12345678901234567890123456789.123456789")
    assert rows[4]["amount"] == Decimal("-99999999999999999999999999999.999999999")
    assert [r["label"] for r in rows] == [
        'comma, "quoted"',
        None,
        "",
        "ünïcødé ✓ 日本語 🚀\nline two",
        "plain",
    ]
    assert rows[0]["created_at"] == dt.datetime(2024, 2, 29, 18, 29, 59, 999999, tzinfo=dt.UTC)
    assert rows[4]["created_at"] == dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert [r["day"] for r in rows] == [
        dt.date(2024, 2, 29),
        dt.date(1, 1, 1),
        dt.date(9999, 12, 31),
        None,
        dt.date(1900, 3, 1),
    ]


def test_a_failing_load_reports_one_line_and_exit_1(pg: Scratch, tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(CSV, encoding="utf-8")
    load = flow(
        tmp_path / "load.yml",
        {"type": "csv", "options": {"path": "orders.csv", "columns": COLUMNS}},
        {"type": "postgres", "options": {"dsn": DSN, "table": f"{pg.schema}.orders"}},
        "merge",
    )
    result = run_cli("run", load, cwd=tmp_path)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "merge needs primary_key" in errors[0]
    assert "Traceback" not in result.stderr
    assert pg.tables() == []


def test_appending_the_same_inferred_csv_twice_doubles(pg: Scratch, tmp_path: Path) -> None:
    """CSV timestamps infer as timestamp[s]; the table stores microseconds. The engine compares what
    the destination would store (stored_schema), so the second append is not taken for drift."""
    (tmp_path / "events.csv").write_text(
        "id,at,amount\n1,2024-01-01T10:00:00Z,1.5\n2,2024-01-02T11:00:00Z,2.5\n"
    )
    load = flow(
        tmp_path / "load.yml",
        {"type": "csv", "options": {"path": "events.csv"}},
        {"type": "postgres", "options": {"dsn": DSN, "table": f"{pg.schema}.events"}},
        "append",
    )
    for _ in range(2):
        result = run_cli("run", load, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert pg.count("events") == 4
