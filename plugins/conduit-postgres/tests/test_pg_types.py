"""Arrow -> PostgreSQL: the columns a created table gets, values in and back out, existing tables."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal

import pyarrow as pa
import pytest
from pg_helpers import Scratch, read, scratch_schema, write

from conduit.errors import ConnectorError, DataError

UTC = dt.UTC


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_schema() as scratch:
        yield scratch


def column_types(pg: Scratch, table: str) -> dict[str, str]:
    rows = pg.query(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (f"{pg.schema}.{table}",),
    )
    return {str(name): str(kind) for name, kind in rows}


def test_created_columns_and_values_round_trip(pg: Scratch) -> None:
    data = pa.table(
        {
            "i8": pa.array([-128, None], pa.int8()),
            "i16": pa.array([-32768, 1], pa.int16()),
            "i32": pa.array([2**31 - 1, 0], pa.int32()),
            "i64": pa.array([-(2**63), 0], pa.int64()),
            "u8": pa.array([255, 0], pa.uint8()),
            "u16": pa.array([65535, 0], pa.uint16()),
            "u32": pa.array([2**32 - 1, 0], pa.uint32()),
            "u64": pa.array([2**64 - 1, 0], pa.uint64()),
            "f32": pa.array([1.5, float("-inf")], pa.float32()),
            "f64": pa.array([-0.0, float("nan")], pa.float64()),
            "d128": pa.array([Decimal("-1.05"), None], pa.decimal128(5, 2)),
            "d256": pa.array(
                [Decimal("-12345678901234567890123456789012345678901234567.891"), Decimal("0.001")],
                pa.decimal256(50, 3),
            ),
            "ok": pa.array([True, None]),
            "s": pa.array(["", None], pa.string()),
            "ls": pa.array(["big", "x"], pa.large_string()),
            "dict": pa.array(["a", "b"]).dictionary_encode(),
            "b": pa.array([b"\x00\xff", b""], pa.binary()),
            "d": pa.array([dt.date(1, 1, 1), dt.date(9999, 12, 31)], pa.date32()),
            "ts": pa.array([dt.datetime(2024, 2, 29, 1, 2, 3, 4), None], pa.timestamp("us")),
            "ts_ms": pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, 5000), None], pa.timestamp("ms")),
            "tsz": pa.array(
                [dt.datetime(2024, 1, 1, tzinfo=UTC), None], pa.timestamp("us", tz="Europe/Paris")
            ),
            "ts_ns": pa.array([1_700_000_000_123_456_000, None], pa.timestamp("ns", tz="UTC")),
            "t": pa.array([dt.time(23, 59, 59, 999999), None], pa.time64("us")),
            "dur": pa.array([dt.timedelta(days=1, microseconds=5), None], pa.duration("us")),
            "nothing": pa.nulls(2),
        }
    )
    write(pg.destination("kinds"), data)
    assert column_types(pg, "kinds") == {
        "i8": "smallint",
        "i16": "smallint",
        "i32": "integer",
        "i64": "bigint",
        "u8": "smallint",
        "u16": "integer",
        "u32": "bigint",
        "u64": "numeric(20,0)",
        "f32": "real",
        "f64": "double precision",
        "d128": "numeric(5,2)",
        "d256": "numeric(50,3)",
        "ok": "boolean",
        "s": "text",
        "ls": "text",
        "dict": "text",
        "b": "bytea",
        "d": "date",
        "ts": "timestamp without time zone",
        "ts_ms": "timestamp without time zone",
        "tsz": "timestamp with time zone",
        "ts_ns": "timestamp with time zone",
        "t": "time without time zone",
        "dur": "interval",
        "nothing": "text",
    }
    back, _ = read(pg.source(table="kinds"))
    row, second = back.to_pylist()
    assert row["i8"] == -128 and row["i64"] == -(2**63) and row["u64"] == Decimal(2**64 - 1)
    assert row["u32"] == 2**32 - 1 and row["u16"] == 65535
    assert row["f32"] == 1.5 and str(row["f64"]) == "-0.0" and str(second["f64"]) == "nan"
    assert row["d128"] == Decimal("-1.05")
    assert row["d256"] == Decimal("-12345678901234567890123456789012345678901234567.891")
    assert second["d256"] == Decimal("0.001")
    assert back.schema.field("d256").type == pa.decimal256(50, 3)
    assert row["s"] == "" and second["s"] is None and row["dict"] == "a"
    assert row["b"] == b"\x00\xff" and second["b"] == b""
    assert row["d"] == dt.date(1, 1, 1) and second["d"] == dt.date(9999, 12, 31)
    assert row["ts"] == dt.datetime(2024, 2, 29, 1, 2, 3, 4)
    assert row["ts_ms"] == dt.datetime(2024, 1, 1, 0, 0, 0, 5000)
    assert row["tsz"] == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert row["ts_ns"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert row["t"] == dt.time(23, 59, 59, 999999)
    assert row["dur"] == "PT24H0.000005S"  # a duration is all microseconds, never days or months
    assert row["nothing"] is None


def test_nested_values_are_jsonb(pg: Scratch) -> None:
    data = pa.table(
        {
            "id": [1, 2, 3],
            "tags": pa.array([["a", 'q"uote'], None, []], pa.list_(pa.string())),
            "point": pa.array(
                [{"x": 1.5, "y": None, "label": "é\n"}, None, {"x": float("nan"), "y": 2, "label": ""}],
                pa.struct([("x", pa.float64()), ("y", pa.int64()), ("label", pa.string())]),
            ),
            "attrs": pa.array([[("k", 1)], None, []], pa.map_(pa.string(), pa.int64())),
            "matrix": pa.array([[[1, 2], [3]], None, [[]]], pa.list_(pa.list_(pa.int32()))),
        }
    )
    write(pg.destination("nested"), data)
    types = column_types(pg, "nested")
    assert [types[c] for c in ("tags", "point", "attrs", "matrix")] == ["jsonb"] * 4
    rows = pg.query(f"SELECT tags, point, attrs, matrix FROM {pg.schema}.nested ORDER BY id")
    assert rows[0] == (["a", 'q"uote'], {"x": 1.5, "y": None, "label": "é\n"}, {"k": 1}, [[1, 2], [3]])
    assert rows[1] == (None, None, None, None)
    assert rows[2] == ([], {"x": "NaN", "y": 2, "label": ""}, {}, [[]])
    back, _ = read(pg.source(table="nested", columns=["tags"]))
    assert json.loads(back.column("tags")[0].as_py()) == ["a", 'q"uote']


def test_nanoseconds_that_would_be_lost_are_a_data_error(pg: Scratch) -> None:
    data = pa.table({"at": pa.array([1_700_000_000_123_456_789], pa.timestamp("ns"))})
    with pytest.raises(DataError, match="at"):
        write(pg.destination("times"), data)
    assert pg.tables() == []


def test_loading_into_existing_column_types(pg: Scratch) -> None:
    pg.execute(
        f"CREATE TYPE {pg.schema}.mood AS ENUM ('sad', 'happy'); "
        f"CREATE TABLE {pg.schema}.typed (id integer, small smallint, ratio double precision, "
        f"amount numeric(10,2), uid uuid, doc jsonb, plain json, label varchar(5), feeling {pg.schema}.mood, "
        "ids bigint[], names text[], stamp timestamptz)"
    )
    data = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "small": pa.array([7, None], pa.int64()),
            "ratio": pa.array([1.5, 2.0], pa.float32()),
            "amount": pa.array([3, 4], pa.int32()),
            "uid": pa.array(["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc999c0b4ef8bb6d6bb9bd380a12}"]),
            "doc": pa.array(['{"b": 1, "a": [true]}', None]),
            "plain": pa.array([{"k": "v"}, None], pa.struct([("k", pa.string())])),
            "label": pa.array(["short", "s"]),
            "feeling": pa.array(["happy", "sad"]),
            "ids": pa.array([[1, None], []], pa.list_(pa.int64())),
            "names": pa.array([["a", None], None], pa.list_(pa.string())),
            "stamp": pa.array([dt.datetime(2024, 1, 1), None], pa.timestamp("us")),
        }
    )
    write(pg.destination("typed"), data)
    rows = pg.query(
        f"SELECT uid::text, doc, plain::text, feeling::text, ids, names, stamp FROM {pg.schema}.typed"
    )
    assert rows[0] == (
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        {"a": [True], "b": 1},
        '{"k":"v"}',
        "happy",
        [1, None],
        ["a", None],
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )
    assert rows[1][0] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12" and rows[1][4] == []
    assert pg.query(f"SELECT id, small, ratio, amount FROM {pg.schema}.typed ORDER BY id") == [
        (1, 7, 1.5, Decimal("3.00")),
        (2, None, 2.0, Decimal("4.00")),
    ]


@pytest.mark.parametrize(
    ("column", "values", "error", "expected"),
    [
        ("id", pa.array(["1"]), ConnectorError, "column id is integer in the table"),
        ("uid", pa.array(["not-a-uuid"]), DataError, "not a UUID"),
        ("doc", pa.array(["{broken"]), DataError, "invalid input syntax for type json"),
        ("ids", pa.array([[1.5]]), ConnectorError, "column ids is bigint[] in the table"),
        ("id", pa.array([1.5]), ConnectorError, "binary COPY cannot convert"),
    ],
)
def test_values_that_do_not_fit_existing_columns(
    pg: Scratch, column: str, values: pa.Array, error: type[Exception], expected: str
) -> None:
    pg.execute(f"CREATE TABLE {pg.schema}.typed (id integer, uid uuid, doc jsonb, ids bigint[])")
    with pytest.raises(error) as info:
        write(pg.destination("typed"), pa.table({column: values}))
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert pg.count("typed") == 0
