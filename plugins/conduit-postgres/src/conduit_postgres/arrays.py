"""PostgreSQL arrays read as Arrow lists, through JSON and pyarrow's JSON reader.

The source selects an array column as ``to_json(col::text[])::text``: a JSON array of each element's
exact text form (or ``null``). A column of those becomes one newline-delimited JSON document
(``{"v": [...]}`` per row, built by concatenating the column's buffers), which pyarrow parses into
``list<string>`` in C++; a cast then gives the elements their type (``"1.50"`` to ``decimal128``,
``"Infinity"`` to ``float64``, ``"2024-01-01 00:00:00+00"`` to ``timestamp[us, UTC]``).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from conduit_postgres.hexbytes import value_buffers

_TEXT_LISTS = pa.schema([pa.field("v", pa.list_(pa.string()))])


def json_lists(strings: pa.Array, list_type: pa.DataType) -> pa.Array:
    """JSON arrays of strings (one per value, null for NULL) as a list array of ``list_type``.

    Raises ``ValueError`` for a value that is not a flat JSON array (a multi-dimensional array).
    """
    if len(strings) == 0:
        return pa.array([], type=list_type)
    lines = pc.binary_join_element_wise('{"v":', pc.fill_null(strings, "null"), "}\n", "")
    offsets, data = value_buffers(lines)
    document = pa.py_buffer(data[offsets[0] : offsets[-1]])
    try:
        table = pajson.read_json(
            pa.BufferReader(document),
            read_options=pajson.ReadOptions(use_threads=False, block_size=max(1 << 20, document.size + 1)),
            parse_options=pajson.ParseOptions(explicit_schema=_TEXT_LISTS, unexpected_field_behavior="error"),
        )
    except pa.ArrowInvalid as exc:
        raise ValueError(f"not a one-dimensional array ({exc})") from None
    values = table.column("v").combine_chunks()
    if len(values) != len(strings):
        raise ValueError(f"{len(values)} arrays parsed from {len(strings)} values")
    return pc.cast(values, list_type)
