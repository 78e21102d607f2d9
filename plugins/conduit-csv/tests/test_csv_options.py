"""Option validation: clear messages at config time, before anything is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import ValidationError

from conduit_csv.options import CsvDestinationOptions, CsvSourceOptions


def _source(tmp_path: Path, **options: Any) -> CsvSourceOptions:
    return CsvSourceOptions.model_validate({"path": "x.csv", **options}, context={"base_dir": str(tmp_path)})


def test_defaults(tmp_path: Path) -> None:
    options = _source(tmp_path)
    assert options.path == str(tmp_path / "x.csv")
    assert options.header is True
    assert options.delimiter == ","
    assert options.quote_char == '"'
    assert options.escape_char is None
    assert options.double_quote is True
    assert options.null_values == [""]
    assert options.encoding == "utf-8"
    assert options.compression == "auto"
    assert options.newlines_in_values is True
    assert options.skip_rows == 0
    assert options.block_size is None


def test_absolute_path_is_kept(tmp_path: Path) -> None:
    assert _source(tmp_path, path="/data/x.csv").path == "/data/x.csv"


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="extra"):
        _source(tmp_path, delimeter=";")


def test_column_names_required_without_header(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="column_names is required when header is false"):
        _source(tmp_path, header=False)


@pytest.mark.parametrize(
    ("names", "message"),
    [([], "at least one"), (["a", ""], "empty name"), (["a", "b", "a"], "'a' more than once")],
)
def test_bad_column_names(tmp_path: Path, names: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _source(tmp_path, column_names=names)


def test_declared_types_are_parsed(tmp_path: Path) -> None:
    options = _source(tmp_path, columns={"a": "decimal(12,2)", "b": "timestamptz", "c": "bigint"})
    assert options.declared_types() == {
        "a": pa.decimal128(12, 2),
        "b": pa.timestamp("us", "UTC"),
        "c": pa.int64(),
    }


def test_bad_declared_type_names_the_column_and_the_known_types(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        _source(tmp_path, columns={"amount": "money"})
    message = str(info.value)
    assert "column 'amount'" in message and "unknown column type 'money'" in message
    assert "int64" in message and "decimal(p,s)" in message


def test_decimal256_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="decimal256"):
        _source(tmp_path, columns={"a": "decimal(50,2)"})


@pytest.mark.parametrize("value", [",,", "", "\n", "é"])
def test_delimiter_must_be_one_ascii_character(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValidationError, match="delimiter"):
        _source(tmp_path, delimiter=value)


def test_tab_delimiter_spellings(tmp_path: Path) -> None:
    assert _source(tmp_path, delimiter="\t").delimiter == "\t"
    assert _source(tmp_path, delimiter="\\t").delimiter == "\t"


def test_quote_and_escape_characters(tmp_path: Path) -> None:
    assert _source(tmp_path, quote_char=None).quote_char is None
    assert _source(tmp_path, quote_char="'").quote_char == "'"
    assert _source(tmp_path, escape_char="\\").escape_char == "\\"
    with pytest.raises(ValidationError, match="quote_char"):
        _source(tmp_path, quote_char="''")
    with pytest.raises(ValidationError, match="delimiter and quote_char cannot both be"):
        _source(tmp_path, delimiter='"')


@pytest.mark.parametrize("value", [-1])
def test_skip_rows_not_negative(tmp_path: Path, value: int) -> None:
    with pytest.raises(ValidationError, match="skip_rows"):
        _source(tmp_path, skip_rows=value)


def test_block_size_positive(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="block_size"):
        _source(tmp_path, block_size=0)


def test_compression_values(tmp_path: Path) -> None:
    for value in ("auto", "none", "gzip", "bz2", "zstd"):
        assert _source(tmp_path, compression=value).compression == value
    with pytest.raises(ValidationError, match="compression"):
        _source(tmp_path, compression="zip")


def test_encodings(tmp_path: Path) -> None:
    for value in ("auto", "utf-8", "UTF8", "latin-1", "cp1252", "utf-16", "shift_jis"):
        assert _source(tmp_path, encoding=value).encoding == value
    with pytest.raises(ValidationError, match="unknown text encoding"):
        _source(tmp_path, encoding="utf-9")


def test_options_are_immutable(tmp_path: Path) -> None:
    options = _source(tmp_path)
    with pytest.raises(ValidationError):
        options.delimiter = ";"


def test_destination_options(tmp_path: Path) -> None:
    options = CsvDestinationOptions.model_validate({"path": "out/x.csv"}, context={"base_dir": str(tmp_path)})
    assert options.path == str(tmp_path / "out" / "x.csv")
    assert (options.header, options.delimiter, options.quoting) == (True, ",", "needed")
    with pytest.raises(ValidationError, match="quoting"):
        CsvDestinationOptions.model_validate({"path": "x.csv", "quoting": "always"})
    with pytest.raises(ValidationError, match="delimiter"):
        CsvDestinationOptions.model_validate({"path": "x.csv", "delimiter": '"'})
    with pytest.raises(ValidationError, match="extra"):
        CsvDestinationOptions.model_validate({"path": "x.csv", "compression": "gzip"})
