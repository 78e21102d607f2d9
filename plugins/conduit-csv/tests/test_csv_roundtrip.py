"""Destination then source: every value comes back exactly once the types are declared again."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from csv_helpers import make_destination, make_source, read_table, write_table

from conduit.testing import assert_tables_equal
from conduit.types import type_name

UTC = dt.UTC


def awkward_table() -> pa.Table:
    """A null in every column, and the values CSV finds hardest."""
    return pa.table(
        {
            "i": pa.array([1, -(2**63), 2**63 - 1, None, 2**53 + 1, 0], pa.int64()),
            "f": pa.array([1.5, float("nan"), float("inf"), float("-inf"), -0.0, None], pa.float64()),
            "d": pa.array(
                [
                    Decimal("12345678901234567890123456789.123456789"),
                    Decimal("-0.000000001"),
                    None,
                    Decimal("0E-9"),
                    Decimal("-99999999999999999999999999999.999999999"),
                    Decimal("1.100000000"),
                ],
                pa.decimal128(38, 9),
            ),
            "b": pa.array([True, False, None, True, False, True], pa.bool_()),
            "s": pa.array(
                ['comma, "quoted"', "line\nbreak\r\nand tab\t", "ünïcødé ✓ 日本語 🚀", "", None, "NA"],
                pa.string(),
            ),
            "ts": pa.array(
                [
                    dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
                    dt.datetime(1970, 1, 1, tzinfo=UTC),
                    dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
                    dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
                    None,
                    dt.datetime(2000, 6, 15, 12, 0, 0, 500000, tzinfo=UTC),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "day": pa.array(
                [
                    dt.date(2024, 2, 29),
                    dt.date(1, 1, 1),
                    dt.date(9999, 12, 31),
                    dt.date(1900, 3, 1),
                    dt.date(1970, 1, 1),
                    None,
                ],
                pa.date32(),
            ),
        }
    )


def _declared(schema: pa.Schema) -> dict[str, str]:
    return {field.name: type_name(field.type) for field in schema}


@pytest.mark.parametrize("name", ["golden.csv", "golden.csv.gz", "golden.csv.bz2", "golden.csv.zst"])
def test_round_trip_with_declared_types(tmp_path: Path, name: str) -> None:
    table = awkward_table()
    write_table(make_destination(tmp_path, path=name), table)
    back = read_table(make_source(tmp_path, path=name, columns=_declared(table.schema)))
    assert_tables_equal(table, back)


def test_round_trip_tab_delimited_without_header(tmp_path: Path) -> None:
    table = awkward_table()
    write_table(make_destination(tmp_path, path="g.tsv", delimiter="\t", header=False), table)
    source = make_source(
        tmp_path,
        path="g.tsv",
        delimiter="\t",
        header=False,
        column_names=table.column_names,
        columns=_declared(table.schema),
    )
    assert_tables_equal(table, read_table(source))


def test_round_trip_all_valid_quoting(tmp_path: Path) -> None:
    table = awkward_table()
    write_table(make_destination(tmp_path, path="q.csv", quoting="all_valid"), table)
    assert_tables_equal(
        table, read_table(make_source(tmp_path, path="q.csv", columns=_declared(table.schema)))
    )


def test_round_trip_in_small_batches_and_blocks(tmp_path: Path) -> None:
    table = pa.concat_tables([awkward_table()] * 500)
    write_table(make_destination(tmp_path, path="many.csv"), table)
    source = make_source(tmp_path, path="many.csv", columns=_declared(table.schema), block_size=4096)
    assert_tables_equal(table, read_table(source, batch_size=100))


def test_round_trip_other_timestamp_units_and_zones(tmp_path: Path) -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    table = pa.table(
        {
            "naive_ms": pa.array([dt.datetime(2024, 1, 1, 12, 0, 0, 123000), None], pa.timestamp("ms")),
            "ns_utc": pa.array([dt.datetime(2024, 1, 1, tzinfo=UTC), None], pa.timestamp("ns", "UTC")),
            "s_paris": pa.array(
                [dt.datetime(2024, 1, 1, 12, tzinfo=paris), None], pa.timestamp("s", "Europe/Paris")
            ),
        }
    )
    write_table(make_destination(tmp_path, path="ts.csv"), table)
    assert_tables_equal(
        table, read_table(make_source(tmp_path, path="ts.csv", columns=_declared(table.schema)))
    )


def test_empty_table_round_trips_to_its_columns(tmp_path: Path) -> None:
    table = awkward_table().slice(0, 0)
    write_table(make_destination(tmp_path, path="e.csv"), table)
    back = read_table(make_source(tmp_path, path="e.csv", columns=_declared(table.schema)))
    assert back.num_rows == 0
    assert back.schema == table.schema


def test_without_declared_types_strings_and_nulls_still_round_trip(tmp_path: Path) -> None:
    # Two columns: in a one-column file a NULL row is a blank line, which CSV readers skip.
    table = pa.table(
        {"s": pa.array(["", None, "x", "NA", "null"]), "t": pa.array(["a", None, "", None, "b"])}
    )
    write_table(make_destination(tmp_path, path="s.csv"), table)
    assert_tables_equal(table, read_table(make_source(tmp_path, path="s.csv")))
