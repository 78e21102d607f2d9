"""Lock files: one run per entity, for destinations and state stores on a local file system.

A lock is a file created with ``O_CREAT | O_EXCL`` holding who took it (host, pid, run, time). A
second run fails at once with that information. A process killed with ``kill -9`` leaves its file
behind; a lock whose process no longer exists on this host is stale and is taken over. (A lock taken
on another host is never assumed stale: it names the host so a person can decide.)
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from conduit.errors import ConnectorError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _stale(holder: dict[str, object] | None) -> bool:
    if holder is None:
        return True  # unreadable: a writer died between create and write
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


@contextmanager
def lock_file(path: str | Path, what: str, run_id: str = "") -> Iterator[None]:
    """Hold ``path`` as a lock for the block; ``ConnectorError`` naming the holder if it is taken."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConnectorError(f"cannot create the lock directory {target.parent}: {exc.strerror}") from None
    me = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run_id": run_id,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for _attempt in range(2):
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(target)
            if _stale(holder):
                try:
                    target.unlink()
                except FileNotFoundError:
                    pass
                continue
            assert holder is not None
            raise ConnectorError(
                f"{what} is being loaded by another run (pid {holder.get('pid')} on {holder.get('host')}, "
                f"run {holder.get('run_id') or '?'}, since {holder.get('since')}); wait for it to finish, "
                f"or if that process is gone remove {target}"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(me, handle)
        break
    else:
        raise ConnectorError(f"{what}: could not take the lock {target}")
    try:
        yield
    finally:
        holder = _holder(target)
        if holder is not None and holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
            try:
                target.unlink()
            except FileNotFoundError:
                pass
