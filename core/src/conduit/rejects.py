"""Rows that are not loaded: checks and their actions, rejected rows, thresholds.

The engine hands every batch (after the incremental filter) to :meth:`Rejections.apply_checks`,
which runs the entity's checks in config order, each over the rows still in the load:

* ``fail``: the first failing row stops the entity with a :class:`~conduit.errors.DataError` that
  names the file, row and check (values of ``secret_columns`` shown as ``***``);
* ``warn``: failing rows are loaded; the count and up to three example rows go in the run summary;
* ``dlq``: failing rows are taken out of the batch and written to the dead-letter queue.

Rows a source could not read or convert (``on_error: dlq``) arrive as
:class:`~conduit.connectors.Rejected` and go to the queue the same way. Every rejected row counts in
``rows_read`` and ``rows_rejected``, so ``rows_read = rows_loaded + rows_rejected`` always holds.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conduit.checks import Check
from conduit.coerce import Failure
from conduit.dlq import DeadLetterQueue, PendingPart, json_rows, json_values, record_id, to_json_value
from conduit.errors import DataError, DataLocation
from conduit.state import now

MASK = "***"
_ENCODE_ROWS = 8192
"""Rejected rows gathered before they are encoded in one go."""
EXAMPLES = 3
_SHOWN = 300


@dataclass
class CheckResult:
    """What one check did over a run (in the manifest)."""

    check: str
    action: str
    rows_evaluated: int = 0
    rows_failed: int = 0
    first_failure: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)


class RowMap:
    """The file row numbers of a batch's rows, worked out only when a message or a record needs one.

    A source batch covers file rows ``start + 1 .. start + consumed``, minus the rows the source
    rejected; the engine then slices and filters it. Each of those steps is recorded here, so
    ``number(i)`` maps row ``i`` of the current batch back to its row in the file.
    """

    def __init__(self, file: str | None, start: int | None, rejected_rows: Iterable[int | None] = ()) -> None:
        self.file = file
        self.start = start
        self.rejected = sorted(r for r in rejected_rows if r is not None)
        self._steps: list[int | pa.BooleanArray] = []
        self._kept: list[int | list[int]] | None = None

    def offset(self, rows: int) -> None:
        if rows:
            self._steps.append(rows)
            self._kept = None

    def keep(self, mask: pa.BooleanArray | None) -> None:
        if mask is not None:
            self._steps.append(mask)
            self._kept = None

    def number(self, index: int) -> int | None:
        if self.start is None:
            return None
        if self._kept is None:
            self._kept = [s if isinstance(s, int) else pc.indices_nonzero(s).to_pylist() for s in self._steps]
        for step in reversed(self._kept):
            index = index + step if isinstance(step, int) else step[index]
        row = self.start + 1 + index
        for rejected in self.rejected:  # ascending: each one at or before the row pushes it on
            if rejected > row:
                break
            row += 1
        return row

    def location(self, index: int, column: str | None = None) -> DataLocation:
        return DataLocation(file=self.file, row=self.number(index), column=column)


class Rejections:
    """One entity run's rejected rows: counts by reason, the open dead-letter part, thresholds."""

    def __init__(
        self,
        dlq: DeadLetterQueue,
        run_id: str,
        entity: str,
        flow: str,
        *,
        secret_columns: Sequence[str] = (),
        max_rejected: int | None = None,
        max_rejected_ratio: float | None = None,
    ) -> None:
        self.dlq, self.run_id, self.entity, self.flow = dlq, run_id, entity, flow
        self.secret = frozenset(secret_columns)
        self.max_rejected, self.max_ratio = max_rejected, max_rejected_ratio
        self.rows = 0
        self.reasons: Counter[str] = Counter()
        self.written = 0
        self.part: PendingPart | None = None
        self.first: str | None = None
        self._encoder: ThreadPoolExecutor | None = None
        self._encoding: list[Future[None]] = []
        self._backlog: dict[tuple[int, str | None], tuple[Check, list[pa.RecordBatch], list[int | None]]] = {}
        self._backlog_rows = 0

    # -- the session's part -----------------------------------------------------------------------

    def open(self, seq: int) -> None:
        self.part = self.dlq.open_part(self.run_id, seq)

    def _drain(self, *, raise_errors: bool = True) -> None:
        """Encode what is left and wait for the records being encoded in the background."""
        if raise_errors:
            self._submit()
        else:
            self._backlog, self._backlog_rows = {}, 0
        pending, self._encoding = self._encoding, []
        encoder, self._encoder = self._encoder, None
        try:
            for future in pending:
                error = future.exception()
                if error is not None and raise_errors:
                    raise error
        finally:
            if encoder is not None:
                encoder.shutdown(wait=True)

    def seal(self) -> None:
        """Before the destination commits: the part is on disk, flushed and fsynced."""
        self._drain()
        if self.part is not None:
            self.part.close()

    def committed(self, seq: int) -> None:
        if self.part is not None and self.part.rows:
            self.dlq.promote(self.run_id, seq)
        self.part = None

    def left_pending(self) -> None:
        """The commit failed in a way that may have come after it landed (a connection lost before
        its acknowledgement): the sealed pending part stays for the next run to settle from the
        committed state, promoted if the commit landed and deleted if not."""
        self.part = None

    def aborted(self, seq: int) -> None:
        self._drain(raise_errors=False)
        if self.part is not None:
            self.part.drop()
        self.dlq.discard(self.run_id, seq)
        self.part = None

    # -- adding rows --------------------------------------------------------------------------------

    def _add(
        self,
        *,
        file: str | None,
        line: int | None,
        row: int | None,
        rule: str,
        reason: str,
        message: str,
        column: str | None,
        values: Any,
        raw: str | None,
        at: str,
    ) -> None:
        """Count one rejected row and stage its record (``values`` already JSON-safe)."""
        self.rows += 1
        self.reasons[f"{rule}:{reason}"] += 1
        if self.first is None:
            where = str(DataLocation(file=file, line=line, row=row))
            self.first = f"{where}: {message}" if where else message
        ident = record_id(self.entity, file, row, rule, values, raw)
        if self.dlq.known(ident):
            return
        self.dlq.remember(ident)
        assert self.part is not None, "a dead-letter part is open while a session is"
        self.part.add(
            {
                "id": ident,
                "run_id": self.run_id,
                "flow": self.flow,
                "entity": self.entity,
                "file": file,
                "line": line,
                "row": row,
                "rule": rule,
                "reason": reason,
                "message": message,
                "column": column,
                "values": values,
                "raw": raw,
                "at": at,
            }
        )
        self.written += 1

    def from_source(self, file: str | None, rejected: Sequence[Any]) -> None:
        """Rows the source could not read or convert (:class:`~conduit.connectors.Rejected`)."""
        at = now()
        for item in rejected:
            self._add(
                file=file,
                line=item.line,
                row=item.row,
                rule=item.rule,
                reason=item.reason,
                message=item.message,
                column=item.column,
                values=to_json_value(dict(item.values)) if item.values is not None else None,
                raw=item.raw,
                at=at,
            )

    def from_schema(self, failures: Sequence[Failure], batch: pa.RecordBatch, rows: RowMap) -> None:
        """Rows whose value does not convert to the target's column type (a schema change a policy
        did not apply): rule ``schema``, the conversion's reason code."""
        at = now()
        originals = json_rows(batch.take(pa.array([f.index for f in failures], pa.int64())))
        for failure, values in zip(failures, originals, strict=True):
            self._add(
                file=rows.file,
                line=None,
                row=rows.number(failure.index),
                rule="schema",
                reason=failure.reason,
                message=failure.message,
                column=failure.column,
                values=values,
                raw=None,
                at=at,
            )

    def _to_queue(self, check: Check, batch: pa.RecordBatch, failing: pa.Array, rows: RowMap) -> None:
        """Stage the failing rows of a ``dlq`` check: counted here, encoded in the background.

        The hot path of a check that rejects many rows. Row numbers and the first failure are worked
        out now (the batch is filtered next); the records are built on a worker thread, which runs
        while the destination writes (Arrow and Parquet release the GIL), and :meth:`seal` waits for
        it before the commit."""
        count = len(failing)
        self.rows += count
        self.reasons[f"{check.describe()}:check_failed"] += count
        taken = batch.take(failing)
        indices = failing.to_pylist()
        numbers = [rows.number(index) for index in indices]
        if self.first is None:
            where = str(rows.location(indices[0]))
            explained = check.explain(taken.slice(0, 1).to_pylist()[0])
            self.first = f"{where}: {explained}" if where else explained
        group = self._backlog.setdefault((id(check), rows.file), (check, [], []))
        group[1].append(taken)
        group[2].extend(numbers)
        self._backlog_rows += count
        if self._backlog_rows >= _ENCODE_ROWS:
            self._submit()

    def _submit(self) -> None:
        """Hand the backlog to the encoder thread, one call per check and file (fewer, larger
        Arrow calls: the per-call cost dominates for the few hundred rows a batch rejects)."""
        backlog, self._backlog, self._backlog_rows = self._backlog, {}, 0
        if not backlog:
            return
        if self._encoder is None:
            self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conduit-dlq")
        for (_, file), (check, batches, numbers) in backlog.items():
            combined = pa.Table.from_batches(batches).combine_chunks().to_batches()
            taken = combined[0] if len(combined) == 1 else pa.concat_batches(combined)
            self._encoding.append(self._encoder.submit(self._encode, check, taken, numbers, file))

    def _encode(
        self, check: Check, taken: pa.RecordBatch, numbers: list[int | None], file: str | None
    ) -> None:
        """Append one record per row of ``taken``: values encoded to JSON in Arrow
        (:func:`~conduit.dlq.json_values`), ``explain`` once per distinct combination of the checked
        columns' values, each record one f-string."""
        part = self.part
        assert part is not None, "a dead-letter part is open while a session is"
        rule = check.describe()
        keyed = [taken.column(k).to_pylist() for k in check.columns() if k in taken.schema.names]
        values = json_values(taken)
        dumps = json.dumps
        head = (
            f', "run_id": {dumps(self.run_id)}, "flow": {dumps(self.flow)}, "entity": {dumps(self.entity)}, '
            f'"file": {dumps(file)}, "line": null, "row": '
        )
        middle = f', "rule": {dumps(rule, ensure_ascii=False)}, "reason": "check_failed", "message": '
        tail = f', "raw": null, "at": {dumps(now())}}}'
        messages: dict[Any, str] = {}
        prefix = f"{self.entity}\x1f{file}\x1f"
        marker = f"\x1f{rule}\x1f"
        blake2b, known, lines = hashlib.blake2b, self.dlq.known_ids(), []
        keys = list(zip(*keyed, strict=True)) if keyed else None
        for position, (row, text) in enumerate(zip(numbers, values, strict=True)):
            key: Any = keys[position] if keys is not None else position
            try:
                message = messages.get(key)
            except TypeError:  # an unhashable value (a list): no caching
                key, message = position, None
            if message is None:
                message = dumps(check.explain(taken.slice(position, 1).to_pylist()[0]), ensure_ascii=False)
                messages[key] = message
            ident = blake2b(f"{prefix}{row}{marker}{text}".encode(), digest_size=12).hexdigest()
            if ident in known:
                continue
            known.add(ident)
            lines.append(
                f'{{"id": "{ident}"{head}{"null" if row is None else row}{middle}{message}, "column": null, '
                f'"values": {text}{tail}'
            )
        part.add_lines(lines)
        self.written += len(lines)

    def apply_checks(
        self,
        checks: Sequence[Check],
        results: Sequence[CheckResult],
        batch: pa.RecordBatch,
        rows: RowMap,
    ) -> pa.RecordBatch:
        """Run the checks over ``batch``; returns the rows to load (without those sent to the queue)."""
        for check, outcome in zip(checks, results, strict=True):
            if not batch.num_rows:
                break
            passed = pc.fill_null(check.evaluate(batch), True)  # a null verdict passes
            failed = batch.num_rows - passed.true_count
            outcome.rows_evaluated += batch.num_rows
            if not failed:
                continue
            outcome.rows_failed += failed
            action = check.options.action
            failing = pc.indices_nonzero(pc.invert(passed))
            first = failing[0].as_py()
            if outcome.first_failure is None:
                outcome.first_failure = str(rows.location(first))
            if action == "fail":
                row = batch.slice(first, 1).to_pylist()[0]
                why = f" ({check.explain(row)})" if type(check).explain is not Check.explain else ""
                raise DataError(
                    f"check {check.describe()} failed: {self.shown(row)}{why}", rows.location(first)
                )
            if action == "warn":
                room = EXAMPLES - len(outcome.examples)
                if room > 0:
                    sample = batch.take(failing[:room]).to_pylist()
                    outcome.examples.extend(
                        {k: to_json_value(v) for k, v in self.masked(r).items()} for r in sample
                    )
                continue
            self._to_queue(check, batch, failing, rows)
            batch = batch.filter(passed)
            rows.keep(passed)
        return batch

    # -- thresholds -----------------------------------------------------------------------------

    def check_count(self, where: str) -> None:
        if self.max_rejected is not None and self.rows > self.max_rejected:
            raise DataError(
                f"{where}: {self.rows:,} rows rejected, more than max_rejected: {self.max_rejected:,} "
                f"(first: {self.first}); nothing of this commit was loaded"
            )

    def check_ratio(self, where: str, rows_read: int) -> None:
        if self.max_ratio is None or not rows_read:
            return
        ratio = self.rows / rows_read
        if ratio > self.max_ratio:
            raise DataError(
                f"{where}: {self.rows:,} of {rows_read:,} rows rejected ({ratio:.2%}), more than "
                f"max_rejected_ratio: {self.max_ratio:g} (first: {self.first}); nothing of this commit "
                "was loaded"
            )

    # -- showing rows -------------------------------------------------------------------------------

    def masked(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self.secret:
            return row
        return {k: (MASK if k in self.secret and v is not None else v) for k, v in row.items()}

    def shown(self, row: dict[str, Any]) -> str:
        text = repr(self.masked(row))
        return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
