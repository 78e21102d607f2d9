"""Turning a pyarrow CSV error into one readable :class:`DataError` that says where the problem is.

Called on the error path only: the file is read again (see :mod:`conduit_csv.locate`) to find the
line, row and column that pyarrow's message does not give.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv

from conduit.errors import DataError
from conduit.types import type_name
from conduit_csv.csvfile import CsvFile, Layout, convert_options
from conduit_csv.locate import (
    Problem,
    Record,
    RecordChecker,
    ScanError,
    conversion_failures,
    csv_converter,
    find_record,
    record_problems,
    unterminated_problem,
)

_CONVERSION = re.compile(r"^In CSV column #(\d+): (.*)$", re.DOTALL)
_PREFIXES = re.compile(r"^(?:In CSV column #\d+: )?(?:Row #\d+: )?(?:CSV conversion error to [^:]+: )?")
DEFAULT_TRUE = tuple(pacsv.ConvertOptions().true_values)
DEFAULT_FALSE = tuple(pacsv.ConvertOptions().false_values)
_SHOWN = 60


@dataclass(frozen=True)
class ReadContext:
    """What was being read when pyarrow failed.

    ``types``: the columns being converted and their types (declared, or inferred from the first
    rows of ``inferred_from``); ``declared``: the names whose type the user declared.
    ``dlq``: a dead-letter read, which sets records with the wrong number of fields and bytes that do
    not decode aside, so neither explains a failure.
    """

    file: CsvFile
    layout: Layout
    types: Mapping[str, pa.DataType]
    declared: frozenset[str]
    block_size: int
    inferred_from: str
    dlq: bool = False


def explain(exc: BaseException, ctx: ReadContext) -> DataError:
    """The :class:`DataError` for a pyarrow (or decoding) error raised while reading ``ctx.file``."""
    message = str(exc)
    problem: Problem | None = None
    match = _CONVERSION.match(message)
    if match is not None and "UTF8" not in message and not isinstance(exc, UnicodeDecodeError):
        problem = _quietly(lambda: _conversion_problem(ctx, int(match.group(1))))
    if problem is None:
        problem = _quietly(lambda: structural_problem(ctx))
    if problem is None:  # not found again: fall back to pyarrow's own words
        first_line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
        return DataError(f"cannot read the CSV data: {first_line}", ctx.file.location())
    return DataError(problem.message, ctx.file.location(problem.line, problem.row, problem.column))


def _quietly(find: Callable[[], Problem | None]) -> Problem | None:
    """Run a finder; a file that cannot be re-read (it changed, it is corrupt) gives ``None``."""
    try:
        return find()
    except (OSError, pa.ArrowException, UnicodeError, ScanError):
        return None


def checker(ctx: ReadContext, decode_columns: frozenset[int] | None = None) -> RecordChecker:
    """The record checks for ``ctx``.

    ``decode_columns`` limits where undecodable bytes count; by default, everywhere for a transcoded
    encoding, and in string columns for UTF-8 (pyarrow only validates UTF-8 in string columns).
    """
    names = ctx.layout.names
    if ctx.dlq:
        decode_columns = frozenset()
    elif decode_columns is None and not ctx.file.transcoded:
        decode_columns = frozenset(
            index for index, name in enumerate(names) if name in ctx.types and is_text(ctx.types[name])
        )
    return RecordChecker(
        names=names,
        encoding=ctx.file.encoding,
        newlines_in_values=ctx.file.dialect.newlines_in_values,
        decode_columns=decode_columns,
        max_record_bytes=ctx.block_size,
        field_count=not ctx.dlq,
    )


def structural_problem(ctx: ReadContext, decode_columns: frozenset[int] | None = None) -> Problem | None:
    """The first structurally bad record (undecodable bytes, open quote, wrong field count...)."""
    with ctx.file.records(ctx.layout.skip_lines, field_limit=ctx.block_size) as scanner:
        problems = record_problems(
            scanner, checker(ctx, decode_columns), header=ctx.layout.header is not None
        )
        return next(problems, None)


def open_quote_problem(ctx: ReadContext) -> Problem | None:
    """The record a quote left open at the end of the file swallows (the first such problem)."""
    with ctx.file.records(ctx.layout.skip_lines, field_limit=ctx.block_size) as scanner:
        return unterminated_problem(scanner, checker(ctx), header=ctx.layout.header is not None)


def is_text(dtype: pa.DataType) -> bool:
    """Whether pyarrow validates a column of this type as UTF-8."""
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype))


def _conversion_problem(ctx: ReadContext, index: int) -> Problem | None:
    """The first value of column ``index`` that does not convert (or what is wrong with its row)."""
    names = ctx.layout.names
    if not 0 <= index < len(names) or names[index] not in ctx.types:
        return None
    name = names[index]
    dtype = ctx.types[name]
    options = ctx.file.options
    raw = convert_options(options, {name: pa.binary()}, [name])
    convert = csv_converter(dtype, true_values=options.true_values, false_values=options.false_values)
    rows = 0
    for batch in ctx.file.open_reader(ctx.layout, raw, ctx.block_size):
        for position, value, error in conversion_failures(batch.column(0), convert):
            row = rows + position + 1
            record = _record_of(ctx, row)
            # A value swallowed by an open quote fails to convert too: say what is really wrong.
            structural = checker(ctx).problem(record, row) if record is not None else None
            if structural is not None:
                return structural
            line = record.line if record is not None else None
            return Problem(_conversion_message(ctx, name, dtype, value, error), line, row, name)
        rows += batch.num_rows
    return None


def _record_of(ctx: ReadContext, row: int) -> Record | None:
    number = row + 1 if ctx.layout.header is not None else row
    with ctx.file.records(ctx.layout.skip_lines, field_limit=ctx.block_size) as scanner:
        return find_record(scanner, number)


def shown(value: bytes) -> str:
    """A raw value as text for a message, cut to a readable length."""
    text = value.decode("utf-8", "replace")
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _detail(error: str) -> str:
    """pyarrow's reason without its prefixes, first sentence only."""
    lines = _PREFIXES.sub("", error.strip()).splitlines()
    return lines[0].split(". ")[0] if lines else ""


def _conversion_message(ctx: ReadContext, name: str, dtype: pa.DataType, value: bytes, error: str) -> str:
    wanted = type_name(dtype)
    message = f"value {shown(value)!r} in column {name!r} is not a valid {wanted}"
    detail = _detail(error)
    if "Rescaling Decimal" in detail:
        detail = f"more than {dtype.scale} digits after the decimal point would be lost"
    if detail and not detail.startswith("invalid value"):
        message += f" ({detail.rstrip('.')})"
    if pa.types.is_boolean(dtype):
        options = ctx.file.options
        true_values = options.true_values or list(DEFAULT_TRUE)
        false_values = options.false_values or list(DEFAULT_FALSE)
        message += (
            f" (true is {', '.join(true_values)}; false is {', '.join(false_values)}: set true_values: "
            "and false_values: for other spellings)"
        )
    if name not in ctx.declared:
        message += (
            f"; the type {wanted} was inferred from the first rows of {ctx.inferred_from}: declare the "
            f"column's type under columns: (e.g. columns: {{{name}: string}})"
        )
    return message
