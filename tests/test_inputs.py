"""Which inputs a run reads, through the real CLI: every physical file once whatever the symlinks; a
directory that cannot be read, or a symlink that leads nowhere, is an error naming it, never a
successful run that read less (or an entity that quietly vanished from the flow)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
from conftest import REPO, run_cli

FLOW = """\
version: 1
entities:
  orders:
    source: {type: csv, options: {path: PATH}}
    destination: {type: parquet, options: {path: out/orders.parquet}}
"""


def _inputs(tmp_path: Path) -> Path:
    """``in/a.csv`` (2 rows), ``in/2024/b.csv`` (1 row), ``in/2024/q1/c.csv`` (1 row)."""
    (tmp_path / "in" / "2024" / "q1").mkdir(parents=True)
    (tmp_path / "in" / "a.csv").write_text("id,name\n1,a\n2,b\n")
    (tmp_path / "in" / "2024" / "b.csv").write_text("id,name\n3,c\n")
    (tmp_path / "in" / "2024" / "q1" / "c.csv").write_text("id,name\n4,d\n")
    return tmp_path / "in"


def _run(tmp_path: Path, path: str) -> tuple[int, str, list[int]]:
    (tmp_path / "ingest.yml").write_text(FLOW.replace("PATH", path))
    result = run_cli("run", tmp_path / "ingest.yml")
    assert "Traceback" not in result.stderr
    out = tmp_path / "out" / "orders.parquet"
    ids = sorted(pq.read_table(out).column("id").to_pylist()) if result.returncode == 0 else []
    return result.returncode, result.stderr, ids


def test_a_symlink_loop_under_a_recursive_glob_reads_each_file_once(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    (inputs / "2024" / "q1" / "all").symlink_to("../..", target_is_directory=True)
    code, err, ids = _run(tmp_path, "in/**/*.csv")
    assert code == 0, err
    assert ids == [1, 2, 3, 4]  # before: every file read dozens of times through the loop


def test_a_directory_path_follows_a_symlinked_directory_once(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "z.csv").write_text("id,name\n9,z\n")
    (inputs / "archive").symlink_to("../archive", target_is_directory=True)
    (inputs / "2024" / "again").symlink_to("../../archive", target_is_directory=True)
    (inputs / "2024" / "up").symlink_to("..", target_is_directory=True)
    code, err, ids = _run(tmp_path, "in")
    assert code == 0, err
    assert ids == [1, 2, 3, 4, 9]


SITECUSTOMIZE = """\
import os

_real_scandir = os.scandir


def _scandir(path="."):
    if os.path.basename(os.path.normpath(os.fspath(path))) == "2024":
        raise PermissionError(13, "Permission denied", os.fspath(path))
    return _real_scandir(path)


os.scandir = _scandir
"""


def test_an_unreadable_subdirectory_fails_the_run(tmp_path: Path) -> None:
    """As root (these tests' usual user) ``chmod 000`` does not stop a read, so the directory is made
    unreadable inside the CLI process by a ``sitecustomize`` that makes ``os.scandir`` fail on it as
    the kernel would for another user."""
    _inputs(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    for path in ("in/**/*.csv", "in"):
        (tmp_path / "ingest.yml").write_text(FLOW.replace("PATH", path))
        result = run_cli("run", tmp_path / "ingest.yml", extra_path=site)
        assert result.returncode == 1, result.stderr  # before: success, with in/2024 silently skipped
        assert f"cannot read directory {tmp_path / 'in' / '2024'}: Permission denied" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "out" / "orders.parquet").exists()


def test_a_dangling_symlink_among_the_inputs_fails_the_run(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    (inputs / "2024" / "gone.csv").symlink_to("moved-away.csv")
    code, err, _ = _run(tmp_path, "in")
    assert code == 1
    assert f"{inputs / '2024' / 'gone.csv'}: it is a symbolic link to a missing file" in err


def test_a_named_input_that_is_a_dangling_symlink_says_so(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    (inputs / "orders.csv").symlink_to("moved-away.csv")
    code, err, _ = _run(tmp_path, "in/orders.csv")
    assert code == 1
    assert f"file not found: {inputs / 'orders.csv'} (a symbolic link to moved-away.csv" in err


def _entity_files_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(REPO / "docs" / "examples", root, ignore=shutil.ignore_patterns("out"))
    return root / "flows" / "entity_files"


def test_a_dangling_entity_file_is_a_config_error(tmp_path: Path) -> None:
    flow = _entity_files_project(tmp_path)
    assert run_cli("validate", flow).returncode == 0
    (flow / "entities" / "orders.yml").unlink()
    (flow / "entities" / "orders.yml").symlink_to(tmp_path / "shared" / "orders.yml")
    result = run_cli("validate", flow)
    assert result.returncode == 2, result.stdout  # before: valid, with one entity fewer
    assert "entities/orders.yml: is a symbolic link to a missing file" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_looping_entity_file_is_a_config_error(tmp_path: Path) -> None:
    flow = _entity_files_project(tmp_path)
    (flow / "entities" / "orders.yml").unlink()
    os.symlink("orders.yml", flow / "entities" / "orders.yml")
    result = run_cli("run", flow)
    assert result.returncode == 2, result.stdout
    assert "entities/orders.yml: is a symlink loop" in result.stderr
