"""Every hook a Conduit plugin can implement. This module is the contract for plugin authors.

A plugin is a module (or object) with functions decorated by :data:`conduit.hookimpl`, made known
through one entry point in the ``conduit`` group::

    [project.entry-points.conduit]
    csv = "conduit_csv"

Built-ins (the Parquet and JSON Lines connectors, the core checks and the default schema policy) are
registered through these same hooks: a built-in is a plugin that ships in ``conduit-core``.

Registration hooks receive a ``register`` callback, so the core owns the registry: it records which
plugin and distribution registered each name and rejects a name registered twice, naming both.
Hook arguments are only ever added by keyword, so a plugin written against an older core keeps working
(a hookimpl may accept any subset of a hook's arguments).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click
import pluggy

if TYPE_CHECKING:
    from conduit.checks import Check
    from conduit.connectors import Destination, Source
    from conduit.schema import SchemaDecision, SchemaDiff

hookspec = pluggy.HookspecMarker("conduit")
hookimpl = pluggy.HookimplMarker("conduit")


@hookspec
def conduit_register_sources(register: Callable[[str, type[Source] | str], None]) -> None:
    """Register source types: call ``register("csv", CsvSource)`` once per type name (or pass a
    ``"package.module:CsvSource"`` reference, imported the first time a flow uses the type).

    The class must subclass :class:`conduit.Source` and set ``options_model``. Config then uses the
    name as ``type: csv``.
    """


@hookspec
def conduit_register_destinations(register: Callable[[str, type[Destination] | str], None]) -> None:
    """Register destination types: call ``register("parquet", ParquetDestination)`` per type name.

    The class must subclass :class:`conduit.Destination` and set ``options_model`` and
    ``capabilities`` (write modes, atomicity).
    """


@hookspec
def conduit_register_checks(register: Callable[[str, type[Check] | str], None]) -> None:
    """Register quality checks: call ``register("not_null", NotNull)`` per check name.

    The class must subclass :class:`conduit.Check`. Config uses it as ``checks: [{not_null: {...}}]``,
    with ``action: fail | warn | dlq``. ``evaluate(batch)`` returns one boolean per row (``True`` and
    NULL pass); ``explain(row)`` optionally says why one row failed (error messages and the
    dead-letter queue's ``message``). An instance serves one entity for one run and may keep state.
    """


@hookspec(firstresult=True)
def conduit_schema_policy(
    entity: str, diff: SchemaDiff, policy: str, capabilities: frozenset[str]
) -> SchemaDecision | None:
    """Decide what happens when the incoming data's schema differs from the entity's accepted one.

    Called only when ``diff`` is not empty, before anything is written. ``policy`` is the entity's
    ``schema.policy`` (``manual``, ``auto``, ``warn``, ``freeze``, or a name your plugin defines);
    ``capabilities`` the changes the destination can make (``add_column``, ``widen_type``). Return a
    :class:`conduit.schema.SchemaDecision` to decide, or ``None`` to leave the decision to the next
    plugin. The first non-``None`` answer wins; the built-in policies are registered ``trylast``, so a
    plugin can override them for the entities it cares about (check ``entity``).
    """


@hookspec
def conduit_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``conduit`` CLI: ``@cli.command()`` inside the hookimpl."""
