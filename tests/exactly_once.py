"""Shared pieces of the exactly-once tests: source data, flows, the PostgreSQL scratch schema, and
the checks that a destination holds exactly the source rows."""

from __future__ import annotations

import csv
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

PG_DSN = os.environ.get("CONDUIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def require_postgres() -> Any:
    """A psycopg2 connection to the test server; skip without one (fail with ``CI=true``)."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        connection = psycopg2.connect(PG_DSN, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        message = f"PostgreSQL at CONDUIT_TEST_PG_DSN is not reachable: {str(exc).strip().splitlines()[0]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    connection.autocommit = True
    return connection


@dataclass
class Rows:
    """Source rows written to CSV files: id, name, amount (cents), updated_at."""

    rows: list[tuple[int, str, int, datetime]]

    @property
    def count(self) -> int:
        return len(self.rows)

    def digest(self) -> str:
        text = ",".join(f"{i}|{n}|{a}" for i, n, a, _ in sorted(self.rows))
        return hashlib.md5(text.encode()).hexdigest()

    @property
    def amount(self) -> int:
        return sum(a for _, _, a, _ in self.rows)

    @property
    def max_cursor(self) -> datetime:
        return max(u for *_, u in self.rows)


def make_rows(start: int, count: int, seed: int, ties: int = 1) -> Rows:
    """``count`` rows from id ``start``; every ``ties`` consecutive rows share one updated_at."""
    rng = random.Random(seed)
    rows = []
    for offset in range(count):
        row_id = start + offset
        stamp = EPOCH + timedelta(seconds=(row_id // ties))
        rows.append((row_id, f'name-{rng.randrange(10**6)},"q"', rng.randrange(-(10**6), 10**6), stamp))
    return Rows(rows)


def write_csv(path: Path, rows: Rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "amount", "updated_at"])
        for row_id, name, amount, stamp in rows.rows:
            writer.writerow([row_id, name, amount, stamp.isoformat()])


def flow_text(source_glob: str, destination: dict[str, Any], *, batch: int, commit_every: int) -> str:
    options = ", ".join(f"{k}: {v!r}" for k, v in destination["options"].items())
    return (
        "version: 1\n"
        "entities:\n"
        "  events:\n"
        f"    source: {{type: csv, options: {{path: {source_glob!r}, columns: "
        '{id: int64, name: string, amount: int64, updated_at: "timestamp[us, UTC]"}}}\n'
        f"    destination: {{type: {destination['type']}, options: {{{options}}}}}\n"
        "    mode: append\n"
        f"    batch_size: {batch}\n"
        f"    commit_every: {commit_every}\n"
        "    incremental: {cursor: updated_at}\n"
    )


@dataclass
class Scratch:
    connection: Any
    schema: str

    def query(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall())

    def summary(self, table: str = "events") -> tuple[int, int, int, str]:
        ((count, distinct, amount, digest),) = self.query(
            f"SELECT count(*), count(DISTINCT id), coalesce(sum(amount), 0), "
            f"md5(coalesce(string_agg(id || '|' || name || '|' || amount, ',' ORDER BY id), '')) "
            f'FROM "{self.schema}"."{table}"'
        )
        return int(count), int(distinct), int(amount), str(digest)

    def state(self, entity: str = "events") -> dict[str, Any] | None:
        ((exists,),) = self.query("SELECT to_regclass(%s) IS NOT NULL", (f'"{self.schema}"._conduit_state',))
        if not exists:
            return None
        found = self.query(f'SELECT state FROM "{self.schema}"._conduit_state WHERE entity = %s', (entity,))
        return found[0][0] if found else None


def scratch_schema() -> Iterator[Scratch]:
    connection = require_postgres()
    schema = f"conduit_eo_{uuid.uuid4().hex[:10]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield Scratch(connection, schema)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.close()


def parquet_summary(directory: Path) -> tuple[int, int, int, str]:
    parts = sorted(p for p in directory.glob("*.parquet") if not p.name.startswith((".", "_")))
    if not parts:
        return 0, 0, 0, hashlib.md5(b"").hexdigest()
    table = pq.read_table([str(p) for p in parts]) if len(parts) > 1 else pq.read_table(parts[0])
    ids = table.column("id").to_pylist()
    names = table.column("name").to_pylist()
    amounts = table.column("amount").to_pylist()
    rows = sorted(zip(ids, names, amounts, strict=True))
    text = ",".join(f"{i}|{n}|{a}" for i, n, a in rows)
    return len(ids), len(set(ids)), sum(amounts), hashlib.md5(text.encode()).hexdigest()


def expected_summary(rows: Rows) -> tuple[int, int, int, str]:
    return rows.count, rows.count, rows.amount, rows.digest()


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    env["CONDUIT_SLOW_EXIT"] = ""  # the normal fast exit
    return env


def kill_and_resume(flow: Path, cwd: Path, seed: int, kills: int, window: tuple[float, float]) -> list[str]:
    """Start ``conduit run --resume`` and SIGKILL it at seeded random moments, ``kills`` times, then
    run it to completion. Returns what happened to each attempt (for the failure message)."""
    rng = random.Random(seed)
    log: list[str] = []
    for attempt in range(kills):
        process = subprocess.Popen(
            [sys.executable, "-m", "conduit", "run", str(flow), "--resume", "-q"],
            cwd=cwd,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        delay = rng.uniform(*window)
        try:
            process.wait(timeout=delay)
            out, err = process.communicate()
            log.append(
                f"attempt {attempt}: finished before the kill at {delay:.2f}s (exit {process.returncode})"
            )
            assert process.returncode == 0, err
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.communicate()
            log.append(f"attempt {attempt}: killed at {delay:.2f}s")
        time.sleep(0.05)
    final = subprocess.run(
        [sys.executable, "-m", "conduit", "run", str(flow), "--resume", "-q"],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    log.append(f"final: exit {final.returncode} {final.stderr.strip()}")
    assert final.returncode == 0, "\n".join(log)
    return log
