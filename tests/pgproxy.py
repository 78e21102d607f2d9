"""A TCP proxy in front of the test PostgreSQL server that can lose a commit's acknowledgement.

Armed with ``cut_after_commit``, it forwards traffic both ways until a client that has run a COPY
sends ``COMMIT``; it passes the COMMIT to the server, waits for the server's ``CommandComplete``
(so the transaction has committed), and then closes the client's connection without passing the
reply on: the client sees a dropped connection for a commit that landed. The client must connect
with ``sslmode=disable`` so the proxy can read the protocol.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

COMMIT_QUERY = b"Q\x00\x00\x00\x0bCOMMIT\x00"
"""A simple-protocol Query message whose text is ``COMMIT``, as psycopg2 sends it."""
COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"
"""The server's CommandComplete for it."""


@dataclass
class Proxy:
    upstream: tuple[str, int]
    cut_after_commit: bool = True
    port: int = 0
    cuts: int = 0
    _listener: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        self._listener = listener
        self.port = listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            _Link(self, client, server).start()


class _Link:
    """One client connection and its server connection."""

    def __init__(self, proxy: Proxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy, self.client, self.server = proxy, client, server
        self.copied = False
        self.swallow = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._upward, daemon=True).start()
        threading.Thread(target=self._downward, daemon=True).start()

    def _close(self) -> None:
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _upward(self) -> None:
        try:
            while data := self.client.recv(65536):
                if b"COPY " in data:
                    self.copied = True
                if self.proxy.cut_after_commit and self.copied and COMMIT_QUERY in data:
                    self.proxy.cut_after_commit = False
                    self.swallow.set()
                self.server.sendall(data)
        except OSError:
            pass
        finally:
            if not self.swallow.is_set():
                self._close()

    def _downward(self) -> None:
        seen = b""
        try:
            while data := self.server.recv(65536):
                if self.swallow.is_set():
                    seen = (seen + data)[-64:]
                    if COMMIT_DONE in seen:  # the server committed: drop the client unanswered
                        self.proxy.cuts += 1
                        break
                    continue
                self.client.sendall(data)
        except OSError:
            pass
        finally:
            self._close()


@contextmanager
def proxy_to(host: str, port: int) -> Iterator[Proxy]:
    proxy = Proxy((host, port))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
