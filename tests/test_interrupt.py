"""Ctrl-C (SIGINT) and SIGTERM during a PostgreSQL load: the run stops within seconds even while the
server does not answer, aborts the open session, records what it committed (manifest, ``conduit
runs``), says how to continue, exits 130, and ``--resume`` then loads exactly the rest.

The destination is made to hang the way a slow or busy server does: another connection holds
``LOCK TABLE ... IN ACCESS EXCLUSIVE MODE`` on the target, so the loader's next statement on it (the
COPY of the next checkpoint, or the staging table of a replace) waits on the server, with the loader
blocked inside libpq."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from conftest import run_cli
from exactly_once import (
    PG_DSN,
    Rows,
    Scratch,
    cli_env,
    expected_summary,
    flow_text,
    make_rows,
    scratch_schema,
    write_csv,
)

STOP_WITHIN = 20.0
"""Seconds the interrupted process may take to exit before the test calls it a hang (it takes ~1 s)."""


@pytest.fixture
def pg() -> Iterator[Scratch]:
    yield from scratch_schema()


class TableLock:
    """``LOCK TABLE ... IN ACCESS EXCLUSIVE MODE`` held by a connection of its own until :meth:`release`.
    Taken in a thread: the request waits for a load transaction holding the table to commit, and
    from the moment it is queued every later statement on the table waits behind it."""

    def __init__(self, pg: Scratch, table: str) -> None:
        self.connection = psycopg2.connect(PG_DSN)
        self.statement = f'LOCK TABLE "{pg.schema}"."{table}" IN ACCESS EXCLUSIVE MODE'
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._take, daemon=True)
        self.thread.start()

    def _take(self) -> None:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(self.statement)
        except BaseException as exc:  # noqa: BLE001 - reported by release()
            self.error = exc

    def release(self) -> None:
        self.thread.join(timeout=30)
        self.connection.rollback()
        self.connection.close()
        assert self.error is None, self.error


def _start(flow: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "conduit", "run", str(flow)],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(what: str, condition: Any, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended (exit {process.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def _loader_waits_on_lock(pg: Scratch) -> bool:
    """The loader's backend is waiting for a lock on a relation of the scratch schema."""
    ((waiting,),) = pg.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'conduit' "
        "AND wait_event_type = 'Lock' AND datname = current_database() AND position(%s in query) > 0",
        (pg.schema,),
    )
    return int(waiting) > 0


def _first_checkpoint(pg: Scratch) -> bool:
    state = pg.state()
    return state is not None and state.get("in_progress") is not None


def _interrupt(process: subprocess.Popen[str], signum: int, lock: TableLock) -> tuple[str, str, float]:
    """Send ``signum``; the output and the seconds the process took to exit. A hang fails the test."""
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        out, err = process.communicate(timeout=STOP_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        lock.release()
        pytest.fail(
            f"the run did not stop within {STOP_WITHIN:.0f} s of {signal.Signals(signum).name}:\n{err}"
        )
    return out, err, time.monotonic() - sent


def _manifest(tmp_path: Path) -> dict[str, Any]:
    (path,) = sorted((tmp_path / ".conduit" / "runs").glob("*.json"))
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def _source(tmp_path: Path, count: int) -> Rows:
    rows = make_rows(0, count, 7, ties=3)
    write_csv(tmp_path / "in" / "events.csv", rows)
    return rows


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_after_a_checkpoint_stops_records_and_resumes(
    tmp_path: Path, pg: Scratch, signum: int
) -> None:
    rows = _source(tmp_path, 120_000)
    flow = tmp_path / "flow.yml"
    destination = {"type": "postgres", "options": {"dsn": PG_DSN, "schema": pg.schema, "table": "events"}}
    flow.write_text(flow_text("in/*.csv", destination, batch=1_000, commit_every=2_000))

    process = _start(flow, tmp_path)
    lock: TableLock | None = None
    try:
        _wait_for("the first checkpoint", lambda: _first_checkpoint(pg), process)
        lock = TableLock(pg, "events")
        _wait_for("the load to wait on the locked table", lambda: _loader_waits_on_lock(pg), process)
        out, err, seconds = _interrupt(process, signum, lock)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        if lock is not None and lock.connection.closed == 0:
            lock.release()

    committed = pg.summary()[0]
    assert 0 < committed < rows.count
    assert process.returncode == 130, err
    assert seconds < STOP_WITHIN
    assert "Traceback" not in err
    assert f"interrupted: entity 'events' stopped after committing {committed:,} rows" in err
    assert f"continue with: conduit run {flow} --resume" in err

    record = _manifest(tmp_path)
    assert record["status"] == "interrupted" and record["finished_at"] is not None
    (entity,) = record["flows"][0]["entities"]
    assert entity["status"] == "interrupted"
    assert entity["rows_loaded"] == committed
    assert record["totals"]["rows_loaded"] == committed

    listed = run_cli("runs", "--project", tmp_path, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (line,) = [line for line in listed.stdout.splitlines() if record["run_id"] in line]
    assert "interrupted" in line and f"{committed:,}" in line

    plain = run_cli("run", flow, cwd=tmp_path)  # the checkpoint is there: a plain run refuses
    assert plain.returncode == 1 and "--resume" in plain.stderr

    resumed = run_cli("run", flow, "--resume", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["entities"][0]["resumed_from"] == record["run_id"]
    assert pg.summary() == expected_summary(rows)
    state = pg.state()
    assert state is not None and state["in_progress"] is None


def test_interrupt_before_any_commit_leaves_the_table_as_it_was(tmp_path: Path, pg: Scratch) -> None:
    rows = _source(tmp_path, 20_000)
    table = f'"{pg.schema}"."events"'
    with pg.connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (id bigint, name text, amount bigint, updated_at timestamptz)")
        cursor.execute(f"INSERT INTO {table} VALUES (1, 'old', 10, now()), (2, 'old', 20, now())")
    before = pg.summary()
    flow = tmp_path / "flow.yml"
    flow.write_text(
        "version: 1\n"
        "entities:\n"
        "  events:\n"
        "    source: {type: csv, options: {path: in/events.csv, columns: "
        '{id: int64, name: string, amount: int64, updated_at: "timestamp[us, UTC]"}}}\n'
        f"    destination: {{type: postgres, options: {{dsn: {PG_DSN!r}, schema: {pg.schema!r}, table: events}}}}\n"
        "    mode: replace\n"
        "    batch_size: 1000\n"
    )
    lock = TableLock(pg, "events")  # granted at once: the replace's staging table waits for it
    process = _start(flow, tmp_path)
    try:
        _wait_for("the load to wait on the locked table", lambda: _loader_waits_on_lock(pg), process)
        out, err, seconds = _interrupt(process, signal.SIGINT, lock)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        if lock.connection.closed == 0:
            lock.release()

    assert process.returncode == 130, err
    assert seconds < STOP_WITHIN
    assert "Traceback" not in err
    assert "interrupted: entity 'events' stopped before its first commit" in err
    assert pg.summary() == before
    assert not pg.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> 'events'", (pg.schema,)
    )
    record = _manifest(tmp_path)
    assert record["status"] == "interrupted"
    (entity,) = record["flows"][0]["entities"]
    assert (entity["status"], entity["rows_loaded"], entity["commits"]) == ("interrupted", 0, 0)

    again = run_cli("run", flow, "--resume", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert pg.summary() == expected_summary(rows)
