"""Built-in JSON Lines source and destination (one JSON object per line).

Source: one file or a glob (``.gz``/``.bz2``/``.zst`` decompressed by extension), streamed with
``pyarrow.json.open_json``. Column types are declared with ``columns: {name: type}``, or inferred from
the first ``infer_rows`` objects of the first file (:func:`JsonlSource.discover`, with the rules of
:mod:`conduit.inference`). A field that appears later and is not in the schema is an error naming the
field and line (never silently dropped); declare it, or set ``unexpected_fields: ignore``.

Destination: one file, written to a hidden temp file and renamed over the target at commit. Rows are
encoded with vectorised Arrow string kernels, not per-row Python: integers and floats as JSON numbers
(NaN and infinities as ``NaN``/``Infinity``/``-Infinity``, which Python and Arrow read back), decimals
as strings (exact), dates and timestamps as ISO-8601 strings (UTC instants end in ``Z``), booleans,
and escaped strings. Binary (base64), list and struct columns take a slower per-value path.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from pydantic import Field, field_validator

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
    WriteRequest,
)
from conduit.errors import DataError, DataLocation
from conduit.files import (
    Writeback,
    already_loaded,
    compression_for,
    ensure_parent,
    expand_paths,
    fsync_path,
    remove_quietly,
    temp_path_for,
)
from conduit.inference import DEFAULT_INFER_ROWS, InferenceRules, infer_type
from conduit.types import parse_type, type_name

SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".jsonl.bz2", ".jsonl.zst", ".json.gz")
DEFAULT_BLOCK = 1 << 20
SAMPLE_CHUNK = 1 << 20


def _parse_types(value: dict[str, str] | None) -> dict[str, str] | None:
    for name, spec in (value or {}).items():
        try:
            parse_type(spec)
        except ValueError as exc:
            raise ValueError(f"column {name!r}: {exc}") from None
    return value


class JsonlSourceOptions(ConnectorOptions):
    path: LocalPath
    columns: dict[str, str] | None = None
    unexpected_fields: Literal["error", "ignore"] = "error"
    block_size: int | None = None
    infer_rows: int = Field(default=DEFAULT_INFER_ROWS, ge=1)

    _types = field_validator("columns")(_parse_types)


# JSON strings hold dates, times and timestamps (never numbers or booleans: a quoted "01234" is text);
# JSON numbers hold numbers, up to 76 digits as decimal256 (Arrow's JSON reader cannot read a number as
# text, so a number column cannot fall back to string the way a CSV column does).
_STRING_RULES = InferenceRules(numbers=False, booleans=False, trim=False)
_NUMBER_RULES = InferenceRules(booleans=False, temporal=False, trim=False, max_precision=76)


def _parsed_as(dtype: pa.DataType) -> pa.DataType:
    """The type Arrow's JSON parser reads a column as: dates, times and timestamps as strings, converted
    after (:func:`_cast`) -- the parser reads dates only from numbers, no times, and would accept a
    UTC offset in a timestamp column without a time zone, dropping it."""
    temporal = pa.types.is_date(dtype) or pa.types.is_time(dtype) or pa.types.is_timestamp(dtype)
    return pa.string() if temporal else dtype


class JsonlSource(Source):
    options_model = JsonlSourceOptions
    capabilities = SourceCapabilities(typed=False, declared_columns=True, file_positions=True)
    options: JsonlSourceOptions

    def files(self) -> list[str]:
        return expand_paths(self.options.path, SUFFIXES)

    def check(self) -> None:
        self.files()

    def _stream(self, file: str) -> pa.NativeFile:
        return pa.input_stream(file, compression=compression_for(file))

    def _read_options(self, batch_size: int | None = None) -> pajson.ReadOptions:
        block = self.options.block_size or DEFAULT_BLOCK
        if batch_size is not None and self.options.block_size is None:
            block = max(64 << 10, min(64 << 20, batch_size * 200))
        return pajson.ReadOptions(block_size=block, use_threads=True)

    def discover(self) -> pa.Schema:
        """The columns of the first ``infer_rows`` objects of the first file, in order of appearance,
        plus any declared column they lack; declared types, else inferred ones.

        Arrow's JSON parser reads the sample and says what each field holds: ``true``/``false`` is
        ``bool``; numbers are typed from their literal text (:mod:`conduit.inference`: ``int64``,
        ``decimal(p,s)``, ``float64`` when one has an exponent); strings are ``date``, ``time``,
        ``timestamp[us]``, ``timestamp[us, UTC]`` or ``string``; objects and arrays keep the struct
        and list types Arrow infers; a field that is always null is ``string``.
        """
        declared = {k: parse_type(v) for k, v in (self.options.columns or {}).items()}
        file = self.files()[0]
        lines = self._sample(file)
        inferred = self._infer(file, lines, set(declared)) if lines else pa.schema([])
        fields = []
        for field in inferred:
            dtype = declared.get(field.name, field.type)
            fields.append(pa.field(field.name, pa.string() if pa.types.is_null(dtype) else dtype))
        names = set(inferred.names)
        fields.extend(pa.field(name, dtype) for name, dtype in declared.items() if name not in names)
        if not fields:
            raise DataError("file holds no JSON objects and no columns are declared", DataLocation(file=file))
        return pa.schema(fields)

    def _sample(self, file: str) -> list[bytes]:
        """The first ``infer_rows`` non-blank lines of ``file`` (read in 1 MiB chunks, split by bytes)."""
        wanted = self.options.infer_rows
        lines: list[bytes] = []
        pending: list[bytes] = []  # the start of a line that continues in the next chunk
        with self._stream(file) as stream:
            while len(lines) < wanted:
                chunk = bytes(stream.read(SAMPLE_CHUNK))
                if not chunk:
                    lines.extend(line for line in [b"".join(pending)] if line.strip())
                    break
                if b"\n" not in chunk:
                    pending.append(chunk)
                    continue
                parts = chunk.split(b"\n")
                parts[0] = b"".join([*pending, parts[0]])
                pending = [parts.pop()]
                lines.extend(line for line in parts if line.strip())
        return lines[:wanted]

    def _infer(self, file: str, lines: list[bytes], declared: set[str]) -> pa.Schema:
        """The sample's columns with their inferred types (declared ones as Arrow sees them).

        Arrow's parse of the sample gives each field's kind, and the text of plain strings. The text
        of numbers (``1.50``, ``1e5``) and of the strings Arrow took for timestamps (``Z`` or not) is
        gone from its result: Python's JSON parser gives it (one C call over the sample, each literal
        kept as text, Arrow building the columns), or for timestamps alone a second Arrow parse with
        those columns as strings.
        """
        parsed = _read_sample(file, lines, None)
        types = {field.name: field.type for field in parsed.schema}
        undeclared = [field for field in parsed.schema if field.name not in declared]
        numbers = [field.name for field in undeclared if pa.types.is_floating(field.type)]
        stamps = [field.name for field in undeclared if pa.types.is_timestamp(field.type)]
        texts = {f.name: parsed.column(f.name) for f in undeclared if pa.types.is_string(f.type)}
        if numbers:
            literals = _literals(lines, numbers + stamps)
            if literals is not None:
                texts.update((name, literals.field(name)) for name in numbers + stamps)
        missing = [name for name in stamps if name not in texts]
        if missing:
            strings = _read_sample(file, lines, pa.schema([(name, pa.string()) for name in missing]))
            texts.update((name, strings.column(name)) for name in missing)
        for name, values in texts.items():
            if name in numbers:
                found = infer_type(values, _NUMBER_RULES)
                types[name] = pa.float64() if pa.types.is_string(found) else found
            else:
                types[name] = infer_type(values, _STRING_RULES)
        return pa.schema([pa.field(name, dtype) for name, dtype in types.items()])

    def read(self, request: ReadRequest) -> Iterator[SourceBatch]:
        parse_schema = pa.schema([pa.field(f.name, _parsed_as(f.type)) for f in request.schema])
        parse = pajson.ParseOptions(
            explicit_schema=parse_schema,
            unexpected_field_behavior="ignore" if self.options.unexpected_fields == "ignore" else "error",
        )
        hint = self._hint
        for file in self.files():
            if already_loaded(file, request.skip_files):
                continue
            rows = 0
            try:
                with self._stream(file) as stream:
                    try:
                        reader = pajson.open_json(
                            stream, read_options=self._read_options(request.batch_size), parse_options=parse
                        )
                    except pa.ArrowInvalid as exc:
                        if "empty" in str(exc).lower():
                            continue
                        raise
                    for batch in reader:
                        batch = _cast(batch, request.schema, file, rows, hint)
                        rows += batch.num_rows
                        yield SourceBatch(batch, {"file": file, "row": rows})
            except pa.ArrowInvalid as exc:
                raise _locate(file, exc, request.schema, hint) from None

    def _hint(self, column: str) -> str:
        """What to add to the message for a value that does not fit ``column``'s type."""
        if column in (self.options.columns or {}):
            return ""
        return (
            f"; the type was inferred from the first {self.options.infer_rows} rows of {self.files()[0]}: "
            f"declare the column's type under columns:"
        )


def _read_sample(file: str, lines: list[bytes], schema: pa.Schema | None) -> pa.Table:
    """The sample lines parsed by Arrow (with ``schema``: only those columns, as those types)."""
    block_size = max(SAMPLE_CHUNK, max(map(len, lines)) + 1)
    read_options = pajson.ReadOptions(block_size=block_size, use_threads=True)
    parse_options = pajson.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="ignore" if schema is not None else "infer"
    )
    try:
        sample = pa.BufferReader(b"\n".join(lines) + b"\n")
        return pajson.read_json(sample, read_options=read_options, parse_options=parse_options)
    except pa.ArrowInvalid as exc:
        raise _locate(file, exc, None) from None


def _literals(lines: list[bytes], names: list[str]) -> pa.StructArray | None:
    """The fields ``names`` of the sample lines as the text of each value (``1.50``, ``1e5``), from
    Python's JSON parser (in C: each number literal goes to ``str``; Arrow builds the columns from the
    parsed objects). ``None`` if that parser refuses what Arrow's accepted."""
    try:
        objects = json.loads(
            b"[" + b",".join(lines) + b"]", parse_float=str, parse_int=str, parse_constant=str
        )
        return pa.array(objects, type=pa.struct([(name, pa.string()) for name in names]))
    except (ValueError, TypeError, RecursionError, pa.ArrowException):
        return None


def _no_hint(column: str) -> str:
    return ""


def _cast(
    batch: pa.RecordBatch,
    schema: pa.Schema,
    file: str,
    first_row: int,
    hint: Callable[[str], str] = _no_hint,
) -> pa.RecordBatch:
    """``batch`` as parsed (see :func:`_parsed_as`) converted to ``schema``, exactly (the first value
    that does not convert is a located :class:`DataError`)."""
    if batch.schema.equals(schema):
        return batch.select(schema.names) if batch.schema.names != schema.names else batch
    columns = []
    for field in schema:
        column = batch.column(field.name)
        if column.type != field.type:
            column, failures = coerce_column(column, field.type, field.name)
            if failures:
                value = batch.column(field.name)[failures[0].index].as_py()
                raise DataError(
                    f"value {value!r} is not a valid {type_name(field.type)}{hint(field.name)}",
                    DataLocation(file=file, row=first_row + failures[0].index + 1, column=field.name),
                )
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _shown(value: object) -> str:
    return str(value) if isinstance(value, Decimal) else repr(value)


def _locate(
    file: str, exc: pa.ArrowInvalid, schema: pa.Schema | None, hint: Callable[[str], str] = _no_hint
) -> DataError:
    """Error path only: find the line that made Arrow's JSON reader fail, with plain Python.

    Numbers are parsed as :class:`~decimal.Decimal` so that a value is checked against a decimal
    column exactly; columns Arrow reads as text (see :func:`_parsed_as`) are checked by :func:`_cast`.
    """
    reason = str(exc).split("\n")[0].removeprefix("JSON parse error: ")
    known = set(schema.names) if schema is not None else None
    with pa.input_stream(file, compression=compression_for(file)) as stream:
        for number, raw in enumerate(io.BufferedReader(stream), start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw, parse_float=Decimal, parse_int=Decimal)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                message = getattr(err, "msg", str(err))
                return DataError(f"invalid JSON: {message}", DataLocation(file=file, line=number))
            if not isinstance(value, dict):
                return DataError("each line must hold a JSON object", DataLocation(file=file, line=number))
            if known is not None:
                extra = [key for key in value if key not in known]
                if extra and "unexpected field" in reason:
                    return DataError(
                        f"field {extra[0]!r} is not in the schema ({', '.join(sorted(known))}); declare "
                        f"it under columns:, or set unexpected_fields: ignore",
                        DataLocation(file=file, line=number, column=extra[0]),
                    )
                for field in schema or []:
                    if value.get(field.name) is None or _parsed_as(field.type) != field.type:
                        continue
                    try:
                        pc.cast(pa.array([value[field.name]]), field.type)
                    except (pa.ArrowException, OverflowError, ValueError, TypeError):
                        return DataError(
                            f"value {_shown(value[field.name])} does not fit type {type_name(field.type)}"
                            f"{hint(field.name)}",
                            DataLocation(file=file, line=number, column=field.name),
                        )
    return DataError(reason, DataLocation(file=file))


class JsonlDestinationOptions(ConnectorOptions):
    path: LocalPath


class JsonlDestination(Destination):
    options_model = JsonlDestinationOptions
    capabilities = DestinationCapabilities(
        write_modes=frozenset({"replace"}), atomic=True, preserves_types=False
    )
    options: JsonlDestinationOptions

    def target_id(self) -> str:
        """The output file."""
        return self.options.path

    def check(self) -> None:
        ensure_parent(self.options.path)

    def open(self, request: WriteRequest) -> LoadSession:
        ensure_parent(self.options.path)
        return JsonlLoadSession(self.options.path, request)


class JsonlLoadSession(LoadSession):
    def __init__(self, target: str, request: WriteRequest) -> None:
        self.target = target
        self.temp = temp_path_for(target, request.run_id)
        self.keys = [json.dumps(name, ensure_ascii=False) for name in request.schema.names]
        self.stream: pa.NativeFile | None = pa.output_stream(self.temp, compression=compression_for(target))
        self.writeback = Writeback()

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        assert self.stream is not None
        parts: list[Any] = []
        for index, key in enumerate(self.keys):
            parts.append(("{" if index == 0 else ",") + key + ":")
            parts.append(encode_json_values(batch.column(index)))
        parts.append("}\n")
        lines = pc.binary_join_element_wise(*parts, "")
        # The rows are contiguous in the string array's data buffer: write that slice as it is.
        _, offsets_buffer, data = lines.buffers()
        offsets = pa.Array.from_buffers(
            pa.int32(), len(lines) + 1, [None, offsets_buffer], offset=lines.offset
        )
        self.stream.write(data[offsets[0].as_py() : offsets[-1].as_py()])
        self.writeback.push(self.temp)

    def commit(self, state: Mapping[str, Any]) -> None:
        assert self.stream is not None
        self.stream.close()
        self.stream = None
        self.writeback.wait()
        self.writeback.close()
        fsync_path(self.temp)
        os.replace(self.temp, self.target)
        fsync_path(str(Path(self.target).parent))
        self.committed = True

    def abort(self) -> None:
        self.writeback.close()
        if self.stream is not None:
            try:
                self.stream.close()
            except (OSError, pa.ArrowException):
                pass
            self.stream = None
        remove_quietly(self.temp)


_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")]


def _json_strings(values: pa.Array) -> pa.Array:
    text = values.cast(pa.string())
    for char, escaped in _ESCAPES:
        text = pc.replace_substring(text, pattern=char, replacement=escaped)
    if pc.any(pc.match_substring_regex(text, "[\\x00-\\x1f]")).as_py():
        for code in range(0x20):
            char = chr(code)
            if char not in "\n\r\t":
                text = pc.replace_substring(text, pattern=char, replacement=f"\\u{code:04x}")
    return pc.binary_join_element_wise('"', text, '"', "")


def encode_json_values(column: pa.Array) -> pa.Array:
    """Each value of ``column`` as JSON text (``null`` for nulls), vectorised for the common types."""
    dtype = column.type
    if pa.types.is_null(dtype):
        return pa.array(["null"] * len(column), pa.string())
    if pa.types.is_boolean(dtype):
        text = pc.if_else(column, "true", "false")
    elif pa.types.is_integer(dtype):
        text = column.cast(pa.string())
    elif pa.types.is_floating(dtype):
        text = column.cast(pa.string())
        for raw, token in (("nan", "NaN"), ("-inf", "-Infinity"), ("inf", "Infinity")):
            text = pc.if_else(pc.equal(text, raw), token, text)
    elif pa.types.is_decimal(dtype) or pa.types.is_date(dtype) or pa.types.is_time(dtype):
        text = _json_strings(column.cast(pa.string()))
    elif pa.types.is_timestamp(dtype):
        if dtype.tz is not None:
            utc = column.cast(pa.timestamp(dtype.unit, "UTC"))
            text = _json_strings(pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ"))
        else:
            text = _json_strings(pc.strftime(column, format="%Y-%m-%dT%H:%M:%S"))
    elif pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        text = _json_strings(column)
    elif pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        encoded = [None if v is None else base64.b64encode(v).decode() for v in column.to_pylist()]
        text = _json_strings(pa.array(encoded, pa.string()))
    else:
        dumped = [json.dumps(v, default=str, ensure_ascii=False) for v in column.to_pylist()]
        text = pa.array(dumped, pa.string())
    return pc.fill_null(text, "null")
