"""Loading and resolving a big project: 500 entities in layout 3 (one file per entity).

    python bench/config_load.py [--entities 500] [--repeat 7]

Prints the median and best in-process time of ``load_project`` (parse, expand, merge, validate every
entity with its connectors' models) and the wall time of ``conduit validate`` as a subprocess, which
includes interpreter start-up, imports and plugin discovery. Targets on this machine kind: resolve
under 300 ms, ``conduit validate`` under 1 s.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROFILE = """\
version: 1
variables: {lake: out/lake}
connections:
  files: {type: csv, params: {encoding: utf-8, delimiter: ","}}
  lake: {type: parquet, params: {compression: zstd}}
"""
FLOW = """\
version: 1
source: files
destination: lake
defaults:
  mode: replace
  source: {options: {path: "data/${entity.name}/*.csv"}}
  destination: {options: {path: "${var.lake}/${entity.name}"}}
"""
ENTITY = """\
source:
  options:
    columns: {{id: int64, amount: "decimal(12,2)", updated_at: timestamptz}}
    null_values: ["", "NULL"]
batch_size: {batch}
checks:
  - not_null: {{columns: [id]}}
"""


def build(root: Path, entities: int) -> Path:
    (root / "profiles").mkdir(parents=True)
    (root / "profiles" / "dev.yml").write_text(PROFILE)
    flow = root / "flows" / "big"
    (flow / "entities").mkdir(parents=True)
    (flow / "flow.yml").write_text(FLOW)
    for index in range(entities):
        (flow / "entities" / f"table_{index:04d}.yml").write_text(ENTITY.format(batch=10_000 + index))
    return flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from conduit.config.flow import load_project
    from conduit.plugins import load_registry

    with tempfile.TemporaryDirectory() as tmp:
        flow = build(Path(tmp), args.entities)
        registry = load_registry()
        timings = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            project = load_project(flow, registry)
            timings.append(time.perf_counter() - started)
        assert len(project.flows[0].entities) == args.entities
        walls = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "conduit", "validate", str(flow)], capture_output=True, text=True
            )
            walls.append(time.perf_counter() - started)
            if done.returncode != 0:
                sys.exit(f"conduit validate failed:\n{done.stderr}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{args.entities} entities, layout 3 (one file each), {args.repeat} runs")
        print(
            f"  load_project (in process): median {statistics.median(timings) * 1000:.0f} ms, best {min(timings) * 1000:.0f} ms (target < 300 ms)"
        )
        print(
            f"  conduit validate (subprocess, start-up included): median {statistics.median(walls) * 1000:.0f} ms, best {min(walls) * 1000:.0f} ms (target < 1000 ms)"
        )
        print(f"  peak RSS of the in-process loader: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
