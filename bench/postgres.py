"""Benchmark: CSV -> PostgreSQL and PostgreSQL -> Parquet with Conduit, against ``psql \\copy``.

    python bench/postgres.py --rows 1000000 --pairs 5
    python bench/postgres.py --rows 5000000 --pairs 1

Both sides load the same generated orders CSV (bench/generate.py) into a table with the same column
types (created here, truncated before every run, outside the timing), and export the same table:

    load, conduit: python -m conduit run bench/out/pg_load_<rows>.yml --quiet   (binary COPY)
    load, psql:    psql DSN -c "\\copy bench_orders FROM 'orders.csv' CSV HEADER"
    export, conduit: python -m conduit run bench/out/pg_export_<rows>.yml --quiet (COPY TO -> Parquet)
    export, psql:    psql DSN -c "\\copy (SELECT * FROM bench_orders) TO 'out.csv' CSV"

Pairs alternate which side goes first (PostgreSQL timings are noisy: use at least 5 pairs). Wall
time is spawn to exit; peak RSS comes from ``os.wait4`` (Conduit's is the number that matters: it
must stay flat as rows grow). After each load the row count is checked. The connection comes from
``CONDUIT_BENCH_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from csv_to_parquet import REPO_ROOT, BenchmarkFailure, Run, Side, ensure_csv, rows_label, run_measured

DSN = os.environ.get("CONDUIT_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
TABLE = "bench_orders"
COLUMNS = {
    "order_id": ("bigint", "int64"),
    "customer_id": ("bigint", "int64"),
    "email": ("text", "string"),
    "country": ("text", "string"),
    "currency": ("text", "string"),
    "sku": ("text", "string"),
    "quantity": ("bigint", "int64"),
    "amount": ("numeric(12,2)", "decimal(12,2)"),
    "discount": ("double precision", "float64"),
    "is_gift": ("boolean", "bool"),
    "status": ("text", "string"),
    "created_at": ("timestamptz", "timestamptz"),
    "ship_date": ("date", "date"),
    "note": ("text", "string"),
    "coupon": ("text", "string"),
}


def psql(sql: str) -> str:
    done = subprocess.run(["psql", DSN, "-v", "ON_ERROR_STOP=1", "-Atc", sql], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchmarkFailure(f"psql failed: {sql}\n{done.stderr}")
    return done.stdout.strip()


def create_table() -> None:
    """The benchmark table, new and empty, and no state left for the flows' entity ``orders`` (an
    interrupted earlier load would make the next run refuse to start without --resume)."""
    columns = ", ".join(f"{name} {pg_type}" for name, (pg_type, _) in COLUMNS.items())
    psql(f"DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} ({columns})")
    psql(
        "DO $$ BEGIN IF to_regclass('public._conduit_state') IS NOT NULL THEN "
        "DELETE FROM public._conduit_state WHERE entity = 'orders'; END IF; END $$"
    )


def truncate() -> None:
    psql(f"TRUNCATE {TABLE}")


def count_checker(rows: int) -> Callable[[], None]:
    """After a load: the table holds exactly ``rows`` rows, else the benchmark fails."""

    def check() -> None:
        count = int(psql(f"SELECT count(*) FROM {TABLE}"))
        if count != rows:
            raise BenchmarkFailure(f"{TABLE} holds {count:,} rows after a load, expected {rows:,}")

    return check


def write_flows(out: Path, csv_path: Path, label: str) -> tuple[Path, Path, Path]:
    declared = ", ".join(f'{name}: "{arrow}"' for name, (_, arrow) in COLUMNS.items())
    load = out / f"pg_load_{label}.yml"
    load.write_text(
        "version: 1\nentities:\n  orders:\n"
        f"    source: {{type: csv, options: {{path: {str(csv_path)!r}, columns: {{{declared}}}}}}}\n"
        f"    destination: {{type: postgres, options: {{dsn: {DSN!r}, table: {TABLE}}}}}\n"
        "    mode: append\n"
    )
    parquet = out / f"pg_export_{label}.parquet"
    export = out / f"pg_export_{label}.yml"
    export.write_text(
        "version: 1\nentities:\n  orders:\n"
        f"    source: {{type: postgres, options: {{dsn: {DSN!r}, table: {TABLE}}}}}\n"
        f"    destination: {{type: parquet, options: {{path: {str(parquet)!r}}}}}\n"
    )
    return load, export, parquet


def pairs(sides: list[Side], count: int, before: object = None, after: object = None) -> list[Run]:
    runs = []
    for index in range(count + 1):  # pair 0 is the untimed warm-up
        order = sides if index % 2 == 0 else list(reversed(sides))
        for side in order:
            if callable(before):
                before()
            run = run_measured(side)
            if callable(after):
                after()
            label = "warm-up" if index == 0 else f"pair {index}"
            print(
                f"  {label:<9}  {side.name:<15} {run.wall_s:6.2f} s  {run.peak_rss_mib:7.1f} MiB", flush=True
            )
            if index:
                runs.append(run)
    return runs


def report(title: str, runs: list[Run], conduit: str, raw: str, rows: int) -> None:
    def stats(name: str) -> tuple[float, float, float]:
        mine = [r for r in runs if r.side == name]
        return (
            statistics.median(r.wall_s for r in mine),
            min(r.wall_s for r in mine),
            max(r.peak_rss_mib for r in mine),
        )

    c_med, c_min, c_rss = stats(conduit)
    r_med, r_min, r_rss = stats(raw)
    print(f"\n{title}: {rows:,} rows")
    print(f"  {conduit:<15} median {c_med:6.2f} s  min {c_min:6.2f} s  peak RSS {c_rss:7.1f} MiB")
    print(f"  {raw:<15} median {r_med:6.2f} s  min {r_min:6.2f} s  peak RSS {r_rss:7.1f} MiB")
    print(f"  ratio conduit/{raw.split()[0]}: {c_med / r_med:.2f}x median, {c_min / r_min:.2f}x best\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    label = rows_label(args.rows)
    data = REPO_ROOT / "bench" / "data"
    out = REPO_ROOT / "bench" / "out"
    data.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = data / f"orders_{label}.csv"
    ensure_csv(args.rows, csv_path, sys.stdout)
    load, export, parquet = write_flows(out, csv_path, label)
    create_table()
    python = sys.executable

    print(f"CSV -> PostgreSQL ({DSN}), {args.pairs} pairs:")
    load_sides = [
        Side("conduit", [python, "-m", "conduit", "run", str(load), "--quiet"], out / "pg-load-nothing"),
        Side(
            "psql \\copy",
            ["psql", DSN, "-c", f"\\copy {TABLE} FROM '{csv_path}' CSV HEADER"],
            out / "pg-load-nothing",
        ),
    ]
    load_runs = pairs(load_sides, args.pairs, before=truncate, after=count_checker(args.rows))
    report("CSV -> PostgreSQL", load_runs, "conduit", "psql \\copy", args.rows)

    print(f"PostgreSQL -> file, {args.pairs} pairs:")
    raw_csv = out / f"pg_export_{label}.csv"
    export_sides = [
        Side("conduit", [python, "-m", "conduit", "run", str(export), "--quiet"], parquet),
        Side(
            "psql \\copy TO",
            ["psql", DSN, "-c", f"\\copy (SELECT * FROM {TABLE}) TO '{raw_csv}' CSV"],
            raw_csv,
        ),
    ]
    export_runs = pairs(export_sides, args.pairs)
    report("PostgreSQL -> Parquet vs CSV", export_runs, "conduit", "psql \\copy TO", args.rows)
    import pyarrow.parquet as pq

    exported = pq.read_metadata(parquet).num_rows
    if exported != args.rows:
        raise BenchmarkFailure(f"the Parquet export holds {exported:,} rows, expected {args.rows:,}")
    psql(f"DROP TABLE {TABLE}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailure as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
