"""Converting columns to their declared types without loss, row by row where it fails.

:func:`coerce_batch` casts every column of a batch to the type the schema gives it. A value that
does not convert exactly (text that is not a number, an integer that overflows, a decimal that would
lose digits, a date that does not exist, a timestamp without the offset a time-zone-aware column
needs, bytes that are not UTF-8, a float literal too large for a double) is never turned into NULL,
rounded or clamped: its row is left out of the result and reported as a :class:`Failure` with a
stable reason code. Callers (a source in ``on_error: dlq`` mode, the engine) turn failures into
dead-letter rows or into a located :class:`~conduit.errors.DataError`.

The work is vectorised: a column is cast in one ``pyarrow.compute`` call. Only when that call fails
does the column get a second look: for numeric targets a regular expression splits the values that
cannot be numbers (checked one by one, so the result never depends on the expression) from those that
look right, which are cast again in bulk; whatever still fails is found by bisection. A batch with a
few bad values costs a few extra casts, not a Python loop over its rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conduit.types import type_name

_INTEGER = r"^[+-]?[0-9]+$"
_FLOAT = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$|^[+-]?(?:inf|Inf|INF|infinity|Infinity|nan|NaN|NAN)$"
_DECIMAL = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIME = r"(?:[T ][0-9]{2}(?::[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?)?)?"
_OFFSET = r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)"
_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}" + _TIME + _OFFSET + "?$"
_TIMESTAMP_WITH_OFFSET = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}" + _TIME + _OFFSET + "$"
_CLOCK = r"^[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.][0-9]{1,9})?)?$"
_INFINITE_TEXT = re.compile(r"^[+-]?(?:inf|infinity)$", re.IGNORECASE)
_BISECT_BELOW = 16
_DECIMAL_DIGITS = 38  # no text this short holds a number that overflows 128 bits


@dataclass(frozen=True)
class Failure:
    """Why row ``index`` of the input batch could not be converted (the first failing column)."""

    index: int
    column: str
    reason: str
    message: str


@dataclass(frozen=True)
class Coerced:
    """The rows that converted, in the target schema, and the failures (sorted by row index)."""

    batch: pa.RecordBatch
    failures: tuple[Failure, ...]


def coerce_batch(
    batch: pa.RecordBatch,
    schema: pa.Schema,
    *,
    true_values: Sequence[str] | None = None,
    false_values: Sequence[str] | None = None,
) -> Coerced:
    """``batch`` (same column names as ``schema``, any types) converted to ``schema`` without loss.

    ``true_values``/``false_values``: the spellings of booleans in text (default: pyarrow's cast,
    ``true/false/1/0`` in any case).
    """
    columns: list[pa.Array] = []
    bad: dict[int, Failure] = {}
    for field in schema:
        source = batch.column(field.name)
        converted, failures = coerce_column(
            source, field.type, field.name, true_values=true_values, false_values=false_values
        )
        columns.append(converted)
        for failure in failures:
            bad.setdefault(failure.index, failure)
    if not bad:
        return Coerced(pa.RecordBatch.from_arrays(columns, schema=schema), ())
    keep = keep_mask(batch.num_rows, bad)
    good = pa.RecordBatch.from_arrays([pc.filter(c, keep) for c in columns], schema=schema)
    return Coerced(good, tuple(bad[i] for i in sorted(bad)))


def coerce_column(
    array: pa.Array,
    target: pa.DataType,
    column: str,
    *,
    true_values: Sequence[str] | None = None,
    false_values: Sequence[str] | None = None,
) -> tuple[pa.Array, list[Failure]]:
    """``array`` cast to ``target``; failing rows become NULL in the result and are listed.

    The NULLs are placeholders: :func:`coerce_batch` drops those rows. Values that were NULL stay NULL.
    """
    if array.type == target:
        return array, []
    if pa.types.is_boolean(target) and (true_values or false_values) and _is_text(array.type):
        return _booleans(array, column, true_values or (), false_values or ())
    if pa.types.is_time(target) and _is_text(array.type):
        return _times(array, target, column)
    try:
        result = pc.cast(array, target, safe=True)
        failures: list[Failure] = []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        if (
            not _is_text(array.type)
            and not pa.types.is_binary(array.type)
            and not isinstance(exc, pa.ArrowInvalid)
        ):
            raise
        result, failures = _located(array, target, column)
    if _is_text(array.type) and pa.types.is_floating(target):
        return _without(array, result, failures, _overflowing(array, result), target, column)
    if _is_text(array.type) and pa.types.is_decimal(target):
        return _without(array, result, failures, _wrapped(array, result), target, column)
    return result, failures


def _without(
    array: pa.Array,
    result: pa.Array,
    failures: list[Failure],
    failing: list[int],
    target: pa.DataType,
    column: str,
) -> tuple[pa.Array, list[Failure]]:
    """``result`` with the values at ``failing`` set to NULL and listed with ``failures``."""
    if not failing:
        return result, failures
    keep = keep_mask(len(result), failing)
    cleared = pc.if_else(keep, result, pa.scalar(None, result.type))
    more = [_failure(array[i].as_py(), target, column, i) for i in failing]
    return cleared, sorted(failures + more, key=lambda failure: failure.index)


def _located(array: pa.Array, target: pa.DataType, column: str) -> tuple[pa.Array, list[Failure]]:
    """The cast of ``array`` with the failing rows found and set to NULL."""
    failing: list[int] = []
    plausible = _plausible(array, target) if _is_text(array.type) else None
    if plausible is not None:
        suspects = pc.indices_nonzero(pc.invert(plausible)).to_pylist()
        failing.extend(i for i in suspects if not _casts(array[i : i + 1], target))
        candidates = pc.indices_nonzero(plausible)
        taken = pc.take(array, candidates)
        failing.extend(candidates[j].as_py() for j in _bisect(taken, target, 0))
    else:
        failing.extend(_bisect(array, target, 0))
    failing.sort()
    keep = keep_mask(len(array), failing)
    result = pc.cast(pc.if_else(keep, array, pa.scalar(None, array.type)), target, safe=True)
    failures = [_failure(array[i].as_py(), target, column, i) for i in failing]
    return result, failures


def _bisect(array: pa.Array, target: pa.DataType, offset: int) -> list[int]:
    """Indices (plus ``offset``) of the values of ``array`` that do not cast to ``target``."""
    if _casts(array, target):
        return []
    if len(array) <= _BISECT_BELOW:
        return [offset + i for i in range(len(array)) if not _casts(array[i : i + 1], target)]
    half = len(array) // 2
    return _bisect(array[:half], target, offset) + _bisect(array[half:], target, offset + half)


def _casts(array: pa.Array, target: pa.DataType) -> bool:
    try:
        pc.cast(array, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False
    return True


def _overflowing(text: pa.Array, result: pa.Array) -> list[int]:
    """Text like ``1e400`` casts to infinity; only ``inf``/``infinity`` may."""
    infinite = pc.fill_null(pc.is_inf(result), False)
    if not pc.any(infinite).as_py():
        return []
    return [
        i
        for i in pc.indices_nonzero(infinite).to_pylist()
        if not _INFINITE_TEXT.match(str(text[i].as_py()).strip())
    ]


def _wrapped(text: pa.Array, result: pa.Array) -> list[int]:
    """pyarrow's cast of text with more than 38 digits to a decimal can wrap around 128 bits and give a
    wrong value instead of an error (``'9' * 39`` is ``-2084...``); such text is checked value by value."""
    long = pc.fill_null(pc.greater(pc.utf8_length(text), _DECIMAL_DIGITS), False)
    if not pc.any(long).as_py():
        return []
    failing = []
    for i in pc.indices_nonzero(long).to_pylist():
        value = result[i].as_py()
        if value is None:
            continue
        try:
            exact = Decimal(str(text[i].as_py()).strip())
        except InvalidOperation:
            failing.append(i)
            continue
        if exact != value:
            failing.append(i)
    return failing


def _booleans(
    array: pa.Array, column: str, true_values: Sequence[str], false_values: Sequence[str]
) -> tuple[pa.Array, list[Failure]]:
    text = array.cast(pa.string())
    is_true = pc.is_in(text, value_set=pa.array(list(true_values), pa.string()))
    is_false = pc.is_in(text, value_set=pa.array(list(false_values), pa.string()))
    known = pc.or_(is_true, is_false)
    failing = pc.indices_nonzero(pc.and_(pc.is_valid(text), pc.invert(known))).to_pylist()
    result = pc.if_else(known, is_true, pa.scalar(None, pa.bool_()))
    return result, [_failure(text[i].as_py(), pa.bool_(), column, i) for i in failing]


def _times(array: pa.Array, target: pa.DataType, column: str) -> tuple[pa.Array, list[Failure]]:
    """Text ``HH:MM[:SS[.fraction]]`` as a time of day: pyarrow has no cast from text to time, so it
    is read as a timestamp on 1970-01-01 (which keeps the checks of that cast) and cast to time."""
    text = array.cast(pa.string())
    shaped = pc.fill_null(pc.match_substring_regex(text, _CLOCK), True)
    stamped = pc.binary_join_element_wise(
        pa.scalar("1970-01-01T"), pc.if_else(shaped, text, pa.scalar(None, pa.string())), ""
    )
    converted, failures = coerce_column(stamped, pa.timestamp(target.unit), column)
    failing = sorted({f.index for f in failures} | set(pc.indices_nonzero(pc.invert(shaped)).to_pylist()))
    return pc.cast(converted, target), [_failure(text[i].as_py(), target, column, i) for i in failing]


def keep_mask(length: int, failing: Iterable[int]) -> pa.BooleanArray:
    """``True`` for every row but the ``failing`` ones (the failure path only: a Python list)."""
    keep = [True] * length
    for i in failing:
        keep[i] = False
    return pa.array(keep, pa.bool_())


def _is_text(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype))


def _plausible(text: pa.Array, target: pa.DataType) -> pa.BooleanArray | None:
    """A cheap vectorised guess of which values convert (NULLs count as converting), or ``None``.

    Only a splitter: the values it rejects are each cast on their own, and those it accepts are cast
    in bulk with bisection for any that still fail, so a wrong guess costs time, never correctness.
    """
    if pa.types.is_integer(target):
        pattern = _INTEGER
    elif pa.types.is_floating(target):
        pattern = _FLOAT
    elif pa.types.is_decimal(target):
        pattern = _DECIMAL
    elif pa.types.is_timestamp(target):
        pattern = _TIMESTAMP_WITH_OFFSET if target.tz is not None else _TIMESTAMP
    elif pa.types.is_date(target):
        shaped = pc.match_substring_regex(text, _DATE)
        parsed = pc.strptime(pc.if_else(shaped, text, pa.scalar(None, text.type)), "%Y-%m-%d", "s", True)
        same = pc.equal(pc.strftime(parsed, "%Y-%m-%d"), text.cast(pa.string()))  # 02-30 -> 03-01
        return pc.or_kleene(pc.is_null(text), pc.fill_null(same, False))
    else:
        return None
    return pc.fill_null(pc.match_substring_regex(text, pattern), True)


def _failure(value: Any, target: pa.DataType, column: str, index: int) -> Failure:
    reason, detail = classify(value, target)
    return Failure(index, column, reason, f"column {column!r}: {detail}")


def classify(value: Any, target: pa.DataType) -> tuple[str, str]:
    """A reason code and a sentence for a ``value`` that does not convert to ``target``."""
    shown = _shown(value)
    name = type_name(target)
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return "invalid_utf8", f"bytes {shown} are not valid UTF-8 (at byte {exc.start})"
        value = value.decode("utf-8")
        shown = _shown(value)
    text = str(value).strip()
    if isinstance(value, Decimal | float) and (pa.types.is_integer(target) or pa.types.is_decimal(target)):
        if isinstance(value, float) and not math.isfinite(value):
            return "not_a_number", f"{shown} has no {name} value"
        if pa.types.is_integer(target) and value != int(value):
            return "precision_loss", f"{shown} has a fractional part, which {name} would drop"
    if pa.types.is_integer(target):
        if re.match(_INTEGER, text):
            return "overflow", f"{shown} is out of range for {name}"
        return "not_a_number", f"{shown} is not an integer ({name})"
    if pa.types.is_floating(target):
        if re.match(_FLOAT, text):
            return "overflow", f"{shown} is too large for {name}"
        return "not_a_number", f"{shown} is not a number ({name})"
    if pa.types.is_decimal(target):
        return _decimal_reason(text, shown, target)
    if pa.types.is_timestamp(target):
        if target.tz is not None and _casts(pa.array([text]), pa.timestamp(target.unit)):
            return "missing_offset", f"{shown} has no UTC offset, which a {name} column needs"
        return "bad_timestamp", f"{shown} is not a valid timestamp ({name})"
    if pa.types.is_date(target):
        return "bad_date", f"{shown} is not a valid date (YYYY-MM-DD)"
    if pa.types.is_boolean(target):
        return "bad_boolean", f"{shown} is not a boolean"
    return "bad_value", f"{shown} does not convert to {name}"


def _decimal_reason(text: str, shown: str, target: pa.DataType) -> tuple[str, str]:
    name = type_name(target)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return "not_a_number", f"{shown} is not a decimal number ({name})"
    if not number.is_finite():
        return "not_a_number", f"{shown} is not a finite decimal number ({name})"
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > target.scale and number != number.quantize(Decimal(1).scaleb(-target.scale)):
        return (
            "precision_loss",
            f"{shown} has more than {target.scale} decimal places ({name}) and would be rounded",
        )
    return "overflow", f"{shown} has too many digits for {name}"


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def row_values(
    batch: pa.RecordBatch, index: int, render: Callable[[Any], Any] | None = None
) -> dict[str, Any]:
    """Row ``index`` of ``batch`` as ``{column: value}`` (bytes that are not UTF-8 as ``\\x`` escapes)."""
    values: dict[str, Any] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        value = column[index].as_py()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "backslashreplace")
        elif isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        values[name] = render(value) if render is not None else value
    return values
