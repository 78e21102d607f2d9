"""Text encodings: canonical names, and ``encoding: auto`` detection from the first bytes of a file.

Detection looks at a sample (64 KiB) of the decompressed bytes, in this order:

1. a byte-order mark: UTF-8, UTF-16 LE/BE, UTF-32 LE/BE;
2. the NUL-byte pattern of BOM-less UTF-16 (ASCII text in UTF-16 LE has a NUL at every odd offset);
3. valid UTF-8 (a multibyte character cut at the end of the sample is not an error);
4. otherwise a single-byte Western encoding: cp1252 when the sample holds bytes 0x80-0x9F that cp1252
   defines (curly quotes, the euro sign...), else latin-1, which can decode any byte.
"""

from __future__ import annotations

import codecs

UTF8 = "utf-8"
SAMPLE_SIZE = 64 * 1024

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, UTF8),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Bytes 0x80-0x9F that cp1252 leaves undefined: a file holding one of them is not cp1252.
_CP1252_UNDEFINED = frozenset({0x81, 0x8D, 0x8F, 0x90, 0x9D})
_NOT_C1 = bytes(range(0x80)) + bytes(range(0xA0, 0x100))  # deleting these keeps 0x80-0x9F
_NUL_SHARE = 0.3  # at least this share of NULs on one side of the byte pairs...
_NUL_OTHER = 0.05  # ...and at most this share on the other side


def canonical(name: str) -> str:
    """The codec's canonical Python name (``latin1`` -> ``iso8859-1``, ``UTF8`` -> ``utf-8``)."""
    return codecs.lookup(name).name


def is_utf8(name: str) -> bool:
    """UTF-8 with or without a BOM: pyarrow reads it natively (and skips the BOM)."""
    return canonical(name) in (UTF8, "utf-8-sig")


def _decodes(sample: bytes, encoding: str, at_eof: bool) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=at_eof)
    except UnicodeDecodeError:
        return False
    return True


def _utf16_without_bom(sample: bytes, at_eof: bool) -> str | None:
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    even, odd = sample[0::2], sample[1::2]
    nul_even = even.count(0) / len(even)
    nul_odd = odd.count(0) / len(odd)
    if nul_odd >= _NUL_SHARE and nul_even <= _NUL_OTHER:
        candidate = "utf-16-le"
    elif nul_even >= _NUL_SHARE and nul_odd <= _NUL_OTHER:
        candidate = "utf-16-be"
    else:
        return None
    return candidate if _decodes(sample, candidate, at_eof) else None


def detect(sample: bytes, at_eof: bool) -> str:
    """The encoding of a file starting with ``sample``; ``at_eof``: the sample is the whole file."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    utf16 = _utf16_without_bom(sample, at_eof)
    if utf16 is not None:
        return utf16
    if _decodes(sample, UTF8, at_eof):
        return UTF8
    high = set(sample.translate(None, delete=_NOT_C1))
    if high and not high & _CP1252_UNDEFINED:
        return "cp1252"
    return "latin-1"


def resolve(option: str, sample: bytes, at_eof: bool) -> str:
    """The ``encoding`` option as a canonical codec name, detecting it when it is ``auto``."""
    return canonical(detect(sample, at_eof) if option == "auto" else option)
