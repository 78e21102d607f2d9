"""Hexadecimal text <-> bytes for whole Arrow arrays at once (numpy over the value buffers).

PostgreSQL writes ``bytea`` as ``\\x0102ff`` in text output and ``uuid`` as 32 hex digits with
dashes; these convert such columns without touching rows one by one in Python.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _value, _char in enumerate(b"0123456789abcdef"):
    _NIBBLE[_char] = _value
for _value, _char in enumerate(b"abcdef", start=10):
    _NIBBLE[_char - 32] = _value  # upper case

Bytes = npt.NDArray[np.uint8]
Offsets = npt.NDArray[np.int64]


class HexError(ValueError):
    """A value is not valid hexadecimal text; ``row`` is its index in the array."""

    def __init__(self, message: str, row: int) -> None:
        super().__init__(message)
        self.row = row


def value_buffers(array: pa.Array) -> tuple[Offsets, Bytes]:
    """The offsets (``len + 1``, absolute into the data buffer) and data bytes of a string or
    binary array, 32- or 64-bit offsets alike."""
    large = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    width = np.int64 if large else np.int32
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=width)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.empty(0, np.uint8)
    return offsets.astype(np.int64), data


def validity_buffer(array: pa.Array) -> pa.Buffer | None:
    """A fresh validity bitmap (offset 0) for ``array``, or ``None`` when it has no nulls."""
    if array.null_count == 0:
        return None
    mask = pc.is_valid(array)
    return mask.buffers()[1] if mask.offset == 0 else pa.concat_arrays([mask]).buffers()[1]


def _valid(array: pa.Array) -> npt.NDArray[np.bool_]:
    if array.null_count == 0:
        return np.ones(len(array), dtype=np.bool_)
    return np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False), dtype=np.bool_)


def from_parts(
    dtype: pa.DataType, array: pa.Array, lengths: Offsets, data: Bytes, large: bool = False
) -> pa.Array:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if not large and offsets[-1] > np.iinfo(np.int32).max:
        large = True
        dtype = pa.large_binary() if pa.types.is_binary(dtype) else pa.large_string()
    packed = offsets if large else offsets.astype(np.int32)
    return pa.Array.from_buffers(
        dtype,
        len(array),
        [validity_buffer(array), pa.py_buffer(packed), pa.py_buffer(data)],
        null_count=array.null_count,
    )


def hex_encode(array: pa.Array) -> pa.Array:
    """Binary values as lower-case hex text (no prefix); nulls stay null."""
    offsets, data = value_buffers(array)
    body = data[offsets[0] : offsets[-1]]
    out = np.empty(len(body) * 2, dtype=np.uint8)
    out[0::2] = _DIGITS[body >> 4]
    out[1::2] = _DIGITS[body & 15]
    return from_parts(pa.string(), array, np.diff(offsets) * 2, out)


def hex_decode(array: pa.Array, prefix: bytes = b"", *, shown_prefix: str | None = None) -> pa.Array:
    """Hex text (each value starting with ``prefix``) as binary; nulls stay null.

    Raises :class:`HexError` naming the first value that is not ``prefix`` + an even number of hex
    digits (the message shows ``shown_prefix``, default ``prefix`` as text).
    """
    offsets, data = value_buffers(array)
    valid = _valid(array)
    lengths = np.diff(offsets)
    payload = lengths - len(prefix)
    bad = valid & ((payload < 0) | (payload % 2 != 0))
    starts = offsets[:-1]
    for position, char in enumerate(prefix):
        checkable = valid & ~bad
        index = np.flatnonzero(checkable)
        bad[index[data[starts[index] + position] != char]] = True
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = prefix.decode() if shown_prefix is None else shown_prefix
        raise HexError(f"expected {shown}<hex digits>", row)
    base, total = int(offsets[0]), int(offsets[-1] - offsets[0])
    begin = np.where(valid, starts + len(prefix), starts) - base
    end = np.where(valid, offsets[1:], starts) - base
    marks = np.bincount(begin, minlength=total + 1) - np.bincount(end, minlength=total + 1)
    keep = np.cumsum(marks[:total]) > 0
    nibbles = _NIBBLE[data[base : base + total][keep]]
    if (nibbles == 255).any():
        position = int(np.flatnonzero(keep)[int(np.flatnonzero(nibbles == 255)[0])])
        row = int(np.searchsorted(offsets - base, position, side="right")) - 1
        raise HexError("not a hexadecimal digit", row)
    decoded = (nibbles[0::2] << 4) | nibbles[1::2]
    return from_parts(pa.binary(), array, np.where(valid, payload // 2, 0), decoded.astype(np.uint8))
