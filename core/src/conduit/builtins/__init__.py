"""The connectors that ship in conduit-core, registered through the same hooks as any plugin.

Each built-in plugin registers its classes by ``"module:Class"`` reference, so a run that does not
use Parquet never imports :mod:`conduit.builtins.parquet` (or ``pyarrow.parquet``).
"""

from __future__ import annotations

from collections.abc import Callable

from conduit.hookspecs import hookimpl


class ParquetPlugin:
    """``type: parquet``: files or directories of part files (:mod:`conduit.builtins.parquet`)."""

    @staticmethod
    @hookimpl
    def conduit_register_sources(register: Callable[[str, str], None]) -> None:
        register("parquet", "conduit.builtins.parquet:ParquetSource")

    @staticmethod
    @hookimpl
    def conduit_register_destinations(register: Callable[[str, str], None]) -> None:
        register("parquet", "conduit.builtins.parquet:ParquetDestination")


class JsonlPlugin:
    """``type: jsonl``: JSON Lines files, plain or compressed (:mod:`conduit.builtins.jsonl`)."""

    @staticmethod
    @hookimpl
    def conduit_register_sources(register: Callable[[str, str], None]) -> None:
        register("jsonl", "conduit.builtins.jsonl:JsonlSource")

    @staticmethod
    @hookimpl
    def conduit_register_destinations(register: Callable[[str, str], None]) -> None:
        register("jsonl", "conduit.builtins.jsonl:JsonlDestination")
