"""Units of the no-silent-loss machinery: lossless coercion, the dead-letter queue's commit protocol,
row numbers after filtering, JSON encoding of rejected rows, and schema drift classification."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from conduit.coerce import coerce_batch
from conduit.dlq import DeadLetterQueue, json_rows, json_values
from conduit.rejects import RowMap
from conduit.schema import SchemaRecord, compare_types, drift, evolved


def test_coerce_rejects_every_lossy_value_with_its_reason() -> None:
    text = pa.record_batch(
        {
            "i": ["1", "x", "99999999999999999999", None, "7"],
            "d": ["1.50", "1.555", "123456789012", "2", "abc"],
            "f": ["1.5", "1e400", "inf", "2", "3"],
            "t": [
                "2024-01-01T00:00:00Z",
                "2024-01-01 10:00",
                "2024-02-30T00:00:00Z",
                None,
                "2024-01-01T00:00:00+02:00",
            ],
        }
    )
    schema = pa.schema(
        [
            ("i", pa.int64()),
            ("d", pa.decimal128(10, 2)),
            ("f", pa.float64()),
            ("t", pa.timestamp("us", "UTC")),
        ]
    )
    result = coerce_batch(text, schema)
    assert [(f.index, f.column, f.reason) for f in result.failures] == [
        (1, "i", "not_a_number"),
        (2, "i", "overflow"),
        (4, "d", "not_a_number"),
    ]
    assert result.batch.column("i").to_pylist() == [1, None]  # rows 0 and 3 convert in every column
    reasons = {}
    for column in ("i", "d", "f", "t"):
        single = coerce_batch(text.select([column]), pa.schema([schema.field(column)]))
        reasons[column] = [(f.index, f.reason) for f in single.failures]
    assert reasons == {
        "i": [(1, "not_a_number"), (2, "overflow")],
        "d": [(1, "precision_loss"), (2, "overflow"), (4, "not_a_number")],
        "f": [(1, "overflow")],
        "t": [(1, "missing_offset"), (2, "bad_timestamp")],
    }


def test_coerce_keeps_good_rows_exact() -> None:
    text = pa.record_batch({"d": ["1.50", "-0.01", None], "b": ["true", "0", "1"]})
    schema = pa.schema([("d", pa.decimal128(5, 2)), ("b", pa.bool_())])
    result = coerce_batch(text, schema)
    assert result.failures == ()
    assert result.batch.to_pylist() == [
        {"d": Decimal("1.50"), "b": True},
        {"d": Decimal("-0.01"), "b": False},
        {"d": None, "b": True},
    ]


def test_json_values_match_json_rows() -> None:
    batch = pa.record_batch(
        {
            "a": [1, None],
            "s": ['q"uote\\slash', "ünï"],
            "d": pa.array([Decimal("1.50"), None], pa.decimal128(5, 2)),
            "t": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC)] * 2, pa.timestamp("us", "UTC")),
            "b": [True, None],
            "f": [0.1, 2.5],
        }
    )
    assert [json.loads(line) for line in json_values(batch)] == json_rows(batch)
    odd = pa.record_batch({"s": ["tab\there"], "f": [float("nan")]})  # the row-by-row path
    assert json.loads(json_values(odd)[0]) == {"s": "tab\there", "f": "nan"}


def test_row_map_follows_slices_filters_and_source_rejects() -> None:
    rows = RowMap("a.csv", 100, rejected_rows=[102, 105])  # file rows 101..110 minus 102 and 105
    assert [rows.number(i) for i in range(8)] == [101, 103, 104, 106, 107, 108, 109, 110]
    rows.offset(2)  # the first two rows were committed before a resume
    rows.keep(pa.array([True, False, True, True, False, True]))
    assert [rows.number(i) for i in range(4)] == [104, 107, 108, 110]


def _part(queue: DeadLetterQueue, run: str, seq: int, ids: list[str]) -> None:
    part = queue.open_part(run, seq)
    for ident in ids:
        part.add({"id": ident, "run_id": run, "values": {"x": ident}})
    part.close()


def test_dead_letter_parts_follow_the_committed_state(tmp_path: Path) -> None:
    queue = DeadLetterQueue(tmp_path, "flow", "orders")
    _part(queue, "r1", 0, ["a", "b"])
    queue.promote("r1", 0)
    _part(queue, "r1", 1, ["c"])  # committed, then the process died before the rename
    _part(queue, "r1", 2, ["d"])  # never committed
    assert [r["id"] for r in queue.records()] == ["a", "b"]
    done = queue.recover("r1", 1)
    assert [r["id"] for r in queue.records()] == ["a", "b", "c"]
    assert any("kept" in line for line in done) and any("removed" in line for line in done)
    _part(queue, "r2", 0, ["e"])  # another run's pending part, while the state says r1 committed last
    queue.recover("r1", 1)
    assert [r["id"] for r in queue.records()] == ["a", "b", "c"]
    queue.stage_removal("r3", 0, ["b"])
    assert [r["id"] for r in queue.records()] == ["a", "b", "c"]  # not until its commit lands
    queue.promote("r3", 0)
    assert [r["id"] for r in queue.records()] == ["a", "c"] and queue.summary().rows == 2
    assert queue.purge() == 2 and list(queue.records()) == []


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        (pa.int32(), pa.int64(), ("widening", pa.int64())),
        (pa.int64(), pa.int32(), ("fits", None)),
        (pa.int64(), pa.decimal128(10, 2), ("widening", pa.decimal128(21, 2))),
        (pa.int32(), pa.float64(), ("widening", pa.float64())),
        (pa.int64(), pa.float64(), ("incompatible", None)),
        (pa.decimal128(10, 2), pa.decimal128(12, 4), ("widening", pa.decimal128(12, 4))),
        (pa.decimal128(12, 4), pa.decimal128(10, 2), ("fits", None)),
        (pa.int64(), pa.string(), ("incompatible", None)),
        (pa.string(), pa.int64(), ("incompatible", None)),
        (pa.float32(), pa.float64(), ("widening", pa.float64())),
        (pa.timestamp("us"), pa.timestamp("us", "UTC"), ("incompatible", None)),
    ],
)
def test_type_changes_are_classified(current: pa.DataType, incoming: pa.DataType, expected: tuple) -> None:
    assert compare_types(current, incoming) == expected


def test_timestamptz_widening_only_when_configured() -> None:
    assert compare_types(pa.timestamp("us"), pa.timestamp("us", "UTC"), timestamptz=True) == (
        "widening",
        pa.timestamp("us", "UTC"),
    )


def test_drift_is_measured_from_the_accepted_source_schema() -> None:
    source = pa.schema([("id", pa.int64()), ("n", pa.int32()), ("gone", pa.string())])
    target = pa.schema([("id", pa.int64()), ("n", pa.int64()), ("gone", pa.string())])  # n widened before
    same = drift(source, target, source)
    assert not same
    incoming = pa.schema([("id", pa.int64()), ("n", pa.int64()), ("new", pa.string())])
    changes = {c.column: (c.kind, c.compatibility) for c in drift(source, target, incoming).changes}
    assert changes == {"n": ("type_changed", "fits"), "new": ("added", None), "gone": ("removed", None)}
    applied = [c for c in drift(source, target, incoming).changes if c.alters_target]
    assert evolved(target, applied).names == ["id", "n", "gone", "new"]


def test_schema_record_round_trips_through_the_state() -> None:
    record = SchemaRecord()
    schema = pa.schema(
        [("id", pa.int64()), ("amount", pa.decimal128(12, 2)), ("at", pa.timestamp("us", "UTC"))]
    )
    doc = record.accept(schema, schema, how="initial", run_id="r1", at="2026-01-01T00:00:00Z")
    again = SchemaRecord.from_state({"schema": json.loads(json.dumps(doc))})
    assert again.version == 1 and again.current is not None and again.current.equals(schema)
    assert [c["type"] for c in again.history[0]["columns"]] == [
        "int64",
        "decimal(12,2)",
        "timestamp[us, UTC]",
    ]


def test_a_column_that_may_now_be_null_is_drift() -> None:
    accepted = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])
    incoming = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string(), nullable=False)])
    changes = drift(accepted, accepted, incoming).changes
    assert [(c.kind, c.column, c.safe, c.alters_target) for c in changes] == [
        ("nullability", "id", True, False)
    ]
    assert str(changes[0]) == "column 'id' may now be NULL (it was declared NOT NULL)"
