"""Stopping a run cleanly on SIGINT (Ctrl-C) and SIGTERM.

Python runs a signal handler only when the main thread comes back to the interpreter, and a load is
often somewhere else: inside libpq waiting for the server (a COPY the server does not read, a
statement waiting for a lock), or joining a thread that is. A ``KeyboardInterrupt`` then never
arrives. So while a run goes on (:func:`handling`, entered by :func:`conduit.run.run_flow` and the
``conduit run`` command) both signals are caught by a handler that does nothing itself, and
:func:`signal.set_wakeup_fd` hands each one at once to a watcher thread, which:

* sets the flag :func:`requested` reads and :func:`raise_if_requested` raises
  :class:`~conduit.errors.Interrupted` on: the engine checks it at every batch boundary, so the run
  stops there, aborts the open load session (what was committed stays committed) and records the
  entity as ``interrupted``;
* calls every callback registered with :func:`cancellable` or :func:`register`: a connector's
  "cancel what is running on the server" (psycopg2's thread-safe ``connection.cancel()``), so a call
  blocked in C returns, with an error the connector turns into ``Interrupted`` (:func:`error`): only
  for a cancel the server answered, so a commit that raises it is known not to have landed. It
  calls them again every :data:`REPEAT` seconds until the run has stopped, in case a statement
  started just after a cancel went out (a server ignores a cancel that finds it idle);
* on a second signal stops the process at once (exit 128 + the signal number), as an unhandled
  signal would: still safe, the server rolls back what was not committed.

Outside :func:`handling`, or when it is entered off the main thread (only the main thread may set
signal handlers), nothing is caught: ``requested()`` stays false and Ctrl-C raises
``KeyboardInterrupt`` as usual. A signal the process ignores (``SIG_IGN``) stays ignored.
"""

from __future__ import annotations

import itertools
import os
import select
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from conduit.errors import Interrupted

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
REPEAT = 0.5
"""Seconds between repeated calls of the cancel callbacks while an interruption waits to be honoured."""

_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}
_WAKE = b"\0"
"""Written to the watcher's socket to make it look at its stop flag (0 is no signal number)."""


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flag = threading.Event()
        self.signum: int | None = None
        self.callbacks: dict[int, Callable[[], Any]] = {}
        self.ids = itertools.count()
        self.active = False


_state = _State()


def requested() -> bool:
    """Whether SIGINT or SIGTERM arrived since the current (or last) :func:`handling` began."""
    return _state.flag.is_set()


def error() -> Interrupted:
    """The exception that reports the interruption (``interrupted by SIGINT (Ctrl-C)``)."""
    signum = _state.signum
    name = _NAMES.get(signal.Signals(signum), f"signal {signum}") if signum is not None else "a signal"
    return Interrupted(f"interrupted by {name}")


def raise_if_requested() -> None:
    """Raise :class:`~conduit.errors.Interrupted` when the run was asked to stop; called at every
    batch boundary (and by anything that waits and can stop cleanly)."""
    if _state.flag.is_set():
        raise error()


def register(callback: Callable[[], Any]) -> Callable[[], None]:
    """Call ``callback`` (from the watcher thread) when the run is interrupted, until the returned
    function is called (which is harmless to call again). It must be quick, thread-safe and must not
    assume what the registering thread is doing: it only makes a blocked call return (cancels the
    statement running on a connection). Its exceptions are ignored."""
    with _state.lock:
        key = next(_state.ids)
        _state.callbacks[key] = callback

    def unregister() -> None:
        with _state.lock:
            _state.callbacks.pop(key, None)

    return unregister


@contextmanager
def cancellable(callback: Callable[[], Any]) -> Iterator[None]:
    """:func:`register` ``callback`` for the block (a blocking phase: a statement, a COPY)."""
    unregister = register(callback)
    try:
        yield
    finally:
        unregister()


def _cancel_all() -> None:
    with _state.lock:
        callbacks = list(_state.callbacks.values())
    for callback in callbacks:
        try:
            callback()
        except Exception:  # noqa: BLE001 - a failing cancel must not stop the others
            pass


def _requested(signum: int) -> None:
    # No lock: the Python-level handler runs this in the main thread, which may hold _state.lock.
    if _state.signum is None:
        _state.signum = signum
    _state.flag.set()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: runs whenever the main thread gets back to the interpreter; the
    watcher has usually acted already."""
    _requested(signum)


def _hard_stop(signum: int) -> None:
    message = (
        f"\nconduit: second {signal.Signals(signum).name}: stopping at once "
        "(what was not committed is rolled back)\n"
    )
    try:
        os.write(2, message.encode())
    except OSError:
        pass
    os._exit(128 + signum)


def _watch(reader: socket.socket, done: threading.Event) -> None:
    wanted = {int(s) for s in SIGNALS}
    seen = 0
    while not done.is_set():
        try:
            ready, _, _ = select.select([reader], [], [], REPEAT if seen else None)
        except (OSError, ValueError):
            return
        if done.is_set():
            return
        if ready:
            try:
                data = reader.recv(64)
            except BlockingIOError:
                data = b"\0"
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum not in wanted:
                    continue  # another handler's signal, or the wake-up byte
                seen += 1
                if seen > 1:
                    _hard_stop(signum)
                _requested(signum)
        if seen:
            _cancel_all()


@contextmanager
def handling() -> Iterator[None]:
    """Catch SIGINT and SIGTERM for the block (see the module docstring), then restore the previous
    handlers and wake-up descriptor. Re-entering it while it is active, or entering it off the main
    thread, does nothing."""
    if _state.active or threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    try:
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except (ValueError, OSError):
        reader.close()
        writer.close()
        yield
        return
    with _state.lock:
        _state.signum = None
        _state.flag.clear()
    _state.active = True
    previous: dict[signal.Signals, Any] = {}
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(reader, done), name="conduit-interrupts", daemon=True)
    try:
        watcher.start()
        for signum in SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, _on_signal)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(previous_fd)
        done.set()
        try:
            writer.send(_WAKE)
        except OSError:
            pass
        watcher.join(timeout=5)
        reader.close()
        writer.close()
        _state.active = False
