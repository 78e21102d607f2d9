"""Arrow decimals as PostgreSQL's binary ``numeric`` values, for a whole array at once.

pgpq encodes decimal128 itself but not decimal256 (precision 39..76). Binary COPY does not tag a
field with its type: the server hands each field's bytes to the column type's receive function. So a
binary column holding exactly ``numeric``'s wire format (int16 ndigits, int16 weight, uint16 sign,
uint16 dscale, then ndigits base-10000 digits, all big-endian) loads into a ``numeric`` column.

The digits are computed without per-row Python: the unscaled integer's decimal text is padded to the
same width in every row (whole base-10000 groups), and numpy turns each group of four ASCII digits
into one int16. Leading zero groups are allowed by the server, which normalises the value.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conduit_postgres.hexbytes import from_parts, value_buffers

_POSITIVE = 0x0000
_NEGATIVE = 0x4000


def numeric_binary(array: pa.Array) -> pa.Array:
    """A decimal array (any width, scale >= 0) as binary ``numeric`` wire values; nulls stay null."""
    dtype = array.type
    precision, scale = dtype.precision, dtype.scale
    if scale < 0:
        array = pc.cast(array, pa.decimal256(precision - scale, 0))
        precision, scale = precision - scale, 0
    unscaled = pa.Array.from_buffers(
        _integer_view(array.type), len(array), array.buffers(), offset=array.offset
    )
    text = pc.cast(pc.fill_null(unscaled, 0), pa.string())
    negative = np.asarray(pc.starts_with(text, "-").to_numpy(zero_copy_only=False), dtype=np.bool_)
    digits = pc.utf8_ltrim(text, "-")
    aligned_scale = -(-scale // 4) * 4
    if aligned_scale != scale:
        digits = pc.binary_join_element_wise(digits, "0" * (aligned_scale - scale), "")
    width = -(-(precision + aligned_scale - scale) // 4) * 4
    padded = pc.utf8_lpad(digits, width=width, padding="0")
    if len(array) and pc.max(pc.utf8_length(padded)).as_py() != width:
        raise ValueError(f"a value has more digits than the type's precision {precision}")
    groups = width // 4
    count = len(array)
    offsets, data = value_buffers(padded)
    chars = data[offsets[0] : offsets[0] + count * width].astype(np.int16) - ord("0")
    values = chars.reshape(count, groups, 4) @ np.array([1000, 100, 10, 1], dtype=np.int16)

    header = np.empty((count, 4), dtype=">u2")
    header[:, 0] = groups
    header[:, 1] = np.uint16((groups - aligned_scale // 4 - 1) & 0xFFFF)
    header[:, 2] = np.where(negative, _NEGATIVE, _POSITIVE)
    header[:, 3] = scale
    row_bytes = 8 + 2 * groups
    out = np.empty((count, row_bytes), dtype=np.uint8)
    out[:, :8] = header.view(np.uint8).reshape(count, 8)
    out[:, 8:] = values.astype(">i2").view(np.uint8).reshape(count, 2 * groups)
    lengths = np.full(count, row_bytes, dtype=np.int64)
    return from_parts(pa.binary(), array, lengths, out.reshape(-1))


def _integer_view(dtype: pa.DataType) -> pa.DataType:
    """The same decimal storage read with scale 0: its unscaled integer, printed without exponent."""
    if pa.types.is_decimal256(dtype):
        return pa.decimal256(76, 0)
    if pa.types.is_decimal128(dtype):
        return pa.decimal128(38, 0)
    if pa.types.is_decimal64(dtype):
        return pa.decimal64(18, 0)
    return pa.decimal32(9, 0)
