"""``on_error: dlq``: bad rows are set aside as ``Rejected`` with exact row and line numbers, the read goes on."""

from __future__ import annotations

import gzip
import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from csv_helpers import file_writer, make_source, read_error, read_table

from conduit.connectors import ReadRequest, Rejected, SourceBatch
from conduit.errors import DataError
from conduit_csv import CsvSource


def read_dlq(source: CsvSource, batch_size: int = 65_536) -> tuple[pa.Table, list[SourceBatch]]:
    """Every batch of a dead-letter read, checked for the position arithmetic, and the rows as a table."""
    schema = source.discover()
    batches = list(source.read(ReadRequest("t", schema, batch_size, on_error="dlq")))
    consumed: dict[str, int] = {}
    for batch in batches:
        assert batch.data.schema.equals(schema)
        path = batch.position["file"]
        before = consumed.get(path, 0)
        assert batch.position["row"] == before + batch.data.num_rows + len(batch.rejected), batch
        for reject in batch.rejected:
            assert reject.row is not None and before < reject.row <= batch.position["row"]
        consumed[path] = batch.position["row"]
    table = pa.Table.from_batches([b.data for b in batches], schema=schema)
    return table, batches


def rejects(batches: Sequence[SourceBatch]) -> list[Rejected]:
    return [reject for batch in batches for reject in batch.rejected]


def where(reject: Rejected) -> tuple[int | None, int | None, str, str, str | None]:
    return (reject.row, reject.line, reject.rule, reject.reason, reject.column)


def summary(batches: Sequence[SourceBatch]) -> list[tuple[int | None, int | None, str, str | None]]:
    """(row, line, reason, column) of every rejected row."""
    return [(r.row, r.line, r.reason, r.column) for r in rejects(batches)]


def test_the_source_declares_it_rejects_rows() -> None:
    assert CsvSource.capabilities.rejects_rows


# -- records with the wrong number of fields -------------------------------------------------------


def test_short_and_long_rows_are_rejected_with_row_line_and_raw_text(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("r.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n9,10,11,12\n13,14,15\n")
    table, batches = read_dlq(make_source(tmp_path, path="r.csv"))
    assert table.column("a").to_pylist() == [1, 6, 13]
    short, long = rejects(batches)
    assert short == Rejected(
        row=2, line=3, rule="parse", reason="field_count", message="expected 3 fields, found 2", raw="4,5"
    )
    assert (long.row, long.line, long.message, long.raw) == (4, 5, "expected 3 fields, found 4", "9,10,11,12")
    assert long.values is None and long.column is None
    assert batches[-1].position["row"] == 5


def test_quoted_line_breaks_before_a_bad_row_make_line_and_row_differ(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("q.csv", 'a,b\n1,"two\nlines"\n2,"three\r\nphysical\nlines"\n3\n4,x\n5,"y\nz",extra\n')
    table, batches = read_dlq(make_source(tmp_path, path="q.csv"))
    assert table.column("b").to_pylist() == ["two\nlines", "three\r\nphysical\nlines", "x"]
    assert summary(batches) == [(3, 7, "field_count", None), (5, 9, "field_count", None)]
    assert rejects(batches)[1].raw == '5,"y\nz",extra'


def test_skipped_lines_blank_lines_and_no_final_newline(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("s.csv", "# exported\n# by a tool\n\na,b\n\n1,2\n\n3\n4,5\n\n\n6")
    table, batches = read_dlq(make_source(tmp_path, path="s.csv", skip_rows=2))
    assert table.column("a").to_pylist() == [1, 4]
    assert summary(batches) == [(2, 8, "field_count", None), (4, 12, "field_count", None)]
    assert batches[-1].position["row"] == 4


def test_rows_without_a_header(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("n.csv", "1,2\n3\n4,5\n")
    table, batches = read_dlq(make_source(tmp_path, path="n.csv", header=False, column_names=["a", "b"]))
    assert table.column("a").to_pylist() == [1, 4]
    assert summary(batches) == [(2, 2, "field_count", None)]


def test_a_file_of_only_bad_rows(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("b.csv", "a,b\n1\n2\n3,4,5\n")
    table, batches = read_dlq(make_source(tmp_path, path="b.csv", columns={"a": "int64", "b": "int64"}))
    assert table.num_rows == 0
    assert [r.row for r in rejects(batches)] == [1, 2, 3]
    assert batches[-1].position["row"] == 3


def test_a_header_only_file_gives_no_batch(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("h.csv", "a,b\n")
    table, batches = read_dlq(make_source(tmp_path, path="h.csv", columns={"a": "int64"}))
    assert (table.num_rows, batches) == (0, [])


def test_rejects_across_many_blocks_keep_exact_numbers(tmp_path: Path) -> None:
    # Every 7th row is short, every 11th has a bad number; a quoted line break early on shifts lines.
    lines = ["a,b", '0,"multi\nline"']
    expected: list[tuple[int, int, str]] = []
    for i in range(1, 3001):
        row, line = i + 1, i + 3
        if i % 7 == 0:
            lines.append(str(i))
            expected.append((row, line, "field_count"))
        elif i % 11 == 0:
            lines.append(f"x{i},v")
            expected.append((row, line, "not_a_number"))
        else:
            lines.append(f"{i},v")
    write = file_writer(tmp_path)
    write("m.csv", "\n".join(lines) + "\n")
    source = make_source(tmp_path, path="m.csv", block_size=1024, columns={"a": "int64"})
    table, batches = read_dlq(source, batch_size=100)
    assert len(batches) > 10
    assert [(r.row, r.line, r.reason) for r in rejects(batches)] == expected
    assert table.num_rows + len(expected) == 3001
    assert batches[-1].position["row"] == 3001
    assert table.column("a").to_pylist() == [0] + [i for i in range(1, 3001) if i % 7 and i % 11]


def test_a_block_holding_only_bad_rows(tmp_path: Path) -> None:
    body = (
        "a,b\n"
        + "".join(f"{i},x\n" for i in range(200))
        + "bad\n" * 400
        + "".join(f"{i},y\n" for i in range(200))
    )
    write = file_writer(tmp_path)
    write("k.csv", body)
    table, batches = read_dlq(make_source(tmp_path, path="k.csv", block_size=512), batch_size=50)
    assert table.num_rows == 400
    assert [r.row for r in rejects(batches)] == list(range(201, 601))
    assert [r.line for r in rejects(batches)] == list(range(202, 602))
    assert batches[-1].position["row"] == 800


def test_batches_never_span_two_files_and_positions_restart(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("in/a.csv", "id,n\n1,2\n2\n3,4\n")
    write("in/b.csv", "id,n\n5,x\n6,7\n7,8,9\n")
    table, batches = read_dlq(make_source(tmp_path, path="in/*.csv", columns={"n": "int64"}))
    assert table.column("id").to_pylist() == [1, 3, 6]
    by_file = [
        (Path(b.position["file"]).name, b.position["row"], [r.row for r in b.rejected]) for b in batches
    ]
    assert by_file == [("a.csv", 3, [2]), ("b.csv", 3, [1, 3])]
    assert [r.line for r in rejects(batches)] == [3, 2, 4]


# -- values that do not convert ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "good", "bad", "reason"),
    [
        ("int64", "12", "abc", "not_a_number"),
        ("int64", "-9223372036854775808", "9223372036854775808", "overflow"),
        ("int32", "2147483647", "2147483648", "overflow"),
        ("decimal(10,2)", "1.25", "1.255", "precision_loss"),
        ("decimal(38,0)", "9" * 38, "9" * 39, "overflow"),
        ("decimal(10,2)", "-0.5", "1,5", "not_a_number"),
        ("date", "2024-02-29", "2023-02-29", "bad_date"),
        ("date", "2024-12-31", "31/12/2024", "bad_date"),
        ("timestamp", "2024-01-01T10:00:00", "2024-01-01T25:00:00", "bad_timestamp"),
        ("timestamptz", "2024-01-01T10:00:00Z", "2024-01-01T10:00:00", "missing_offset"),
        ("bool", "true", "yes", "bad_boolean"),
        ("bool", "False", "tRuE", "bad_boolean"),
        ("float64", "1.5e300", "1e400", "overflow"),
        ("float64", "NaN", "one", "not_a_number"),
        # pyarrow's cast wraps such text around 128 bits (to 1.00 here); coerce checks it
        ("decimal(10,2)", "1", "340282366920938463463374607431768211457", "overflow"),
        ("decimal(38,2)", "1", "9" * 37 + ".99", "overflow"),
    ],
)
def test_a_value_that_does_not_convert_is_rejected_with_its_reason(
    tmp_path: Path, declared: str, good: str, bad: str, reason: str
) -> None:
    write = file_writer(tmp_path)
    write("v.csv", f'id,v\n1,{good}\n2,"{bad}"\n3,{good}\n')
    table, batches = read_dlq(make_source(tmp_path, path="v.csv", columns={"v": declared}))
    assert table.column("id").to_pylist() == [1, 3]
    (reject,) = rejects(batches)
    assert where(reject) == (2, 3, "coerce", reason, "v")
    assert reject.values == {"id": "2", "v": bad}
    assert reject.raw is None
    assert reject.message.startswith("column 'v': ")


def test_every_bad_value_of_a_column_is_found(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("f.csv", "id,f\n1,abc\n2,1e400\n3,-1e400\n4,inf\n5,1.5\n")
    table, batches = read_dlq(make_source(tmp_path, path="f.csv", columns={"f": "float64"}))
    assert table.column("f").to_pylist() == [math.inf, 1.5]
    reasons = [(r.row, r.reason) for r in rejects(batches)]
    assert reasons == [(1, "not_a_number"), (2, "overflow"), (3, "overflow")]


def test_custom_boolean_spellings(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("b.csv", "id,ok\n1,yes\n2,no\n3,true\n")
    source = make_source(
        tmp_path, path="b.csv", columns={"ok": "bool"}, true_values=["yes"], false_values=["no"]
    )
    table, batches = read_dlq(source)
    assert table.column("ok").to_pylist() == [True, False]
    assert summary(batches) == [(3, 4, "bad_boolean", "ok")]


def test_a_later_value_that_does_not_fit_an_inferred_type(tmp_path: Path) -> None:
    # The int64 type is inferred from the first 1000 rows; a fail read stops at 'AB-12' with a located error.
    body = "zip,n\n" + "".join(f"{10000 + i},{i}\n" for i in range(3000)) + "AB-12,3000\n3001,3001\n"
    write = file_writer(tmp_path)
    write("z.csv", body)
    table, batches = read_dlq(make_source(tmp_path, path="z.csv", infer_rows=1000))
    assert table.schema.field("zip").type == pa.int64()
    assert table.num_rows == 3001
    assert summary(batches) == [(3001, 3002, "not_a_number", "zip")]
    error = read_error(make_source(tmp_path, path="z.csv", infer_rows=1000))
    assert (error.location.line, error.location.row, error.location.column) == (3002, 3001, "zip")


def test_an_inferred_time_column(tmp_path: Path) -> None:
    body = "t\n" + "10:00:00\n" * 3000 + "soon\n10:30\n"
    write = file_writer(tmp_path)
    write("t.csv", body)
    table, batches = read_dlq(make_source(tmp_path, path="t.csv", infer_rows=1000))
    assert table.schema.field("t").type == pa.time32("s")
    assert table.num_rows == 3001
    assert summary(batches) == [(3001, 3002, "bad_value", "t")]


def test_the_first_failing_column_of_a_row_is_reported(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("f.csv", "a,b,c\n1,x,2024-13-01\n2,3,2024-01-01\n")
    source = make_source(tmp_path, path="f.csv", columns={"a": "int64", "b": "int64", "c": "date"})
    table, batches = read_dlq(source)
    assert table.num_rows == 1
    (reject,) = rejects(batches)
    assert (reject.column, reject.reason) == ("b", "not_a_number")
    assert reject.values == {"a": "1", "b": "x", "c": "2024-13-01"}


def test_null_and_empty_values(tmp_path: Path) -> None:
    # An empty unquoted value is NULL in any column; a quoted empty one is '' and not a number.
    write = file_writer(tmp_path)
    write("e.csv", 'a,b\n1,\n2,""\n,3\n')
    table, batches = read_dlq(make_source(tmp_path, path="e.csv", columns={"a": "int64", "b": "int64"}))
    assert table.to_pylist() == [{"a": 1, "b": None}, {"a": None, "b": 3}]
    assert summary(batches) == [(2, 3, "not_a_number", "b")]
    assert rejects(batches)[0].values == {"a": "2", "b": ""}


# -- text that does not decode -------------------------------------------------------------------------


def test_invalid_utf8_rejects_the_row_not_the_file(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("u.csv", b"id,name,n\n1,ok,1\n2,caf\xe9,2\n3,fine,3\n4,x,\xff\xfe\n")
    table, batches = read_dlq(make_source(tmp_path, path="u.csv", columns={"n": "int64"}))
    assert table.column("name").to_pylist() == ["ok", "fine"]
    first, second = rejects(batches)
    assert where(first) == (2, 3, "utf8", "invalid_utf8", "name")
    assert first.values == {"id": "2", "name": "caf\\xe9", "n": "2"}
    assert first.message == "column 'name': bytes b'caf\\xe9' are not valid UTF-8 (at byte 3)"
    assert (second.row, second.reason, second.column) == (4, "invalid_utf8", "n")


def test_invalid_utf8_in_the_first_block_and_an_inferred_column(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("u.csv", b"a,b\n1,ok\n2,caf\xe9\n3,fine\n")
    table, batches = read_dlq(make_source(tmp_path, path="u.csv"))
    assert table.schema.field("b").type == pa.string()
    assert table.column("a").to_pylist() == [1, 3]
    assert summary(batches) == [(2, 3, "invalid_utf8", "b")]


def test_a_short_row_holding_invalid_utf8(tmp_path: Path) -> None:
    # pyarrow cannot hand such a record to a handler as text; the escaped stream makes it text.
    write = file_writer(tmp_path)
    write("u.csv", b"a,b,c\n1,2,3\n4,caf\xe9\n5,6,7\n")
    table, batches = read_dlq(make_source(tmp_path, path="u.csv"))
    assert table.column("a").to_pylist() == [1, 5]
    (reject,) = rejects(batches)
    assert (reject.row, reject.line, reject.reason, reject.raw) == (2, 3, "field_count", "4,caf\\xe9")


def test_a_declared_binary_column_keeps_its_bytes(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("b.csv", b"id,blob\n1,caf\xe9\n2,\xff\xfe\x00x\n3,plain\n")
    table, batches = read_dlq(make_source(tmp_path, path="b.csv", columns={"blob": "binary"}))
    assert table.column("blob").to_pylist() == [b"caf\xe9", b"\xff\xfe\x00x", b"plain"]
    assert rejects(batches) == []
    assert read_table(make_source(tmp_path, path="b.csv", columns={"blob": "binary"})).equals(table)


def test_latin1_with_and_without_the_encoding(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("l.csv", "id,city\n1,Zürich\n2,Genève\n3,Bern\n".encode("latin-1"))
    table, batches = read_dlq(make_source(tmp_path, path="l.csv", encoding="latin-1"))
    assert table.column("city").to_pylist() == ["Zürich", "Genève", "Bern"]
    assert rejects(batches) == []
    table, batches = read_dlq(make_source(tmp_path, path="l.csv"))
    assert table.column("city").to_pylist() == ["Bern"]
    assert summary(batches) == [(1, 2, "invalid_utf8", "city"), (2, 3, "invalid_utf8", "city")]
    assert rejects(batches)[0].values == {"id": "1", "city": "Z\\xfcrich"}


def test_bytes_undefined_in_a_declared_single_byte_encoding(tmp_path: Path) -> None:
    # 0x81 is undefined in cp1252: a fail read stops there, a dlq read rejects the row.
    write = file_writer(tmp_path)
    write("w.csv", b"id,s\n1,\x93quoted\x94\n2,bad\x81\n3,ok\n")
    table, batches = read_dlq(make_source(tmp_path, path="w.csv", encoding="cp1252"))
    assert table.column("s").to_pylist() == ["\u201cquoted\u201d", "ok"]
    (reject,) = rejects(batches)
    assert where(reject) == (2, 3, "utf8", "invalid_text", "s")
    assert "cp1252" in reject.message
    with pytest.raises(DataError):
        read_table(make_source(tmp_path, path="w.csv", encoding="cp1252"))


def test_utf16_and_gzip(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    text = "id,n\n1,2\n2,zwei\n3\n4,4\n"
    write("u16.csv", text.encode("utf-16"))
    write("g.csv.gz", gzip.compress(text.encode()))
    for name, options in (("u16.csv", {"encoding": "utf-16"}), ("g.csv.gz", {})):
        table, batches = read_dlq(make_source(tmp_path, path=name, columns={"n": "int64"}, **options))
        assert table.column("id").to_pylist() == [1, 4], name
        assert summary(batches) == [(2, 3, "not_a_number", "n"), (3, 4, "field_count", None)], name


# -- what stays an error -----------------------------------------------------------------------------


def test_a_quote_open_at_the_end_of_the_file_is_still_an_error(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("q.csv", 'a,b\n1,2\n3\n4,"open\n5,6\n')
    source = make_source(tmp_path, path="q.csv")
    schema = source.discover()
    with pytest.raises(DataError) as info:
        list(source.read(ReadRequest("t", schema, 100, on_error="dlq")))
    location = info.value.location
    assert (location.line, location.row, location.column) == (4, 3, "b")  # not the short row 2
    assert "unterminated quoted value" in str(info.value)


def test_a_quote_that_swallows_the_sentinel_into_a_short_record(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("q.csv", 'a,b,c\n1,2,3\n4,"open\n5,6,7\n')
    source = make_source(tmp_path, path="q.csv")
    with pytest.raises(DataError) as info:
        list(source.read(ReadRequest("t", source.discover(), 100, on_error="dlq")))
    assert (info.value.location.line, info.value.location.row) == (3, 2)
    assert "unterminated quoted value" in str(info.value)


def test_a_row_longer_than_the_read_block_is_still_an_error(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("l.csv", "a,b\n1,2\n3\n4," + "x" * 5000 + "\n5,6\n")
    source = make_source(tmp_path, path="l.csv", block_size=1024)
    with pytest.raises(DataError) as info:
        list(source.read(ReadRequest("t", source.discover(), 100, on_error="dlq")))
    assert (info.value.location.line, info.value.location.row) == (4, 3)
    assert "longer than the read block" in str(info.value)


# -- the fail mode is unchanged ----------------------------------------------------------------------


def test_a_fail_read_of_a_ragged_first_block_raises_what_discover_found(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("r.csv", "a,b\n1,2\n3\n4,5\n")
    source = make_source(tmp_path, path="r.csv")
    schema = source.discover()
    assert schema.names == ["a", "b"] and schema.field("b").type == pa.int64()
    with pytest.raises(DataError) as info:
        list(source.read(ReadRequest("t", schema, 100)))
    assert (info.value.location.line, info.value.location.row) == (3, 2)
    assert "expected 2 fields, found 1" in str(info.value)


def test_a_fail_read_of_a_bad_declared_value_in_the_first_block(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("d.csv", "a,b\n1,2\n3,x\n")
    error = read_error(make_source(tmp_path, path="d.csv", columns={"b": "int64"}))
    assert (error.location.line, error.location.row, error.location.column) == (3, 2, "b")
    assert "value 'x' in column 'b' is not a valid int64" in str(error)


VALID_FILES = {
    "types": (
        "i,f,d,day,ts,tz,ok,s\n"
        "1,1.5,1.25,2024-01-02,2024-01-02 10:00:00,2024-01-02T10:00:00+02:00,true,x\n"
        '2,NaN,-3,2024-02-29,2024-01-02T10:00,2024-01-02T10:00:00Z,False,"a, ""quoted"" one"\n'
        ",inf,,,,,,\n"
        '4,-Infinity,0.5,2024-03-01,2024-01-02,2024-01-02 10:00Z,0,""\n'
    ),
    "whitespace": "i,f,d,day,t\n 1 ,\t2.5 , 3.5,  2024-01-02 ,\t10:00\n2,3,4,2024-01-03,11:00:00\n",
    "quoted_numbers": 'i,f\n"1","2.5"\n"3","4"\n',
    "times": "t,u\n10:00,10:00:00.5\n23:59:59,x\n",
    "unicode": "k,v\n1,Zürich ✓\n2,日本語\n3,\U0001f600\n",
    "crlf": "a,b\r\n1,2\r\n3,4\n5,6\r7,8\r\n",
    "bom": "\ufeffa,b\n1,2\n",
    "blank_lines": "a,b\n\n1,2\n\n\n3,4\n\n",
    "one_column": "a\n1\n\n2\n",
}


def _comparable(table: pa.Table) -> list[dict[str, object]]:
    """Rows with NaN as a string (NaN is not equal to itself)."""
    return [
        {
            key: "nan" if isinstance(value, float) and math.isnan(value) else value
            for key, value in row.items()
        }
        for row in table.to_pylist()
    ]


@pytest.mark.parametrize("name", sorted(VALID_FILES))
def test_valid_files_read_the_same_in_both_modes(tmp_path: Path, name: str) -> None:
    write = file_writer(tmp_path)
    write("v.csv", VALID_FILES[name])
    columns = {"d": "decimal(10,2)", "tz": "timestamptz"} if name == "types" else None
    if name == "whitespace":
        columns = {"d": "decimal(10,2)", "day": "date"}
    options = {"columns": columns} if columns else {}
    expected = read_table(make_source(tmp_path, path="v.csv", **options))
    table, batches = read_dlq(make_source(tmp_path, path="v.csv", **options))
    assert rejects(batches) == []
    assert table.schema.equals(expected.schema)
    assert _comparable(table) == _comparable(expected)


def test_decimal_values_survive_exactly(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    big = "12345678901234567890123456789.123456789"
    write("d.csv", f"d\n{big}\n1e2\n")
    table, _ = read_dlq(make_source(tmp_path, path="d.csv", columns={"d": "decimal(38,9)"}))
    assert table.column("d").to_pylist() == [Decimal(big), Decimal("100")]
