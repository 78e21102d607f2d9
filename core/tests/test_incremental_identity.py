"""Row identities at the watermark (issue 13): a column the batch lacks counts as NULL, so the rows
the window filters and the rows it remembers are hashed alike whatever columns come and go."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from conduit.errors import DataLocation
from conduit.incremental import CursorWindow, row_hashes


def test_a_missing_column_hashes_as_null() -> None:
    wide = pa.record_batch({"id": [1, 2], "note": [None, None], "at": [5, 5]})
    narrow = pa.record_batch({"id": [1, 2], "at": [5, 5]})
    columns = ["id", "note", "at"]
    assert row_hashes(narrow, [0, 1], columns) == row_hashes(wide, [0, 1], columns)
    assert row_hashes(narrow, [0], columns) != row_hashes(narrow, [1], columns)


def test_rows_remembered_over_fewer_columns_are_recognised_in_a_wider_batch() -> None:
    """The state's identities were computed over (id, at); the source now sends a column more."""
    first = CursorWindow("at", pa.int64(), None, Counter(), True, ["id", "at"], "fail", "entity 'e'")
    first.observe(pa.record_batch({"id": [1, 2, 3], "at": [4, 5, 5]}))
    assert first.run_max == 5 and sum(first.run_boundary.values()) == 2

    again = CursorWindow("at", pa.int64(), 5, first.run_boundary, True, ["id", "at"], "fail", "entity 'e'")
    wider = pa.record_batch({"id": [2, 3, 4, 5], "region": ["eu", "us", "us", "eu"], "at": [5, 5, 5, 6]})
    outcome = again.apply(wider, lambda index: DataLocation())
    assert outcome.batch.column("id").to_pylist() == [4, 5] and outcome.dropped_loaded == 2
    again.observe(outcome.batch)
    assert again.run_max == 6
