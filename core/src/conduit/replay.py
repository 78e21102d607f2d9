"""``conduit dlq replay``: load rejected rows again, through today's config, exactly once.

After a user fixes what rejected the rows (a declared type too narrow, a check too strict), a replay
takes the rows in the entity's dead-letter queue that carry their values, converts them to the
source's schema as the config now declares it (:func:`conduit.coerce.coerce_batch`), runs the
entity's checks, and loads those that pass into the destination, in one commit. The ids of the
loaded rows are written to a ``.removed.json`` list committed with the data, exactly like a run's
dead-letter part (see :mod:`conduit.dlq`): a crash mid-replay leaves the rows either loaded and gone
from the queue, or neither. Rows that still fail stay in the queue untouched; rows without values
(malformed records, kept as their raw text) cannot be replayed: fix the file and load it again.

The replay appends (``mode: replace`` would drop what the target holds), or merges for a merge entity,
and does not move the incremental watermark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from conduit.coerce import coerce_batch
from conduit.config.flow import EntityPlan
from conduit.connectors import Destination, StateKey, WriteMode, WriteRequest
from conduit.dlq import DeadLetterQueue, dlq_root
from conduit.errors import ConduitError, ConfigError, DataError
from conduit.evolution import SchemaPlan
from conduit.plugins import Registry
from conduit.rejects import CheckResult
from conduit.run import EntityResult
from conduit.schema import SchemaRecord
from conduit.state import normalized, now, store_for


@dataclass
class ReplayResult:
    entity: EntityResult
    replayed: int = 0
    still_rejected: int = 0
    without_values: int = 0
    reasons: dict[str, int] | None = None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def replay_entity(plan: EntityPlan, registry: Registry, state_dir: Path, run_id: str) -> ReplayResult:
    """Replay ``plan``'s dead-letter rows (see the module docstring)."""
    entity = EntityResult(
        plan.name,
        "failed",
        source=plan.source.type,
        destination=plan.destination.type,
        checks=[CheckResult(c.describe(), c.options.action) for c in plan.checks],
        started_at=now(),
    )
    outcome = ReplayResult(entity)
    started = time.perf_counter()
    destination = plan.destination_cls(plan.destination.options)
    try:
        _replay(plan, destination, registry, state_dir, run_id, outcome)
        entity.status = "success"
    except ConduitError as exc:
        entity.error = str(exc)
    finally:
        destination.close()
        entity.seconds = time.perf_counter() - started
        entity.finished_at = now()
    return outcome


def _mode(plan: EntityPlan, capabilities_modes: frozenset[WriteMode]) -> WriteMode:
    if plan.mode == "merge":
        return "merge"
    if "append" in capabilities_modes:
        return "append"
    raise ConfigError(
        f"entity {plan.name!r}: a replay adds rows to what the target holds, and destination type "
        f"{plan.destination.type!r} cannot append (modes: {', '.join(sorted(capabilities_modes))})"
    )


def _replay(
    plan: EntityPlan,
    destination: Destination,
    registry: Registry,
    state_dir: Path,
    run_id: str,
    outcome: ReplayResult,
) -> None:
    entity = outcome.entity
    where = f"entity {plan.name!r}"
    schema = plan.discover()
    destination.check()
    mode = _mode(plan, destination.capabilities.write_modes)
    entity.mode = mode
    store = store_for(destination, StateKey(plan.flow, plan.name), state_dir)
    entity.state_store = store.where
    with store.lock(run_id):
        state = normalized(plan.name, store.read())
        if state.get("in_progress"):
            raise ConduitError(
                f"{where}: run {state['in_progress'].get('run_id')} was interrupted; finish it with "
                "`conduit run --resume` before replaying rejected rows"
            )
        dlq = DeadLetterQueue(
            dlq_root(state_dir, plan.rows.dlq_path), plan.flow, plan.name, plan.rows.dlq_format
        )
        entity.warnings.extend(dlq.recover(state.get("run_id"), state.get("commit_seq")))
        records = [r for r in dlq.records()]
        usable = [r for r in records if isinstance(r.get("values"), dict)]
        outcome.without_values = len(records) - len(usable)
        entity.rows_read = len(usable)
        if not usable:
            return
        texts = {
            name: pa.array([_text(r["values"].get(name)) for r in usable], pa.string())
            for name in schema.names
        }
        options = plan.source.options
        coerced = coerce_batch(
            pa.RecordBatch.from_pydict(texts),
            schema,
            true_values=getattr(options, "true_values", None),
            false_values=getattr(options, "false_values", None),
        )
        failed = {f.index for f in coerced.failures}
        reasons: dict[str, int] = {}
        for failure in coerced.failures:
            key = f"coerce:{failure.reason}"
            reasons[key] = reasons.get(key, 0) + 1
        ids = [str(r["id"]) for i, r in enumerate(usable) if i not in failed]
        batch = coerced.batch
        checks = tuple(type(c)(c.options) for c in plan.checks)
        for check, result in zip(checks, entity.checks, strict=True):
            passed = _passed(check.evaluate(batch))
            result.rows_evaluated += batch.num_rows
            failing = batch.num_rows - passed.true_count
            if not failing:
                continue
            result.rows_failed += failing
            if check.options.action == "fail":
                raise DataError(f"{where}: replayed rows fail check {check.describe()} (action: fail)")
            if check.options.action == "warn":
                continue
            reasons[f"{check.describe()}:check_failed"] = (
                reasons.get(f"{check.describe()}:check_failed", 0) + failing
            )
            keep = passed.to_pylist()
            ids = [i for i, ok in zip(ids, keep, strict=True) if ok]
            batch = batch.filter(passed)
        outcome.still_rejected = len(usable) - batch.num_rows
        outcome.reasons = reasons
        entity.rows_rejected = outcome.still_rejected
        entity.rejections = reasons
        if not batch.num_rows:
            return
        accepted = SchemaRecord.from_state(state).current
        target = accepted if accepted is not None else schema
        dropped = tuple(name for name in schema.names if name not in target.names)
        batch, failures, _ = SchemaPlan(target, dropped=dropped).conform(batch)
        if failures:  # values that no longer fit the accepted schema stay in the queue
            keep = set(range(len(ids))) - {f.index for f in failures}
            ids = [ident for i, ident in enumerate(ids) if i in keep]
            outcome.still_rejected += len(failures)
            entity.rows_rejected = outcome.still_rejected
            for failure in failures:
                reasons[f"schema:{failure.reason}"] = reasons.get(f"schema:{failure.reason}", 0) + 1
        if not batch.num_rows:
            return
        session = destination.open(WriteRequest(plan.name, target, mode, run_id, 0, flow=plan.flow))
        sent = False
        try:
            session.write(batch)
            dlq.stage_removal(run_id, 0, ids)
            new_state = dict(state)
            new_state.update(
                run_id=run_id,
                commit_seq=0,
                updated_at=now(),
                rows_loaded_total=int(state.get("rows_loaded_total") or 0) + batch.num_rows,
            )
            sent = True
            session.commit(new_state)
            session.committed = True
        except BaseException:
            session.abort()
            if not sent:  # a failed commit may have landed: the next run settles its removal list
                dlq.discard(run_id, 0)
            raise
        dlq.promote(run_id, 0)
        if not store.with_data:
            store.write(new_state)
        entity.rows_loaded = outcome.replayed = batch.num_rows
        entity.commits = 1
        entity.batches = 1
        entity.bytes = batch.nbytes


def _passed(verdict: pa.Array) -> pa.BooleanArray:
    import pyarrow.compute as pc

    result: pa.BooleanArray = pc.fill_null(verdict, True)
    return result
