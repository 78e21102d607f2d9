"""The error-path helpers on their own: exact lines and rows, all problems (for a dead-letter queue)."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest

from conduit.plugins import load_registry
from conduit_csv import CsvDestination, CsvSource
from conduit_csv.locate import (
    DECODE_ERRORS,
    MARK,
    RecordChecker,
    RecordScanner,
    conversion_failures,
    csv_converter,
    find_record,
    line_breaks,
    record_problems,
)

DIALECT = {"delimiter": ",", "quotechar": '"', "doublequote": True, "strict": False}


def _scanner(text: str, skip_lines: int = 0, field_limit: int = 1 << 20) -> RecordScanner:
    return RecordScanner(
        io.StringIO(text, newline=""), DIALECT, skip_lines=skip_lines, field_limit=field_limit
    )


def test_records_know_their_lines_and_raw_text() -> None:
    records = list(_scanner('h1,h2\n\n1,"a\nb"\r\n2,c\r3,d'))
    assert [(r.number, r.line, r.end_line) for r in records] == [(1, 1, 1), (2, 3, 4), (3, 5, 5), (4, 6, 6)]
    assert records[1].fields == ["1", "a\nb"]
    assert records[1].text == '1,"a\nb"\r\n'
    assert not any(r.unterminated for r in records)


def test_skip_lines_and_bom() -> None:
    records = list(_scanner("\ufeffjunk\n\nh\n1\n", skip_lines=1))
    assert [(r.number, r.line, r.fields) for r in records] == [(1, 3, ["h"]), (2, 4, ["1"])]
    assert list(_scanner("\ufeffh\n1\n"))[0].fields == ["h"]


def test_unterminated_quote_is_flagged() -> None:
    records = list(_scanner('h\n"open\nmore\n'))
    assert records[-1].unterminated and records[-1].line == 2


def test_field_limit_stops_a_runaway_quote() -> None:
    text = 'a,b\n1,"' + "x\n" * 1000
    problems = list(
        record_problems(_scanner(text, field_limit=100), RecordChecker(["a", "b"], "utf-8"), header=True)
    )
    assert len(problems) == 1
    assert problems[0].line == 2 and problems[0].row == 1
    assert "quote" in problems[0].message


def test_all_problems_are_yielded_with_raw_text() -> None:
    text = "a,b\n1,2\n3\n4,5\n6,7,8\n"
    problems = list(record_problems(_scanner(text), RecordChecker(["a", "b"], "utf-8"), header=True))
    assert [(p.line, p.row, p.text) for p in problems] == [(3, 2, "3\n"), (5, 4, "6,7,8\n")]


def test_decode_marks_point_at_the_column() -> None:
    raw = b"a,b\n1,ok\n2,caf\xe9\n"
    text = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors=DECODE_ERRORS, newline="")
    scanner = RecordScanner(text, DIALECT)
    problems = list(record_problems(scanner, RecordChecker(["a", "b"], "utf-8"), header=True))
    assert [(p.line, p.row, p.column) for p in problems] == [(3, 2, "b")]
    assert b"\xff".decode("utf-8", DECODE_ERRORS) == MARK


def test_decode_columns_limit_where_marks_count() -> None:
    record = next(iter(_scanner(f"x{MARK},ok\n")))
    assert RecordChecker(["a", "b"], "utf-8", decode_columns={1}).problem(record, 1) is None
    assert RecordChecker(["a", "b"], "utf-8", decode_columns={0}).problem(record, 1) is not None


def test_newlines_not_allowed_and_long_records() -> None:
    record = find_record(_scanner('h\n"a\nb"\n'), 2)
    assert record is not None
    problem = RecordChecker(["h"], "utf-8", newlines_in_values=False).problem(record, 1)
    assert problem is not None and "newlines_in_values" in problem.message
    problem = RecordChecker(["h"], "utf-8", max_record_bytes=3).problem(record, 1)
    assert problem is not None and "block_size" in problem.message
    assert find_record(_scanner("h\n"), 5) is None


def test_line_breaks() -> None:
    assert line_breaks("a\r\nb\rc\nd") == 3
    assert line_breaks("") == 0


@pytest.mark.parametrize(
    ("dtype", "values", "bad"),
    [
        (pa.int64(), [b"1", None, b"x", b"3", b"", b"4"], [2, 4]),
        (pa.decimal128(5, 2), [b"1.5", b"1.234", b"999.99", b"1000.00"], [1, 3]),
        (pa.bool_(), [b"true", b"0", b"yes"], [2]),
        (pa.string(), [b"ok", b"caf\xe9", b'with "quotes", commas\nand newlines'], [1]),
        (pa.timestamp("us", "UTC"), [b"2024-01-01T00:00:00Z", b"2024-01-01"], [1]),
        (pa.date32(), [b"2024-02-29", b"2023-02-29"], [1]),
    ],
)
def test_conversion_failures_match_the_csv_reader(
    dtype: pa.DataType, values: list[bytes | None], bad: list[int]
) -> None:
    found = list(conversion_failures(pa.array(values, pa.binary()), csv_converter(dtype)))
    assert [index for index, _, _ in found] == bad
    assert [value for _, value, _ in found] == [values[i] or b"" for i in bad]


def test_conversion_with_custom_booleans() -> None:
    convert = csv_converter(pa.bool_(), true_values=["yes"], false_values=["no"])
    found = list(conversion_failures(pa.array([b"yes", b"no", b"true"], pa.binary()), convert))
    assert [index for index, _, _ in found] == [2]


def test_conversion_failures_bisect_large_chunks() -> None:
    values = [str(i).encode() for i in range(10_000)]
    values[7_777] = b"oops"
    calls = 0
    convert = csv_converter(pa.int32())

    def counting(chunk: object) -> str | None:
        nonlocal calls
        calls += 1
        return convert(chunk)  # type: ignore[arg-type]

    found = list(conversion_failures(pa.array(values, pa.binary()), counting))
    assert [index for index, _, _ in found] == [7_777]
    assert calls < 40


def test_registered_through_the_entry_point() -> None:
    registry = load_registry()
    assert registry.source("csv") is CsvSource
    assert registry.destination("csv") is CsvDestination
