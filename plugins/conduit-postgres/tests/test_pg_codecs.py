"""The vectorised value codecs (no server needed): hex, JSON text, JSON arrays, numeric, text-format
unescaping."""

from __future__ import annotations

import json
import random
import struct
from decimal import Decimal, localcontext

import pyarrow as pa
import pytest

from conduit_postgres.arrays import json_lists
from conduit_postgres.encoding import uuid_bytes
from conduit_postgres.hexbytes import HexError, hex_decode, hex_encode
from conduit_postgres.jsontext import json_text
from conduit_postgres.numeric import numeric_binary
from conduit_postgres.textcopy import unescape


def test_hex_round_trip_keeps_nulls_and_slices() -> None:
    values = [b"", None, bytes(range(256)), b"\x00", None, b"ab"]
    array = pa.array(values, pa.binary())
    encoded = hex_encode(array)
    assert encoded.to_pylist() == [None if v is None else v.hex() for v in values]
    prefixed = pa.array([None if v is None else "\\x" + v.hex().upper() for v in values])
    assert hex_decode(prefixed, b"\\x").to_pylist() == values
    assert hex_decode(prefixed.slice(2), b"\\x").to_pylist() == values[2:]
    assert hex_decode(pa.array(["00ff"], pa.large_string())).to_pylist() == [b"\x00\xff"]


@pytest.mark.parametrize(("text", "row"), [(["\\x00", "\\x0"], 1), (["\\x00", "0x00"], 1), (["\\xzz"], 0)])
def test_hex_errors_name_the_row(text: list[str], row: int) -> None:
    with pytest.raises(HexError) as info:
        hex_decode(pa.array(text), b"\\x")
    assert info.value.row == row


def test_uuid_text_becomes_sixteen_bytes() -> None:
    array = pa.array(["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", None, "{A0EEBC999C0B4EF8BB6D6BB9BD380A11}"])
    assert uuid_bytes(array).to_pylist() == [bytes.fromhex("a0eebc999c0b4ef8bb6d6bb9bd380a11"), None] + [
        bytes.fromhex("a0eebc999c0b4ef8bb6d6bb9bd380a11")
    ]
    with pytest.raises(HexError, match="not a UUID"):
        uuid_bytes(pa.array(["a0eebc99"]))


def test_json_text_matches_json_dumps() -> None:
    nasty = 'q"uote \\ back\nnew\ttab\x01\x1f é ✓ 🚀'
    array = pa.array(
        [{"s": nasty, "n": [1, None], "f": 0.1, "b": True}, None, {"s": None, "n": [], "f": None, "b": None}],
        pa.struct([("s", pa.string()), ("n", pa.list_(pa.int64())), ("f", pa.float64()), ("b", pa.bool_())]),
    )
    text = json_text(array).to_pylist()
    assert text[1] is None
    assert json.loads(text[0]) == {"s": nasty, "n": [1, None], "f": 0.1, "b": True}
    assert json.loads(text[2]) == {"s": None, "n": [], "f": None, "b": None}


def test_json_lists_parse_postgres_array_text() -> None:
    strings = pa.array(['["1", null, "-3"]', None, "[]"])
    assert json_lists(strings, pa.list_(pa.int64())).to_pylist() == [[1, None, -3], None, []]
    decimals = json_lists(pa.array(['["1.50", "-0.01"]']), pa.list_(pa.decimal128(6, 2)))
    assert decimals.to_pylist() == [[Decimal("1.50"), Decimal("-0.01")]]
    with pytest.raises(ValueError, match="one-dimensional"):
        json_lists(pa.array(['[["1"], ["2"]]']), pa.list_(pa.int64()))


def _decode_numeric(data: bytes) -> Decimal:
    """The value of PostgreSQL's binary numeric (as ``numeric_recv`` reads it)."""
    ndigits, weight, sign, dscale = struct.unpack(">hhHH", data[:8])
    digits = struct.unpack(f">{ndigits}h", data[8:])
    with localcontext() as context:
        context.prec = 200
        value = sum((Decimal(d) * Decimal(10000) ** (weight - i) for i, d in enumerate(digits)), Decimal(0))
        value = -value if sign == 0x4000 else value
        return value.quantize(Decimal(1).scaleb(-dscale))


@pytest.mark.parametrize(("precision", "scale"), [(39, 0), (40, 1), (50, 3), (60, 4), (76, 5), (45, 45)])
def test_numeric_binary_encodes_exactly(precision: int, scale: int) -> None:
    generator = random.Random(precision * 100 + scale)
    values: list[Decimal | None] = [None, Decimal(0).scaleb(-scale), Decimal(1).scaleb(-scale)]
    for _ in range(50):
        digits = "".join(generator.choice("0123456789") for _ in range(generator.randint(1, precision)))
        value = Decimal(digits).scaleb(-scale)
        values.append(-value if generator.random() < 0.5 else value)
    array = pa.array(values, pa.decimal256(precision, scale))
    encoded = numeric_binary(array).to_pylist()
    assert encoded[0] is None
    assert [_decode_numeric(e) for e in encoded[1:]] == values[1:]


_COPY_ESCAPES = {"\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _copy_text(value: str) -> str:
    """A value as PostgreSQL's text COPY writes it (``CopyAttributeOutText`` with a tab delimiter)."""
    return "".join(_COPY_ESCAPES.get(char, char) for char in value)


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("", ""),
        ("plain", "plain"),
        ("\\\\", "\\"),  # an escaped backslash
        ("\\\\\\\\", "\\\\"),
        ("\\\\N", "\\N"),  # the string \N, never NULL
        ("\\\\n", "\\n"),  # an escaped backslash, then n
        ("\\\\\\n", "\\\n"),  # an escaped backslash, then an escaped newline
        ("\\n\\\\", "\n\\"),
        ("a\\tb\\nc\\rd\\be\\ff\\vg", "a\tb\nc\rd\be\ff\vg"),
        ("\\x41\\,", "x41,"),  # any other escaped character stands for itself
        ("é\\\\漢\\t🎉", "é\\漢\t🎉"),
        ("\x01\x1f\x7f", "\x01\x1f\x7f"),  # other control characters are written as they are
    ],
)
def test_unescape_reads_what_copy_wrote(written: str, value: str) -> None:
    assert unescape(pa.array([written])).to_pylist() == [value]
    assert unescape(pa.array(["x", written, None, written], pa.large_string())).to_pylist() == [
        "x",
        value,
        None,
        value,
    ]


def test_unescape_leaves_a_column_without_backslashes_as_it_is() -> None:
    array = pa.array(["a", None, "", "b\x01"])
    assert unescape(array) is array
    assert unescape(pa.array([], pa.string())).to_pylist() == []


def test_unescape_matches_copy_escaping_on_random_text() -> None:
    generator = random.Random(7)
    alphabet = [
        "\\",
        "\\\\",
        "n",
        "t",
        "N",
        "x",
        "\n",
        "\t",
        "\r",
        "\b",
        "\f",
        "\v",
        "\x01",
        "é",
        "🎉",
        '"',
        ",",
    ]
    for _ in range(300):
        values: list[str | None] = [
            None
            if generator.random() < 0.1
            else "".join(generator.choices(alphabet, k=generator.randint(0, 8)))
            for _ in range(generator.randint(1, 20))
        ]
        written = pa.array([None if v is None else _copy_text(v) for v in values], pa.string())
        start = generator.randint(0, len(values) - 1)
        length = generator.randint(0, len(values) - start)
        result = unescape(written.slice(start, length))
        result.validate(full=True)
        assert result.to_pylist() == values[start : start + length]


@pytest.mark.parametrize("written", [["ab\\"], ["ok", "ab\\", "cd"], ["\\\\\\"]])
def test_unescape_rejects_a_lone_trailing_backslash(written: list[str]) -> None:
    with pytest.raises(ValueError, match="lone backslash"):
        unescape(pa.array(written))
