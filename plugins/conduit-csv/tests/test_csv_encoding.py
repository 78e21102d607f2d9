"""Encodings: detection with ``encoding: auto`` and reading declared encodings."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from csv_helpers import file_writer, make_source, read_table

from conduit_csv.encoding import SAMPLE_SIZE, canonical, detect, is_utf8, resolve

TEXT = 'id,name,note\n1,Zoë,"Grüße, ""Freunde"""\n2,Ñandú,naïve café\n'
NAMES = ["Zoë", "Ñandú"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8"),
        (TEXT.encode("utf-16"), "utf-16"),
        (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "utf-16"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
        (TEXT.encode("utf-16-le"), "utf-16-le"),
        (TEXT.encode("utf-16-be"), "utf-16-be"),
        (codecs.BOM_UTF32_LE + TEXT.encode("utf-32-le"), "utf-32"),
        (TEXT.encode("latin-1"), "latin-1"),
        ("“quoted” – €5\n".encode("cp1252"), "cp1252"),
        (b"plain ascii only\n", "utf-8"),
        (b"", "utf-8"),
    ],
)
def test_detect(data: bytes, expected: str) -> None:
    assert detect(data, at_eof=True) == expected


def test_detect_latin1_when_a_byte_is_undefined_in_cp1252() -> None:
    # 0x81 is not a cp1252 character; 0x80 is (the euro sign): together, only latin-1 decodes them.
    assert detect(b"a\x80b\x81\n", at_eof=True) == "latin-1"
    assert detect(b"a\x80b\n", at_eof=True) == "cp1252"


def test_detect_utf8_with_a_character_cut_at_the_sample_end() -> None:
    sample = ("x" * 10 + "é").encode("utf-8")[:-1]
    assert detect(sample, at_eof=False) == "utf-8"
    assert detect(sample, at_eof=True) == "latin-1"  # cut at the real end: not UTF-8 after all


def test_detect_utf16_without_bom_with_a_cut_surrogate_pair() -> None:
    sample = ("ab,cd\n" * 20 + "🚀").encode("utf-16-le")[:-2]
    assert detect(sample, at_eof=False) == "utf-16-le"


def test_canonical_names() -> None:
    assert canonical("UTF8") == "utf-8"
    assert canonical("latin1") == canonical("ISO-8859-1")
    assert is_utf8("utf_8_sig") and is_utf8("utf-8") and not is_utf8("utf-16")
    assert resolve("auto", TEXT.encode("utf-16-be"), True) == "utf-16-be"
    assert resolve("Latin-1", b"", True) == canonical("latin-1")


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("utf-16"), "utf-16"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
        (TEXT.encode("utf-16-le"), "utf-16-le"),
        (TEXT.encode("utf-16-be"), "utf-16-be"),
        (TEXT.encode("latin-1"), "latin-1"),
        (TEXT.encode("cp1252"), "cp1252"),
        (TEXT.encode("utf-32"), "utf-32"),
    ],
)
def test_read_declared_and_detected_encodings(tmp_path: Path, data: bytes, declared: str) -> None:
    write = file_writer(tmp_path)
    write("e.csv", data)
    for encoding in (declared, "auto"):
        table = read_table(make_source(tmp_path, path="e.csv", encoding=encoding))
        assert table.column_names == ["id", "name", "note"], encoding
        assert table.column("name").to_pylist() == NAMES, encoding
        assert table.column("note").to_pylist() == ['Grüße, "Freunde"', "naïve café"], encoding


def test_cp1252_specific_characters(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("w.csv", "id,text\n1,“smart” quotes – and €\n".encode("cp1252"))
    table = read_table(make_source(tmp_path, path="w.csv", encoding="auto"))
    assert table.column("text").to_pylist() == ["“smart” quotes – and €"]


def test_utf16_le_declared_with_a_bom_strips_it(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    write("b.csv", codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"))
    table = read_table(make_source(tmp_path, path="b.csv", encoding="utf-16-le"))
    assert table.column_names == ["id", "name", "note"]


def test_detection_sample_is_the_start_of_a_large_file(tmp_path: Path) -> None:
    write = file_writer(tmp_path)
    # The first 64 KiB are ASCII; a later é in latin-1 is then not valid UTF-8 and is reported.
    body = "id,text\n" + "".join(f"{i},plain\n" for i in range(SAMPLE_SIZE // 8)) + "999999,caf\xe9\n"
    write("late.csv", body.encode("latin-1"))
    source = make_source(tmp_path, path="late.csv", encoding="auto")
    from conduit.errors import DataError

    with pytest.raises(DataError, match="not valid utf-8") as info:
        read_table(source)
    assert info.value.location.column == "text"
    assert (
        read_table(make_source(tmp_path, path="late.csv", encoding="latin-1")).num_rows
        == SAMPLE_SIZE // 8 + 1
    )


def test_unknown_encoding_is_rejected_at_validation(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown text encoding 'klingon'"):
        make_source(tmp_path, path="x.csv", encoding="klingon")
    with pytest.raises(ValidationError, match="not a text encoding|unknown text encoding"):
        make_source(tmp_path, path="x.csv", encoding="base64")
