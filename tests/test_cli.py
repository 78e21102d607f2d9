"""The CLI's contract: exit codes, one-message errors, JSON output, progress on a TTY and off it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import run_cli

FLOW = """\
version: 1
entities:
  numbers:
    source: {type: jsonl, options: {path: in.jsonl}}
    destination: {type: parquet, options: {path: out/numbers.parquet}}
"""


def _project(tmp_path: Path, flow: str = FLOW) -> Path:
    (tmp_path / "in.jsonl").write_text("".join(f'{{"n": {i}}}\n' for i in range(100)))
    (tmp_path / "ingest.yml").write_text(flow)
    return tmp_path / "ingest.yml"


def test_success_prints_summary_and_progress_lines(tmp_path: Path) -> None:
    result = run_cli("run", _project(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "numbers" in result.stdout and "100" in result.stdout and "success" in result.stdout
    # not a TTY: plain lines, no carriage returns or escape codes
    assert result.stderr.splitlines()[0] == "[numbers] started: jsonl -> parquet (mode replace)"
    assert "\r" not in result.stderr and "\x1b" not in result.stderr


def test_json_output(tmp_path: Path) -> None:
    result = run_cli("run", _project(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == "success"
    assert payload["entities"][0]["rows_read"] == payload["entities"][0]["rows_loaded"] == 100


def test_quiet_prints_nothing_on_success(tmp_path: Path) -> None:
    result = run_cli("run", _project(tmp_path), "-q")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


def test_config_error_exits_2_with_every_problem(tmp_path: Path) -> None:
    flow = FLOW.replace("source: {type: jsonl", "sorce: {type: jsonl").replace(
        "type: parquet", "type: parquett"
    )
    result = run_cli("run", _project(tmp_path, flow))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: 3 problems:\n")
    assert (
        "ingest.yml:4:5: entities.numbers.sorce: unknown key 'sorce' (did you mean 'source'?)"
        in result.stderr
    )
    assert "entities.numbers.source: missing required key 'source'" in result.stderr
    assert "unknown destination type 'parquett'" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli("run").returncode == 2
    assert run_cli("frobnicate").returncode == 2
    missing = run_cli("run", tmp_path / "nope.yml")
    assert missing.returncode == 2 and "nope.yml: no such file or directory" in missing.stderr


def test_unknown_entity_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("run", _project(tmp_path), "--entity", "nope")
    assert result.returncode == 2
    assert "no entity named 'nope'; the flows have: numbers" in result.stderr


def test_live_progress_on_a_tty(tmp_path: Path) -> None:
    flow = _project(
        tmp_path, FLOW.replace("out/numbers.parquet}}", "out/numbers.parquet}}\n    batch_size: 1")
    )
    (tmp_path / "in.jsonl").write_text("".join(f'{{"n": {i}}}\n' for i in range(20_000)))
    primary, secondary = os.openpty()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
        process = subprocess.run(
            [sys.executable, "-m", "conduit", "run", str(flow)],
            stderr=secondary,
            stdout=subprocess.PIPE,
            env=env,
            timeout=300,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
    terminal = b"".join(chunks).decode()
    assert process.returncode == 0
    assert "\r\x1b[K[numbers] done: 20,000 rows" in terminal
    assert "rows/s" in terminal
