"""Type inference from text samples (conduit.inference) and its use by the jsonl source."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conduit.builtins.jsonl import JsonlSource
from conduit.connectors import ReadRequest
from conduit.errors import DataError, DataLocation
from conduit.inference import (
    DEFAULT_INFER_ROWS,
    MIN_PRECISION,
    InferenceRules,
    infer_type,
)

INT64_MAX = str(2**63 - 1)  # 19 digits
INT64_MIN = str(-(2**63))


def inferred(values: list[str | None], rules: InferenceRules | None = None) -> pa.DataType:
    array = pa.array(values, pa.string())
    return infer_type(array) if rules is None else infer_type(array, rules)


# -- each type ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "-2", "0", "007"], pa.int64()),
        ([" 12 ", "\t3"], pa.int64()),  # spaces and tabs around numbers are ignored, as the CSV reader does
        (["true", "false"], pa.bool_()),
        (["True", "FALSE", "1", "0"], pa.bool_()),
        (["1", "0"], pa.int64()),  # integers come first: a 0/1 column is a number
        (["1.5", "2"], pa.decimal128(MIN_PRECISION, 1)),
        (["12.50", "-0.5", ".5", "5.", "+1.25"], pa.decimal128(MIN_PRECISION, 2)),
        (["+5"], pa.decimal128(MIN_PRECISION, 0)),  # the CSV reader's integers have no plus sign
        (["1e5"], pa.float64()),
        (["2.5E-3", "1", "-0.5"], pa.float64()),
        (["nan", "1.5"], pa.float64()),
        (["NaN", "-inf", "Infinity", "3"], pa.float64()),
        (["2024-02-29", "1999-12-31"], pa.date32()),
        (["10:00:00", "23:59"], pa.time32("s")),
        (["10:00:00.123456", "11:00"], pa.time64("us")),
        (
            ["2024-01-01T10:00:00Z", "2024-01-01 10:00:00+02:00", "2024-01-01T10:00+0530"],
            pa.timestamp("us", "UTC"),
        ),
        (["2024-01-01T10:00:00.5-08"], pa.timestamp("us", "UTC")),
        (["2024-01-01T10:00:00", "2024-01-01 10:00", "2024-01-01T10:00:00.123456"], pa.timestamp("us")),
        (["2024-01-01T10:00:00", "2024-01-02"], pa.timestamp("us")),  # a date alone is midnight
        (["abc", "1"], pa.string()),
        (["", "1"], pa.string()),  # the empty string is a value (not NULL) and not a number
    ],
)
def test_each_type(values: list[str], expected: pa.DataType) -> None:
    assert inferred(values) == expected


@pytest.mark.parametrize(
    "values",
    [
        ["nan"],  # nan and inf spellings need a number beside them
        ["inf", "-Infinity"],
        ["1e5", "abc"],
        ["1e"],
        ["1,5"],
        ["0x10"],
        ["1_000"],
        ["2023-02-29"],  # not a real day
        ["2024-1-5"],
        ["24:00:00"],
        ["10:00:00.1234567"],  # beyond microseconds
        ["2024-02-30T10:00:00"],
        ["2024-01-01T10:00:00.1234567"],  # beyond microseconds
        ["2024-01-01T10:00:00.1234567Z"],
        [" true"],  # booleans are matched as written
        [" 2024-01-01T10:00:00Z"],  # and so are timestamps (the CSV reader does not trim them)
        ["yes", "no"],
    ],
)
def test_values_no_type_holds_exactly_are_strings(values: list[str]) -> None:
    assert inferred(values) == pa.string()


def test_every_inferred_type_holds_every_sampled_value() -> None:
    samples = [
        ["1", "-2", INT64_MAX],
        ["12.50", "-0.5", ".5", "99999.999"],
        ["1e5", "nan", "-2.5"],
        ["2024-02-29"],
        ["2024-01-01T10:00:00Z", "2024-06-01 00:00:00.000001+14:00"],
        ["2024-01-01T10:00:00", "2024-06-01"],
        ["9" * 38],
    ]
    for values in samples:
        dtype = inferred(values)
        assert dtype != pa.string(), values
        cast = pc.cast(pc.utf8_trim(pa.array(values), " \t"), dtype, safe=True)
        assert cast.null_count == 0


# -- boundaries --------------------------------------------------------------------------------------


def test_integers_at_and_beyond_int64() -> None:
    assert inferred([INT64_MAX, INT64_MIN]) == pa.int64()
    assert inferred([str(2**63)]) == pa.decimal128(19, 0)  # 19 digits, one past int64
    assert inferred([str(-(2**63) - 1)]) == pa.decimal128(19, 0)
    assert inferred(["1" * 20, "5"]) == pa.decimal128(20, 0)  # 20 digits: never a float
    assert inferred(["9" * 38]) == pa.decimal128(38, 0)
    assert inferred(["9" * 39]) == pa.string()
    assert inferred(["0" * 10 + "9" * 38]) == pa.decimal128(38, 0)  # leading zeros are not digits


def test_decimals_at_and_beyond_38_digits() -> None:
    assert inferred(["1" * 36 + ".25"]) == pa.decimal128(38, 2)
    assert inferred(["1" * 37 + ".25"]) == pa.string()
    assert inferred(["0." + "1" * 38]) == pa.decimal128(38, 38)
    assert inferred(["0." + "1" * 39]) == pa.string()
    # digits before the point (from one value) and after it (from another) add up
    assert inferred(["1" * 30 + ".5", "0." + "1" * 8]) == pa.decimal128(38, 8)
    assert inferred(["1" * 30 + ".5", "0." + "1" * 9]) == pa.string()


def test_decimal_precision_is_at_least_18_and_the_scale_is_the_sample_largest() -> None:
    assert inferred(["0.5", "9999.5"]) == pa.decimal128(18, 1)
    assert inferred(["1.50", "2.125"]) == pa.decimal128(18, 3)  # trailing zeros count: 1.50 has 2
    assert inferred(["1" * 17 + ".25"]) == pa.decimal128(19, 2)


def test_decimal256_when_allowed() -> None:
    rules = InferenceRules(max_precision=76)
    assert inferred(["9" * 40], rules) == pa.decimal256(40, 0)
    assert inferred(["9" * 40 + ".5"], rules) == pa.decimal256(41, 1)
    assert inferred(["9" * 77], rules) == pa.string()


def test_mixed_offsets_are_a_string() -> None:
    assert inferred(["2024-01-01T10:00:00Z", "2024-01-01T10:00:00"]) == pa.string()
    assert inferred(["2024-01-01T10:00:00+02:00", "2024-01-02"]) == pa.string()


def test_an_all_null_or_empty_sample_is_a_string() -> None:
    assert inferred([None, None]) == pa.string()
    assert inferred([]) == pa.string()
    assert inferred([None, "3"]) == pa.int64()  # NULLs do not count


@pytest.mark.parametrize(
    ("true_values", "false_values", "values", "expected"),
    [
        (("yes",), ("no",), ["yes", "no", "yes"], pa.bool_()),
        (("yes",), ("no",), ["yes", "true"], pa.string()),
        (("Y",), ("N",), ["y"], pa.string()),  # spellings are case-sensitive
        (("1",), ("0",), ["1", "0"], pa.int64()),
    ],
)
def test_boolean_spellings(
    true_values: tuple[str, ...], false_values: tuple[str, ...], values: list[str], expected: pa.DataType
) -> None:
    rules = InferenceRules(true_values=true_values, false_values=false_values)
    assert inferred(values, rules) == expected


def test_exponent_floats() -> None:
    assert inferred(["1E+5", ".5e1", "5.e1", "-1e-300"]) == pa.float64()
    assert inferred(["1.5", "2", "3e0"]) == pa.float64()  # one exponent makes the column float64
    assert inferred(["1" * 30, "1e5"]) == pa.float64()


def test_rules_restrict_the_candidates() -> None:
    text_only = InferenceRules(numbers=False, booleans=False, trim=False)
    assert inferred(["1", "2"], text_only) == pa.string()
    assert inferred(["true"], text_only) == pa.string()
    assert inferred(["2024-01-01"], text_only) == pa.date32()
    assert inferred([" 2024-01-01"], text_only) == pa.string()
    numbers_only = InferenceRules(booleans=False, temporal=False)
    assert inferred(["1", "0"], numbers_only) == pa.int64()
    assert inferred(["2024-01-01"], numbers_only) == pa.string()


def test_chunked_and_large_string_input() -> None:
    chunked = pa.chunked_array([pa.array(["1", None]), pa.array(["2.5"])])
    assert infer_type(chunked) == pa.decimal128(18, 1)
    assert infer_type(pa.array(["2024-01-01"], pa.large_string())) == pa.date32()


# -- the jsonl source ----------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict[str, Any]] | list[str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def jsonl_source(base: Path, **options: Any) -> JsonlSource:
    validated = JsonlSource.options_model.model_validate(options, context={"base_dir": str(base)})
    return JsonlSource(validated)


def read_jsonl(source: JsonlSource) -> pa.Table:
    schema = source.discover()
    batches = [item.data for item in source.read(ReadRequest("t", schema, 1000))]
    return pa.Table.from_batches(batches, schema=schema)


def jsonl_error(source: JsonlSource) -> tuple[DataError, DataLocation]:
    """The located DataError that discovering and reading everything raises, and its location."""
    with pytest.raises(DataError) as info:
        read_jsonl(source)
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    assert info.value.location is not None
    return info.value, info.value.location


def test_jsonl_infer_rows_option() -> None:
    options = JsonlSource.options_model
    assert options.model_validate({"path": "a.jsonl"}).infer_rows == DEFAULT_INFER_ROWS == 10_000
    assert options.model_validate({"path": "a.jsonl", "infer_rows": 1}).infer_rows == 1
    with pytest.raises(ValueError, match="infer_rows"):
        options.model_validate({"path": "a.jsonl", "infer_rows": 0})


def test_jsonl_types(tmp_path: Path) -> None:
    lines = [
        '{"id": 1, "amount": 12.50, "ratio": 1e-3, "ok": true, "day": "2024-02-29", "t": "10:00",'
        ' "at": "2024-01-01T10:00:00Z", "local": "2024-01-01 10:00", "zip": "01234", "none": null,'
        ' "tags": [1], "big": 123456789012345678901234567890, "huge": ' + "9" * 40 + "}",
        '{"id": 2, "amount": 3.1, "ratio": 0.5, "ok": false, "day": "2024-03-01", "t": "11:30:15",'
        ' "at": "2024-01-01T10:00:00+02:00", "local": "2024-01-02", "zip": "99999", "none": null,'
        ' "tags": [], "big": 1, "huge": 1}',
    ]
    table = read_jsonl(jsonl_source(tmp_path, path=str(write_jsonl(tmp_path / "a.jsonl", lines))))
    assert table.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("amount", pa.decimal128(18, 2)),
            ("ratio", pa.float64()),
            ("ok", pa.bool_()),
            ("day", pa.date32()),
            ("t", pa.time32("s")),
            ("at", pa.timestamp("us", "UTC")),
            ("local", pa.timestamp("us")),
            ("zip", pa.string()),  # a JSON string that looks like a number stays a string
            ("none", pa.string()),
            ("tags", pa.list_(pa.int64())),
            ("big", pa.decimal128(30, 0)),
            ("huge", pa.decimal256(40, 0)),  # a JSON number cannot be read as text: decimal256
        ]
    )
    row = table.to_pylist()[0]
    assert row["amount"] == Decimal("12.50")
    assert row["big"] == 123456789012345678901234567890
    assert row["huge"] == int("9" * 40)
    assert table.column("at").to_pylist()[1] == dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC)
    assert table.column("t").to_pylist() == [dt.time(10, 0), dt.time(11, 30, 15)]


def test_jsonl_numbers_too_wide_for_a_decimal_are_float64(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "w.jsonl", ['{"x": ' + "9" * 80 + "}", '{"x": 1.5}'])
    assert jsonl_source(tmp_path, path=str(path)).discover().field("x").type == pa.float64()


def test_jsonl_mixed_offsets_stay_strings(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"at": "2024-01-01T10:00:00Z"}, {"at": "2024-01-01T10:00:00"}])
    table = read_jsonl(jsonl_source(tmp_path, path=str(path)))
    assert table.column("at").to_pylist() == ["2024-01-01T10:00:00Z", "2024-01-01T10:00:00"]


def test_jsonl_sample_is_the_first_infer_rows_objects(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"n": i} for i in range(1, 6)] + [{"n": 2.5}]
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    assert jsonl_source(tmp_path, path=str(path)).discover().field("n").type == pa.decimal128(18, 1)
    assert jsonl_source(tmp_path, path=str(path), infer_rows=5).discover().field("n").type == pa.int64()


def test_jsonl_sample_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text('\n{"n": 1}\n\n   \n{"n": 2.5}\n')
    assert jsonl_source(tmp_path, path=str(path), infer_rows=2).discover().field("n").type == pa.decimal128(
        18, 1
    )


def test_jsonl_declared_columns_override_inference(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"n": 1.5, "day": "2024-01-01"}])
    source = jsonl_source(tmp_path, path=str(path), columns={"n": "float64", "day": "string"})
    table = read_jsonl(source)
    assert table.schema == pa.schema([("n", pa.float64()), ("day", pa.string())])
    assert table.to_pylist() == [{"n": 1.5, "day": "2024-01-01"}]


def test_jsonl_int_meets_a_decimal_after_the_sample(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "i.jsonl", [{"n": 1}, {"n": 2}, {"n": 3.5}])
    error, where = jsonl_error(jsonl_source(tmp_path, path=str(path), infer_rows=2))
    assert (where.line, where.column) == (3, "n")
    assert "3.5" in str(error) and "int64" in str(error) and "inferred from the first 2 rows" in str(error)


def test_jsonl_decimal_scale_growing_after_the_sample(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", ['{"d": 1.25}', '{"d": 2.50}', '{"d": 3.125}'])
    error, where = jsonl_error(jsonl_source(tmp_path, path=str(path), infer_rows=2))
    assert (where.line, where.column) == (3, "d")
    assert "3.125" in str(error) and "decimal(18,2)" in str(error)


def test_jsonl_date_meets_garbage_after_the_sample(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", [{"d": "2024-01-01"}, {"d": "2024-02-29"}, {"d": "soon"}])
    error, where = jsonl_error(jsonl_source(tmp_path, path=str(path), infer_rows=2))
    assert (where.row, where.column) == (3, "d")
    assert "'soon'" in str(error) and "date" in str(error) and "columns:" in str(error)


def test_jsonl_local_timestamp_column_refuses_an_offset(tmp_path: Path) -> None:
    # Arrow's JSON parser would read 10:00Z into a zone-less column as 10:00, dropping the offset.
    path = write_jsonl(tmp_path / "t.jsonl", [{"at": "2024-01-01T10:00:00"}, {"at": "2024-01-01T10:00:00Z"}])
    _, where = jsonl_error(jsonl_source(tmp_path, path=str(path), infer_rows=1))
    assert (where.row, where.column) == (2, "at")


def test_jsonl_field_first_seen_after_the_sample_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "f.jsonl", [{"a": 1}, {"a": 2, "b": "x"}])
    _, where = jsonl_error(jsonl_source(tmp_path, path=str(path), infer_rows=1))
    assert (where.line, where.column) == (2, "b")
    table = read_jsonl(jsonl_source(tmp_path, path=str(path), infer_rows=1, unexpected_fields="ignore"))
    assert table.to_pylist() == [{"a": 1}, {"a": 2}]


def test_jsonl_sample_comes_from_the_first_file_only(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"n": 1}])
    write_jsonl(tmp_path / "b.jsonl", [{"n": 2.5}])
    source = jsonl_source(tmp_path, path=str(tmp_path / "*.jsonl"))
    assert source.discover().field("n").type == pa.int64()
    _, where = jsonl_error(source)
    assert where.file.endswith("b.jsonl")
