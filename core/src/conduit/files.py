"""Helpers for file-based connectors (built-in and third-party): finding the files a path option
names, compression by extension, opening inputs, and the pieces of an atomic write (a hidden temp
file beside the target, fsync, rename, quiet cleanup)."""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Mapping
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


def expand_paths(pattern: str, suffixes: tuple[str, ...]) -> list[str]:
    """The files a path option names: one file, a glob, or a directory (its data files, recursively).

    Hidden and underscore-prefixed files (``.x.tmp``, ``_SUCCESS``) are skipped in directories and
    globs. Raises :class:`ConnectorError` when nothing matches.
    """
    if os.path.isdir(pattern):
        found = [
            str(p)
            for p in sorted(Path(pattern).rglob("*"))
            if p.is_file() and _visible(str(p)) and str(p).lower().endswith(suffixes)
        ]
        if not found:
            raise ConnectorError(f"directory {pattern} holds no {' / '.join(suffixes)} files")
        return found
    if glob.has_magic(pattern):
        found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p) and _visible(p))
        if not found:
            raise ConnectorError(f"no file matches {pattern}")
        return found
    if not os.path.exists(pattern):
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


def fsync_path(path: str) -> None:
    """Flush a file's data, or a directory's entries (after a rename), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
