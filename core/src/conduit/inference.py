"""Column types inferred from a sample of text values, for sources whose data carries no types.

A source without declared types (CSV, JSON Lines) reads a sample -- the first ``infer_rows`` data rows
of its first file -- and asks :func:`infer_type` for the type of each column not declared under
``columns:``. The rule is the same for every source: the **narrowest type that holds every non-null
sampled value exactly**, tried in this order:

========================  ======================================================================
type                      when (every non-null value of the sample ...)
========================  ======================================================================
``int64``                 is an integer (``-?[0-9]+``) within int64. An integer column with a value
                          beyond int64 is ``decimal(p,0)`` (``p`` the most digits in the sample) when
                          no value has more than 38 digits, else ``string``: never ``float64``, which
                          would lose digits.
``bool``                  is one of the true/false spellings (CSV: ``true_values``/``false_values``,
                          by default ``true True TRUE 1`` / ``false False FALSE 0``). A column of only
                          ``0`` and ``1`` is ``int64`` (integers are tried first).
``decimal(p,s)``          is a plain decimal literal (``[+-]digits[.digits]``, ``.5`` and ``5.`` too)
                          and the values are not all integers. ``s`` is the largest number of digits
                          after the point in the sample; the sample needs ``s`` plus the largest
                          number of digits before the point (leading zeros not counted), and ``p`` is
                          that, but at least 18 (:data:`MIN_PRECISION`: amounts that grow past the
                          sample's largest still fit). Needing more than 38 digits: ``string``.
``float64``               is a number, at least one with an exponent (``1e5``, ``2.5E-3``) or
                          spelled ``nan``/``inf``/``infinity`` (any case, optionally signed), and at
                          least one value is a number (a column of only ``nan`` is ``string``).
``date``                  is ``YYYY-MM-DD`` and a real date (``2023-02-29`` is not).
``time``                  is ``HH:MM`` or ``HH:MM:SS`` (``time32[s]``), or has up to 6 fraction digits
                          (``HH:MM:SS.ffffff``, ``time64[us]``).
``timestamp[us, UTC]``    is an ISO-8601 date and time (``T`` or a space between them) and **every**
                          value has a UTC offset (``Z``, ``+02:00``, ``+0200``, ``+02``).
``timestamp[us]``         is an ISO-8601 date and time and **no** value has an offset (dates without
                          a time count as midnight). A mix of values with and without an offset is
                          ``string``: neither type would hold every value (the instant of a local time
                          is unknown), so the column is read as written. Fractions beyond
                          microseconds are ``string`` too.
``string``                anything else, and a column with no non-null value in the sample.
========================  ======================================================================

Spaces and tabs around numbers, dates and times are ignored, as the CSV reader ignores them there
(and only there: booleans and timestamps are matched as written). A value after the sample that does
not fit its column's inferred type is handled by the source like any value that does not convert to a
declared type: a located error with ``on_error: fail``, a rejected row with ``on_error: dlq``.

The work is vectorised: each candidate type is one regular-expression match over the column's sample
(after a one-value pre-check, so a text column costs a few single-value matches), then one cast where
a pattern alone cannot tell (int64 range, real dates, timestamps). There is no Python loop over the
values.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_INFER_ROWS = 10_000
"""How many data rows of the first file a source reads to infer its column types (``infer_rows``)."""

MAX_PRECISION = 38
"""The widest decimal inferred by default (``decimal128``)."""

MIN_PRECISION = 18
"""The narrowest precision inferred for a decimal, as many digits as an ``int64`` holds: the sample
sets the scale, but later values whose integer part grows past the sample's largest (amounts,
counters) must still fit. (Exactly the sample's digits would make ``9999.5`` a ``decimal(5,1)`` that
rejects ``10000.5``.)"""

DEFAULT_TRUE = ("1", "True", "TRUE", "true")
DEFAULT_FALSE = ("0", "False", "FALSE", "false")
"""The boolean spellings of the CSV reader (pyarrow's defaults)."""

_BLANKS = " \t"
_INTEGER = r"^-?[0-9]+$"
_DECIMAL = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$"
_FLOAT = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$|^(?i:[+-]?(?:inf|infinity|nan))$"
_NUMBER = r"^[+-]?\.?[0-9]"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIME = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?$"
_TIME_FRACTION = r"\."
_TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}(?::[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?)?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)
_OFFSET = r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)$"
_OFFSET_AFTER_TIME = r"[T ][0-9]{2}(?::[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?" + _OFFSET


@dataclass(frozen=True)
class InferenceRules:
    """Which types a source lets :func:`infer_type` choose, and how values are spelled.

    ``numbers``: ``int64``, ``decimal`` and ``float64``; ``booleans``: ``bool`` from
    ``true_values``/``false_values``; ``temporal``: ``date``, ``time`` and the timestamps.
    ``max_precision``: the widest decimal (38, or up to 76 for ``decimal256``). ``trim``: ignore
    spaces and tabs around numbers, dates and times (the CSV reader does; a JSON string is exact).
    """

    true_values: tuple[str, ...] = DEFAULT_TRUE
    false_values: tuple[str, ...] = DEFAULT_FALSE
    numbers: bool = True
    booleans: bool = True
    temporal: bool = True
    max_precision: int = MAX_PRECISION
    trim: bool = True


DEFAULT_RULES = InferenceRules()


def infer_type(values: pa.Array | pa.ChunkedArray, rules: InferenceRules = DEFAULT_RULES) -> pa.DataType:
    """The narrowest type holding every non-null value of ``values`` (text) exactly; see the module doc."""
    sample = _Sample(_non_null_text(values), rules.trim)
    if len(sample.text) == 0:
        return pa.string()
    if rules.numbers and sample.holds(_INTEGER):
        return _integer_type(sample.trimmed, rules.max_precision)
    if rules.booleans and sample.spelled((*rules.true_values, *rules.false_values)):
        return pa.bool_()
    if rules.numbers:
        if sample.holds(_DECIMAL):
            return _decimal_type(sample.trimmed, rules.max_precision)
        if sample.holds(_FLOAT) and _any(sample.trimmed, _NUMBER):
            return pa.float64()
    if rules.temporal:
        if sample.holds(_DATE) and _casts(sample.trimmed, pa.date32()):
            return pa.date32()
        if sample.holds(_TIME):
            return pa.time64("us") if _any(sample.trimmed, _TIME_FRACTION) else pa.time32("s")
        if sample.holds(_TIMESTAMP, trimmed=False):
            return _timestamp_type(sample.text)
    return pa.string()


# -- the candidates ------------------------------------------------------------------------------------


def _integer_type(text: pa.Array, max_precision: int) -> pa.DataType:
    """``int64``; beyond it, the decimal holding the widest value, or ``string`` (never a float)."""
    if _casts(text, pa.int64()):
        return pa.int64()
    digits, _ = _digits(text)
    return _decimal_of(digits, 0, max_precision)


def _decimal_type(text: pa.Array, max_precision: int) -> pa.DataType:
    integer, scale = _digits(text)
    dtype = _decimal_of(integer + scale, scale, max_precision)
    if pa.types.is_decimal(dtype) and not _casts(text, dtype):
        return pa.string()  # a literal the decimal parser refuses after all: keep the text
    return dtype


def _decimal_of(precision: int, scale: int, max_precision: int) -> pa.DataType:
    if precision > max_precision:
        return pa.string()
    precision = min(max(precision, MIN_PRECISION), max_precision)
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


def _digits(text: pa.Array) -> tuple[int, int]:
    """The most digits before the point (leading zeros not counted) and after it, over plain decimal
    literals (already matched): ``-007.50`` has 1 and 2."""
    unsigned = pc.utf8_ltrim(text, "+-")
    significant = pc.utf8_ltrim(unsigned, "0")
    length = pc.utf8_length(significant)
    point = pc.find_substring(significant, ".")
    has_point = pc.greater_equal(point, 0)
    integer = pc.if_else(has_point, point, length)
    scale = pc.if_else(has_point, pc.subtract(pc.subtract(length, point), 1), 0)
    return _max(integer), _max(scale)


def _timestamp_type(text: pa.Array) -> pa.DataType:
    """``timestamp[us, UTC]`` when every value has an offset, ``timestamp[us]`` when none has, else
    (a mix, or a value the parser refuses: beyond microseconds, a day that does not exist) ``string``."""
    with_offset = pc.match_substring_regex(text, _OFFSET_AFTER_TIME)
    if pc.all(with_offset).as_py():
        dtype = pa.timestamp("us", tz="UTC")
    elif not pc.any(with_offset).as_py():
        dtype = pa.timestamp("us")
    else:
        return pa.string()
    return dtype if _casts(text, dtype) else pa.string()


# -- vectorised tests ------------------------------------------------------------------------------------


def _non_null_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = values.cast(pa.string())
    return pc.drop_null(values)


class _Sample:
    """A column's non-null sample, and the same values without the spaces and tabs around them
    (computed once, and only for a column whose first value passes a pattern that needs it)."""

    def __init__(self, text: pa.Array, trim: bool) -> None:
        self.text = text
        self._trim = trim
        self._trimmed: pa.Array | None = None
        first = text[0].as_py() if len(text) else ""
        self._first = (first, first.strip(_BLANKS) if trim else first)

    @property
    def trimmed(self) -> pa.Array:
        if self._trimmed is None:
            self._trimmed = pc.utf8_trim(self.text, _BLANKS) if self._trim else self.text
        return self._trimmed

    def holds(self, pattern: str, trimmed: bool = True) -> bool:
        """Every value (trimmed, or as written) matches ``pattern``. The first value is tried alone
        first, in Python: most columns that do not hold fail there, without a pass over the sample
        (the pass decides; the patterns mean the same to Python's ``re`` and to RE2)."""
        if _compiled(pattern).search(self._first[1 if trimmed else 0]) is None:
            return False
        values = self.trimmed if trimmed else self.text
        return bool(pc.all(pc.match_substring_regex(values, pattern)).as_py())

    def spelled(self, spellings: tuple[str, ...]) -> bool:
        """Every value (as written) is one of ``spellings``."""
        if self._first[0] not in spellings:
            return False
        known = pa.array(spellings, pa.string())
        return bool(pc.all(pc.is_in(self.text, value_set=known)).as_py())


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _any(text: pa.Array, pattern: str) -> bool:
    return bool(pc.any(pc.match_substring_regex(text, pattern)).as_py())


def _casts(text: pa.Array, dtype: pa.DataType) -> bool:
    try:
        pc.cast(text, dtype, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False
    return True


def _max(values: pa.Array) -> int:
    largest = pc.max(values).as_py()
    return int(largest) if largest is not None else 0
