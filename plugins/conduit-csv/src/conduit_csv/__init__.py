"""CSV source and destination for Conduit: ``type: csv`` on either side of an entity.

Registered through the ``conduit`` entry point (``csv = "conduit_csv"``); this module holds the hook
implementations only. See the package README for the options and the error behaviour.
"""

from __future__ import annotations

from collections.abc import Callable

from conduit import Destination, Source, hookimpl
from conduit_csv.destination import CsvDestination
from conduit_csv.source import CsvSource

__all__ = ["CsvDestination", "CsvSource"]


@hookimpl
def conduit_register_sources(register: Callable[[str, type[Source]], None]) -> None:
    register("csv", CsvSource)


@hookimpl
def conduit_register_destinations(register: Callable[[str, type[Destination]], None]) -> None:
    register("csv", CsvDestination)
