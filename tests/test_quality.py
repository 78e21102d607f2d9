"""Quality checks and the dead-letter queue, end to end: every built-in check with every action into
Parquet and into PostgreSQL, `dlq show/list/replay/purge`, thresholds, secret columns, and a crash
between the destination's commit and the dead-letter part being renamed in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from exactly_once import cli_env
from targets import Target, open_target

from conduit.cli import invoke

HEADER = "id,email,amount,status,placed,code\n"
# 12 rows; the comments say which check each bad row fails.
ROWS = [
    "1,a@x.org,10.50,new,2026-01-01,AB1",
    "2,b@x.org,20.00,paid,2026-01-02,AB2",
    "3,,30.00,paid,2026-01-03,AB3",  # not_null(email)
    "4,d@x.org,40.00,paid,2026-01-04,AB4",
    "2,e@x.org,50.00,paid,2026-01-05,AB5",  # unique(id): 2 again
    "6,f@x.org,-5.00,paid,2026-01-06,AB6",  # range(amount, 0..1000)
    "7,g@x.org,70.00,weird,2026-01-07,AB7",  # enum(status)
    "8,h@x.org,80.00,paid,2026-01-08,zz",  # regex(code ^[A-Z]{2}[0-9]$)
    "9,i@x.org,90.00,paid,2026-01-09,ABCDEFGH9",  # length(code max 6) (and regex)
    "10,j@x.org,999.00,new,2026-01-10,AB0",  # expression(amount < 500 or status = 'paid')
    "11,k@x.org,11.00,paid,2026-01-11,AB1",
    "12,l@x.org,12.00,new,2026-01-12,AB2",
]
COLUMNS = '{id: int64, email: string, amount: "decimal(10,2)", status: string, placed: date, code: string}'


@dataclass(frozen=True)
class Case:
    name: str
    check: str  # the check's YAML, without the action
    failing_ids: tuple[int, ...]
    failing_rows: tuple[int, ...]  # their data row numbers in the file


CASES = [
    Case("not_null", "not_null: {columns: [email]}", (3,), (3,)),
    Case("unique", "unique: {columns: [id]}", (2,), (5,)),
    Case("range", "range: {column: amount, min: 0, max: 1000}", (6,), (6,)),
    Case("enum", "enum: {column: status, values: [new, paid]}", (7,), (7,)),
    Case("regex", "regex: {column: code, pattern: '^[A-Z]{2}[0-9]$'}", (8, 9), (8, 9)),
    Case("length", "length: {column: code, max: 6}", (9,), (9,)),
    Case("expression", "expression: {expr: \"amount < 500 or status = 'paid'\"}", (10,), (10,)),
]


def _write(tmp: Path, rows: list[str] = ROWS) -> None:
    (tmp / "orders.csv").write_text(HEADER + "".join(r + "\n" for r in rows))


def _flow(tmp: Path, destination: str, checks: list[str], extra: str = "") -> Path:
    path = tmp / "ingest.yml"
    listed = "".join(f"      - {c}\n" for c in checks)
    path.write_text(
        "version: 1\n"
        "entities:\n"
        "  orders:\n"
        f"    source: {{type: csv, options: {{path: orders.csv, columns: {COLUMNS}}}}}\n"
        f"    destination: {destination}\n"
        "    mode: append\n"
        f"{extra}"
        "    checks:\n"
        f"{listed}"
    )
    return path


@pytest.fixture(params=["parquet", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    yield from open_target(request.param, tmp_path, "orders")


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, dict[str, Any], str]:
    """``conduit run ... --json`` in-process (the real CLI code); returns exit code, result, stderr."""
    capsys.readouterr()
    code = invoke([*map(str, args)])
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip().startswith("{") else {}, out.err


def _dlq(tmp: Path, entity: str = "orders") -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for part in sorted((tmp / ".conduit" / "dlq").glob(f"*/{entity}/*.jsonl")):
        records.extend(json.loads(line) for line in part.read_text().splitlines() if line.strip())
    return records


ALL_IDS = [1, 2, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("action", ["fail", "warn", "dlq"])
def test_each_check_and_action(
    case: Case, action: str, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path)
    check = case.check[:-1] + f", action: {action}}}"
    flow = _flow(tmp_path, target.yaml, [check])
    code, result, err = _run(capsys, "run", flow, "--json")
    assert "Traceback" not in err
    entity = result["entities"][0]
    checks = entity["checks"][0]
    assert checks["action"] == action
    assert entity["rows_read"] == entity["rows_loaded"] + entity["rows_rejected"]
    if action == "fail":
        assert code == 1
        assert entity["status"] == "failed"
        assert f"row {case.failing_rows[0]}" in entity["error"] and "check " in entity["error"]
        assert target.ids() == []  # nothing half-written
        assert _dlq(tmp_path) == []
        return
    assert code == 0, err
    assert checks["rows_failed"] == len(case.failing_ids)
    assert checks["rows_evaluated"] == len(ROWS)
    if action == "warn":
        assert target.ids() == ALL_IDS
        assert entity["rows_rejected"] == 0
        assert len(checks["examples"]) == len(case.failing_ids)
        assert any(f"check {checks['check']}" in w for w in entity["warnings"])
        assert _dlq(tmp_path) == []
        return
    expected = list(ALL_IDS)
    for failing in case.failing_ids:
        expected.remove(failing)  # for unique, only the second 2 goes
    assert target.ids() == expected
    assert entity["rows_rejected"] == len(case.failing_ids)
    records = _dlq(tmp_path)
    assert [r["row"] for r in records] == list(case.failing_rows)
    assert {r["reason"] for r in records} == {"check_failed"}
    assert all(r["rule"] == checks["check"] and r["file"].endswith("orders.csv") for r in records)
    assert [int(r["values"]["id"]) for r in records] == list(case.failing_ids)
    assert entity["rejections"] == {f"{checks['check']}:check_failed": len(case.failing_ids)}


def test_checks_in_order_each_over_the_rows_still_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path)
    checks = [c.check[:-1] + ", action: dlq}" for c in CASES]
    flow = _flow(tmp_path, "{type: parquet, options: {path: out/orders}}", checks)
    code, result, err = _run(capsys, "run", flow, "--json")
    assert code == 0, err
    entity = result["entities"][0]
    # regex takes 8 and 9, so length (after it) sees 9 no more.
    assert [c["rows_failed"] for c in entity["checks"]] == [1, 1, 1, 1, 2, 0, 1]
    assert [c["rows_evaluated"] for c in entity["checks"]] == [12, 11, 10, 9, 8, 6, 6]
    assert entity["rows_loaded"] == 5 and entity["rows_rejected"] == 7
    records = _dlq(tmp_path)
    assert sorted(r["row"] for r in records) == [3, 5, 6, 7, 8, 9, 10]


def test_max_rejected_fails_and_loads_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path)
    checks = [c.check[:-1] + ", action: dlq}" for c in CASES]
    flow = _flow(tmp_path, "{type: parquet, options: {path: out/orders}}", checks, "    max_rejected: 6\n")
    code, result, err = _run(capsys, "run", flow, "--json")
    assert code == 1
    assert "7 rows rejected, more than max_rejected: 6" in result["entities"][0]["error"]
    assert not (tmp_path / "out" / "orders").exists() or not list(
        (tmp_path / "out" / "orders").glob("*.parquet")
    )
    assert _dlq(tmp_path) == []  # the commit was not made, so neither was its dead-letter part
    assert not list((tmp_path / ".conduit" / "dlq").rglob("*.pending"))


def test_max_rejected_ratio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path)
    flow = _flow(
        tmp_path,
        "{type: parquet, options: {path: out/orders}}",
        ["range: {column: amount, min: 0, action: dlq}"],
        "    max_rejected_ratio: 0.05\n",
    )
    code, result, _ = _run(capsys, "run", flow, "--json")
    assert (
        code == 1
        and "1 of 12 rows rejected (8.33%), more than max_rejected_ratio: 0.05"
        in result["entities"][0]["error"]
    )
    flow.write_text(flow.read_text().replace("0.05", "0.1"))
    code, result, err = _run(capsys, "run", flow, "--json")
    assert code == 0, err
    assert result["entities"][0]["rows_rejected"] == 1


def test_secret_columns_are_masked_in_warnings_errors_and_dlq_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path)
    flow = _flow(
        tmp_path,
        "{type: parquet, options: {path: out/orders}}",
        [
            "regex: {column: code, pattern: '^[A-Z]{2}[0-9]$', action: warn}",
            "range: {column: amount, min: 0, action: dlq}",
        ],
        "    secret_columns: [email]\n",
    )
    code, result, err = _run(capsys, "run", flow, "--json")
    assert code == 0, err
    text = json.dumps(result) + err
    assert "h@x.org" not in text and "i@x.org" not in text and "***" in text
    capsys.readouterr()
    assert invoke(["dlq", "show", "orders", "--flow", str(flow)]) == 0
    shown = capsys.readouterr().out
    assert "f@x.org" not in shown and '"email": "***"' in shown and "-5.00" in shown
    flow.write_text(flow.read_text().replace("action: warn", "action: fail"))
    code, result, err = _run(capsys, "run", flow, "--json")
    assert (
        code == 1
        and "h@x.org" not in result["entities"][0]["error"]
        and "***" in result["entities"][0]["error"]
    )


def test_replay_after_fixing_the_config_loads_rows_once(target: Target, tmp_path: Path) -> None:
    _write(tmp_path)
    flow = _flow(tmp_path, target.yaml, ["range: {column: amount, min: 0, max: 100, action: dlq}"])
    done = run_cli("run", flow, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 rows rejected" in done.stderr and "conduit dlq show orders" in done.stderr
    assert 6 not in target.ids() and 10 not in target.ids()
    listed = run_cli("dlq", "list", "--flow", flow, cwd=tmp_path)
    assert "orders: 2 rows from 1 run(s)" in listed.stdout, listed.stderr
    shown = run_cli("dlq", "show", "orders", "--flow", flow, "--json", cwd=tmp_path)
    assert sorted(r["row"] for r in json.loads(shown.stdout)) == [6, 10]
    # Replaying without a fix loads nothing and keeps both rows.
    again = run_cli("dlq", "replay", "orders", "--flow", flow, "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["replayed"] == 0 and json.loads(again.stdout)["still_rejected"] == 2
    # Widen the range: row 10 (999.00) now passes, row 6 (-5.00) still fails.
    flow.write_text(flow.read_text().replace("max: 100", "max: 1000"))
    replay = run_cli("dlq", "replay", "orders", "--flow", flow, "--json", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    outcome = json.loads(replay.stdout)
    assert outcome["replayed"] == 1 and outcome["still_rejected"] == 1
    assert target.ids().count(10) == 1
    left = json.loads(run_cli("dlq", "show", "orders", "--flow", flow, "--json", cwd=tmp_path).stdout)
    assert [r["row"] for r in left] == [6]
    # A second replay finds nothing new to load: row 10 is loaded exactly once.
    second = run_cli("dlq", "replay", "orders", "--flow", flow, "--json", cwd=tmp_path)
    assert json.loads(second.stdout)["replayed"] == 0
    assert target.ids().count(10) == 1
    runs = json.loads(run_cli("runs", "--json", "--project", tmp_path, cwd=tmp_path).stdout)
    assert len(runs) == 4 and all(r["status"] == "success" for r in runs)
    purge = run_cli("dlq", "purge", "orders", "--flow", flow, "--yes", cwd=tmp_path)
    assert purge.returncode == 0 and "1 rejected rows purged" in purge.stdout
    assert json.loads(run_cli("dlq", "show", "orders", "--flow", flow, "--json", cwd=tmp_path).stdout) == []


def test_purge_asks_for_confirmation(tmp_path: Path) -> None:
    _write(tmp_path)
    flow = _flow(
        tmp_path,
        "{type: parquet, options: {path: out/orders}}",
        ["range: {column: amount, min: 0, action: dlq}"],
    )
    assert run_cli("run", flow, cwd=tmp_path).returncode == 0
    refused = run_cli("dlq", "purge", "orders", "--flow", flow, cwd=tmp_path)
    assert refused.returncode == 1 and "needs confirmation" in refused.stderr
    assert len(_dlq(tmp_path)) == 1


def _kill_after_commit(tmp_path: Path, flow: Path, marker: str) -> None:
    """Run with a hook that SIGKILLs the process right after the destination committed and before
    the dead-letter part is renamed in (the worst instant)."""
    code = (
        "import os, signal, sys\n"
        "import conduit.rejects as r\n"
        "original = r.Rejections.committed\n"
        "def committed(self, seq):\n"
        f"    open({marker!r}, 'w').close()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "r.Rejections.committed = committed\n"
        "from conduit.cli import main\n"
        f"sys.argv = ['conduit', 'run', {str(flow)!r}]\n"
        "main()\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert os.path.exists(marker)


def test_a_crash_between_commit_and_rename_neither_loses_nor_duplicates_rejects(
    target: Target, tmp_path: Path
) -> None:
    _write(tmp_path)
    flow = _flow(tmp_path, target.yaml, ["range: {column: amount, min: 0, max: 100, action: dlq}"])
    _kill_after_commit(tmp_path, flow, str(tmp_path / "killed"))
    pending = list((tmp_path / ".conduit" / "dlq").rglob("*.pending"))
    assert len(pending) == 1 and _dlq(tmp_path) == []
    loaded = target.ids()
    assert loaded == [1, 2, 2, 3, 4, 7, 8, 9, 11, 12]  # the data did commit
    # The next run settles it: the part is kept (its commit landed), nothing is loaded twice.
    (tmp_path / "orders.csv").write_text(HEADER)  # no new rows this time
    done = run_cli("run", flow, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "kept" in done.stderr
    assert sorted(r["row"] for r in _dlq(tmp_path)) == [6, 10]
    assert not list((tmp_path / ".conduit" / "dlq").rglob("*.pending"))
    assert target.ids() == loaded


def test_a_crash_before_commit_leaves_no_rejects(tmp_path: Path) -> None:
    _write(tmp_path, ROWS * 2000)
    flow = _flow(
        tmp_path,
        "{type: parquet, options: {path: out/orders}}",
        ["range: {column: amount, min: 0, max: 100, action: dlq}"],
        "    batch_size: 100\n",
    )
    env = cli_env()
    env["CONDUIT_SLOW_EXIT"] = ""
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER.format(flow=str(flow))],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
    )
    marker = tmp_path / ".conduit" / "dlq" / tmp_path.name / "orders"  # <flow> is the directory's name
    deadline = time.time() + 60
    while time.time() < deadline and not list(marker.glob("*.pending")):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(marker.glob("*.pending"))  # killed mid-session, with rows in a pending part
    done = run_cli("run", flow, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "removed" in done.stderr
    records = _dlq(tmp_path)
    assert len(records) == 2 * 2000 and len({r["id"] for r in records}) == len(records)


_SLOW_WRITER = """
import time, sys
import conduit.builtins.parquet as p
from conduit.cli import main
original = p.ParquetDestination.open
def slow_open(self, request):
    session = original(self, request)
    write = session.write
    def slow(batch):
        time.sleep(0.05)
        write(batch)
    session.write = slow
    return session
p.ParquetDestination.open = slow_open
sys.argv = ['conduit', 'run', {flow!r}]
main()
"""


def test_kill_and_resume_keeps_rejected_rows_exactly_once(tmp_path: Path) -> None:
    """on_error: dlq with checkpoints: SIGKILL mid-run, then --resume. Every good row is loaded once
    and every bad row is in the queue once (rows rejected before the checkpoint are not queued again)."""
    lines = ["id,amount"]
    bad = set()
    for i in range(1, 20_001):
        if i % 97 == 0:
            lines.append(f"{i},oops")
            bad.add(i)
        else:
            lines.append(f"{i},{i}.25")
    (tmp_path / "orders.csv").write_text("\n".join(lines) + "\n")
    flow = tmp_path / "ingest.yml"
    flow.write_text(
        "version: 1\nentities:\n  orders:\n"
        '    source: {type: csv, options: {path: orders.csv, columns: {id: int64, amount: "decimal(10,2)"}}}\n'
        "    destination: {type: parquet, options: {path: out/orders}}\n"
        "    mode: append\n    on_error: dlq\n    batch_size: 500\n    commit_every: 2000\n"
    )
    env = cli_env()
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER.format(flow=str(flow))],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
    )
    state = tmp_path / "out" / "orders" / "_conduit" / tmp_path.name / "orders.json"
    deadline = time.time() + 60
    while time.time() < deadline and not (state.exists() and '"in_progress": {' in state.read_text()):
        time.sleep(0.01)
    time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert '"in_progress": {' in state.read_text()  # killed after a checkpoint, before the end
    done = run_cli("run", flow, "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    parts = [str(p) for p in (tmp_path / "out" / "orders").glob("*.parquet")]
    ids = pq.read_table(parts).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 20_000 - len(bad)
    assert not set(ids) & bad
    records = _dlq(tmp_path)
    assert sorted(int(r["values"]["id"]) for r in records) == sorted(bad)
    assert all(r["reason"] == "not_a_number" and r["row"] == int(r["values"]["id"]) for r in records)
