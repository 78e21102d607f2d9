"""PostgreSQL source and destination for Conduit: ``type: postgres`` on either side of an entity.

Registered through the ``conduit`` entry point (``postgres = "conduit_postgres"``); this module holds
the hook implementations only. See the package README for the options, modes and type mapping.
"""

from __future__ import annotations

from collections.abc import Callable

from conduit import Destination, Source, hookimpl
from conduit_postgres.destination import PostgresDestination
from conduit_postgres.source import PostgresSource

__all__ = ["PostgresDestination", "PostgresSource"]


@hookimpl
def conduit_register_sources(register: Callable[[str, type[Source]], None]) -> None:
    register("postgres", PostgresSource)


@hookimpl
def conduit_register_destinations(register: Callable[[str, type[Destination]], None]) -> None:
    register("postgres", PostgresDestination)
