"""The pipeline for one flow: read -> coerce -> check -> (schema policy) -> write -> commit, per entity.

Each entity streams ``RecordBatch``es from its source into a destination load session. Reading runs
one step ahead in a background thread (a bounded queue of ``READ_AHEAD`` batches) so parsing the next
batch overlaps writing this one; memory stays bounded by the batch size times that small depth, never
by the input size. An entity either commits everything it read or aborts, leaving its target as it
was. A failing entity does not stop the others; the run's status says how it went.

Rows that are not loaded (a source's ``on_error: dlq`` rejects, checks with ``action: dlq``) go to
the entity's dead-letter queue (:mod:`conduit.dlq`) with the same commit as the good rows; see
:mod:`conduit.rejects`.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import pyarrow as pa

from conduit import interrupts
from conduit.coerce import keep_mask
from conduit.config.flow import EntityPlan, Flow
from conduit.connectors import (
    CursorFilter,
    Destination,
    LoadSession,
    ReadRequest,
    Source,
    SourceBatch,
    StateKey,
    WriteMode,
    WriteRequest,
)
from conduit.dlq import DeadLetterQueue, dlq_root
from conduit.errors import ConduitError, ConfigError, ConnectorError, DataError, Interrupted, SchemaError
from conduit.evolution import SchemaApprovalRequired, plan_schema
from conduit.files import file_version
from conduit.incremental import CursorWindow, counter, from_json, lookback_delta, to_json, window_state
from conduit.plugins import Registry
from conduit.rejects import CheckResult, Rejections, RowMap
from conduit.state import DEFAULT_STATE_DIR, StateStore, normalized, now, store_for

READ_AHEAD = 2
ABANDON_READER_AFTER = 5.0
"""Seconds an interrupted run waits for the read-ahead thread to stop (a source blocked in C that
nothing cancels); then it leaves the daemon thread behind rather than hang."""

EntityStatus = Literal["success", "failed", "interrupted"]
RunStatus = Literal["success", "partial", "failed", "interrupted"]


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
    rows_rejected: int = 0
    rows_skipped: int = 0
    """Rows the source sent that were already loaded (below the watermark, remembered at it, in a
    file loaded before, or committed before a resume); not part of ``rows_read``."""
    rows_null_cursor: int = 0
    bytes: int = 0
    commits: int = 0
    started_at: str = ""
    finished_at: str = ""
    watermark_before: Any = None
    watermark_after: Any = None
    resumed_from: str | None = None
    full_refresh: bool = False
    state_store: str = ""
    rejections: dict[str, int] = field(default_factory=dict)
    """Rejected rows by ``rule:reason`` (``coerce:not_a_number``, ``range(amount, max=100):check_failed``)."""
    dlq: str | None = None
    """The entity's dead-letter directory, when a row was sent there."""
    schema_version: int = 0
    schema_changes: list[dict[str, Any]] = field(default_factory=list)
    """The drift this run met, each change with its kind, types and compatibility."""
    ddl: list[str] = field(default_factory=list)
    """Statements run on the target by this run (inside the load's transaction)."""
    values_dropped: dict[str, int] = field(default_factory=dict)
    """Non-null values of new columns left out (``schema.policy: warn``), per column."""
    needs_approval: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "rows_skipped": self.rows_skipped,
            "rows_null_cursor": self.rows_null_cursor,
            "bytes": self.bytes,
            "batches": self.batches,
            "commits": self.commits,
            "seconds": round(self.seconds, 3),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "source": self.source,
            "destination": self.destination,
            "mode": self.mode,
            "watermark_before": self.watermark_before,
            "watermark_after": self.watermark_after,
            "resumed_from": self.resumed_from,
            "full_refresh": self.full_refresh,
            "state_store": self.state_store,
            "rejections": dict(self.rejections),
            "dlq": self.dlq,
            "schema_version": self.schema_version,
            "schema_changes": self.schema_changes,
            "ddl": self.ddl,
            "values_dropped": self.values_dropped,
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
    not_started: list[str] = field(default_factory=list)
    """Entities the run did not start because it was interrupted (SIGINT, SIGTERM) before them."""

    @property
    def status(self) -> RunStatus:
        if self.not_started or any(e.status == "interrupted" for e in self.entities):
            return "interrupted"
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
            "not_started": list(self.not_started),
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


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class RunOptions:
    """How a run treats the state: ``resume`` an interrupted run, or ``full_refresh`` (ignore the
    state and reload everything with mode replace). ``state_dir``: the local state directory
    (default ``.conduit`` beside the flow)."""

    resume: bool = False
    full_refresh: bool = False
    state_dir: Path | None = None


def run_flow(
    flow: Flow,
    registry: Registry,
    *,
    entities: list[str] | None = None,
    listener: RunListener | None = None,
    run_id: str | None = None,
    options: RunOptions | None = None,
) -> RunResult:
    """Run the flow's entities (all, or the named ones, in file order) and report what happened.

    SIGINT and SIGTERM stop the run at the next batch boundary (:mod:`conduit.interrupts`): the entity
    being loaded ends ``interrupted`` with what it committed, the later ones are not started."""
    if entities:
        unknown = [name for name in entities if name not in flow.entities]
        if unknown:
            raise ConfigError(
                f"{flow.path}: no entity named {', '.join(map(repr, unknown))}; "
                f"the flow has: {', '.join(flow.entities)}"
            )
    selected = [plan for name, plan in flow.entities.items() if not entities or name in entities]
    result = RunResult(run_id or new_run_id(), str(flow.path), now())
    notify = listener or _Silent()
    chosen = options or RunOptions()
    if chosen.state_dir is None:
        chosen = RunOptions(chosen.resume, chosen.full_refresh, flow.path.parent / DEFAULT_STATE_DIR)
    with interrupts.handling():
        for index, plan in enumerate(selected):
            if interrupts.requested():
                result.not_started = [p.name for p in selected[index:]]
                break
            notify.entity_started(plan)
            entity_result = run_entity(plan, registry, result.run_id, notify, chosen)
            result.entities.append(entity_result)
            notify.entity_finished(entity_result)
    result.finished_at = now()
    return result


def run_entity(
    plan: EntityPlan,
    registry: Registry,
    run_id: str,
    listener: RunListener,
    options: RunOptions | None = None,
) -> EntityResult:
    """Move one entity; every failure becomes a failed result with a one-line message, an
    interruption an ``interrupted`` one (both with the rows committed before)."""
    result = EntityResult(
        plan.name,
        "failed",
        source=plan.source.type,
        destination=plan.destination.type,
        mode=plan.mode,
        checks=[CheckResult(check.describe(), check.options.action) for check in plan.checks],
        started_at=now(),
    )
    started = time.perf_counter()
    try:
        _move(plan, registry, run_id, listener, result, started, options or RunOptions())
        result.status = "success"
    except Interrupted as exc:
        result.status = "interrupted"
        result.error = str(exc)
    except ConduitError as exc:
        result.error = str(exc)
        result.needs_approval = isinstance(exc, SchemaApprovalRequired)
        if isinstance(exc, SchemaError) and exc.changes:
            result.schema_changes = list(exc.changes)
    except Exception as exc:  # noqa: BLE001 - a connector bug fails its entity, not the whole run
        result.error = (
            f"unexpected error in the {plan.source.type} -> {plan.destination.type} load: "
            f"{type(exc).__name__}: {exc}"
        )
        result.debug = traceback.format_exc()
    finally:
        result.seconds = time.perf_counter() - started
        result.finished_at = now()
    return result


def _move(
    plan: EntityPlan,
    registry: Registry,
    run_id: str,
    listener: RunListener,
    result: EntityResult,
    started: float,
    options: RunOptions,
) -> None:
    source = plan.source_cls(plan.source.options)
    destination = plan.destination_cls(plan.destination.options)
    try:
        source.check()
        destination.check()
        schema = source.discover()
        _verify_check_columns(plan, schema)
        root = options.state_dir or Path(DEFAULT_STATE_DIR)
        store = store_for(destination, StateKey(plan.flow, plan.name), root)
        result.state_store = store.where
        with store.lock(run_id):
            state = normalized(plan.name, store.read())
            dlq = DeadLetterQueue(
                dlq_root(root, plan.rows.dlq_path), plan.flow, plan.name, plan.rows.dlq_format
            )
            result.warnings.extend(dlq.recover(state.get("run_id"), state.get("commit_seq")))
            _Load(
                plan,
                registry,
                run_id,
                listener,
                result,
                started,
                options,
                source,
                destination,
                store,
                schema,
                state,
                dlq,
            ).run()
    finally:
        source.close()
        destination.close()


@dataclass
class _Resume:
    file: str | None
    version: str | None
    row: int


class _Load:
    """One entity's load with checkpoints: the state before, the filter, the sessions, the commits."""

    def __init__(
        self,
        plan: EntityPlan,
        registry: Registry,
        run_id: str,
        listener: RunListener,
        result: EntityResult,
        started: float,
        options: RunOptions,
        source: Source,
        destination: Destination,
        store: StateStore,
        schema: pa.Schema,
        state: dict[str, Any],
        dlq: DeadLetterQueue,
    ) -> None:
        self.plan, self.registry, self.run_id, self.listener = plan, registry, run_id, listener
        self.checks = tuple(type(check)(check.options) for check in plan.checks)  # fresh run state
        self.rejections = Rejections(
            dlq,
            run_id,
            plan.name,
            plan.flow,
            secret_columns=plan.rows.secret_columns,
            max_rejected=plan.rows.max_rejected,
            max_rejected_ratio=plan.rows.max_rejected_ratio,
        )
        self.result, self.started, self.options = result, started, options
        self.source, self.destination, self.store, self.schema = source, destination, store, schema
        self.where = f"entity {plan.name!r}"
        self.prior = state
        self.commit_outcome_unknown = False
        """Set while ``session.commit`` runs: a failure there may come after the commit landed."""
        self.mode: WriteMode = plan.mode
        in_progress = state.get("in_progress")
        if options.full_refresh:
            if "replace" not in destination.capabilities.write_modes:
                raise ConfigError(
                    f"{self.where}: --full-refresh reloads with mode replace, which destination type "
                    f"{plan.destination.type!r} does not support"
                )
            self.mode = "replace"
            self.prior = normalized(plan.name, None)
            in_progress = None
        elif in_progress and not options.resume:
            raise ConduitError(
                f"{self.where}: run {in_progress.get('run_id')} was interrupted after committing "
                f"{in_progress.get('rows', 0):,} rows ({_where_stopped(in_progress)}); run again with --resume "
                "to continue it, or with --full-refresh to reload everything"
            )
        self.resuming: dict[str, Any] | None = in_progress if options.resume and in_progress else None
        result.mode = self.mode
        result.resumed_from = self.resuming.get("run_id") if self.resuming else None
        result.full_refresh = options.full_refresh
        caps = source.capabilities
        self.window = self._window()
        self.positional = caps.file_positions
        self.ordered = caps.cursor_pushdown and self.window is not None
        self.checkpoints = self.mode != "replace" and (self.positional or self.ordered)
        self.skip_files: dict[str, str] = {}
        if plan.incremental is not None and self.positional:
            self.skip_files.update(self.prior.get("files") or {})
        self.files_done: dict[str, str] = {}
        self.resume_at: _Resume | None = None
        if self.resuming and self.positional:
            self.files_done.update(self.resuming.get("files_done") or {})
            self.skip_files.update(self.files_done)
            self.resume_at = _Resume(
                self.resuming.get("file"), self.resuming.get("version"), int(self.resuming.get("row") or 0)
            )
        self.rows_before = int(self.resuming.get("rows", 0)) if self.resuming else 0
        self.commits_before = int(self.resuming.get("commits", 0)) if self.resuming else 0
        result.watermark_before = self.prior.get("watermark")

    def _window(self) -> CursorWindow | None:
        inc = self.plan.incremental
        if inc is None:
            return None
        names = self.schema.names
        if inc.cursor not in names:
            raise ConfigError(
                f"{self.where}: incremental.cursor {inc.cursor!r} is not a column of the source "
                f"(columns: {', '.join(names)})"
            )
        keys = inc.primary_key or list(names)
        missing = [k for k in keys if k not in names]
        if missing:
            raise ConfigError(
                f"{self.where}: incremental.primary_key names unknown columns: {', '.join(missing)}"
            )
        cursor_type = self.schema.field(inc.cursor).type
        where = f"{self.where}: incremental.cursor {inc.cursor!r}"
        stored_cursor = self.prior.get("cursor")
        if stored_cursor not in (None, inc.cursor) and self.prior.get("watermark") is not None:
            raise ConfigError(
                f"{self.where}: the state's watermark is for cursor {stored_cursor!r}, the config now says "
                f"{inc.cursor!r}; run `conduit state reset {self.plan.name}` or use --full-refresh"
            )
        stored_key = self.prior.get("primary_key")  # None: a state from before keys were recorded
        if stored_key is not None and self._has_mark() and list(stored_key) != list(inc.primary_key or []):
            raise ConfigError(
                f"{self.where}: the state's watermark was loaded with incremental.primary_key "
                f"{_key_text(stored_key)}, the config now says {_key_text(inc.primary_key)}; the rows at the "
                "watermark are remembered by that key, so they would be loaded again: run "
                f"`conduit state reset {self.plan.name}` or use --full-refresh"
            )

        def value(raw: Any) -> Any:
            return None if raw is None else from_json(raw, cursor_type, where).as_py()

        dedup = self.mode != "merge"
        if self.resuming is not None:
            mark = value(self.resuming.get("mark"))
            boundary = counter(self.resuming.get("boundary_in"))
            run_max = value(self.resuming.get("run_max"))
            run_boundary = counter(self.resuming.get("run_boundary"))
        elif self.prior.get("watermark") is not None:
            mark = run_max = value(self.prior["watermark"])
            boundary = counter(self.prior.get("boundary"))
            run_boundary = Counter(boundary)
        else:
            mark, boundary, run_max, run_boundary = value(inc.initial_value), Counter(), None, Counter()
        if inc.lookback is not None and mark is not None and self.resuming is None:
            mark = mark - lookback_delta(inc.lookback, cursor_type, where)
        return CursorWindow(
            inc.cursor,
            cursor_type,
            mark,
            boundary if dedup else Counter(),
            dedup,
            keys,
            inc.on_null,
            self.where,
            run_max,
            run_boundary if dedup else Counter(),
        )

    def _has_mark(self) -> bool:
        """The state remembers rows by their identity: a watermark, or an interrupted run's maximum."""
        if self.prior.get("watermark") is not None:
            return True
        return self.resuming is not None and self.resuming.get("run_max") is not None

    def _boundary_columns(self, target: pa.Schema) -> list[str]:
        """The columns a row is identified by at the watermark when there is no primary key: those the
        state's identities were computed over, else the source's columns that the target keeps. Never
        simply the source's columns of this run: a column added since (left out by ``schema.policy:
        warn``, or added to the target) would change every row's identity, and the rows remembered at
        the watermark would be loaded again."""
        stored = self.prior.get("boundary_columns")
        if stored and self._has_mark():
            return [str(name) for name in stored]
        kept = [name for name in self.schema.names if name in target.names]
        return kept or list(self.schema.names)

    def _identity(self) -> dict[str, Any]:
        """How the rows at the watermark are identified, stored with it (checked by :meth:`_window`)."""
        inc = self.plan.incremental
        if inc is None or self.window is None:
            return {}
        return {"primary_key": list(inc.primary_key or []), "boundary_columns": list(self.window.key_columns)}

    # -- the load ---------------------------------------------------------------------------------

    def run(self) -> None:
        plan, result = self.plan, self.result
        self.evolution = plan_schema(
            entity=plan.name,
            flow=plan.flow,
            registry=self.registry,
            destination=self.destination,
            incoming=self.schema,
            mode=self.mode,
            state=self.prior,
            policy=plan.rows.schema_policy,
            timestamptz=plan.rows.timestamp_to_timestamptz,
            run_id=self.run_id,
            full_refresh=self.options.full_refresh,
            state_dir=self.options.state_dir or Path(DEFAULT_STATE_DIR),
        )
        evolution = self.evolution
        if evolution.record is not None:
            self.prior["schema"] = evolution.record  # committed with the data, at every commit
        result.schema_version = evolution.version
        result.schema_changes = [c.to_json() for c in evolution.changes]
        result.ddl = list(evolution.ddl)
        result.warnings.extend(
            f"the source has a new column {column!r} that the target does not have; schema.policy "
            f"{plan.rows.schema_policy} leaves the target as it is, so its values are not loaded "
            "(counted in values_dropped)"
            for column in evolution.dropped
        )
        target_schema = self.target_schema = evolution.target
        if self.window is not None and plan.incremental is not None and not plan.incremental.primary_key:
            self.window.key_columns = self._boundary_columns(target_schema)
        self.first_seq = self.commits_before
        cursor = None
        if self.window is not None:
            cursor = CursorFilter(self.window.column, self.window.mark, inclusive=True)
        request = ReadRequest(
            plan.name, self.schema, plan.batch_size, cursor, dict(self.skip_files), plan.rows.on_error
        )
        self.seq = self.commits_before
        self.committed_rows: tuple[int, int] = (0, 0)
        self.committed_reasons: dict[str, int] = {}
        session = self._open()
        self.rows_in_commit = 0
        current: tuple[str, str | None] | None = None
        position: dict[str, Any] = {}
        try:
            for item in _read_ahead(self.source.read(request), READ_AHEAD):
                interrupts.raise_if_requested()  # a batch boundary: stop here when asked to
                batch: pa.RecordBatch | None = _conform(item.data, self.schema, plan)
                assert batch is not None
                position = dict(item.position)
                rejected = list(item.rejected)
                end = position.get("row")
                consumed = batch.num_rows + len(rejected)
                file_name = str(position["file"]) if position.get("file") is not None else None
                rows = RowMap(
                    file_name, end - consumed if isinstance(end, int) else None, (r.row for r in rejected)
                )
                if self.positional:
                    file = str(position.get("file"))
                    version = position.get("version") or file_version(file)
                    if current is None or current[0] != file:
                        if current is not None:
                            self.files_done[current[0]] = current[1] or ""
                        current = (file, version)
                    batch, rejected = self._resume_slice(batch, rejected, rows, file, version, position)
                    if batch is None:
                        continue
                if rejected:
                    result.rows_read += len(rejected)
                    self.rejections.from_source(file_name, rejected)
                    self.rows_in_commit += len(rejected)
                if self.window is not None:
                    outcome = self.window.apply(batch, rows.location)
                    result.rows_skipped += outcome.dropped_loaded
                    result.rows_null_cursor += outcome.skipped_null
                    batch = outcome.batch
                    rows.keep(outcome.kept)
                if batch.num_rows:
                    self._load_batch(session, batch, rows, target_schema)
                self._after_batch()
                if self.checkpoints and self.rows_in_commit >= plan.commit_every:
                    session = self._checkpoint(session, current, position)
            if current is not None:
                self.files_done[current[0]] = current[1] or ""
            self.rejections.check_ratio(self.where, result.rows_read)
            interrupts.raise_if_requested()
            self._commit(session, self._final_state())
        except BaseException as stopped:
            session.abort()
            # An interruption that stopped the commit cancelled it: the destination said it failed.
            if self.commit_outcome_unknown and not isinstance(stopped, Interrupted):
                # The commit may have landed (its acknowledgement lost): the pending dead-letter part
                # stays, and the next run settles it from the committed state (DeadLetterQueue.recover).
                self.rejections.left_pending()
                result.warnings.append(
                    f"commit {self.seq} failed after it was sent; if it landed (the connection lost before "
                    "its acknowledgement) the next run finds it in the committed state, keeps its rejected "
                    "rows and goes on from there"
                )
            else:
                self.rejections.aborted(self.seq)
            # What the entity reports is what it committed: rows of the aborted session were neither
            # loaded nor rejected, and are read again by the next (resumed) run.
            result.rows_loaded, result.rows_rejected = self.committed_rows
            result.rows_read = sum(self.committed_rows)
            result.rejections = dict(self.committed_reasons)
            raise
        result.watermark_after = self.final_state.get("watermark")
        result.warnings.extend(_check_warnings(result))

    def _open(self) -> LoadSession:
        request = WriteRequest(
            self.plan.name, self.target_schema, self.mode, self.run_id, self.seq, flow=self.plan.flow
        )
        session = self.destination.open(request)
        if self.seq == self.first_seq and self.evolution.ddl:
            try:
                session.apply_schema_changes(self.evolution.ddl)
            except BaseException:
                session.abort()
                raise
        self.rejections.open(self.seq)
        return session

    def _commit(self, session: LoadSession, state: dict[str, Any]) -> None:
        """Dead-letter part durable, then the destination's commit, then the part promoted."""
        self.rejections.seal()
        self.commit_outcome_unknown = True
        session.commit(state)
        self.commit_outcome_unknown = False
        session.committed = True
        self.rejections.committed(self.seq)
        self._after_commit(state)

    def _after_batch(self) -> None:
        result, rejections = self.result, self.rejections
        result.rows_rejected = rejections.rows
        result.rejections = dict(rejections.reasons)
        if rejections.rows:
            result.dlq = str(rejections.dlq.directory)
        rejections.check_count(self.where)
        self.listener.progress(self.plan.name, result.rows_read, time.perf_counter() - self.started)

    def _resume_slice(
        self,
        batch: pa.RecordBatch,
        rejected: list[Any],
        rows: RowMap,
        file: str,
        version: str | None,
        position: dict[str, Any],
    ) -> tuple[pa.RecordBatch | None, list[Any]]:
        """Drop what an interrupted run already committed: whole files, and the first rows of the
        file it stopped in (a source that skips files itself never sends them). Rows the source
        rejected count as rows here too: they went to the dead-letter queue with that commit."""
        consumed = batch.num_rows + len(rejected)
        if self.skip_files.get(file) is not None and self.skip_files.get(file) == version:
            self.result.rows_skipped += consumed
            return None, []
        resume = self.resume_at
        if resume is None or resume.file != file:
            return batch, rejected
        if version != resume.version:
            raise ConnectorError(
                f"{self.where}: {file} changed since the interrupted run stopped in it at row {resume.row:,} "
                "(its size or modification time differs), so the run cannot continue exactly where it "
                "stopped; use --full-refresh to reload everything"
            )
        end = int(position.get("row") or 0)
        start = end - consumed
        if end <= resume.row:
            self.result.rows_skipped += consumed
            return None, []
        if start < resume.row:
            later = [r for r in rejected if r.row is not None and r.row > resume.row]
            good = (resume.row - start) - (len(rejected) - len(later))
            self.result.rows_skipped += resume.row - start
            rows.offset(good)
            return batch.slice(good), later
        return batch, rejected

    def _load_batch(
        self, session: LoadSession, batch: pa.RecordBatch, rows: RowMap, target_schema: pa.Schema
    ) -> None:
        result = self.result
        result.rows_read += batch.num_rows
        result.batches += 1
        checked = self.rejections.apply_checks(self.checks, result.checks, batch, rows)
        batch, failures, dropped = self.evolution.conform(checked)
        if failures and not self.evolution.absorb:
            first = failures[0]
            raise DataError(
                f"{first.message}; nothing of this commit was loaded (with schema.policy: warn such rows go "
                "to the dead-letter queue)",
                rows.location(first.index, first.column),
            )
        if failures:  # values that do not fit the target's columns (schema.policy: warn)
            self.rejections.from_schema(failures, checked, rows)
        for column, count in dropped.items():
            result.values_dropped[column] = result.values_dropped.get(column, 0) + count
        if batch.num_rows:
            session.write(batch)
        if self.window is not None:  # the rows loaded, as the source sent them (as window.apply saw them)
            loaded = (
                checked.filter(keep_mask(checked.num_rows, (f.index for f in failures)))
                if failures
                else checked
            )
            self.window.observe(loaded)
        result.rows_loaded += batch.num_rows
        result.bytes += batch.nbytes
        self.rows_in_commit += batch.num_rows

    def _checkpoint(
        self, session: LoadSession, current: tuple[str, str | None] | None, position: dict[str, Any]
    ) -> LoadSession:
        """Commit what is loaded so far with the position reached, then open the next session."""
        window = self.window
        progress: dict[str, Any] = {
            "run_id": self.run_id,
            "started_at": self.result.started_at,
            "rows": self.rows_before + self.result.rows_loaded,
            "commits": self.seq + 1,
            "mark": None,
            "boundary_in": {},
            "run_max": None,
            "run_boundary": {},
            "files_done": dict(self.files_done),
            "file": current[0] if current else None,
            "version": current[1] if current else None,
            "row": int(position.get("row") or 0) if self.positional else 0,
        }
        if window is not None:
            if self.ordered and not self.positional:
                progress["mark"], progress["boundary_in"] = to_json(window.run_max), dict(window.run_boundary)
            else:
                progress["mark"], progress["boundary_in"] = to_json(window.mark), dict(window.remaining)
            progress["run_max"], progress["run_boundary"] = to_json(window.run_max), dict(window.run_boundary)
        state = self._stamped({**self.prior, **self._identity()}, progress)
        self._commit(session, state)
        self.seq += 1
        self.rows_in_commit = 0
        return self._open()

    def _final_state(self) -> dict[str, Any]:
        state = dict(self.prior)
        if self.window is not None:
            if self.window.run_max is not None:
                state.update(window_state(self.window))
            state["cursor"] = self.window.column
            state.update(self._identity())
        if self.plan.incremental is not None and self.positional:
            files = {} if self.options.full_refresh else dict(self.prior.get("files") or {})
            files.update(self.files_done)
            state["files"] = files
        self.final_state = self._stamped(state, None)
        return self.final_state

    def _stamped(self, state: dict[str, Any], progress: dict[str, Any] | None) -> dict[str, Any]:
        """``state`` marked as written by this run, with its checkpoint (``None``: finished)."""
        state.update(
            in_progress=progress,
            run_id=self.run_id,
            commit_seq=self.seq,
            updated_at=now(),
            rows_loaded_total=int(self.prior.get("rows_loaded_total") or 0) + self.result.rows_loaded,
        )
        return state

    def _after_commit(self, state: dict[str, Any]) -> None:
        self.result.commits += 1
        self.committed_rows = (self.result.rows_loaded, self.rejections.rows)
        self.committed_reasons = dict(self.rejections.reasons)
        if not self.store.with_data:
            self.store.write(state)


def _key_text(key: Any) -> str:
    return f"[{', '.join(map(str, key))}]" if key else "none"


def _where_stopped(progress: Mapping[str, Any]) -> str:
    if progress.get("file"):
        return f"stopped in {progress['file']} at row {int(progress.get('row') or 0):,}"
    if progress.get("mark") is not None:
        return f"stopped at cursor {progress['mark']!r}"
    return "stopped mid-run"


def _verify_check_columns(plan: EntityPlan, schema: pa.Schema) -> None:
    for check in plan.checks:
        missing = [c for c in check.columns() if c not in schema.names]
        if missing:
            raise ConfigError(
                f"entity {plan.name!r}: check {check.describe()} names columns the source does not have: "
                f"{', '.join(missing)} (source columns: {', '.join(schema.names)})"
            )


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


def _check_warnings(result: EntityResult) -> list[str]:
    warnings = []
    for c in result.checks:
        if c.rows_failed and c.action == "warn":
            examples = "; ".join(json.dumps(row, default=str) for row in c.examples)
            warnings.append(
                f"check {c.check}: {c.rows_failed:,} of {c.rows_evaluated:,} rows failed (action: warn; "
                f"first at {c.first_failure}); examples: {examples}"
            )
    if result.rows_rejected:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(result.rejections.items()))
        warnings.append(
            f"{result.rows_rejected:,} rows rejected ({reasons}); see `conduit dlq show {result.name}`"
        )
    return warnings


_DONE = object()


def _read_ahead(batches: Iterator[SourceBatch], depth: int) -> Iterator[SourceBatch]:
    """Iterate ``batches`` in a background thread, at most ``depth`` batches ahead of the consumer.

    An exception in the source is re-raised in the consumer; if the consumer stops early (an error
    while writing), the producer is told to stop and the source generator is closed in its own thread.
    An interruption (:mod:`conduit.interrupts`) stops the producer at its next batch and is raised in
    the consumer even while it waits for a batch.
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
                if interrupts.requested() or not put(item):
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
            try:
                item = slots.get(timeout=0.1)
            except queue.Empty:
                interrupts.raise_if_requested()
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        deadline: float | None = None
        while worker.is_alive():
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
            if interrupts.requested():
                deadline = deadline or time.monotonic() + ABANDON_READER_AFTER
                if time.monotonic() > deadline:
                    break
        else:
            worker.join()
