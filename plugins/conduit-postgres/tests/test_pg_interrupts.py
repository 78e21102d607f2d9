"""An interrupted run (SIGINT/SIGTERM, conduit.interrupts) cancels what the source and the load session
run on the server, so a call blocked in libpq (waiting for a lock held elsewhere) returns at once as
Interrupted; an abort never hangs on a COPY the server does not read; a cancel for another reason
(statement_timeout) stays an error of the statement."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pytest
from pg_helpers import DSN, Scratch, read, scratch_schema, write
from psycopg2 import sql

from conduit import interrupts
from conduit.connectors import ReadRequest, WriteRequest
from conduit.errors import ConnectorError, Interrupted

SIGNAL_AFTER = 0.3


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_schema() as scratch:
        yield scratch


@contextmanager
def locked(pg: Scratch, table: str) -> Iterator[None]:
    """``table`` held in ACCESS EXCLUSIVE mode by another session for the block."""
    connection = psycopg2.connect(DSN)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(pg.schema, table))
            )
        yield
    finally:
        connection.rollback()
        connection.close()


@contextmanager
def interrupted_after(seconds: float) -> Iterator[None]:
    """Interrupts handled for the block, and SIGINT sent to this process after ``seconds``."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    with interrupts.handling():
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


def people(ids: list[int]) -> pa.Table:
    return pa.table({"id": ids, "name": [f"n{i}" for i in ids]}, schema=SCHEMA)


def test_a_source_query_waiting_for_a_lock_is_cancelled(pg: Scratch) -> None:
    write(pg.destination("people"), people([1, 2, 3]))
    source = pg.source(table="people")
    started = time.monotonic()
    try:
        with locked(pg, "people"), interrupted_after(SIGNAL_AFTER), pytest.raises(Interrupted):
            source.discover()  # SELECT ... LIMIT 0 waits for the lock, in libpq
    finally:
        source.close()
    assert time.monotonic() - started < 5


def test_a_source_copy_waiting_for_a_lock_is_cancelled(pg: Scratch) -> None:
    write(pg.destination("people"), people([1, 2, 3]))
    source = pg.source(table="people")
    schema = source.discover()
    started = time.monotonic()
    try:
        with locked(pg, "people"), interrupted_after(SIGNAL_AFTER), pytest.raises(Interrupted):
            list(source.read(ReadRequest("t", schema, 100)))
    finally:
        source.close()
    assert time.monotonic() - started < 5


def test_a_commit_waiting_for_a_lock_is_cancelled_and_nothing_lands(pg: Scratch) -> None:
    destination = pg.destination("people")
    write(destination, people([1, 2, 3]))
    started = time.monotonic()
    try:
        with locked(pg, "people"), interrupted_after(SIGNAL_AFTER):
            session = destination.open(WriteRequest("t", SCHEMA, "append", "run2", 1))
            session.write(people([4, 5]).to_batches()[0])
            with pytest.raises(Interrupted, match="interrupted by SIGINT"):
                session.commit({"rows": 5})  # the COPY waits for the lock
            session.abort()
    finally:
        destination.close()
    assert time.monotonic() - started < 5
    assert pg.count("people") == 3


def test_aborting_a_copy_the_server_does_not_read_does_not_hang(pg: Scratch) -> None:
    """No interruption: an error elsewhere aborts a session whose COPY waits for a lock."""
    destination = pg.destination("people")
    write(destination, people([1]))
    try:
        with locked(pg, "people"):
            session = destination.open(WriteRequest("t", SCHEMA, "append", "run2", 1))
            session.write(people([2, 3]).to_batches()[0])  # the COPY's queue is full now
            started = time.monotonic()
            session.abort()
            assert time.monotonic() - started < 5
    finally:
        destination.close()
    assert pg.count("people") == 1


def test_a_statement_timeout_is_still_an_error(pg: Scratch) -> None:
    source = pg.source(query="SELECT 1 AS x FROM pg_sleep(2)", options="-c statement_timeout=100")
    with interrupts.handling(), pytest.raises(ConnectorError, match="statement timeout"):
        read(source)
