"""``conduit.files.expand_paths``: every physical file a path option names is read exactly once
(symlink loops, symlinked directories, aliases), and a directory or link that cannot be followed is
an error naming it, never a silent skip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conduit.errors import ConnectorError
from conduit.files import expand_paths

CSV = (".csv",)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """``in/a.csv``, ``in/sub/b.csv``, ``in/sub/deeper/c.csv``; the test runs inside ``tmp_path``."""
    for name in ("in/a.csv", "in/sub/b.csv", "in/sub/deeper/c.csv"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("id\n1\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(cwd)


ALL = ["in/a.csv", "in/sub/b.csv", "in/sub/deeper/c.csv"]


@pytest.mark.parametrize("pattern", ["in/**/*.csv", "in", "in/"])
@pytest.mark.parametrize("link, to", [("sub/deeper/up", "../.."), ("sub/self", ".")])
def test_a_symlink_loop_reads_each_file_once(tree: Path, pattern: str, link: str, to: str) -> None:
    (tree / "in" / link).symlink_to(to, target_is_directory=True)
    found = expand_paths(pattern, CSV)
    assert sorted(os.path.normpath(p) for p in found) == ALL, found


@pytest.mark.parametrize("pattern", ["in/**/*.csv", "in"])
def test_a_symlinked_directory_outside_is_followed_once(tree: Path, pattern: str) -> None:
    (tree / "other").mkdir()
    (tree / "other" / "d.csv").write_text("id\n4\n")
    (tree / "in" / "more").symlink_to("../other", target_is_directory=True)
    (tree / "in" / "sub" / "again").symlink_to("../../other", target_is_directory=True)
    found = expand_paths(pattern, CSV)
    assert len(found) == 4, found
    assert sum(os.path.samefile(p, tree / "other" / "d.csv") for p in found) == 1


@pytest.mark.parametrize("pattern", ["in/**/*.csv", "in/*.csv", "in"])
def test_a_file_reached_through_a_symlink_or_hard_link_is_read_once(tree: Path, pattern: str) -> None:
    (tree / "in" / "alias.csv").symlink_to("a.csv")
    os.link(tree / "in" / "a.csv", tree / "in" / "hard.csv")
    found = expand_paths(pattern, CSV)
    assert sum(os.path.samefile(p, tree / "in" / "a.csv") for p in found) == 1, found
    assert "in/a.csv" in found  # the first in sorted order is kept


def test_a_symlink_to_a_sibling_directory_reads_its_files_once(tree: Path) -> None:
    (tree / "in" / "link").symlink_to("sub", target_is_directory=True)
    for pattern in ("in/**/*.csv", "in"):
        found = expand_paths(pattern, CSV)
        assert sorted(os.path.realpath(p) for p in found) == sorted(os.path.realpath(p) for p in ALL)


def _deny(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``os.scandir`` and ``os.listdir`` fail on directories called ``name`` as they fail on a
    directory without read permission (tests run as root, whom ``chmod 000`` does not stop)."""
    real_scandir, real_listdir = os.scandir, os.listdir

    def check(path: object) -> None:
        if os.path.basename(os.path.normpath(os.fspath(path))) == name:  # type: ignore[call-overload]
            raise PermissionError(13, "Permission denied", os.fspath(path))  # type: ignore[call-overload]

    def scandir(path: object = ".") -> object:
        check(path)
        return real_scandir(path)  # type: ignore[call-overload]

    def listdir(path: object = ".") -> object:
        check(path)
        return real_listdir(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", listdir)


@pytest.mark.parametrize("pattern", ["in/**/*.csv", "in", "in/sub/*.csv"])
def test_an_unreadable_directory_is_an_error(
    tree: Path, monkeypatch: pytest.MonkeyPatch, pattern: str
) -> None:
    _deny(monkeypatch, "sub")
    with pytest.raises(ConnectorError, match=r"cannot read directory in/sub: Permission denied"):
        expand_paths(pattern, CSV)


def test_an_unreadable_directory_a_glob_does_not_enter_is_no_error(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deny(monkeypatch, "sub")
    assert expand_paths("in/*.csv", CSV) == ["in/a.csv"]


def test_an_unreadable_directory_for_real(tree: Path) -> None:
    private = tree / "in" / "sub"
    private.chmod(0)
    try:
        try:
            os.listdir(private)
        except PermissionError:
            pass
        else:
            pytest.skip("running as a user who can read any directory (root): see the injected test above")
        with pytest.raises(ConnectorError, match="cannot read directory in/sub: Permission denied"):
            expand_paths("in", CSV)
    finally:
        private.chmod(0o755)


@pytest.mark.parametrize("pattern", ["in/**/*.csv", "in/*.csv", "in"])
def test_a_dangling_symlink_among_the_inputs_is_an_error(tree: Path, pattern: str) -> None:
    (tree / "in" / "gone.csv").symlink_to("nowhere.csv")
    with pytest.raises(ConnectorError, match="in/gone.csv: it is a symbolic link to a missing file"):
        expand_paths(pattern, CSV)


def test_a_looping_symlink_among_the_inputs_is_an_error(tree: Path) -> None:
    (tree / "in" / "loop.csv").symlink_to("loop.csv")
    with pytest.raises(ConnectorError, match="in/loop.csv: it is a symlink loop"):
        expand_paths("in", CSV)


def test_a_dangling_symlink_that_would_not_be_read_is_ignored(tree: Path) -> None:
    (tree / "in" / "notes.txt").symlink_to("nowhere.txt")
    (tree / "in" / ".hidden.csv").symlink_to("nowhere.csv")
    assert expand_paths("in", CSV) == ALL
    assert expand_paths("in/*.csv", ()) == ["in/a.csv"]


def test_a_named_file_that_is_a_dangling_symlink_says_so(tree: Path) -> None:
    (tree / "in" / "gone.csv").symlink_to("nowhere.csv")
    with pytest.raises(ConnectorError, match=r"file not found: in/gone.csv \(a symbolic link to nowhere.csv"):
        expand_paths("in/gone.csv", ())
    (tree / "in" / "loop.csv").symlink_to("loop.csv")
    with pytest.raises(ConnectorError, match="cannot read in/loop.csv: it is a symlink loop"):
        expand_paths("in/loop.csv", ())
    with pytest.raises(ConnectorError, match="file not found: in/missing.csv$"):
        expand_paths("in/missing.csv", ())


# -- unchanged behaviour ------------------------------------------------------------------------


def test_hidden_and_underscore_files_are_skipped(tree: Path) -> None:
    (tree / "in" / ".x.csv.tmp.csv").write_text("id\n")
    (tree / "in" / "_SUCCESS.csv").write_text("")
    (tree / "in" / "notes.txt").write_text("")
    assert expand_paths("in", CSV) == ALL
    assert expand_paths("in/**/*.csv", ()) == ALL
    assert expand_paths("in/*", ()) == ["in/a.csv", "in/notes.txt"]


def test_a_glob_does_not_enter_hidden_directories_a_directory_path_does(tree: Path) -> None:
    (tree / "in" / ".cache").mkdir()
    (tree / "in" / ".cache" / "e.csv").write_text("id\n")
    assert expand_paths("in/**/*.csv", ()) == ALL
    assert expand_paths("in/.cache/*.csv", ()) == ["in/.cache/e.csv"]
    assert expand_paths("in", CSV) == ["in/.cache/e.csv", *ALL]


def test_glob_forms(tree: Path) -> None:
    assert expand_paths("in/*/*.csv", ()) == ["in/sub/b.csv"]
    assert expand_paths("in/**", ()) == ALL
    assert expand_paths("in/s?b/**/[bc].csv", ()) == ["in/sub/b.csv", "in/sub/deeper/c.csv"]
    assert expand_paths(str(tree / "in" / "*.csv"), ()) == [str(tree / "in" / "a.csv")]
    assert expand_paths("./in/*.csv", ()) == ["./in/a.csv"]


def test_nothing_found_messages(tree: Path) -> None:
    with pytest.raises(ConnectorError, match=r"no file matches nowhere/\*\.csv"):
        expand_paths("nowhere/*.csv", ())
    with pytest.raises(ConnectorError, match=r"no file matches in/\*\.json"):
        expand_paths("in/*.json", ())
    (tree / "empty").mkdir()
    with pytest.raises(ConnectorError, match="directory empty holds no .csv files"):
        expand_paths("empty", CSV)
    assert expand_paths("in/a.csv", ()) == ["in/a.csv"]
