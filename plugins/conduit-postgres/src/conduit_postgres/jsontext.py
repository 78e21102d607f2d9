"""Nested Arrow values (lists, structs, maps) as JSON text, built with Arrow kernels column by column.

Used to load nested columns into ``jsonb``: the values become JSON text, which pgpq encodes as
``jsonb``. No value is visited in Python: every leaf type has a vectorised spelling, lists are joined
with ``binary_join`` over their offsets, struct fields are concatenated element-wise.

Spellings follow PostgreSQL's own ``to_jsonb``: NaN and infinities are the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"``; bytes are ``"\\\\x..."`` hex strings; dates, times and timestamps
are ISO strings; durations are their integer count of the type's unit; map keys become object keys.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conduit_postgres.hexbytes import hex_encode

_ESCAPES = {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}
_CONTROL = "[\\x00-\\x1f]"


def json_text(array: pa.Array) -> pa.Array:
    """Each value as JSON text; a null value stays null (SQL NULL, not JSON ``null``)."""
    return pc.if_else(pc.is_valid(array), _json(array), pa.scalar(None, pa.string()))


def _json(array: pa.Array) -> pa.Array:
    """Each value as JSON text, with null as ``null`` (inside nested values)."""
    dtype = array.type
    if isinstance(dtype, pa.ExtensionType):
        return _json(array.storage)
    if pa.types.is_dictionary(dtype):
        return _json(array.dictionary_decode())
    if pa.types.is_null(dtype):
        return pc.fill_null(pa.nulls(len(array), pa.string()), "null")
    text = _leaf(array) if not pa.types.is_nested(dtype) else _nested(array)
    return pc.fill_null(pc.cast(text, pa.string()), "null")


def _leaf(array: pa.Array) -> pa.Array:
    dtype = array.type
    if pa.types.is_boolean(dtype) or pa.types.is_integer(dtype) or pa.types.is_decimal(dtype):
        return pc.cast(array, pa.string())
    if pa.types.is_floating(dtype):
        return _float(array)
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return quote(pc.cast(array, pa.string()))
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype) or pa.types.is_fixed_size_binary(dtype):
        hexed = hex_encode(pc.cast(array, pa.binary()))
        return pc.binary_join_element_wise('"\\\\x', hexed, '"', "")
    if pa.types.is_duration(dtype):
        return pc.cast(pc.cast(array, pa.int64()), pa.string())
    if pa.types.is_temporal(dtype):
        return quote(pc.cast(array, pa.string()))
    try:
        return quote(pc.cast(array, pa.string()))
    except pa.ArrowNotImplementedError:
        raise ValueError(f"cannot write {dtype} values as JSON") from None


def _float(array: pa.Array) -> pa.Array:
    if pa.types.is_float16(array.type):
        array = pc.cast(array, pa.float32())
    text = pc.cast(array, pa.string())
    nan = pc.fill_null(pc.is_nan(array), False)
    if not pc.any(pc.or_(nan, pc.fill_null(pc.is_inf(array), False))).as_py():
        return text
    negative = pc.fill_null(pc.less(array, 0), False)
    special = pc.if_else(negative, '"-Infinity"', '"Infinity"')
    text = pc.if_else(pc.fill_null(pc.is_inf(array), False), special, text)
    return pc.if_else(nan, '"NaN"', text)


def quote(strings: pa.Array) -> pa.Array:
    """Strings as JSON string literals (quotes, backslashes and control characters escaped)."""
    escaped = pc.replace_substring(strings, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    if pc.any(pc.match_substring_regex(escaped, _CONTROL)).as_py():
        for code in range(32):
            escaped = pc.replace_substring(escaped, chr(code), _ESCAPES.get(code, f"\\u{code:04x}"))
    return pc.binary_join_element_wise('"', escaped, '"', "")


def _nested(array: pa.Array) -> pa.Array:
    dtype = array.type
    if pa.types.is_struct(dtype):
        text = _struct(array)
    elif pa.types.is_map(dtype):
        text = _map(array)
    elif pa.types.is_list_view(dtype) or pa.types.is_large_list_view(dtype):
        return _nested(pc.cast(array, pa.large_list(dtype.value_type)))
    elif pa.types.is_fixed_size_list(dtype):
        size = dtype.list_size
        starts = (np.arange(len(array) + 1, dtype=np.int64) + array.offset) * size
        text = _joined(pa.array(starts.astype(np.int32)), _json(array.values), "[", "]")
    elif pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        text = _joined(array.offsets, _json(array.values), "[", "]")
    else:
        raise ValueError(f"cannot write {dtype} values as JSON")
    return pc.if_else(pc.is_valid(array), text, "null")


def _joined(offsets: pa.Array, items: pa.Array, opening: str, closing: str) -> pa.Array:
    """Per list (given by ``offsets`` into ``items``): its items joined by commas, in brackets."""
    if pa.types.is_int64(offsets.type):
        lists = pa.LargeListArray.from_arrays(offsets, items)
    else:
        lists = pa.ListArray.from_arrays(offsets, items)
    return pc.binary_join_element_wise(opening, pc.binary_join(lists, ","), closing, "")


def _struct(array: pa.Array) -> pa.Array:
    members = [
        pc.binary_join_element_wise(json.dumps(field.name) + ":", _json(array.field(index)), "")
        for index, field in enumerate(array.type)
    ]
    if not members:
        return pc.fill_null(pa.nulls(len(array), pa.string()), "{}")
    body = pc.binary_join_element_wise(*members, ",")
    return pc.binary_join_element_wise("{", body, "}", "")


def _map(array: pa.Array) -> pa.Array:
    entries = array.values
    keys = entries.field(0)
    key_text = _json(keys) if pa.types.is_string(keys.type) else quote(pc.cast(keys, pa.string()))
    members = pc.binary_join_element_wise(key_text, _json(entries.field(1)), ":")
    return _joined(array.offsets, members, "{", "}")
