"""conduit.files.Writeback: background fdatasync of files being written, errors handed to the commit."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest

from conduit.builtins.parquet import ParquetDestination, ParquetDestinationOptions
from conduit.connectors import WriteRequest
from conduit.files import Writeback


def _writeback_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "conduit-writeback" and t.is_alive()]


def test_pushed_files_are_flushed_and_wait_returns(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    writeback = Writeback()
    with path.open("wb") as handle:
        for _ in range(5):
            handle.write(b"x" * 100_000)
            handle.flush()
            writeback.push(str(path))
    writeback.wait()
    writeback.close()
    assert path.stat().st_size == 500_000
    assert not _writeback_threads()


def test_a_failed_flush_is_raised_by_wait_once(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    writeback = Writeback()
    writeback.push(str(plain / "child"))  # a path under a regular file: NotADirectoryError
    with pytest.raises(NotADirectoryError):
        writeback.wait()
    writeback.wait()  # reported once
    writeback.close()


def test_a_file_removed_meanwhile_is_not_an_error(tmp_path: Path) -> None:
    writeback = Writeback()
    writeback.push(str(tmp_path / "gone"))
    writeback.wait()
    writeback.close()


def test_close_without_push_and_push_after_close(tmp_path: Path) -> None:
    writeback = Writeback()
    writeback.close()
    writeback.push(str(tmp_path / "late"))  # ignored: no thread is started
    writeback.wait()
    assert not _writeback_threads()


def test_parquet_sessions_leave_no_flusher_behind(tmp_path: Path) -> None:
    table = pa.table({"a": list(range(50_000))})
    destination = ParquetDestination(
        ParquetDestinationOptions(path=str(tmp_path / "t.parquet"), row_group_size=10_000)
    )
    for outcome in ("commit", "abort"):
        request = WriteRequest(entity="t", schema=table.schema, mode="replace", run_id=f"r-{outcome}")
        session = destination.open(request)
        for batch in table.to_batches(max_chunksize=10_000):
            session.write(batch)
        if outcome == "commit":
            session.commit({})
        else:
            session.abort()
        assert not _writeback_threads()
    assert (tmp_path / "t.parquet").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
