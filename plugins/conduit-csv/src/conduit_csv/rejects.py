"""Setting bad rows aside on an ``on_error: dlq`` read: which rows, why, and where they were.

A dead-letter read (see :meth:`conduit_csv.csvfile.CsvFile.open_dlq_reader`) gets three kinds of bad
rows, each reported as a :class:`~conduit.connectors.Rejected` in the batch whose stretch of the file
holds it:

* a record with the wrong number of fields: pyarrow hands it to :class:`InvalidRows` (the reader's
  ``invalid_row_handler``) and leaves it out of the batch (``rule="parse"``, ``reason="field_count"``);
* a value holding bytes that do not decode (escaped in the stream): ``rule="utf8"``,
  ``reason="invalid_utf8"`` (``invalid_text`` for another encoding);
* a value that does not convert to its column's type: :func:`conduit.coerce.coerce_batch`
  (``rule="coerce"``, the reason of its :class:`~conduit.coerce.Failure`).

:class:`Stretches` numbers them. pyarrow gives each invalid record its number in the file; a batch of
``n`` rows then covers the next ``n`` good rows plus the invalid records among and right after them,
so ``position["row"]`` moves on by ``len(batch) + len(rejected)`` and the sum over a file is its
number of data rows.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from conduit.coerce import Failure, classify, coerce_batch, row_values
from conduit.connectors import Rejected, SourceBatch
from conduit_csv.encoding import is_utf8
from conduit_csv.locate import ESCAPED, LineFinder, escaped_bytes, shown_escaped


@dataclass(frozen=True)
class InvalidRecord:
    """A record pyarrow could not split into the expected number of fields."""

    row: int | None
    expected: int
    actual: int
    text: str


@dataclass
class InvalidRows:
    """The ``invalid_row_handler`` of a dead-letter read: keeps each invalid record, skips it.

    ``offset``: records before the first data row (skipped lines, the header), subtracted from
    pyarrow's record number. ``swallowed``: the end-of-file sentinel was part of an invalid record,
    i.e. a quote left open swallowed the rest of the file (which no dead-letter row can hold).
    Never raises: pyarrow would print the exception and fail the read with its own message.
    """

    offset: int
    sentinel: str
    queue: deque[InvalidRecord] = field(default_factory=deque)
    swallowed: bool = False

    def __call__(self, row: pacsv.InvalidRow) -> str:
        if self.sentinel in row.text:
            self.swallowed = True
        else:
            number = None if row.number is None else row.number - self.offset
            self.queue.append(InvalidRecord(number, row.expected_columns, row.actual_columns, row.text))
        return "skip"


_TRIMMED = (
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_decimal,
    pa.types.is_date,
    pa.types.is_time,
)


@dataclass(frozen=True)
class TextConverter:
    """Converts a batch read as text to ``schema`` the way the CSV reader would, failing rows listed.

    Differences from a plain cast, to accept exactly what a ``fail`` read accepts: spaces and tabs
    around numbers, dates and times are trimmed (the CSV reader trims them there, and only there);
    booleans are the CSV ``true_values``/``false_values`` (case-sensitive). Escaped undecodable
    bytes (see :data:`~conduit_csv.locate.ESCAPE`) fail their row, except in a ``binary`` column, which
    gets its bytes back.
    """

    schema: pa.Schema
    encoding: str
    true_values: Sequence[str]
    false_values: Sequence[str]

    def convert(self, batch: pa.RecordBatch, escaped: bool) -> tuple[pa.RecordBatch, list[Failure]]:
        """The rows that convert, and the failures (indexes into ``batch``, in order)."""
        columns = list(batch.columns)
        undecodable: dict[int, Failure] = {}
        if escaped:
            for position, target in enumerate(self.schema):
                hits = pc.fill_null(pc.match_substring_regex(columns[position], ESCAPED), False)
                if not pc.any(hits).as_py():
                    continue
                indices = pc.indices_nonzero(hits).to_pylist()
                if pa.types.is_binary(target.type):
                    columns[position] = _restored(columns[position], indices)
                    continue
                for index in indices:
                    value = columns[position][index].as_py()
                    undecodable.setdefault(index, self._undecodable(value, target.name, index))
        kept: list[int] | None = None
        if undecodable:
            keep = pa.array([i not in undecodable for i in range(batch.num_rows)], pa.bool_())
            kept = pc.indices_nonzero(keep).to_pylist()
            columns = [pc.filter(column, keep) for column in columns]
        prepared = pa.RecordBatch.from_arrays(
            [_prepared(column, target.type) for column, target in zip(columns, self.schema, strict=True)],
            names=self.schema.names,
        )
        coerced = coerce_batch(
            prepared, self.schema, true_values=self.true_values, false_values=self.false_values
        )
        failures = list(undecodable.values())
        for failure in coerced.failures:
            index = failure.index if kept is None else kept[failure.index]
            failures.append(dataclasses.replace(failure, index=index))
        failures.sort(key=lambda failure: failure.index)
        return coerced.batch, failures

    def _undecodable(self, value: str | bytes, column: str, index: int) -> Failure:
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        raw = escaped_bytes(text)
        if is_utf8(self.encoding):
            reason, detail = classify(raw, pa.string())
        else:
            reason, detail = (
                "invalid_text",
                f"{_shown(raw)} holds bytes that are not valid {self.encoding} text",
            )
        return Failure(index, column, reason, f"column {column!r}: {detail}")


def _shown(value: bytes, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _prepared(column: pa.Array, target: pa.DataType) -> pa.Array:
    if any(test(target) for test in _TRIMMED):
        return pc.utf8_trim(column, characters=" \t")
    return column


def _restored(column: pa.Array, indices: list[int]) -> pa.Array:
    values = column.to_pylist()
    for index in indices:
        value = values[index]
        values[index] = escaped_bytes(value.decode("utf-8") if isinstance(value, bytes) else value)
    return pa.array(values, pa.binary())


class Stretches:
    """Turns the batches of one file's dead-letter read into :class:`SourceBatch` objects.

    Each batch covers its rows and the invalid records among them (and right after them); the
    position counts every data row consumed from the file, rejected ones included.
    """

    def __init__(self, path: str, invalid: InvalidRows, converter: TextConverter, lines: LineFinder) -> None:
        self.path = path
        self.invalid = invalid
        self.converter = converter
        self.lines = lines
        self.consumed = 0

    def take(self, batch: pa.RecordBatch, escaped: bool, final: bool = False) -> SourceBatch:
        """The source batch for ``batch`` (the next rows pyarrow gave); ``final``: the file's last."""
        end = self.consumed + batch.num_rows
        invalid: list[InvalidRecord] = []
        queue = self.invalid.queue
        while queue and (final or queue[0].row is None or queue[0].row <= end + 1):
            invalid.append(queue.popleft())
            end += 1
        data, failures = self.converter.convert(batch, escaped)
        skipped = sorted(item.row for item in invalid if item.row is not None)
        found: list[tuple[int | None, Rejected]] = []
        for item in invalid:
            found.append((item.row, self._invalid_record(item)))
        for failure in failures:
            row = self._row_of(failure.index, skipped)
            found.append((row, self._failure(batch, failure, row)))
        found.sort(key=lambda pair: (pair[0] is None, pair[0] or 0))
        rejected = tuple(
            dataclasses.replace(reject, line=self.lines.line(row)) if row is not None else reject
            for row, reject in found
        )
        self.consumed = end
        return SourceBatch(data, {"file": self.path, "row": end}, rejected)

    def _row_of(self, index: int, skipped: list[int]) -> int:
        """The data row of the ``index``-th row of the batch: the rows after ``consumed``, less
        the invalid records among them."""
        row = self.consumed + 1 + index
        for number in skipped:
            if number <= row:
                row += 1
            else:
                break
        return row

    def _invalid_record(self, item: InvalidRecord) -> Rejected:
        return Rejected(
            row=item.row,
            line=None,
            rule="parse",
            reason="field_count",
            message=f"expected {item.expected} fields, found {item.actual}",
            values=None,
            raw=shown_escaped(item.text),
        )

    def _failure(self, batch: pa.RecordBatch, failure: Failure, row: int) -> Rejected:
        values = row_values(batch, failure.index, _shown_value)
        undecodable = failure.reason in ("invalid_utf8", "invalid_text")
        return Rejected(
            row=row,
            line=None,
            rule="utf8" if undecodable else "coerce",
            reason=failure.reason,
            message=failure.message,
            column=failure.column,
            values=values,
            raw=None,
        )


def _shown_value(value: object) -> object:
    return shown_escaped(value) if isinstance(value, str) else value
