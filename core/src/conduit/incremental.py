"""Incremental loads: which rows are new, and what to remember so the next run knows.

Boundary semantics (documented in docs/config.md, "Incremental loads"): the filter is **inclusive**
(``cursor >= watermark``) so a row that arrives later with a cursor equal to the watermark is not
lost, and rows at the watermark that were already loaded are dropped by their identity: the state
remembers, for the rows loaded *at* the watermark, a hash of their ``primary_key`` columns (or of the
whole row) with a count, so two identical rows are two rows. With ``mode: merge`` the destination
de-duplicates by key itself, so no identities are kept and ``lookback`` may widen the window.

A row is hashed as the source sends it, in :meth:`CursorWindow.apply` and :meth:`CursorWindow.observe`
alike, over ``key_columns``: the primary key, or (without one) the columns the state's identities were
first computed over (``boundary_columns`` in the state), so a column added to the source later, left
out of the target by ``schema.policy: warn`` or added to it, does not change any row's identity.
Changing ``primary_key`` (like ``cursor``) is refused while a watermark is stored.

Rows whose cursor is NULL follow ``on_null``: ``fail`` (default: the load stops, naming the row) or
``skip`` (not loaded, counted in the manifest). A NULL cursor can never be compared with a watermark,
so loading such rows would load them again on every run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conduit.errors import ConfigError, DataError, DataLocation

MAX_BOUNDARY_ROWS = 100_000
"""Rows remembered at the watermark; more means the cursor is too coarse to de-duplicate by."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hour|hours|d|day|days|w|week|weeks)\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "hours": 3600}
_UNIT_SECONDS.update({"d": 86400, "day": 86400, "days": 86400, "w": 604800, "week": 604800, "weeks": 604800})


def to_json(value: Any) -> Any:
    """A cursor value as stored in the state (JSON): numbers stay numbers, the rest ISO text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def from_json(value: Any, arrow_type: pa.DataType, where: str) -> pa.Scalar:
    """A stored (or configured) cursor value as a scalar of the cursor column's type."""
    try:
        if pa.types.is_timestamp(arrow_type):
            if isinstance(value, dt.datetime):
                parsed: Any = value
            elif isinstance(value, dt.date):
                parsed = dt.datetime(value.year, value.month, value.day)
            else:
                parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if arrow_type.tz is not None and parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            if arrow_type.tz is None and parsed.tzinfo is not None:
                raise ValueError("has a UTC offset but the column's timestamps have none")
            return pa.scalar(parsed, type=pa.timestamp("us", tz=arrow_type.tz)).cast(arrow_type)
        if pa.types.is_date(arrow_type):
            day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
            return pa.scalar(day, type=pa.date32()).cast(arrow_type)
        if pa.types.is_integer(arrow_type):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("is not an integer")
            return pa.scalar(int(value), type=arrow_type)
        if pa.types.is_floating(arrow_type):
            return pa.scalar(float(value), type=arrow_type)
        if pa.types.is_decimal(arrow_type):
            return pa.scalar(Decimal(str(value)), type=arrow_type)
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            return pa.scalar(str(value), type=arrow_type)
    except (ValueError, TypeError, ArithmeticError, pa.ArrowException) as exc:
        raise ConfigError(
            f"{where}: cursor value {value!r} does not fit the column's type {arrow_type}: {exc}"
        ) from None
    raise ConfigError(
        f"{where}: a cursor column must be an integer, float, decimal, date, timestamp or string; "
        f"this one is {arrow_type}"
    )


def lookback_delta(lookback: Any, arrow_type: pa.DataType, where: str) -> Any:
    """``lookback`` in the cursor's terms: a timedelta for dates/timestamps, a number otherwise."""
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        if isinstance(lookback, int | float) and not isinstance(lookback, bool):
            return dt.timedelta(seconds=float(lookback))
        match = _DURATION.match(str(lookback))
        if not match:
            raise ConfigError(
                f"{where}: lookback {lookback!r} is not a duration like '2h', '30m', '1d', '1w'"
            )
        return dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if isinstance(lookback, int | float) and not isinstance(lookback, bool):
        return Decimal(str(lookback)) if pa.types.is_decimal(arrow_type) else lookback
    raise ConfigError(f"{where}: lookback for a {arrow_type} cursor must be a number, not {lookback!r}")


def row_hashes(batch: pa.RecordBatch, indices: pa.Array | list[int], columns: list[str]) -> list[str]:
    """A stable identity for each selected row: a hash of its values in ``columns`` (the primary key,
    or the columns the entity's boundary is computed over); a column the batch lacks counts as NULL."""
    present = [c for c in columns if c in batch.schema.names]
    rows = batch.select(present).take(pa.array(indices, pa.int64())).to_pylist()
    return [
        hashlib.blake2b(
            json.dumps([row.get(c) for c in columns], default=to_json, ensure_ascii=False).encode(),
            digest_size=16,
        ).hexdigest()
        for row in rows
    ]


@dataclass
class Outcome:
    """What the filter did with one batch."""

    batch: pa.RecordBatch
    dropped_loaded: int = 0
    """Rows already loaded (below the watermark, or at it and remembered)."""
    skipped_null: int = 0
    kept: pa.BooleanArray | None = None
    """The mask of the input rows that were kept (``None``: all of them)."""


@dataclass
class CursorWindow:
    """The incremental filter for one run and the watermark it advances."""

    column: str
    arrow_type: pa.DataType
    mark: Any  # Python value of the filter mark (None: first load)
    boundary_in: Counter[str]
    dedup: bool
    key_columns: list[str]
    on_null: str
    where: str
    run_max: Any = None
    run_boundary: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._mark_scalar = None if self.mark is None else pa.scalar(self.mark, type=self.arrow_type)
        self.remaining = Counter(self.boundary_in)

    def apply(self, batch: pa.RecordBatch, locate: Callable[[int], DataLocation]) -> Outcome:
        """Keep the rows this run must load (vectorised; per-row work only for rows at the mark)."""
        column = batch.column(self.column)
        keep: pa.BooleanArray | None = None
        skipped_null = 0
        if column.null_count:
            valid = pc.is_valid(column)
            if self.on_null == "fail":
                raise DataError(
                    f"{self.where}: the cursor column {self.column!r} is NULL; an incremental load cannot "
                    "place this row (set incremental.on_null: skip to leave such rows out)",
                    locate(pc.index(valid, False).as_py()),
                )
            skipped_null = int(column.null_count)
            keep = valid
        dropped = 0
        if self._mark_scalar is not None:
            wanted = pc.fill_null(pc.greater_equal(column, self._mark_scalar), False)
            if self.dedup and self.remaining:
                indices = pc.indices_nonzero(pc.fill_null(pc.equal(column, self._mark_scalar), False))
                drops = []
                if len(indices):
                    for index, digest in zip(
                        indices.to_pylist(), row_hashes(batch, indices, self.key_columns), strict=True
                    ):
                        if self.remaining[digest] > 0:
                            self.remaining[digest] -= 1
                            drops.append(index)
                if drops:
                    positions = pa.array(range(batch.num_rows), pa.int64())
                    seen = pc.is_in(positions, value_set=pa.array(drops, pa.int64()))
                    wanted = pc.and_(wanted, pc.invert(seen))
            if keep is not None:
                wanted = pc.and_(wanted, keep)
            before = batch.num_rows - skipped_null
            dropped = before - wanted.true_count
            keep = wanted
        if keep is None:
            return Outcome(batch)
        if keep.true_count == batch.num_rows:
            return Outcome(batch, dropped, skipped_null)
        return Outcome(batch.filter(keep), dropped, skipped_null, keep)

    def observe(self, batch: pa.RecordBatch) -> None:
        """Advance the run's high-water mark over rows that were loaded."""
        if batch.num_rows == 0:
            return
        column = batch.column(self.column)
        top = pc.max(column)
        if not top.is_valid:
            return
        value = top.as_py()
        if self.run_max is None or value > self.run_max:
            self.run_max = value
            self.run_boundary = Counter()
        if value != self.run_max or not self.dedup:
            return
        indices = pc.indices_nonzero(pc.fill_null(pc.equal(column, top), False))
        self.run_boundary.update(row_hashes(batch, indices, self.key_columns))
        if sum(self.run_boundary.values()) > MAX_BOUNDARY_ROWS:
            raise DataError(
                f"{self.where}: more than {MAX_BOUNDARY_ROWS:,} rows share the cursor value "
                f"{to_json(self.run_max)!r} of {self.column!r}; exactly-once at the boundary needs a finer "
                "cursor (a timestamp with more precision, or an increasing id), or mode: merge with a "
                "primary key"
            )


def window_state(window: CursorWindow) -> dict[str, Any]:
    """The watermark part of the state after the rows observed so far."""
    return {
        "cursor": window.column,
        "watermark": to_json(window.run_max),
        "boundary": dict(window.run_boundary) if window.dedup else {},
    }


def counter(mapping: Mapping[str, Any] | None) -> Counter[str]:
    return Counter({str(k): int(v) for k, v in (mapping or {}).items()})
