"""The dead-letter queue: every rejected row, with why, committed together with the good rows.

A row lands here when it cannot be read or converted without loss (the entity's ``on_error: dlq``)
or fails a check whose ``action`` is ``dlq``. Each entity has a directory,
``<state dir>/dlq/<flow>/<entity>/`` (or under the entity's ``dlq.path``), of part files, one per
commit that rejected anything::

    20261122T101500-1a2b3c4d-0000.jsonl      rows rejected by commit 0 of that run
    20261122T101500-1a2b3c4d-0001.jsonl      ... by commit 1 (a checkpoint)
    20261122T110000-9f8e7d6c-0000.removed.json   ids taken out by a replay

**Committed with the data.** While a load session is open its rejected rows go to
``<part>.pending``. The engine commits the destination (whose state records the run id and commit
number), then renames the part into place. If the process dies between the two, the next run of the
entity (under the entity's lock, before it reads anything) looks at the committed state: a pending
part whose run and commit number the destination did commit is renamed in, any other is deleted, its
rows being read again by the resumed run. So a crash never loses or duplicates a rejected row.

A record (one JSON object per line, or one Parquet row with ``values`` as JSON text)::

    {"id": "9c1f...", "run_id": "...", "flow": "ingest", "entity": "orders",
     "file": "data/orders.csv", "line": 17, "row": 15,
     "rule": "coerce", "reason": "not_a_number", "column": "amount",
     "message": "column 'amount': 'abc' is not a decimal number (decimal(12,2))",
     "values": {"id": "15", "amount": "abc"}, "raw": null, "at": "2026-11-22T10:15:03Z"}

``id`` is a hash of where the row came from and what it holds, so the same bad input row read
again (a changed file re-read by an incremental load) is not recorded twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from conduit.errors import ConnectorError
from conduit.files import fsync_path, remove_quietly, write_json_atomically
from conduit.state import file_name, safe_name

DlqFormat = Literal["jsonl", "parquet"]
DLQ_DIR = "dlq"
PENDING = ".pending"
REMOVED = ".removed.json"
_PART = re.compile(
    r"^(?P<run>.+)-(?P<seq>\d{4,})(?P<kind>\.jsonl|\.parquet|\.removed\.json)(?P<pending>\.pending)?$"
)
_PARQUET_BATCH = 10_000
_JSONL_LINES = 2_000
FIELDS = ("id", "run_id", "flow", "entity", "file", "line", "row", "rule", "reason", "message", "column")


def dlq_root(state_dir: Path, configured: Path | None = None) -> Path:
    """Where dead-letter directories live: the entity's ``dlq.path``, else ``<state dir>/dlq``."""
    return configured if configured is not None else state_dir / DLQ_DIR


def record_id(entity: str, file: str | None, row: int | None, rule: str, values: Any, raw: str | None) -> str:
    """A stable id for one rejected input row (same origin and content, same id)."""
    text = repr((entity, file, row, rule, values, raw))
    return hashlib.blake2b(text.encode("utf-8", "backslashreplace"), digest_size=12).hexdigest()


def json_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """``batch`` as rows of JSON-safe values that keep every value exactly: decimals, dates, times
    and timestamps become text in Arrow (vectorised); only float, binary and nested columns go
    through :func:`to_json_value` value by value."""
    columns = []
    slow = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        dtype = column.type
        if pa.types.is_decimal(dtype) or pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
            column = pc.cast(column, pa.string())
        elif not (pa.types.is_integer(dtype) or pa.types.is_string(dtype) or pa.types.is_boolean(dtype)):
            slow.append(name)
        columns.append(column)
    rows: list[dict[str, Any]] = pa.RecordBatch.from_arrays(columns, names=batch.schema.names).to_pylist()
    if slow:
        for row in rows:
            for name in slow:
                row[name] = to_json_value(row[name])
    return rows


_CONTROL = r"[\x00-\x1f]"


def json_values(batch: pa.RecordBatch) -> list[str]:
    """Each row of ``batch`` as the JSON text of ``{column: value}``, built column by column in Arrow.

    The same values as :func:`json_rows` (decimals, dates and timestamps as text, integers and finite
    floats as numbers). A batch with a column Arrow cannot encode this way (text with control
    characters, non-finite floats, binary, nested types) goes through :func:`json_rows` and
    ``json.dumps`` row by row instead.
    """
    if batch.num_rows == 0:
        return []
    pieces: list[Any] = []
    for position, (name, column) in enumerate(zip(batch.schema.names, batch.columns, strict=True)):
        pieces.append(("{" if position == 0 else ", ") + json.dumps(name, ensure_ascii=False) + ": ")
        dtype = column.type
        if pa.types.is_integer(dtype):
            text = pc.cast(column, pa.string())
        elif pa.types.is_boolean(dtype):
            text = pc.if_else(column, "true", "false")
        elif pa.types.is_floating(dtype) and pc.all(pc.fill_null(pc.is_finite(column), True)).as_py():
            text = pc.cast(column, pa.string())
        elif (pa.types.is_string(dtype) or pa.types.is_large_string(dtype)) and not pc.any(
            pc.fill_null(pc.match_substring_regex(column, _CONTROL), False)
        ).as_py():
            escaped = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
            text = pc.binary_join_element_wise('"', escaped, '"', "")
        elif pa.types.is_timestamp(dtype) and dtype.tz is not None:
            # The stored value is UTC whatever the zone: format it without zone lookups, then mark it.
            utc = pc.cast(pc.cast(column, pa.timestamp(dtype.unit)), pa.string())
            text = pc.binary_join_element_wise('"', utc, 'Z"', "")
        elif pa.types.is_decimal(dtype) or pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
            text = pc.binary_join_element_wise('"', pc.cast(column, pa.string()), '"', "")
        else:
            return [json.dumps(row, ensure_ascii=False) for row in json_rows(batch)]
        pieces.append(pc.fill_null(text, "null"))
    pieces.append("}")
    return [str(line) for line in pc.binary_join_element_wise(*pieces, "").to_pylist()]


def to_json_value(value: Any) -> Any:
    """A value as JSON keeps it exactly: numbers that JSON would round, dates and bytes as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


@dataclass
class PendingPart:
    """One pending part being written: JSON Lines streamed to disk, Parquet in row groups."""

    path: Path
    fmt: DlqFormat
    rows: int = 0
    _handle: IO[str] | None = None
    _buffer: list[dict[str, Any]] = field(default_factory=list)
    _lines: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    """Rows are added from the engine's thread and from the background encoder."""
    _writer: Any = None

    def add(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._add(record)

    def _add(self, record: dict[str, Any]) -> None:
        self.rows += 1
        if self.fmt == "jsonl":
            self._lines.append(json.dumps(record, ensure_ascii=False))
            if len(self._lines) >= _JSONL_LINES:
                self._flush_jsonl()
        else:
            self._buffer.append(record)
            if len(self._buffer) >= _PARQUET_BATCH:
                self._flush_parquet()

    def add_lines(self, lines: list[str]) -> None:
        """Records already encoded as lines of JSON (the fast path of check rejections)."""
        with self._lock:
            if self.fmt != "jsonl":
                for line in lines:
                    self._add(json.loads(line))
                return
            self.rows += len(lines)
            self._lines.extend(lines)
            if len(self._lines) >= _JSONL_LINES:
                self._flush_jsonl()

    def _flush_jsonl(self) -> None:
        if not self._lines:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._handle.write("\n".join(self._lines) + "\n")
        self._lines.clear()

    def _flush_parquet(self) -> None:
        import pyarrow.parquet as pq

        if not self._buffer:
            return
        rows = [{**r, "values": json.dumps(r["values"], ensure_ascii=False)} for r in self._buffer]
        table = pa.Table.from_pylist(rows, schema=_parquet_schema())
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(str(self.path), table.schema, compression="zstd")
        self._writer.write_table(table)
        self._buffer.clear()

    def close(self) -> None:
        """Make the part durable (flushed and fsynced) before the destination commits."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        self._flush_jsonl()
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
        if self.fmt == "parquet":
            self._flush_parquet()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
                fsync_path(str(self.path))

    def drop(self) -> None:
        self._lines.clear()
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        remove_quietly(str(self.path))


def _parquet_schema() -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.string()),
            ("run_id", pa.string()),
            ("flow", pa.string()),
            ("entity", pa.string()),
            ("file", pa.string()),
            ("line", pa.int64()),
            ("row", pa.int64()),
            ("rule", pa.string()),
            ("reason", pa.string()),
            ("message", pa.string()),
            ("column", pa.string()),
            ("values", pa.string()),
            ("raw", pa.string()),
            ("at", pa.string()),
        ]
    )


@dataclass(frozen=True)
class DlqSummary:
    entity: str
    flow: str
    directory: Path
    rows: int
    runs: tuple[str, ...]
    reasons: Counter[str]
    first_at: str | None
    last_at: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "entity": self.entity,
            "directory": str(self.directory),
            "rows": self.rows,
            "runs": list(self.runs),
            "reasons": dict(self.reasons.most_common()),
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


class DeadLetterQueue:
    """One entity's dead-letter directory."""

    def __init__(self, root: Path, flow: str, entity: str, fmt: DlqFormat = "jsonl") -> None:
        self.flow, self.entity, self.fmt = flow, entity, fmt
        self.directory = root / file_name(flow) / file_name(entity)
        self._known: set[str] | None = None
        legacy = root / safe_name(flow) / safe_name(entity)
        if legacy != self.directory and legacy.is_dir() and not self.directory.exists():
            self._adopt(legacy)

    def _adopt(self, legacy: Path) -> None:
        """Move a queue kept under the lossy names of earlier versions (:func:`~conduit.state.safe_name`)
        to this entity's one-to-one directory, when every row in it is this flow's and entity's (a
        directory two names shared stays where it is, for ``dlq show`` of the entity it holds)."""
        owners = {
            (record.get("flow"), record.get("entity"))
            for path in sorted(legacy.iterdir())
            if _PART.match(path.name) and not path.name.endswith((PENDING, REMOVED))
            for record in _read_part(path)
        }
        if owners <= {(self.flow, self.entity)}:
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            os.replace(legacy, self.directory)

    # -- committing with the data -----------------------------------------------------------------

    def _name(self, run_id: str, seq: int, kind: str) -> Path:
        return self.directory / f"{run_id}-{seq:04d}{kind}"

    def open_part(self, run_id: str, seq: int) -> PendingPart:
        """A pending part for commit ``seq`` of ``run_id`` (nothing is created until a row is added)."""
        suffix = ".jsonl" if self.fmt == "jsonl" else ".parquet"
        return PendingPart(Path(str(self._name(run_id, seq, suffix)) + PENDING), self.fmt)

    def stage_removal(self, run_id: str, seq: int, ids: Iterable[str]) -> None:
        """A pending list of ids that a replay takes out (promoted with the replay's commit)."""
        path = Path(str(self._name(run_id, seq, REMOVED)) + PENDING)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_json_atomically(str(path), {"ids": sorted(set(ids))})

    def promote(self, run_id: str, seq: int) -> None:
        """The destination committed ``seq`` of ``run_id``: its pending files become part of the queue."""
        for path in self._pending():
            run, number, _ = _parse(path.name)
            if run == run_id and number == seq:
                os.replace(path, path.with_name(path.name[: -len(PENDING)]))
        self._known = None

    def discard(self, run_id: str, seq: int) -> None:
        """The session was aborted: its pending files go."""
        for path in self._pending():
            run, number, _ = _parse(path.name)
            if run == run_id and number == seq:
                remove_quietly(str(path))

    def recover(self, committed_run: str | None, committed_seq: int | None) -> list[str]:
        """Settle what a crashed run left: promote the pending files of the last committed session,
        delete the others. Call under the entity's lock, before loading. Returns what was done."""
        done: list[str] = []
        for path in self._pending():
            run, seq, _ = _parse(path.name)
            if run == committed_run and committed_seq is not None and seq <= committed_seq:
                os.replace(path, path.with_name(path.name[: -len(PENDING)]))
                done.append(f"kept {path.name[: -len(PENDING)]} (its commit had landed)")
            else:
                remove_quietly(str(path))
                done.append(f"removed {path.name} (its commit never landed)")
        return done

    def _pending(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.name.endswith(PENDING) and _PART.match(p.name))

    # -- reading ------------------------------------------------------------------------------------

    def parts(self, run: str | None = None) -> list[Path]:
        """Committed data parts, oldest first (optionally of one run: an id or a unique prefix)."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.iterdir()):
            match = _PART.match(path.name)
            if match is None or match.group("pending") or match.group("kind") == REMOVED:
                continue
            if run is None or match.group("run").startswith(run):
                found.append(path)
        return found

    def removed_ids(self) -> set[str]:
        ids: set[str] = set()
        if not self.directory.is_dir():
            return ids
        for path in self.directory.glob(f"*{REMOVED}"):
            try:
                ids.update(json.loads(path.read_text(encoding="utf-8")).get("ids", []))
            except (OSError, ValueError) as exc:
                raise ConnectorError(f"{path}: cannot read this dead-letter removal list: {exc}") from None
        return ids

    def records(self, run: str | None = None) -> Iterator[dict[str, Any]]:
        """The rows in the queue (not those a replay took out), oldest first."""
        removed = self.removed_ids()
        for path in self.parts(run):
            for record in _read_part(path):
                if record.get("id") not in removed:
                    yield record

    def known_ids(self) -> set[str]:
        """The ids of the rows in the queue (read once, then kept up to date by the caller)."""
        if self._known is None:
            self._known = {str(r.get("id")) for r in self.records()} if self.parts() else set()
        return self._known

    def known(self, record_id: str) -> bool:
        """Whether a row with this id is in the queue already."""
        return record_id in self.known_ids()

    def remember(self, record_id: str) -> None:
        if self._known is not None:
            self._known.add(record_id)

    def summary(self) -> DlqSummary:
        rows, runs, reasons = 0, [], Counter[str]()
        first: str | None = None
        last: str | None = None
        for record in self.records():
            rows += 1
            run = str(record.get("run_id"))
            if run not in runs:
                runs.append(run)
            reasons[f"{record.get('rule')}:{record.get('reason')}"] += 1
            at = record.get("at")
            if isinstance(at, str):
                first = at if first is None or at < first else first
                last = at if last is None or at > last else last
        return DlqSummary(self.entity, self.flow, self.directory, rows, tuple(runs), reasons, first, last)

    def purge(self, run: str | None = None) -> int:
        """Delete the queue's rows (all, or one run's); returns how many rows went."""
        removed = self.removed_ids()
        count = 0
        for path in self.parts(run):
            count += sum(1 for r in _read_part(path) if r.get("id") not in removed)
            remove_quietly(str(path))
        if run is None and self.directory.is_dir():
            for path in self.directory.glob(f"*{REMOVED}"):
                remove_quietly(str(path))
        self._known = None
        return count


def _parse(name: str) -> tuple[str, int, str]:
    match = _PART.match(name)
    if match is None:
        return "", -1, ""
    return match.group("run"), int(match.group("seq")), match.group("kind")


def _read_part(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(str(path))
        except (OSError, ValueError) as exc:
            raise ConnectorError(f"{path}: cannot read this dead-letter part: {exc}") from None
        for row in table.to_pylist():
            row["values"] = json.loads(row["values"]) if row.get("values") else None
            yield row
        return
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise ConnectorError(f"{path}:{number}: not a dead-letter record: {exc}") from None
    except OSError as exc:
        raise ConnectorError(f"{path}: cannot read this dead-letter part: {exc}") from None
