"""Finding the files a ``path`` option names and opening them (decompressed) as byte streams."""

from __future__ import annotations

import os

import pyarrow as pa

from conduit.errors import ConnectorError, DataError, DataLocation
from conduit.files import compression_for, expand_paths, open_input


def match_files(pattern: str) -> list[str]:
    """The files ``pattern`` names: one file, every file a glob matches (sorted, recursive ``**``), or
    a directory's CSV files."""
    if os.path.isdir(pattern):
        return expand_paths(pattern, (".csv", ".tsv", ".txt", ".csv.gz", ".csv.bz2", ".csv.zst", ".tsv.gz"))
    return expand_paths(pattern, ())


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
    codec = compression_for(path) if option == "auto" else option
    if codec is not None and not pa.Codec.is_available(codec):
        raise ConnectorError(f"{path}: this pyarrow build has no {codec} support")
    return codec


open_bytes = open_input


def read_sample(path: str, compression: str | None, size: int) -> tuple[bytes, bool]:
    """The first ``size`` decompressed bytes of ``path`` and whether that is the whole file."""
    with open_bytes(path, compression) as stream:
        try:
            data = stream.read(size + 1)
        except (OSError, pa.ArrowInvalid) as exc:
            raise DataError(
                f"cannot decompress the file ({compression}): {exc}", DataLocation(file=path)
            ) from None
    return data[:size], len(data) <= size
