"""Run manifests: building, the JSON Schema, storing, listing, loading, masking and formatting."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conduit import secrets
from conduit.config import load_flow
from conduit.config.flow import Flow
from conduit.errors import ConfigError
from conduit.manifest import (
    MANIFEST_VERSION,
    RunList,
    finish_manifest,
    format_run,
    format_runs_table,
    list_runs,
    load_run,
    start_manifest,
    write_manifest,
)
from conduit.plugins import core_version, load_registry
from conduit.run import CheckResult, EntityResult, RunResult, run_flow

SCHEMA_PATH = Path(__file__).parents[2] / "docs" / "manifest.schema.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def validate(schema: dict[str, Any], manifest: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    validator.validate(manifest)


@pytest.fixture
def redactor(monkeypatch: pytest.MonkeyPatch) -> secrets.Redactor:
    """A fresh redactor in place of the global one, so registered test secrets do not leak."""
    fresh = secrets.Redactor()
    monkeypatch.setattr(secrets, "REDACTOR", fresh)
    return fresh


def _flow(path: str, name: str, plugins: dict[str, str] | None = None) -> Flow:
    return Flow(Path(path), {}, config_hash=f"hash-{name}", plugins=plugins or {}, name=name, env="prod")


def _entity(name: str, status: str = "success", **counts: Any) -> EntityResult:
    entity = EntityResult(
        name,
        "success" if status == "success" else "failed",
        source="jsonl",
        destination="parquet",
        mode="append",
        started_at="2026-01-02T10:00:00.000+00:00",
        finished_at="2026-01-02T10:00:01.500+00:00",
        seconds=1.5,
        state_store="destination",
    )
    for key, value in counts.items():
        setattr(entity, key, value)
    if status != "success" and entity.error is None:
        entity.error = f"{name} broke"
    return entity


def _result(flow: str, *entities: EntityResult, run_id: str = "r1") -> RunResult:
    return RunResult(
        run_id, flow, "2026-01-02T10:00:00.000+00:00", "2026-01-02T10:00:02.000+00:00", list(entities)
    )


def _finished(run_id: str, started_at: str, *entities: EntityResult) -> dict[str, Any]:
    manifest = start_manifest(run_id, [_flow("flows/a.yml", "a")], env="dev", command=["conduit", "run"])
    manifest["started_at"] = started_at
    return finish_manifest(manifest, [_result("flows/a.yml", *entities, run_id=run_id)])


# -- building ----------------------------------------------------------------------------------


def test_start_manifest_records_the_run_and_its_flows(schema: dict[str, Any]) -> None:
    flows = [
        _flow("flows/a.yml", "a", {"csv": "conduit-csv 0.1.0"}),
        _flow("flows/b.yml", "b", {"postgres": "conduit-postgres 0.2.0", "csv": "conduit-csv 0.1.0"}),
    ]
    manifest = start_manifest(
        "20260102T100000-abcd1234", flows, env="prod", command=["conduit", "run", "flows"]
    )
    assert manifest["version"] == MANIFEST_VERSION == 1
    assert manifest["status"] == "running"
    assert manifest["finished_at"] is None and manifest["totals"] is None
    assert manifest["host"] == socket.gethostname() and manifest["pid"] == os.getpid()
    assert manifest["conduit_version"] == core_version()
    assert manifest["plugins"] == {"csv": "conduit-csv 0.1.0", "postgres": "conduit-postgres 0.2.0"}
    assert manifest["env"] == "prod" and manifest["command"] == ["conduit", "run", "flows"]
    assert manifest["flows"] == [
        {"path": "flows/a.yml", "name": "a", "config_hash": "hash-a", "entities": []},
        {"path": "flows/b.yml", "name": "b", "config_hash": "hash-b", "entities": []},
    ]
    assert manifest["started_at"].endswith("+00:00") and "." in manifest["started_at"]
    validate(schema, manifest)


def test_start_manifest_refuses_a_run_id_that_is_no_file_name() -> None:
    with pytest.raises(ValueError, match="file name"):
        start_manifest("../escape", [], env="dev", command=[])


def test_finish_manifest_fills_entities_per_flow_and_sums(schema: dict[str, Any]) -> None:
    flows = [_flow("flows/a.yml", "a"), _flow("flows/b.yml", "b")]
    started = start_manifest("r1", flows, env="dev", command=["conduit", "run"])
    orders = _entity(
        "orders",
        rows_read=100,
        rows_loaded=97,
        rows_rejected=3,
        commits=2,
        watermark_before="2026-01-01T00:00:00+00:00",
        watermark_after={"ts": "2026-01-02T00:00:00+00:00", "id": 7},
        checks=[CheckResult("not_null(id)", "warn", 100, 3, "row 4: id is null")],
        warnings=["3 rows have no id"],
    )
    customers = _entity("customers", "failed", rows_read=5, resumed_from="r0")
    finished = finish_manifest(started, [_result("flows/b.yml", customers), _result("flows/a.yml", orders)])
    assert started["status"] == "running" and started["flows"][0]["entities"] == []  # not changed
    assert finished["status"] == "partial"
    assert finished["finished_at"] is not None
    assert [e["name"] for e in finished["flows"][0]["entities"]] == ["orders"]
    assert [e["name"] for e in finished["flows"][1]["entities"]] == ["customers"]
    assert finished["flows"][0]["entities"][0] == orders.to_json()
    assert finished["totals"] == {"rows_read": 105, "rows_loaded": 97, "rows_rejected": 3, "entities": 2}
    validate(schema, finished)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "success"),
        (["success", "success"], "success"),
        (["success", "failed"], "partial"),
        (["failed", "failed"], "failed"),
    ],
)
def test_finish_status(statuses: list[str], expected: str, schema: dict[str, Any]) -> None:
    entities = [_entity(f"e{i}", status) for i, status in enumerate(statuses)]
    finished = _finished("r1", "2026-01-02T10:00:00.000+00:00", *entities)
    assert finished["status"] == expected
    assert finished["totals"]["entities"] == len(statuses)
    validate(schema, finished)


def test_a_result_for_an_unlisted_flow_gets_its_own_entry(schema: dict[str, Any]) -> None:
    started = start_manifest("r1", [], env="dev", command=[])
    finished = finish_manifest(started, [_result("other/x.yml", _entity("e"))])
    assert finished["flows"] == [
        {"path": "other/x.yml", "name": "x", "config_hash": "", "entities": [_entity("e").to_json()]}
    ]
    validate(schema, finished)


def test_a_real_run_validates(tmp_path: Path, schema: dict[str, Any]) -> None:
    (tmp_path / "events.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(5)))
    path = tmp_path / "ingest.yml"
    path.write_text(
        "version: 1\nentities:\n"
        "  events:\n"
        "    source: {type: jsonl, options: {path: events.jsonl}}\n"
        "    destination: {type: parquet, options: {path: out/events}}\n"
        "    mode: append\n"
        "  missing:\n"
        "    source: {type: jsonl, options: {path: nowhere.jsonl}}\n"
        "    destination: {type: parquet, options: {path: out/missing}}\n"
        "    mode: append\n"
    )
    registry = load_registry()
    flow = load_flow(path, registry, environ={})
    started = start_manifest("run-real", [flow], env=flow.env, command=["conduit", "run", str(path)])
    validate(schema, started)
    result = run_flow(flow, registry, run_id="run-real")
    finished = finish_manifest(started, [result])
    assert finished["status"] == "partial"
    assert finished["plugins"] == flow.plugins
    assert finished["totals"] == {"rows_read": 5, "rows_loaded": 5, "rows_rejected": 0, "entities": 2}
    validate(schema, finished)
    written = write_manifest(tmp_path / ".conduit", finished)
    validate(schema, json.loads(written.read_text()))


def test_the_schema_names_exactly_the_fields_of_an_entity_and_a_check(schema: dict[str, Any]) -> None:
    entity = _entity("e", checks=[CheckResult("unique(id)", "fail")]).to_json()
    assert set(schema["$defs"]["entity"]["properties"]) == set(entity)
    assert set(schema["$defs"]["entity"]["required"]) == set(entity)
    assert set(schema["$defs"]["check"]["properties"]) == set(entity["checks"][0])


def test_the_schema_rejects_unknown_keys_and_statuses(schema: dict[str, Any]) -> None:
    finished = _finished("r1", "2026-01-02T10:00:00.000+00:00", _entity("e"))
    for broken in (
        {**finished, "extra": 1},
        {**finished, "status": "done"},
        {**finished, "totals": None},
        {**finished, "flows": [{**finished["flows"][0], "entities": [{**_entity("e").to_json(), "x": 1}]}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(schema, broken)
    running = start_manifest("r2", [], env="dev", command=[])
    with pytest.raises(jsonschema.ValidationError):
        validate(schema, {**running, "finished_at": "2026-01-02T10:00:00.000+00:00"})
    validate(schema, {**running, "status": "interrupted"})


# -- storing and reading -----------------------------------------------------------------------


def test_write_manifest_is_atomic_and_named_by_run_id(tmp_path: Path) -> None:
    manifest = _finished("r1", "2026-01-02T10:00:00.000+00:00", _entity("e"))
    path = write_manifest(tmp_path, manifest)
    assert path == tmp_path / "runs" / "r1.json"
    assert json.loads(path.read_text()) == manifest
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r1.json"]  # no temp file left


def _store(state_dir: Path) -> None:
    write_manifest(state_dir, _finished("r-old", "2026-01-01T10:00:00.000+00:00", _entity("orders")))
    write_manifest(
        state_dir,
        _finished(
            "r-mid", "2026-01-02T10:00:00.000+00:00", _entity("orders"), _entity("customers", "failed")
        ),
    )
    write_manifest(state_dir, _finished("r-new", "2026-01-03T10:00:00.000+00:00", _entity("customers")))


def test_list_runs_newest_first_with_filters(tmp_path: Path) -> None:
    _store(tmp_path)

    def ids(found: RunList) -> list[str]:
        assert found.problems == []
        return [m["run_id"] for m in found.runs]

    assert ids(list_runs(tmp_path)) == ["r-new", "r-mid", "r-old"]
    assert ids(list_runs(tmp_path, status="partial")) == ["r-mid"]
    assert ids(list_runs(tmp_path, status="success")) == ["r-new", "r-old"]
    assert ids(list_runs(tmp_path, entity="orders")) == ["r-mid", "r-old"]
    assert ids(list_runs(tmp_path, entity="nobody")) == []
    assert ids(list_runs(tmp_path, limit=2)) == ["r-new", "r-mid"]
    assert ids(list_runs(tmp_path, entity="customers", limit=1)) == ["r-new"]
    assert ids(list_runs(tmp_path / "nothing-here")) == []


def test_list_runs_orders_equal_start_times_by_run_id(tmp_path: Path) -> None:
    for run_id in ("b", "a", "c"):
        write_manifest(tmp_path, _finished(run_id, "2026-01-02T10:00:00.000+00:00"))
    assert [m["run_id"] for m in list_runs(tmp_path).runs] == ["c", "b", "a"]


def test_list_runs_skips_and_reports_unreadable_files(tmp_path: Path) -> None:
    _store(tmp_path)
    runs = tmp_path / "runs"
    (runs / "broken.json").write_text("{not json")
    (runs / "list.json").write_text("[1, 2]")
    (runs / "partial.json").write_text('{"run_id": "x"}')
    (runs / ".r-x.json.conduit-1.tmp").write_text("half")  # a writer's temp file: not a manifest
    (runs / "notes.txt").write_text("hello")
    found = list_runs(tmp_path)
    assert [m["run_id"] for m in found.runs] == ["r-new", "r-mid", "r-old"]
    assert len(found.problems) == 3
    assert any("broken.json: not valid JSON" in p for p in found.problems)
    assert any("list.json: not a run manifest" in p for p in found.problems)
    assert any("partial.json: not a run manifest" in p for p in found.problems)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_running_manifest_whose_process_is_gone_is_interrupted(tmp_path: Path) -> None:
    dead = start_manifest("r-dead", [], env="dev", command=["conduit", "run"])
    dead["pid"] = _dead_pid()
    path = write_manifest(tmp_path, dead)
    write_manifest(tmp_path, start_manifest("r-live", [], env="dev", command=[]))  # this process: alive
    elsewhere = start_manifest("r-remote", [], env="dev", command=[])
    elsewhere["host"] = socket.gethostname() + "-elsewhere"
    elsewhere["pid"] = dead["pid"]
    write_manifest(tmp_path, elsewhere)

    statuses = {m["run_id"]: m["status"] for m in list_runs(tmp_path).runs}
    assert statuses == {"r-dead": "interrupted", "r-live": "running", "r-remote": "running"}
    assert [m["run_id"] for m in list_runs(tmp_path, status="interrupted").runs] == ["r-dead"]
    assert {m["run_id"] for m in list_runs(tmp_path, status="running").runs} == {"r-live", "r-remote"}
    assert load_run(tmp_path, "r-dead")["status"] == "interrupted"
    assert json.loads(path.read_text())["status"] == "running"  # the file is not rewritten


def test_load_run_by_id_or_unique_prefix(tmp_path: Path) -> None:
    write_manifest(tmp_path, _finished("20260102T100000-aaaa1111", "2026-01-02T10:00:00.000+00:00"))
    write_manifest(tmp_path, _finished("20260102T100000-aabb2222", "2026-01-02T10:00:00.001+00:00"))
    write_manifest(tmp_path, _finished("20260103T100000-cccc3333", "2026-01-03T10:00:00.000+00:00"))
    assert load_run(tmp_path, "20260102T100000-aaaa1111")["run_id"] == "20260102T100000-aaaa1111"
    assert load_run(tmp_path, "20260102T100000-aab")["run_id"] == "20260102T100000-aabb2222"
    assert load_run(tmp_path, "20260103")["run_id"] == "20260103T100000-cccc3333"
    with pytest.raises(ConfigError, match="ambiguous.*20260102T100000-aaaa1111, 20260102T100000-aabb2222"):
        load_run(tmp_path, "20260102")


def test_load_run_missing_names_recent_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no runs are recorded there yet"):
        load_run(tmp_path, "nope")
    _store(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_run(tmp_path, "nope")
    message = str(caught.value)
    assert "no run 'nope'" in message and str(tmp_path / "runs") in message
    assert "recent runs: r-new, r-mid, r-old" in message
    with pytest.raises(ConfigError):
        load_run(tmp_path, "")


def test_load_run_reports_an_unreadable_manifest(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "r-bad.json").write_text("{")
    with pytest.raises(ConfigError, match=r"r-bad\.json: not valid JSON"):
        load_run(tmp_path, "r-bad")


# -- secrets -----------------------------------------------------------------------------------


def test_no_secret_reaches_the_manifest_file(tmp_path: Path, redactor: secrets.Redactor) -> None:
    secret = "hunter2-Sup3rSecret"
    redactor.add(secret)
    started = start_manifest(
        "r1",
        [_flow("flows/a.yml", "a")],
        env="prod",
        command=["conduit", "run", "--password", "plain-pw-1", f"--api-token={secret}", "flows", secret],
    )
    assert started["command"] == ["conduit", "run", "--password", "***", "--api-token=***", "flows", "***"]
    failed = _entity(
        "orders",
        "failed",
        error=f"cannot connect to postgres://loader:url-pw-9@db/x with password {secret}",
        warnings=[f"token {secret} expires soon"],
        watermark_after={"cursor": secret, "api_key": "key-value-123"},
        checks=[CheckResult("not_null(id)", "fail", 1, 1, f"row 1: value {secret}")],
    )
    path = write_manifest(tmp_path, finish_manifest(started, [_result("flows/a.yml", failed)]))
    text = path.read_text()
    for leaked in (secret, "plain-pw-1", "url-pw-9", "key-value-123"):
        assert leaked not in text
    stored = json.loads(text)
    assert stored["flows"][0]["entities"][0]["error"] == (
        "cannot connect to postgres://loader:***@db/x with password ***"
    )


# -- formatting --------------------------------------------------------------------------------


def test_format_runs_table_shows_counts_and_durations(tmp_path: Path) -> None:
    _store(tmp_path)
    manifest = _finished(
        "r-big",
        "2026-01-04T10:00:00.000+00:00",
        _entity("orders", rows_read=12345, rows_loaded=12000, rows_rejected=345),
    )
    manifest["finished_at"] = "2026-01-04T10:02:05.000+00:00"
    running = start_manifest("r-running", [], env="dev", command=[])
    table = format_runs_table([running, manifest, *list_runs(tmp_path).runs])
    lines = table.splitlines()
    assert lines[0].split() == [
        "run", "id", "started", "(UTC)", "status", "entities", "read", "loaded", "rejected", "duration"
    ]  # fmt: skip
    big = next(line for line in lines if line.startswith("r-big"))
    assert big.split() == [
        "r-big",
        "2026-01-04",
        "10:00:00",
        "success",
        "1",
        "12,345",
        "12,000",
        "345",
        "2m05s",
    ]
    mid = next(line for line in lines if line.startswith("r-mid"))
    assert "partial" in mid and "2 (1 failed)" in mid
    assert next(line for line in lines if line.startswith("r-running")).split()[-1] == "-"
    assert format_runs_table([]) == "no runs recorded"


def test_format_run_shows_each_entity(schema: dict[str, Any]) -> None:
    orders = _entity(
        "orders",
        rows_read=1500,
        rows_loaded=1490,
        rows_rejected=10,
        rows_skipped=7,
        commits=3,
        batches=4,
        bytes=2048,
        watermark_before="2026-01-01",
        watermark_after="2026-01-02",
        resumed_from="20260101T000000-dead0001",
        checks=[CheckResult("not_null(id)", "warn", 1500, 10, "row 3: id is null")],
    )
    broken = _entity("customers", "failed", error="file not found: customers.jsonl")
    manifest = _finished("r-show", "2026-01-02T10:00:00.000+00:00", orders, broken)
    text = format_run(manifest)
    assert text.startswith("run r-show: partial\n")
    assert "flow a (flows/a.yml, config hash-a)" in text
    assert "entity orders: success  (jsonl -> parquet, append)" in text
    assert "1,500 read, 1,490 loaded, 10 rejected, 7 skipped" in text
    assert "commits     3 (4 batches, 2.0 KB" in text
    assert 'watermark   "2026-01-01" -> "2026-01-02"' in text
    assert "resumed     from run 20260101T000000-dead0001" in text
    assert "not_null(id) (warn): 10 of 1,500 rows failed; first: row 3: id is null" in text
    assert "entity customers: failed" in text
    assert "error       file not found: customers.jsonl" in text
    assert "totals      2 entities (1 failed), 1,500 read, 1,490 loaded, 10 rejected" in text
    assert "(no entities recorded)" in format_run(
        start_manifest("r0", [_flow("f.yml", "f")], env="", command=[])
    )
