"""Incremental loads that would lose or duplicate rows are refused or made exact (issue 13):

* ``incremental`` with mode ``replace`` (written, or the destination's default) is a config error,
  for ``validate`` and ``run`` alike, before any row moves;
* changing ``incremental.primary_key`` of an entity that has a watermark is refused until a reset;
* ``schema: {policy: warn}`` with a new source column and no primary key loads exactly the new rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from exactly_once import PG_DSN

CSV_SOURCE = "{type: csv, options: {path: data.csv}}"


def _flow(tmp_path: Path, body: str) -> Path:
    flow = tmp_path / "flow.yml"
    flow.write_text(f"version: 1\nentities:\n  orders:\n    source: {CSV_SOURCE}\n{body}")
    (tmp_path / "data.csv").write_text("id,updated_at\n1,2026-01-01T00:00:00\n")
    return flow


def _refused(flow: Path, where: str, *what: str) -> None:
    for command in ("validate", "run"):
        result = run_cli(command, flow, cwd=flow.parent)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert result.stdout == ""
        assert f"{flow}{where}" in result.stderr, result.stderr
        for text in what:
            assert text in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_incremental_with_the_destinations_default_replace_is_refused(tmp_path: Path) -> None:
    flow = _flow(
        tmp_path,
        "    destination: {type: parquet, options: {path: out/orders.parquet}}\n"
        "    incremental: {cursor: updated_at}\n",
    )
    _refused(
        flow,
        ":6:5: entities.orders.incremental: an incremental load needs mode append or merge",
        "mode replace (the default of destination type 'parquet'; this entity sets no mode)",
        "would replace the target with only the rows past the watermark",
        "mode: append",
        "layout: directory",
    )
    assert not (tmp_path / "out").exists()


def test_incremental_with_a_written_mode_replace_is_refused(tmp_path: Path) -> None:
    flow = _flow(
        tmp_path,
        f"    destination: {{type: postgres, options: {{dsn: {PG_DSN!r}, table: orders}}}}\n"
        "    mode: replace\n"
        "    incremental: {cursor: updated_at}\n",
    )
    _refused(
        flow,
        ":7:5: entities.orders.incremental: an incremental load needs mode append or merge",
        f"mode replace (set at {flow}:6:5)",
        "would replace the target with only the rows past the watermark",
        "use mode: append",
        "drop incremental",
    )


def test_a_destination_that_only_replaces_cannot_load_incrementally(tmp_path: Path) -> None:
    flow = _flow(
        tmp_path,
        "    destination: {type: jsonl, options: {path: out/orders.jsonl}}\n"
        "    incremental: {cursor: updated_at}\n",
    )
    _refused(
        flow,
        ":6:5: entities.orders.incremental: an incremental load needs mode append or merge",
        "destination type 'jsonl' supports only mode replace",
    )


# -- changing the primary key ------------------------------------------------------------------


def _parquet_flow(tmp_path: Path, incremental: str, schema: str = "") -> Path:
    flow = tmp_path / "flow.yml"
    flow.write_text(
        "version: 1\n"
        "entities:\n"
        "  orders:\n"
        "    source: {type: csv, options: {path: data.csv}}\n"
        "    destination: {type: parquet, options: {path: out/orders, layout: directory}}\n"
        "    mode: append\n"
        f"    incremental: {incremental}\n"
        f"{schema}"
    )
    return flow


def _loaded(tmp_path: Path) -> list[dict]:
    parts = sorted(p for p in (tmp_path / "out" / "orders").glob("*.parquet") if not p.name.startswith("."))
    rows = [row for part in parts for row in pq.read_table(part).to_pylist()]
    return sorted(rows, key=lambda row: row["id"])


def _run(flow: Path) -> dict:
    done = run_cli("run", flow, "--json", cwd=flow.parent)
    assert done.returncode == 0, done.stderr
    entity: dict = json.loads(done.stdout)["entities"][0]
    entity["stderr"] = done.stderr
    return entity


def _record(tmp_path: Path) -> Path:
    (record,) = (tmp_path / "out" / "orders" / "_conduit").glob("*/orders.json")
    return record


def test_changing_the_primary_key_is_refused_until_a_reset(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text(
        "id,name,updated_at\n1,a,2026-01-01T00:00:00\n2,b,2026-01-02T00:00:00\n3,c,2026-01-02T00:00:00\n"
    )
    flow = _parquet_flow(tmp_path, "{cursor: updated_at, primary_key: [id]}")
    assert _run(flow)["rows_loaded"] == 3

    # the file changes (so it is read again, rows 2 and 3 at the watermark with it) and the key too:
    # the remembered identities no longer match, so rows 2 and 3 would be loaded a second time
    with (tmp_path / "data.csv").open("a") as handle:
        handle.write("4,d,2026-01-03T00:00:00\n")
    flow = _parquet_flow(tmp_path, "{cursor: updated_at, primary_key: [id, name]}")
    refused = run_cli("run", flow, cwd=tmp_path)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert (
        "the state's watermark was loaded with incremental.primary_key [id], the config now says "
        "[id, name]" in refused.stderr
    ), refused.stderr
    assert "conduit state reset orders" in refused.stderr and "--full-refresh" in refused.stderr
    assert [row["id"] for row in _loaded(tmp_path)] == [1, 2, 3]  # nothing loaded twice
    assert json.loads(_record(tmp_path).read_text())["state"]["primary_key"] == ["id"]

    # --full-refresh reloads everything (mode replace) and stores the new key
    refreshed = run_cli("run", flow, "--full-refresh", cwd=tmp_path)
    assert refreshed.returncode == 0, refreshed.stderr
    assert [row["id"] for row in _loaded(tmp_path)] == [1, 2, 3, 4]
    assert json.loads(_record(tmp_path).read_text())["state"]["primary_key"] == ["id", "name"]
    assert _run(flow)["rows_loaded"] == 0  # and the new key is the state's now


def test_removing_the_primary_key_is_a_change_too(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("id,updated_at\n1,2026-01-01T00:00:00\n")
    assert _run(_parquet_flow(tmp_path, "{cursor: updated_at, primary_key: [id]}"))["rows_loaded"] == 1
    refused = run_cli("run", _parquet_flow(tmp_path, "{cursor: updated_at}"), cwd=tmp_path)
    assert refused.returncode != 0
    assert "primary_key [id], the config now says none" in refused.stderr, refused.stderr


def test_a_state_without_a_stored_primary_key_is_accepted_and_then_stored(tmp_path: Path) -> None:
    """State written by a version that did not record the key: accepted as it is, then recorded."""
    (tmp_path / "data.csv").write_text("id,updated_at\n1,2026-01-01T00:00:00\n2,2026-01-02T00:00:00\n")
    flow = _parquet_flow(tmp_path, "{cursor: updated_at, primary_key: [id]}")
    assert _run(flow)["rows_loaded"] == 2
    record = _record(tmp_path)
    document = json.loads(record.read_text())
    del document["state"]["primary_key"]
    record.write_text(json.dumps(document))

    with (tmp_path / "data.csv").open("a") as handle:
        handle.write("3,2026-01-03T00:00:00\n")
    assert _run(flow)["rows_loaded"] == 1
    assert json.loads(record.read_text())["state"]["primary_key"] == ["id"]
    assert [row["id"] for row in _loaded(tmp_path)] == [1, 2, 3]


# -- a new source column with schema policy warn, rows identified by all their columns --------


@pytest.mark.parametrize(("policy", "commit_every"), [("warn", 1_000), ("warn", 1), ("auto", 1_000)])
def test_a_new_source_column_keeps_the_boundary_exact(tmp_path: Path, policy: str, commit_every: int) -> None:
    """Without a primary key a row is identified by its columns: those of the first load, whatever
    columns come later (left out by ``warn``: this once failed with a KeyError; added by ``auto``:
    this once loaded the rows at the watermark again)."""
    (tmp_path / "data.csv").write_text(
        "id,name,updated_at\n"
        "1,a,2026-01-01T00:00:00\n"
        "2,b,2026-01-02T00:00:00\n"
        "3,c,2026-01-02T00:00:00\n"  # two rows at the watermark: remembered by their whole row
    )
    flow = _parquet_flow(
        tmp_path,
        "{cursor: updated_at}",
        f"    schema: {{policy: {policy}}}\n    commit_every: {commit_every}\n",
    )
    assert _run(flow)["rows_loaded"] == 3

    # the export now has a column more, the old rows again, a late row at the watermark and a newer one
    (tmp_path / "data.csv").write_text(
        "id,name,region,updated_at\n"
        "1,a,eu,2026-01-01T00:00:00\n"
        "2,b,eu,2026-01-02T00:00:00\n"
        "3,c,us,2026-01-02T00:00:00\n"
        "4,d,us,2026-01-02T00:00:00\n"
        "5,e,eu,2026-01-03T00:00:00\n"
    )
    second = _run(flow)
    assert second["rows_loaded"] == 2, second
    assert [row["id"] for row in _loaded(tmp_path)] == [1, 2, 3, 4, 5]
    if policy == "warn":
        assert "warning: [orders] the source has a new column 'region'" in second["stderr"], second["stderr"]
        assert second["values_dropped"] == {"region": 2}
        assert all("region" not in row for row in _loaded(tmp_path))
    else:
        assert [row.get("region") for row in _loaded(tmp_path)] == [None, None, None, "us", "eu"]

    # and again: nothing new, nothing loaded
    assert _run(flow)["rows_loaded"] == 0
    assert [row["id"] for row in _loaded(tmp_path)] == [1, 2, 3, 4, 5]
