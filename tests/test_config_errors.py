"""Malformed configs: one message, every problem with file:line and key path, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

GOOD = """\
version: 1
sources:
  files: {type: csv, options: {path: data.csv}}
entities:
  orders:
    source: files
    destination: {type: parquet, options: {path: out/orders.parquet}}
    batch_size: 1000
"""

CASES = {
    "yaml_syntax": (GOOD.replace("source: files", "source: [files"), ":7:", "YAML syntax error"),
    "unknown_key": (
        GOOD.replace("batch_size: 1000", "batch_sise: 1000"),
        ":8:5: entities.orders.batch_sise",
        "unknown key 'batch_sise' (did you mean 'batch_size'?)",
    ),
    "wrong_type": (
        GOOD.replace("batch_size: 1000", "batch_size: lots"),
        ":8:5: entities.orders.batch_size",
        "valid integer",
    ),
    "missing_variable": (
        GOOD.replace("path: data.csv", 'path: "${NO_SUCH_VAR_XYZ}/data.csv"'),
        ":3:32: sources.files.options.path",
        "environment variable 'NO_SUCH_VAR_XYZ' is not set",
    ),
    "unknown_connection": (
        GOOD.replace("source: files", "source: filez"),
        ":6:5: entities.orders.source",
        "unknown connection 'filez'",
    ),
    "unknown_type": (
        GOOD.replace("type: parquet", "type: parket"),
        ":7:19: entities.orders.destination.type",
        "unknown destination type 'parket'; did you mean 'parquet'?",
    ),
    "duplicate_entity": (
        GOOD.split("entities:")[0]
        + "entities:\n"
        + "  - name: orders\n    source: files\n    destination: {type: jsonl, options: {path: a.jsonl}}\n"
        + "  - name: orders\n    source: files\n    destination: {type: jsonl, options: {path: b.jsonl}}\n",
        ":8:5: entities[1]",
        "duplicate entity 'orders'",
    ),
    "bad_connector_option": (
        GOOD.replace("path: data.csv", "path: data.csv, delimter: ';'"),
        ":3:48: sources.files.options.delimter",
        "unknown key 'delimter' (did you mean 'delimiter'?)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_config(case: str, tmp_path: Path) -> None:
    text, where, what = CASES[case]
    flow = tmp_path / "ingest.yml"
    flow.write_text(text)
    for command in ("validate", "run"):
        result = run_cli(command, flow)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stdout == ""
        assert result.stderr.startswith("error: ")
        assert f"{flow}{where}" in result.stderr, result.stderr
        assert what in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
