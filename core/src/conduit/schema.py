"""Schema drift: what changed, how safe each change is, and the built-in evolution policies.

Before loading, the engine compares the schema of the incoming data with the entity's accepted
schema (the version recorded in its state by the last load; for a target loaded before schemas were
recorded, the destination's own schema). Each difference is a :class:`ColumnChange`:

* ``added``: a column the accepted schema does not have (added as a nullable column if accepted);
* ``removed``: an accepted column the source no longer sends (never dropped at the destination:
  it loads as NULL);
* ``nullability``: a column the source declared NOT NULL (a typed source: Parquet, a database) may
  now be NULL (no DDL; a NULL then meets whatever constraint the target has);
* ``type_changed``, classified:
  - ``fits``: every incoming value converts exactly into the current type (``int32`` into an
    ``int64`` column): nothing to change, values are cast on the way in;
  - ``widening``: the column can be widened to ``widened`` to hold both (``int32`` → ``int64``,
    ``int`` → ``decimal``/``float64`` where exact, decimal precision up, ``float32`` → ``float64``,
    ``timestamp`` → ``timestamptz`` only with ``schema.timestamp_to_timestamptz``);
  - ``incompatible``: anything else (text arriving for an integer column, a narrowing).
Renames are never guessed: a renamed column is one removed and one added.

The ``conduit_schema_policy`` hook decides (``firstresult``); the built-in policies, registered
``trylast``, are chosen per entity with ``schema: {policy: ...}``:

* ``manual`` (default): any drift stops the entity before anything is written and leaves a plan
  (the changes and the exact DDL) for ``conduit schema approve``;
* ``auto``: apply what is safe (add nullable columns, widen types), refuse incompatible changes;
* ``warn``: change nothing; load what fits: new columns are left out (their values counted),
  removed ones load as NULL, values that do not convert go to the dead-letter queue;
* ``freeze``: any drift fails the entity before anything is written.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from conduit.hookspecs import hookimpl
from conduit.types import type_name

ChangeKind = Literal["added", "removed", "type_changed", "nullability"]
Compatibility = Literal["fits", "widening", "incompatible"]
SchemaPolicy = Literal["manual", "auto", "warn", "freeze"]
SCHEMA_POLICIES: tuple[SchemaPolicy, ...] = ("manual", "auto", "warn", "freeze")

_INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}


@dataclass(frozen=True)
class ColumnChange:
    """One difference between the accepted (``current``) schema and the incoming one."""

    kind: ChangeKind
    column: str
    current: pa.DataType | None
    incoming: pa.DataType | None
    compatibility: Compatibility | None = None
    """For ``type_changed``: ``fits``, ``widening`` or ``incompatible``."""
    widened: pa.DataType | None = None
    """For a ``widening``: the type the column becomes."""

    @property
    def alters_target(self) -> bool:
        """Whether making it changes the target: a new column, or a column widened."""
        return (self.kind == "added" and self.current is None) or self.compatibility == "widening"

    @property
    def safe(self) -> bool:
        """Whether ``auto`` may apply it: an added column, a removed one (loads as NULL), a type
        that fits or widens."""
        return self.kind != "type_changed" or self.compatibility in ("fits", "widening")

    def __str__(self) -> str:
        if self.kind == "added" and self.current is None:
            return f"new column {self.column!r} ({type_name(self.incoming)})"
        if self.kind == "added":
            return f"column {self.column!r} ({type_name(self.incoming)}) is back"
        if self.kind == "removed":
            return f"column {self.column!r} ({type_name(self.current)}) is missing"
        if self.kind == "nullability":
            return f"column {self.column!r} may now be NULL (it was declared NOT NULL)"
        text = f"column {self.column!r} changes type from {type_name(self.current)} to {type_name(self.incoming)}"
        if self.compatibility == "widening":
            return f"{text} (widening the column to {type_name(self.widened)})"
        if self.compatibility == "fits":
            return f"{text} (the values fit the current type)"
        return f"{text} (incompatible)"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "column": self.column,
            "from": type_name(self.current) if self.current is not None else None,
            "to": type_name(self.incoming) if self.incoming is not None else None,
            "compatibility": self.compatibility,
            "widened": type_name(self.widened) if self.widened is not None else None,
        }


@dataclass(frozen=True)
class SchemaDiff:
    """The changes from ``current`` (accepted, or at the destination) to ``incoming``."""

    current: pa.Schema
    incoming: pa.Schema
    changes: tuple[ColumnChange, ...]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def describe(self) -> str:
        return "; ".join(str(change) for change in self.changes)


@dataclass(frozen=True)
class SchemaDecision:
    """A policy's answer.

    ``proceed``: load (with ``apply`` made to the target first) or refuse with ``reason``.
    ``apply``: the changes to make to the target; ``None`` means every change (a new column is
    added, a widening widens). Changes not applied are absorbed: a new column is left out, a type
    change is converted to the current type, values that do not convert go to the dead-letter queue.
    ``approval``: refuse for now, leaving a plan that ``conduit schema approve`` applies.
    """

    proceed: bool
    reason: str = ""
    apply: tuple[ColumnChange, ...] | None = None
    approval: bool = False


# -- comparing types --------------------------------------------------------------------------------


def _int_digits(dtype: pa.DataType) -> int:
    return _INT_DIGITS[dtype.bit_width] + (
        1 if pa.types.is_unsigned_integer(dtype) and dtype.bit_width == 64 else 0
    )


def _holds(current: pa.DataType, incoming: pa.DataType, timestamptz: bool) -> bool:
    """Whether every value of ``incoming`` type converts exactly into a ``current`` column."""
    if current == incoming:
        return True
    if pa.types.is_integer(current) and pa.types.is_integer(incoming):
        if pa.types.is_signed_integer(current) == pa.types.is_signed_integer(incoming):
            return bool(current.bit_width >= incoming.bit_width)
        return bool(pa.types.is_signed_integer(current) and current.bit_width > incoming.bit_width)
    if pa.types.is_decimal(current) and pa.types.is_integer(incoming):
        return bool(current.precision - current.scale >= _int_digits(incoming))
    if pa.types.is_floating(current) and pa.types.is_integer(incoming):
        return bool(current.bit_width == 64 and incoming.bit_width <= 32)
    if pa.types.is_floating(current) and pa.types.is_floating(incoming):
        return bool(current.bit_width >= incoming.bit_width)
    if pa.types.is_decimal(current) and pa.types.is_decimal(incoming):
        return bool(
            current.scale >= incoming.scale
            and current.precision - current.scale >= incoming.precision - incoming.scale
        )
    if pa.types.is_large_string(current) and pa.types.is_string(incoming):
        return True
    if pa.types.is_timestamp(current) and pa.types.is_timestamp(incoming):
        same_zone = (current.tz is None) == (incoming.tz is None)
        finer = ["s", "ms", "us", "ns"].index(current.unit) >= ["s", "ms", "us", "ns"].index(incoming.unit)
        return (
            same_zone and finer or (timestamptz and current.tz is not None and incoming.tz is None and finer)
        )
    if pa.types.is_timestamp(current) and pa.types.is_date(incoming):
        return False
    return False


def _widen(current: pa.DataType, incoming: pa.DataType, timestamptz: bool) -> pa.DataType | None:
    """The type a ``current`` column can become to hold ``incoming`` values too, if any."""
    if _holds(incoming, current, timestamptz) and _holds(incoming, incoming, timestamptz):
        if pa.types.is_timestamp(current) and pa.types.is_timestamp(incoming):
            if current.tz is None and incoming.tz is not None and not timestamptz:
                return None
            if current.tz is not None and incoming.tz is None:
                return None
        return incoming
    if pa.types.is_decimal(incoming) and (pa.types.is_decimal(current) or pa.types.is_integer(current)):
        whole = current.precision - current.scale if pa.types.is_decimal(current) else _int_digits(current)
        scale = max(incoming.scale, current.scale if pa.types.is_decimal(current) else 0)
        precision = max(whole, incoming.precision - incoming.scale) + scale
        return pa.decimal128(precision, scale) if precision <= 38 else None
    if pa.types.is_decimal(current) and pa.types.is_integer(incoming):
        precision = max(current.precision - current.scale, _int_digits(incoming)) + current.scale
        return pa.decimal128(precision, current.scale) if precision <= 38 else None
    if pa.types.is_integer(current) and pa.types.is_integer(incoming):
        width = max(current.bit_width, incoming.bit_width)
        if pa.types.is_signed_integer(current) != pa.types.is_signed_integer(incoming):
            width *= 2
        return {8: pa.int8(), 16: pa.int16(), 32: pa.int32(), 64: pa.int64()}.get(width)
    timestamps = pa.types.is_timestamp(current) and pa.types.is_timestamp(incoming)
    if timestamps and timestamptz and current.tz is None and incoming.tz is not None:
        return pa.timestamp(incoming.unit, tz=incoming.tz)
    return None


def compare_types(
    current: pa.DataType, incoming: pa.DataType, *, timestamptz: bool = False
) -> tuple[Compatibility, pa.DataType | None]:
    """How an ``incoming`` type meets a ``current`` column: ``fits``, ``widening`` (with the widened
    type) or ``incompatible``."""
    if _holds(current, incoming, timestamptz):
        return "fits", None
    widened = _widen(current, incoming, timestamptz)
    if (
        widened is not None
        and _holds(widened, current, timestamptz)
        and _holds(widened, incoming, timestamptz)
    ):
        return "widening", widened
    return "incompatible", None


def diff_schemas(current: pa.Schema, incoming: pa.Schema, *, timestamptz: bool = False) -> SchemaDiff:
    """Compare by column name and type; order and nullability are not changes."""
    changes: list[ColumnChange] = []
    current_types = {f.name: f.type for f in current}
    incoming_types = {f.name: f.type for f in incoming}
    for name, dtype in incoming_types.items():
        if name not in current_types:
            changes.append(ColumnChange("added", name, None, dtype))
        elif current_types[name] != dtype:
            compatibility, widened = compare_types(current_types[name], dtype, timestamptz=timestamptz)
            changes.append(
                ColumnChange("type_changed", name, current_types[name], dtype, compatibility, widened)
            )
    for name, dtype in current_types.items():
        if name not in incoming_types:
            changes.append(ColumnChange("removed", name, dtype, None))
    return SchemaDiff(current, incoming, tuple(changes))


def drift(
    accepted_source: pa.Schema, target: pa.Schema, incoming: pa.Schema, *, timestamptz: bool = False
) -> SchemaDiff:
    """What changed since the schema was last accepted: ``incoming`` against ``accepted_source`` (the
    source's schema at that time), each type judged against the ``target`` column it loads into.

    Comparing with the accepted source schema (not the target) means a change is reported once: a
    column the source stopped sending, or an ``int32`` that now fits a widened ``int64`` column, is
    not drift again on the next run once accepted."""
    changes: list[ColumnChange] = []
    before = {f.name: f.type for f in accepted_source}
    required = {f.name for f in accepted_source if not f.nullable}
    columns = {f.name: f.type for f in target}
    for f in incoming:
        if f.name in before and before[f.name] == f.type:
            if f.name in required and f.nullable:  # a source that promised values no longer does
                changes.append(ColumnChange("nullability", f.name, f.type, f.type, "fits"))
            continue
        if f.name not in columns:
            changes.append(ColumnChange("added", f.name, None, f.type))
            continue
        compatibility: Compatibility
        widened: pa.DataType | None
        if columns[f.name] == f.type:
            compatibility, widened = "fits", None  # back to what the column holds
        else:
            compatibility, widened = compare_types(columns[f.name], f.type, timestamptz=timestamptz)
        kind: ChangeKind = "type_changed" if f.name in before else "added"
        changes.append(ColumnChange(kind, f.name, columns[f.name], f.type, compatibility, widened))
    names = set(incoming.names)
    for name, dtype in before.items():
        if name not in names:
            changes.append(ColumnChange("removed", name, columns.get(name, dtype), None))
    return SchemaDiff(target, incoming, tuple(changes))


def evolved(current: pa.Schema, applied: Sequence[ColumnChange]) -> pa.Schema:
    """``current`` with ``applied`` made: widened types, new (nullable) columns at the end."""
    by_name = {c.column: c for c in applied}
    fields = []
    for f in current:
        change = by_name.get(f.name)
        if change is not None and change.compatibility == "widening":
            assert change.widened is not None
            fields.append(pa.field(f.name, change.widened, True))
        else:
            fields.append(f)
    names = set(current.names)
    for change in applied:
        if change.kind == "added" and change.column not in names:
            assert change.incoming is not None
            fields.append(pa.field(change.column, change.incoming, True))
    return pa.schema(fields)


# -- the accepted schema, as stored in the state ----------------------------------------------------


def schema_to_json(schema: pa.Schema) -> dict[str, Any]:
    """A schema as stored: readable columns plus the exact Arrow IPC form."""
    plain = pa.schema([pa.field(f.name, f.type, f.nullable) for f in schema])
    return {
        "columns": [{"name": f.name, "type": type_name(f.type), "nullable": f.nullable} for f in plain],
        "arrow": base64.b64encode(plain.serialize().to_pybytes()).decode("ascii"),
    }


def schema_from_json(stored: Mapping[str, Any]) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(stored["arrow"])))


@dataclass
class SchemaRecord:
    """The entity's accepted schema versions (``state["schema"]``)."""

    version: int = 0
    current: pa.Schema | None = None
    """The target's schema: what batches are written as."""
    source: pa.Schema | None = None
    """The source's schema when this version was accepted (drift is measured from it)."""
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SchemaRecord:
        stored = state.get("schema")
        if not isinstance(stored, Mapping) or not stored.get("version"):
            return cls()
        current = schema_from_json(stored)
        source = schema_from_json(stored["source"]) if isinstance(stored.get("source"), Mapping) else current
        return cls(int(stored["version"]), current, source, list(stored.get("history") or []))

    def accept(
        self,
        target: pa.Schema,
        source: pa.Schema,
        *,
        how: str,
        run_id: str,
        at: str,
        changes: Sequence[ColumnChange] = (),
        ddl: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Record ``target`` (fed from ``source``) as the next version; returns ``state["schema"]``."""
        self.version += 1
        self.current, self.source = target, source
        self.history.append(
            {
                "version": self.version,
                "accepted_at": at,
                "run_id": run_id,
                "how": how,
                "changes": [c.to_json() for c in changes],
                "ddl": list(ddl),
                **schema_to_json(target),
            }
        )
        return self.to_json()

    def to_json(self) -> dict[str, Any]:
        assert self.current is not None and self.source is not None
        return {
            "version": self.version,
            **schema_to_json(self.current),
            "source": schema_to_json(self.source),
            "history": self.history,
        }


# -- the built-in policies --------------------------------------------------------------------------


@hookimpl(trylast=True)
def conduit_schema_policy(
    entity: str, diff: SchemaDiff, policy: str = "manual", capabilities: frozenset[str] = frozenset()
) -> SchemaDecision | None:
    """The built-in policies (see the module docstring), chosen by the entity's ``schema.policy``."""
    where = f"entity {entity!r}"
    incompatible = [c for c in diff.changes if not c.safe]
    if policy == "freeze":
        return SchemaDecision(
            False, f"{where}: the schema is frozen (schema.policy: freeze) and changed: {diff.describe()}"
        )
    if policy == "warn":
        return SchemaDecision(True, f"{where}: schema drift, loading what fits: {diff.describe()}", apply=())
    if policy == "auto":
        if incompatible:
            return SchemaDecision(
                False,
                f"{where}: incompatible schema change, not applied (schema.policy: auto applies only added "
                f"columns and widenings): {'; '.join(map(str, incompatible))}",
            )
        missing = [
            c
            for c in diff.changes
            if (c.kind == "added" and "add_column" not in capabilities)
            or (c.compatibility == "widening" and "widen_type" not in capabilities)
        ]
        if missing:
            return SchemaDecision(
                False,
                f"{where}: the destination cannot make these schema changes: {'; '.join(map(str, missing))}",
            )
        return SchemaDecision(True, f"{where}: schema evolved: {diff.describe()}")
    if incompatible:
        return SchemaDecision(
            False,
            f"{where}: incompatible schema change (nothing to approve: change the source, the declared "
            f"types, or reload with --full-refresh): {'; '.join(map(str, incompatible))}",
        )
    return SchemaDecision(
        False,
        f"{where}: the schema changed and needs approval (schema.policy: manual): {diff.describe()}",
        approval=True,
    )
