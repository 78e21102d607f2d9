"""Broken, clashing, disabled and missing plugins: clear messages, and the rest keeps working."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import make_distribution, run_cli

CSV_CLONE = """
from conduit import hookimpl
from conduit_csv.source import CsvSource

@hookimpl
def conduit_register_sources(register):
    register("csv", CsvSource)
"""

PARQUET_FLOW = """
version: 1
entities:
  copy:
    source: {type: jsonl, options: {path: in.jsonl}}
    destination: {type: parquet, options: {path: out.parquet}}
"""


def _flow(tmp_path: Path) -> Path:
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    (tmp_path / "ingest.yml").write_text(PARQUET_FLOW)
    return tmp_path / "ingest.yml"


def test_two_plugins_with_one_type_name_name_both_distributions(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_distribution(
        site, "conduit-csvplus", "2.0.0", {"csvplus": "csvplus_mod"}, {"csvplus_mod": CSV_CLONE}
    )
    result = run_cli("run", _flow(tmp_path), extra_path=site)
    assert result.returncode == 2
    assert "source type 'csv' is registered twice" in result.stderr
    assert "conduit-csv" in result.stderr and "conduit-csvplus" in result.stderr
    assert "CONDUIT_DISABLE_PLUGINS=csvplus" in result.stderr
    # the way out the message gives works
    result = run_cli("run", _flow(tmp_path), extra_path=site, env={"CONDUIT_DISABLE_PLUGINS": "csvplus"})
    assert result.returncode == 0, result.stderr
    listed = run_cli("plugins", "--json", extra_path=site)
    assert listed.returncode == 0
    assert json.loads(listed.stdout)["conflicts"]


def test_a_plugin_that_fails_to_import_is_named_and_the_others_work(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_distribution(
        site,
        "conduit-broken",
        "0.3.0",
        {"broken": "broken_mod"},
        {"broken_mod": "import no_such_module_xyz\n"},
    )
    result = run_cli("run", _flow(tmp_path), extra_path=site)
    assert result.returncode == 0, result.stderr
    assert "plugin 'broken' (conduit-broken)" in result.stderr
    assert "entry point 'broken' (broken_mod) of conduit-broken 0.3.0 failed to import" in result.stderr
    assert "ModuleNotFoundError: No module named 'no_such_module_xyz'" in result.stderr
    assert "Traceback" not in result.stderr
    listed = json.loads(run_cli("plugins", "--json", extra_path=site).stdout)["plugins"]
    broken = next(p for p in listed if p["name"] == "broken")
    assert broken["status"] == "failed" and broken["distribution"] == "conduit-broken"
    # a flow that uses the broken plugin's type says why it is missing
    flow = tmp_path / "uses_broken.yml"
    flow.write_text(PARQUET_FLOW.replace("type: jsonl", "type: broken"))
    result = run_cli("run", flow, extra_path=site)
    assert result.returncode == 2
    assert "unknown source type 'broken'" in result.stderr
    assert "failed to load" in result.stderr


def test_misspelled_hook_is_rejected_with_a_suggestion(tmp_path: Path) -> None:
    site = tmp_path / "site"
    source = "from conduit import hookimpl\n\n@hookimpl\ndef conduit_register_source(register):\n    pass\n"
    make_distribution(site, "conduit-typo", "0.1.0", {"typo": "typo_mod"}, {"typo_mod": source})
    listed = json.loads(run_cli("plugins", "--json", extra_path=site).stdout)["plugins"]
    typo = next(p for p in listed if p["name"] == "typo")
    assert typo["status"] == "failed"
    assert "unknown hook 'conduit_register_source'" in typo["error"]
    assert "did you mean 'conduit_register_sources'" in typo["error"]


def test_disable_plugins_blocks_csv(tmp_path: Path) -> None:
    listed = json.loads(run_cli("plugins", "--json", env={"CONDUIT_DISABLE_PLUGINS": "csv, jsonl"}).stdout)
    status = {p["name"]: p["status"] for p in listed["plugins"]}
    assert status["csv"] == "disabled" and status["jsonl"] == "disabled" and status["parquet"] == "ok"
    result = run_cli("run", _flow(tmp_path), env={"CONDUIT_DISABLE_PLUGINS": "jsonl"})
    assert result.returncode == 2
    assert (
        "unknown source type 'jsonl'" in result.stderr
        and "disabled by CONDUIT_DISABLE_PLUGINS" in result.stderr
    )


def test_unknown_type_of_ours_says_which_package_to_install(tmp_path: Path) -> None:
    flow = tmp_path / "ingest.yml"
    flow.write_text(PARQUET_FLOW.replace("type: jsonl", "type: snowflake"))
    result = run_cli("run", flow)
    assert result.returncode == 2
    assert "unknown source type 'snowflake'" in result.stderr
    assert "pip install conduit-snowflake" in result.stderr
    assert f"{flow}:5:" in result.stderr


def test_unknown_type_suggests_a_close_name(tmp_path: Path) -> None:
    flow = tmp_path / "ingest.yml"
    flow.write_text(PARQUET_FLOW.replace("type: parquet", "type: parquett"))
    result = run_cli("validate", flow)
    assert result.returncode == 2
    assert (
        "unknown destination type 'parquett'" in result.stderr and "did you mean 'parquet'?" in result.stderr
    )


LAZY_PLUGIN = """
from conduit import hookimpl

@hookimpl
def conduit_register_sources(register):
    register("lazyjson", "lazy_impl:LazySource")
    register("lazybroken", "no_such_module_xyz.deep:Source")
    register("lazywrong", "lazy_impl:NOT_A_SOURCE")
"""

LAZY_IMPL = """
from conduit.builtins.jsonl import JsonlSource

class LazySource(JsonlSource):
    pass

NOT_A_SOURCE = 42
"""


def test_types_registered_by_reference_load_when_used_and_a_broken_one_fails_alone(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_distribution(
        site, "conduit-lazy", "1.0.0", {"lazy": "lazy_mod"}, {"lazy_mod": LAZY_PLUGIN, "lazy_impl": LAZY_IMPL}
    )
    listed = run_cli("plugins", "--json", extra_path=site)
    assert listed.returncode == 0, listed.stderr
    lazy = next(p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "lazy")
    assert lazy["status"] == "ok" and lazy["sources"] == ["lazyjson", "lazybroken", "lazywrong"]

    flow = _flow(tmp_path)
    flow.write_text(PARQUET_FLOW.replace("type: jsonl", "type: lazyjson"))
    result = run_cli("run", flow, extra_path=site)
    assert result.returncode == 0, result.stderr  # the referenced class loads on first use

    flow.write_text(PARQUET_FLOW.replace("type: jsonl", "type: lazybroken"))
    result = run_cli("run", flow, extra_path=site)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "plugin 'lazy' (conduit-lazy): source type 'lazybroken' cannot be loaded" in result.stderr
    assert "no_such_module_xyz" in result.stderr

    flow.write_text(PARQUET_FLOW.replace("type: jsonl", "type: lazywrong"))
    result = run_cli("run", flow, extra_path=site)
    assert result.returncode == 2
    assert "not a subclass of conduit.Source" in result.stderr
