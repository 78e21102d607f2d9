"""A real third-party plugin package installed with pip, used, then uninstalled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO, run_cli

FIXTURE = REPO / "tests" / "fixtures" / "conduit-hello"

FLOW = """
version: 1
entities:
  greetings:
    source: {type: hello, options: {rows: 25, greeting: hi}}
    destination: {type: parquet, options: {path: out/greetings.parquet}}
    batch_size: 10
"""


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)


@pytest.fixture
def hello_installed() -> object:
    _pip("install", "--no-deps", str(FIXTURE))
    try:
        yield None
    finally:
        _pip("uninstall", "-y", "conduit-hello")


def _plugin_names() -> dict[str, dict[str, object]]:
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)["plugins"]}


def test_installed_plugin_appears_works_and_disappears(hello_installed: None, tmp_path: Path) -> None:
    plugins = _plugin_names()
    assert plugins["hello"]["distribution"] == "conduit-hello"
    assert plugins["hello"]["version"] == "1.2.3"
    assert plugins["hello"]["sources"] == ["hello"]

    (tmp_path / "ingest.yml").write_text(FLOW)
    result = run_cli("run", tmp_path / "ingest.yml")
    assert result.returncode == 0, result.stderr
    table = pq.read_table(tmp_path / "out" / "greetings.parquet")
    assert table.num_rows == 25
    assert table.column("greeting").to_pylist()[:2] == ["hi 0", "hi 1"]

    _pip("uninstall", "-y", "conduit-hello")
    assert "hello" not in _plugin_names()
    result = run_cli("run", tmp_path / "ingest.yml")
    assert result.returncode == 2
    assert "unknown source type 'hello'" in result.stderr
    assert "ingest.yml:5:" in result.stderr  # the line of the entity's source type
    assert "Traceback" not in result.stderr
    _pip("install", "--no-deps", str(FIXTURE))  # the fixture's teardown uninstalls it again


def test_builtins_csv_and_postgres_are_listed() -> None:
    plugins = _plugin_names()
    assert plugins["postgres"]["distribution"] == "conduit-postgres"
    assert plugins["postgres"]["sources"] == ["postgres"] and plugins["postgres"]["destinations"] == [
        "postgres"
    ]
    assert plugins["parquet"]["sources"] == ["parquet"] and plugins["parquet"]["builtin"] is True
    assert plugins["jsonl"]["destinations"] == ["jsonl"]
    assert plugins["csv"]["distribution"] == "conduit-csv"
    assert plugins["csv"]["sources"] == ["csv"] and plugins["csv"]["destinations"] == ["csv"]
    assert sorted(plugins["checks"]["checks"]) == [
        "enum",
        "expression",
        "length",
        "not_null",
        "range",
        "regex",
        "unique",
    ]
    text = run_cli("plugins")
    assert text.returncode == 0
    assert "conduit-csv" in text.stdout and "source: csv; destination: csv" in text.stdout
    assert "conduit-postgres" in text.stdout and "source: postgres; destination: postgres" in text.stdout


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("conduit 0.1.0")


def _reinstall_csv(editable: bool) -> None:
    target = str(REPO / "plugins" / "conduit-csv")
    _pip("install", "--no-deps", *(["-e", target] if editable else [target]))


def test_uninstalling_conduit_csv_removes_the_csv_type(tmp_path: Path) -> None:
    from importlib import metadata

    direct_url = metadata.distribution("conduit-csv").read_text("direct_url.json") or "{}"
    editable = json.loads(direct_url).get("dir_info", {}).get("editable", False)
    (tmp_path / "in.csv").write_text("a,b\n1,x\n")
    (tmp_path / "ingest.yml").write_text(
        "version: 1\nentities:\n  t:\n    source: {type: csv, options: {path: in.csv}}\n"
        "    destination: {type: parquet, options: {path: out.parquet}}\n"
    )
    assert run_cli("run", tmp_path / "ingest.yml").returncode == 0
    _pip("uninstall", "-y", "conduit-csv")
    try:
        assert "csv" not in _plugin_names()
        result = run_cli("run", tmp_path / "ingest.yml")
        assert result.returncode == 2
        assert (
            "unknown source type 'csv'; it is provided by conduit-csv: pip install conduit-csv"
            in result.stderr
        )
    finally:
        _reinstall_csv(editable)
    assert "csv" in _plugin_names()
