"""The csv source's type inference: the sample (``infer_rows``), the types, and values after the sample."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from csv_helpers import file_writer, make_source, read_error, read_table

from conduit.connectors import ReadRequest, Rejected, SourceBatch
from conduit.errors import DataError
from conduit_csv import CsvSource
from conduit_csv.options import CsvSourceOptions


def read_dlq(source: CsvSource) -> tuple[pa.Table, list[Rejected]]:
    schema = source.discover()
    batches: list[SourceBatch] = list(source.read(ReadRequest("t", schema, 65_536, on_error="dlq")))
    table = pa.Table.from_batches([b.data for b in batches], schema=schema)
    return table, [reject for batch in batches for reject in batch.rejected]


def summary(rejected: Sequence[Rejected]) -> list[tuple[int | None, int | None, str, str, str | None]]:
    return [(r.row, r.line, r.rule, r.reason, r.column) for r in rejected]


def rows(count: int, value: str) -> str:
    return "".join(f"{i},{value}\n" for i in range(1, count + 1))


# -- the option -----------------------------------------------------------------------------------------


def test_infer_rows_defaults_to_10000_and_must_be_positive() -> None:
    assert CsvSourceOptions.model_validate({"path": "a.csv"}).infer_rows == 10_000
    assert CsvSourceOptions.model_validate({"path": "a.csv", "infer_rows": 1}).infer_rows == 1
    with pytest.raises(ValueError, match="infer_rows"):
        CsvSourceOptions.model_validate({"path": "a.csv", "infer_rows": 0})


# -- the types ------------------------------------------------------------------------------------------


def test_every_type_and_its_values(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write(
        "t.csv",
        "i,big,amount,f,ok,day,at,local,clock,zip,empty,mixed\n"
        "1,9223372036854775808,12.50,1e5,true,2024-02-29,2024-01-01T10:00:00+02:00,2024-01-01 10:00,"
        "10:30,01234,,2024-01-01T10:00:00Z\n"
        "-2,1,-0.5,nan,False,1999-12-31,2024-06-01 00:00:00.5Z,2024-01-02,23:59:59,99999,,2024-01-01\n",
    )
    table = read_table(make_source(tmp_path, path="t.csv"))
    assert table.schema == pa.schema(
        [
            ("i", pa.int64()),
            ("big", pa.decimal128(19, 0)),
            ("amount", pa.decimal128(18, 2)),
            ("f", pa.float64()),
            ("ok", pa.bool_()),
            ("day", pa.date32()),
            ("at", pa.timestamp("us", "UTC")),
            ("local", pa.timestamp("us")),
            ("clock", pa.time32("s")),
            ("zip", pa.int64()),
            ("empty", pa.string()),
            ("mixed", pa.string()),
        ]
    )
    first, second = table.to_pylist()
    assert first["big"] == Decimal("9223372036854775808")
    assert (first["amount"], second["amount"]) == (Decimal("12.50"), Decimal("-0.50"))
    assert first["at"] == dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC)
    assert second["at"] == dt.datetime(2024, 6, 1, 0, 0, 0, 500000, tzinfo=dt.UTC)
    assert second["local"] == dt.datetime(2024, 1, 2)
    assert (first["mixed"], second["mixed"]) == ("2024-01-01T10:00:00Z", "2024-01-01")


def test_integers_beyond_38_digits_stay_text(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    big = "9" * 39
    write("b.csv", f"id,n\n1,{big}\n2,5\n")
    table = read_table(make_source(tmp_path, path="b.csv"))
    assert table.schema.field("n").type == pa.string()
    assert table.column("n").to_pylist() == [big, "5"]


def test_the_csv_spellings_of_booleans(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("b.csv", "id,ok\n1,Y\n2,N\n")
    assert make_source(tmp_path, path="b.csv").discover().field("ok").type == pa.string()
    source = make_source(tmp_path, path="b.csv", true_values=["Y"], false_values=["N"])
    table = read_table(source)
    assert table.schema.field("ok").type == pa.bool_()
    assert table.column("ok").to_pylist() == [True, False]


def test_null_values_are_not_sampled(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("n.csv", "id,n\n1,NA\n2,3\n3,\n")
    assert make_source(tmp_path, path="n.csv").discover().field("n").type == pa.string()
    table = read_table(make_source(tmp_path, path="n.csv", null_values=["", "NA"]))
    assert table.schema.field("n").type == pa.int64()
    assert table.column("n").to_pylist() == [None, 3, None]


def test_spaces_around_numbers_and_dates_as_the_reader_ignores_them(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("s.csv", "id,n,d,day\n1, 2 ,\t3.5,2024-01-01 \n2,4,6, 2024-01-02\n")
    table = read_table(make_source(tmp_path, path="s.csv"))
    assert table.schema.types[1:] == [pa.int64(), pa.decimal128(18, 1), pa.date32()]
    assert table.column("n").to_pylist() == [2, 4]


def test_declared_columns_override_inference(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("d.csv", "zip,amount,when\n01234,12.50,2024-01-01T10:00:00Z\n")
    source = make_source(tmp_path, path="d.csv", columns={"zip": "string", "amount": "float64"})
    table = read_table(source)
    assert table.schema.types == [pa.string(), pa.float64(), pa.timestamp("us", "UTC")]
    assert table.column("zip").to_pylist() == ["01234"]


# -- the sample ----------------------------------------------------------------------------------------


def test_the_sample_is_the_first_infer_rows_rows_not_the_first_block(tmp_path: Path) -> None:
    # Row 2000 is far past the first 4 KiB block, but within the first 10,000 rows.
    write = file_writer(tmp_path)
    write("z.csv", "id,zip\n" + rows(1999, "10000") + "2000,A1B 2C3\n" + rows(10, "10001"))
    source = make_source(tmp_path, path="z.csv", block_size=4096)
    table = read_table(source)
    assert table.schema.field("zip").type == pa.string() and table.num_rows == 2010
    assert make_source(tmp_path, path="z.csv", infer_rows=1999).discover().field("zip").type == pa.int64()
    assert make_source(tmp_path, path="z.csv", infer_rows=2000).discover().field("zip").type == pa.string()


def test_the_sample_comes_from_the_first_file(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("a.csv", "id,n\n1,1\n")
    write("b.csv", "id,n\n2,2.5\n")
    source = make_source(tmp_path, path="*.csv")
    assert source.discover().field("n").type == pa.int64()
    error = read_error(source)
    assert error.location is not None and error.location.file.endswith("b.csv")


def test_a_bad_record_in_the_sample_beyond_the_first_block(tmp_path: Path) -> None:
    # A fail read raises what discover() found, before reading a row; a dlq read sets the row aside.
    write = file_writer(tmp_path)
    write("r.csv", "id,n\n" + rows(1000, "5") + "1001\n" + rows(5, "6"))
    source = make_source(tmp_path, path="r.csv", block_size=4096)
    assert source.discover().field("n").type == pa.int64()
    batches = source.read(ReadRequest("t", source.discover(), 100))
    with pytest.raises(DataError) as info:
        next(iter(batches))
    assert "expected 2 fields, found 1" in str(info.value)
    table, rejected = read_dlq(make_source(tmp_path, path="r.csv", block_size=4096))
    assert table.num_rows == 1005
    assert summary(rejected) == [(1001, 1002, "parse", "field_count", None)]


# -- values after the sample ------------------------------------------------------------------------------


def test_int_column_meets_a_decimal_after_the_sample(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("i.csv", "id,n\n" + rows(3, "10") + "4,3.5\n5,50\n")
    error = read_error(make_source(tmp_path, path="i.csv", infer_rows=3))
    assert error.location is not None
    assert (error.location.line, error.location.row, error.location.column) == (5, 4, "n")
    message = str(error)
    assert "'3.5'" in message and "int64" in message and "inferred from the first rows" in message
    table, rejected = read_dlq(make_source(tmp_path, path="i.csv", infer_rows=3))
    assert table.column("n").to_pylist() == [10, 10, 10, 50]
    assert summary(rejected) == [(4, 5, "coerce", "not_a_number", "n")]
    assert rejected[0].values == {"id": "4", "n": "3.5"}


def test_decimal_scale_growing_after_the_sample(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("d.csv", "id,d\n1,1.25\n2,2.50\n3,3.125\n4,4.75\n")
    error = read_error(make_source(tmp_path, path="d.csv", infer_rows=2))
    assert error.location is not None
    assert (error.location.line, error.location.row, error.location.column) == (4, 3, "d")
    assert "decimal(18,2)" in str(error) and "digits after the decimal point" in str(error)
    table, rejected = read_dlq(make_source(tmp_path, path="d.csv", infer_rows=2))
    assert table.column("d").to_pylist() == [Decimal("1.25"), Decimal("2.50"), Decimal("4.75")]
    assert summary(rejected) == [(3, 4, "coerce", "precision_loss", "d")]


def test_decimal_integer_part_growing_after_the_sample_fits(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("g.csv", "id,d\n1,0.5\n2,1234567890123456.5\n")
    table = read_table(make_source(tmp_path, path="g.csv", infer_rows=1))
    assert table.column("d").to_pylist() == [Decimal("0.5"), Decimal("1234567890123456.5")]


def test_date_column_meets_garbage_after_the_sample(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("g.csv", "id,d\n1,2024-01-01\n2,2024-02-29\n3,soon\n4,2023-02-29\n5,2024-03-01\n")
    error = read_error(make_source(tmp_path, path="g.csv", infer_rows=2))
    assert error.location is not None
    assert (error.location.line, error.location.row, error.location.column) == (4, 3, "d")
    assert "'soon'" in str(error) and "date" in str(error)
    table, rejected = read_dlq(make_source(tmp_path, path="g.csv", infer_rows=2))
    assert table.num_rows == 3
    assert summary(rejected) == [(3, 4, "coerce", "bad_date", "d"), (4, 5, "coerce", "bad_date", "d")]


def test_timestamp_with_offsets_meets_a_local_time_after_the_sample(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("t.csv", "id,at\n1,2024-01-01T10:00:00Z\n2,2024-01-01T10:00:00\n")
    table, rejected = read_dlq(make_source(tmp_path, path="t.csv", infer_rows=1))
    assert table.schema.field("at").type == pa.timestamp("us", "UTC")
    assert summary(rejected) == [(2, 3, "coerce", "missing_offset", "at")]


def test_the_inferred_types_read_every_sampled_value(tmp_path: Path) -> None:
    # What inference picks, the CSV reader (fail mode) and the converter (dlq mode) both accept.
    write = file_writer(tmp_path)
    write(
        "v.csv",
        "a,b,c,d,e,f\n"
        "1,.5,+1e5,2024-02-29 ,2024-01-01T10:00+0530,00:00\n"
        "-9223372036854775808,5.,-INF,2000-01-01,2024-01-01 10:00:00.123456-08,23:59:59.999999\n"
        "9223372036854775807,-0.125,NaN,1970-01-01,2024-01-01T10Z,12:00\n",
    )
    fail = read_table(make_source(tmp_path, path="v.csv"))
    dlq, rejected = read_dlq(make_source(tmp_path, path="v.csv"))
    assert rejected == []
    assert fail.schema.types == [
        pa.int64(),
        pa.decimal128(18, 3),
        pa.float64(),
        pa.date32(),
        pa.timestamp("us", "UTC"),
        pa.time64("us"),
    ]
    assert fail.drop_columns(["c"]).equals(dlq.drop_columns(["c"]))
    assert [str(value) for value in fail.column("c").to_pylist()] == ["100000.0", "-inf", "nan"]
    assert [str(value) for value in dlq.column("c").to_pylist()] == ["100000.0", "-inf", "nan"]


# -- through the CLI ------------------------------------------------------------------------------------


def run_flow(
    directory: Path, content: str, on_error: str, **options: Any
) -> subprocess.CompletedProcess[str]:
    (directory / "input.csv").write_text(content)
    flow = {
        "version": 1,
        "entities": {
            "data": {
                "source": {"type": "csv", "options": {"path": "input.csv", **options}},
                "destination": {"type": "parquet", "options": {"path": "out/data"}},
                "mode": "append",
                "on_error": on_error,
            }
        },
    }
    (directory / "flow.yml").write_text(yaml.safe_dump(flow, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    return subprocess.run(
        [sys.executable, "-m", "conduit", "run", "flow.yml", "--json"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("on_error", ["fail", "dlq"])
def test_a_value_after_the_sample_through_the_cli(tmp_path: Path, on_error: str) -> None:
    content = "id,n\n1,10\n2,20\n3,3.5\n4,40\n"
    result = run_flow(tmp_path, content, on_error, infer_rows=2)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    entity = report["entities"][0]
    if on_error == "fail":
        assert result.returncode == 1
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert "input.csv:4" in line and "row 3" in line and "column 'n'" in line
        assert entity["rows_loaded"] == 0
    else:
        assert result.returncode == 0, output
        assert (entity["rows_read"], entity["rows_loaded"], entity["rows_rejected"]) == (4, 3, 1)
        parts = (tmp_path / ".conduit" / "dlq").glob("*/data/*.jsonl")
        (record,) = [json.loads(line) for part in parts for line in part.read_text().splitlines()]
        assert (record["row"], record["line"], record["reason"], record["column"]) == (
            3,
            4,
            "not_a_number",
            "n",
        )
