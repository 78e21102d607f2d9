"""Lock files (``conduit.locks.lock_file``): one holder at a time, even when runs race to take a lock
that is being written or to take over a stale one; a live holder is named; an unreadable lock is
held while young and taken when old; release removes only the holder's own file."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conduit.errors import ConnectorError
from conduit.locks import lock_file

# One contender, in its own process: waits for ``go``, takes the lock, holds it ``hold`` seconds.
# ``slow`` widens a race window: ``write`` sleeps inside the step that writes the holder's JSON
# (json.dump), ``takeover`` sleeps after judging a lock stale and before acting on it.
CONTENDER = textwrap.dedent(
    """\
    import json, sys, time
    from pathlib import Path

    from conduit import locks
    from conduit.errors import ConnectorError

    lock, name, slow, hold, work = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), Path(sys.argv[5])
    if slow == "write":
        real_dump = json.dump

        def slow_dump(*args, **kwargs):
            (work / f"writing-{name}").touch()
            time.sleep(1.5)
            return real_dump(*args, **kwargs)

        json.dump = slow_dump
    elif slow == "takeover":
        real_stale = locks._stale

        def slow_stale(*args, **kwargs):
            stale = real_stale(*args, **kwargs)
            if stale:
                time.sleep(1.0)
            return stale

        locks._stale = slow_stale
    (work / f"ready-{name}").touch()
    while not (work / "go").exists():
        time.sleep(0.01)
    try:
        with locks.lock_file(lock, "entity 'events'", run_id=name):
            start = time.time()
            time.sleep(hold)
            print("held", start, time.time(), flush=True)
    except ConnectorError as exc:
        print("refused", exc, flush=True)
    """
)


def _start(tmp_path: Path, lock: Path, name: str, slow: str = "", hold: float = 3.0) -> subprocess.Popen[str]:
    script = tmp_path / "contender.py"
    if not script.exists():
        script.write_text(CONTENDER)
    return subprocess.Popen(
        [sys.executable, str(script), str(lock), name, slow, str(hold), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _outcome(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out.strip()


def _holder_json(pid: int, run_id: str = "r1", host: str | None = None) -> str:
    return json.dumps({"host": host or socket.gethostname(), "pid": pid, "run_id": run_id, "since": "then"})


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_lock_still_being_written_is_not_taken_by_a_second_run(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "events.lock"
    slow = _start(tmp_path, lock, "slow", slow="write")
    _wait_for(tmp_path / "ready-slow")
    (tmp_path / "go").touch()
    _wait_for(tmp_path / "writing-slow")  # the slow run is inside its write step now
    fast = _start(tmp_path, lock, "fast")
    outcomes = sorted([_outcome(slow), _outcome(fast)])
    held = [o for o in outcomes if o.startswith("held")]
    assert len(held) == 1, outcomes  # before the fix: both held it, the second had unlinked the first
    refused = [o for o in outcomes if o.startswith("refused")]
    assert len(refused) == 1 and "being loaded by another run" in refused[0], outcomes
    assert not lock.exists()
    assert os.listdir(lock.parent) == []  # no temp file left behind


def test_two_runs_taking_over_one_stale_lock_never_both_hold_it(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "events.lock"
    lock.parent.mkdir()
    lock.write_text(_holder_json(_dead_pid()))
    first = _start(tmp_path, lock, "a", slow="takeover")
    second = _start(tmp_path, lock, "b", slow="takeover")
    _wait_for(tmp_path / "ready-a")
    _wait_for(tmp_path / "ready-b")
    (tmp_path / "go").touch()
    outcomes = sorted([_outcome(first), _outcome(second)])
    # before the fix: both judged the dead holder's file stale; one replaced it with its own lock and
    # the other then unlinked that new lock and took it too
    assert [o.split()[0] for o in outcomes] == ["held", "refused"], outcomes
    assert not lock.exists()


def test_a_dead_holders_lock_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "events.lock"
    lock.write_text(_holder_json(_dead_pid(), run_id="old"))
    with lock_file(lock, "entity 'events'", run_id="new"):
        holder = json.loads(lock.read_text())
        assert holder["pid"] == os.getpid() and holder["run_id"] == "new"
    assert not lock.exists()


def test_a_live_holder_is_refused_and_named(tmp_path: Path) -> None:
    lock = tmp_path / "events.lock"
    lock.write_text(_holder_json(os.getpid(), run_id="run-42"))
    with pytest.raises(ConnectorError) as caught:
        with lock_file(lock, "entity 'events'", run_id="new"):
            pytest.fail("took a lock held by a live process")
    message = str(caught.value)
    assert "being loaded by another run" in message
    assert f"pid {os.getpid()}" in message and socket.gethostname() in message and "run-42" in message
    assert str(lock) in message
    assert json.loads(lock.read_text())["run_id"] == "run-42"  # left alone


def test_a_lock_held_on_another_host_is_never_taken(tmp_path: Path) -> None:
    lock = tmp_path / "events.lock"
    lock.write_text(_holder_json(_dead_pid(), host="elsewhere.example"))
    with pytest.raises(ConnectorError, match="elsewhere.example"):
        with lock_file(lock, "entity 'events'"):
            pass


def test_an_unreadable_young_lock_is_held(tmp_path: Path) -> None:
    lock = tmp_path / "events.lock"
    lock.write_text("")  # created, holder not yet written (or a crash of an older version)
    with pytest.raises(ConnectorError) as caught:
        with lock_file(lock, "entity 'events'"):
            pytest.fail("took an unreadable lock that may be being written")
    message = str(caught.value)
    assert "unreadable" in message and f"remove {lock}" in message
    assert lock.exists() and lock.read_text() == ""


def test_an_unreadable_old_lock_is_taken(tmp_path: Path) -> None:
    lock = tmp_path / "events.lock"
    lock.write_text("{not json")
    old = time.time() - 3600
    os.utime(lock, (old, old))
    with lock_file(lock, "entity 'events'", run_id="new"):
        assert json.loads(lock.read_text())["run_id"] == "new"
    assert not lock.exists()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path: Path) -> None:
    lock = tmp_path / "events.lock"
    with lock_file(lock, "entity 'events'"):
        lock.unlink()  # a person removed it, and another run took it
        lock.write_text(_holder_json(os.getpid(), run_id="other"))
    assert json.loads(lock.read_text())["run_id"] == "other"


def test_take_and_release_leave_nothing_behind(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "events.lock"
    for _ in range(3):
        with lock_file(lock, "entity 'events'"):
            assert [p.name for p in lock.parent.iterdir()] == ["events.lock"]
    assert list(lock.parent.iterdir()) == []


def test_without_hard_links_the_lock_is_created_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(source: object, target: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    lock = tmp_path / "events.lock"
    with lock_file(lock, "entity 'events'", run_id="here"):
        assert json.loads(lock.read_text())["run_id"] == "here"
        assert [p.name for p in tmp_path.iterdir()] == ["events.lock"]
        with pytest.raises(ConnectorError, match="being loaded by another run"):
            with lock_file(lock, "entity 'events'"):
                pass
    assert list(tmp_path.iterdir()) == []
