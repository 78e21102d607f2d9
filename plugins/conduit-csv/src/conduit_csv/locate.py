"""Finding the exact line, row and column of bad CSV input.

pyarrow parses and converts CSV fast but does not say where a problem is: its errors carry no row or
line number. These helpers re-read a file the slow, exact way and are used on the error path only
(never on the normal read path):

* :class:`RecordScanner` reads records with Python's :mod:`csv` module in the same dialect, knowing the
  physical lines each record spans and its raw text. Bytes that do not decode are replaced by
  :data:`MARK` (see :data:`DECODE_ERRORS`) so the bad field can be pointed at.
* :class:`RecordChecker` says what is structurally wrong with a record: undecodable bytes, an
  unterminated quote, a line break in a value when they are not allowed, a row too long for a read
  block, or the wrong number of fields; :func:`record_problems` yields every bad data record.
* :func:`conversion_failures` finds the values of one column that do not convert to a type, with the
  CSV reader's own conversion (vectorised, bisecting only inside a failing chunk).
* :class:`LineFinder` gives the physical line where a data row starts, for the rows an ``on_error:
  dlq`` read rejects (a lean pass of the csv module, started at the first rejected row of a file).

Text that does not decode reaches pyarrow escaped on a dead-letter read (see
:mod:`conduit_csv.csvfile`): :data:`ESCAPE` then ``chr(0xE000 + byte)`` per undecodable byte.
:func:`escaped_bytes` and :func:`shown_escaped` undo that for values and messages.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

MARK = "\ud800"
"""Put in place of undecodable bytes: a lone surrogate, which no successful decoding can produce."""

DECODE_ERRORS = "conduit-csv-mark"
"""The ``errors=`` name of the codec error handler that inserts :data:`MARK`."""


def _mark(exc: UnicodeError) -> tuple[str, int]:
    if isinstance(exc, UnicodeDecodeError):
        return MARK, exc.end
    raise exc


codecs.register_error(DECODE_ERRORS, _mark)

ESCAPE = "\ufdd5"
"""Put before each undecodable byte on a dead-letter read (a Unicode noncharacter: never in real text)."""

ESCAPE_ERRORS = "conduit-csv-escape"
"""The ``errors=`` name of the codec error handler that writes ``ESCAPE + chr(0xE000 + byte)``."""

ESCAPED = "\ufdd5[\ue000-\ue0ff]"
"""A regular expression matching one escaped byte."""

_ESCAPED = re.compile("\ufdd5([\ue000-\ue0ff])")


def _escape(exc: UnicodeError) -> tuple[str, int]:
    if isinstance(exc, UnicodeDecodeError):
        return "".join(ESCAPE + chr(0xE000 + byte) for byte in exc.object[exc.start : exc.end]), exc.end
    raise exc


codecs.register_error(ESCAPE_ERRORS, _escape)


def escaped_bytes(text: str) -> bytes:
    """The bytes ``text`` stands for: UTF-8, except each escaped byte, which is itself again."""
    parts = _ESCAPED.split(text)
    return b"".join(
        part.encode("utf-8") if index % 2 == 0 else bytes([ord(part) - 0xE000])
        for index, part in enumerate(parts)
    )


def shown_escaped(text: str) -> str:
    """``text`` with each escaped byte as a ``\\xNN`` escape (as ``errors="backslashreplace"`` shows it)."""
    return _ESCAPED.sub(lambda match: f"\\x{ord(match.group(1)) - 0xE000:02x}", text)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def line_breaks(text: str) -> int:
    """How many line breaks ``text`` holds (``\\r\\n``, ``\\r`` and ``\\n`` count once each)."""
    return len(_LINE_BREAK.findall(text))


@dataclass(frozen=True)
class Record:
    """One CSV record as Python's csv module reads it.

    ``number`` counts non-blank records from 1 after the skipped lines (the header, when there is
    one, is record 1). ``line`` and ``end_line`` are the physical lines it spans, from 1. ``text`` is
    its raw text (cut at the scanner's ``text_limit``). ``unterminated``: the file ended inside a
    quoted value of this record.
    """

    number: int
    line: int
    end_line: int
    fields: list[str]
    text: str
    unterminated: bool


class ScanError(Exception):
    """Python's csv module gave up (a value longer than the field limit)."""

    def __init__(self, message: str, line: int, number: int) -> None:
        super().__init__(message)
        self.line = line
        self.number = number


class RecordScanner:
    """Iterate the :class:`Record` objects of a text stream (opened with ``newline=""``)."""

    def __init__(
        self,
        text: Iterable[str],
        dialect: Mapping[str, Any],
        *,
        skip_lines: int = 0,
        field_limit: int = 1 << 20,
    ) -> None:
        self._text = text
        self._dialect = dialect
        self._skip_lines = skip_lines
        self._field_limit = max(field_limit, csv.field_size_limit())
        self._consumed = 0
        self._eof = False
        self._parts: list[str] = []
        self._size = 0

    def _lines(self) -> Iterator[str]:
        for line in self._text:
            if self._consumed == 0 and line.startswith("\ufeff"):
                line = line[1:]
            self._consumed += 1
            if self._size <= self._field_limit:
                self._parts.append(line)
                self._size += len(line)
            yield line
        self._eof = True

    def __iter__(self) -> Iterator[Record]:
        lines = self._lines()
        for _ in range(self._skip_lines):
            if next(lines, None) is None:
                return
        reader = csv.reader(lines, **self._dialect)
        number = 0
        while True:
            start = self._consumed + 1
            self._parts.clear()
            self._size = 0
            previous = csv.field_size_limit(self._field_limit)
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ScanError(str(exc), start, number + 1) from None
            finally:
                csv.field_size_limit(previous)
            if not fields:  # a blank line: pyarrow skips those too
                continue
            number += 1
            text = "".join(self._parts)
            yield Record(number, start, self._consumed, fields, text, self._eof)


@dataclass(frozen=True)
class Problem:
    """A bad record or value: a readable message, where it is, and the raw record text."""

    message: str
    line: int | None
    row: int | None
    column: str | None
    text: str = ""


def _column(names: Sequence[str], index: int) -> str | None:
    return names[index] if 0 <= index < len(names) else None


@dataclass(frozen=True)
class RecordChecker:
    """The structural checks of one data record.

    ``names``: the expected columns; ``decode_columns``: the column indexes where undecodable bytes
    are an error (``None``: all); ``max_record_bytes``: the longest record pyarrow can read;
    ``field_count``: whether a wrong number of fields is a problem (not on a dead-letter read, which
    sets such records aside).
    """

    names: Sequence[str]
    encoding: str
    newlines_in_values: bool = True
    decode_columns: Collection[int] | None = None
    max_record_bytes: int | None = None
    field_count: bool = True

    def problem(self, record: Record, row: int) -> Problem | None:
        """What is wrong with ``record`` (data row ``row``), or ``None``."""
        return self._decode_problem(record, row) or self._shape_problem(record, row)

    def _decode_problem(self, record: Record, row: int) -> Problem | None:
        for index, value in enumerate(record.fields):
            if MARK in value and (self.decode_columns is None or index in self.decode_columns):
                at = record.text.find(MARK)
                line = record.line + (line_breaks(record.text[:at]) if at >= 0 else 0)
                return Problem(
                    f"the bytes here are not valid {self.encoding} text (set encoding: to the file's "
                    "encoding, or encoding: auto)",
                    line,
                    row,
                    _column(self.names, index),
                    record.text,
                )
        return None

    def _shape_problem(self, record: Record, row: int) -> Problem | None:
        if record.unterminated:
            column = _column(self.names, len(record.fields) - 1)
            return Problem(
                f"unterminated quoted value: the quote that opens the value of column {column!r} in this "
                "row is never closed, so the rest of the file would be read as one value",
                record.line,
                row,
                column,
                record.text,
            )
        if not self.newlines_in_values and record.end_line > record.line:
            return Problem(
                f"a quoted value spans lines {record.line}-{record.end_line}, but newlines_in_values is "
                "false (set it to true, the default, to allow line breaks inside quoted values)",
                record.line,
                row,
                None,
                record.text,
            )
        limit = self.max_record_bytes
        if limit is not None and len(record.text.encode("utf-8", "surrogatepass")) > limit:
            return Problem(
                f"this row is longer than the read block ({limit} bytes); raise block_size "
                "(or look for an unbalanced quote)",
                record.line,
                row,
                None,
                record.text,
            )
        if self.field_count and len(record.fields) != len(self.names):
            return Problem(
                f"expected {len(self.names)} fields, found {len(record.fields)}",
                record.line,
                row,
                None,
                record.text,
            )
        return None


def unterminated_problem(
    records: Iterable[Record], checker: RecordChecker, *, header: bool
) -> Problem | None:
    """The record whose quote the end of the file left open (or the one the csv module gave up on)."""
    for problem in record_problems(records, checker, header=header):
        if problem.message.startswith(("unterminated quoted value", "cannot parse the record")):
            return problem
    return None


def data_row(record_number: int, header: bool) -> int:
    """The data row number (from 1, the header excluded) of a record."""
    return record_number - 1 if header else record_number


def record_problems(records: Iterable[Record], checker: RecordChecker, *, header: bool) -> Iterator[Problem]:
    """Every structurally bad data record, in file order (record 1 is skipped when it is the header)."""
    try:
        for record in records:
            if header and record.number == 1:
                continue
            found = checker.problem(record, data_row(record.number, header))
            if found is not None:
                yield found
    except ScanError as exc:
        yield Problem(
            f"cannot parse the record starting here ({exc}); is a quote left open?",
            exc.line,
            data_row(exc.number, header),
            None,
        )


def find_record(records: Iterable[Record], number: int) -> Record | None:
    """The record with ``number`` (see :class:`Record`), or ``None`` when the file is shorter."""
    for record in records:
        if record.number == number:
            return record
    return None


class LineFinder:
    """The physical line where each data row starts, read from the file's text as rows are asked for.

    ``text``: the file's lines (a text stream opened with ``newline=""``), read from the start;
    ``skip_lines``: lines before the first record (the header, when ``header``, is then record 1).
    Rows must be asked for in ascending order: the text is read once, as far as the last row asked
    for, with Python's csv module (about 1M short rows a second). ``None`` once the rows cannot be
    found (the file ended, a value is longer than ``field_limit``).
    """

    def __init__(
        self,
        text: Iterable[str],
        dialect: Mapping[str, Any],
        *,
        skip_lines: int,
        header: bool,
        field_limit: int = 1 << 20,
    ) -> None:
        self._lines = iter(text)
        self._dialect = dialect
        self._skip_lines = skip_lines
        self._header = header
        self._field_limit = max(field_limit, csv.field_size_limit())
        self._reader: Any = None
        self._number = 0
        self._line: int | None = None
        self._lost = False

    def _start(self) -> Any:
        first = next(self._lines, None)
        if first is None:
            return csv.reader(iter(()), **self._dialect)
        lines = itertools.chain([first.removeprefix("\ufeff")], self._lines)
        for _ in range(self._skip_lines):
            if next(lines, None) is None:
                break
        return csv.reader(lines, **self._dialect)

    def line(self, row: int) -> int | None:
        """The line where data row ``row`` (from 1) starts."""
        wanted = row + 1 if self._header else row
        if self._lost or wanted < self._number:
            return None
        if self._reader is None:
            self._reader = self._start()
        reader = self._reader
        number, line = self._number, self._line
        previous = csv.field_size_limit(self._field_limit)
        try:
            while number < wanted:
                before = reader.line_num
                if next(reader):
                    number += 1
                    line = before + 1
        except (StopIteration, csv.Error):
            self._lost = True
            return None
        finally:
            csv.field_size_limit(previous)
            self._number, self._line = number, line
        return None if line is None else self._skip_lines + line


# -- values that do not convert ------------------------------------------------------------------

Converter = Callable[[Sequence[bytes | None]], str | None]


def csv_converter(
    dtype: pa.DataType,
    *,
    true_values: Sequence[str] | None = None,
    false_values: Sequence[str] | None = None,
) -> Converter:
    """A function converting raw values to ``dtype`` exactly as the CSV reader does.

    It returns ``None`` when every value converts, else the reader's error message. The values are
    written to a small CSV (quoted, so the reader's null handling cannot touch them; ``None`` is an
    unquoted empty field, which is null) and read back with the type declared.
    """
    convert_options = pacsv.ConvertOptions(
        column_types={"value": dtype},
        include_columns=["value"],
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    if true_values is not None:
        convert_options.true_values = list(true_values)
    if false_values is not None:
        convert_options.false_values = list(false_values)
    parse_options = pacsv.ParseOptions(
        delimiter=",", quote_char='"', double_quote=True, newlines_in_values=True
    )

    def convert(values: Sequence[bytes | None]) -> str | None:
        data = b"".join(b",\n" if v is None else b'"' + v.replace(b'"', b'""') + b'",\n' for v in values)
        read_options = pacsv.ReadOptions(
            column_names=["value", "_"], use_threads=False, block_size=max(len(data) + 1, 1 << 16)
        )
        try:
            pacsv.read_csv(
                pa.BufferReader(data),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        except pa.ArrowInvalid as exc:
            return str(exc)
        return None

    return convert


def conversion_failures(values: pa.Array, convert: Converter) -> Iterator[tuple[int, bytes, str]]:
    """The values of a raw (binary) column that ``convert`` rejects: ``(index, value, error)``, in order.

    One call converts the whole array; only a failing part is bisected, so finding the first bad
    value of a block costs about two conversions of the block.
    """
    raw: list[bytes | None] = values.to_pylist()

    def visit(low: int, high: int) -> Iterator[tuple[int, bytes, str]]:
        error = convert(raw[low:high])
        if error is None:
            return
        if high - low == 1:
            value = raw[low]
            yield low, b"" if value is None else value, error
            return
        middle = (low + high) // 2
        yield from visit(low, middle)
        yield from visit(middle, high)

    if raw:
        yield from visit(0, len(raw))
