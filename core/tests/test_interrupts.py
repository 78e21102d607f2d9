"""SIGINT/SIGTERM while a run goes on (conduit.interrupts): the flag, the cancel callbacks reaching a
main thread blocked in C, the engine stopping at a batch boundary with what it committed, and the
second signal's hard stop."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest

from conduit import interrupts, manifest
from conduit.config import load_flow
from conduit.config.flow import EntityPlan
from conduit.errors import Interrupted
from conduit.plugins import Registry, load_registry
from conduit.run import EntityResult, RunOptions, _read_ahead, run_flow


@pytest.fixture
def registry() -> Registry:
    return load_registry()


def test_a_signal_sets_the_flag_and_calls_the_callbacks_instead_of_raising() -> None:
    called = threading.Event()
    with interrupts.handling(), interrupts.cancellable(called.set):
        assert not interrupts.requested()
        interrupts.raise_if_requested()
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt
        assert called.wait(5)
        assert interrupts.requested()
        with pytest.raises(Interrupted, match=r"^interrupted by SIGINT \(Ctrl-C\)$") as caught:
            interrupts.raise_if_requested()
        assert caught.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_the_callback_frees_a_main_thread_blocked_in_c() -> None:
    """The main thread waits in select() (C, restarted after the Python handler runs); only the
    watcher thread's callback can end the wait, as connection.cancel() ends a call blocked in libpq."""
    left, right = socket.socketpair()
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    try:
        with interrupts.handling(), interrupts.cancellable(lambda: right.send(b"x")):
            timer.start()
            ready, _, _ = select.select([left], [], [], 10)
            assert ready and interrupts.requested()
    finally:
        timer.cancel()
        left.close()
        right.close()
    assert time.monotonic() - started < 5
    with pytest.raises(Interrupted, match="SIGTERM"):
        interrupts.raise_if_requested()


def test_callbacks_are_repeated_until_the_run_stops_and_not_after() -> None:
    calls: list[float] = []
    with interrupts.handling():
        unregister = interrupts.register(lambda: calls.append(time.monotonic()))
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:  # a cancel sent while idle is lost
            time.sleep(0.05)
        assert len(calls) >= 2
        unregister()
        unregister()  # harmless
        count = len(calls)
        time.sleep(interrupts.REPEAT * 2)
        assert len(calls) == count


def test_handling_does_nothing_off_the_main_thread() -> None:
    seen: list[object] = []

    def worker() -> None:
        with interrupts.handling():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]


def test_a_second_signal_stops_the_process_at_once() -> None:
    script = (
        "import os, signal, time\n"
        "from conduit import interrupts\n"
        "with interrupts.handling():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.2)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(10)\n"
        "print('not reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 130
    assert "second SIGINT: stopping at once" in done.stderr
    assert "not reached" not in done.stdout


def test_read_ahead_stops_waiting_for_a_slow_source() -> None:
    produced: list[int] = []

    def slow() -> Iterator[int]:
        for n in range(100):
            time.sleep(0.2)
            produced.append(n)
            yield n

    started = time.monotonic()
    with interrupts.handling():
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(Interrupted):
            list(_read_ahead(slow(), 2))  # type: ignore[arg-type]
    assert time.monotonic() - started < 2
    assert len(produced) <= 1  # the producer stopped at its next batch


class _InterruptAt:
    """A listener that sends SIGINT to the process once the entity has read ``rows``."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.sent = False
        self.finished: list[EntityResult] = []

    def entity_started(self, plan: EntityPlan) -> None:
        pass

    def progress(self, entity: str, rows: int, seconds: float) -> None:
        if rows >= self.rows and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)

    def entity_finished(self, result: EntityResult) -> None:
        self.finished.append(result)


def test_the_run_stops_at_a_batch_boundary_keeps_its_checkpoints_and_resumes(
    tmp_path: Path, registry: Registry
) -> None:
    (tmp_path / "events.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(200)))
    (tmp_path / "later.jsonl").write_text('{"id": 1}\n')
    flow_path = tmp_path / "ingest.yml"
    flow_path.write_text(
        "version: 1\nentities:\n"
        "  events:\n"
        "    source: {type: jsonl, options: {path: events.jsonl, block_size: 120}}\n"
        "    destination: {type: parquet, options: {path: out/events}}\n"
        "    mode: append\n    batch_size: 10\n    commit_every: 30\n"
        "  later:\n"
        "    source: {type: jsonl, options: {path: later.jsonl}}\n"
        "    destination: {type: parquet, options: {path: out/later}}\n"
    )
    flow = load_flow(flow_path, registry)
    listener = _InterruptAt(95)
    result = run_flow(flow, registry, listener=listener)

    assert result.status == "interrupted"
    assert result.not_started == ["later"]
    (entity,) = result.entities
    assert entity.status == "interrupted" and entity.error == "interrupted by SIGINT (Ctrl-C)"
    loaded = pq.read_table(tmp_path / "out" / "events").num_rows
    # stopped at the first boundary after ~95 rows: 3 checkpoints committed, the open session aborted
    assert entity.commits == 3 and 0 < loaded < 200
    assert entity.rows_loaded == entity.rows_read == loaded
    assert result.to_json()["not_started"] == ["later"]
    record = manifest.finish_manifest(manifest.start_manifest("r1", [flow], env="dev", command=[]), [result])
    assert record["status"] == "interrupted" and record["totals"]["rows_loaded"] == loaded
    schema = json.loads((Path(__file__).parents[2] / "docs" / "manifest.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(record)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    resumed = run_flow(flow, registry, options=RunOptions(resume=True))
    assert resumed.status == "success"
    ids = pq.read_table(tmp_path / "out" / "events").column("id").to_pylist()
    assert sorted(ids) == list(range(200))
