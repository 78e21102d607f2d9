"""Entities that write one target (issue 13): refused when any of them replaces it, since a replace
removes the other entities' rows while their state still says those rows are loaded; appends (and
merges) into one target stay allowed."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from exactly_once import PG_DSN

CSV_SOURCE = "{type: csv, options: {path: data.csv}}"  # paths are relative to the project root


def _project(tmp_path: Path, f_destination: str, f_mode: str, g_destination: str, g_mode: str) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    (tmp_path / "data.csv").write_text("id,updated_at\n1,2026-01-01T00:00:00\n")
    (flows / "f.yml").write_text(
        "version: 1\n"
        "entities:\n"
        "  a:\n"
        f"    source: {CSV_SOURCE}\n"
        f"    destination: {f_destination}\n"
        f"    mode: {f_mode}\n"
    )
    (flows / "g.yml").write_text(
        "version: 1\n"
        "entities:\n"
        "  other: {source: " + CSV_SOURCE + ", destination: {type: jsonl, options: {path: other.jsonl}}}\n"
        "  b:\n"
        f"    source: {CSV_SOURCE}\n"
        f"    destination: {g_destination}\n"
        f"    mode: {g_mode}\n"
    )
    return flows


def _pg(table: str, dsn: str = PG_DSN) -> str:
    return f"{{type: postgres, options: {{dsn: {dsn!r}, table: {table}}}}}"


def test_a_replace_and_an_append_into_one_table_are_refused(tmp_path: Path) -> None:
    flows = _project(tmp_path, _pg("orders"), "replace", _pg("orders"), "append")
    for command in ("validate", "run"):
        result = run_cli(command, flows, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        f, g = flows / "f.yml", flows / "g.yml"
        assert result.stderr.startswith(f"error: {f}:3:3: entities.a: two entities write "), result.stderr
        assert "/public.orders" in result.stderr or '/"public"."orders"' in result.stderr, result.stderr
        assert f"'a' ({f}:3:3) with mode replace and 'b' ({g}:4:3) with mode append" in result.stderr
        assert "a replace would remove the other's rows" in result.stderr
        assert "password" not in result.stderr


def test_two_replaces_into_one_parquet_file_are_refused(tmp_path: Path) -> None:
    destination = "{type: parquet, options: {path: out/orders.parquet}}"
    flows = _project(tmp_path, destination, "replace", destination, "replace")
    result = run_cli("validate", flows, cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert f"two entities write {tmp_path / 'out' / 'orders.parquet'}" in result.stderr, result.stderr
    assert "'a' (" in result.stderr and "with mode replace and 'b' (" in result.stderr


def test_a_replace_and_an_append_in_one_flow_are_refused(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("id\n1\n")
    flow = tmp_path / "flow.yml"
    flow.write_text(
        "version: 1\n"
        "destination: {type: parquet, options: {path: out/orders, layout: directory}}\n"
        "entities:\n"
        "  a: {source: {type: csv, options: {path: data.csv}}, mode: append}\n"
        "  b: {source: {type: csv, options: {path: data.csv}}, mode: replace}\n"
    )
    result = run_cli("validate", flow, cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert f"error: {flow}:5:3: entities.b: two entities write {tmp_path / 'out' / 'orders'}" in result.stderr
    assert f"'b' ({flow}:5:3) with mode replace and 'a' ({flow}:4:3) with mode append" in result.stderr


def test_appends_into_one_target_stay_allowed(tmp_path: Path) -> None:
    destination = "{type: parquet, options: {path: out/orders, layout: directory}}"
    flows = _project(tmp_path, destination, "append", destination, "append")
    result = run_cli("validate", flows, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = run_cli("run", flows, "--json", cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    runs = json.loads(loaded.stdout)["runs"]
    assert sorted(e["rows_loaded"] for run in runs for e in run["entities"]) == [1, 1, 1]


def test_merge_and_append_into_one_table_stay_allowed(tmp_path: Path) -> None:
    flows = _project(tmp_path, _pg("orders"), "append", _pg("orders"), "merge")
    result = run_cli("validate", flows, cwd=tmp_path)
    # merge needs a primary key: only that may be reported, never the sharing
    assert "two entities write" not in result.stderr, result.stderr


def test_the_same_table_name_in_another_database_is_another_target(tmp_path: Path) -> None:
    other = PG_DSN.rsplit("/", 1)[0] + "/elsewhere"
    flows = _project(tmp_path, _pg("orders"), "replace", _pg("orders", other), "append")
    result = run_cli("validate", flows, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_shared_table_is_found_offline_and_named_without_the_password(tmp_path: Path) -> None:
    unreachable = "postgresql://postgres:s3cret@127.0.0.1:1/test"
    flows = _project(tmp_path, _pg("orders", unreachable), "replace", _pg("orders", unreachable), "append")
    result = run_cli("validate", flows, cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert "two entities write 127.0.0.1:1 (test)/" in result.stderr, result.stderr
    assert "s3cret" not in result.stderr
