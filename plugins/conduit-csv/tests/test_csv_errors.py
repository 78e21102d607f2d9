"""Bad input: one readable DataError that names the file, line, row and column, never a pyarrow trace."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from csv_helpers import file_writer, make_source, read_error, read_table

from conduit.connectors import ReadRequest
from conduit.errors import ConnectorError, DataError


def _rows(count: int, start: int = 1) -> str:
    return "".join(f"{i},name {i}\n" for i in range(start, start + count))


# -- ragged rows -------------------------------------------------------------------------------


def test_ragged_row_too_few_fields(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    path = write("r.csv", "a,b\n1,2\n3,4\n5,6\n7\n8,9\n")
    error = read_error(make_source(tmp_path, path="r.csv"))
    assert error.location.file == str(path)
    assert error.location.line == 5
    assert error.location.row == 4
    assert error.location.column is None
    assert "expected 2 fields, found 1" in str(error)
    assert str(error).startswith(f"{path}:5, row 4: ")


def test_ragged_row_too_many_fields(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("r.csv", "a,b\n1,2\n3,4,5\n")
    error = read_error(make_source(tmp_path, path="r.csv"))
    assert (error.location.line, error.location.row) == (3, 2)
    assert "expected 2 fields, found 3" in str(error)


def test_ragged_row_in_a_later_block_counts_lines_across_quoted_newlines(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    # A quoted newline early on makes physical lines and rows differ by one.
    body = 'a,b\n0,"multi\nline"\n' + _rows(5000) + "bad\n" + _rows(10, 6000)
    write("r.csv", body)
    source = make_source(tmp_path, path="r.csv", block_size=4096)
    error = read_error(source)
    assert error.location.row == 5002  # row 1 is the multi-line one, then 5000 rows, then this
    assert error.location.line == 5004  # header, two lines for row 1, 5000 lines, then this
    assert "expected 2 fields, found 1" in str(error)


def test_ragged_row_after_skipped_lines_and_blank_lines(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("r.csv", "# exported\n# by a tool\n\na,b\n\n1,2\n\n3\n")
    error = read_error(make_source(tmp_path, path="r.csv", skip_rows=2))
    assert (error.location.line, error.location.row) == (8, 2)


def test_ragged_row_without_header(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("r.csv", "1,2\n3,4\n5\n")
    error = read_error(make_source(tmp_path, path="r.csv", header=False, column_names=["a", "b"]))
    assert (error.location.line, error.location.row) == (3, 3)


# -- quotes ------------------------------------------------------------------------------------


def test_unterminated_quote_at_the_end(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("q.csv", 'a,b\n1,2\n3,"x\n4,5\n')
    error = read_error(make_source(tmp_path, path="q.csv"))
    assert (error.location.line, error.location.row, error.location.column) == (3, 2, "b")
    assert "unterminated quoted value" in str(error)


def test_unterminated_quote_in_a_single_column_file(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("q.csv", 'a\n1\n"2\n3\n')
    error = read_error(make_source(tmp_path, path="q.csv"))
    assert (error.location.line, error.location.row, error.location.column) == (3, 2, "a")


def test_unterminated_quote_with_more_than_a_block_after_it(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("q.csv", "a,b\n" + _rows(100) + '101,"oops\n' + _rows(5000, 102))
    error = read_error(make_source(tmp_path, path="q.csv", block_size=16_384))
    assert (error.location.line, error.location.row) == (102, 101)
    assert "quote" in str(error)


def test_unterminated_quote_in_an_int_column(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("q.csv", 'a,b\n1,x\n"2,y\n3,z\n')
    error = read_error(make_source(tmp_path, path="q.csv", columns={"a": "int64"}))
    assert (error.location.line, error.location.row, error.location.column) == (3, 2, "a")
    assert "unterminated quoted value" in str(error)


def test_quoted_newline_with_newlines_in_values_false(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    rows = "".join(f'{i},"line one\nline two"\n' for i in range(1, 2000))
    write("n.csv", "a,b\n" + rows)
    error = read_error(make_source(tmp_path, path="n.csv", newlines_in_values=False, block_size=4096))
    assert (error.location.line, error.location.row) == (2, 1)
    assert "newlines_in_values" in str(error)


# -- encodings ---------------------------------------------------------------------------------


def test_invalid_utf8_in_the_first_block_fails_the_read(tmp_path: Path) -> None:
    # discover() does not know the entity's on_error, so it infers the column as string; a fail
    # read then raises the error discover found, before reading a row.
    write = file_writer(tmp_path)
    write("u.csv", b"a,b\n1,ok\n2,caf\xe9\n3,fine\n")
    source = make_source(tmp_path, path="u.csv")
    assert source.discover().field("b").type == pa.string()
    with pytest.raises(DataError) as info:
        list(source.read(ReadRequest(entity="t", schema=source.discover(), batch_size=100)))
    location = info.value.location
    assert (location.line, location.row, location.column) == (3, 2, "b")
    assert "not valid utf-8" in str(info.value)


def test_invalid_utf8_in_a_declared_string_column(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("u.csv", b"a,b\n1,ok\n2,x\n3,caf\xe9\n")
    error = read_error(make_source(tmp_path, path="u.csv", columns={"b": "string"}))
    assert (error.location.line, error.location.row, error.location.column) == (4, 3, "b")


def test_invalid_utf8_in_a_later_block(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("u.csv", b"a,b\n" + _rows(3000).encode() + b"3001,caf\xe9\n")
    error = read_error(make_source(tmp_path, path="u.csv", block_size=4096))
    assert (error.location.line, error.location.row, error.location.column) == (3002, 3001, "b")


def test_invalid_bytes_in_a_declared_single_byte_encoding(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    # 0x81 is undefined in cp1252.
    write("c.csv", b"a,b\n1,\x80uro\n2,x\x81y\n")
    error = read_error(make_source(tmp_path, path="c.csv", encoding="cp1252"))
    assert (error.location.line, error.location.row, error.location.column) == (3, 2, "b")
    assert "cp1252" in str(error)


def test_invalid_utf16(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    data = "a,b\n1,x\n".encode("utf-16") + "2,".encode("utf-16-le") + b"\x00\xdc" + "\n".encode("utf-16-le")
    write("w.csv", data)
    error = read_error(make_source(tmp_path, path="w.csv", encoding="utf-16"))
    assert (error.location.line, error.location.row, error.location.column) == (3, 2, "b")


def test_invalid_bytes_in_the_header(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("h.csv", b"a,caf\xe9\n1,2\n")
    with pytest.raises(DataError) as info:
        make_source(tmp_path, path="h.csv").discover()
    assert info.value.location.line == 1
    assert "header" in str(info.value)


# -- conversion --------------------------------------------------------------------------------


def test_value_that_does_not_convert_to_a_declared_type(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("v.csv", "id,amount\n1,10\n2,20\n3,abc\n4,40\n")
    error = read_error(make_source(tmp_path, path="v.csv", columns={"amount": "int64"}))
    assert (error.location.line, error.location.row, error.location.column) == (4, 3, "amount")
    message = str(error)
    assert "'abc'" in message and "'amount'" in message and "int64" in message
    assert "inferred" not in message


def test_value_that_does_not_convert_to_an_inferred_type_suggests_declaring(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("z.csv", "id,zip\n" + "".join(f"{i},{10000 + i}\n" for i in range(1, 3000)) + "3000,A1B 2C3\n")
    source = make_source(tmp_path, path="z.csv", infer_rows=1000)
    error = read_error(source)
    assert (error.location.line, error.location.row, error.location.column) == (3001, 3000, "zip")
    message = str(error)
    assert "'A1B 2C3'" in message and "int64" in message
    assert "inferred" in message and "columns:" in message


def test_decimal_that_would_lose_digits(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("d.csv", "a\n1.5\n2.1234567891\n")
    error = read_error(make_source(tmp_path, path="d.csv", columns={"a": "decimal(38,9)"}))
    assert (error.location.line, error.location.row, error.location.column) == (3, 2, "a")
    assert "decimal(38,9)" in str(error) and "'2.1234567891'" in str(error)


def test_timestamp_without_offset_for_a_utc_column(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("t.csv", "a\n2024-01-01 00:00:00Z\n2024-01-02 00:00:00\n")
    error = read_error(make_source(tmp_path, path="t.csv", columns={"a": "timestamptz"}))
    assert (error.location.line, error.location.row) == (3, 2)
    assert "zone offset" in str(error)


def test_quoted_empty_string_is_not_null_for_an_int_column(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("e.csv", 'a,b\n1,\n2,""\n')
    error = read_error(make_source(tmp_path, path="e.csv", columns={"b": "int64"}))
    assert (error.location.line, error.location.row, error.location.column) == (3, 2, "b")


def test_conversion_error_in_a_second_file_names_that_file(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("p/1.csv", "a\n1\n2\n")
    second = write("p/2.csv", "a\n3\nfour\n")
    error = read_error(make_source(tmp_path, path="p/*.csv", columns={"a": "int64"}))
    assert error.location.file == str(second)
    assert (error.location.line, error.location.row) == (3, 2)


# -- headers and files -------------------------------------------------------------------------


def test_duplicate_header_names(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("h.csv", "id,name,id\n1,x,2\n")
    with pytest.raises(DataError) as info:
        make_source(tmp_path, path="h.csv").discover()
    assert info.value.location.line == 1
    assert info.value.location.column == "id"
    assert "duplicate column name" in str(info.value)


def test_duplicate_header_names_can_be_renamed(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("h.csv", "id,name,id\n1,x,2\n")
    table = read_table(make_source(tmp_path, path="h.csv", column_names=["id", "name", "id2"]))
    assert table.to_pylist() == [{"id": 1, "name": "x", "id2": 2}]


def test_duplicate_header_after_skipped_rows_names_the_header_line(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("h.csv", "junk\nmore junk\na,a\n1,2\n")
    with pytest.raises(DataError) as info:
        make_source(tmp_path, path="h.csv", skip_rows=2).discover()
    assert info.value.location.line == 3


def test_empty_header_name(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("h.csv", "a,,c\n1,2,3\n")
    with pytest.raises(DataError) as info:
        make_source(tmp_path, path="h.csv").discover()
    assert info.value.location.line == 1
    assert "empty column name (column 2)" in str(info.value)


def test_header_differs_between_glob_files_names_both(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    first = write("g/a.csv", "id,name\n1,x\n")
    second = write("g/b.csv", "id,nom\n2,y\n")
    error = read_error(make_source(tmp_path, path="g/*.csv"))
    assert error.location.file == str(second)
    assert error.location.line == 1
    assert str(first) in str(error) and str(second) in str(error)
    assert "'name'" in str(error) and "'nom'" in str(error)


def test_header_in_another_order_between_glob_files(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("g/a.csv", "id,name\n1,x\n")
    write("g/b.csv", "name,id\ny,2\n")
    error = read_error(make_source(tmp_path, path="g/*.csv"))
    assert "another order" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    source = make_source(tmp_path, path="missing.csv")
    with pytest.raises(ConnectorError, match="file not found: .*missing.csv"):
        source.check()
    with pytest.raises(ConnectorError):
        source.discover()


def test_glob_without_matches_names_the_pattern(tmp_path: Path) -> None:
    source = make_source(tmp_path, path="nowhere/*.csv")
    with pytest.raises(ConnectorError, match=r"no file matches .*nowhere/\*\.csv"):
        source.check()


def test_unreadable_file(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    path = write("locked.csv", "a\n1\n")
    path.chmod(0)
    try:
        with open(path, "rb"):
            pytest.skip("running as a user who can read anything (root)")
    except PermissionError:
        pass
    try:
        with pytest.raises(ConnectorError, match="cannot read"):
            make_source(tmp_path, path="locked.csv").check()
    finally:
        path.chmod(0o644)


def test_empty_file_without_column_names(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    path = write("empty.csv", b"")
    with pytest.raises(DataError) as info:
        make_source(tmp_path, path="empty.csv").discover()
    assert info.value.location.file == str(path)
    assert "file is empty: no header row and no column names declared" in str(info.value)


def test_empty_file_with_column_names_has_no_rows(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("empty.csv", b"")
    table = read_table(make_source(tmp_path, path="empty.csv", header=False, column_names=["a", "b"]))
    assert table.column_names == ["a", "b"] and table.num_rows == 0


def test_column_names_count_must_match_the_header(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("h.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="column_names lists 2 names but the header row has 3"):
        make_source(tmp_path, path="h.csv", column_names=["x", "y"]).discover()


def test_declared_column_that_does_not_exist(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("h.csv", "a,b\n1,2\n")
    with pytest.raises(ConnectorError, match="'amout'.*its columns: a, b"):
        make_source(tmp_path, path="h.csv", columns={"amout": "int64"}).discover()


def test_corrupt_gzip(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("bad.csv.gz", b"\x1f\x8b\x08\x00not really gzip at all")
    with pytest.raises(DataError) as info:
        make_source(tmp_path, path="bad.csv.gz").discover()
    assert "\n" not in str(info.value)


def test_header_mismatch_is_found_before_any_row_is_read(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("g/a.csv", "id,name\n1,x\n")
    write("g/b.csv", "id,name\n2,y\n")
    write("g/c.csv", "id\n3\n")
    source = make_source(tmp_path, path="g/*.csv")
    schema = source.discover()
    batches = source.read(ReadRequest("t", schema, 100))
    with pytest.raises(DataError, match="missing 'name'"):
        next(batches)


def test_empty_file_in_a_glob_without_column_names(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("g/a.csv", "id\n1\n")
    empty = write("g/b.csv", "")
    error = read_error(make_source(tmp_path, path="g/*.csv"))
    assert error.location.file == str(empty)
    assert "file is empty" in str(error)


def test_row_longer_than_the_block_size(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    long_value = "x" * 5000
    write("l.csv", "a,b\n" + _rows(200) + f'201,"{long_value}"\n' + _rows(10, 202))
    error = read_error(make_source(tmp_path, path="l.csv", block_size=1024))
    assert (error.location.line, error.location.row) == (202, 201)
    assert "block_size" in str(error)
