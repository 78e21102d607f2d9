"""Config that scales, through the real CLI: layouts, profiles, precedence, variables, init."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import REPO, run_cli

EXAMPLES = REPO / "docs" / "examples"
LAYOUTS = ["one_file", "flow_dir", "entity_files"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns("out"))
    return root


def _explain(*args: str | Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli("config", "explain", *args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _configs(payload: dict[str, Any]) -> dict[str, Any]:
    (flow,) = payload["flows"]
    return {name: entity["config"] for name, entity in flow["entities"].items()}


def test_three_layouts_resolve_identically(project: Path) -> None:
    resolved = {layout: _configs(_explain(project / "flows" / layout)) for layout in LAYOUTS}
    # but for where they write: each example flow writes files of its own (two entities may not both
    # replace one target), flow_dir directly in out/dev, the others in a directory named after them
    for layout in ("one_file", "entity_files"):
        for name, config in resolved[layout].items():
            path = Path(config["destination"]["options"]["path"])
            assert path == project / "out" / "dev" / layout / f"{name}.parquet"
            config["destination"]["options"]["path"] = str(path.parent.parent / path.name)
    assert resolved["one_file"] == resolved["flow_dir"] == resolved["entity_files"]
    orders = resolved["one_file"]["orders"]
    assert orders["source"]["options"]["path"] == str(project / "data" / "orders.csv")
    assert orders["source"]["options"]["columns"] == {"amount": "decimal(10,2)"}
    assert orders["destination"]["options"]["path"] == str(project / "out" / "dev" / "orders.parquet")


def test_a_directory_of_flows_runs_them_all_and_entity_narrows(project: Path) -> None:
    result = run_cli("run", project / "flows")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("success (2 entities, 6 rows") == 3
    table = pq.read_table(project / "out" / "dev" / "orders.parquet")
    assert str(table.schema.field("amount").type) == "decimal128(10, 2)"
    (project / "out" / "dev" / "orders.parquet").unlink()
    narrowed = run_cli("run", project / "flows" / "flow_dir", "--entity", "customers")
    assert narrowed.returncode == 0, narrowed.stderr
    assert "customers" in narrowed.stdout and "orders" not in narrowed.stdout
    assert not (project / "out" / "dev" / "orders.parquet").exists()
    # the project root works too: it finds flows/
    assert run_cli("validate", project).returncode == 0


def test_env_switches_connections_without_touching_flows(project: Path) -> None:
    flow = project / "flows" / "flow_dir"
    dev = _configs(_explain(flow))["orders"]["destination"]["options"]
    prod = _configs(_explain(flow, "--env", "prod"))["orders"]["destination"]["options"]
    by_env_var = _configs(_explain(flow, env={"CONDUIT_ENV": "prod"}))["orders"]["destination"]["options"]
    assert dev["compression"] == "snappy" and dev["path"].endswith("out/dev/orders.parquet")
    assert prod["compression"] == "zstd" and prod["row_group_size"] == 1_000_000
    assert prod["path"].endswith("out/prod/orders.parquet")
    assert by_env_var == prod
    # ${LAKE_ROOT:-out/prod}: a .env file next to the project sets it; the real environment wins
    (project / ".env").write_text("# lake for prod\nLAKE_ROOT=/srv/lake\n")
    from_dotenv = _configs(_explain(flow, "--env", "prod"))["orders"]["destination"]["options"]
    assert from_dotenv["path"] == "/srv/lake/orders.parquet"
    from_env = _configs(_explain(flow, "--env", "prod", env={"LAKE_ROOT": "/mnt/real"}))
    assert from_env["orders"]["destination"]["options"]["path"] == "/mnt/real/orders.parquet"
    missing = run_cli("validate", flow, "--env", "staging")
    assert missing.returncode == 2
    assert "no profile 'staging'" in missing.stderr and "profiles: dev, prod" in missing.stderr


PRECEDENCE_PROFILE = """\
version: 1
connections:
  files: {type: csv, params: {delimiter: "|"}}
"""
PRECEDENCE_FLOW = """\
version: 1
source: files
destination: {type: jsonl, options: {path: "out/${entity.name}.jsonl"}}
defaults:
  source: {options: {delimiter: ";"}}
"""
PRECEDENCE_ENTITY = """\
source:
  options:
    path: data/orders.csv
    delimiter: "\\t"
"""


def _delimiter(flow: Path) -> tuple[str, dict[str, Any]]:
    payload = _explain(flow)
    entity = payload["flows"][0]["entities"]["orders"]
    return entity["config"]["source"]["options"]["delimiter"], entity["provenance"][
        "source.options.delimiter"
    ]


def test_precedence_entity_over_defaults_over_profile_over_connector_default(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "dev.yml").write_text(PRECEDENCE_PROFILE)
    flow = tmp_path / "flows" / "orders"
    (flow / "entities").mkdir(parents=True)
    (flow / "flow.yml").write_text(PRECEDENCE_FLOW)
    (flow / "entities" / "orders.yml").write_text(PRECEDENCE_ENTITY)

    value, origin = _delimiter(flow)
    assert (value, origin["layer"], origin["line"]) == ("\t", "entity", 4)
    assert origin["file"].endswith("entities/orders.yml")

    (flow / "entities" / "orders.yml").write_text(PRECEDENCE_ENTITY.replace('    delimiter: "\\t"\n', ""))
    value, origin = _delimiter(flow)
    assert (value, origin["layer"], origin["line"]) == (";", "defaults", 5)

    (flow / "flow.yml").write_text(
        PRECEDENCE_FLOW.replace('  source: {options: {delimiter: ";"}}\n', "  mode: replace\n")
    )
    value, origin = _delimiter(flow)
    assert (value, origin["layer"]) == ("|", "profile") and origin["file"].endswith("profiles/dev.yml")

    (tmp_path / "profiles" / "dev.yml").write_text(PRECEDENCE_PROFILE.replace('{delimiter: "|"}', "{}"))
    value, origin = _delimiter(flow)
    assert (value, origin["layer"], origin["file"]) == (",", "connector default", None)

    text = run_cli("config", "explain", flow)
    assert text.returncode == 0
    assert "source.options.delimiter" in text.stdout and "connector default" in text.stdout


def test_duplicate_entity_across_layers_names_both_files(project: Path) -> None:
    flow = project / "flows" / "entity_files"
    (flow / "entities.yml").write_text("entities:\n  - orders\n")
    result = run_cli("validate", flow)
    assert result.returncode == 2
    assert (
        "entities.yml:2:5: entities[0]: duplicate entity 'orders'" not in result.stderr
    )  # entities.yml loads first
    assert "duplicate entity 'orders'" in result.stderr
    assert "entities/orders.yml" in result.stderr and "entities.yml:2:5" in result.stderr


def test_init_scaffolds_a_project_that_runs(tmp_path: Path) -> None:
    created = run_cli("init", tmp_path / "new")
    assert created.returncode == 0, created.stderr
    assert "created" in created.stdout
    result = run_cli("run", tmp_path / "new")
    assert result.returncode == 0, result.stderr
    assert pq.read_table(tmp_path / "new" / "out" / "orders.parquet").num_rows == 3
    assert (
        pq.read_table(tmp_path / "new" / "out" / "customers.parquet").column("country").to_pylist()[-1]
        == "NA"
    )
    again = run_cli("init", tmp_path / "new")
    assert again.returncode == 2 and "not overwriting existing files" in again.stderr


def test_profiles_commands(project: Path) -> None:
    listed = run_cli("profiles", "list", project)
    assert listed.returncode == 0 and listed.stdout.split() == ["dev", "(current)", "prod"]
    shown = run_cli("profiles", "show", "lake", project, "--env", "prod")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["params"] == {"compression": "zstd", "row_group_size": 1000000}
    assert run_cli("profiles", "validate", project).returncode == 0
    (project / "profiles" / "broken.yml").write_text(
        "version: 1\nconnections:\n  x: {type: postgress, params: {}}\n"
    )
    bad = run_cli("profiles", "validate", project)
    assert bad.returncode == 2
    assert "broken.yml:3:7: connections.x.type: unknown connection type 'postgress'" in bad.stderr
    missing = run_cli("profiles", "show", "nope", project)
    assert missing.returncode == 2 and "no connection 'nope'" in missing.stderr


def test_profiles_dir_option(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "ops-profiles"
    elsewhere.mkdir()
    (elsewhere / "dev.yml").write_text(
        (project / "profiles" / "dev.yml").read_text().replace("compression: snappy", "compression: gzip")
    )
    flow = project / "flows" / "one_file"
    options = _configs(_explain(flow, "--profiles-dir", elsewhere))["orders"]["destination"]["options"]
    assert options["compression"] == "gzip"
    assert _configs(_explain(flow))["orders"]["destination"]["options"]["compression"] == "snappy"
