"""Benchmark: the cost of quality checks and of the dead-letter queue, CSV -> Parquet.

    python bench/checks.py --rows 1000000 --pairs 5

Four sides on the same generated orders CSV (bench/generate.py), each a separate process:

    no checks:   conduit run, no checks
    5 checks:    not_null(order_id), unique(order_id), regex(email), range(quantity), enum(status),
                 all with action: dlq, and no row failing any of them
    5% to DLQ:   the same checks, with the enum leaving out "cancelled" (about 5% of rows): those rows
                 go to the dead-letter queue (JSON Lines, with their values) instead of the Parquet
    bare:        bench/bare_pyarrow.py, the raw tool, for scale

Column types are declared (as in bench/postgres.py), so the sides differ only by the checks.

Pairs rotate the order of the sides. Wall time is spawn to exit; peak RSS from ``os.wait4``. After
every run the output's row count is checked (and the queue's, for the 5% side), outside the timing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

import pyarrow.parquet as pq
from csv_to_parquet import (
    BARE_SCRIPT,
    REPO_ROOT,
    BenchmarkFailure,
    Run,
    Side,
    count_csv_rows,
    ensure_csv,
    rows_label,
    run_measured,
)
from postgres import COLUMNS

DECLARED = ", ".join(f'{name}: "{arrow}"' for name, (_, arrow) in COLUMNS.items())
STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled", "refunded"]


def checks(failing: bool) -> str:
    allowed = [s for s in STATUSES if not (failing and s == "cancelled")]
    return (
        "    checks:\n"
        "      - not_null: {columns: [order_id], action: dlq}\n"
        "      - unique: {columns: [order_id], action: dlq}\n"
        "      - regex: {column: email, pattern: '^[^@ ]+@[^@ ]+$', action: dlq}\n"
        "      - range: {column: quantity, min: 1, max: 1000, action: dlq}\n"
        f"      - enum: {{column: status, values: [{', '.join(allowed)}], action: dlq}}\n"
    )


def write_flow(path: Path, csv_path: Path, out: Path, extra: str) -> None:
    path.write_text(
        "version: 1\nentities:\n  orders:\n"
        f"    source: {{type: csv, options: {{path: {str(csv_path)!r}, columns: {{{DECLARED}}}}}}}\n"
        f"    destination: {{type: parquet, options: {{path: {str(out)!r}}}}}\n"
        f"{extra}"
    )


def parquet_rows(path: Path) -> int:
    files = [path] if path.is_file() else sorted(path.glob("*.parquet"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def dlq_rows(state: Path) -> int:
    return sum(sum(1 for _ in p.open()) for p in state.rglob("*.jsonl"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    label = rows_label(args.rows)
    data, out = REPO_ROOT / "bench" / "data", REPO_ROOT / "bench" / "out" / "checks"
    data.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = data / f"orders_{label}.csv"
    ensure_csv(args.rows, csv_path, sys.stdout)
    rows = count_csv_rows(csv_path)
    python = sys.executable
    sides: list[Side] = []
    for name, extra in (("no checks", ""), ("5 checks", checks(False)), ("5% to DLQ", checks(True))):
        slug = name.replace(" ", "_").replace("%", "pct")
        flow = out / f"{slug}_{label}.yml"
        target = out / f"{slug}_{label}"
        write_flow(flow, csv_path, target, extra)
        sides.append(Side(name, [python, "-m", "conduit", "run", str(flow), "-q"], target))
    bare_out = out / f"bare_{label}.parquet"
    sides.append(Side("bare pyarrow", [python, str(BARE_SCRIPT), str(csv_path), str(bare_out)], bare_out))

    state = out / ".conduit"
    results: list[Run] = []
    rejected: list[int] = []
    print(f"CSV -> Parquet, {rows:,} rows, checks off / on / 5% failing, {args.pairs} pairs (+1 warm-up):")
    for index in range(args.pairs + 1):
        shift = index % len(sides)
        for side in sides[shift:] + sides[:shift]:
            shutil.rmtree(state, ignore_errors=True)
            run = run_measured(side)
            loaded = parquet_rows(side.output)
            queued = dlq_rows(state) if state.exists() else 0
            if loaded + queued != rows:
                raise BenchmarkFailure(
                    f"{side.name}: {loaded:,} loaded + {queued:,} in the DLQ != {rows:,} rows"
                )
            if side.name == "5% to DLQ":
                rejected.append(queued)
            elif queued:
                raise BenchmarkFailure(f"{side.name}: {queued:,} rows went to the DLQ, expected none")
            label_ = "warm-up" if index == 0 else f"pair {index}"
            print(
                f"  {label_:<9} {side.name:<14} {run.wall_s:6.2f} s  {run.peak_rss_mib:7.1f} MiB", flush=True
            )
            if index:
                results.append(run)

    def median(name: str) -> float:
        return statistics.median(r.wall_s for r in results if r.side == name)

    def rss(name: str) -> float:
        return max(r.peak_rss_mib for r in results if r.side == name)

    base = median("no checks")
    summary = {
        "rows": rows,
        "pairs": args.pairs,
        "rejected_rows": rejected[-1] if rejected else 0,
        "sides": {
            s.name: {"median_s": round(median(s.name), 3), "peak_rss_mib": round(rss(s.name), 1)}
            for s in sides
        },
        "overhead_5_checks": round(median("5 checks") / base - 1, 4),
        "overhead_5pct_dlq": round(median("5% to DLQ") / base - 1, 4),
        "no_checks_vs_bare": round(base / median("bare pyarrow"), 3),
    }
    print()
    for s in sides:
        print(f"  {s.name:<14} median {median(s.name):6.2f} s   peak RSS {rss(s.name):7.1f} MiB")
    print(f"\n  5 checks, nothing failing: {summary['overhead_5_checks']:+.1%} vs no checks (target <= +15%)")
    print(
        f"  5 checks, {summary['rejected_rows']:,} rows ({summary['rejected_rows'] / rows:.1%}) to the DLQ: "
        f"{summary['overhead_5pct_dlq']:+.1%} vs no checks (target <= +30%)"
    )
    print(f"  no checks vs bare pyarrow: {summary['no_checks_vs_bare']:.2f}x")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailure as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
