"""Built-in Parquet source and destination (registered through the same hooks as any plugin).

Source: one file, a glob, or a directory of part files; streamed with ``ParquetFile.iter_batches``.

Destination: ``path`` is a file (``out/orders.parquet``) or, with ``layout: directory`` or a path
without the ``.parquet`` suffix, a directory of part files.

* File layout, ``replace``: written to a hidden temp file beside the target and renamed over it at
  commit, so readers see the old file or the new one, never a partial one.
* Directory layout, ``replace``: parts are written to a hidden staging directory; at commit the old
  directory is moved aside, the staging directory renamed into place, and the old one removed. Between
  those two renames the directory is briefly absent; it is never partial.
* Directory layout, ``append``: parts are staged the same way and each is renamed into the directory
  at commit (a part is never visible half-written).

Batches are buffered up to ``row_group_size`` rows so row groups are a useful size whatever the
source's batch size; memory stays bounded by that buffer.

Dictionary encoding (``dictionary: auto``, the default) is chosen per column from the first row
group: a column whose sample has at most half as many distinct values as rows is dictionary
encoded, others are not. pyarrow's default encodes every column with a dictionary first and falls
back to plain encoding when the dictionary outgrows a page, which for mostly-distinct columns (ids,
timestamps, e-mail addresses) costs the hashing and a wasted dictionary page per row group: on the
benchmark's orders table, ``auto`` writes 30% faster and 10% smaller files than dictionary
everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from conduit.coerce import coerce_column
from conduit.connectors import (
    ConnectorOptions,
    Destination,
    DestinationCapabilities,
    LoadSession,
    LocalPath,
    ReadRequest,
    Source,
    SourceBatch,
    SourceCapabilities,
    StateKey,
    WriteRequest,
)
from conduit.errors import ConfigError, ConnectorError, DataError, DataLocation
from conduit.files import (
    Writeback,
    already_loaded,
    ensure_parent,
    expand_paths,
    fsync_path,
    move_into_place,
    remove_quietly,
    temp_path_for,
    write_json_atomically,
)
from conduit.locks import lock_file
from conduit.schema import compare_types
from conduit.state import file_name, key_tag, safe_name
from conduit.types import type_name

SUFFIXES = (".parquet", ".parq", ".pq")


class ParquetSourceOptions(ConnectorOptions):
    path: LocalPath
    columns: list[str] | None = None


class ParquetSource(Source):
    options_model = ParquetSourceOptions
    capabilities = SourceCapabilities(typed=True, declared_columns=False, file_positions=True)
    options: ParquetSourceOptions

    def files(self) -> list[str]:
        return expand_paths(self.options.path, SUFFIXES)

    def check(self) -> None:
        for file in self.files():
            self._open(file)

    def _open(self, file: str) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(file)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"not a readable Parquet file: {exc}", DataLocation(file=file)) from None

    def _schema_of(self, file: str) -> pa.Schema:
        schema = self._open(file).schema_arrow
        if self.options.columns:
            missing = [c for c in self.options.columns if c not in schema.names]
            if missing:
                raise DataError(
                    f"columns not in the file: {', '.join(missing)} (it has {', '.join(schema.names)})",
                    DataLocation(file=file),
                )
            schema = pa.schema([schema.field(c) for c in self.options.columns])
        return schema.remove_metadata()

    def discover(self) -> pa.Schema:
        """The files' common schema. Parts written as a schema evolved (a column added, a type widened,
        see :mod:`conduit.schema`) combine: a column missing from a file reads as NULL there, a
        narrower type is cast up. Types that do not combine exactly are an error naming the file."""
        files = self.files()
        combined = self._schema_of(files[0])
        for file in files[1:]:
            schema = self._schema_of(file)
            if not schema.equals(combined):
                combined = _combined(combined, schema, file)
        return combined

    def read(self, request: ReadRequest) -> Iterator[SourceBatch]:
        files = self.files()
        for file in files:
            if already_loaded(file, request.skip_files):
                continue
            schema = self._schema_of(file)
            same = schema.equals(request.schema)
            if not same:
                _combined(request.schema, schema, file)  # still combines (the files may have changed)
            parquet = self._open(file)
            columns = [name for name in request.schema.names if name in schema.names]
            rows = 0
            for batch in parquet.iter_batches(batch_size=request.batch_size, columns=columns):
                data = batch.replace_schema_metadata(None)
                if not same:
                    data = _as_schema(data, request.schema, file, rows)
                rows += batch.num_rows
                yield SourceBatch(data, {"file": file, "row": rows})


def _combined(combined: pa.Schema, schema: pa.Schema, file: str) -> pa.Schema:
    """``combined`` extended by ``schema``'s columns, each type the one that holds both exactly."""
    fields = {f.name: f for f in combined}
    for f in schema:
        if f.name not in fields:
            fields[f.name] = pa.field(f.name, f.type, True)
            continue
        current = fields[f.name].type
        if current == f.type:
            continue
        compatibility, widened = compare_types(current, f.type)
        if compatibility == "fits":
            continue
        if compatibility == "widening" and widened is not None:
            fields[f.name] = pa.field(f.name, widened, True)
            continue
        raise DataError(
            f"column {f.name!r} is {type_name(f.type)} here but {type_name(current)} in the files before; "
            "they do not combine without loss",
            DataLocation(file=file, column=f.name),
        )
    return pa.schema(list(fields.values()))


def _as_schema(batch: pa.RecordBatch, schema: pa.Schema, file: str, rows_before: int) -> pa.RecordBatch:
    columns = []
    for target in schema:
        if target.name not in batch.schema.names:
            columns.append(pa.nulls(batch.num_rows, target.type))
            continue
        converted, failures = coerce_column(batch.column(target.name), target.type, target.name)
        if failures:
            first = failures[0]
            raise DataError(
                first.message, DataLocation(file=file, row=rows_before + first.index + 1, column=target.name)
            )
        columns.append(converted)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class ParquetDestinationOptions(ConnectorOptions):
    path: LocalPath
    layout: Literal["auto", "file", "directory"] = "auto"
    compression: Literal["snappy", "zstd", "gzip", "brotli", "lz4", "none"] = "snappy"
    compression_level: int | None = None
    row_group_size: int = 131_072
    max_rows_per_file: int | None = None
    dictionary: Literal["auto", "always", "never"] | list[str] = "auto"


DICTIONARY_SAMPLE = 16_384
"""Rows of the first row group whose distinct values decide ``dictionary: auto``."""


def dictionary_columns(table: pa.Table) -> list[str]:
    """The columns worth dictionary encoding: flat columns whose first :data:`DICTIONARY_SAMPLE`
    rows hold at most half as many distinct values as rows (nulls count as one value). Nested
    columns are left plain."""
    sample = table.slice(0, DICTIONARY_SAMPLE)
    limit = sample.num_rows // 2
    chosen = []
    for field in sample.schema:
        if pa.types.is_nested(field.type):
            continue
        distinct = pc.count_distinct(sample.column(field.name), mode="all").as_py()
        if distinct <= max(limit, 1):
            chosen.append(field.name)
    return chosen


STATE_DIR = "_conduit"
STATE_KEY = b"conduit.state"


class ParquetDestination(Destination):
    options_model = ParquetDestinationOptions
    capabilities = DestinationCapabilities(
        write_modes=frozenset({"replace", "append"}),
        atomic=True,
        preserves_types=True,
        stores_state=True,
        schema_changes=frozenset({"add_column", "widen_type"}),  # new parts carry the new schema
    )
    options: ParquetDestinationOptions

    @property
    def is_directory(self) -> bool:
        if self.options.layout != "auto":
            return self.options.layout == "directory"
        path = self.options.path
        return os.path.isdir(path) or not path.lower().endswith(SUFFIXES)

    @property
    def target(self) -> str:
        return self.options.path.rstrip("/")

    def check(self) -> None:
        ensure_parent(self.target)

    def current_schema(self) -> pa.Schema | None:
        target = self.options.path
        if not os.path.exists(target):
            return None
        if not self.is_directory:
            return pq.read_schema(target).remove_metadata()
        parts = [p for p in Path(target).glob("*.parquet") if not p.name.startswith((".", "_"))]
        if not parts:
            return None
        # The newest part has the newest schema (schema evolution writes new parts, never rewrites).
        newest = max(parts, key=lambda p: (p.stat().st_mtime_ns, p.name))
        return pq.read_schema(newest).remove_metadata()

    def target_id(self) -> str:
        return self.target

    def open(self, request: WriteRequest) -> LoadSession:
        if request.mode == "append" and not self.is_directory:
            raise ConfigError(
                f"mode append needs a directory of part files; {self.options.path} is a single "
                f"Parquet file (set layout: directory, or use mode: replace)"
            )
        if isinstance(self.options.dictionary, list):
            unknown = [name for name in self.options.dictionary if name not in request.schema.names]
            if unknown:
                raise ConfigError(
                    f"dictionary names columns the data does not have: {', '.join(unknown)} "
                    f"(its columns: {', '.join(request.schema.names)})"
                )
        ensure_parent(self.target)
        if self.is_directory:
            _recover(self.target, request.key)
        return ParquetLoadSession(self.options, request, self.is_directory)

    # -- state: a commit record per flow and entity in <dir>/_conduit/, or the single file's footer --

    def read_state(self, key: StateKey) -> dict[str, Any] | None:
        if self.is_directory:
            state = _read_record(self.target, key).get("state")
            return state if isinstance(state, dict) else None
        if not os.path.isfile(self.target):
            return None
        metadata = pq.read_metadata(self.target).metadata or {}
        stored = json.loads(metadata[STATE_KEY]) if STATE_KEY in metadata else {}
        state = _footer_state(stored, key) if isinstance(stored, dict) else None
        return state if isinstance(state, dict) else None

    def write_state(self, key: StateKey, state: Mapping[str, Any] | None) -> None:
        if self.is_directory:
            if state is None:
                remove_quietly(_record_path(self.target, key))
                _forget_legacy_record(self.target, key)
            else:
                record = _read_record(self.target, key)
                record.update(state=dict(state), pending=[])
                _write_record(self.target, key, record)
            return
        if not os.path.isfile(self.target):
            if state is None:
                return
            raise ConnectorError(f"{self.target} does not exist yet; its state is written by its first load")
        table = pq.read_table(self.target)
        metadata = dict(pq.read_metadata(self.target).metadata or {})
        states = json.loads(metadata.get(STATE_KEY, b"{}"))
        states.pop(key.entity, None)  # as versions before flow-and-entity keys stored it
        if state is None:
            states.pop(_footer_key(key), None)
        else:
            states[_footer_key(key)] = dict(state)
        metadata[STATE_KEY] = json.dumps(states, default=str).encode()
        temp = temp_path_for(self.target, "state")
        try:
            pq.write_table(table.replace_schema_metadata(metadata), temp)
            fsync_path(temp)
            os.replace(temp, self.target)
        finally:
            remove_quietly(temp)
        fsync_path(str(Path(self.target).parent))

    def lock(self, key: StateKey) -> AbstractContextManager[None]:
        path = Path(self.target)
        lock = path.with_name(f".{path.name}.conduit-{key_tag(key)}.lock")
        return lock_file(lock, f"parquet destination {self.target}: {key}")


def _fixed_dictionary(setting: str | list[str]) -> bool | list[str] | None:
    """``use_dictionary`` for pyarrow from the option; ``None`` for ``auto`` (decided from data)."""
    if isinstance(setting, list):
        return setting
    return None if setting == "auto" else setting == "always"


def _footer_key(key: StateKey) -> str:
    return json.dumps([key.flow, key.entity], ensure_ascii=False)


def _footer_state(stored: dict[str, Any], key: StateKey) -> Any:
    """``key``'s state in a file's footer; one stored by earlier versions under the entity's name
    alone counts when it was written for this entity."""
    state = stored.get(_footer_key(key))
    if state is None:
        legacy = stored.get(key.entity)
        state = legacy if isinstance(legacy, dict) and legacy.get("entity") == key.entity else None
    return state


def _record_path(directory: str, key: StateKey) -> str:
    return os.path.join(directory, STATE_DIR, file_name(key.flow), f"{file_name(key.entity)}.json")


def _legacy_record_path(directory: str, key: StateKey) -> str:
    """Where versions before flow-and-entity keys kept the record: ``_conduit/<entity>.json``."""
    return os.path.join(directory, STATE_DIR, f"{safe_name(key.entity)}.json")


def _load_record(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConnectorError(f"cannot read the commit record {path}: {exc}") from None
    return record if isinstance(record, dict) else {}


def _legacy_record(directory: str, key: StateKey) -> dict[str, Any] | None:
    """The record of an earlier version, when it was written for this entity. It names no flow: the
    first flow to load the entity into this directory takes it over (and removes it at its commit)."""
    record = _load_record(_legacy_record_path(directory, key))
    state = record.get("state") if record is not None else None
    if record is not None and isinstance(state, dict) and state.get("entity") == key.entity:
        return record
    return None


def _read_record(directory: str, key: StateKey) -> dict[str, Any]:
    record = _load_record(_record_path(directory, key))
    if record is None:
        record = _legacy_record(directory, key)
    return record if record is not None else {}


def _write_record(directory: str, key: StateKey, record: Mapping[str, Any]) -> None:
    write_json_atomically(_record_path(directory, key), dict(record))
    _forget_legacy_record(directory, key)


def _forget_legacy_record(directory: str, key: StateKey) -> None:
    if _legacy_record(directory, key) is not None:
        remove_quietly(_legacy_record_path(directory, key))


def _staging_prefix(target: str, key: StateKey) -> str:
    name = Path(target).name
    return f".{name}.conduit-{key_tag(key)}~"


def _recover(directory: str, key: StateKey) -> None:
    """Undo what a killed commit left: parts renamed in before the record said they were committed
    (the record's ``pending`` list), and staging directories of this entity's earlier sessions."""
    record = _read_record(directory, key)
    pending = record.get("pending") or []
    for name in pending:
        remove_quietly(os.path.join(directory, str(name)))
    if pending:
        record["pending"] = []
        _write_record(directory, key, record)
    parent = Path(directory).parent
    prefix = _staging_prefix(directory, key)
    if parent.is_dir():
        for leftover in parent.iterdir():
            if leftover.name.startswith(prefix):
                remove_quietly(str(leftover))


class ParquetLoadSession(LoadSession):
    def __init__(self, options: ParquetDestinationOptions, request: WriteRequest, directory: bool) -> None:
        self.options = options
        self.request = request
        self.directory = directory
        self.target = options.path.rstrip("/")
        self.staging = (
            Path(self.target)
            .with_name(
                f"{_staging_prefix(self.target, request.key)}{request.run_id}~{request.commit_seq}.tmp"
            )
            .as_posix()
        )
        self.parts: list[str] = []
        self.writer: pq.ParquetWriter | None = None
        self.rows_in_file = 0
        self.buffer: list[pa.RecordBatch] = []
        self.buffered = 0
        self.dictionary: bool | list[str] | None = _fixed_dictionary(options.dictionary)
        self.writeback = Writeback()
        if directory:
            os.makedirs(self.staging, exist_ok=True)

    def _new_writer(self) -> pq.ParquetWriter:
        if self.directory:
            # unique per run, flow and entity (two entities may append into one directory), commit, file
            request = self.request
            name = (
                f"part-{request.run_id}-{key_tag(request.key)}-{request.commit_seq:04d}-"
                f"{len(self.parts):05d}.parquet"
            )
            path = os.path.join(self.staging, name)
        else:
            path = self.staging
        self.parts.append(path)
        self.rows_in_file = 0
        compression = None if self.options.compression == "none" else self.options.compression
        return pq.ParquetWriter(
            path,
            self.request.schema,
            compression=compression,
            compression_level=self.options.compression_level,
            use_dictionary=True if self.dictionary is None else self.dictionary,
        )

    def _flush(self) -> None:
        if not self.buffer:
            return
        table = pa.Table.from_batches(self.buffer, schema=self.request.schema)
        self.buffer, self.buffered = [], 0
        if self.dictionary is None:  # auto: decided once, from the first row group
            self.dictionary = dictionary_columns(table)
        limit = self.options.max_rows_per_file
        offset = 0
        while offset < table.num_rows:
            if self.writer is None or (limit and self.rows_in_file >= limit):
                if self.writer is not None:
                    self.writer.close()
                self.writer = self._new_writer()
            take = table.num_rows - offset
            if limit:
                take = min(take, limit - self.rows_in_file)
            self.writer.write_table(table.slice(offset, take), row_group_size=self.options.row_group_size)
            self.writeback.push(self.parts[-1])
            self.rows_in_file += take
            offset += take

    def write(self, batch: pa.RecordBatch) -> None:
        self.buffer.append(batch)
        self.buffered += batch.num_rows
        if self.buffered >= self.options.row_group_size:
            self._flush()

    def commit(self, state: Mapping[str, Any]) -> None:
        """Make the parts visible together with ``state``.

        File layout: the state goes into the file's footer, then one rename. Directory layout: the
        commit record first lists the parts as pending, the parts are renamed in, then the record
        is rewritten with the new state and nothing pending; a crash in between is undone by the
        next session (:func:`_recover`), so data and state always agree."""
        self._flush()
        if self.writer is None and (not self.directory or self.request.mode == "replace"):
            self.writer = self._new_writer()  # an empty input still leaves a file with the schema
        if self.writer is not None:
            if not self.directory:
                payload = json.dumps({_footer_key(self.request.key): dict(state)}, default=str)
                self.writer.add_key_value_metadata({STATE_KEY.decode(): payload})
            self.writer.close()
            self.writer = None
        self.writeback.wait()
        self.writeback.close()
        for part in self.parts:
            fsync_path(part)
        if not self.directory:
            os.replace(self.staging, self.target)
            fsync_path(str(Path(self.target).parent))
        elif self.request.mode == "replace":
            self._swap_directory(state)
        else:
            self._append_parts(state)
        self.committed = True

    def _append_parts(self, state: Mapping[str, Any]) -> None:
        os.makedirs(self.target, exist_ok=True)
        key = self.request.key
        record = _read_record(self.target, key)
        names = [os.path.basename(part) for part in self.parts]
        if names:
            record["pending"] = names
            _write_record(self.target, key, record)
            for part in self.parts:
                move_into_place(part, os.path.join(self.target, os.path.basename(part)))
            fsync_path(self.target)
        record.update(state=dict(state), pending=[])
        _write_record(self.target, key, record)
        remove_quietly(self.staging)

    def _swap_directory(self, state: Mapping[str, Any]) -> None:
        records = os.path.join(self.target, STATE_DIR)
        if os.path.isdir(records):  # other entities' records stay with the directory
            shutil.copytree(records, os.path.join(self.staging, STATE_DIR), dirs_exist_ok=True)
        _write_record(self.staging, self.request.key, {"state": dict(state), "pending": []})
        old = temp_path_for(self.target, self.request.run_id, ".old")
        if os.path.exists(self.target):
            if not os.path.isdir(self.target):
                raise ConnectorError(f"{self.target} exists and is not a directory")
            os.replace(self.target, old)
        os.replace(self.staging, self.target)
        fsync_path(str(Path(self.target).parent))
        remove_quietly(old)

    def abort(self) -> None:
        self.writeback.close()
        if self.writer is not None:
            try:
                self.writer.close()
            except (OSError, pa.ArrowException):
                pass
            self.writer = None
        self.buffer = []
        remove_quietly(self.staging)
