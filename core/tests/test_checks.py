"""The built-in quality checks and the expression language, on real record batches of every type."""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from pydantic import ValidationError

from conduit.checks import (
    Check,
    EnumCheck,
    ExpressionCheck,
    Length,
    NotNull,
    Range,
    Regex,
    Unique,
)
from conduit.config import load_flow
from conduit.errors import ConfigError, DataError
from conduit.expression import Expression, ExpressionError
from conduit.plugins import load_registry

UTC = dt.UTC
REPO = Path(__file__).resolve().parents[2]


def make(cls: type[Check], **options: Any) -> Check:
    return cls(cls.options_model.model_validate(options))


def verdicts(check: Check, batch: pa.RecordBatch) -> list[bool]:
    mask = check.evaluate(batch)
    assert len(mask) == batch.num_rows
    assert mask.null_count == 0, "built-in checks return a mask without nulls"
    return list(mask.to_pylist())


def column(values: list[Any], typ: pa.DataType | None = None, name: str = "x") -> pa.RecordBatch:
    return pa.record_batch({name: pa.array(values, typ)})


def config_error(cls: type[Check], **options: Any) -> str:
    with pytest.raises(ValidationError) as info:
        cls.options_model.model_validate(options)
    return str(info.value)


# ------------------------------------------------------------------------------------ registration


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("not_null", NotNull),
        ("unique", Unique),
        ("regex", Regex),
        ("range", Range),
        ("enum", EnumCheck),
        ("length", Length),
        ("expression", ExpressionCheck),
    ],
)
def test_every_builtin_is_registered(name: str, cls: type[Check]) -> None:
    assert load_registry().check(name) is cls


def test_action_accepts_dlq_and_nothing_else() -> None:
    assert make(NotNull, columns=["a"], action="dlq").options.action == "dlq"
    assert "action" in config_error(NotNull, columns=["a"], action="drop")


def test_default_explain_names_the_check() -> None:
    class Positive(Check):
        def columns(self) -> list[str]:
            return ["n"]

        def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
            return pa.array([True] * batch.num_rows)

    assert Positive(Positive.options_model()).explain({"n": -1}) == "failed Positive(n)"


# ---------------------------------------------------------------------------------------- not_null


def test_not_null_flags_rows_with_a_null_in_any_column() -> None:
    batch = pa.record_batch(
        {"a": [1, None, 3, 4], "b": ["x", "y", None, "z"], "f": [math.nan, 1.0, 2.0, 3.0]}
    )
    check = make(NotNull, columns=["a", "b", "f"])
    assert verdicts(check, batch) == [True, False, False, True]  # NaN is a value, not a null
    assert check.describe() == "not_null(a, b, f)"
    assert check.explain({"a": None, "b": "y", "f": 1.0}) == "a is null"
    assert check.explain({"a": None, "b": None, "f": 1.0}) == "a, b are null"


def test_not_null_needs_columns() -> None:
    assert "columns must name at least one column" in config_error(NotNull, columns=[])
    assert make(NotNull, columns="a").columns() == ["a"]


# ------------------------------------------------------------------------------------------ unique


def test_unique_within_a_batch_first_occurrence_passes() -> None:
    check = make(Unique, columns=["x"])
    assert verdicts(check, column([1, 2, 1, 3, 2, 1])) == [True, True, False, True, False, False]


def test_unique_across_batches() -> None:
    check = make(Unique, columns=["x"])
    assert verdicts(check, column([1, 2, 3])) == [True, True, True]
    assert verdicts(check, column([4, 3, 5])) == [True, False, True]
    assert verdicts(check, column([5, 6, 1, 6])) == [False, True, False, False]


def test_unique_ascending_batches_then_a_late_repeat() -> None:
    check = make(Unique, columns=["x"])
    for start in range(0, 300, 100):  # ordered, non-overlapping batches: kept as Arrow arrays
        assert all(verdicts(check, column(list(range(start, start + 100)))))
    assert verdicts(check, column([300, 150, 301, 0, 299, 302])) == [True, False, True, False, False, True]
    assert verdicts(check, column([303, 301, 1000])) == [True, False, True]  # still exact afterwards


def test_unique_descending_and_shuffled_batches() -> None:
    check = make(Unique, columns=["x"])
    assert all(verdicts(check, column([9, 8, 7])))
    assert all(verdicts(check, column([6, 4, 5])))  # below everything seen, not ordered, distinct
    assert verdicts(check, column([3, 3, 2])) == [True, False, True]
    assert verdicts(check, column([7, 1])) == [False, True]


def test_unique_matches_a_reference_on_random_batches() -> None:
    rng = random.Random(7)
    check = make(Unique, columns=["x"])
    seen: set[int] = set()
    failures = 0
    for _ in range(20):
        values = [rng.randrange(2000) if rng.random() > 0.05 else None for _ in range(rng.randrange(1, 200))]
        expected = []
        for value in values:
            expected.append(value is None or value not in seen)
            if value is not None:
                seen.add(value)
        got = verdicts(check, column(values, pa.int64()))
        assert got == expected
        failures += got.count(False)
    assert failures > 100  # the reference really had duplicates to find


def test_unique_null_keys_pass_and_are_not_remembered() -> None:
    check = make(Unique, columns=["x"])
    assert verdicts(check, column([None, 1, None, 2], pa.int64())) == [True, True, True, True]
    assert verdicts(check, column([None, 1], pa.int64())) == [True, False]
    assert verdicts(check, column([None, None], pa.int64())) == [True, True]


def test_unique_composite_key() -> None:
    check = make(Unique, columns=["a", "b"])
    first = pa.record_batch({"a": [1, 1, 2, 1, None, None], "b": ["x", "y", "x", "x", "x", "x"]})
    assert verdicts(check, first) == [True, True, True, False, True, True]
    second = pa.record_batch({"a": [2, 2, 1], "b": ["y", "x", None]})
    assert verdicts(check, second) == [True, False, True]
    assert check.describe() == "unique(a, b)"
    assert check.explain({"a": 2, "b": "x"}) == "key (a=2, b='x') was already seen in this run"


def test_unique_composite_key_of_mixed_types() -> None:
    check = make(Unique, columns=["n", "f", "d", "day", "ts", "s"])
    row = {
        "n": pa.array([1, 1, 1, 1], pa.int16()),
        "f": pa.array([0.0, -0.0, 0.0, 0.0]),
        "d": pa.array([Decimal("1.5")] * 4, pa.decimal128(5, 2)),
        "day": pa.array([dt.date(2024, 1, 1)] * 4),
        "ts": pa.array([dt.datetime(2024, 1, 1, tzinfo=UTC)] * 4, pa.timestamp("us", tz="UTC")),
        "s": pa.array(["é", "é", "e", "é"], pa.large_string()),
    }
    assert verdicts(check, pa.record_batch(row)) == [True, False, True, False]


@pytest.mark.parametrize(
    ("cls", "options"),
    [
        (Unique, {"columns": ["x"]}),
        (Regex, {"column": "x", "pattern": "a"}),
        (Range, {"column": "x", "min": 1}),
        (EnumCheck, {"column": "x", "values": [1]}),
        (Length, {"column": "x", "max": 1}),
        (ExpressionCheck, {"expr": "x > 1"}),
    ],
)
def test_a_column_of_only_nulls_passes(cls: type[Check], options: dict[str, Any]) -> None:
    assert verdicts(make(cls, **options), column([None, None], pa.null())) == [True, True]


def test_unique_on_an_empty_batch() -> None:
    check = make(Unique, columns=["x"])
    assert verdicts(check, column([], pa.int64())) == []
    assert verdicts(make(Unique, columns=["x", "x2"]), pa.record_batch({"x": [1], "x2": [None]})) == [True]


def test_unique_composite_key_does_not_confuse_split_points() -> None:
    check = make(Unique, columns=["a", "b"])
    batch = pa.record_batch({"a": ["ab", "a", "a"], "b": ["c", "bc", "bc"]})
    assert verdicts(check, batch) == [True, True, False]


@pytest.mark.parametrize(
    ("values", "typ", "expected"),
    [
        ([1.5, -0.0, 0.0, math.nan, math.nan, 1.5], pa.float64(), [True, True, False, True, False, False]),
        ([1.5, 2.5, 1.5], pa.float32(), [True, True, False]),
        ([Decimal("1.10"), Decimal("2.00"), Decimal("1.10")], pa.decimal128(10, 2), [True, True, False]),
        (["é", "e", "日本", "é", "日本"], pa.string(), [True, True, True, False, False]),
        (["a", "b", "a"], pa.large_string(), [True, True, False]),
        ([b"\x00", b"\x00\x00", b"\x00"], pa.binary(), [True, True, False]),
        ([dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 1)], pa.date32(), [True, True, False]),
        (
            [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, 0, 0, 1), dt.datetime(2024, 1, 1)],
            pa.timestamp("us"),
            [True, True, False],
        ),
        (
            [
                dt.datetime(2024, 1, 1, tzinfo=UTC),
                dt.datetime(2024, 1, 1, 1, tzinfo=UTC),
                dt.datetime(2024, 1, 1, tzinfo=UTC),
            ],
            pa.timestamp("ns", tz="UTC"),
            [True, True, False],
        ),
        ([True, False, True], pa.bool_(), [True, True, False]),
        ([2**64 - 1, 0, 2**64 - 1], pa.uint64(), [True, True, False]),
    ],
)
def test_unique_on_every_type(values: list[Any], typ: pa.DataType, expected: list[bool]) -> None:
    check = make(Unique, columns=["x"])
    assert verdicts(check, column(values, typ)) == expected
    assert verdicts(check, column(values[:1], typ)) == [False]  # and across batches


def test_unique_on_a_dictionary_column() -> None:
    check = make(Unique, columns=["x"])
    assert verdicts(check, pa.record_batch({"x": pa.array(["a", "b", "a"]).dictionary_encode()})) == [
        True,
        True,
        False,
    ]


def test_unique_refuses_a_nested_column() -> None:
    check = make(Unique, columns=["x"])
    with pytest.raises(ConfigError, match=r"check unique\(x\): column 'x' is list<item: int64>"):
        check.evaluate(column([[1], [2]]))


def test_unique_explain_and_describe() -> None:
    check = make(Unique, columns=["order_id"])
    assert check.describe() == "unique(order_id)"
    assert check.explain({"order_id": 7}) == "order_id 7 was already seen in this run"
    assert check.explain({"order_id": "A-7"}) == "order_id 'A-7' was already seen in this run"


def test_unique_options_are_validated() -> None:
    assert "columns must name at least one column" in config_error(Unique, columns=[])
    assert "columns lists 'a' more than once" in config_error(Unique, columns=["a", "b", "a"])
    assert "columns must not contain an empty name" in config_error(Unique, columns=[""])
    assert "unknown" in config_error(Unique, columns=["a"], column="a").lower() or "extra" in config_error(
        Unique, columns=["a"], column="a"
    )


def _unique_run_seconds(values: pa.Array, batches: int) -> float:
    size = len(values) // batches
    parts = [pa.record_batch({"id": values.slice(i * size, size)}) for i in range(batches)]
    best = math.inf
    for _ in range(3):
        check = make(Unique, columns=["id"])
        start = time.perf_counter()
        for part in parts:
            mask = check.evaluate(part)
        best = min(best, time.perf_counter() - start)
        assert mask.true_count == size
    return best


def test_unique_is_fast_on_ascending_keys() -> None:
    # 1M int64 keys in 16 batches: about 5 ms on the 2-core dev machine (the limit is generous for CI)
    assert _unique_run_seconds(pa.array(range(1_000_000), pa.int64()), 16) < 0.1


# ------------------------------------------------------------------------------------------- regex


def test_regex_searches_like_re_search_and_nulls_pass() -> None:
    batch = column(["a@b.c", "nope", None, "x a@b", "日本@語"])
    assert verdicts(make(Regex, column="x", pattern="@"), batch) == [True, False, True, True, True]
    anchored = make(Regex, column="x", pattern="^[^@ ]+@[^@ ]+$")
    assert verdicts(anchored, batch) == [True, False, True, False, True]


def test_regex_full_match_wraps_the_pattern() -> None:
    batch = column(["abc", "abcd", "xabc", "ab"])
    assert verdicts(make(Regex, column="x", pattern="abc|ab", full_match=True), batch) == [
        True,
        False,
        False,
        True,
    ]
    assert verdicts(make(Regex, column="x", pattern="abc|ab"), batch) == [True, True, True, True]


def test_regex_on_non_string_columns_casts_to_text() -> None:
    assert verdicts(make(Regex, column="x", pattern="^[0-9]{3}$"), column([123, 45, None, 9999])) == [
        True,
        False,
        True,
        False,
    ]
    dates = column([dt.date(2024, 1, 31), dt.date(2023, 5, 1)])
    assert verdicts(make(Regex, column="x", pattern="^2024-"), dates) == [True, False]
    assert verdicts(make(Regex, column="x", pattern="^ab"), column([b"abc", b"xab"], pa.binary())) == [
        True,
        False,
    ]


def test_regex_unicode_classes() -> None:
    check = make(Regex, column="x", pattern=r"^\p{L}+$")
    assert verdicts(check, column(["école", "日本語", "abc1", ""])) == [True, True, False, False]


def test_regex_invalid_pattern_is_a_config_error() -> None:
    message = config_error(Regex, column="x", pattern="a(b")
    assert "invalid regular expression 'a(b' (RE2 syntax)" in message and "missing )" in message
    assert "invalid regular expression '(?=x)'" in config_error(
        Regex, column="x", pattern="(?=x)"
    )  # no lookahead
    assert "column must name a column" in config_error(Regex, column=" ", pattern="x")
    assert "pattern must not be empty" in config_error(Regex, column="x", pattern="")


def test_regex_explain_and_describe() -> None:
    check = make(Regex, column="email", pattern="^[^@]+@[^@]+$")
    assert check.describe() == "regex(email)"
    assert check.explain({"email": "x"}) == "email 'x' does not match ^[^@]+@[^@]+$"
    full = make(Regex, column="code", pattern="[A-Z]{3}", full_match=True)
    assert full.explain({"code": "ABCD"}) == "code 'ABCD' does not fully match [A-Z]{3}"


# ------------------------------------------------------------------------------------------- range


def test_range_integers_inclusive_and_exclusive() -> None:
    batch = column([-1, 0, 1, 99, 100, 101, None])
    assert verdicts(make(Range, column="x", min=0, max=100), batch) == [
        False,
        True,
        True,
        True,
        True,
        False,
        True,
    ]
    exclusive = make(Range, column="x", min=0, max=100, min_inclusive=False, max_inclusive=False)
    assert verdicts(exclusive, batch) == [False, False, True, True, False, False, True]
    assert verdicts(make(Range, column="x", min=50), batch) == [False] * 3 + [True] * 4
    assert verdicts(make(Range, column="x", max=0), batch) == [True, True] + [False] * 4 + [True]


def test_range_fractional_bounds_on_integers() -> None:
    batch = column([0, 1, 2, 3])
    assert verdicts(make(Range, column="x", min=0.5, max=2.5), batch) == [False, True, True, False]
    assert verdicts(make(Range, column="x", min="0.5", max=Decimal("2.5"), max_inclusive=False), batch) == [
        False,
        True,
        True,
        False,
    ]


def test_range_bounds_outside_the_integer_type() -> None:
    batch = column([0, 7, 255, None], pa.uint8())
    assert verdicts(make(Range, column="x", min=-1, max=1000), batch) == [True, True, True, True]
    assert verdicts(make(Range, column="x", min=300), batch) == [False, False, False, True]
    assert verdicts(make(Range, column="x", max=-5), batch) == [False, False, False, True]
    assert verdicts(make(Range, column="x", min=0, max=255, max_inclusive=False), batch) == [
        True,
        True,
        False,
        True,
    ]


def test_range_floats_nan_fails_and_nulls_pass() -> None:
    batch = column([0.0, 100.0, 100.0000001, -0.5, math.nan, None, math.inf])
    check = make(Range, column="x", min=0, max=100)
    assert verdicts(check, batch) == [True, True, False, False, False, True, False]
    assert verdicts(make(Range, column="x", min=-math.inf), batch) == [
        True,
        True,
        True,
        True,
        False,
        True,
        True,
    ]
    assert check.explain({"x": math.nan}) == "x is NaN, which no range contains"


def test_range_float32_bound_in_the_column_type() -> None:
    batch = column([0.1, 0.2], pa.float32())
    assert verdicts(make(Range, column="x", max=0.1), batch) == [True, False]


def test_range_decimals() -> None:
    typ = pa.decimal128(10, 2)
    batch = column([Decimal("0.00"), Decimal("0.01"), Decimal("99.99"), Decimal("100.00"), None], typ)
    assert verdicts(make(Range, column="x", min=0, max=99.99), batch) == [True, True, True, False, True]
    assert verdicts(make(Range, column="x", min="0.005"), batch) == [False, True, True, True, True]
    assert verdicts(make(Range, column="x", min=0, min_inclusive=False), batch) == [
        False,
        True,
        True,
        True,
        True,
    ]
    assert verdicts(make(Range, column="x", max=10**12), batch) == [True] * 5


def test_range_dates_from_yaml_dates_and_iso_strings() -> None:
    batch = column(
        [dt.date(2023, 12, 31), dt.date(2024, 1, 1), dt.date(2024, 12, 31), dt.date(2025, 1, 1), None]
    )
    check = make(Range, column="x", min=dt.date(2024, 1, 1), max="2024-12-31")
    assert verdicts(check, batch) == [False, True, True, False, True]
    assert check.describe() == "range(x, min=2024-01-01, max=2024-12-31)"
    exclusive = make(Range, column="x", max=dt.date(2024, 12, 31), max_inclusive=False)
    assert verdicts(exclusive, batch) == [True, True, False, False, True]


def test_range_naive_timestamps() -> None:
    values = [
        dt.datetime(2023, 12, 31, 23, 59, 59),
        dt.datetime(2024, 1, 1),
        dt.datetime(2024, 6, 1, 12),
        None,
    ]
    batch = column(values, pa.timestamp("us"))
    check = make(Range, column="x", min=dt.date(2024, 1, 1), max="2024-06-01T12:00:00")
    assert verdicts(check, batch) == [False, True, True, True]
    assert verdicts(make(Range, column="x", max="2024-06-01T12:00:00", max_inclusive=False), batch) == [
        True,
        True,
        False,
        True,
    ]
    # an aware bound on a naive column compares in UTC
    aware = make(Range, column="x", min=dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert verdicts(aware, batch) == [False, True, True, True]


def test_range_utc_timestamps() -> None:
    values = [dt.datetime(2023, 12, 31, 23, tzinfo=UTC), dt.datetime(2024, 1, 1, tzinfo=UTC), None]
    batch = column(values, pa.timestamp("us", tz="UTC"))
    assert verdicts(make(Range, column="x", min="2024-01-01T00:00:00Z"), batch) == [False, True, True]
    assert verdicts(make(Range, column="x", min=dt.date(2024, 1, 1)), batch) == [False, True, True]
    # 00:30 at +01:00 is 23:30 UTC the day before
    assert verdicts(make(Range, column="x", min="2024-01-01T00:30:00+01:00"), batch) == [False, True, True]


def test_range_naive_bound_is_read_in_the_columns_zone() -> None:
    paris = pa.timestamp("us", tz="Europe/Paris")
    batch = column(
        [dt.datetime(2023, 12, 31, 22, 30, tzinfo=UTC), dt.datetime(2023, 12, 31, 23, tzinfo=UTC)], paris
    )
    # midnight in Paris is 23:00 UTC in winter
    assert verdicts(make(Range, column="x", min="2024-01-01T00:00:00"), batch) == [False, True]


def test_range_bound_finer_than_the_column_unit() -> None:
    batch = column([dt.datetime(2024, 1, 1, 0, 0, 0), dt.datetime(2024, 1, 1, 0, 0, 1)], pa.timestamp("s"))
    assert verdicts(make(Range, column="x", min="2024-01-01T00:00:00.5"), batch) == [False, True]


@pytest.mark.parametrize(
    ("values", "typ", "options", "message"),
    [
        (
            [1],
            pa.int64(),
            {"min": "abc"},
            "min 'abc' cannot be compared with column 'x' (int64): not a number",
        ),
        (
            [1],
            pa.int64(),
            {"max": dt.date(2024, 1, 1)},
            "max 2024-01-01 cannot be compared with column 'x' (int64)",
        ),
        (
            [1.0],
            pa.float64(),
            {"min": "2024-01-01"},
            "min '2024-01-01' cannot be compared with column 'x' (double)",
        ),
        (
            [dt.date(2024, 1, 1)],
            pa.date32(),
            {"min": 5},
            "min 5 cannot be compared with column 'x' (date32[day])",
        ),
        (
            [dt.date(2024, 1, 1)],
            pa.date32(),
            {"min": "2024-01-01T12:00:00"},
            "a date column needs a date, not a timestamp with a time of day",
        ),
        (["a"], pa.string(), {"min": 1}, "column 'x' is string; range needs numbers"),
    ],
)
def test_range_unconvertible_bound_is_a_config_error(
    values: list[Any], typ: pa.DataType, options: dict[str, Any], message: str
) -> None:
    check = make(Range, column="x", **options)
    with pytest.raises(ConfigError) as info:
        check.evaluate(column(values, typ))
    assert str(info.value).startswith(f"check {check.describe()}: ")
    assert message in str(info.value)


def test_range_options_are_validated() -> None:
    assert "range needs min, max, or both" in config_error(Range, column="x")
    assert "min 10 and max 5 leave no value in range" in config_error(Range, column="x", min=10, max=5)
    assert "leave no value in range" in config_error(Range, column="x", min=5, max=5, max_inclusive=False)
    assert "min must be a number, a date, a timestamp or an ISO-8601 string" in config_error(
        Range, column="x", min=True
    )
    assert "max must not be NaN" in config_error(Range, column="x", max=math.nan)
    assert "unknown" in config_error(Range, column="x", min=1, minimum=2).lower() or "extra" in config_error(
        Range, column="x", min=1, minimum=2
    )
    make(Range, column="x", min=5, max=5)  # a single allowed value is fine


def test_range_explain_and_describe() -> None:
    check = make(Range, column="amount", min=0, max=100)
    check.evaluate(column([1], pa.int64(), name="amount"))
    assert check.describe() == "range(amount, min=0, max=100)"
    assert check.explain({"amount": 150}) == "amount is 150, above the maximum 100"
    assert check.explain({"amount": -3}) == "amount is -3, below the minimum 0"
    exclusive = make(Range, column="amount", min=0, min_inclusive=False)
    exclusive.evaluate(column([1], pa.int64(), name="amount"))
    assert exclusive.describe() == "range(amount, min=0 (exclusive))"
    assert exclusive.explain({"amount": 0}) == "amount is 0, not above the exclusive minimum 0"
    day = make(Range, column="day", max="2024-12-31")
    day.evaluate(column([dt.date(2024, 1, 1)], name="day"))
    assert day.explain({"day": dt.date(2025, 1, 1)}) == "day is 2025-01-01, above the maximum 2024-12-31"


# -------------------------------------------------------------------------------------------- enum


def test_enum_strings_ints_and_nulls() -> None:
    check = make(EnumCheck, column="x", values=["new", "paid", "café"])
    assert verdicts(check, column(["new", "NEW", None, "café", "cafe"])) == [True, False, True, True, False]
    assert verdicts(make(EnumCheck, column="x", values=[1, 2]), column([1, 3, None], pa.int8())) == [
        True,
        False,
        True,
    ]


def test_enum_ignore_case() -> None:
    check = make(EnumCheck, column="x", values=["Paid", "ÉTÉ"], ignore_case=True)
    assert verdicts(check, column(["paid", "PAID", "été", "ete", None])) == [True, True, True, False, True]


def test_enum_converts_values_to_the_column_type() -> None:
    dates = column([dt.date(2024, 1, 1), dt.date(2024, 1, 2)])
    assert verdicts(make(EnumCheck, column="x", values=["2024-01-01"]), dates) == [True, False]
    decimals = column([Decimal("1.50"), Decimal("2.00")], pa.decimal128(5, 2))
    assert verdicts(make(EnumCheck, column="x", values=[1.5]), decimals) == [True, False]
    codes = column(["200", "404", "500"])
    assert verdicts(make(EnumCheck, column="x", values=[200, 404]), codes) == [True, True, False]
    floats = column([1.0, 2.5, math.nan])
    assert verdicts(make(EnumCheck, column="x", values=[1, 2.5]), floats) == [True, True, False]
    large = column(["a", "b"], pa.large_string())
    assert verdicts(make(EnumCheck, column="x", values=["a"]), large) == [True, False]


@pytest.mark.parametrize(
    ("values", "typ", "options", "message"),
    [
        ([1], pa.int64(), {"values": ["one"]}, "value 'one' cannot be compared with column 'x' (int64)"),
        (
            [1],
            pa.int8(),
            {"values": [300]},
            "value 300 cannot be compared with column 'x' (int8): out of range for int8",
        ),
        (
            [1],
            pa.int64(),
            {"values": [1.5]},
            "value 1.5 cannot be compared with column 'x' (int64): not an integer",
        ),
        (
            [1],
            pa.int64(),
            {"values": [1], "ignore_case": True},
            "column 'x' is int64; ignore_case needs a string column",
        ),
    ],
)
def test_enum_unconvertible_values_are_config_errors(
    values: list[Any], typ: pa.DataType, options: dict[str, Any], message: str
) -> None:
    check = make(EnumCheck, column="x", **options)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check.evaluate(column(values, typ))


def test_enum_options_are_validated() -> None:
    assert "values must list at least one allowed value" in config_error(EnumCheck, column="x", values=[])
    assert "values must not contain null" in config_error(EnumCheck, column="x", values=["a", None])
    assert "values must be plain values" in config_error(EnumCheck, column="x", values=[["a"]])


def test_enum_explain_and_describe() -> None:
    check = make(EnumCheck, column="status", values=["new", "paid"])
    assert check.describe() == "enum(status)"
    assert check.explain({"status": "void"}) == "status 'void' is not one of 'new', 'paid'"
    many = make(EnumCheck, column="n", values=list(range(12)), ignore_case=False)
    assert many.explain({"n": 99}) == "n 99 is not one of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (12 values)"


# ------------------------------------------------------------------------------------------ length


def test_length_counts_characters_not_bytes() -> None:
    check = make(Length, column="x", min=2, max=3)
    assert verdicts(check, column(["a", "ab", "日本語", "日本語!", "", None])) == [
        False,
        True,
        True,
        False,
        False,
        True,
    ]
    assert verdicts(check, column(["é", "éé"], pa.large_string())) == [False, True]


def test_length_counts_bytes_for_binary() -> None:
    check = make(Length, column="x", max=2)
    assert verdicts(check, column([b"ab", b"abc", None], pa.binary())) == [True, False, True]
    assert verdicts(make(Length, column="x", min=1), column(["日"], pa.string())) == [True]


def test_length_on_a_number_column_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"check length\(x, min=1\): column 'x' is int64; length needs"):
        make(Length, column="x", min=1).evaluate(column([1]))


def test_length_options_are_validated() -> None:
    assert "length needs min, max, or both" in config_error(Length, column="x")
    assert "min must not be negative" in config_error(Length, column="x", min=-1)
    assert "max must be a whole number" in config_error(Length, column="x", max=2.5)
    assert "min 5 is above max 2" in config_error(Length, column="x", min=5, max=2)


def test_length_explain_and_describe() -> None:
    check = make(Length, column="name", min=1, max=3)
    assert check.describe() == "length(name, min=1, max=3)"
    assert check.explain({"name": ""}) == "name has 0 characters, fewer than the minimum 1"
    assert check.explain({"name": "日本語です"}) == "name has 5 characters, more than the maximum 3"
    assert check.explain({"name": b"abcd"}) == "name has 4 bytes, more than the maximum 3"


# -------------------------------------------------------------------------------------- expression

ROWS = pa.record_batch(
    {
        "a": pa.array([1, 2, 3, None], pa.int64()),
        "b": pa.array([3, 3, 4, 1], pa.int64()),
        "f": pa.array([0.5, math.nan, -1.5, 2.0]),
        "s": pa.array(["x", "Y", None, "日本"]),
        "d": pa.array([Decimal("1.50"), Decimal("0.00"), Decimal("-2.25"), None], pa.decimal128(8, 2)),
        "day": pa.array([dt.date(2024, 1, 1), dt.date(2023, 12, 31), None, dt.date(2024, 6, 1)]),
        "ts": pa.array(
            [
                dt.datetime(2024, 1, 1, tzinfo=UTC),
                None,
                dt.datetime(2023, 1, 1, tzinfo=UTC),
                dt.datetime(2025, 1, 1, tzinfo=UTC),
            ],
            pa.timestamp("us", tz="UTC"),
        ),
        "naive": pa.array([dt.datetime(2024, 1, 1), None, None, None], pa.timestamp("ms")),
        "order id": pa.array([10, 20, 30, 40]),
        "flag": pa.array([True, False, None, True]),
    }
)


def predicate(text: str) -> list[bool | None]:
    """The raw predicate (None = NULL) over ROWS."""
    return list(Expression(text).evaluate(ROWS).to_pylist())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # precedence: and binds tighter than or; not looser than comparisons
        ("a = 1 or a = 2 and b = 4", [True, False, False, None]),
        ("(a = 1 or a = 2) and b = 3", [True, True, False, False]),  # NULL and false is false
        ("not a = 1", [False, True, True, None]),
        ("not (a = 1 or b = 4)", [False, True, False, None]),
        ("a + b * 2 = 7", [True, False, False, None]),
        ("(a + b) * 2 = 8", [True, False, False, None]),
        ("a - b - 1 = -3", [True, False, False, None]),
        ("-a < 0 AND b >= 3", [True, True, True, False]),
        ("a / 2 = 0.5", [True, False, False, None]),  # true division
        ("b / (a - 1) > 1.5", [None, True, True, None]),  # x / 0 is NULL
        ("b / (a + 1) > 1.5", [False, False, False, None]),  # x / 0 is NULL
        ("d / 0 = 1", [None, None, None, None]),
        # comparisons
        ("a == 1 or a <> 2 and a != 3", [True, False, False, None]),
        ("a <= 2", [True, True, False, None]),
        ("f > 0", [True, False, False, True]),  # NaN compares false
        ("d >= 0", [True, True, False, None]),
        ("d = 1.5", [True, False, False, None]),
        ("a < 1.5", [True, False, False, None]),
        ("f = 2", [False, False, False, True]),
        # in / not in / is null
        ("a in (1, 3)", [True, False, True, None]),
        ("a not in (1, 3)", [False, True, False, None]),
        ("a in (1, null)", [True, None, None, None]),
        ("s in ('x', 'Y')", [True, True, None, False]),
        ("f in (-1.5, 2)", [False, False, True, True]),
        ("d in (1.5, -2.25)", [True, False, True, None]),
        ("day in (date '2024-01-01', '2024-06-01')", [True, False, None, True]),
        ("s is null", [False, False, True, False]),
        ("s is not null and a is not null", [True, True, False, False]),
        ("f is null", [False, False, False, False]),  # NaN is not NULL
        # functions
        ("length(s) = 2", [False, False, None, True]),
        ("lower(s) = 'y'", [False, True, None, False]),
        ("upper(s) = 'X'", [True, False, None, False]),
        ("abs(f) = 1.5", [False, False, True, False]),
        ("abs(d) > 2", [False, False, True, None]),
        ("coalesce(a, 0) = 0", [False, False, False, True]),
        ("coalesce(s, 'none') = 'none'", [False, False, True, False]),
        # literals
        ("s = \"x\" or s = 'Y'", [True, True, None, False]),
        ("'it''s' = \"it's\"", [True, True, True, True]),
        ("s = '日本'", [False, False, None, True]),
        ("flag = true", [True, False, None, True]),
        ("flag", [True, False, None, True]),
        ("flag = false or not flag", [False, True, None, False]),
        ("a = null", [None, None, None, None]),
        ("true", [True, True, True, True]),
        ("1 < 2", [True, True, True, True]),
        ("day >= date '2024-01-01'", [True, False, None, True]),
        ("day < '2024-01-01'", [False, True, None, False]),
        ("ts >= timestamp '2024-01-01T00:00:00Z'", [True, None, False, True]),
        ("ts < timestamp '2024-01-01T01:00:00+02:00'", [False, None, True, False]),
        ("ts > '2024-06-01'", [False, None, False, True]),
        ("naive = timestamp '2024-01-01 00:00:00'", [True, None, None, None]),
        ("d > 1e0", [True, False, False, None]),
        ("a > .5", [True, True, True, None]),
        ("`order id` > 15 and `order id` < 35", [False, True, True, False]),
    ],
)
def test_expression_semantics(text: str, expected: list[bool | None]) -> None:
    assert predicate(text) == expected


def test_expression_null_rows_pass_and_false_rows_fail() -> None:
    check = make(ExpressionCheck, expr="a > 1")
    assert verdicts(check, ROWS) == [False, True, True, True]  # a NULL verdict passes


def test_expression_columns_are_reported_for_the_engine() -> None:
    check = make(
        ExpressionCheck, expr="amount > 0 and (`order id` in (1, 2) or lower(status) != 'x') and amount < 5"
    )
    assert check.columns() == ["amount", "order id", "status"]
    assert make(ExpressionCheck, expr="date > '2024-01-01'").columns() == ["date"]  # a column named date
    assert make(ExpressionCheck, expr="1 = 1").columns() == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a >> 3", "expression 'a >> 3': unexpected '>' at column 4"),
        ("a >", "expression 'a >': unexpected end of expression at column 4"),
        ("(a > 1", "expression '(a > 1': unexpected end of expression at column 7 (expected ')')"),
        ("a > 1 b", "expression 'a > 1 b': unexpected 'b' at column 7"),
        ("a < b < c", "unexpected '<' at column 7 (comparisons do not chain"),
        ("a $ 1", "expression 'a $ 1': unexpected '$' at column 3"),
        ("s = 'abc", "unterminated string at column 5"),
        ("`a b > 1", "unterminated `quoted name` at column 1"),
        ("a in ()", "unexpected ')' at column 7 (expected a literal value)"),
        ("a in (b)", "unexpected 'b' at column 7 (expected a literal value)"),
        ("a is 1", "unexpected '1' at column 6 (expected 'null')"),
        ("foo(a) > 1", "unknown function 'foo' at column 1 (known: abs, coalesce, length, lower, upper)"),
        ("length(a, b) > 1", "length() takes 1 argument, got 2 at column 1"),
        ("coalesce(a) > 1", "coalesce() takes at least 2 arguments, got 1 at column 1"),
        ("day = date '2024-02-30'", "invalid date '2024-02-30' at column 12 (write it like '2024-01-31')"),
        ("a + 1", "expression 'a + 1': not a condition (it must give true or false, e.g. 'amount > 0')"),
        ("'x'", "expression \"'x'\": not a condition"),
        ("not 5", "'not' needs a true/false condition at column 5"),
        ("(a > 1) + 2 > 0", "'+' needs a value, not a true/false condition at column 2"),
        ("a > 1 and 7", "'and' needs a true/false condition at column 11"),
        ("", "the expression is empty"),
        ("a in (1,", "unexpected end of expression at column 9 (expected a literal value)"),
    ],
)
def test_expression_parse_errors_name_the_column(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        Expression(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_expression_parse_error_in_options_is_readable() -> None:
    message = config_error(ExpressionCheck, expr="a >> 3")
    assert "expression 'a >> 3': unexpected '>' at column 4" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s > 5", "'>' does not apply to string and int64"),
        ("d / 2 > 'x'", "does not apply to decimal"),
        ("a = 'one'", "'=' does not apply to int64 and string"),
        ("length(a) > 1", "length() needs a string, got int64 values"),
        ("abs(s) > 1", "abs() needs a number, got string values"),
        ("a in ('x')", "'x' cannot be compared with int64 values"),
        ("a and flag", "'and' needs a true/false condition, got int64 values"),
        ("a + 0", "not a condition"),
    ],
)
def test_expression_type_errors_are_config_errors_naming_the_check(text: str, message: str) -> None:
    with pytest.raises((ConfigError, ValidationError)) as info:
        make(ExpressionCheck, expr=text).evaluate(ROWS)
    assert message in str(info.value)
    if isinstance(info.value, ConfigError):
        assert str(info.value).startswith(f"check expression({text}): ")


def test_expression_overflow_is_a_data_error() -> None:
    batch = pa.record_batch({"n": pa.array([2**62, 1])})
    with pytest.raises(DataError, match="arithmetic overflow"):
        make(ExpressionCheck, expr="n * 4 > 0").evaluate(batch)


def test_expression_on_an_empty_batch() -> None:
    assert verdicts(make(ExpressionCheck, expr="a > 1 or 1 = 1"), ROWS.slice(0, 0)) == []


def test_expression_explain_and_describe() -> None:
    check = make(ExpressionCheck, expr="amount > 0 and\n   status != 'x'")
    assert check.describe() == "expression(amount > 0 and status != 'x')"
    assert check.explain({"amount": -5, "status": "x", "other": 1}) == (
        "amount > 0 and status != 'x' is false for amount=-5, status='x'"
    )


# -------------------------------------------------------------------------------- config and docs


FLOW = """\
version: 1
entities:
  orders:
    source: {type: jsonl, options: {path: orders.jsonl}}
    destination: {type: jsonl, options: {path: out/orders.jsonl}}
    checks:
"""


def test_bad_check_options_read_well_in_a_flow(tmp_path: Path) -> None:
    checks = [
        "- range: {column: amount}",
        "- regex: {column: email, pattern: 'a(b'}",
        "- expression: {expr: 'a >> 3'}",
        "- length: {column: name, min: -1}",
        "- unique: {columns: []}",
    ]
    path = tmp_path / "ingest.yml"
    path.write_text(FLOW + "".join(f"      {line}\n" for line in checks))
    with pytest.raises(ConfigError) as info:
        load_flow(path, load_registry())
    message = str(info.value)
    assert "entities.orders.checks[0].range: range needs min, max, or both" in message
    assert "entities.orders.checks[1].regex: invalid regular expression 'a(b' (RE2 syntax)" in message
    assert (
        "entities.orders.checks[2].expression.expr: expression 'a >> 3': unexpected '>' at column 4"
        in message
    )
    assert "entities.orders.checks[3].length.min: min must not be negative" in message
    assert "entities.orders.checks[4].unique.columns: columns must name at least one column" in message


def _docs_checks() -> list[dict[str, Any]]:
    text = (REPO / "docs" / "config.md").read_text()
    section = text.split("### Built-in checks", 1)[1].split("\n## ", 1)[0]
    found: list[dict[str, Any]] = []
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        for item in yaml.safe_load(block)["checks"]:
            found.append(item)
    return found


def test_every_check_example_in_the_docs_validates() -> None:
    registry = load_registry()
    examples = _docs_checks()
    names = {name for item in examples for name in item}
    assert names == {"not_null", "unique", "regex", "range", "enum", "length", "expression"}
    for item in examples:
        ((name, options),) = item.items()
        cls = registry.check(name)
        cls(cls.options_model.model_validate(options))
