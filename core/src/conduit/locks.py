"""Lock files: one run per entity, for destinations and state stores on a local (POSIX) file system.

A lock is a file holding who took it (host, pid, run, time, and a random token that tells two takes
by one process apart). It never exists without that content: the holder is written to a unique temp
file beside the lock and fsynced, then hard-linked to the lock's name (``os.link`` is atomic and
fails if the name is taken) and the temp name removed. (Creating the lock empty and writing it
afterwards let a second run read it in between, judge it abandoned and take it too: two runs loading
one entity, duplicate rows, one deleting the other's staging files.)

A second run fails at once with the holder's details. A process killed with ``kill -9`` leaves its
file behind; a lock whose process no longer exists on this host is stale and is taken over. (A lock
taken on another host is never assumed stale: it names the host so a person can decide.) A lock whose
content cannot be read can only be corruption, or a crash of an older version that created the file
before writing it: it is treated as held until it is :data:`UNREADABLE_GRACE_SECONDS` old (by its
modification time) and taken over after that; the refusal names the file to remove.

Taking over is serialised: a run that finds the name taken locks the lock's directory (``flock``,
which the kernel releases when the process dies, so this guard can never go stale itself), and only
then reads the file, judges it and unlinks it if it is stale and the name still points to the file it
read (same device and inode). Every removal of another run's lock happens under that guard, and a
holder's own release removes only its own file (a live holder is never judged stale), so while a run
holds the guard nothing can replace the file it judged: the file it removes is the stale one. Without
the guard two runs could both judge a dead holder's file stale; one would replace it with its own
lock and the other would then unlink that new lock and take it as well.

Release removes the file only if it is still this take's: the same inode, holding the same token.

On a file system without hard links the lock is created in place (``O_CREAT | O_EXCL``) and written at
once; the moment it is still empty is covered by the rule for unreadable locks above.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from conduit.errors import ConnectorError

UNREADABLE_GRACE_SECONDS = 60.0
"""How long a lock whose content cannot be read is treated as held (then it is taken over)."""

_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


@dataclass(frozen=True)
class _Found:
    """A lock file as read: its identity (device, inode), modification time and holder (``None``
    when its content is not a JSON object)."""

    identity: tuple[int, int]
    mtime: float
    holder: dict[str, object] | None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> _Found | None:
    """The lock file at ``path`` (identity and content from one open), or ``None`` if there is none."""
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            raw = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConnectorError(f"cannot read the lock {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:
        data = None
    return _Found((stat.st_dev, stat.st_ino), stat.st_mtime, data if isinstance(data, dict) else None)


def _stale(holder: dict[str, object]) -> bool:
    """Whether a readable lock's holder is gone: a process on this host that no longer exists."""
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


@contextmanager
def _takeover_guard(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` for the block (see the module docstring)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise ConnectorError(f"cannot open the lock directory {directory}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _link(target: Path, me: dict[str, object]) -> tuple[int, int] | None:
    """Create the lock at ``target`` already holding ``me``: write a unique temp file beside it,
    fsync it, hard-link it to ``target``. The new lock's identity, or ``None`` if the name is taken."""
    temp = target.with_name(f".{target.name}.{me['token']}.tmp")
    try:
        with open(temp, "x", encoding="utf-8") as handle:
            json.dump(me, handle)
            handle.flush()
            os.fsync(handle.fileno())
            stat = os.fstat(handle.fileno())
        try:
            os.link(temp, target)
        except FileExistsError:
            return None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            return _create_in_place(target, me)
        return stat.st_dev, stat.st_ino
    except OSError as exc:
        raise ConnectorError(f"cannot create the lock {target}: {exc.strerror}") from None
    finally:
        try:
            os.unlink(temp)
        except OSError:
            pass


def _create_in_place(target: Path, me: dict[str, object]) -> tuple[int, int] | None:
    """Create the lock with ``O_CREAT | O_EXCL`` and write ``me`` at once, for file systems without
    hard links. The new lock's identity, or ``None`` if the name is taken."""
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(me, handle)
        handle.flush()
        os.fsync(handle.fileno())
        stat = os.fstat(handle.fileno())
    return stat.st_dev, stat.st_ino


def _take_over_if_stale(target: Path, what: str) -> None:
    """Remove the lock at ``target`` if its holder is gone (or it is unreadable and old); return also
    when it vanished meanwhile, so the caller tries again. ``ConnectorError`` naming the holder if it
    is held. Judged and removed under the directory's takeover guard."""
    with _takeover_guard(target.parent):
        found = _read(target)
        if found is None:
            return
        if found.holder is None:
            age = time.time() - found.mtime
            if age < UNREADABLE_GRACE_SECONDS:
                raise ConnectorError(
                    f"{what}: the lock {target} is unreadable (empty or corrupt, modified {max(age, 0):.0f} s "
                    f"ago); it counts as held until it is {UNREADABLE_GRACE_SECONDS:.0f} s old, in case a run "
                    f"is still writing it. If no run is loading {what}, remove {target}"
                )
        elif not _stale(found.holder):
            holder = found.holder
            raise ConnectorError(
                f"{what} is being loaded by another run (pid {holder.get('pid')} on {holder.get('host')}, "
                f"run {holder.get('run_id') or '?'}, since {holder.get('since')}); wait for it to finish, "
                f"or if that process is gone remove {target}"
            )
        try:
            now = os.stat(target)
            if (now.st_dev, now.st_ino) == found.identity:
                os.unlink(target)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ConnectorError(f"{what}: cannot remove the stale lock {target}: {exc.strerror}") from None


def _release(target: Path, identity: tuple[int, int], token: object) -> None:
    """Remove the lock if it is still this take's (same inode, same token); never raises."""
    try:
        found = _read(target)
    except ConnectorError:
        return
    if found is None or found.identity != identity or found.holder is None:
        return
    if found.holder.get("token") != token:
        return
    try:
        target.unlink()
    except OSError:
        pass


@contextmanager
def lock_file(path: str | Path, what: str, run_id: str = "") -> Iterator[None]:
    """Hold ``path`` as a lock for the block; ``ConnectorError`` naming the holder if it is taken."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConnectorError(f"cannot create the lock directory {target.parent}: {exc.strerror}") from None
    me: dict[str, object] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run_id": run_id,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "token": secrets.token_hex(8),
    }
    for _attempt in range(3):
        identity = _link(target, me)
        if identity is not None:
            break
        _take_over_if_stale(target, what)
    else:
        raise ConnectorError(f"{what}: could not take the lock {target}; other runs keep taking it")
    try:
        yield
    finally:
        _release(target, identity, me["token"])
