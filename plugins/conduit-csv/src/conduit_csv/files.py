"""Finding the files a ``path`` option names and opening them (decompressed) as byte streams."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pyarrow as pa

from conduit.errors import ConnectorError, DataError, DataLocation

COMPRESSION_BY_SUFFIX = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}


def match_files(pattern: str) -> list[str]:
    """The files ``pattern`` names: one file, or every file a glob matches (sorted, recursive ``**``)."""
    if glob.escape(pattern) != pattern:
        found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not found:
            raise ConnectorError(f"no file matches {pattern}")
        return found
    if not os.path.exists(pattern):
        raise ConnectorError(f"file not found: {pattern}")
    if os.path.isdir(pattern):
        raise ConnectorError(f"{pattern} is a directory; name a file or a glob such as {pattern}/*.csv")
    return [pattern]


def check_readable(path: str) -> None:
    """Raise :class:`ConnectorError` when ``path`` cannot be opened for reading."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConnectorError(f"cannot read {path}: {exc.strerror or exc}") from None


def compression_of(path: str, option: str) -> str | None:
    """The pyarrow codec for ``path``: the option, or by extension when it is ``auto``."""
    if option == "none":
        return None
    codec = COMPRESSION_BY_SUFFIX.get(Path(path).suffix.lower()) if option == "auto" else option
    if codec is not None and not pa.Codec.is_available(codec):
        raise ConnectorError(f"{path}: this pyarrow build has no {codec} support")
    return codec


def open_bytes(path: str, compression: str | None) -> pa.NativeFile:
    """The file's decompressed bytes as a pyarrow input stream."""
    try:
        return pa.input_stream(path, compression=compression)
    except OSError as exc:
        raise ConnectorError(f"cannot read {path}: {exc}") from None


def read_sample(path: str, compression: str | None, size: int) -> tuple[bytes, bool]:
    """The first ``size`` decompressed bytes of ``path`` and whether that is the whole file."""
    with open_bytes(path, compression) as stream:
        try:
            data = stream.read(size + 1)
        except (OSError, pa.ArrowInvalid) as exc:
            raise DataError(f"cannot decompress the file ({compression}): {exc}", DataLocation(file=path)) from None
    return data[:size], len(data) <= size
