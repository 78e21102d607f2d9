"""Benchmark: the cost of checkpoints. CSV -> PostgreSQL with ``commit_every`` at its default
(250,000 rows: 4 commits for 1M rows, each the data plus the ``_conduit_state`` row in one
transaction) against the same load with checkpoints effectively off (one commit at the end).

    python bench/checkpoints.py --rows 1000000 --pairs 5

Same CSV and table as bench/postgres.py; the table is truncated before every run (outside the
timing) and the row count checked after it. Pairs alternate which side goes first.
"""

from __future__ import annotations

import argparse
import sys

from csv_to_parquet import REPO_ROOT, BenchmarkFailure, Side, ensure_csv, rows_label
from postgres import COLUMNS, DSN, TABLE, count_checker, create_table, pairs, psql, report, truncate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    label = rows_label(args.rows)
    data, out = REPO_ROOT / "bench" / "data", REPO_ROOT / "bench" / "out"
    data.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = data / f"orders_{label}.csv"
    ensure_csv(args.rows, csv_path, sys.stdout)
    declared = ", ".join(f'{name}: "{arrow}"' for name, (_, arrow) in COLUMNS.items())
    flows = {}
    for name, extra in (("default", ""), ("off", "    commit_every: 1000000000\n")):
        flow = out / f"checkpoints_{name}_{label}.yml"
        flow.write_text(
            "version: 1\nentities:\n  orders:\n"
            f"    source: {{type: csv, options: {{path: {str(csv_path)!r}, columns: {{{declared}}}}}}}\n"
            f"    destination: {{type: postgres, options: {{dsn: {DSN!r}, table: {TABLE}}}}}\n"
            f"    mode: append\n{extra}"
        )
        flows[name] = flow
    create_table()

    python = sys.executable
    nothing = out / "checkpoints-nothing"
    sides = [
        Side("commit_every=default", [python, "-m", "conduit", "run", str(flows["default"]), "-q"], nothing),
        Side("checkpoints off", [python, "-m", "conduit", "run", str(flows["off"]), "-q"], nothing),
    ]
    print(f"CSV -> PostgreSQL, checkpoints on vs off, {args.pairs} pairs:")
    runs = pairs(sides, args.pairs, before=truncate, after=count_checker(args.rows))
    report("Checkpoint overhead", runs, "commit_every=default", "checkpoints off", args.rows)
    psql(f"DROP TABLE {TABLE}; DELETE FROM _conduit_state WHERE entity = 'orders'")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailure as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
