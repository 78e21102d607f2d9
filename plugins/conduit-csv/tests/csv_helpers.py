"""Helpers for the conduit-csv tests: build connectors exactly as the engine does, read everything.

Deliberately not a ``conftest.py``: the repository's top-level tests do ``from conftest import ...``,
which a second conftest module on ``sys.path`` would shadow when pytest runs every package at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from conduit.connectors import ReadRequest, SourceBatch, WriteRequest
from conduit.errors import DataError
from conduit_csv import CsvDestination, CsvSource

Write = Callable[[str, bytes | str], Path]


def file_writer(base: Path) -> Write:
    """A function writing a file under ``base`` (text is UTF-8 encoded) and returning its path."""

    def write(name: str, content: bytes | str) -> Path:
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return write


def make_source(base: Path, **options: Any) -> CsvSource:
    validated = CsvSource.options_model.model_validate(options, context={"base_dir": str(base)})
    return CsvSource(validated)


def make_destination(base: Path, **options: Any) -> CsvDestination:
    validated = CsvDestination.options_model.model_validate(options, context={"base_dir": str(base)})
    return CsvDestination(validated)


def read_batches(source: CsvSource, batch_size: int = 65_536) -> tuple[pa.Schema, list[SourceBatch]]:
    schema = source.discover()
    batches = list(source.read(ReadRequest(entity="t", schema=schema, batch_size=batch_size)))
    for item in batches:
        assert item.data.schema.equals(schema)
    return schema, batches


def read_table(source: CsvSource, batch_size: int = 65_536) -> pa.Table:
    schema, batches = read_batches(source, batch_size)
    return pa.Table.from_batches([item.data for item in batches], schema=schema)


def write_table(destination: CsvDestination, table: pa.Table, run_id: str = "run1") -> None:
    with destination.open(WriteRequest("t", table.schema, "replace", run_id)) as session:
        for batch in table.to_batches(max_chunksize=3):
            session.write(batch)
        session.commit({})


def read_error(source: CsvSource, batch_size: int = 65_536) -> DataError:
    """The DataError that discovering and reading everything raises."""
    with pytest.raises(DataError) as info:
        read_table(source, batch_size)
    error = info.value
    assert "\n" not in str(error).strip(), f"not one line: {error}"
    assert "Traceback" not in str(error)
    return error


def zstd_compress(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as stream:
        stream.write(data)
    return bytes(sink.getvalue())


def zstd_decompress(data: bytes) -> bytes:
    with pa.CompressedInputStream(pa.BufferReader(data), "zstd") as stream:
        return bytes(stream.read())
