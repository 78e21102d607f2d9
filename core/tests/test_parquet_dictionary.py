"""The Parquet destination's dictionary encoding: ``auto`` per column from the first row group,
``always``, ``never``, or a list of columns; read from the written files' column-chunk metadata."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conduit.builtins.parquet import ParquetDestination, ParquetDestinationOptions, dictionary_columns
from conduit.connectors import WriteRequest
from conduit.errors import ConfigError

ROWS = 40_000


def _table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(ROWS), pa.int64()),
            "status": pa.array([("paid", "shipped", "pending")[i % 3] for i in range(ROWS)]),
            "email": pa.array([f"user{i}@example.com" for i in range(ROWS)]),
            "fifth": pa.array([i % 2_000 for i in range(ROWS)], pa.int32()),
            "sparse": pa.array([None if i % 10 else i for i in range(ROWS)], pa.int64()),
            "tags": pa.array([["a"]] * ROWS, pa.list_(pa.string())),
        }
    )


def _write(path: Path, table: pa.Table, **options: object) -> None:
    destination = ParquetDestination(ParquetDestinationOptions(path=str(path), **options))
    request = WriteRequest(entity="t", schema=table.schema, mode="replace", run_id="r1")
    with destination.open(request) as session:
        for batch in table.to_batches(max_chunksize=5_000):
            session.write(batch)
        session.commit({})


def _dictionary_encoded(path: Path) -> dict[str, bool]:
    """Per column path: whether every row group's chunk has a dictionary page."""
    metadata = pq.read_metadata(path)
    encoded: dict[str, bool] = {}
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            name = chunk.path_in_schema.split(".")[0]
            has = chunk.dictionary_page_offset is not None
            encoded[name] = encoded.get(name, True) and has
    return encoded


def test_auto_encodes_the_repetitive_columns_only(tmp_path: Path) -> None:
    path = tmp_path / "auto.parquet"
    table = _table()
    _write(path, table, row_group_size=10_000)
    assert pq.read_metadata(path).num_row_groups == 4
    assert _dictionary_encoded(path) == {
        "id": False,
        "status": True,
        "email": False,
        "fifth": True,
        "sparse": True,
        "tags": False,
    }
    assert pq.read_table(path).equals(table)


def test_always_and_never_and_a_list(tmp_path: Path) -> None:
    table = _table()
    _write(tmp_path / "always.parquet", table, dictionary="always")
    assert set(_dictionary_encoded(tmp_path / "always.parquet").values()) == {True}
    _write(tmp_path / "never.parquet", table, dictionary="never")
    assert set(_dictionary_encoded(tmp_path / "never.parquet").values()) == {False}
    _write(tmp_path / "some.parquet", table, dictionary=["email"])
    encoded = _dictionary_encoded(tmp_path / "some.parquet")
    assert [name for name, has in encoded.items() if has] == ["email"]
    for name in ("always", "never", "some"):
        assert pq.read_table(tmp_path / f"{name}.parquet").equals(table)


def test_a_list_naming_a_missing_column_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dictionary names columns the data does not have: emial"):
        _write(tmp_path / "x.parquet", _table(), dictionary=["emial"])
    assert not (tmp_path / "x.parquet").exists()


def test_the_choice_is_made_once_and_kept_for_every_part(tmp_path: Path) -> None:
    # Later row groups where "id" repeats keep the first row group's choice, in every part file.
    table = pa.concat_tables(
        [
            _table().slice(0, 10_000),
            pa.Table.from_pylist([_table().slice(0, 1).to_pylist()[0]] * 30_000, _table().schema),
        ]
    )
    directory = tmp_path / "parts"
    _write(directory, table, row_group_size=10_000, max_rows_per_file=20_000)
    parts = sorted(directory.glob("*.parquet"))
    assert len(parts) == 2
    for part in parts:
        assert _dictionary_encoded(part)["id"] is False
        assert _dictionary_encoded(part)["status"] is True


def test_dictionary_columns_on_small_and_empty_tables() -> None:
    assert dictionary_columns(pa.table({"a": pa.array([], pa.int64())})) == ["a"]
    assert dictionary_columns(pa.table({"a": [1], "b": ["x"]})) == ["a", "b"]
    assert dictionary_columns(pa.table({"a": [1, 2, 3, 4], "b": ["x", "x", "x", "y"]})) == ["b"]
