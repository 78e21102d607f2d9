"""PostgreSQL's text ``COPY`` format, read with pyarrow's CSV reader.

``COPY ... TO STDOUT`` (no ``FORMAT``) writes a row as one line of values separated by tabs, NULL as
``\\N``, no quoting; in a value it writes a backslash as ``\\\\`` and backspace, form feed, newline,
carriage return, tab and vertical tab as ``\\b``, ``\\f``, ``\\n``, ``\\r``, ``\\t``, ``\\v``
(``CopyAttributeOutText``). A raw tab or line break is therefore always a separator. pyarrow's CSV
reader splits such lines with quoting and escaping off (:data:`PARSE_OPTIONS`) and hands back each
value as written, escapes included: the string ``\\N`` arrives as ``\\\\N``, so it never meets NULL,
and the empty string is an empty field.

Numbers, booleans, dates and times (in the session's ISO styles) never contain a backslash and are
converted by the reader as they are. Text columns go through :func:`unescape`, which looks for a
backslash in the column's value buffer with one ``memchr``, returns the column as it is when there
is none (the common case), and else removes every escape in one vectorized pass over the buffer
(numpy, and Arrow's filter). A chain of ``pyarrow.compute.replace_substring`` calls (``\\\\`` to
a NUL sentinel, which PostgreSQL text cannot contain, then each control escape, then the sentinel
back) gives the same result but measured 4 to 20 times slower: every call copies the whole column,
and ``match_substring`` alone costs more than the whole check here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from conduit_postgres.hexbytes import Bytes, from_parts, value_buffers

NULL = "\\N"
"""How the text format writes NULL."""

PARSE_OPTIONS = pacsv.ParseOptions(
    delimiter="\t",
    quote_char=False,
    escape_char=False,
    double_quote=False,
    newlines_in_values=False,
    ignore_empty_lines=False,  # a row of one empty string is an empty line
)

_BACKSLASH = ord("\\")
_UNESCAPED = np.arange(256, dtype=np.uint8)
"""The byte an escape stands for, by the byte after the backslash: itself (``\\\\`` is a backslash,
a backslash before a character that needs none is that character), except the control letters."""
for _letter, _char in zip(b"bfnrtv", b"\b\f\n\r\t\v", strict=True):
    _UNESCAPED[_letter] = _char


def unescape(array: pa.Array) -> pa.Array:
    """Text-format values (a string array, NULLs already parsed) as the text they stand for.

    Every escape is a backslash and one more byte, and a value holds whole escapes, so in a run of
    consecutive backslashes the first, third, fifth... start an escape and the others are escaped:
    ``\\\\n`` (an escaped backslash, then ``n``) is a backslash and ``n``, ``\\\\\\n`` a backslash
    and a newline. Those starting backslashes are dropped and the byte after each becomes what it
    stands for. Backslashes and the escape letters are ASCII, so UTF-8 stays valid.

    Raises ``ValueError`` for a value ending in a lone backslash (never written by PostgreSQL).
    """
    if len(array) == 0:
        return array
    offsets, data = value_buffers(array)
    base = int(offsets[0])
    body = data[base : int(offsets[-1])]
    if body.tobytes().find(b"\\") < 0:  # a copy and memchr: faster than any scan in numpy
        return array
    escapes = _escape_starts(np.flatnonzero(body == _BACKSLASH))
    bounds = offsets - base  # value i is bounds[i]:bounds[i + 1] in body
    rows = np.searchsorted(bounds, escapes, side="right") - 1  # the value each escape is in
    lone = escapes + 1 == bounds[rows + 1]  # the byte it escapes would be past the value's end
    if lone.any():
        row = int(rows[np.argmax(lone)])
        raise ValueError(f"a value ends in a lone backslash (value {row + 1} of the block)")
    unescaped = _without(body, escapes)
    unescaped[escapes - np.arange(len(escapes))] = _UNESCAPED[body[escapes + 1]]
    lengths = np.diff(offsets) - np.bincount(rows, minlength=len(array))
    return from_parts(array.type, array, lengths, unescaped, large=pa.types.is_large_string(array.type))


def _escape_starts(slashes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The backslashes (sorted positions) that start an escape: in each run of consecutive ones,
    the first, third, fifth..."""
    follows = np.diff(slashes) == 1
    if not follows.any():
        return slashes
    index = np.arange(len(slashes))
    run_first = np.maximum.accumulate(np.where(np.concatenate(([True], ~follows)), index, 0))
    starts: npt.NDArray[np.int64] = slashes[((index - run_first) & 1) == 0]
    return starts


def _without(data: Bytes, positions: npt.NDArray[np.int64]) -> Bytes:
    """A writable copy of ``data`` without the bytes at ``positions``, made by Arrow's filter: it
    copies the runs between them several times faster than numpy's boolean indexing, into memory
    from Arrow's pool (a fresh numpy array of a block's size pays for faulting its pages in)."""
    keep = np.ones(len(data), dtype=np.bool_)
    keep[positions] = False
    mask = pa.Array.from_buffers(
        pa.bool_(), len(data), [None, pa.py_buffer(np.packbits(keep, bitorder="little"))]
    )
    values = pa.Array.from_buffers(pa.uint8(), len(data), [None, pa.py_buffer(data)])
    kept = pc.filter(values, mask)
    out = np.frombuffer(kept.buffers()[1], dtype=np.uint8, count=len(kept), offset=kept.offset)
    return out if out.flags.writeable else out.copy()  # the filter's own new buffer: writable
