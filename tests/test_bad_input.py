"""Bad CSV input through the real CLI: one readable error naming file, line and column; exit 1;
no traceback; no destination file and no temp file left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

FLOW = """\
version: 1
entities:
  orders:
    source:
      type: csv
      options: {path: in/orders.csv COLUMNS}
    destination: {type: parquet, options: {path: out/orders.parquet}}
"""

CASES = {
    # name: (file bytes, declared columns, expected fragments of the error)
    "ragged_row": (
        b"id,name\n1,a\n2,b\n3,c,extra\n4,d\n",
        "",
        ["orders.csv:4", "row 3", "expected 2 fields, found 3"],
    ),
    "unbalanced_quote": (
        b'id,name\n1,a\n2,"b\n3,c\n',
        "",
        ["orders.csv:3", "row 2", "quote"],
    ),
    "invalid_utf8": (
        b"id,name\n1,ok\n2,caf\xe9\n",
        "",
        ["orders.csv:3", "row 2", "column 'name'", "UTF-8"],
    ),
    "non_numeric_in_declared_numeric": (
        b"id,amount\n1,1.50\n2,abc\n",
        ', columns: {amount: "decimal(10,2)"}',
        ["orders.csv:3", "row 2", "column 'amount'", "'abc'"],
    ),
    "duplicate_header": (
        b"id,name,id\n1,a,2\n",
        "",
        ["orders.csv:1", "column 'id'", "duplicate"],
    ),
    "empty_file": (
        b"",
        "",
        ["orders.csv", "empty"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_csv_gives_one_readable_error(case: str, tmp_path: Path) -> None:
    content, columns, fragments = CASES[case]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "orders.csv").write_bytes(content)
    (tmp_path / "ingest.yml").write_text(FLOW.replace(" COLUMNS", columns))
    result = run_cli("run", tmp_path / "ingest.yml")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment.lower() in errors[0].lower(), f"{fragment!r} not in {errors[0]!r}"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), list(
        (tmp_path / "out").iterdir()
    )


def test_missing_file(tmp_path: Path) -> None:
    (tmp_path / "ingest.yml").write_text(FLOW.replace(" COLUMNS", ""))
    result = run_cli("run", tmp_path / "ingest.yml")
    assert result.returncode == 1
    assert f"file not found: {tmp_path / 'in' / 'orders.csv'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "orders.parquet").exists()


def test_a_bad_row_late_in_a_big_file_leaves_the_old_output_untouched(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    good = "id,amount\n" + "".join(f"{i},{i}.5\n" for i in range(50_000))
    (tmp_path / "in" / "orders.csv").write_text(good)
    (tmp_path / "ingest.yml").write_text(FLOW.replace(" COLUMNS", ""))
    assert run_cli("run", tmp_path / "ingest.yml").returncode == 0
    before = (tmp_path / "out" / "orders.parquet").read_bytes()
    (tmp_path / "in" / "orders.csv").write_text(good + "50000,1.5,oops\n")
    result = run_cli("run", tmp_path / "ingest.yml")
    assert result.returncode == 1
    assert "orders.csv:50002" in result.stderr and "row 50001" in result.stderr
    assert (tmp_path / "out" / "orders.parquet").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["orders.parquet"]


def test_header_only_file_loads_zero_rows_with_columns(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "orders.csv").write_text("id,name,amount\n")
    (tmp_path / "ingest.yml").write_text(FLOW.replace(" COLUMNS", ", columns: {id: int64}"))
    result = run_cli("run", tmp_path / "ingest.yml")
    assert result.returncode == 0, result.stderr
    table = pq.read_table(tmp_path / "out" / "orders.parquet")
    assert table.num_rows == 0
    assert table.column_names == ["id", "name", "amount"]
    assert str(table.schema.field("id").type) == "int64"
