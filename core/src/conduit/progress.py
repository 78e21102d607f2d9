"""Rendering a run for people: a live line on a terminal, plain lines in logs, and the final summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from conduit.config.flow import EntityPlan
from conduit.run import EntityResult, RunResult

LIVE_INTERVAL = 0.1
LOG_INTERVAL = 10.0


class TerminalProgress:
    """A :class:`conduit.run.RunListener` writing to ``stream`` (stderr by default).

    On a TTY one line is redrawn in place with rows, rows/s and elapsed time; otherwise (CI logs,
    pipes) plain lines: one when an entity starts, one every ten seconds, one when it ends.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        live: bool | None = None,
        write: Callable[[str], object] | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.write = write or self.stream.write
        self._last = 0.0

    def _write(self, text: str) -> None:
        self.write(text)
        self.stream.flush()

    def entity_started(self, plan: EntityPlan) -> None:
        # live: draw at the first batch; logs: the first progress line after LOG_INTERVAL
        self._last = 0.0 if self.live else time.monotonic()
        if not self.live:
            self._write(
                f"[{plan.name}] started: {plan.source.type} -> {plan.destination.type} (mode {plan.mode})\n"
            )

    def progress(self, entity: str, rows: int, seconds: float) -> None:
        now = time.monotonic()
        interval = LIVE_INTERVAL if self.live else LOG_INTERVAL
        if now - self._last < interval:
            return
        self._last = now
        rate = rows / seconds if seconds > 0 else 0.0
        line = f"[{entity}] {rows:,} rows  {rate:,.0f} rows/s  {seconds:.1f}s"
        self._write(f"\r\x1b[K{line}" if self.live else f"{line}\n")

    def entity_finished(self, result: EntityResult) -> None:
        prefix = "\r\x1b[K" if self.live else ""
        if result.status == "success":
            self._write(
                f"{prefix}[{result.name}] done: {result.rows_loaded:,} rows in {result.seconds:.2f}s\n"
            )
        elif result.status == "interrupted":
            self._write(
                f"{prefix}[{result.name}] interrupted after {result.seconds:.2f}s "
                f"({result.rows_loaded:,} rows committed)\n"
            )
        else:
            self._write(f"{prefix}[{result.name}] failed after {result.seconds:.2f}s\n")


def summary(result: RunResult) -> str:
    """The end-of-run table: one row per entity, then the run's status line."""
    header = ("entity", "status", "rows", "seconds", "rows/s", "source -> destination")
    rows = [header]
    for entity in result.entities:
        rate = entity.rows_loaded / entity.seconds if entity.seconds > 0 else 0.0
        rows.append(
            (
                entity.name,
                entity.status,
                f"{entity.rows_loaded:,}",
                f"{entity.seconds:.2f}",
                f"{rate:,.0f}",
                f"{entity.source} -> {entity.destination} ({entity.mode})",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {2, 3, 4}
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    total = sum(e.rows_loaded for e in result.entities)
    seconds = sum(e.seconds for e in result.entities)
    count = len(result.entities)
    lines.append(
        f"run {result.run_id}: {result.status} ({count} entit{'y' if count == 1 else 'ies'}, "
        f"{total:,} rows, {seconds:.2f}s)"
    )
    return "\n".join(lines)
