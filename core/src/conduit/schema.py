"""Schema comparison and the default schema-evolution policy.

The engine compares the schema of incoming batches with what the destination already holds
(``Destination.current_schema()``). When they differ it asks the ``conduit_schema_policy`` hook for a
:class:`SchemaDecision`. The core's own answer, registered ``trylast`` so any plugin can override it,
is to refuse every change: appending differently shaped data to an existing target fails before
anything is written, with the changes listed. Column order alone is not a change: the engine
reorders incoming columns to the target's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from conduit.hookspecs import hookimpl
from conduit.types import type_name

ChangeKind = Literal["added", "removed", "type_changed"]


@dataclass(frozen=True)
class ColumnChange:
    """One difference between the target's schema and the incoming one."""

    kind: ChangeKind
    column: str
    current: pa.DataType | None
    incoming: pa.DataType | None

    def __str__(self) -> str:
        if self.kind == "added":
            return f"new column {self.column!r} ({type_name(self.incoming)})"
        if self.kind == "removed":
            return f"column {self.column!r} ({type_name(self.current)}) is missing"
        return (
            f"column {self.column!r} changes type from {type_name(self.current)}"
            f" to {type_name(self.incoming)}"
        )


@dataclass(frozen=True)
class SchemaDiff:
    """The changes from ``current`` (at the destination) to ``incoming`` (from the source)."""

    current: pa.Schema
    incoming: pa.Schema
    changes: tuple[ColumnChange, ...]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def describe(self) -> str:
        return "; ".join(str(change) for change in self.changes)


@dataclass(frozen=True)
class SchemaDecision:
    """A policy's answer: ``proceed`` with the load, or refuse it with ``reason``."""

    proceed: bool
    reason: str = ""


def diff_schemas(current: pa.Schema, incoming: pa.Schema) -> SchemaDiff:
    """Compare by column name and type; order and nullability are not changes."""
    changes: list[ColumnChange] = []
    current_types = {f.name: f.type for f in current}
    incoming_types = {f.name: f.type for f in incoming}
    for name, dtype in incoming_types.items():
        if name not in current_types:
            changes.append(ColumnChange("added", name, None, dtype))
        elif current_types[name] != dtype:
            changes.append(ColumnChange("type_changed", name, current_types[name], dtype))
    for name, dtype in current_types.items():
        if name not in incoming_types:
            changes.append(ColumnChange("removed", name, dtype, None))
    return SchemaDiff(current, incoming, tuple(changes))


@hookimpl(trylast=True)
def conduit_schema_policy(entity: str, diff: SchemaDiff) -> SchemaDecision | None:
    """The core default: refuse any change to an existing target's schema."""
    return SchemaDecision(
        proceed=False,
        reason=(
            f"entity {entity!r}: the incoming data does not match the destination's schema: "
            f"{diff.describe()}. Write to a new target or use mode: replace."
        ),
    )
