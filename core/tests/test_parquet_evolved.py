"""The parquet source reads a directory whose parts were written as the schema evolved."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conduit.builtins.parquet import ParquetSource, ParquetSourceOptions
from conduit.connectors import ReadRequest
from conduit.errors import DataError


def _source(path: Path) -> ParquetSource:
    return ParquetSource(ParquetSourceOptions.model_validate({"path": str(path)}))


def test_added_columns_read_as_null_and_narrow_types_widen(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"id": pa.array([1, 2], pa.int32()), "name": ["a", "b"]}), tmp_path / "part-1.parquet"
    )
    pq.write_table(
        pa.table({"id": pa.array([3], pa.int64()), "name": ["c"], "age": pa.array([30], pa.int64())}),
        tmp_path / "part-2.parquet",
    )
    source = _source(tmp_path)
    schema = source.discover()
    assert schema == pa.schema([("id", pa.int64()), ("name", pa.string()), ("age", pa.int64())])
    batches = list(source.read(ReadRequest("x", schema, 1000)))
    rows = [row for b in batches for row in b.data.to_pylist()]
    assert rows == [
        {"id": 1, "name": "a", "age": None},
        {"id": 2, "name": "b", "age": None},
        {"id": 3, "name": "c", "age": 30},
    ]
    assert [b.position["row"] for b in batches] == [2, 1]


def test_types_that_do_not_combine_are_an_error_naming_the_file(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": [1, 2]}), tmp_path / "part-1.parquet")
    pq.write_table(pa.table({"id": ["three"]}), tmp_path / "part-2.parquet")
    with pytest.raises(DataError) as caught:
        _source(tmp_path).discover()
    assert "part-2.parquet" in str(caught.value) and "'id' is string here but int64" in str(caught.value)
