"""Schema drift and the four policies, end to end against real PostgreSQL and Parquet directories.

Each case loads version 1 of a CSV (declared column types), then a drifted version 2, under one
policy, and checks what the documented outcome says: exit code, rows in the target, the target's
column types, the dead-letter queue, the manifest and `conduit schema history`. For `manual` the plan
is approved and the run repeated, and the DDL that ran is compared with the plan's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import make_distribution, run_cli
from exactly_once import scratch_schema
from targets import Target, open_target

from conduit.cli import invoke

V1 = "id,n,name\n1,10,a\n2,20,b\n"
V1_COLUMNS = "{id: int64, n: int32, name: string}"


@dataclass(frozen=True)
class Change:
    name: str
    csv: str
    columns: str
    safe: bool  # auto applies it / manual can approve it
    pg_type_after_auto: str | None  # the column's PostgreSQL type once auto applied it
    parquet_type_after_auto: str | None
    warn_loaded: int  # rows of version 2 a warn run loads (the rest go to the DLQ)
    warn_reason: str | None


CHANGES = [
    Change(
        "added_column",
        "id,n,name,note\n3,30,c,hello\n4,40,d,\n",
        "{id: int64, n: int32, name: string, note: string}",
        True,
        "text",
        "string",
        2,
        None,
    ),
    Change(
        "int_to_bigint",
        "id,n,name\n3,30,c\n4,5000000000,d\n",
        "{id: int64, n: int64, name: string}",
        True,
        "bigint",
        "int64",
        1,
        "overflow",
    ),
    Change(
        "int_to_numeric",
        "id,n,name\n3,30.00,c\n4,1.25,d\n",
        '{id: int64, n: "decimal(12,2)", name: string}',
        True,
        "numeric(12,2)",
        "decimal(12,2)",
        1,
        "precision_loss",
    ),
    Change("removed_column", "id,n\n3,30\n4,40\n", "{id: int64, n: int32}", True, None, None, 2, None),
    Change(
        "text_into_int",
        "id,n,name\n3,30,c\n4,many,d\n",
        "{id: int64, n: string, name: string}",
        False,
        None,
        None,
        1,
        "not_a_number",
    ),
]
MODES = ["manual", "auto", "warn", "freeze"]


def _flow(tmp: Path, destination: str, columns: str, policy: str) -> Path:
    path = tmp / "ingest.yml"
    path.write_text(
        "version: 1\n"
        "entities:\n"
        "  items:\n"
        f"    source: {{type: csv, options: {{path: in.csv, columns: {columns}}}}}\n"
        f"    destination: {destination}\n"
        "    mode: append\n"
        f"    schema: {{policy: {policy}}}\n"
    )
    return path


@pytest.fixture(params=["parquet", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    yield from open_target(request.param, tmp_path, "items")


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = invoke([*map(str, args)])
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip().startswith("{") else {}, out.err


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = invoke([*map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _dlq(tmp: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for part in sorted((tmp / ".conduit" / "dlq").glob("*/items/*.jsonl")):
        records.extend(json.loads(line) for line in part.read_text().splitlines() if line.strip())
    return records


def _history(capsys: pytest.CaptureFixture[str], flow: Path) -> list[dict[str, Any]]:
    code, out, err = _cli(capsys, "schema", "history", "items", "--flow", flow, "--json")
    assert code == 0, err
    history: list[dict[str, Any]] = json.loads(out)
    return history


@pytest.mark.parametrize("change", CHANGES, ids=[c.name for c in CHANGES])
@pytest.mark.parametrize("mode", MODES)
def test_policy_meets_change(
    mode: str, change: Change, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in.csv").write_text(V1)
    flow = _flow(tmp_path, target.yaml, V1_COLUMNS, mode)
    code, result, err = _run(capsys, "run", flow, "--json")
    assert code == 0, err
    assert result["entities"][0]["schema_version"] == 1
    (tmp_path / "in.csv").write_text(change.csv)
    flow = _flow(tmp_path, target.yaml, change.columns, mode)
    code, result, err = _run(capsys, "run", flow, "--json")
    entity = result["entities"][0]
    assert "Traceback" not in err
    assert entity["rows_read"] == entity["rows_loaded"] + entity["rows_rejected"]
    assert [c["column"] for c in entity["schema_changes"]] == [
        {"removed_column": "name", "added_column": "note"}.get(change.name, "n")
    ]
    before = [{"id": 1}, {"id": 2}]
    if mode == "freeze" or (mode in ("manual", "auto") and not change.safe):
        assert code == 1, err
        assert ("frozen" if mode == "freeze" else "incompatible") in entity["error"]
        assert [{"id": r["id"]} for r in target.rows()] == before  # nothing written
        assert [h["version"] for h in _history(capsys, flow)] == [1]
        return
    if mode == "manual":
        assert code == 3, err
        assert "needs approval" in entity["error"] and "conduit schema approve items" in entity["error"]
        assert [{"id": r["id"]} for r in target.rows()] == before
        plans = list((tmp_path / ".conduit" / "schema").glob("*/items.plan.json"))
        assert len(plans) == 1
        planned = json.loads(plans[0].read_text())
        code, out, err = _cli(capsys, "schema", "approve", "items", "--flow", flow)
        assert code == 0, err
        ran = [line[len("ran: ") :] for line in out.splitlines() if line.startswith("ran: ")]
        assert ran == planned["ddl"]  # the plan's DDL is exactly what ran
        history = _history(capsys, flow)
        assert [h["version"] for h in history] == [1, 2] and history[1]["ddl"] == planned["ddl"]
        assert history[1]["how"] == "approved"
        if target.kind == "postgres" and change.pg_type_after_auto:
            assert planned["ddl"] and all(s.startswith("ALTER TABLE") for s in planned["ddl"])
        code, result, err = _run(capsys, "run", flow, "--json")
        assert code == 0, err
        assert result["entities"][0]["schema_changes"] == []  # accepted: no drift any more
        assert result["entities"][0]["rows_loaded"] == 2
    elif mode == "auto":
        assert code == 0, err
        assert entity["rows_loaded"] == 2 and entity["schema_version"] == 2
        assert [h["version"] for h in _history(capsys, flow)] == [1, 2]
        if target.kind == "postgres":
            assert entity["ddl"] == _history(capsys, flow)[1]["ddl"]
    else:  # warn
        assert code == 0, err
        assert entity["rows_loaded"] == change.warn_loaded
        assert entity["rows_rejected"] == 2 - change.warn_loaded
        assert entity["ddl"] == []
        records = _dlq(tmp_path)
        assert [r["reason"] for r in records] == ([change.warn_reason] if change.warn_reason else [])
        assert all(r["rule"] == "schema" and r["column"] == "n" for r in records)
        if change.name == "added_column":
            assert entity["values_dropped"] == {"note": 1}
    rows = target.rows()
    assert [r["id"] for r in rows] == [1, 2, 3, 4][: 2 + (2 if mode != "warn" else change.warn_loaded)]
    if change.name == "removed_column":
        assert [r["name"] for r in rows] == ["a", "b", None, None]  # removed loads as NULL, never dropped
    if mode in ("manual", "auto"):
        if change.name == "added_column":
            assert [r["note"] for r in rows] == [None, None, "hello", None]
        if change.name == "int_to_bigint":
            assert rows[-1]["n"] == 5_000_000_000
        if change.name == "int_to_numeric":
            assert [r["n"] for r in rows][-2:] == [Decimal("30.00"), Decimal("1.25")]
        expected_type = (
            change.pg_type_after_auto if target.kind == "postgres" else change.parquet_type_after_auto
        )
        column = "note" if change.name == "added_column" else "n"
        if expected_type is not None:
            assert target.column_type(column) == expected_type
    else:
        assert target.column_type("note") is None  # warn never changes the target
        if change.name != "removed_column":
            assert target.column_type("n") in ("integer", "int32")


def test_manifest_records_schema_changes_applied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.csv").write_text(V1)
    flow = _flow(tmp_path, "{type: parquet, options: {path: out/items}}", V1_COLUMNS, "auto")
    assert _run(capsys, "run", flow, "--json")[0] == 0
    (tmp_path / "in.csv").write_text(CHANGES[0].csv)
    flow = _flow(tmp_path, "{type: parquet, options: {path: out/items}}", CHANGES[0].columns, "auto")
    code, result, _ = _run(capsys, "run", flow, "--json")
    assert code == 0
    manifest = json.loads((tmp_path / ".conduit" / "runs" / f"{result['run_id']}.json").read_text())
    entity = manifest["flows"][0]["entities"][0]
    assert entity["schema_version"] == 2
    assert entity["schema_changes"] == [
        {
            "kind": "added",
            "column": "note",
            "from": None,
            "to": "string",
            "compatibility": None,
            "widened": None,
        }
    ]


POLICY_PLUGIN = '''
from conduit import hookimpl
from conduit.schema import SchemaDecision


@hookimpl
def conduit_schema_policy(entity, diff, policy):
    """Loosen the rules for one entity only: `events` takes every safe change, whatever its policy."""
    if entity != "events":
        return None
    if all(change.safe for change in diff.changes):
        return SchemaDecision(True, "conduit-lenient: events may evolve")
    return None
'''


def test_a_third_party_policy_overrides_the_builtin_for_one_entity(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_distribution(
        site, "conduit-lenient", "1.0.0", {"lenient": "lenient_policy"}, {"lenient_policy": POLICY_PLUGIN}
    )
    (tmp_path / "in.csv").write_text(V1)
    flow = tmp_path / "ingest.yml"

    def write(columns: str) -> None:
        flow.write_text(
            "version: 1\nentities:\n"
            + "".join(
                f"  {name}:\n"
                f"    source: {{type: csv, options: {{path: in.csv, columns: {columns}}}}}\n"
                f"    destination: {{type: parquet, options: {{path: out/{name}}}}}\n"
                "    mode: append\n"
                for name in ("events", "orders")
            )
        )

    write(V1_COLUMNS)
    assert run_cli("run", flow, extra_path=site).returncode == 0
    (tmp_path / "in.csv").write_text(CHANGES[0].csv)
    write(CHANGES[0].columns)
    done = run_cli("run", flow, "--json", extra_path=site)
    entities = {e["name"]: e for e in json.loads(done.stdout)["entities"]}
    assert entities["events"]["status"] == "success" and entities["events"]["schema_version"] == 2
    assert entities["orders"]["status"] == "failed" and "needs approval" in entities["orders"]["error"]
    assert done.returncode == 3  # only approval is missing
    # Without the plugin, events falls back to the built-in manual policy like every other entity.
    (tmp_path / "in.csv").write_text("id,n,name,note,extra\n5,50,e,x,1\n")
    write("{id: int64, n: int32, name: string, note: string, extra: int64}")
    plain = run_cli("run", flow, "--entity", "events")
    assert plain.returncode == 3 and "needs approval" in plain.stderr


@pytest.mark.parametrize("mode", MODES)
def test_text_longer_than_a_varchar_column(
    mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A table the user made with ``varchar(3)``: Conduit never changes a length limit on its own;
    longer values go to the dead-letter queue under warn and fail the load (nothing written) otherwise."""
    for pg in scratch_schema():
        target = Target("postgres", tmp_path, pg, "items")
        pg.query(f'CREATE TABLE "{pg.schema}".items (id bigint, n integer, name varchar(3)); SELECT 1')
        (tmp_path / "in.csv").write_text(V1)
        flow = _flow(tmp_path, target.yaml, V1_COLUMNS, mode)
        code, result, err = _run(capsys, "run", flow, "--json")
        assert code == 0, err
        (tmp_path / "in.csv").write_text("id,n,name\n3,30,abc\n4,40,toolong\n")
        code, result, err = _run(capsys, "run", flow, "--json")
        entity = result["entities"][0]
        assert entity["schema_changes"] == []  # the schema did not change; one value is too long
        if mode == "warn":
            assert code == 0, err
            assert (entity["rows_loaded"], entity["rows_rejected"]) == (1, 1)
            assert [(r["reason"], r["column"], r["row"]) for r in _dlq(tmp_path)] == [("too_long", "name", 2)]
            assert [r["name"] for r in target.rows()] == ["a", "b", "abc"]
        else:
            assert code == 1
            assert (
                "does not fit the destination's varchar(3)" in entity["error"] and "row 2" in entity["error"]
            )
            assert [r["name"] for r in target.rows()] == ["a", "b"]
        assert target.column_type("name") == "character varying(3)"


def test_schema_show_and_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.csv").write_text(V1)
    destination = "{type: parquet, options: {path: out/items}}"
    flow = _flow(tmp_path, destination, V1_COLUMNS, "manual")
    assert _run(capsys, "run", flow, "--json")[0] == 0
    (tmp_path / "in.csv").write_text(CHANGES[1].csv)  # n becomes int64
    flow = _flow(tmp_path, destination, CHANGES[1].columns, "manual")
    code, out, err = _cli(capsys, "schema", "diff", "items", "--flow", flow, "--json")
    assert code == 0, err
    diff = json.loads(out)
    assert diff["accepted_version"] == 1
    assert {r["column"]: (r["source"], r["accepted"], r["destination"]) for r in diff["columns"]} == {
        "id": ("int64", "int64", "int64"),
        "n": ("int64", "int32", "int32"),
        "name": ("string", "string", "string"),
    }
    assert [(c["column"], c["compatibility"], c["widened"]) for c in diff["changes"]] == [
        ("n", "widening", "int64")
    ]
    code, out, _ = _cli(capsys, "schema", "show", "items", "--flow", flow)
    assert code == 0 and "schema version 1 of 1" in out and "n: int32" in out
    assert _run(capsys, "run", flow, "--json")[0] == 3
    assert _cli(capsys, "schema", "approve", "items", "--flow", flow)[0] == 0
    code, out, _ = _cli(capsys, "schema", "show", "items", "--flow", flow, "--json")
    shown = json.loads(out)
    assert shown["version"] == 2 and [c["type"] for c in shown["columns"]] == ["int64", "int64", "string"]
    code, out, _ = _cli(capsys, "schema", "show", "items", "--flow", flow, "--version", "1")
    assert "n: int32" in out
    # A stale plan is refused: approve with nothing waiting.
    code, _, err = _cli(capsys, "schema", "approve", "items", "--flow", flow)
    assert code == 1 and "no schema plan waiting" in err
