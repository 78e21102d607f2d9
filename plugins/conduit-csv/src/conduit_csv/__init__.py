"""CSV source and destination for Conduit: ``type: csv`` on either side of an entity.

Registered through the ``conduit`` entry point (``csv = "conduit_csv"``); this module holds the hook
implementations only. They register the classes by reference, so a flow imports only the side it
uses. See the package README for the options and the error behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conduit import hookimpl

if TYPE_CHECKING:
    from conduit_csv.destination import CsvDestination
    from conduit_csv.source import CsvSource

__all__ = ["CsvDestination", "CsvSource"]

_CLASSES = {"CsvSource": "conduit_csv.source", "CsvDestination": "conduit_csv.destination"}


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        import importlib

        return getattr(importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def conduit_register_sources(register: Callable[[str, str], None]) -> None:
    register("csv", "conduit_csv.source:CsvSource")


@hookimpl
def conduit_register_destinations(register: Callable[[str, str], None]) -> None:
    register("csv", "conduit_csv.destination:CsvDestination")
