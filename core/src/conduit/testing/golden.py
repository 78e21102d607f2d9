"""The golden data every connector must move exactly, and an exact, NaN-aware table comparison."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

UTC = dt.UTC


def golden_table() -> pa.Table:
    """Seven rows covering the awkward values of each type, with a null in every column.

    int64 beyond 2**53 and at both limits; float64 with NaN, infinities and -0.0; decimal128(38,9) at
    full precision; unicode strings with quotes, commas, newlines and the empty string (which is not
    NULL); timestamp[us, UTC] with microseconds; date32 across a leap day.
    """
    return pa.table(
        {
            "id": pa.array([1, 2, 3, 4, 5, 6, 7], pa.int64()),
            "big": pa.array([2**53 + 1, -(2**63), 2**63 - 1, 0, None, -1, 42], pa.int64()),
            "ratio": pa.array(
                [1.5, float("nan"), float("inf"), float("-inf"), -0.0, None, 1e-300], pa.float64()
            ),
            "amount": pa.array(
                [
                    Decimal("12345678901234567890123456789.123456789"),
                    Decimal("-0.000000001"),
                    Decimal("0E-9"),
                    None,
                    Decimal("-99999999999999999999999999999.999999999"),
                    Decimal("1.100000000"),
                    Decimal("42.000000000"),
                ],
                pa.decimal128(38, 9),
            ),
            "flag": pa.array([True, False, None, True, False, True, False], pa.bool_()),
            "label": pa.array(
                [
                    "plain",
                    'comma, "quoted"',
                    "line\nbreak\r\nand tab\t",
                    "ünïcødé ✓ 日本語 🚀",
                    "",
                    None,
                    "back\\slash 'single'",
                ],
                pa.string(),
            ),
            "created_at": pa.array(
                [
                    dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
                    dt.datetime(1970, 1, 1, tzinfo=UTC),
                    dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
                    None,
                    dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
                    dt.datetime(2000, 6, 15, 12, 0, 0, 500000, tzinfo=UTC),
                    dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "day": pa.array(
                [
                    dt.date(2024, 2, 29),
                    dt.date(1970, 1, 1),
                    None,
                    dt.date(1900, 3, 1),
                    dt.date(9999, 12, 31),
                    dt.date(2000, 1, 1),
                    dt.date(1, 1, 1),
                ],
                pa.date32(),
            ),
        }
    )


def _column_problems(name: str, expected: pa.ChunkedArray, actual: pa.ChunkedArray) -> list[str]:
    if expected.type != actual.type:
        return [f"column {name!r}: type {actual.type} != expected {expected.type}"]
    problems = []
    exp_null = expected.is_null().to_pylist()
    act_null = actual.is_null().to_pylist()
    if pa.types.is_floating(expected.type):
        exp_nan = pc.fill_null(pc.is_nan(expected), False).to_pylist()
        act_nan = pc.fill_null(pc.is_nan(actual), False).to_pylist()
    else:
        exp_nan = act_nan = [False] * len(expected)
    exp_values, act_values = expected.to_pylist(), actual.to_pylist()
    for row, (ev, av) in enumerate(zip(exp_values, act_values, strict=True)):
        if exp_null[row] != act_null[row] or exp_nan[row] != act_nan[row]:
            problems.append(f"column {name!r} row {row}: {av!r} != expected {ev!r}")
        elif not exp_null[row] and not exp_nan[row]:
            same = ev == av and type(ev) is type(av)
            if isinstance(ev, float) and same:
                same = str(ev) == str(av)  # -0.0 and 0.0 compare equal; their text does not
            if not same:
                problems.append(f"column {name!r} row {row}: {av!r} != expected {ev!r}")
    return problems


def assert_tables_equal(expected: pa.Table, actual: pa.Table, *, check_types: bool = True) -> None:
    """Exact comparison: names, order, types (unless ``check_types=False``), row count and values.

    NaN equals NaN, -0.0 differs from 0.0, NULL differs from the empty string. The message lists
    every differing value (up to twenty).
    """
    assert actual.column_names == expected.column_names, (
        f"columns {actual.column_names} != expected {expected.column_names}"
    )
    assert actual.num_rows == expected.num_rows, f"{actual.num_rows} rows != expected {expected.num_rows}"
    problems: list[str] = []
    for name in expected.column_names:
        exp, act = expected.column(name), actual.column(name)
        if not check_types and exp.type != act.type:
            act = act.cast(exp.type)
        problems.extend(_column_problems(name, exp, act))
    assert not problems, "tables differ:\n" + "\n".join(problems[:20])
