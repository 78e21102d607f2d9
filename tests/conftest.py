"""Helpers for the cross-package tests: the real CLI in a subprocess, and plugin distributions."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    extra_path: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m conduit ARGS`` the way a user runs ``conduit ARGS``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    full_env.update(env or {})
    if extra_path is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), full_env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "conduit", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli


def make_distribution(
    site: Path, name: str, version: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """Lay out an installed distribution (a ``.dist-info`` with entry points, plus its modules) in
    ``site``, exactly as pip leaves one in site-packages; put ``site`` on PYTHONPATH to 'install' it."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[conduit]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
