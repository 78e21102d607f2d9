"""README command (1): the shipped quickstart runs and leaves the right Parquet file."""

from __future__ import annotations

import decimal
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import REPO, run_cli


def test_quickstart_csv_to_parquet(tmp_path: Path) -> None:
    project = tmp_path / "quickstart"
    shutil.copytree(REPO / "examples" / "quickstart", project, ignore=shutil.ignore_patterns("out"))
    # run from another directory: relative paths resolve against the flow file
    result = run_cli("run", project / "ingest.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "orders" in result.stdout and "success" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("run ") and "20 rows" in result.stdout

    table = pq.read_table(project / "out" / "orders.parquet")
    assert table.num_rows == 20
    types = {field.name: field.type for field in table.schema}
    assert types["order_id"] == pa.int64()
    assert types["amount"] == pa.decimal128(12, 2)
    assert types["country"] == pa.string()
    assert types["is_gift"] == pa.bool_()
    assert pa.types.is_timestamp(types["ordered_at"]) and types["ordered_at"].tz == "UTC"
    assert types["ship_date"] == pa.date32()
    source_lines = (project / "data" / "orders.csv").read_text().splitlines()
    first = source_lines[1].split(",")
    assert table.column("order_id")[0].as_py() == int(first[0])
    assert table.column("amount")[0].as_py() == decimal.Decimal(first[3])
    assert table.column("note")[0].as_py() == "Leave at door, ring twice"
    assert table.column("country").null_count == 0  # "NA" is Namibia, not NULL
    assert not [p for p in (project / "out").iterdir() if p.name.startswith(".")]


def test_validate_the_quickstart() -> None:
    result = run_cli("validate", REPO / "examples" / "quickstart" / "ingest.yml")
    assert result.returncode == 0, result.stderr
    assert "ok (flow quickstart, env dev, 1 entity: orders)" in result.stdout
