"""A ``COPY ... TO STDOUT`` streamed into a pipe, for pyarrow's CSV reader to parse as it arrives.

psycopg2's ``copy_expert`` pushes the server's output into a file object until the COPY ends; the
CSV reader pulls from a file object. A pipe joins the two: the COPY runs in a background thread
writing into one end (through a buffer, so the server's one-message-per-row output reaches the pipe
in large writes), and :attr:`CopyOut.reader` is the other end. The pipe's capacity bounds what is in
flight, so memory stays flat whatever the size of the result.
"""

from __future__ import annotations

import io
import os
import threading

import psycopg2
from psycopg2.extensions import connection as Connection

WRITE_BUFFER = 1 << 20


class CopyOut:
    """One running ``COPY ... TO STDOUT``; read :attr:`reader`, then :meth:`close`."""

    def __init__(self, connection: Connection, statement: str) -> None:
        read_fd, write_fd = os.pipe()
        self.reader: io.BufferedReader = os.fdopen(read_fd, "rb")
        self._writer = os.fdopen(write_fd, "wb", buffering=WRITE_BUFFER)
        self._connection = connection
        self._stopping = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(statement,), name="conduit-postgres-copy-out", daemon=True
        )
        self._thread.start()

    def _run(self, statement: str) -> None:
        try:
            with self._connection.cursor() as cursor:
                cursor.copy_expert(statement, self._writer, size=WRITE_BUFFER)
            self._writer.flush()
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            if not self._stopping:
                self.error = exc
        finally:
            try:
                self._writer.close()
            except OSError:
                pass

    def is_empty(self) -> bool:
        """Whether the COPY produced no output at all (blocks until the first bytes or the end)."""
        return not self.reader.peek(1)

    def finish(self) -> None:
        """Wait for the COPY after reading everything; raises its error if it failed."""
        self._thread.join()
        self._close_reader()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def close(self) -> None:
        """Stop a COPY that is still running (the reader went away early) and release the pipe.
        Never raises; the connection may be left unusable, so the caller closes it."""
        if self._thread.is_alive():
            self._stopping = True
            try:
                self._connection.cancel()
            except psycopg2.Error:
                pass
            self._close_reader()
        self._thread.join()
        self._close_reader()

    def _close_reader(self) -> None:
        try:
            self.reader.close()
        except OSError:
            pass
