"""The ``csv`` destination: one file, written atomically with pyarrow's CSV writer.

A load session writes to a hidden temp file beside the target (``.{name}.conduit-{run_id}.tmp``,
same directory so the final rename is atomic). ``commit`` flushes and fsyncs it and renames it over
the target; ``abort`` deletes it. Readers see the old file or the new one, never a partial one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv

from conduit.connectors import Destination, DestinationCapabilities, LoadSession, WriteRequest
from conduit.errors import ConnectorError, DataError
from conduit.files import Writeback, compression_for, fsync_path, temp_path_for
from conduit_csv.options import CsvDestinationOptions

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _compression(path: Path) -> str | None:
    codec = compression_for(str(path))
    if codec is not None and not pa.Codec.is_available(codec):
        raise ConnectorError(f"{path}: this pyarrow build has no {codec} support")
    return codec


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


class CsvDestination(Destination):
    """Writes one CSV file (compressed by a ``.gz``/``.bz2``/``.zst`` suffix), replacing it at commit."""

    options_model = CsvDestinationOptions
    capabilities = DestinationCapabilities(
        write_modes=frozenset({"replace"}), default_mode="replace", atomic=True, preserves_types=False
    )
    options: CsvDestinationOptions

    def target_id(self) -> str:
        """The output file (whatever the CSV options: two entities writing it share it)."""
        return str(self.options.path)

    def check(self) -> None:
        target = Path(self.options.path)
        if target.is_dir():
            raise ConnectorError(f"{target} is a directory; the csv destination writes one file")
        _compression(target)
        existing = _nearest_existing(target.parent)
        if not existing.is_dir():
            raise ConnectorError(f"cannot create directory {target.parent}: {existing} is not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConnectorError(f"directory {existing} is not writable")

    def open(self, request: WriteRequest) -> LoadSession:
        if request.mode not in self.capabilities.write_modes:
            raise ConnectorError(
                f"the csv destination writes one file and supports mode replace only, not {request.mode}"
            )
        unsupported = [f"{f.name} ({f.type})" for f in request.schema if pa.types.is_nested(f.type)]
        if unsupported:
            raise ConnectorError(f"CSV cannot hold nested values; columns: {', '.join(unsupported)}")
        return CsvLoadSession(self.options, request)


class CsvLoadSession(LoadSession):
    """One replace of the target file: write to a temp file, rename it over the target at commit."""

    def __init__(self, options: CsvDestinationOptions, request: WriteRequest) -> None:
        self.target = Path(options.path)
        self.schema = request.schema
        self.temp = Path(temp_path_for(str(self.target), _UNSAFE.sub("_", request.run_id)))
        self._state: Literal["open", "committed", "aborted"] = "open"
        self._writeback = Writeback()
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._sink = pa.output_stream(str(self.temp), compression=_compression(self.target))
        except OSError as exc:
            raise ConnectorError(f"cannot write {self.temp}: {exc}") from None
        write_options = pacsv.WriteOptions(
            include_header=options.header, delimiter=options.delimiter, quoting_style=options.quoting
        )
        try:
            self._writer = pacsv.CSVWriter(self._sink, request.schema, write_options=write_options)
        except (pa.ArrowException, OSError) as exc:
            self._discard()
            raise ConnectorError(f"cannot write CSV with this schema: {exc}") from None

    def write(self, batch: pa.RecordBatch) -> None:
        if self._state != "open":
            raise ConnectorError(f"write after {self._state}: the load session is over")
        if not batch.schema.equals(self.schema):
            batch = pa.Table.from_batches([batch]).cast(self.schema).combine_chunks().to_batches()[0]
        try:
            self._writer.write_batch(batch)
            self._writeback.push(str(self.temp))
        except pa.ArrowInvalid as exc:
            raise DataError(f"cannot write this batch as CSV to {self.target}: {exc}") from None
        except OSError as exc:
            raise ConnectorError(f"cannot write {self.temp}: {exc}") from None

    def commit(self, state: Mapping[str, Any]) -> None:
        """Flush, fsync and rename the temp file over the target (CSV has nowhere to keep ``state``)."""
        if self._state != "open":
            raise ConnectorError(f"commit after {self._state}: the load session is over")
        try:
            self._writer.close()
            self._sink.close()
            self._writeback.wait()
            self._writeback.close()
            fsync_path(str(self.temp))
            os.replace(self.temp, self.target)
            fsync_path(str(self.target.parent))
        except OSError as exc:
            self.abort()
            raise ConnectorError(f"cannot commit {self.target}: {exc}") from None
        self._state = "committed"
        self.committed = True

    def abort(self) -> None:
        """Close and delete the temp file; the target is untouched. Safe to call again."""
        if self._state == "open":
            self._state = "aborted"
            try:
                self._writer.close()
            except (pa.ArrowException, OSError):
                pass
        self._discard()

    def _discard(self) -> None:
        self._writeback.close()
        try:
            if not self._sink.closed:
                self._sink.close()
        except (pa.ArrowException, OSError):
            pass
        if self._state != "committed":
            try:
                self.temp.unlink(missing_ok=True)
            except OSError:
                pass
