"""Benchmark: CSV to Parquet with Conduit against a bare pyarrow script.

    python bench/csv_to_parquet.py --rows 1000000 --pairs 5
    python bench/csv_to_parquet.py --rows 5000000 --pairs 1 --json > result.json

Generates bench/data/orders_<rows>.csv if it is missing (bench/generate.py), writes a Conduit flow
for it to bench/out/, then runs both sides as separate processes:

    conduit: python -m conduit run bench/out/csv_to_parquet_<rows>.yml --quiet
    bare:    python bench/bare_pyarrow.py bench/data/orders_<rows>.csv bench/out/bare_orders_<rows>.parquet

Each side runs once untimed (warm-up: page cache, .pyc files), then ``--pairs`` timed pairs
alternate which side goes first (conduit/bare, bare/conduit, ...). Every run is timed by wall clock
from spawn to exit and its peak RSS comes from ``os.wait4`` on the child. Each output is deleted
before a run and its row count checked after it (outside the timing), so a run that writes nothing
or skips work cannot pass. At the end the row counts and the Parquet column types of both outputs are
printed side by side. Any failed run or row-count mismatch exits non-zero.

``--conduit-cmd`` replaces the Conduit command with a template (e.g. to test this harness with the
bare script standing in); ``--json`` prints a machine-readable summary on stdout and sends the
human-readable report to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.parquet as pq

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
OUT_DIR = BENCH_DIR / "out"
GENERATOR = BENCH_DIR / "generate.py"
BARE_SCRIPT = BENCH_DIR / "bare_pyarrow.py"

CONDUIT = "conduit"
BARE = "bare"
SIDES: tuple[str, str] = (CONDUIT, BARE)
TEMPLATE_FIELDS = ("python", "config", "csv", "out")

FLOW_TEMPLATE = """\
version: 1
sources:
  orders_csv:
    type: csv
    options:
      path: {csv}
destinations:
  lake:
    type: parquet
    options:
      path: {out}
entities:
  orders:
    source: orders_csv
    destination: lake
"""


class BenchmarkFailure(Exception):
    """A run failed or produced wrong output; the message says which and why."""


@dataclass(frozen=True)
class Side:
    name: str
    command: list[str]
    output: Path


@dataclass(frozen=True)
class Run:
    side: str
    wall_s: float
    peak_rss_kib: int

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024


@dataclass(frozen=True)
class ParquetOutput:
    path: Path
    files: list[Path]
    rows: int
    size_bytes: int
    schema: pa.Schema
    null_counts: dict[str, int | None]
    """Per column path, from the Parquet column statistics; ``None`` where a writer left them out."""


def rows_label(rows: int) -> str:
    """1_000_000 -> "1m", 250_000 -> "250k", 1234 -> "1234"."""
    if rows >= 1_000_000 and rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}m"
    if rows >= 1_000 and rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def ensure_bytecode(log: TextIO) -> None:
    """Byte-compile the packages under test, as ``pip install`` of a wheel does.

    They are installed editable here, and with ``PYTHONDONTWRITEBYTECODE`` set (as on this machine
    and in tox) a source newer than its ``.pyc`` is compiled again by every run: ~0.1 s of each
    measured Conduit run that a user's installed copy never pays."""
    import importlib.util

    roots = []
    for name in ("conduit", "conduit_csv", "conduit_postgres"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            roots.extend(spec.submodule_search_locations)
    if roots:
        subprocess.run([sys.executable, "-m", "compileall", "-q", *roots], check=False, capture_output=True)
        print(f"byte-compiled {', '.join(roots)}", file=log)


def ensure_csv(rows: int, path: Path, log: TextIO) -> None:
    """The benchmark CSV (generated if missing); also byte-compiles the code under test first."""
    ensure_bytecode(log)
    if path.exists():
        print(f"using existing {path}", file=log)
        return
    print(f"generating {rows:,} rows into {path} ...", file=log)
    command = [sys.executable, str(GENERATOR), "--rows", str(rows), "--out", str(path)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchmarkFailure(
            f"generator failed with exit code {done.returncode}: {shlex.join(command)}\n{done.stderr}"
        )
    print(done.stdout.strip(), file=log)


def count_csv_rows(path: Path) -> int:
    """Data rows in a CSV without line breaks inside fields (true of the generated files)."""
    newlines = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(16 * 2**20):
            newlines += block.count(b"\n")
            last = block[-1:]
    lines = newlines + (0 if last == b"\n" else 1)
    return max(lines - 1, 0)


def write_flow(config: Path, csv_path: Path, out_path: Path) -> None:
    # JSON strings are valid YAML double-quoted scalars, so any path is quoted safely.
    config.write_text(
        FLOW_TEMPLATE.format(csv=json.dumps(str(csv_path)), out=json.dumps(str(out_path))),
        encoding="utf-8",
    )


def conduit_command(template: str | None, config: Path, csv_path: Path, out_path: Path) -> list[str]:
    if template is None:
        return [sys.executable, "-m", "conduit", "run", str(config), "--quiet"]
    values = {"python": sys.executable, "config": str(config), "csv": str(csv_path), "out": str(out_path)}
    try:
        return [token.format(**values) for token in shlex.split(template)]
    except (KeyError, IndexError, ValueError) as exc:
        raise BenchmarkFailure(
            f"bad --conduit-cmd template {template!r} ({exc}); placeholders: "
            + ", ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
        ) from None


def remove_output(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _tail(data: bytes, limit: int = 8000) -> str:
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= limit else "...\n" + text[-limit:]


def run_measured(side: Side) -> Run:
    """Run one side as a child process; wall time from spawn to exit, peak RSS via ``os.wait4``."""
    remove_output(side.output)
    # Files, not pipes: a child that writes more than a pipe buffer must not block while we wait.
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            side.command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
        )
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # e.g. Ctrl-C: do not leave the child running
            process.kill()
            process.wait()
            raise
        wall_s = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stdout.seek(0)
            stderr.seek(0)
            raise BenchmarkFailure(
                f"{side.name} failed with exit code {process.returncode}: {shlex.join(side.command)}\n"
                f"--- stderr ---\n{_tail(stderr.read())}\n--- stdout ---\n{_tail(stdout.read())}"
            )
    # On Linux ru_maxrss is in KiB.
    return Run(side=side.name, wall_s=wall_s, peak_rss_kib=usage.ru_maxrss)


def parquet_files(path: Path) -> list[Path]:
    """The Parquet file at ``path``, or the ``*.parquet`` parts under it when it is a directory."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if p.is_file())
    return [path] if path.is_file() else []


def inspect_output(side: Side) -> ParquetOutput:
    files = parquet_files(side.output)
    if not files:
        raise BenchmarkFailure(f"{side.name} exited 0 but wrote no Parquet at {side.output}")
    try:
        metadata = [pq.read_metadata(f) for f in files]
        schema = pq.read_schema(files[0])
    except (OSError, pa.ArrowException) as exc:
        raise BenchmarkFailure(f"{side.name} output {side.output} is not readable Parquet: {exc}") from None
    return ParquetOutput(
        path=side.output,
        files=files,
        rows=sum(m.num_rows for m in metadata),
        size_bytes=sum(f.stat().st_size for f in files),
        schema=schema,
        null_counts=null_counts(metadata),
    )


def null_counts(metadata: Sequence[pq.FileMetaData]) -> dict[str, int | None]:
    """Nulls per column path summed over all row groups, read from statistics (no data is read)."""
    counts: dict[str, int | None] = {}
    for file_metadata in metadata:
        for group_index in range(file_metadata.num_row_groups):
            group = file_metadata.row_group(group_index)
            for column_index in range(group.num_columns):
                chunk = group.column(column_index)
                stats = chunk.statistics
                so_far = counts.get(chunk.path_in_schema, 0)
                if so_far is None or stats is None or not stats.has_null_count:
                    counts[chunk.path_in_schema] = None
                else:
                    counts[chunk.path_in_schema] = so_far + stats.null_count
    return counts


def check_rows(side: Side, expected: int) -> ParquetOutput:
    output = inspect_output(side)
    if output.rows != expected:
        raise BenchmarkFailure(
            f"{side.name} wrote {output.rows:,} rows to {side.output}; the CSV has {expected:,}"
        )
    return output


def run_and_check(side: Side, expected_rows: int, log: TextIO, label: str) -> Run:
    run = run_measured(side)
    check_rows(side, expected_rows)
    print(f"  {label:<10} {side.name:<8} {run.wall_s:8.2f} s {run.peak_rss_mib:9.1f} MiB", file=log)
    return run


def run_pairs(sides: dict[str, Side], pairs: int, expected_rows: int, log: TextIO) -> list[Run]:
    print("warm-up (untimed)", file=log)
    for name in SIDES:
        run_and_check(sides[name], expected_rows, log, "warm-up")
    runs: list[Run] = []
    print(f"timed: {pairs} pair(s), order alternating within pairs", file=log)
    for index in range(pairs):
        order = SIDES if index % 2 == 0 else SIDES[::-1]
        for name in order:
            runs.append(run_and_check(sides[name], expected_rows, log, f"pair {index + 1}"))
    return runs


def side_stats(runs: Sequence[Run], rows: int) -> dict[str, Any]:
    walls = [r.wall_s for r in runs]
    rss = [r.peak_rss_mib for r in runs]
    median_wall = statistics.median(walls)
    return {
        "wall_s": [round(w, 4) for w in walls],
        "peak_rss_mib": [round(m, 1) for m in rss],
        "median_wall_s": round(median_wall, 4),
        "min_wall_s": round(min(walls), 4),
        "max_peak_rss_mib": round(max(rss), 1),
        "rows_per_s": round(rows / median_wall),
    }


def schema_types(schema: pa.Schema) -> dict[str, str]:
    return {field.name: str(field.type) for field in schema}


def print_report(summary: dict[str, Any], outputs: dict[str, ParquetOutput], log: TextIO) -> None:
    stats = summary["sides"]
    print(file=log)
    print(
        f"CSV -> Parquet: {summary['rows']:,} rows, {summary['csv_bytes'] / 2**20:.1f} MiB CSV, "
        f"{summary['pairs']} timed pair(s), {summary['cpu_count']} CPU(s), pyarrow {summary['pyarrow']}",
        file=log,
    )
    if summary["conduit_command_overridden"]:
        print("NOTE: the conduit side is a stand-in (--conduit-cmd), not Conduit", file=log)
    header = f"{'side':<10}{'median s':>10}{'min s':>10}{'peak RSS MiB':>14}{'rows/s (median)':>17}"
    print(header, file=log)
    print("-" * len(header), file=log)
    for name in SIDES:
        s = stats[name]
        print(
            f"{name:<10}{s['median_wall_s']:>10.2f}{s['min_wall_s']:>10.2f}"
            f"{s['max_peak_rss_mib']:>14.1f}{s['rows_per_s']:>17,}",
            file=log,
        )
    ratio = summary["ratio_conduit_over_bare"]
    print(
        f"conduit/bare: {ratio['median_wall']:.2f}x median wall time, {ratio['max_peak_rss']:.2f}x peak RSS",
        file=log,
    )

    print(file=log)
    for name in SIDES:
        out = outputs[name]
        where = f"{len(out.files)} files under {out.path}" if len(out.files) > 1 else str(out.path)
        print(f"{name:<8} {out.rows:,} rows, {out.size_bytes / 2**20:.1f} MiB: {where}", file=log)
    conduit, bare = outputs[CONDUIT], outputs[BARE]
    conduit_types, bare_types = schema_types(conduit.schema), schema_types(bare.schema)
    names = list(conduit_types) + [n for n in bare_types if n not in conduit_types]
    width = max([len("column"), *map(len, names)]) + 2
    type_width = max([len("(missing)"), *map(len, [*conduit_types.values(), *bare_types.values()])]) + 2
    print(file=log)
    print("column types and null counts (nulls from Parquet statistics)", file=log)
    print(
        f"{'column':<{width}}{CONDUIT + ' type':<{type_width}}{'nulls':>10}  "
        f"{BARE + ' type':<{type_width}}{'nulls':>10}",
        file=log,
    )
    for column in names:
        left = conduit_types.get(column, "(missing)")
        right = bare_types.get(column, "(missing)")
        left_nulls = _nulls_text(conduit, column)
        right_nulls = _nulls_text(bare, column)
        differs = left != right or left_nulls != right_nulls
        print(
            f"{column:<{width}}{left:<{type_width}}{left_nulls:>10}  {right:<{type_width}}{right_nulls:>10}"
            + ("   <- differs" if differs else ""),
            file=log,
        )


def _nulls_text(output: ParquetOutput, column: str) -> str:
    if column not in output.schema.names:
        return "-"
    count = output.null_counts.get(column)
    return "?" if count is None else f"{count:,}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark CSV -> Parquet: `conduit run` against a bare pyarrow script."
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows in the generated CSV (default 1000000)"
    )
    parser.add_argument("--pairs", type=int, default=5, help="timed conduit/bare pairs (default 5)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON summary on stdout (the human-readable report goes to stderr)",
    )
    parser.add_argument(
        "--conduit-cmd",
        metavar="TEMPLATE",
        help="run this instead of `python -m conduit run CONFIG --quiet`; placeholders "
        "{python} {config} {csv} {out}, e.g. '{python} bench/bare_pyarrow.py {csv} {out}'",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    return args


def benchmark(args: argparse.Namespace, log: TextIO) -> dict[str, Any]:
    label = rows_label(args.rows)
    csv_path = DATA_DIR / f"orders_{label}.csv"
    config = OUT_DIR / f"csv_to_parquet_{label}.yml"
    conduit_out = OUT_DIR / f"conduit_orders_{label}.parquet"
    bare_out = OUT_DIR / f"bare_orders_{label}.parquet"
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    ensure_csv(args.rows, csv_path, log)
    csv_rows = count_csv_rows(csv_path)
    if csv_rows != args.rows:
        raise BenchmarkFailure(
            f"{csv_path} has {csv_rows:,} data rows, expected {args.rows:,}; delete it to regenerate"
        )
    write_flow(config, csv_path, conduit_out)
    print(f"flow: {config}", file=log)

    sides = {
        CONDUIT: Side(CONDUIT, conduit_command(args.conduit_cmd, config, csv_path, conduit_out), conduit_out),
        BARE: Side(BARE, [sys.executable, str(BARE_SCRIPT), str(csv_path), str(bare_out)], bare_out),
    }
    for side in sides.values():
        print(f"{side.name}: {shlex.join(side.command)}", file=log)

    runs = run_pairs(sides, args.pairs, csv_rows, log)
    outputs = {name: check_rows(side, csv_rows) for name, side in sides.items()}

    stats = {name: side_stats([r for r in runs if r.side == name], csv_rows) for name in SIDES}
    conduit_types = schema_types(outputs[CONDUIT].schema)
    bare_types = schema_types(outputs[BARE].schema)
    summary: dict[str, Any] = {
        "benchmark": "csv_to_parquet",
        "rows": csv_rows,
        "csv_path": str(csv_path),
        "csv_bytes": csv_path.stat().st_size,
        "pairs": args.pairs,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "conduit_command_overridden": args.conduit_cmd is not None,
        "commands": {name: side.command for name, side in sides.items()},
        "sides": stats,
        "ratio_conduit_over_bare": {
            "median_wall": round(stats[CONDUIT]["median_wall_s"] / stats[BARE]["median_wall_s"], 3),
            "max_peak_rss": round(stats[CONDUIT]["max_peak_rss_mib"] / stats[BARE]["max_peak_rss_mib"], 3),
        },
        "outputs": {
            name: {
                "path": str(out.path),
                "files": len(out.files),
                "rows": out.rows,
                "bytes": out.size_bytes,
                "column_types": schema_types(out.schema),
                "null_counts": {name: out.null_counts.get(name) for name in out.schema.names},
            }
            for name, out in outputs.items()
        },
        "column_types_match": conduit_types == bare_types,
    }
    print_report(summary, outputs, log)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = sys.stderr if args.json else sys.stdout
    try:
        summary = benchmark(args, log)
    except BenchmarkFailure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
