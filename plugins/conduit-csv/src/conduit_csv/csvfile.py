"""One CSV file as the source reads it: its dialect, encoding, header and pyarrow streaming reader.

pyarrow reads the data; the header row is read here with Python's csv module (a few lines only), so
header problems (duplicate or empty names, a header that differs between files) are reported with
their line, and pyarrow is always given the column names.

Every pyarrow stream gets a *sentinel* record appended after the file's last byte: one row holding
:data:`SENTINEL` in every column, which is a null value (added to ``null_values``). pyarrow accepts a quote that is still open at
the end of the file and silently reads the rest of the file into one value; with the sentinel, a
clean file ends with an all-null row (which the source drops), while a file ending inside a quote
swallows the sentinel into that value, and the source reports the unterminated quote.

A dead-letter read (``on_error: dlq``, :meth:`CsvFile.open_dlq_reader`) differs in three ways: the
bytes go through Python's decoder even for UTF-8, with undecodable bytes escaped (see
:data:`~conduit_csv.locate.ESCAPE`), so pyarrow always sees valid UTF-8 and a row holding bad bytes
can be set aside like any other; records with the wrong number of fields go to an
``invalid_row_handler`` instead of failing the read; and every column is read as text, to be
converted by :func:`conduit.coerce.coerce_batch`.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv

from conduit.errors import ConnectorError, DataError, DataLocation
from conduit_csv.encoding import SAMPLE_SIZE, canonical, is_utf8, resolve
from conduit_csv.files import compression_of, open_bytes, read_sample
from conduit_csv.locate import (
    DECODE_ERRORS,
    ESCAPE,
    ESCAPE_ERRORS,
    MARK,
    LineFinder,
    Record,
    RecordScanner,
    ScanError,
)
from conduit_csv.options import CsvSourceOptions

# Unicode noncharacters (reserved for internal use): no byte of their UTF-8 form is ASCII, so none can
# be a delimiter, quote or escape character, and no real file holds them.
SENTINEL = "\ufdd0\ufdd1\ufdd2\ufdd3"
DEFAULT_BLOCK_SIZE = 1 << 20


@dataclass(frozen=True)
class Dialect:
    """How records and fields are delimited, for pyarrow and for Python's csv module alike."""

    delimiter: str
    quote_char: str | None
    escape_char: str | None
    double_quote: bool
    newlines_in_values: bool

    @classmethod
    def of(cls, options: CsvSourceOptions) -> Dialect:
        return cls(
            options.delimiter,
            options.quote_char,
            options.escape_char,
            options.double_quote,
            options.newlines_in_values,
        )

    def parse_options(self) -> pacsv.ParseOptions:
        return pacsv.ParseOptions(
            delimiter=self.delimiter,
            quote_char=self.quote_char if self.quote_char is not None else False,
            double_quote=self.double_quote,
            escape_char=self.escape_char if self.escape_char is not None else False,
            newlines_in_values=self.newlines_in_values,
            ignore_empty_lines=True,
        )

    def python(self) -> dict[str, Any]:
        """Keyword arguments for :func:`csv.reader` that read the same records."""
        return {
            "delimiter": self.delimiter,
            "quotechar": self.quote_char,
            "quoting": csv.QUOTE_MINIMAL if self.quote_char is not None else csv.QUOTE_NONE,
            "escapechar": self.escape_char,
            "doublequote": self.double_quote,
            "skipinitialspace": False,
            "strict": False,
        }


@dataclass(frozen=True)
class Layout:
    """Where a file's data starts and what its columns are called.

    ``header``: the header row as written in the file (``None`` without one). ``names``: the column
    names (the header, or ``column_names``). ``skip_lines``: physical lines before the header or the
    first data row. ``empty``: the file holds no record at all, so pyarrow must not read it.
    """

    header: tuple[str, ...] | None
    names: tuple[str, ...]
    header_line: int | None
    skip_lines: int
    empty: bool


class _Readable(Protocol):
    closed: bool

    def read(self, size: int = -1) -> bytes: ...

    def close(self) -> None: ...


class EscapingStream:
    """A byte stream decoded from ``encoding`` and encoded again as UTF-8 (read by pyarrow).

    Undecodable bytes become :data:`~conduit_csv.locate.ESCAPE` + ``chr(0xE000 + byte)``: valid
    UTF-8, no ASCII (so no delimiter, quote or line break), undone by
    :func:`~conduit_csv.locate.escaped_bytes`. ``escaped`` says whether any byte was so far.
    """

    def __init__(self, stream: pa.NativeFile, encoding: str) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)(errors=ESCAPE_ERRORS)
        self._pending = b""
        self._eof = False
        self.escaped = False
        self.closed = False

    def _decode(self, data: bytes, final: bool) -> None:
        text = self._decoder.decode(data, final=final)
        if ESCAPE in text:
            self.escaped = True
        self._pending += text.encode("utf-8")

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            while not self._eof:
                self._fill(1 << 20)
            out, self._pending = self._pending, b""
            return out
        while len(self._pending) < size and not self._eof:
            self._fill(size)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def _fill(self, size: int) -> None:
        data = bytes(self._stream.read(size))
        if data:
            self._decode(data, final=False)
        else:
            self._eof = True
            self._decode(b"", final=True)

    def close(self) -> None:
        if not self._stream.closed:
            self._stream.close()
        self.closed = True


class _Appended:
    """A read-only file object: a pyarrow stream, then ``tail`` (read by pyarrow through PythonFile).

    Reads are filled to the size asked for (pyarrow treats what one read returns as a block), so the
    tail joins the file's last block instead of arriving as a block of its own.
    """

    def __init__(self, stream: pa.NativeFile | _Readable, tail: bytes) -> None:
        self._stream = stream
        self._tail = tail
        self._exhausted = False
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        chunks: list[bytes] = []
        wanted = size if size >= 0 else None
        while not self._exhausted and (wanted is None or wanted > 0):
            data = self._stream.read(wanted) if wanted is not None else self._stream.read()
            if not data:
                self._exhausted = True
                self._stream.close()
                break
            chunks.append(bytes(data))
            if wanted is None:
                continue
            wanted -= len(data)
        if self._exhausted:
            take = len(self._tail) if wanted is None else wanted
            chunks.append(self._tail[:take])
            self._tail = self._tail[take:]
        return b"".join(chunks)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if not self._stream.closed:
            self._stream.close()
        self.closed = True


class CsvFile:
    """One matched file: path, compression and encoding (detected once), and ways to open it."""

    def __init__(self, path: str, options: CsvSourceOptions) -> None:
        self.path = path
        self.options = options
        self.dialect = Dialect.of(options)
        self.compression = compression_of(path, options.compression)
        self._sample: tuple[bytes, bool] | None = None
        auto = options.encoding == "auto"
        self.encoding = resolve(options.encoding, *self.sample()) if auto else canonical(options.encoding)

    def sample(self) -> tuple[bytes, bool]:
        """The first 64 KiB of decompressed bytes, and whether that is the whole file."""
        if self._sample is None:
            self._sample = read_sample(self.path, self.compression, SAMPLE_SIZE)
        return self._sample

    @property
    def transcoded(self) -> bool:
        """Whether the bytes go through a Python decoder before pyarrow (not UTF-8)."""
        return not is_utf8(self.encoding)

    def location(
        self, line: int | None = None, row: int | None = None, column: str | None = None
    ) -> DataLocation:
        return DataLocation(file=self.path, line=line, row=row, column=column)

    @contextmanager
    def text(self) -> Iterator[io.TextIOWrapper]:
        """The file's text (undecodable bytes as :data:`MARK`), with line breaks kept as they are."""
        stream = open_bytes(self.path, self.compression)
        try:
            yield io.TextIOWrapper(stream, encoding=self.encoding, errors=DECODE_ERRORS, newline="")
        finally:
            stream.close()

    @contextmanager
    def records(self, skip_lines: int, field_limit: int = 1 << 20) -> Iterator[RecordScanner]:
        """The file's records read by Python's csv module (header and error path only)."""
        with self.text() as text:
            yield RecordScanner(text, self.dialect.python(), skip_lines=skip_lines, field_limit=field_limit)

    @contextmanager
    def line_finder(self, layout: Layout, field_limit: int = 1 << 20) -> Iterator[LineFinder]:
        """The lines where data rows start (the file is opened at the first question, if any)."""
        opened: list[Any] = []

        def lines() -> Iterator[str]:
            stream = open_bytes(self.path, self.compression)
            opened.append(stream)
            yield from io.TextIOWrapper(stream, encoding=self.encoding, errors=DECODE_ERRORS, newline="")

        try:
            yield LineFinder(
                lines(),
                self.dialect.python(),
                skip_lines=layout.skip_lines,
                header=layout.header is not None,
                field_limit=field_limit,
            )
        finally:
            for stream in opened:
                stream.close()

    def _sentinel(self, columns: int) -> bytes:
        return ("\n" + self.dialect.delimiter.join([SENTINEL] * columns) + "\n").encode("utf-8")

    def arrow_stream(self, columns: int) -> pa.NativeFile:
        """UTF-8 bytes for pyarrow (transcoded if needed), with the sentinel record appended."""
        stream = open_bytes(self.path, self.compression)
        if self.transcoded:
            stream = pa.transcoding_input_stream(stream, self.encoding, "utf-8")
        return pa.PythonFile(_Appended(stream, self._sentinel(columns)), mode="r")

    def open_reader(
        self,
        layout: Layout,
        convert_options: pacsv.ConvertOptions,
        block_size: int,
        use_threads: bool = True,
    ) -> pacsv.CSVStreamingReader:
        """pyarrow's streaming reader over the data rows (raises pyarrow's errors unchanged).

        ``use_threads=False`` for a read that stops early (the inference sample): the multithreaded
        reader parses blocks ahead, which costs more than it saves when only the first rows are used.
        """
        read_options = pacsv.ReadOptions(
            use_threads=use_threads,
            block_size=block_size,
            skip_rows=layout.skip_lines,
            column_names=list(layout.names),
            skip_rows_after_names=1 if layout.header is not None else 0,
        )
        return pacsv.open_csv(
            self.arrow_stream(len(layout.names)),
            read_options=read_options,
            parse_options=self.dialect.parse_options(),
            convert_options=convert_options,
        )

    def open_dlq_reader(
        self,
        layout: Layout,
        convert_options: pacsv.ConvertOptions,
        block_size: int,
        invalid_row_handler: Callable[[pacsv.InvalidRow], str],
    ) -> tuple[pacsv.CSVStreamingReader, EscapingStream]:
        """pyarrow's reader for a dead-letter read, and the stream (to ask whether it escaped bytes).

        Single-threaded: only then does pyarrow give ``invalid_row_handler`` the row numbers
        (``InvalidRow.number``: records from the file's start, skipped lines and header included,
        blank lines not). It reads one block ahead, so calls come before the batch they belong to.
        """
        read_options = pacsv.ReadOptions(
            use_threads=False,
            block_size=block_size,
            skip_rows=layout.skip_lines,
            column_names=list(layout.names),
            skip_rows_after_names=1 if layout.header is not None else 0,
        )
        parse_options = self.dialect.parse_options()
        parse_options.invalid_row_handler = invalid_row_handler
        escaping = EscapingStream(open_bytes(self.path, self.compression), self.encoding)
        stream = pa.PythonFile(_Appended(escaping, self._sentinel(len(layout.names))), mode="r")
        reader = pacsv.open_csv(
            stream, read_options=read_options, parse_options=parse_options, convert_options=convert_options
        )
        return reader, escaping


def convert_options(
    options: CsvSourceOptions,
    types: dict[str, pa.DataType],
    include: Sequence[str],
) -> pacsv.ConvertOptions:
    """pyarrow conversion: declared ``types``, ``include`` in order, and the null/bool spellings.

    An unquoted field equal to one of ``null_values`` is NULL; a quoted one never is, so ``""`` is the
    empty string while an empty unquoted field is NULL (with the default ``null_values: [""]``).
    """
    result = pacsv.ConvertOptions(
        column_types=types,
        include_columns=list(include),
        null_values=[*options.null_values, SENTINEL],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    if options.true_values is not None:
        result.true_values = options.true_values
    if options.false_values is not None:
        result.false_values = options.false_values
    return result


def text_convert_options(options: CsvSourceOptions, schema: pa.Schema) -> pacsv.ConvertOptions:
    """pyarrow conversion for a dead-letter read: every column as text (``binary`` ones as bytes),
    with the same NULLs as :func:`convert_options`; the stream is valid UTF-8 already."""
    types = {field.name: pa.binary() if pa.types.is_binary(field.type) else pa.string() for field in schema}
    result = convert_options(options, types, schema.names)
    result.check_utf8 = False
    return result


def _check_header(file: CsvFile, record: Record, names_in_use: bool) -> None:
    """The header decodes; when its names are the column names, they are unique and not empty."""
    where = file.location(line=record.line)
    if any(MARK in name for name in record.fields):
        raise DataError(
            f"the header row is not valid {file.encoding} text (set encoding: to the file's encoding, "
            "or encoding: auto)",
            where,
        )
    if any("\x00" in name for name in record.fields):
        raise DataError(
            f"the header row holds NUL bytes, so the file is not {file.encoding} text: it is probably "
            "UTF-16 without a byte-order mark (set encoding: utf-16-le or utf-16-be, or encoding: auto)",
            where,
        )
    if not names_in_use:
        return
    seen: set[str] = set()
    for index, name in enumerate(record.fields):
        if not name.strip():
            raise DataError(
                f"the header row has an empty column name (column {index + 1}); name every column, "
                "or set column_names:",
                where,
            )
        if name in seen:
            raise DataError(
                f"duplicate column name {name!r} in the header row; names must be unique (rename the "
                "columns with column_names:)",
                DataLocation(file=file.path, line=record.line, column=name),
            )
        seen.add(name)


def _first_record(file: CsvFile, skip_lines: int) -> Record | None:
    try:
        with file.records(skip_lines) as scanner:
            return next(iter(scanner), None)
    except ScanError as exc:
        raise DataError(f"cannot parse the first row ({exc})", file.location(line=exc.line)) from None
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc}", file.location()) from None


def read_layout(file: CsvFile) -> Layout:
    """Read the header (or check that data follows) and validate the column names."""
    options = file.options
    record = _first_record(file, options.skip_rows)
    declared = tuple(options.column_names) if options.column_names is not None else None
    if not options.header:
        assert declared is not None  # the options model requires column_names without a header
        return Layout(None, declared, None, options.skip_rows, record is None)
    if record is None:
        if declared is not None:
            return Layout(None, declared, None, options.skip_rows, True)
        skipped = f" after skipping {options.skip_rows} lines" if options.skip_rows else ""
        raise DataError(
            f"file is empty: no header row{skipped} and no column names declared (set column_names:)",
            file.location(),
        )
    header = tuple(record.fields)
    _check_header(file, record, names_in_use=declared is None)
    if declared is None:
        names = header
    elif len(declared) != len(header):
        raise DataError(
            f"column_names lists {len(declared)} names but the header row has {len(header)} columns",
            file.location(line=record.line),
        )
    else:
        names = declared
    return Layout(header, names, record.line, record.line - 1, False)


def check_declared_columns(file: CsvFile, layout: Layout) -> None:
    """Every column named in ``columns:`` exists in the file."""
    unknown = [name for name in file.options.columns or {} if name not in layout.names]
    if unknown:
        raise ConnectorError(
            f"columns: names {', '.join(map(repr, unknown))}, which {file.path} does not have "
            f"(its columns: {', '.join(layout.names)})"
        )
