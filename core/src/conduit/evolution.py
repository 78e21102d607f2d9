"""Schema evolution for one load: drift against the accepted schema, the policy's decision, the plan.

:func:`plan_schema` runs before the load session opens. It compares the incoming schema with the
entity's accepted schema (``state["schema"]``, see :class:`conduit.schema.SchemaRecord`), asks the
``conduit_schema_policy`` hook what to do, and returns a :class:`SchemaPlan`: the schema batches are
written with, the DDL to run inside the load, the columns left out, and the new accepted version to
commit with the data. A ``manual`` policy ends here with :class:`SchemaApprovalRequired` and a plan
file that ``conduit schema approve`` applies (:func:`approve`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from conduit.coerce import Failure, coerce_column, keep_mask
from conduit.connectors import Destination, WriteMode
from conduit.errors import SchemaError
from conduit.files import write_json_atomically
from conduit.plugins import Registry
from conduit.schema import (
    ColumnChange,
    SchemaDiff,
    SchemaRecord,
    diff_schemas,
    drift,
    evolved,
    schema_to_json,
)
from conduit.state import file_name, now, safe_name

if TYPE_CHECKING:
    from conduit.config.flow import EntityPlan

PLAN_VERSION = 1
SCHEMA_DIR = "schema"
MAX_LENGTH = b"conduit.max_length"
"""Field metadata a destination sets on a length-limited text column (PostgreSQL ``varchar(n)``)."""


class SchemaApprovalRequired(SchemaError):
    """The schema changed and the entity's policy wants a person to approve it. Exit code 3."""

    exit_code = 3

    def __init__(self, message: str, plan_path: Path) -> None:
        super().__init__(message)
        self.plan_path = plan_path


@dataclass
class SchemaPlan:
    """What one load does about the schema."""

    target: pa.Schema
    changes: tuple[ColumnChange, ...] = ()
    applied: tuple[ColumnChange, ...] = ()
    ddl: list[str] = field(default_factory=list)
    dropped: tuple[str, ...] = ()
    record: dict[str, Any] | None = None
    """The ``state["schema"]`` document to commit with the data (``None``: unchanged)."""
    version: int = 0
    limits: dict[str, int] = field(default_factory=dict)
    """Text columns the destination limits in length (``varchar(n)``): longer values are rejected."""
    absorb: bool = False
    """Values that do not fit go to the dead-letter queue (``warn``), instead of failing the load."""

    def conform(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[Failure], dict[str, int]]:
        """``batch`` as ``target``: columns in its order and types, missing ones NULL, dropped ones left
        out, text longer than a ``limits`` column takes rejected. Returns the batch (without rows whose
        value did not fit), the failures (indices into ``batch``), and the non-null values left out
        per dropped column."""
        if batch.schema.equals(self.target) and not self.limits:
            return batch, [], {}
        names = batch.schema.names
        columns: list[pa.Array] = []
        failures: dict[int, Failure] = {}
        for target in self.target:
            if target.name not in names:
                columns.append(pa.nulls(batch.num_rows, target.type))
                continue
            column = batch.column(target.name)
            if column.type != target.type:
                column, failed = coerce_column(column, target.type, target.name)
                for failure in failed:
                    failures.setdefault(failure.index, failure)
            columns.append(column)
        for name, limit in self.limits.items():
            if name in names and pa.types.is_string(batch.column(name).type):
                lengths = pc.utf8_length(batch.column(name))
                for index in pc.indices_nonzero(pc.fill_null(pc.greater(lengths, limit), False)).to_pylist():
                    message = (
                        f"column {name!r}: a value of {lengths[index].as_py()} characters does not fit the "
                        f"destination's varchar({limit})"
                    )
                    failures.setdefault(index, Failure(index, name, "too_long", message))
        dropped = {
            name: batch.num_rows - batch.column(name).null_count for name in self.dropped if name in names
        }
        result = pa.RecordBatch.from_arrays(columns, schema=self.target)
        if failures:
            result = result.filter(keep_mask(batch.num_rows, failures))
        return result, [failures[i] for i in sorted(failures)], {k: v for k, v in dropped.items() if v}


def plan_path(state_dir: Path, flow: str, entity: str) -> Path:
    path = state_dir / SCHEMA_DIR / file_name(flow) / f"{file_name(entity)}.plan.json"
    legacy = state_dir / SCHEMA_DIR / safe_name(flow) / f"{safe_name(entity)}.plan.json"
    if legacy != path and not path.exists() and legacy.exists():
        try:  # a plan waiting from before the one-to-one names, if it is this entity's
            if json.loads(legacy.read_text(encoding="utf-8")).get("entity") == entity:
                return legacy
        except (OSError, ValueError, AttributeError):
            pass
    return path


def plan_schema(
    *,
    entity: str,
    flow: str,
    registry: Registry,
    destination: Destination,
    incoming: pa.Schema,
    mode: WriteMode,
    state: Mapping[str, Any],
    policy: str,
    timestamptz: bool,
    run_id: str,
    full_refresh: bool,
    state_dir: Path,
) -> SchemaPlan:
    """Decide how this load meets the schema (see the module docstring)."""
    current = destination.current_schema() if mode != "replace" else None  # one catalog read
    plan = _plan(
        SchemaRecord.from_state({} if full_refresh else state),
        current,
        entity=entity,
        flow=flow,
        registry=registry,
        destination=destination,
        incoming=incoming,
        mode=mode,
        policy=policy,
        timestamptz=timestamptz,
        run_id=run_id,
        full_refresh=full_refresh,
        state_dir=state_dir,
    )
    plan.limits = _limits(current)
    plan.absorb = plan.absorb or policy == "warn"
    return plan


def against(
    record: SchemaRecord, current: pa.Schema | None, incoming: pa.Schema, timestamptz: bool
) -> tuple[pa.Schema, SchemaDiff]:
    """The schema the target is taken to have, and the drift of ``incoming`` from it: measured from
    the accepted version when there is one, else (a target loaded before schemas were recorded) from
    the destination's ``current`` schema."""
    if record.current is not None and record.source is not None:
        return record.current, drift(record.source, record.current, incoming, timestamptz=timestamptz)
    assert current is not None
    base = pa.schema([pa.field(f.name, f.type, f.nullable) for f in current])
    return base, drift(base, base, incoming, timestamptz=timestamptz)


def _limits(current: pa.Schema | None) -> dict[str, int]:
    found: dict[str, int] = {}
    for f in current or []:
        raw = (f.metadata or {}).get(MAX_LENGTH)
        if raw is not None and raw.isdigit():
            found[f.name] = int(raw)
    return found


def _plan(
    record: SchemaRecord,
    current: pa.Schema | None,
    *,
    entity: str,
    flow: str,
    registry: Registry,
    destination: Destination,
    incoming: pa.Schema,
    mode: WriteMode,
    policy: str,
    timestamptz: bool,
    run_id: str,
    full_refresh: bool,
    state_dir: Path,
) -> SchemaPlan:
    at = now()
    if full_refresh:
        doc = record.accept(incoming, incoming, how="full refresh", run_id=run_id, at=at)
        return SchemaPlan(incoming, record=doc, version=record.version)
    if record.current is None:
        if current is None:  # a first load: what arrives is version 1
            doc = record.accept(incoming, incoming, how="initial", run_id=run_id, at=at)
            return SchemaPlan(incoming, record=doc, version=record.version)
        if not diff_schemas(current, destination.stored_schema(incoming)):
            # A target loaded before schemas were recorded, holding the same shape: record it.
            target = pa.schema([incoming.field(name) for name in current.names])
            doc = record.accept(target, incoming, how="initial", run_id=run_id, at=at)
            return SchemaPlan(target, record=doc, version=record.version)
    base, diff = against(record, current, incoming, timestamptz)
    if not diff:
        return SchemaPlan(base, version=record.version)
    capabilities = destination.capabilities.schema_changes
    decision = registry.schema_decision(entity, diff, policy, frozenset(capabilities))
    applied = _applicable(diff, decision.apply)
    target = evolved(base, applied)
    ddl = destination.plan_schema_changes(target, applied) if mode != "replace" and applied else []
    if not decision.proceed:
        if decision.approval:
            path = plan_path(state_dir, flow, entity)
            write_plan(path, entity, flow, run_id, record.version, diff, applied, target, ddl)
            approval = SchemaApprovalRequired(
                f"{decision.reason}. Nothing was written. The plan (changes and the exact DDL) is in "
                f"{path}; review it, run `conduit schema approve {entity}`, then run again",
                path,
            )
            approval.changes = [c.to_json() for c in diff.changes]
            raise approval
        refused = SchemaError(decision.reason)
        refused.changes = [c.to_json() for c in diff.changes]
        raise refused
    missing = [
        c
        for c in applied
        if (c.kind == "added" and "add_column" not in capabilities)
        or (c.kind == "type_changed" and "widen_type" not in capabilities)
    ]
    if missing and mode != "replace":
        raise SchemaError(
            f"entity {entity!r}: the destination cannot make these schema changes: {'; '.join(map(str, missing))}"
        )
    dropped = tuple(
        c.column for c in diff.changes if c.kind == "added" and c.current is None and c not in applied
    )
    doc = record.accept(
        target, incoming, how=f"policy {policy}", run_id=run_id, at=at, changes=diff.changes, ddl=ddl
    )
    absorb = decision.apply is not None  # a policy that changes less than everything loads what fits
    return SchemaPlan(target, diff.changes, applied, ddl, dropped, doc, record.version, absorb=absorb)


def _applicable(diff: SchemaDiff, chosen: tuple[ColumnChange, ...] | None) -> tuple[ColumnChange, ...]:
    """The changes that alter the target: new columns and widenings (``None``: all of them)."""
    pool = diff.changes if chosen is None else chosen
    return tuple(c for c in pool if c.alters_target)


def write_plan(
    path: Path,
    entity: str,
    flow: str,
    run_id: str,
    from_version: int,
    diff: SchemaDiff,
    applied: tuple[ColumnChange, ...],
    target: pa.Schema,
    ddl: list[str],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(
        str(path),
        {
            "version": PLAN_VERSION,
            "entity": entity,
            "flow": flow,
            "created_at": now(),
            "run_id": run_id,
            "from_version": from_version,
            "to_version": from_version + 1,
            "changes": [c.to_json() for c in diff.changes],
            "applied": [c.to_json() for c in applied],
            "ddl": ddl,
            "target": schema_to_json(target),
        },
    )


def read_plan(path: Path) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"no schema plan waiting for approval ({path} does not exist)") from None
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: cannot read this schema plan: {exc}") from None
    return loaded


@dataclass
class Approval:
    entity: str
    from_version: int
    to_version: int
    changes: list[dict[str, Any]]
    ddl: list[str]


def approve(plan: EntityPlan, registry: Registry, state_dir: Path, run_id: str) -> Approval:
    """``conduit schema approve``: apply the waiting plan of ``plan`` (an :class:`EntityPlan`).

    The plan must still describe the drift between the accepted schema and what the source sends
    now; its DDL runs exactly as written, together with the new accepted version where the
    destination stores state (one transaction for PostgreSQL)."""
    destination = plan.destination_cls(plan.destination.options)
    try:
        return _approve(plan, destination, registry, state_dir, run_id)
    finally:
        destination.close()


def _approve(
    plan: EntityPlan, destination: Destination, registry: Registry, state_dir: Path, run_id: str
) -> Approval:
    from conduit.connectors import StateKey
    from conduit.state import normalized, store_for

    entity = plan.name
    path = plan_path(state_dir, plan.flow, entity)
    waiting = read_plan(path)
    incoming = plan.discover()
    destination.check()
    key = StateKey(plan.flow, entity)
    store = store_for(destination, key, state_dir)
    with store.lock(run_id):
        state = normalized(entity, store.read())
        record = SchemaRecord.from_state(state)
        stale = f"the plan in {path} is stale"
        if record.version != waiting.get("from_version"):
            raise SchemaError(
                f"{stale}: it was made against schema version {waiting.get('from_version')}, the accepted "
                f"version is now {record.version}; run the entity again for a new plan"
            )
        timestamptz = plan.rows.timestamp_to_timestamptz
        current = destination.current_schema() if record.current is None else None
        if record.current is None and current is None:
            raise SchemaError(f"{stale}: the target no longer exists; run the entity again")
        base, diff = against(record, current, incoming, timestamptz)
        if [c.to_json() for c in diff.changes] != waiting.get("changes"):
            raise SchemaError(
                f"{stale}: the source's schema changed again since it was written ({diff.describe() or 'no drift now'}); "
                "run the entity again for a new plan"
            )
        incompatible = [c for c in diff.changes if not c.safe]
        if incompatible:
            raise SchemaError(
                f"entity {entity!r}: cannot approve incompatible changes: {'; '.join(map(str, incompatible))}"
            )
        applied = _applicable(diff, None)
        target = evolved(base, applied)
        ddl = [str(statement) for statement in waiting.get("ddl") or []]
        new_state = dict(state)
        new_state["schema"] = record.accept(
            target, incoming, how="approved", run_id=run_id, at=now(), changes=diff.changes, ddl=ddl
        )
        new_state["updated_at"] = now()
        if destination.capabilities.stores_state:
            destination.apply_schema_changes(key, ddl, new_state)
        else:
            if ddl:
                raise SchemaError(f"entity {entity!r}: destination cannot run the plan's statements")
            store.write(new_state)
    path.unlink(missing_ok=True)
    return Approval(entity, record.version - 1, record.version, [c.to_json() for c in diff.changes], ddl)
