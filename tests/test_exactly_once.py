"""Exactly once: SIGKILL at random moments then --resume, incremental boundaries, re-runs that write
nothing, the refusal of a plain run after an interruption, and the run lock."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from conftest import run_cli
from exactly_once import (
    PG_DSN,
    Rows,
    Scratch,
    cli_env,
    expected_summary,
    flow_text,
    kill_and_resume,
    make_rows,
    parquet_summary,
    scratch_schema,
    write_csv,
)

from conduit.connectors import StateKey
from conduit.state import key_tag


@pytest.fixture
def pg() -> Iterator[Scratch]:
    yield from scratch_schema()


def _source(tmp_path: Path, seed: int, files: int = 3, per_file: int = 40_000) -> Rows:
    rows: list = []
    for index in range(files):
        part = make_rows(index * per_file, per_file, seed + index, ties=7)
        write_csv(tmp_path / "in" / f"events-{index}.csv", part)
        rows.extend(part.rows)
    return Rows(rows)


def _pg_flow(tmp_path: Path, pg: Scratch, **kw: int) -> Path:
    flow = tmp_path / "flow.yml"
    destination = {"type": "postgres", "options": {"dsn": PG_DSN, "schema": pg.schema, "table": "events"}}
    flow.write_text(
        flow_text(
            "in/*.csv", destination, batch=kw.get("batch", 2_000), commit_every=kw.get("commit_every", 8_000)
        )
    )
    return flow


def _parquet_flow(tmp_path: Path, **kw: int) -> Path:
    flow = tmp_path / "flow.yml"
    destination = {"type": "parquet", "options": {"path": "out/events", "layout": "directory"}}
    flow.write_text(
        flow_text(
            "in/*.csv", destination, batch=kw.get("batch", 2_000), commit_every=kw.get("commit_every", 8_000)
        )
    )
    return flow


def _parquet_state(tmp_path: Path) -> dict:
    # the commit record is kept per flow and entity: _conduit/<flow>/<entity>.json
    record = json.loads(
        (tmp_path / "out" / "events" / "_conduit" / tmp_path.name / "events.json").read_text()
    )
    assert record["pending"] == []
    return record["state"]


@pytest.mark.parametrize("seed", [11, 29])
def test_csv_to_postgres_survives_sigkill_at_random_moments(tmp_path: Path, pg: Scratch, seed: int) -> None:
    rows = _source(tmp_path, seed)
    flow = _pg_flow(tmp_path, pg)
    log = kill_and_resume(flow, tmp_path, seed, kills=4, window=(0.5, 2.5))
    assert pg.summary() == expected_summary(rows), "\n".join(log)
    state = pg.state()
    assert state is not None and state["in_progress"] is None
    assert datetime.fromisoformat(state["watermark"]) == rows.max_cursor
    assert not [
        t
        for (t,) in pg.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE '%%conduit%%stage%%'",
            (pg.schema,),
        )
    ]


@pytest.mark.parametrize("seed", [5, 41])
def test_csv_to_parquet_survives_sigkill_at_random_moments(tmp_path: Path, seed: int) -> None:
    rows = _source(tmp_path, seed)
    flow = _parquet_flow(tmp_path)
    log = kill_and_resume(flow, tmp_path, seed, kills=4, window=(0.5, 2.5))
    assert parquet_summary(tmp_path / "out" / "events") == expected_summary(rows), "\n".join(log)
    state = _parquet_state(tmp_path)
    assert state["in_progress"] is None
    assert datetime.fromisoformat(state["watermark"]) == rows.max_cursor
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers


def _run(flow: Path, cwd: Path, *extra: str) -> dict:
    done = run_cli("run", flow, "--json", *extra, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["entities"][0]


@pytest.mark.parametrize("destination", ["postgres", "parquet"])
def test_incremental_loads_exactly_the_new_rows_including_rows_at_the_old_mark(
    tmp_path: Path, request: pytest.FixtureRequest, destination: str
) -> None:
    first = make_rows(0, 1_000, 1, ties=10)  # ids 990..999 share the last updated_at
    write_csv(tmp_path / "in" / "a.csv", first)
    if destination == "postgres":
        pg = request.getfixturevalue("pg")
        flow = _pg_flow(tmp_path, pg, batch=128, commit_every=300)

        def summary() -> tuple[int, int, int, str]:
            return pg.summary()
    else:
        flow = _parquet_flow(tmp_path, batch=128, commit_every=300)

        def summary() -> tuple[int, int, int, str]:
            return parquet_summary(tmp_path / "out" / "events")

    loaded = _run(flow, tmp_path)
    assert (loaded["rows_read"], loaded["rows_loaded"]) == (1_000, 1_000)
    assert loaded["commits"] >= 2
    mark = loaded["watermark_after"]

    # new rows: some at exactly the old mark (a late arrival with the same timestamp), some past it;
    # one in the old file (which therefore changed) and the rest in a new file
    late = make_rows(5_000, 3, 2)
    late.rows = [(i, n, a, first.max_cursor) for i, n, a, _ in late.rows]
    newer = make_rows(1_000, 500, 3, ties=10)
    write_csv(tmp_path / "in" / "a.csv", Rows(first.rows + late.rows[:1]))
    write_csv(tmp_path / "in" / "b.csv", Rows(late.rows[1:] + newer.rows))
    second = _run(flow, tmp_path)
    assert second["rows_loaded"] == 3 + 500, second
    assert second["watermark_before"] == mark
    assert summary() == expected_summary(Rows(first.rows + late.rows + newer.rows))

    # unchanged input: nothing written, the state unchanged
    third = _run(flow, tmp_path)
    assert third["rows_loaded"] == 0 and third["rows_read"] == 0
    assert third["watermark_after"] == second["watermark_after"]
    state_before = run_cli("state", "show", "events", "--flow", flow, "--json", cwd=tmp_path)
    fourth = _run(flow, tmp_path)
    assert fourth["rows_loaded"] == 0
    state_after = run_cli("state", "show", "events", "--flow", flow, "--json", cwd=tmp_path)
    before, after = json.loads(state_before.stdout)["events"], json.loads(state_after.stdout)["events"]
    for key in ("watermark", "boundary", "files", "rows_loaded_total", "in_progress"):
        assert before[key] == after[key], key

    # runs lists the four runs with their counts, newest first
    listed = run_cli("runs", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["totals"]["rows_loaded"] for r in runs[:4]] == [0, 0, 503, 1_000]
    # every manifest the CLI wrote validates against the documented JSON Schema
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "manifest.schema.json").read_text())
    written = sorted((tmp_path / ".conduit" / "runs").glob("*.json"))
    assert len(written) >= 4
    for path in written:
        jsonschema.validate(json.loads(path.read_text()), schema)
    prefix = runs[2]["run_id"][:-2]  # a unique prefix: 6 of its 8 random hex digits
    shown = run_cli("runs", "show", prefix, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "503" in shown.stdout


def test_a_plain_run_after_an_interruption_refuses_and_resume_continues(tmp_path: Path) -> None:
    rows = _source(tmp_path, 3, files=2, per_file=60_000)
    flow = _parquet_flow(tmp_path, batch=1_000, commit_every=5_000)
    # kill it for sure mid-run: wait until the first commit record exists
    process = subprocess.Popen(
        [sys.executable, "-m", "conduit", "run", str(flow), "-q"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    record = tmp_path / "out" / "events" / "_conduit" / tmp_path.name / "events.json"
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if record.exists() and json.loads(record.read_text()).get("state", {}).get("in_progress"):
            break
        time.sleep(0.01)
    process.kill()
    process.communicate()
    if process.returncode == 0:
        pytest.skip("the run finished before it could be interrupted")
    plain = run_cli("run", flow, cwd=tmp_path)
    assert plain.returncode == 1
    assert "was interrupted after committing" in plain.stderr and "--resume" in plain.stderr
    assert "Traceback" not in plain.stderr
    shown = run_cli("state", "show", "events", "--flow", flow, cwd=tmp_path)
    assert "INTERRUPTED" in shown.stdout
    resumed = _run(flow, tmp_path, "--resume")
    assert resumed["resumed_from"] is not None
    assert parquet_summary(tmp_path / "out" / "events") == expected_summary(rows)
    runs = run_cli("runs", cwd=tmp_path)
    assert "interrupted" in runs.stdout and "success" in runs.stdout


def test_a_second_run_of_an_entity_being_loaded_fails_fast_postgres(tmp_path: Path, pg: Scratch) -> None:
    rows = _source(tmp_path, 8, files=1, per_file=1_000)
    flow = _pg_flow(tmp_path, pg)
    # another run holds the entity: the same advisory lock a running load takes
    # (keyed by schema, table, flow and entity)
    identity = "\x1f".join((pg.schema, "events", tmp_path.name, "events"))
    pg.query("SELECT pg_advisory_lock(hashtext('conduit'), hashtext(%s))", (identity,))
    import time

    started = time.monotonic()
    second = run_cli("run", flow, cwd=tmp_path)
    assert time.monotonic() - started < 30
    assert second.returncode == 1
    assert "being loaded by another run" in second.stderr and "pid" in second.stderr
    assert "Traceback" not in second.stderr
    pg.query("SELECT pg_advisory_unlock_all()")
    assert _run(flow, tmp_path)["rows_loaded"] == rows.count


def test_a_second_run_of_an_entity_being_loaded_fails_fast_parquet(tmp_path: Path) -> None:
    _source(tmp_path, 8, files=1, per_file=1_000)
    flow = _parquet_flow(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # the lock file beside the target names a tag of the flow and entity
        lock = tmp_path / "out" / f".events.conduit-{key_tag(StateKey(tmp_path.name, 'events'))}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        import socket

        lock.write_text(
            json.dumps({"host": socket.gethostname(), "pid": holder.pid, "run_id": "r1", "since": "now"})
        )
        second = run_cli("run", flow, cwd=tmp_path)
        assert second.returncode == 1
        assert "being loaded by another run" in second.stderr and str(holder.pid) in second.stderr
    finally:
        holder.kill()
        holder.wait()
    # the holder died (as with kill -9): its lock is stale and the next run takes it over
    assert _run(flow, tmp_path)["rows_loaded"] == 1_000


def test_full_refresh_ignores_state_and_state_reset_set(tmp_path: Path) -> None:
    rows = make_rows(0, 2_000, 9, ties=4)
    write_csv(tmp_path / "in" / "a.csv", rows)
    flow = _parquet_flow(tmp_path, batch=256, commit_every=1_000)
    assert _run(flow, tmp_path)["rows_loaded"] == 2_000
    refreshed = _run(flow, tmp_path, "--full-refresh")
    assert refreshed["rows_loaded"] == 2_000 and refreshed["mode"] == "replace"
    assert parquet_summary(tmp_path / "out" / "events") == expected_summary(rows)

    cut = rows.rows[1_500][3].isoformat()
    done = run_cli("state", "set", "events", "--cursor", cut, "--flow", flow, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    again = _run(flow, tmp_path)
    assert again["rows_loaded"] == sum(1 for r in rows.rows if r[3].isoformat() >= cut)

    refused = run_cli(
        "state",
        "reset",
        "events",
        "--flow",
        flow,
        cwd=tmp_path,
    )
    assert refused.returncode == 1  # no --yes and no terminal to confirm on
    done = run_cli("state", "reset", "events", "--flow", flow, "--yes", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = run_cli("state", "show", "events", "--flow", flow, cwd=tmp_path)
    assert "no state" in shown.stdout


def test_null_cursor_values_fail_by_default_and_skip_when_asked(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text(
        "id,name,amount,updated_at\n1,a,1,2026-01-01T00:00:00+00:00\n2,b,2,\n3,c,3,2026-01-02T00:00:00+00:00\n"
    )
    flow = _parquet_flow(tmp_path)
    failed = run_cli("run", flow, cwd=tmp_path)
    assert failed.returncode == 1
    assert "cursor column 'updated_at' is NULL" in failed.stderr and "row 2" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (tmp_path / "out" / "events").exists() or parquet_summary(tmp_path / "out" / "events")[0] == 0
    flow.write_text(flow.read_text().replace("{cursor: updated_at}", "{cursor: updated_at, on_null: skip}"))
    loaded = _run(flow, tmp_path)
    assert (loaded["rows_loaded"], loaded["rows_null_cursor"]) == (2, 1)
    again = _run(flow, tmp_path)
    assert again["rows_loaded"] == 0
