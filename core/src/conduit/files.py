"""Helpers for file-based connectors (built-in and third-party): finding the files a path option
names, compression by extension, opening inputs, and the pieces of an atomic write (a hidden temp
file beside the target, fsync, rename, quiet cleanup)."""

from __future__ import annotations

import errno
import fnmatch
import glob
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pyarrow as pa

from conduit.errors import ConnectorError

COMPRESSION_BY_SUFFIX = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}


def compression_for(path: str) -> str | None:
    """The pyarrow codec name implied by the file's extension, or ``None``."""
    return COMPRESSION_BY_SUFFIX.get(Path(path).suffix.lower())


def open_input(path: str, compression: str | None) -> pa.NativeFile:
    """The file's (decompressed) bytes as a pyarrow input stream; ``ConnectorError`` if unreadable."""
    try:
        return pa.input_stream(path, compression=compression)
    except OSError as exc:
        raise ConnectorError(f"cannot read {path}: {exc}") from None


def _visible(path: str) -> bool:
    return not any(part.startswith((".", "_")) for part in Path(path).parts[-1:])


_LOOP = "it is a symlink loop"
_DANGLING = "it is a symbolic link to a missing file"


def _follow(path: str) -> os.stat_result | None:
    """``os.stat`` of ``path`` (symlinks followed); ``None`` when nothing is there, including a
    symlink that leads nowhere. Any other failure is a :class:`ConnectorError` naming the path."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise ConnectorError(f"cannot read {path}: {exc.strerror or exc}") from None


def _broken_link(path: str) -> str | None:
    """Why ``path`` is a symlink that leads to nothing (:data:`_LOOP` or :data:`_DANGLING`), or
    ``None`` when it is not such a symlink."""
    if not os.path.islink(path):
        return None
    try:
        os.stat(path)
    except OSError as exc:
        return _LOOP if exc.errno == errno.ELOOP else _DANGLING
    return None


def _identity(path: str, status: os.stat_result) -> object:
    """What makes a file or directory one physical thing: its device and inode, so every symlink and
    hard link to it is the same thing; its real path on a file system that reports no inodes."""
    if status.st_ino:
        return (status.st_dev, status.st_ino)
    return os.path.realpath(path)


def _join(base: str, name: str) -> str:
    return os.path.join(base, name) if base else name


class _Tree:
    """The file system as one expansion sees it: each directory listed once, and a directory that
    cannot be listed an error (``glob.glob`` and ``Path.rglob`` skip it without a word, and the load
    then reports success having read less)."""

    def __init__(self) -> None:
        self._listings: dict[str, list[tuple[str, bool]]] = {}

    def entries(self, directory: str) -> list[tuple[str, bool]]:
        """The names in ``directory`` (``""``: the current one) in order, each with whether it leads
        to a directory (symlinks followed); empty when there is no such directory."""
        listing = self._listings.get(directory)
        if listing is None:
            try:
                with os.scandir(directory or os.curdir) as scan:
                    listing = sorted((entry.name, _leads_to_directory(entry)) for entry in scan)
            except (FileNotFoundError, NotADirectoryError):
                listing = []
            except OSError as exc:
                raise ConnectorError(f"cannot read directory {directory}: {exc.strerror or exc}") from None
            self._listings[directory] = listing
        return listing

    def directories(self, root: str, *, hidden: bool, join: Callable[[str, str], str]) -> Iterator[str]:
        """``root`` and every directory below it, depth first in name order, following symlinks to
        directories. Each directory (by :func:`_identity`) is walked once: a symlink back to an
        ancestor (a loop) or a second way to a directory already walked is not entered again.
        ``hidden``: also enter directories whose names start with a dot."""
        seen: set[object] = set()
        stack = [root]
        while stack:
            directory = stack.pop()
            status = _follow(directory or os.curdir)
            if status is None or not stat.S_ISDIR(status.st_mode):
                continue
            key = _identity(directory or os.curdir, status)
            if key in seen:
                continue
            seen.add(key)
            yield directory
            below = [
                join(directory, name)
                for name, is_dir in self.entries(directory)
                if is_dir and (hidden or not name.startswith("."))
            ]
            stack.extend(reversed(below))

    def match(self, base: str, segments: list[str]) -> Iterator[str]:
        """The paths below ``base`` that the glob ``segments`` match, as ``glob.glob(recursive=True)``
        matches them: ``**`` is zero or more directories, and wildcards do not match names that
        start with a dot unless the segment does."""
        if not segments:
            yield base
            return
        segment, rest = segments[0], segments[1:]
        if segment == "**":
            for directory in self.directories(base, hidden=False, join=_join):
                if rest:
                    yield from self.match(directory, rest)
                else:
                    for name, _is_dir in self.entries(directory):
                        if not name.startswith("."):
                            yield _join(directory, name)
        elif glob.has_magic(segment):
            names = [name for name, is_dir in self.entries(base) if is_dir or not rest]
            if not segment.startswith("."):
                names = [name for name in names if not name.startswith(".")]
            for name in fnmatch.filter(names, segment):
                yield from self.match(_join(base, name), rest)
        else:
            yield from self.match(_join(base, segment), rest)


def _leads_to_directory(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False  # a symlink loop, or a link into a directory that cannot be searched: judged later


def _once(candidates: list[str], wanted: Callable[[str], bool]) -> list[str]:
    """The regular files among ``candidates`` whose names are ``wanted``, each physical file once
    (the first path to it is kept). A wanted name that is a symlink leading nowhere is an error."""
    seen: set[object] = set()
    found = []
    for path in candidates:
        if not wanted(path):
            continue
        status = _follow(path)
        if status is None:
            broken = _broken_link(path)
            if broken is not None:
                raise ConnectorError(f"cannot read {path}: {broken}")
            continue
        if not stat.S_ISREG(status.st_mode):
            continue
        key = _identity(path, status)
        if key not in seen:
            seen.add(key)
            found.append(path)
    return found


def _glob_segments(pattern: str) -> tuple[str, list[str]]:
    """Where a glob starts (``"/"`` for an absolute one, else ``""``) and its path segments."""
    parts = pattern.replace(os.altsep, os.sep).split(os.sep) if os.altsep else pattern.split(os.sep)
    base = os.sep if parts[0] == "" and len(parts) > 1 else ""
    rest = parts[1:] if base else parts
    # empty segments ("a//b") are dropped; a trailing one stays: "in/*/" names directories only
    return base, [part for part in rest[:-1] if part] + [rest[-1]]


def expand_paths(pattern: str, suffixes: tuple[str, ...]) -> list[str]:
    """The files a path option names: one file, a glob, or a directory (its data files, recursively).

    Hidden and underscore-prefixed files (``.x.tmp``, ``_SUCCESS``) are skipped in directories and
    globs; a glob's wildcards and ``**`` also skip directories whose names start with a dot, as
    ``glob.glob`` does. Raises :class:`ConnectorError` when nothing matches.

    Each physical file is read once, whatever the links: files are told apart by device and inode,
    and the first path to a file in sorted order is the one kept, so a symlink or a hard link to a
    file already found adds nothing. Symlinks to directories are followed (a directory of inputs may
    be a link to another disk), but each directory is walked once: a link back to an ancestor (a
    loop) or a second link to a directory already walked is not entered again. That skip is silent
    because it loses nothing: every file below that directory is read through the first way to it.
    (``glob.glob`` followed loops until the path grew too long and read one file dozens of times.)

    A directory that the walk must enter and cannot list (permission denied) is an error naming it,
    not a silent skip; so is a data file name that is a symlink to a missing file or a symlink loop.
    """
    tree = _Tree()
    if os.path.isdir(pattern):

        def join(base: str, name: str) -> str:
            return str(Path(base) / name)

        candidates = [
            join(directory, name)
            for directory in tree.directories(pattern, hidden=True, join=join)
            for name, is_dir in tree.entries(directory)
            if not is_dir
        ]
        candidates.sort(key=lambda path: Path(path).parts)
        found = _once(candidates, lambda path: _visible(path) and path.lower().endswith(suffixes))
        if not found:
            raise ConnectorError(f"directory {pattern} holds no {' / '.join(suffixes)} files")
        return found
    if glob.has_magic(pattern):
        base, segments = _glob_segments(pattern)
        found = _once(sorted(tree.match(base, segments)), _visible)
        if not found:
            raise ConnectorError(f"no file matches {pattern}")
        return found
    if not os.path.exists(pattern):
        broken = _broken_link(pattern)
        if broken == _LOOP:
            raise ConnectorError(f"cannot read {pattern}: {_LOOP}")
        if broken == _DANGLING:
            raise ConnectorError(
                f"file not found: {pattern} (a symbolic link to {os.readlink(pattern)}, which does not exist)"
            )
        raise ConnectorError(f"file not found: {pattern}")
    if not os.access(pattern, os.R_OK):
        raise ConnectorError(f"file is not readable: {pattern}")
    return [pattern]


def temp_path_for(target: str, run_id: str, suffix: str = ".tmp") -> str:
    """A sibling of ``target`` (same directory, so a rename is atomic) hidden from readers."""
    path = Path(target)
    return str(path.with_name(f".{path.name}.conduit-{run_id}{suffix}"))


def ensure_parent(target: str) -> None:
    parent = Path(target).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConnectorError(f"cannot create directory {parent}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise ConnectorError(f"directory {parent} is not writable")


def fsync_path(path: str, *, data_only: bool = False) -> None:
    """Flush a file's data, or a directory's entries (after a rename), to disk; ``data_only``: the
    data and only the metadata needed to read it back (``fdatasync``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        (os.fdatasync if data_only else os.fsync)(fd)
    finally:
        os.close(fd)


class Writeback:
    """Flushes files to disk in the background while they are still being written, so the fsync a
    commit needs (:func:`fsync_path`) finds little left to write.

    A writer calls :meth:`push` after each large chunk it hands the OS (a Parquet row group, say); a
    daemon thread then calls ``fdatasync`` on that file, coalescing pushes that arrive while it is busy.
    Without it every byte of a load waits for the commit's fsync: 0.3-0.4 s for a 40 MB file here.
    :meth:`wait` blocks until every pushed file is flushed and raises the first error a background
    flush met (an fsync error is reported once, to descriptors open at the time: the commit's own
    fsync on a new descriptor would not see it, so it must come from here). :meth:`close` stops the
    thread without raising, for aborts.
    """

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._busy = False
        self._closed = False
        self._error: OSError | None = None
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def push(self, path: str) -> None:
        with self._changed:
            if self._closed:
                return
            if path not in self._pending:
                self._pending.append(path)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="conduit-writeback", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closed:
                    self._changed.wait()
                if not self._pending:
                    return
                path = self._pending.pop(0)
                self._busy = True
            try:
                fsync_path(path, data_only=True)
            except FileNotFoundError:
                pass  # renamed or removed meanwhile: the committer fsyncs it (or it was aborted)
            except OSError as exc:
                with self._changed:
                    self._error = self._error or exc
            with self._changed:
                self._busy = False
                self._changed.notify_all()

    def wait(self) -> None:
        """Block until every pushed file is flushed; raise the first error a flush met."""
        with self._changed:
            while self._pending or self._busy:
                self._changed.wait()
            error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Drop what is pending, let a running flush finish, end the thread; never raises."""
        with self._changed:
            self._closed = True
            self._pending.clear()
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()


def remove_quietly(path: str) -> None:
    """Remove a file or directory if it exists (cleanup on abort must never raise)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)
    except OSError:
        pass


def file_version(path: str) -> str | None:
    """A local file's version for incremental loads: ``"<size>:<mtime in ns>"`` (``None`` if absent).

    A file whose version is unchanged since it was loaded is skipped by the next incremental run;
    an object store's connector uses its ETag instead."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def already_loaded(path: str, skip_files: Mapping[str, str]) -> bool:
    """Whether an incremental run may skip ``path``: loaded in full before, and unchanged since."""
    loaded = skip_files.get(path)
    return loaded is not None and loaded == file_version(path)


def write_json_atomically(path: str, payload: object) -> None:
    """Write JSON to a hidden temp file beside ``path``, fsync it, rename it over ``path``, fsync the
    directory: readers (and a process killed at any instant) see the old content or the new."""
    import json

    ensure_parent(path)
    temp = temp_path_for(path, str(os.getpid()))
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1, sort_keys=True, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        remove_quietly(temp)
        raise
    fsync_path(str(Path(path).parent))


def move_into_place(source: str, target: str) -> None:
    """Rename ``source`` to ``target`` without ever replacing a file already there (a rename would
    silently overwrite it): a hard link, which fails if ``target`` exists, then the source unlinked.
    On a file system without hard links, a check then a rename. Raises :class:`ConnectorError` when
    ``target`` exists."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise ConnectorError(f"refusing to overwrite {target}, which another load wrote") from None
    except OSError:
        if os.path.lexists(target):
            raise ConnectorError(f"refusing to overwrite {target}, which another load wrote") from None
        os.replace(source, target)
        return
    os.unlink(source)
