"""The ``csv`` source: one file or a glob of files, streamed with pyarrow's CSV reader.

With ``on_error: fail`` (the default) a file is read by pyarrow's multithreaded reader with the
column types given to it, and bad input stops the read with one located :class:`DataError`. With
``on_error: dlq`` it is read single-threaded and as text (see :mod:`conduit_csv.rejects`): bad rows
are reported in :attr:`SourceBatch.rejected` and the read goes on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from conduit.coerce import coerce_column
from conduit.connectors import ReadRequest, Source, SourceBatch, SourceCapabilities
from conduit.errors import ConnectorError, DataError, DataLocation
from conduit.files import already_loaded
from conduit.inference import InferenceRules, infer_type
from conduit_csv.csvfile import (
    DEFAULT_BLOCK_SIZE,
    SENTINEL,
    CsvFile,
    Layout,
    check_declared_columns,
    convert_options,
    read_layout,
    text_convert_options,
)
from conduit_csv.diagnose import (
    DEFAULT_FALSE,
    DEFAULT_TRUE,
    ReadContext,
    explain,
    is_text,
    open_quote_problem,
    structural_problem,
)
from conduit_csv.files import check_readable, compression_of, match_files
from conduit_csv.options import CsvSourceOptions
from conduit_csv.rejects import InvalidRows, Stretches, TextConverter

MIN_BLOCK_SIZE = 64 * 1024
MAX_BLOCK_SIZE = 1 << 20  # pyarrow's own default: larger blocks raise peak RSS, not speed
_READ_ERRORS = (pa.ArrowInvalid, UnicodeDecodeError)


class CsvSource(Source):
    """Reads CSV files as Arrow record batches (see the package README for the options)."""

    options_model = CsvSourceOptions
    capabilities = SourceCapabilities(
        typed=False, declared_columns=True, file_positions=True, rejects_rows=True
    )
    options: CsvSourceOptions

    def __init__(self, options: CsvSourceOptions) -> None:
        super().__init__(options)
        self._reader: pacsv.CSVStreamingReader | None = None
        self._deferred: DataError | None = None

    def check(self) -> None:
        for path in match_files(self.options.path):
            check_readable(path)
            compression_of(path, self.options.compression)

    # -- discover -----------------------------------------------------------------------------

    def discover(self) -> pa.Schema:
        """Header names from the first file; declared types, else types inferred from its first rows.

        The sample is the first ``infer_rows`` data rows of the first file, read as text; each column
        not declared gets the narrowest type that holds every sampled value exactly (see
        :mod:`conduit.inference`). A sample that pyarrow cannot read (a row with the wrong number of
        fields, bytes that are not text in the encoding) does not fail here, as the entity may set such
        rows aside (``on_error: dlq``): the types are inferred from the rows that do read (a column
        holding bytes that are not text is ``string``), and a ``fail`` read raises the very error this
        found before it reads anything.
        """
        self._deferred = None
        first = CsvFile(match_files(self.options.path)[0], self.options)
        layout = read_layout(first)
        check_declared_columns(first, layout)
        declared = self.options.declared_types()
        inferred = {} if layout.empty else self._infer(first, layout, declared)
        fields = []
        for index, name in enumerate(layout.names):
            dtype = declared[name] if name in declared else inferred.get(name, pa.null())
            if pa.types.is_null(dtype):
                dtype = pa.string()  # no value to infer from (a header-only file, an all-empty column)
            elif pa.types.is_binary(dtype) and name not in declared:
                if self._deferred is None:
                    self._deferred = self._invalid_text(first, layout, index)
                dtype = pa.string()
            fields.append(pa.field(name, dtype))
        return pa.schema(fields)

    def _infer(
        self, file: CsvFile, layout: Layout, declared: dict[str, pa.DataType]
    ) -> dict[str, pa.DataType]:
        """The inferred type of each undeclared column (``binary``: it holds bytes that are not text).

        Bytes that are not text are looked for in every block read, as a ``fail`` read of those blocks
        would find them; types are inferred from the first ``infer_rows`` rows."""
        blocks = self._sample(file, layout, declared)
        rules = InferenceRules(
            true_values=tuple(self.options.true_values or DEFAULT_TRUE),
            false_values=tuple(self.options.false_values or DEFAULT_FALSE),
        )
        inferred: dict[str, pa.DataType] = {}
        for index, name in enumerate(layout.names):
            dtype = declared.get(name)
            if dtype is not None and not is_text(dtype):
                continue
            try:
                text = blocks.column(name).cast(pa.string())
            except pa.ArrowInvalid:  # not valid UTF-8 (a transcoded stream always is)
                if dtype is None:
                    inferred[name] = pa.binary()
                elif self._deferred is None:
                    self._deferred = self._invalid_text(file, layout, index)
                continue
            if dtype is None:
                inferred[name] = infer_type(text.slice(0, self.options.infer_rows), rules)
        return inferred

    def _sample(self, file: CsvFile, layout: Layout, declared: dict[str, pa.DataType]) -> pa.Table:
        """The read blocks holding the first ``infer_rows`` data rows (only the first block when every
        column is declared), every column as bytes: read with the file's dialect, encoding and null
        values, so these are exactly the values a read converts."""
        block_size = self.options.block_size or DEFAULT_BLOCK_SIZE
        context = ReadContext(file, layout, {}, frozenset(declared), block_size, file.path)
        options = convert_options(self.options, dict.fromkeys(layout.names, pa.binary()), layout.names)
        limit = self.options.infer_rows if any(name not in declared for name in layout.names) else 1
        try:
            reader = _open(file, layout, options, context, use_threads=False)
            return _first_rows(reader, _batches(reader, context), limit)
        except DataError as exc:
            self._deferred = exc
            return self._sample_tolerant(file, layout, options, block_size, exc, limit)

    def _sample_tolerant(
        self,
        file: CsvFile,
        layout: Layout,
        options: pacsv.ConvertOptions,
        block_size: int,
        error: DataError,
        limit: int,
    ) -> pa.Table:
        """The sample read the dead-letter way (invalid records skipped, undecodable bytes escaped), up
        to the first problem even that read cannot pass (the read reports it); ``error`` (what the
        plain read raised) when no row reads at all."""
        try:
            reader, _ = file.open_dlq_reader(layout, options, block_size, lambda row: "skip")
        except (pa.ArrowException, UnicodeError):
            raise error from None
        return _first_rows(reader, _readable_batches(reader), limit)

    def _invalid_text(self, file: CsvFile, layout: Layout, index: int) -> DataError:
        name = layout.names[index]
        block_size = self.options.block_size or DEFAULT_BLOCK_SIZE
        context = ReadContext(file, layout, {}, frozenset(), block_size, file.path)
        problem = structural_problem(context, decode_columns=frozenset({index}))
        if problem is None:
            return DataError(
                f"column {name!r} holds bytes that are not valid {file.encoding} text",
                file.location(column=name),
            )
        return DataError(problem.message, file.location(problem.line, problem.row, problem.column))

    # -- read ---------------------------------------------------------------------------------

    def read(self, request: ReadRequest) -> Iterator[SourceBatch]:
        """Every matched file in order, each streamed in blocks; batches never span two files.

        Every file's header is checked before the first row is read, so a glob whose tenth file has
        another header fails at once rather than after loading nine files.
        """
        if self._deferred is not None and request.on_error != "dlq":
            raise self._deferred
        paths = match_files(self.options.path)
        first = CsvFile(paths[0], self.options)
        first_layout = read_layout(first)
        _check_schema(first, first_layout, request.schema)
        for path in paths[1:]:
            _check_same_header(first, first_layout, CsvFile(path, self.options))
        block_size = self.options.block_size or estimate_block_size(first, request.batch_size)
        read_file = self._read_file_dlq if request.on_error == "dlq" else self._read_file
        for path in paths:
            if already_loaded(path, request.skip_files):
                continue
            file = first if path == first.path else CsvFile(path, self.options)
            layout = first_layout if file is first else read_layout(file)
            if not layout.empty:
                yield from read_file(file, layout, request.schema, block_size, first.path)

    def _read_file(
        self, file: CsvFile, layout: Layout, schema: pa.Schema, block_size: int, inferred_from: str
    ) -> Iterator[SourceBatch]:
        types = {field.name: field.type for field in schema}
        context = ReadContext(
            file, layout, types, frozenset(self.options.columns or {}), block_size, inferred_from
        )
        # Floats are read as text and converted here: pyarrow's CSV reader turns an out-of-range
        # literal such as 1e400 into infinity, which would load a value that was never in the file.
        floats = [name for name, dtype in types.items() if pa.types.is_floating(dtype)]
        read_types = {**types, **dict.fromkeys(floats, pa.string())}
        reader = _open(file, layout, convert_options(self.options, read_types, schema.names), context)
        self._reader = reader
        conform = not reader.schema.equals(schema)
        rows = 0
        pending: pa.RecordBatch | None = None
        try:
            for batch in _batches(reader, context):
                if pending is not None:
                    pending = _exact_floats(pending, floats, schema, file, rows)
                    rows += pending.num_rows
                    yield SourceBatch(_conformed(pending, schema, conform), {"file": file.path, "row": rows})
                pending = batch
        finally:
            reader.close()
            self._reader = None
        if pending is None or not _ends_with_sentinel(pending):
            raise _unterminated(context)
        last = pending.slice(0, pending.num_rows - 1)
        if last.num_rows:
            last = _exact_floats(last, floats, schema, file, rows)
            rows += last.num_rows
            yield SourceBatch(_conformed(last, schema, conform), {"file": file.path, "row": rows})

    def _read_file_dlq(
        self, file: CsvFile, layout: Layout, schema: pa.Schema, block_size: int, inferred_from: str
    ) -> Iterator[SourceBatch]:
        """One file read as text, single-threaded, bad rows set aside (see :mod:`conduit_csv.rejects`)."""
        types = {field.name: field.type for field in schema}
        context = ReadContext(
            file, layout, types, frozenset(self.options.columns or {}), block_size, inferred_from, dlq=True
        )
        header = 1 if layout.header is not None else 0
        invalid = InvalidRows(offset=layout.skip_lines + header, sentinel=SENTINEL)
        converter = TextConverter(
            schema,
            file.encoding,
            self.options.true_values or DEFAULT_TRUE,
            self.options.false_values or DEFAULT_FALSE,
        )
        try:
            reader, stream = file.open_dlq_reader(
                layout, text_convert_options(self.options, schema), block_size, invalid
            )
        except _READ_ERRORS as exc:
            raise explain(exc, context) from None
        self._reader = reader
        try:
            with file.line_finder(layout, field_limit=block_size) as lines:
                stretches = Stretches(file.path, invalid, converter, lines)
                pending: pa.RecordBatch | None = None
                for batch in _batches(reader, context):
                    if pending is not None:
                        yield stretches.take(pending, stream.escaped)
                    pending = batch
                if invalid.swallowed or pending is None or not _ends_with_sentinel(pending):
                    raise _open_quote(context)
                last = stretches.take(pending.slice(0, pending.num_rows - 1), stream.escaped, final=True)
                if last.data.num_rows or last.rejected:
                    yield last
        finally:
            reader.close()
            self._reader = None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def estimate_block_size(file: CsvFile, batch_size: int) -> int:
    """Bytes per read block for about ``batch_size`` rows, from the average row length in a sample."""
    sample, _ = file.sample()
    text = sample.decode(file.encoding, "replace") if file.transcoded else None
    size = len(text.encode("utf-8")) if text is not None else len(sample)
    rows = text.count("\n") if text is not None else sample.count(b"\n")
    if rows == 0:
        return DEFAULT_BLOCK_SIZE
    return max(MIN_BLOCK_SIZE, min(MAX_BLOCK_SIZE, size * batch_size // rows))


def _open(
    file: CsvFile,
    layout: Layout,
    options: pacsv.ConvertOptions,
    context: ReadContext,
    use_threads: bool = True,
) -> pacsv.CSVStreamingReader:
    try:
        return file.open_reader(layout, options, context.block_size, use_threads)
    except _READ_ERRORS as exc:
        raise explain(exc, context) from None
    except pa.ArrowNotImplementedError as exc:
        raise ConnectorError(f"{file.path}: the CSV reader cannot do this: {exc}") from None


def _batches(reader: pacsv.CSVStreamingReader, context: ReadContext) -> Iterator[pa.RecordBatch]:
    """The reader's non-empty batches, with pyarrow's errors turned into located DataErrors."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except _READ_ERRORS as exc:
            raise explain(exc, context) from None
        if batch.num_rows:
            yield batch


def _readable_batches(reader: pacsv.CSVStreamingReader) -> Iterator[pa.RecordBatch]:
    """The reader's batches up to the end or the first error, whichever comes first."""
    while True:
        try:
            yield reader.read_next_batch()
        except (StopIteration, pa.ArrowException, UnicodeError):
            return


def _first_rows(reader: pacsv.CSVStreamingReader, batches: Iterator[pa.RecordBatch], limit: int) -> pa.Table:
    """The batches (read blocks) that hold the first ``limit`` rows, or all; ``reader`` is closed."""
    taken: list[pa.RecordBatch] = []
    rows = 0
    try:
        for batch in batches:
            taken.append(batch)
            rows += batch.num_rows
            if rows >= limit:
                break
    finally:
        reader.close()
    return pa.Table.from_batches(taken, schema=reader.schema)


def _ends_with_sentinel(batch: pa.RecordBatch) -> bool:
    last = batch.num_rows - 1
    return all(not column[last].is_valid for column in batch.columns)


def _unterminated(context: ReadContext) -> DataError:
    try:
        problem = structural_problem(context)
    except (OSError, UnicodeError):
        problem = None
    if problem is None:
        return DataError("unterminated quoted value at the end of the file", context.file.location())
    return DataError(problem.message, context.file.location(problem.line, problem.row, problem.column))


def _open_quote(context: ReadContext) -> DataError:
    """The error for a quote that the end of the file leaves open, on a dead-letter read."""
    try:
        problem = open_quote_problem(context)
    except (OSError, UnicodeError):
        problem = None
    if problem is None:
        return DataError("unterminated quoted value at the end of the file", context.file.location())
    return DataError(problem.message, context.file.location(problem.line, problem.row, problem.column))


def _exact_floats(
    batch: pa.RecordBatch, floats: list[str], schema: pa.Schema, file: CsvFile, rows_before: int
) -> pa.RecordBatch:
    """``batch`` with its float columns (read as text) converted exactly, or a located error."""
    if not floats:
        return batch
    columns = list(batch.columns)
    for name in floats:
        index = batch.schema.get_field_index(name)
        text = pc.utf8_trim(batch.column(index), " \t")  # the CSV reader's number parsing trims these
        converted, failures = coerce_column(text, schema.field(name).type, name)
        if failures:
            first = failures[0]
            reason = first.message.split(": ", 1)[-1]
            raise DataError(reason, file.location(row=rows_before + first.index + 1, column=name))
        columns[index] = converted
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _conformed(batch: pa.RecordBatch, schema: pa.Schema, conform: bool) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(batch.columns, schema=schema) if conform else batch


def _check_schema(file: CsvFile, layout: Layout, schema: pa.Schema) -> None:
    missing = [name for name in schema.names if name not in layout.names]
    if missing:
        raise ConnectorError(
            f"{file.path} has no column {', '.join(map(repr, missing))} (its columns: {', '.join(layout.names)})"
        )


def _check_same_header(first: CsvFile, first_layout: Layout, file: CsvFile) -> None:
    """Every file of a glob has the first file's header row (and every file has one, if needed)."""
    layout = read_layout(file)
    if first_layout.header is None or layout.header is None or layout.header == first_layout.header:
        return
    expected, found = first_layout.header, layout.header
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(map(repr, missing))}")
    if extra:
        parts.append(f"extra {', '.join(map(repr, extra))}")
    if not parts:
        parts.append(f"same columns in another order ({', '.join(found)} instead of {', '.join(expected)})")
    raise DataError(
        f"the header row differs from that of the first file {first.path}: {'; '.join(parts)}",
        DataLocation(file=file.path, line=layout.header_line),
    )
