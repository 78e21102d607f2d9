"""A ``COPY ... FROM STDIN`` fed batch by batch while it runs.

psycopg2's ``copy_expert`` pulls its input from a file object until that returns ``b""``; a load
session is pushed one batch at a time. So the COPY runs in a background thread reading from a small
queue of encoded chunks: ``send`` blocks while the queue is full, which keeps memory bounded by a
couple of batches, never by the load. ``finish`` ends the input and waits for the server's verdict;
``cancel`` makes the input fail, which aborts the COPY on the server (the transaction is then rolled
back by the caller); a COPY the server does not read from (it waits for a lock, or is still working
through a slow trigger) would never take that in, so after :data:`CANCEL_AFTER` seconds ``cancel``
also cancels the statement on the server.
"""

from __future__ import annotations

import queue
import threading
import time

import psycopg2
from psycopg2.extensions import connection as Connection

DEPTH = 2
"""Encoded chunks queued ahead of the COPY: one being sent, one ready."""
CANCEL_AFTER = 1.0
"""Seconds :meth:`CopyIn.cancel` waits for the COPY to take the end of its input before it cancels
the statement on the server."""

_END = object()
_CANCEL = object()


class _Cancelled(Exception):
    """Raised inside ``copy_expert``'s read to abort the COPY."""


class _ChunkReader:
    """The file object ``copy_expert`` reads: each ``read`` returns the next whole chunk (psycopg2
    sends whatever length ``read`` returns, so chunks are never copied to fit ``size``)."""

    def __init__(self, chunks: queue.Queue[object]) -> None:
        self._chunks = chunks

    def read(self, size: int = -1) -> bytes:
        item = self._chunks.get()
        if item is _END:
            return b""
        if item is _CANCEL:
            raise _Cancelled("the load was aborted")
        assert isinstance(item, bytes)
        return item


class CopyIn:
    """One running ``COPY ... FROM STDIN``; not thread-safe (one producer)."""

    def __init__(self, connection: Connection, statement: str) -> None:
        self._chunks: queue.Queue[object] = queue.Queue(maxsize=DEPTH)
        self._connection = connection
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(connection, statement), name="conduit-postgres-copy-in", daemon=True
        )
        self._thread.start()

    def _run(self, connection: Connection, statement: str) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.copy_expert(statement, _ChunkReader(self._chunks), size=1 << 20)
        except BaseException as exc:  # noqa: BLE001 - handed to the producer thread
            self.error = exc

    def _put(self, item: object) -> bool:
        """Queue ``item``; ``False`` when the COPY has already ended (it failed)."""
        while self._thread.is_alive():
            try:
                self._chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def send(self, chunk: bytes) -> None:
        """Queue one chunk of COPY data; raises the COPY's error if it has already failed.

        pgpq holds small batches back until it has a useful amount (and returns ``b""``); an empty
        chunk is not sent, as ``b""`` is the end of the input to ``copy_expert``."""
        if chunk and not self._put(chunk):
            self._thread.join()
            raise self._failure()

    def finish(self) -> None:
        """End the input and wait for the COPY to complete; raises its error if it failed."""
        ended = self._put(_END)
        self._thread.join()
        if self.error is not None or not ended:
            raise self._failure()

    def cancel(self) -> None:
        """Abort the COPY (the input fails) and wait for the thread; never raises. A COPY that has
        not taken its input within :data:`CANCEL_AFTER` seconds is cancelled on the server."""
        deadline = time.monotonic() + CANCEL_AFTER
        queued = cancelled = False
        while self._thread.is_alive():
            if queued:
                self._thread.join(0.1)
            else:
                try:
                    self._chunks.put(_CANCEL, timeout=0.1)
                    queued = True
                except queue.Full:
                    pass
            if not cancelled and time.monotonic() >= deadline:
                cancelled = True
                try:
                    self._connection.cancel()
                except psycopg2.Error:
                    pass
        self._thread.join()
        self.error = None

    def _failure(self) -> BaseException:
        error, self.error = self.error, None
        return error or psycopg2.InterfaceError("the COPY ended before its input did")
