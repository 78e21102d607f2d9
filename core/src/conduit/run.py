"""The pipeline for one flow: read -> check -> (schema policy) -> write -> commit, per entity.

Each entity streams ``RecordBatch``es from its source into a destination load session. Reading runs
one step ahead in a background thread (a bounded queue of ``READ_AHEAD`` batches) so parsing the next
batch overlaps writing this one; memory stays bounded by the batch size times that small depth, never
by the input size. An entity either commits everything it read or aborts, leaving its target as it
was. A failing entity does not stop the others; the run's status says how it went.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from conduit.checks import Check
from conduit.config.flow import EntityPlan, Flow
from conduit.connectors import Destination, LoadSession, ReadRequest, SourceBatch, WriteRequest
from conduit.errors import ConduitError, ConfigError, ConnectorError, DataError, DataLocation, SchemaError
from conduit.plugins import Registry
from conduit.schema import diff_schemas

READ_AHEAD = 2

EntityStatus = Literal["success", "failed"]
RunStatus = Literal["success", "partial", "failed"]


@dataclass
class CheckResult:
    check: str
    action: str
    rows_evaluated: int = 0
    rows_failed: int = 0
    first_failure: str | None = None


@dataclass
class EntityResult:
    name: str
    status: EntityStatus
    rows_read: int = 0
    rows_loaded: int = 0
    batches: int = 0
    seconds: float = 0.0
    source: str = ""
    destination: str = ""
    mode: str = ""
    error: str | None = None
    debug: str | None = None
    checks: list[CheckResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "source": self.source,
            "destination": self.destination,
            "mode": self.mode,
            "error": self.error,
            "checks": [vars(c) for c in self.checks],
            "warnings": self.warnings,
        }


@dataclass
class RunResult:
    run_id: str
    flow: str
    started_at: str
    finished_at: str = ""
    entities: list[EntityResult] = field(default_factory=list)

    @property
    def status(self) -> RunStatus:
        failed = sum(1 for e in self.entities if e.status == "failed")
        if failed == 0:
            return "success"
        return "failed" if failed == len(self.entities) else "partial"

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "flow": self.flow,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "entities": [e.to_json() for e in self.entities],
        }


class RunListener(Protocol):
    """Receives progress; the CLI renders it (a live line on a TTY, plain lines otherwise)."""

    def entity_started(self, plan: EntityPlan) -> None: ...

    def progress(self, entity: str, rows: int, seconds: float) -> None: ...

    def entity_finished(self, result: EntityResult) -> None: ...


class _Silent:
    def entity_started(self, plan: EntityPlan) -> None:
        pass

    def progress(self, entity: str, rows: int, seconds: float) -> None:
        pass

    def entity_finished(self, result: EntityResult) -> None:
        pass


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def run_flow(
    flow: Flow,
    registry: Registry,
    *,
    entities: list[str] | None = None,
    listener: RunListener | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Run the flow's entities (all, or the named ones, in file order) and report what happened."""
    if entities:
        unknown = [name for name in entities if name not in flow.entities]
        if unknown:
            raise ConfigError(
                f"{flow.path}: no entity named {', '.join(map(repr, unknown))}; "
                f"the flow has: {', '.join(flow.entities)}"
            )
    selected = [plan for name, plan in flow.entities.items() if not entities or name in entities]
    result = RunResult(run_id or new_run_id(), str(flow.path), _now())
    notify = listener or _Silent()
    for plan in selected:
        notify.entity_started(plan)
        entity_result = run_entity(plan, registry, result.run_id, notify)
        result.entities.append(entity_result)
        notify.entity_finished(entity_result)
    result.finished_at = _now()
    return result


def run_entity(plan: EntityPlan, registry: Registry, run_id: str, listener: RunListener) -> EntityResult:
    """Move one entity; every failure becomes a failed result with a one-line message."""
    result = EntityResult(
        plan.name,
        "failed",
        source=plan.source.type,
        destination=plan.destination.type,
        mode=plan.mode,
        checks=[CheckResult(check.describe(), check.options.action) for check in plan.checks],
    )
    started = time.perf_counter()
    try:
        _move(plan, registry, run_id, listener, result, started)
        result.status = "success"
    except ConduitError as exc:
        result.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a connector bug fails its entity, not the whole run
        result.error = (
            f"unexpected error in the {plan.source.type} -> {plan.destination.type} load: "
            f"{type(exc).__name__}: {exc}"
        )
        result.debug = traceback.format_exc()
    finally:
        result.seconds = time.perf_counter() - started
    return result


def _move(
    plan: EntityPlan,
    registry: Registry,
    run_id: str,
    listener: RunListener,
    result: EntityResult,
    started: float,
) -> None:
    source = plan.source_cls(plan.source.options)
    destination = plan.destination_cls(plan.destination.options)
    try:
        source.check()
        destination.check()
        schema = source.discover()
        _verify_check_columns(plan, schema)
        target_schema = _target_schema(plan, registry, destination, schema)
        request = ReadRequest(plan.name, schema, plan.batch_size)
        session: LoadSession = destination.open(WriteRequest(plan.name, target_schema, plan.mode, run_id))
        with session:
            position: dict[str, Any] = {}
            for item in _read_ahead(source.read(request), READ_AHEAD):
                batch = _conform(item.data, schema, plan)
                result.rows_read += batch.num_rows
                result.batches += 1
                _run_checks(plan.checks, batch, item, result)
                if target_schema is not schema:
                    batch = batch.select(target_schema.names)
                session.write(batch)
                result.rows_loaded += batch.num_rows
                position = dict(item.position)
                listener.progress(plan.name, result.rows_read, time.perf_counter() - started)
            session.commit(
                {"run_id": run_id, "entity": plan.name, "rows": result.rows_loaded, "position": position}
            )
            session.committed = True
        result.warnings.extend(_check_warnings(result))
    finally:
        source.close()


def _verify_check_columns(plan: EntityPlan, schema: pa.Schema) -> None:
    for check in plan.checks:
        missing = [c for c in check.columns() if c not in schema.names]
        if missing:
            raise ConfigError(
                f"entity {plan.name!r}: check {check.describe()} names columns the source does not have: "
                f"{', '.join(missing)} (source columns: {', '.join(schema.names)})"
            )


def _target_schema(
    plan: EntityPlan, registry: Registry, destination: Destination, incoming: pa.Schema
) -> pa.Schema:
    """The schema to write: the incoming one, reordered to the target's column order when only the
    order differs; a real difference goes to the schema policy."""
    if plan.mode != "append":
        return incoming
    current = destination.current_schema()
    if current is None:
        return incoming
    diff = diff_schemas(current, destination.stored_schema(incoming))
    if not diff:
        if current.names == incoming.names:
            return incoming
        return pa.schema([incoming.field(name) for name in current.names])
    decision = registry.schema_decision(plan.name, diff)
    if not decision.proceed:
        raise SchemaError(decision.reason)
    return incoming


def _conform(batch: pa.RecordBatch, schema: pa.Schema, plan: EntityPlan) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    if sorted(batch.schema.names) == sorted(schema.names):
        reordered = batch.select(schema.names)
        if reordered.schema.equals(schema):
            return reordered
    raise ConnectorError(
        f"source type {plan.source.type!r} yielded a batch whose schema differs from the one it "
        f"discovered (a bug in the connector): got {batch.schema.to_string(show_schema_metadata=False)}, "
        f"expected {schema.to_string(show_schema_metadata=False)}"
    )


def _run_checks(
    checks: tuple[Check, ...], batch: pa.RecordBatch, item: SourceBatch, result: EntityResult
) -> None:
    for check, outcome in zip(checks, result.checks, strict=True):
        passed = pc.fill_null(check.evaluate(batch), True)  # a null verdict counts as passing
        failed = batch.num_rows - pc.sum(passed.cast(pa.int64())).as_py() if batch.num_rows else 0
        outcome.rows_evaluated += batch.num_rows
        if not failed:
            continue
        outcome.rows_failed += failed
        index = pc.index(passed, False).as_py()
        location = _row_location(item, batch.num_rows, index)
        row = {name: batch.column(name)[index].as_py() for name in batch.schema.names}
        shown = repr(row)
        shown = shown if len(shown) <= 300 else shown[:297] + "..."
        if outcome.first_failure is None:
            outcome.first_failure = str(location)
        if check.options.action == "fail":
            raise DataError(f"check {check.describe()} failed: {shown}", location)


def _check_warnings(result: EntityResult) -> list[str]:
    return [
        f"check {c.check}: {c.rows_failed} of {c.rows_evaluated} rows failed (action: warn; first at "
        f"{c.first_failure})"
        for c in result.checks
        if c.rows_failed and c.action == "warn"
    ]


def _row_location(item: SourceBatch, rows_in_batch: int, index: int) -> DataLocation:
    file = item.position.get("file")
    end = item.position.get("row")
    row = end - rows_in_batch + index + 1 if isinstance(end, int) else None
    return DataLocation(file=str(file) if file is not None else None, row=row)


_DONE = object()


def _read_ahead(batches: Iterator[SourceBatch], depth: int) -> Iterator[SourceBatch]:
    """Iterate ``batches`` in a background thread, at most ``depth`` batches ahead of the consumer.

    An exception in the source is re-raised in the consumer; if the consumer stops early (an error
    while writing), the producer is told to stop and the source generator is closed in its own thread.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in batches:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            put(exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="conduit-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()
