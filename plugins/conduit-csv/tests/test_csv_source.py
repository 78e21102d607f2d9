"""The csv source's options and reading behaviour, on real files."""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Callable, Generator
from pathlib import Path

import pyarrow as pa
import pytest
from csv_helpers import file_writer, make_source, read_batches, read_table, zstd_compress

from conduit.connectors import ReadRequest
from conduit.errors import ConnectorError
from conduit_csv.source import MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, CsvSource, estimate_block_size


def test_capabilities() -> None:
    assert CsvSource.capabilities.typed is False
    assert CsvSource.capabilities.declared_columns is True


def test_reads_header_and_infers_types(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("a.csv", "id,name,price,ok,day\n1,x,1.5,true,2024-02-29\n2,y,2,false,2024-03-01\n")
    source = make_source(tmp_path, path="a.csv")
    source.check()
    table = read_table(source)
    assert table.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("name", pa.string()),
            ("price", pa.decimal128(18, 1)),  # 1.5 and 2: exact, one decimal place
            ("ok", pa.bool_()),
            ("day", pa.date32()),
        ]
    )
    assert table.column("name").to_pylist() == ["x", "y"]


def test_relative_path_resolves_against_the_config_directory(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("sub/a.csv", "a\n1\n")
    source = make_source(tmp_path, path="sub/a.csv")
    assert source.options.path == str(tmp_path / "sub" / "a.csv")


def test_header_only_file_has_columns_and_no_rows(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("h.csv", "id,name\n")
    source = make_source(tmp_path, path="h.csv")
    schema = source.discover()
    assert schema == pa.schema([("id", pa.string()), ("name", pa.string())])
    table = read_table(source)
    assert table.num_rows == 0 and table.column_names == ["id", "name"]


def test_header_only_file_without_trailing_newline_keeps_declared_types(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("h.csv", "id,name")
    table = read_table(make_source(tmp_path, path="h.csv", columns={"id": "int64"}))
    assert table.schema == pa.schema([("id", pa.int64()), ("name", pa.string())])
    assert table.num_rows == 0


def test_all_empty_column_is_a_string(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("e.csv", "a,b\n1,\n2,\n")
    table = read_table(make_source(tmp_path, path="e.csv"))
    assert table.schema.field("b").type == pa.string()
    assert table.column("b").to_pylist() == [None, None]


def test_utf8_bom_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("b.csv", b"\xef\xbb\xbfid,name\n1,x\n")
    table = read_table(make_source(tmp_path, path="b.csv"))
    assert table.column_names == ["id", "name"]
    assert table.to_pylist() == [{"id": 1, "name": "x"}]


# -- header, column_names, columns -----------------------------------------------------------------


def test_no_header_with_column_names(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("n.csv", "1,x\n2,y\n")
    table = read_table(make_source(tmp_path, path="n.csv", header=False, column_names=["id", "name"]))
    assert table.to_pylist() == [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}]


def test_no_header_with_a_bom(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("n.csv", b"\xef\xbb\xbfab,1\n")
    table = read_table(make_source(tmp_path, path="n.csv", header=False, column_names=["s", "i"]))
    assert table.to_pylist() == [{"s": "ab", "i": 1}]


def test_column_names_rename_the_header(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("r.csv", "ID,Full Name\n1,x\n")
    table = read_table(make_source(tmp_path, path="r.csv", column_names=["id", "name"]))
    assert table.column_names == ["id", "name"]
    assert table.num_rows == 1


def test_declared_columns_override_inference(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("d.csv", "zip,amount,when\n01234,12.50,2024-01-01T10:00:00Z\n")
    source = make_source(
        tmp_path,
        path="d.csv",
        columns={"zip": "string", "amount": "decimal(10,2)", "when": "timestamp[ms, UTC]"},
    )
    table = read_table(source)
    assert table.schema == pa.schema(
        [("zip", pa.string()), ("amount", pa.decimal128(10, 2)), ("when", pa.timestamp("ms", "UTC"))]
    )
    assert table.column("zip").to_pylist() == ["01234"]


def test_declared_columns_with_renamed_header(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("d.csv", "A,B\n1,2\n")
    source = make_source(tmp_path, path="d.csv", column_names=["a", "b"], columns={"b": "int8"})
    assert source.discover() == pa.schema([("a", pa.int64()), ("b", pa.int8())])


def test_read_a_subset_of_columns_in_another_order(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("s.csv", "a,b,c\n1,2,3\n")
    source = make_source(tmp_path, path="s.csv")
    schema = pa.schema([("c", pa.int64()), ("a", pa.string())])
    batches = list(source.read(ReadRequest("t", schema, 100)))
    assert batches[0].data.schema.equals(schema)
    assert batches[0].data.to_pylist() == [{"c": 3, "a": "1"}]


def test_read_with_a_column_the_file_lacks(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("s.csv", "a\n1\n")
    source = make_source(tmp_path, path="s.csv")
    with pytest.raises(ConnectorError, match="no column 'zz'"):
        list(source.read(ReadRequest("t", pa.schema([("zz", pa.int64())]), 100)))


# -- dialect -----------------------------------------------------------------------------------


def test_quoted_newlines_quotes_and_delimiters(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("q.csv", 'a,b\n1,"line one\nline two"\n2,"say ""hi"", then go"\n3,"x\r\ny"\n')
    table = read_table(make_source(tmp_path, path="q.csv"))
    assert table.column("b").to_pylist() == ["line one\nline two", 'say "hi", then go', "x\r\ny"]


def test_crlf_line_endings(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("c.csv", "a,b\r\n1,x\r\n2,y\r\n")
    assert read_table(make_source(tmp_path, path="c.csv")).to_pylist() == [
        {"a": 1, "b": "x"},
        {"a": 2, "b": "y"},
    ]


@pytest.mark.parametrize("delimiter", ["\t", "\\t"])
def test_tab_delimiter(tmp_path: Path, delimiter: str) -> None:
    write = file_writer(tmp_path)
    write("t.tsv", "a\tb\n1\tx,y\n")
    table = read_table(make_source(tmp_path, path="t.tsv", delimiter=delimiter))
    assert table.to_pylist() == [{"a": 1, "b": "x,y"}]


@pytest.mark.parametrize("delimiter", [";", "|", ":", "-", "e"])
def test_other_delimiters(tmp_path: Path, delimiter: str) -> None:
    write = file_writer(tmp_path)
    write("s.csv", f"a{delimiter}b\n1{delimiter}2,5\n")
    table = read_table(make_source(tmp_path, path="s.csv", delimiter=delimiter))
    assert table.to_pylist() == [{"a": 1, "b": "2,5"}]


def test_quote_char_none_disables_quoting(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("q.csv", 'a,b\n1,"x"\n2,"y\n')
    table = read_table(make_source(tmp_path, path="q.csv", quote_char=None))
    assert table.column("b").to_pylist() == ['"x"', '"y']


def test_other_quote_char(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("q.csv", "a,b\n1,'x, y'\n")
    table = read_table(make_source(tmp_path, path="q.csv", quote_char="'"))
    assert table.column("b").to_pylist() == ["x, y"]


def test_escape_char(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("e.csv", 'a,b\n1,"say \\"hi\\""\n2,x\\,y\n')
    table = read_table(make_source(tmp_path, path="e.csv", escape_char="\\", double_quote=False))
    assert table.column("b").to_pylist() == ['say "hi"', "x,y"]


def test_double_quote_false_without_escape(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("d.csv", 'a,b\n1,"x""y"\n')
    default = read_table(make_source(tmp_path, path="d.csv"))
    assert default.column("b").to_pylist() == ['x"y']


def test_skip_rows_before_the_header(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("s.csv", "report generated 2024-01-01\n\nid,name\n1,x\n")
    table = read_table(make_source(tmp_path, path="s.csv", skip_rows=1))
    assert table.to_pylist() == [{"id": 1, "name": "x"}]


def test_skip_rows_without_header(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("s.csv", "junk\n1,x\n")
    table = read_table(
        make_source(tmp_path, path="s.csv", skip_rows=1, header=False, column_names=["i", "s"])
    )
    assert table.to_pylist() == [{"i": 1, "s": "x"}]


def test_quoted_newline_in_the_header(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("h.csv", 'id,"long\nname"\n1,x\n')
    table = read_table(make_source(tmp_path, path="h.csv"))
    assert table.column_names == ["id", "long\nname"]
    assert table.num_rows == 1


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("b.csv", "a,b\n\n1,x\n\n\n2,y\n\n")
    assert read_table(make_source(tmp_path, path="b.csv")).num_rows == 2


def test_newlines_in_values_false_still_reads_plain_files(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("p.csv", "a,b\n1,x\n2,y\n")
    assert read_table(make_source(tmp_path, path="p.csv", newlines_in_values=False)).num_rows == 2


# -- nulls and booleans ----------------------------------------------------------------------


def test_empty_unquoted_is_null_and_quoted_empty_is_the_empty_string(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("n.csv", 'a,b\n1,\n2,""\n3,x\n')
    table = read_table(make_source(tmp_path, path="n.csv"))
    assert table.column("b").to_pylist() == [None, "", "x"]


def test_na_is_namibia_not_null(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("c.csv", "country,v\nNA,1\nnull,2\nN/A,3\nNaN,4\n")
    table = read_table(make_source(tmp_path, path="c.csv"))
    assert table.column("country").to_pylist() == ["NA", "null", "N/A", "NaN"]


def test_custom_null_values(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("c.csv", 'a,b\n1,NULL\n2,\n3,"NULL"\n')
    table = read_table(make_source(tmp_path, path="c.csv", null_values=["NULL"]))
    assert table.column("b").to_pylist() == [None, "", "NULL"]


def test_custom_null_values_apply_to_typed_columns(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("c.csv", "a,b\n1,-\n2,5\n")
    table = read_table(make_source(tmp_path, path="c.csv", null_values=["-"], columns={"b": "int64"}))
    assert table.column("b").to_pylist() == [None, 5]


def test_nan_in_a_float_column_is_nan_not_null(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("f.csv", "x\nnan\n1.5\n\n")
    values = read_table(make_source(tmp_path, path="f.csv", columns={"x": "float64"})).column("x").to_pylist()
    assert values[0] != values[0] and values[1] == 1.5


def test_true_and_false_values(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("b.csv", "a,b\n1,yes\n2,no\n3,\n")
    source = make_source(tmp_path, path="b.csv", true_values=["yes"], false_values=["no"])
    table = read_table(source)
    assert table.schema.field("b").type == pa.bool_()
    assert table.column("b").to_pylist() == [True, False, None]


# -- compression, encodings, globs -----------------------------------------------------------


CONTENT = 'id,name\n1,zoë\n2,"a, b"\n'


@pytest.mark.parametrize(
    ("name", "compress"),
    [("d.csv.gz", gzip.compress), ("d.csv.bz2", bz2.compress), ("d.csv.zst", zstd_compress)],
)
def test_compression_by_extension(tmp_path: Path, name: str, compress: Callable[[bytes], bytes]) -> None:
    write = file_writer(tmp_path)
    write(name, compress(CONTENT.encode()))
    table = read_table(make_source(tmp_path, path=name))
    assert table.to_pylist() == [{"id": 1, "name": "zoë"}, {"id": 2, "name": "a, b"}]


def test_explicit_compression_overrides_the_extension(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("d.data", gzip.compress(CONTENT.encode()))
    table = read_table(make_source(tmp_path, path="d.data", compression="gzip"))
    assert table.num_rows == 2


def test_compression_none_reads_raw_bytes(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("plain.csv.gz", CONTENT)
    assert read_table(make_source(tmp_path, path="plain.csv.gz", compression="none")).num_rows == 2


def test_gzip_latin1(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("l.csv.gz", gzip.compress(CONTENT.encode("latin-1")))
    for encoding in ("latin-1", "auto"):
        table = read_table(make_source(tmp_path, path="l.csv.gz", encoding=encoding))
        assert table.column("name").to_pylist() == ["zoë", "a, b"]


def test_glob_reads_files_in_sorted_order_and_never_mixes_them(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("g/b.csv", "id,name\n3,c\n4,d\n")
    write("g/a.csv", "id,name\n1,a\n2,b\n")
    write("g/c.csv", "id,name\n")
    write("g/notes.txt", "not csv")
    source = make_source(tmp_path, path="g/*.csv")
    _, batches = read_batches(source)
    assert [item.position for item in batches] == [
        {"file": str(tmp_path / "g" / "a.csv"), "row": 2},
        {"file": str(tmp_path / "g" / "b.csv"), "row": 2},
    ]
    ids = [i for item in batches for i in item.data.column("id").to_pylist()]
    assert ids == [1, 2, 3, 4]


def test_recursive_glob(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("r/x/1.csv", "a\n1\n")
    write("r/y/z/2.csv", "a\n2\n")
    assert read_table(make_source(tmp_path, path="r/**/*.csv")).column("a").to_pylist() == [1, 2]


def test_glob_files_in_different_encodings_with_auto(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("m/1.csv", CONTENT.encode("utf-8"))
    write("m/2.csv", CONTENT.encode("utf-16"))
    write("m/3.csv", CONTENT.encode("latin-1"))
    table = read_table(make_source(tmp_path, path="m/*.csv", encoding="auto"))
    assert table.column("name").to_pylist() == ["zoë", "a, b"] * 3


# -- blocks, batches, positions ---------------------------------------------------------------


def test_small_blocks_give_many_batches_with_positions(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("big.csv", "id,text\n" + "".join(f'{i},"row {i}, with\nnewline"\n' for i in range(1, 5001)))
    source = make_source(tmp_path, path="big.csv", block_size=8192)
    _, batches = read_batches(source)
    assert len(batches) > 5
    rows = 0
    for item in batches:
        rows += item.data.num_rows
        assert item.position == {"file": str(tmp_path / "big.csv"), "row": rows}
    table = pa.Table.from_batches([item.data for item in batches])
    assert table.column("id").to_pylist() == list(range(1, 5001))
    assert table.column("text")[4999].as_py() == "row 5000, with\nnewline"


def test_block_size_follows_batch_size(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("rows.csv", "id,text\n" + "".join(f"{i},{'x' * 90}\n" for i in range(20_000)))
    source = make_source(tmp_path, path="rows.csv")
    _, batches = read_batches(source, batch_size=5_000)
    sizes = [item.data.num_rows for item in batches]
    assert sum(sizes) == 20_000
    assert len(sizes) >= 3
    assert max(sizes) < 10_000


def test_estimated_block_size_is_clamped(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    from conduit_csv.csvfile import CsvFile

    write("tiny.csv", "a\n1\n2\n")
    source = make_source(tmp_path, path="tiny.csv")
    file = CsvFile(source.options.path, source.options)
    assert estimate_block_size(file, 1) == MIN_BLOCK_SIZE
    assert estimate_block_size(file, 10_000_000_000) == MAX_BLOCK_SIZE


def test_close_is_safe_after_a_partial_read(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("p.csv", "a\n" + "".join(f"{i}\n" for i in range(10_000)))
    source = make_source(tmp_path, path="p.csv", block_size=4096)
    schema = source.discover()
    reader = source.read(ReadRequest("t", schema, 100))
    assert isinstance(reader, Generator)
    next(reader)
    source.close()
    reader.close()
    source.close()
