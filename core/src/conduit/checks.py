"""Quality checks: the :class:`Check` base class and the built-in checks.

A check looks at a whole ``RecordBatch`` at once (vectorised with ``pyarrow.compute``) and returns a
boolean mask, ``True`` for rows that pass. The engine counts failures and acts on them by the check's
``action``: ``fail`` stops the entity with an error naming the first failing row and column; ``warn``
logs a summary with the count and a few example rows; ``dlq`` routes the failing rows to the
dead-letter queue and loads the rest. For a rejected row the engine asks :meth:`Check.explain` for a
short reason. Built-in checks are registered through the ``conduit_register_checks`` hook, exactly as a
third-party check is.

Built-ins: ``not_null``, ``unique``, ``regex``, ``range``, ``enum``, ``length`` and ``expression``.
Except for ``not_null``, a NULL value passes every built-in check (combine with ``not_null`` to forbid
NULLs). The masks they return are never null.
"""

from __future__ import annotations

import datetime as dt
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationInfo, field_validator, model_validator

from conduit.connectors import ConnectorOptions
from conduit.errors import ConfigError, DataError
from conduit.expression import (
    Expression,
    ExpressionDataError,
    ExpressionTypeError,
    plain,
    to_scalar,
)
from conduit.hookspecs import hookimpl

CheckAction = Literal["fail", "warn", "dlq"]


class CheckOptions(ConnectorOptions):
    """Options every check accepts. Subclass it to add a check's own options."""

    action: CheckAction = "fail"


class Check(ABC):
    """A row-level quality check over record batches."""

    options_model: ClassVar[type[CheckOptions]] = CheckOptions

    def __init__(self, options: CheckOptions) -> None:
        self.options = options

    def columns(self) -> list[str]:
        """The columns the check reads; the engine verifies they exist before loading."""
        return []

    @abstractmethod
    def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        """One boolean per row, ``True`` where the row passes (nulls in the result count as passing)."""

    def describe(self) -> str:
        """A short human description used in messages, e.g. ``not_null(id, email)``."""
        return f"{type(self).__name__}({', '.join(self.columns())})"

    def explain(self, row: dict[str, Any]) -> str:
        """A short human reason why ``row`` (one failing row, column name -> value) failed.

        Called only for rejected rows, so it may be plain Python. The default names the check.
        """
        return f"failed {self.describe()}"


# ---------------------------------------------------------------------------------------- helpers


def _show(value: Any) -> str:
    """A value as it reads in a message: strings quoted, numbers and dates plain."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | int):
        return str(value)
    return repr(value)


def _all_pass(rows: int) -> pa.BooleanArray:
    return pa.repeat(True, rows) if rows else pa.array([], pa.bool_())


def _is_text(typ: pa.DataType) -> bool:
    return bool(pa.types.is_string(typ) or pa.types.is_large_string(typ))


def _is_binary(typ: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_fixed_size_binary(typ)
    )


def _column_name(value: str) -> str:
    if not value.strip():
        raise ValueError("column must name a column (got an empty string)")
    return value


def _column_list(value: Any) -> Any:
    """``columns: id`` means ``columns: [id]``; the list must name at least one column, once each."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        if not value:
            raise ValueError("columns must name at least one column")
        names = [v for v in value if isinstance(v, str)]
        if any(not name.strip() for name in names):
            raise ValueError("columns must not contain an empty name")
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"columns lists {', '.join(map(repr, twice))} more than once")
    return value


class _ColumnOptions(CheckOptions):
    """Options of a check on one column."""

    column: str

    @field_validator("column")
    @classmethod
    def _column_named(cls, value: str) -> str:
        return _column_name(value)


class _ColumnCheck(Check):
    """A check on the single column ``options.column``."""

    @property
    def column(self) -> str:
        assert isinstance(self.options, _ColumnOptions)
        return self.options.column

    def columns(self) -> list[str]:
        return [self.column]

    def _array(self, batch: pa.RecordBatch) -> pa.Array:
        return plain(batch.column(self.column))

    def _type_error(self, typ: pa.DataType, needs: str) -> ConfigError:
        return ConfigError(f"check {self.describe()}: column {self.column!r} is {typ}; {needs}")


# --------------------------------------------------------------------------------------- not_null


class NotNullOptions(CheckOptions):
    columns: list[str]

    @field_validator("columns", mode="before")
    @classmethod
    def _columns_listed(cls, value: Any) -> Any:
        return _column_list(value)


class NotNull(Check):
    """Every listed column has a value in every row. (NaN is a value, not a null.)"""

    options_model = NotNullOptions

    def columns(self) -> list[str]:
        assert isinstance(self.options, NotNullOptions)
        return list(self.options.columns)

    def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        mask: pa.BooleanArray | None = None
        for name in self.columns():
            valid = pc.is_valid(batch.column(name))
            mask = valid if mask is None else pc.and_(mask, valid)
        if mask is None:
            return _all_pass(batch.num_rows)
        return mask

    def describe(self) -> str:
        return f"not_null({', '.join(self.columns())})"

    def explain(self, row: dict[str, Any]) -> str:
        missing = [name for name in self.columns() if row.get(name) is None]
        if not missing:
            return super().explain(row)
        return f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} null"


# ----------------------------------------------------------------------------------------- unique


class UniqueOptions(CheckOptions):
    columns: list[str]

    @field_validator("columns", mode="before")
    @classmethod
    def _columns_listed(cls, value: Any) -> Any:
        return _column_list(value)


class Unique(Check):
    """No two rows of the run share a key (one column, or several as a composite key).

    Unique across the whole run: one instance lives for one entity run and ``evaluate`` is called
    once per batch, in order. A row fails when its key was seen in an earlier batch or earlier in the
    same batch; the first occurrence passes. A row with a NULL in any key column passes and is not
    remembered (SQL semantics: NULLs are never equal). Floats compare by value: ``-0.0`` equals
    ``0.0`` and every NaN equals every other NaN.

    **Memory**: every key of the run is kept in memory until the run ends. While every batch's keys
    lie beyond the range of all keys seen so far (ascending or descending ids, timestamps) and are
    distinct, one-column keys are kept as the Arrow arrays themselves (8 bytes per integer key) and a
    batch costs one ``min_max`` and one vectorised comparison. From the first batch that overlaps
    earlier keys (and for composite keys from the start) the keys move into a Python ``set``: about
    70-100 bytes per integer key, more for strings; a composite key is one ``bytes`` object built in
    Arrow (its parts' bytes, text length-prefixed), about 60 bytes plus its length.

    **Speed**, measured on this repo's 2-core dev machine, 1,000,000 keys in 16 batches, whole run
    (best of 3; ranges are over runs on a busy machine): ascending int64 keys 3-6 ms, descending 4-8 ms;
    ascending string keys 30-45 ms; int64 keys in random order (the ``set`` path) 210-300 ms, mostly
    cache misses in the set; a two-int64 composite key about 300 ms.
    ``core/tests/test_checks.py::test_unique_is_fast_on_ascending_keys`` holds the first under 100 ms.
    """

    options_model = UniqueOptions

    def __init__(self, options: CheckOptions) -> None:
        super().__init__(options)
        # range mode: one-column keys whose batches never overlap; None once the keys are in _seen
        self._chunks: list[pa.Array] | None = [] if len(self.columns()) == 1 else None
        self._low: Any = None
        self._high: Any = None
        self._seen: set[Any] = set()

    def columns(self) -> list[str]:
        assert isinstance(self.options, UniqueOptions)
        return list(self.options.columns)

    def describe(self) -> str:
        return f"unique({', '.join(self.columns())})"

    def explain(self, row: dict[str, Any]) -> str:
        names = self.columns()
        if len(names) == 1:
            return f"{names[0]} {_show(row.get(names[0]))} was already seen in this run"
        key = ", ".join(f"{name}={_show(row.get(name))}" for name in names)
        return f"key ({key}) was already seen in this run"

    def _key(self, name: str, array: pa.Array) -> pa.Array:
        """The column as an array whose values are equal exactly when the keys are equal."""
        typ = array.type
        if pa.types.is_floating(typ):
            # -0.0 + 0.0 is 0.0, and every NaN becomes the same NaN: then equal bits mean equal keys
            values = pc.add(array.cast(pa.float64()), 0.0)
            values = pc.if_else(pc.is_nan(values), math.nan, values)
            return values.view(pa.int64())
        if pa.types.is_boolean(typ):
            return array.cast(pa.int8())
        if pa.types.is_date32(typ) or pa.types.is_time32(typ):
            return array.view(pa.int32())
        if pa.types.is_temporal(typ):  # timestamps (any zone: the stored instant), date64, time64, durations
            return array.view(pa.int64())
        if pa.types.is_integer(typ) or pa.types.is_decimal(typ) or _is_text(typ) or _is_binary(typ):
            return array
        if pa.types.is_null(typ):  # every key has a NULL: every row passes
            return array
        raise ConfigError(
            f"check {self.describe()}: column {name!r} is {typ}; unique supports numbers, decimals, "
            "booleans, strings, binary, dates, times and timestamps"
        )

    def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        rows = batch.num_rows
        keys = [self._key(name, plain(batch.column(name))) for name in self.columns()]
        positions: pa.Array | None = None  # the rows with a complete key, when some key has a NULL
        if any(key.null_count for key in keys):
            complete = pc.is_valid(keys[0])
            for key in keys[1:]:
                complete = pc.and_(complete, pc.is_valid(key))
            positions = pc.indices_nonzero(complete)
            keys = [key.take(positions) for key in keys]
        if not len(keys[0]):
            return _all_pass(rows)
        if len(keys) > 1:
            keys = [_combined(keys)]
        if self._chunks is not None:
            if self._beyond_everything_seen(keys[0]):
                return _all_pass(rows)
            for chunk in self._chunks:  # the keys overlap earlier ones: from now on, a set
                self._seen.update(chunk.to_pylist())
            self._chunks = None
        verdicts = self._first_sightings(keys[0])
        if verdicts is None:
            return _all_pass(rows)
        if positions is None:
            return pa.array(verdicts, pa.bool_())
        mask = [True] * rows  # rows with a NULL in the key pass
        for position, verdict in zip(positions.to_pylist(), verdicts, strict=True):
            mask[position] = verdict
        return pa.array(mask, pa.bool_())

    def _beyond_everything_seen(self, key: pa.Array) -> bool:
        """Range mode: True (and the keys remembered) if the batch's keys are distinct and all of them
        lie above or below every key seen so far, so none can repeat an earlier one."""
        assert self._chunks is not None
        try:
            bounds = pc.min_max(key)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if self._chunks and not (low > self._high or high < self._low):
                return False
            if len(key) > 1:
                head, tail = key.slice(0, len(key) - 1), key.slice(1)
                ordered = pc.all(pc.greater(tail, head)).as_py() or pc.all(pc.less(tail, head)).as_py()
                if not ordered and pc.count_distinct(key).as_py() != len(key):
                    return False
        except pa.ArrowNotImplementedError:  # a type Arrow cannot order: keep the keys in a set
            return False
        self._chunks.append(key)
        self._low = low if self._low is None else min(low, self._low)
        self._high = high if self._high is None else max(high, self._high)
        return True

    def _first_sightings(self, key: pa.Array) -> list[bool] | None:
        """Set mode: per key, True for its first sighting in the run; None when all are first."""
        values: list[Any] = key.to_pylist()
        seen = self._seen
        fresh = set(values)
        if len(fresh) == len(values) and seen.isdisjoint(fresh):
            seen |= fresh
            return None
        verdicts: list[bool] = []
        for value in values:  # some repeat: the rare, exact path
            if value in seen:
                verdicts.append(False)
            else:
                seen.add(value)
                verdicts.append(True)
        return verdicts


def _combined(keys: list[pa.Array]) -> pa.Array:
    """Several key columns as one binary key per row, equal exactly when every part is equal.

    Fixed-width parts are their raw bytes; text and binary parts are prefixed with their length, so
    ``("ab", "c")`` and ``("a", "bc")`` stay apart. Building bytes in Arrow and hashing them in Python
    is about 2.5 times faster than Python tuples."""
    parts: list[pa.Array] = []
    for key in keys:
        typ = key.type
        if _is_text(typ) or pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
            parts.append(pc.binary_length(key).cast(pa.int64()).view(pa.binary(8)).cast(pa.large_binary()))
            parts.append(key.cast(pa.large_binary()))
        elif pa.types.is_fixed_size_binary(typ):
            parts.append(key.cast(pa.large_binary()))
        else:  # integers, and floats/temporals already as integers; decimals by their 16 or 32 bytes
            parts.append(key.view(pa.binary(typ.bit_width // 8)).cast(pa.large_binary()))
    return pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.large_binary()))


# ------------------------------------------------------------------------------------------ regex


def _effective_pattern(pattern: str, full_match: bool) -> str:
    return f"^(?:{pattern})$" if full_match else pattern


class RegexOptions(_ColumnOptions):
    pattern: str
    full_match: bool = False

    @model_validator(mode="after")
    def _pattern_compiles(self) -> RegexOptions:
        if not self.pattern:
            raise ValueError("pattern must not be empty (it would match every value)")
        try:
            pc.match_substring_regex(
                pa.array([""], pa.string()), _effective_pattern(self.pattern, self.full_match)
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            reason = str(exc).removeprefix("Invalid regular expression: ")
            raise ValueError(f"invalid regular expression {self.pattern!r} (RE2 syntax): {reason}") from None
        return self


class Regex(_ColumnCheck):
    """The column's text matches ``pattern`` (RE2 syntax, searched anywhere in the value like
    Python's ``re.search``; anchor with ``^...$`` or set ``full_match``). Non-string columns are cast
    to text first (Arrow's cast: ``12``, ``1.5``, ``2024-01-31``). NULL passes."""

    options_model = RegexOptions

    @property
    def _options(self) -> RegexOptions:
        assert isinstance(self.options, RegexOptions)
        return self.options

    def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        array = self._array(batch)
        if pa.types.is_null(array.type):  # a column of nothing but NULLs: every row passes
            return _all_pass(batch.num_rows)
        if not (_is_text(array.type) or _is_binary(array.type)):
            try:
                array = array.cast(pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise self._type_error(array.type, "regex needs text or a value that casts to text") from None
        pattern = _effective_pattern(self._options.pattern, self._options.full_match)
        return pc.fill_null(pc.match_substring_regex(array, pattern=pattern), True)

    def describe(self) -> str:
        return f"regex({self.column})"

    def explain(self, row: dict[str, Any]) -> str:
        how = "does not fully match" if self._options.full_match else "does not match"
        return f"{self.column} {_show(row.get(self.column))} {how} {self._options.pattern}"


# ------------------------------------------------------------------------------------------ range


@dataclass(frozen=True)
class _Bound:
    """A range bound converted for one column type: ``scalar`` (with ``inclusive``), or a bound that
    every value of the type meets (``always``) or none does (``never``, e.g. ``min: 300`` on uint8)."""

    scalar: Any = None  # a pa.Scalar
    inclusive: bool = True
    always: bool = False
    never: bool = False


_ALWAYS = _Bound(always=True)
_NEVER = _Bound(never=True)


def _check_bound(value: Any, which: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | dt.date | dt.time | str):
        raise ValueError(f"{which} must be a number, a date, a timestamp or an ISO-8601 string")
    if isinstance(value, float) and math.isnan(value) or isinstance(value, Decimal) and value.is_nan():
        raise ValueError(f"{which} must not be NaN")
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{which} must not be empty")
    return value


def _comparable(value: Any) -> Any:
    """A bound in a form comparable with another bound of the same kind, or None."""
    if isinstance(value, int | float | Decimal):
        return Decimal(repr(value)) if isinstance(value, float) and math.isfinite(value) else value
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is None else value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return None


class RangeOptions(_ColumnOptions):
    min: Any = None
    max: Any = None
    min_inclusive: bool = True
    max_inclusive: bool = True

    @field_validator("min", "max", mode="before")
    @classmethod
    def _bound_kind(cls, value: Any, info: ValidationInfo) -> Any:
        return _check_bound(value, str(info.field_name))

    @model_validator(mode="after")
    def _bounds_given(self) -> RangeOptions:
        if self.min is None and self.max is None:
            raise ValueError("range needs min, max, or both")
        low, high = _comparable(self.min), _comparable(self.max)
        if low is not None and high is not None:
            try:
                empty = low > high or low == high and not (self.min_inclusive and self.max_inclusive)
            except TypeError:
                empty = False  # a number and a date: reported when the column's type is known
            if empty:
                raise ValueError(f"min {_show(self.min)} and max {_show(self.max)} leave no value in range")
        return self


def _integer_limits(typ: pa.DataType) -> tuple[int, int]:
    bits = typ.bit_width
    if pa.types.is_signed_integer(typ):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


class Range(_ColumnCheck):
    """``min <= column <= max`` (either bound optional, each inclusive by default) for integers,
    floats, decimals, dates, times and timestamps. NULL passes; NaN fails."""

    options_model = RangeOptions

    def __init__(self, options: CheckOptions) -> None:
        super().__init__(options)
        self._bounds: dict[pa.DataType, tuple[_Bound | None, _Bound | None]] = {}

    @property
    def _options(self) -> RangeOptions:
        assert isinstance(self.options, RangeOptions)
        return self.options

    def describe(self) -> str:
        parts = [self.column]
        for which, value, inclusive in (
            ("min", self._options.min, self._options.min_inclusive),
            ("max", self._options.max, self._options.max_inclusive),
        ):
            if value is not None:
                parts.append(f"{which}={_show_bound(value)}" + ("" if inclusive else " (exclusive)"))
        return f"range({', '.join(parts)})"

    def _bounds_for(self, typ: pa.DataType) -> tuple[_Bound | None, _Bound | None]:
        if typ not in self._bounds:
            options = self._options
            self._bounds[typ] = (
                None
                if options.min is None
                else self._convert("min", options.min, options.min_inclusive, typ),
                None
                if options.max is None
                else self._convert("max", options.max, options.max_inclusive, typ),
            )
        return self._bounds[typ]

    def _convert(self, which: str, value: Any, inclusive: bool, typ: pa.DataType) -> _Bound:
        """The bound as a scalar of the column's type, rounded inward onto an integer or decimal grid
        (``min: 0.5`` on integers is ``min: 1``), or _ALWAYS/_NEVER when it lies outside the type."""
        numeric = pa.types.is_integer(typ) or pa.types.is_decimal(typ)
        temporal = pa.types.is_timestamp(typ) or pa.types.is_date(typ) or pa.types.is_time(typ)
        if not (numeric or temporal or pa.types.is_floating(typ)):
            raise self._type_error(typ, "range needs numbers, decimals, dates, times or timestamps")
        if (numeric or pa.types.is_floating(typ)) and isinstance(value, dt.date | dt.time):
            raise self._bound_error(which, value, typ, "a date or time cannot bound a number")
        try:
            if not numeric:
                return _Bound(to_scalar(value, typ, finer_ok=True), inclusive)
            number = _decimal_bound(value)
            if pa.types.is_integer(typ):
                step, (lowest, highest) = Decimal(1), _integer_limits(typ)
            else:
                step = Decimal(1).scaleb(-typ.scale)
                highest_digits = Decimal(10) ** typ.precision - 1
                lowest, highest = -highest_digits * step, highest_digits * step
            if number.is_infinite():
                below = number < 0
                return _ALWAYS if below == (which == "min") else _NEVER
            rounding = ROUND_CEILING if which == "min" else ROUND_FLOOR
            steps = _WIDE.divide(number, step).to_integral_value(rounding=rounding, context=_WIDE)
            on_grid = _WIDE.multiply(steps, step)
            if on_grid == number and not inclusive:
                on_grid += step if which == "min" else -step
            if which == "min":
                if on_grid <= lowest:
                    return _ALWAYS
                if on_grid > highest:
                    return _NEVER
            else:
                if on_grid >= highest:
                    return _ALWAYS
                if on_grid < lowest:
                    return _NEVER
            return _Bound(to_scalar(int(on_grid) if pa.types.is_integer(typ) else on_grid, typ))
        except ValueError as exc:
            raise self._bound_error(which, value, typ, str(exc)) from None

    def _bound_error(self, which: str, value: Any, typ: pa.DataType, reason: str) -> ConfigError:
        return ConfigError(
            f"check {self.describe()}: {which} {_show(value)} cannot be compared with column "
            f"{self.column!r} ({typ}): {reason}"
        )

    def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        array = self._array(batch)
        if pa.types.is_null(array.type):  # a column of nothing but NULLs: every row passes
            return _all_pass(batch.num_rows)
        lower, upper = self._bounds_for(array.type)
        mask: Any = None
        for bound, strict, loose in ((lower, "greater", "greater_equal"), (upper, "less", "less_equal")):
            if bound is None or bound.always:
                continue
            if bound.never:
                part = pc.is_null(array)  # no value can pass; a NULL still does
            else:
                part = pc.call_function(loose if bound.inclusive else strict, [array, bound.scalar])
            mask = part if mask is None else pc.and_kleene(mask, part)
        if pa.types.is_floating(array.type):
            number = pc.invert(pc.is_nan(array))  # NaN fails, even against an infinite bound
            mask = number if mask is None else pc.and_kleene(mask, number)
        if mask is None:
            return _all_pass(batch.num_rows)
        return pc.fill_null(mask, True)

    def explain(self, row: dict[str, Any]) -> str:
        value = row.get(self.column)
        if isinstance(value, float) and math.isnan(value):
            return f"{self.column} is NaN, which no range contains"
        options = self._options
        known = list(self._bounds.values())
        if value is not None and known:
            lower, upper = known[-1]
            try:
                if lower is not None and not _holds(value, lower, above=True):
                    words = (
                        "below the minimum" if options.min_inclusive else "not above the exclusive minimum"
                    )
                    return f"{self.column} is {_show(value)}, {words} {_show_bound(options.min)}"
                if upper is not None and not _holds(value, upper, above=False):
                    words = (
                        "above the maximum" if options.max_inclusive else "not below the exclusive maximum"
                    )
                    return f"{self.column} is {_show(value)}, {words} {_show_bound(options.max)}"
            except TypeError:
                pass
        return f"{self.column} is {_show(value)}, outside {self.describe()}"


def _show_bound(value: Any) -> str:
    return value if isinstance(value, str) else _show(value)


_WIDE = Context(prec=200)  # exact for any decimal256 bound


def _decimal_bound(value: Any) -> Decimal:
    if isinstance(value, float):
        number = Decimal(repr(value)) if math.isfinite(value) else Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    else:
        try:
            number = Decimal(str(value).strip())
        except ArithmeticError:
            raise ValueError("not a number") from None
    if number.is_nan():
        raise ValueError("NaN bounds nothing")
    return number


def _holds(value: Any, bound: _Bound, above: bool) -> bool:
    if bound.always or bound.never:
        return bound.always
    limit = bound.scalar.as_py()
    if above:
        return bool(value >= limit if bound.inclusive else value > limit)
    return bool(value <= limit if bound.inclusive else value < limit)


# ------------------------------------------------------------------------------------------- enum


class EnumOptions(_ColumnOptions):
    values: list[Any]
    ignore_case: bool = False

    @field_validator("values")
    @classmethod
    def _values_given(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise ValueError("values must list at least one allowed value")
        for item in value:
            if item is None:
                raise ValueError(
                    "values must not contain null (NULL always passes; add not_null to forbid it)"
                )
            if not isinstance(item, int | float | Decimal | str | dt.date | dt.time):
                raise ValueError(f"values must be plain values (strings, numbers, dates), not {item!r}")
        return value


class EnumCheck(_ColumnCheck):
    """The column's value is one of ``values`` (converted to the column's type; with ``ignore_case``,
    strings compare after Unicode lowercasing). NULL passes."""

    options_model = EnumOptions

    def __init__(self, options: CheckOptions) -> None:
        super().__init__(options)
        self._value_sets: dict[pa.DataType, pa.Array] = {}

    @property
    def _options(self) -> EnumOptions:
        assert isinstance(self.options, EnumOptions)
        return self.options

    def describe(self) -> str:
        return f"enum({self.column})"

    def _value_set(self, typ: pa.DataType) -> pa.Array:
        if typ not in self._value_sets:
            if self._options.ignore_case and not _is_text(typ):
                raise self._type_error(typ, "ignore_case needs a string column")
            converted = []
            for value in self._options.values:
                if isinstance(value, str) and not (
                    _is_text(typ) or _is_binary(typ) or pa.types.is_temporal(typ)
                ):
                    raise self._value_error(value, typ, "a quoted string is not a number")
                try:
                    converted.append(to_scalar(value, typ).as_py())
                except ValueError as exc:
                    raise self._value_error(value, typ, str(exc)) from None
            value_set = pa.array(converted, typ)
            self._value_sets[typ] = pc.utf8_lower(value_set) if self._options.ignore_case else value_set
        return self._value_sets[typ]

    def _value_error(self, value: Any, typ: pa.DataType, reason: str) -> ConfigError:
        return ConfigError(
            f"check {self.describe()}: value {_show(value)} cannot be compared with column "
            f"{self.column!r} ({typ}): {reason}"
        )

    def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        array = self._array(batch)
        if pa.types.is_null(array.type):  # a column of nothing but NULLs: every row passes
            return _all_pass(batch.num_rows)
        value_set = self._value_set(array.type)
        if self._options.ignore_case:
            array = pc.utf8_lower(array)
        return pc.or_(pc.is_in(array, value_set=value_set), pc.is_null(array))

    def explain(self, row: dict[str, Any]) -> str:
        allowed = self._options.values
        shown = ", ".join(_show(v) for v in allowed[:10])
        more = f", ... ({len(allowed)} values)" if len(allowed) > 10 else ""
        case = " (ignoring case)" if self._options.ignore_case else ""
        return f"{self.column} {_show(row.get(self.column))} is not one of {shown}{more}{case}"


# ----------------------------------------------------------------------------------------- length


def _count(value: Any, which: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{which} must be a whole number")
    if value < 0:
        raise ValueError(f"{which} must not be negative")
    return value


class LengthOptions(_ColumnOptions):
    min: int | None = None
    max: int | None = None

    @field_validator("min", "max", mode="before")
    @classmethod
    def _whole(cls, value: Any, info: ValidationInfo) -> Any:
        return _count(value, str(info.field_name))

    @model_validator(mode="after")
    def _bounds_given(self) -> LengthOptions:
        if self.min is None and self.max is None:
            raise ValueError("length needs min, max, or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Length(_ColumnCheck):
    """The length of the column's value is within ``min``..``max`` (inclusive): characters (Unicode
    code points) for strings, bytes for binary. NULL passes."""

    options_model = LengthOptions

    @property
    def _options(self) -> LengthOptions:
        assert isinstance(self.options, LengthOptions)
        return self.options

    def describe(self) -> str:
        bounds = [
            f"{k}={v}" for k, v in (("min", self._options.min), ("max", self._options.max)) if v is not None
        ]
        return f"length({', '.join([self.column, *bounds])})"

    def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        array = self._array(batch)
        if pa.types.is_null(array.type):  # a column of nothing but NULLs: every row passes
            return _all_pass(batch.num_rows)
        if _is_text(array.type):
            lengths = pc.utf8_length(array)
        elif _is_binary(array.type):
            lengths = pc.binary_length(array)
        else:
            raise self._type_error(array.type, "length needs a string or binary column")
        mask: Any = None
        if self._options.min is not None:
            mask = pc.greater_equal(lengths, self._options.min)
        if self._options.max is not None:
            below = pc.less_equal(lengths, self._options.max)
            mask = below if mask is None else pc.and_(mask, below)
        return pc.fill_null(mask, True)

    def explain(self, row: dict[str, Any]) -> str:
        value = row.get(self.column)
        if not isinstance(value, str | bytes):
            return super().explain(row)
        unit = "characters" if isinstance(value, str) else "bytes"
        size = len(value)
        low, high = self._options.min, self._options.max
        if low is not None and size < low:
            return f"{self.column} has {size} {unit}, fewer than the minimum {low}"
        if high is not None and size > high:
            return f"{self.column} has {size} {unit}, more than the maximum {high}"
        return super().explain(row)


# ------------------------------------------------------------------------------------- expression


class ExpressionOptions(CheckOptions):
    expr: str

    @field_validator("expr")
    @classmethod
    def _parses(cls, value: str) -> str:
        Expression(value)  # ExpressionError (a ValueError) names the column where parsing failed
        return value


class ExpressionCheck(Check):
    """A boolean row predicate (see :mod:`conduit.expression` for the grammar). A row passes when the
    predicate is true or NULL (like a SQL ``CHECK`` constraint) and fails when it is false."""

    options_model = ExpressionOptions

    def __init__(self, options: CheckOptions) -> None:
        super().__init__(options)
        assert isinstance(options, ExpressionOptions)
        self.expression = Expression(options.expr)

    def columns(self) -> list[str]:
        return list(self.expression.columns)

    def describe(self) -> str:
        return f"expression({' '.join(self.expression.text.split())})"

    def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        try:
            return pc.fill_null(self.expression.evaluate(batch), True)
        except ExpressionTypeError as exc:
            raise ConfigError(f"check {self.describe()}: {exc}") from None
        except ExpressionDataError as exc:
            raise DataError(f"check {self.describe()}: {exc}") from None

    def explain(self, row: dict[str, Any]) -> str:
        values = ", ".join(f"{name}={_show(row.get(name))}" for name in self.columns())
        text = " ".join(self.expression.text.split())
        return f"{text} is false" + (f" for {values}" if values else "")


@hookimpl
def conduit_register_checks(register: Callable[[str, type[Check]], None]) -> None:
    register("not_null", NotNull)
    register("unique", Unique)
    register("regex", Regex)
    register("range", Range)
    register("enum", EnumCheck)
    register("length", Length)
    register("expression", ExpressionCheck)
