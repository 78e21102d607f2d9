"""PostgreSQL source and destination for Conduit: ``type: postgres`` on either side of an entity.

Registered through the ``conduit`` entry point (``postgres = "conduit_postgres"``); this module holds
the hook implementations only. They register the classes by reference, so psycopg2 and pgpq are
imported only when a flow uses the type. See the package README for the options, modes and type
mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conduit import hookimpl

if TYPE_CHECKING:
    from conduit_postgres.destination import PostgresDestination
    from conduit_postgres.source import PostgresSource

__all__ = ["PostgresDestination", "PostgresSource"]

_CLASSES = {
    "PostgresSource": "conduit_postgres.source",
    "PostgresDestination": "conduit_postgres.destination",
}


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        import importlib

        return getattr(importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def conduit_register_sources(register: Callable[[str, str], None]) -> None:
    register("postgres", "conduit_postgres.source:PostgresSource")


@hookimpl
def conduit_register_destinations(register: Callable[[str, str], None]) -> None:
    register("postgres", "conduit_postgres.destination:PostgresDestination")
