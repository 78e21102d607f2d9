"""Crash benchmark: a CSV -> PostgreSQL incremental load SIGKILLed at random moments, resumed until
it succeeds, then checked row for row.

    python bench/crash_resume.py --rows 5000000 --kills 10 --seed 7

Generates ``--rows`` events over 5 CSV files (id, name, amount, updated_at; runs of equal updated_at
so commits fall inside ties), loads them with ``conduit run --resume`` (``commit_every`` at its
default) and kills the process with SIGKILL at seeded random moments ``--kills`` times, then resumes
it to completion. Checks: row count, distinct ids, sum(amount), sum(id * amount) against the source,
and the stored watermark against the source's max cursor. Prints each attempt and the total time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from csv_to_parquet import REPO_ROOT, BenchmarkFailure
from postgres import DSN, psql


def generate(rows: int, files: int, seed: int) -> tuple[int, int, int, datetime]:
    directory = REPO_ROOT / "bench" / "data" / f"crash_{rows}_{seed}"
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = np.arange(rows, dtype=np.int64)
    amounts = rng.integers(-1_000_000, 1_000_000, rows, dtype=np.int64)
    epoch = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    stamps = epoch + (ids // 7) * 1_000_000
    per_file = -(-rows // files)
    for index in range(files):
        part = slice(index * per_file, min(rows, (index + 1) * per_file))
        table = pa.table(
            {
                "id": ids[part],
                "name": pa.array([f"n{i}" for i in ids[part]]),
                "amount": amounts[part],
                "updated_at": pa.array(stamps[part], pa.timestamp("us", "UTC")),
            }
        )
        path = directory / f"events-{index}.csv"
        if not path.exists():
            pacsv.write_csv(table, path)
    top = datetime.fromtimestamp(int(stamps.max()) / 1_000_000, UTC)
    return int(amounts.sum()), int((ids * amounts).sum(dtype=object)), rows, top


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    amount, weighted, rows, top = generate(args.rows, 5, args.seed)
    schema = f"crash_{uuid.uuid4().hex[:8]}"
    out = REPO_ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    flow = out / f"crash_{args.rows}.yml"
    data = REPO_ROOT / "bench" / "data" / f"crash_{args.rows}_{args.seed}"
    flow.write_text(
        "version: 1\nentities:\n  events:\n"
        f"    source: {{type: csv, options: {{path: '{data}/*.csv', columns: "
        '{id: int64, name: string, amount: int64, updated_at: "timestamp[us, UTC]"}}}\n'
        f"    destination: {{type: postgres, options: {{dsn: {DSN!r}, schema: {schema}, table: events}}}}\n"
        "    mode: append\n    incremental: {cursor: updated_at}\n"
    )
    command = [sys.executable, "-m", "conduit", "run", str(flow), "--resume", "-q"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    rng = random.Random(args.seed)
    # each attempt gets a short random life (start-up is ~0.5 s), so the kills spread over the load
    started = time.perf_counter()
    for attempt in range(args.kills):
        delay = rng.uniform(0.6, 1.5)
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            process.wait(timeout=delay)
            print(
                f"attempt {attempt + 1}: finished before the kill at {delay:.2f} s (exit {process.returncode})"
            )
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            committed = (
                psql(
                    f"SELECT coalesce((SELECT (state->'in_progress'->>'rows') FROM {schema}._conduit_state), 'done')"
                )
                if psql(f"SELECT to_regclass('{schema}._conduit_state') IS NOT NULL") == "t"
                else "0"
            )
            print(f"attempt {attempt + 1}: killed at {delay:.2f} s ({committed} rows committed so far)")
    final = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if final.returncode != 0:
        raise BenchmarkFailure(f"the final resume failed: {final.stderr}")
    total = time.perf_counter() - started
    got = psql(
        f"SELECT count(*), count(DISTINCT id), sum(amount), sum(id::numeric * amount) FROM {schema}.events"
    ).split("|")
    state = json.loads(psql(f"SELECT state FROM {schema}._conduit_state WHERE entity = 'events'"))
    expected = [str(rows), str(rows), str(amount), str(weighted)]
    watermark = datetime.fromisoformat(state["watermark"])
    print(
        f"\nrows {got[0]} (expected {rows}), distinct ids {got[1]}, sum(amount) {got[2]} (expected {amount}),"
    )
    print(
        f"sum(id*amount) {got[3]} (expected {weighted}), watermark {watermark.isoformat()} (max cursor {top.isoformat()})"
    )
    print(f"{args.kills} kills + final resume: {total:.1f} s wall in all")
    psql(f"DROP SCHEMA {schema} CASCADE")
    if got != expected or watermark != top or state["in_progress"] is not None:
        raise BenchmarkFailure("the destination does not hold exactly the source rows")
    print("exactly once: OK")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailure as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
