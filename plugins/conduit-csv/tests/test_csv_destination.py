"""The csv destination: atomic replace, options, and what pyarrow writes."""

from __future__ import annotations

import bz2
import gzip
import os
from pathlib import Path

import pyarrow as pa
import pytest
from csv_helpers import make_destination, write_table, zstd_decompress

from conduit.connectors import WriteRequest
from conduit.errors import ConnectorError, DataError
from conduit_csv.destination import CsvDestination

TABLE = pa.table({"id": pa.array([1, 2], pa.int64()), "name": pa.array(["a", None], pa.string())})


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_capabilities() -> None:
    capabilities = CsvDestination.capabilities
    assert capabilities.write_modes == frozenset({"replace"})
    assert capabilities.atomic is True
    assert capabilities.preserves_types is False


def test_writes_header_and_rows(tmp_path: Path) -> None:
    write_table(make_destination(tmp_path, path="out.csv"), TABLE)
    assert (tmp_path / "out.csv").read_text() == '"id","name"\n1,"a"\n2,\n'
    assert _files(tmp_path) == ["out.csv"]


def test_empty_string_is_quoted_and_null_is_empty(tmp_path: Path) -> None:
    table = pa.table({"s": pa.array(["", None, "x"], pa.string())})
    write_table(make_destination(tmp_path, path="out.csv"), table)
    assert (tmp_path / "out.csv").read_text() == '"s"\n""\n\n"x"\n'


def test_header_even_for_zero_rows(tmp_path: Path) -> None:
    destination = make_destination(tmp_path, path="empty.csv")
    with destination.open(WriteRequest("t", TABLE.schema, "replace", "r")) as session:
        session.commit({})
    assert (tmp_path / "empty.csv").read_text() == '"id","name"\n'


def test_options_header_delimiter_quoting(tmp_path: Path) -> None:
    write_table(make_destination(tmp_path, path="a.tsv", header=False, delimiter="\t"), TABLE)
    assert (tmp_path / "a.tsv").read_text() == '1\t"a"\n2\t\n'
    write_table(make_destination(tmp_path, path="b.csv", quoting="all_valid"), TABLE)
    assert (tmp_path / "b.csv").read_text() == '"id","name"\n"1","a"\n"2",\n'
    write_table(make_destination(tmp_path, path="c.csv", quoting="none"), TABLE)
    assert (tmp_path / "c.csv").read_text() == '"id","name"\n1,a\n2,\n'  # pyarrow always quotes the header


def test_quoting_none_refuses_values_that_need_quotes(tmp_path: Path) -> None:
    destination = make_destination(tmp_path, path="c.csv", quoting="none")
    table = pa.table({"s": ["a,b"]})
    with pytest.raises(DataError, match="structural characters"):
        write_table(destination, table)
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "decompress"),
    [("o.csv.gz", gzip.decompress), ("o.csv.bz2", bz2.decompress), ("o.csv.zst", zstd_decompress)],
)
def test_compression_by_suffix(tmp_path: Path, name: str, decompress: object) -> None:
    write_table(make_destination(tmp_path, path=name), TABLE)
    raw = (tmp_path / name).read_bytes()
    assert callable(decompress)
    assert decompress(raw) == b'"id","name"\n1,"a"\n2,\n'


def test_creates_parent_directories(tmp_path: Path) -> None:
    destination = make_destination(tmp_path, path="a/b/c/out.csv")
    destination.check()
    assert not (tmp_path / "a").exists()  # check does not create anything
    write_table(destination, TABLE)
    assert (tmp_path / "a" / "b" / "c" / "out.csv").exists()


# -- atomicity -------------------------------------------------------------------------------------


def test_temp_file_beside_the_target_until_commit(tmp_path: Path) -> None:
    destination = make_destination(tmp_path, path="out.csv")
    session = destination.open(WriteRequest("t", TABLE.schema, "replace", "run/42"))
    session.write(TABLE.to_batches()[0])
    assert _files(tmp_path) == [".out.csv.conduit-run_42.tmp"]
    session.commit({})
    assert _files(tmp_path) == ["out.csv"]


def test_abort_leaves_no_file_and_no_temp(tmp_path: Path) -> None:
    destination = make_destination(tmp_path, path="out.csv")
    session = destination.open(WriteRequest("t", TABLE.schema, "replace", "r1"))
    session.write(TABLE.to_batches()[0])
    session.abort()
    session.abort()  # a second abort is harmless
    assert _files(tmp_path) == []


def test_leaving_the_context_without_commit_aborts(tmp_path: Path) -> None:
    destination = make_destination(tmp_path, path="out.csv")
    with pytest.raises(RuntimeError):
        with destination.open(WriteRequest("t", TABLE.schema, "replace", "r1")) as session:
            session.write(TABLE.to_batches()[0])
            raise RuntimeError("boom")
    assert _files(tmp_path) == []


def test_existing_target_untouched_until_commit_then_replaced(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old content\n")
    destination = make_destination(tmp_path, path="out.csv")
    session = destination.open(WriteRequest("t", TABLE.schema, "replace", "r2"))
    session.write(TABLE.to_batches()[0])
    assert target.read_text() == "old content\n"
    session.commit({"rows": 2})
    assert target.read_text() == '"id","name"\n1,"a"\n2,\n'
    assert _files(tmp_path) == ["out.csv"]


def test_abort_keeps_the_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old content\n")
    destination = make_destination(tmp_path, path="out.csv")
    session = destination.open(WriteRequest("t", TABLE.schema, "replace", "r3"))
    session.write(TABLE.to_batches()[0])
    session.abort()
    assert target.read_text() == "old content\n"
    assert _files(tmp_path) == ["out.csv"]


def test_abort_after_commit_changes_nothing(tmp_path: Path) -> None:
    destination = make_destination(tmp_path, path="out.csv")
    session = destination.open(WriteRequest("t", TABLE.schema, "replace", "r4"))
    session.commit({})
    session.abort()
    assert _files(tmp_path) == ["out.csv"]


def test_write_or_commit_after_the_end_is_an_error(tmp_path: Path) -> None:
    destination = make_destination(tmp_path, path="out.csv")
    session = destination.open(WriteRequest("t", TABLE.schema, "replace", "r5"))
    session.abort()
    with pytest.raises(ConnectorError, match="after aborted"):
        session.write(TABLE.to_batches()[0])
    with pytest.raises(ConnectorError, match="after aborted"):
        session.commit({})


def test_batch_with_a_castable_schema_is_cast(tmp_path: Path) -> None:
    destination = make_destination(tmp_path, path="out.csv")
    schema = pa.schema([("id", pa.int64())])
    with destination.open(WriteRequest("t", schema, "replace", "r")) as session:
        session.write(pa.record_batch({"id": pa.array([1], pa.int32())}))
        session.commit({})
    assert (tmp_path / "out.csv").read_text() == '"id"\n1\n'


# -- refusals and checks ---------------------------------------------------------------------------


def test_append_mode_is_refused(tmp_path: Path) -> None:
    destination = make_destination(tmp_path, path="out.csv")
    with pytest.raises(ConnectorError, match="replace only"):
        destination.open(WriteRequest("t", TABLE.schema, "append", "r"))


def test_nested_types_are_refused(tmp_path: Path) -> None:
    destination = make_destination(tmp_path, path="out.csv")
    schema = pa.schema([("tags", pa.list_(pa.string()))])
    with pytest.raises(ConnectorError, match="nested.*tags"):
        destination.open(WriteRequest("t", schema, "replace", "r"))
    assert _files(tmp_path) == []


def test_check_fails_when_the_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    destination = make_destination(tmp_path, path="blocker/out.csv")
    with pytest.raises(ConnectorError, match="not a directory"):
        destination.check()


def test_check_fails_when_the_target_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(ConnectorError, match="is a directory"):
        make_destination(tmp_path, path="out.csv").check()


def test_check_fails_when_the_directory_is_not_writable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(ConnectorError, match="not writable"):
            make_destination(tmp_path, path="locked/sub/out.csv").check()
    finally:
        locked.chmod(0o700)
