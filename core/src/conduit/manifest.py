"""Run manifests: one JSON document per ``conduit run``, kept in ``<state dir>/runs/<run_id>.json``.

A manifest says what ran, where, with which code and configuration, and how each entity went. It is
written twice: by :func:`start_manifest` + :func:`write_manifest` when the run begins (status
``running``), and again after :func:`finish_manifest` when it ends (``success``, ``partial`` or
``failed``, or ``interrupted`` when SIGINT or SIGTERM stopped it: its entities then say what each
committed). A process killed in between leaves a ``running`` manifest behind; :func:`list_runs` and
:func:`load_run` report one whose process no longer exists on this host as ``interrupted`` (the file
itself is left as it is). The document's shape is ``docs/manifest.schema.json``.

Every manifest passes through :func:`conduit.secrets.mask_json` before it is written, so values under
secret-looking keys, registered secrets and URL passwords never reach the disk.

Document (``version`` 1)::

    {"version": 1, "run_id": "20260102T101112-1a2b3c4d", "status": "partial",
     "started_at": "2026-01-02T10:11:12.345+00:00", "finished_at": "2026-01-02T10:12:00.001+00:00",
     "host": "etl-1", "pid": 4242, "conduit_version": "0.1.0",
     "plugins": {"csv": "conduit-csv 0.1.0"}, "env": "prod", "command": ["conduit", "run", "flows/"],
     "flows": [{"path": "flows/ingest.yml", "name": "ingest", "config_hash": "0123456789abcdef",
                "entities": [<EntityResult.to_json()>, ...]}],
     "totals": {"rows_read": 10, "rows_loaded": 9, "rows_rejected": 1, "entities": 2}}

``totals`` (and ``finished_at``) are ``null`` while the run is running.
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conduit.config.flow import Flow
from conduit.errors import ConfigError
from conduit.files import write_json_atomically
from conduit.plugins import core_version
from conduit.run import RunResult
from conduit.secrets import MASK, is_secret_key, mask_json

MANIFEST_VERSION = 1
RUNS_DIR = "runs"
FINISHED_STATUSES = ("success", "partial", "failed")
STATUSES = ("running", "interrupted", *FINISHED_STATUSES)

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -- building ----------------------------------------------------------------------------------


def _mask_argv(command: Sequence[str]) -> list[str]:
    """``argv`` with the value of any secret-looking option (``--password=x``, ``--token x``) masked,
    then every registered secret and URL password masked (:func:`mask_json`)."""
    masked: list[str] = []
    hide_next = False
    for arg in map(str, command):
        if hide_next:
            masked.append(MASK)
            hide_next = False
            continue
        if arg.startswith("-") and arg != "-" and arg != "--":
            name, eq, _value = arg.lstrip("-").partition("=")
            if name and is_secret_key(name.lower()):
                if eq:
                    arg = f"{arg.partition('=')[0]}={MASK}"
                else:
                    hide_next = True
        masked.append(arg)
    result: list[str] = mask_json(masked)
    return result


def start_manifest(run_id: str, flows: list[Flow], *, env: str, command: list[str]) -> dict[str, Any]:
    """The manifest of a run that is starting now: status ``running``, no entities yet.

    ``plugins`` is the union of the flows' plugins (name -> "distribution version"); ``command`` is the
    process's argv, with secrets masked."""
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} is not usable as a file name")
    plugins: dict[str, str] = {}
    for flow in flows:
        plugins.update(flow.plugins)
    return {
        "version": MANIFEST_VERSION,
        "run_id": run_id,
        "status": "running",
        "started_at": _now(),
        "finished_at": None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "conduit_version": core_version(),
        "plugins": dict(sorted(plugins.items())),
        "env": env,
        "command": _mask_argv(command),
        "flows": [
            {"path": str(flow.path), "name": flow.name, "config_hash": flow.config_hash, "entities": []}
            for flow in flows
        ],
        "totals": None,
    }


def _entities(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every entity of every flow of a manifest (tolerant of hand-edited or partial documents)."""
    found: list[dict[str, Any]] = []
    flows = manifest.get("flows")
    for flow in flows if isinstance(flows, list) else []:
        entities = flow.get("entities") if isinstance(flow, dict) else None
        found.extend(e for e in (entities if isinstance(entities, list) else []) if isinstance(e, dict))
    return found


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _count(entities: Iterable[Mapping[str, Any]], key: str) -> int:
    return sum(_int(e.get(key)) for e in entities)


def finish_manifest(manifest: dict[str, Any], results: list[RunResult]) -> dict[str, Any]:
    """A finished copy of ``manifest`` (the argument is left unchanged).

    Each result's entities go to the flow whose ``path`` equals ``RunResult.flow`` (a result for a
    flow the manifest does not list gets a new flow entry). The status is ``interrupted`` if a result
    was (SIGINT, SIGTERM: an entity stopped, or some were not started), else ``failed`` if every entity
    failed, ``partial`` if some did, else ``success`` (also for a run with no entities)."""
    finished = copy.deepcopy(manifest)
    flows: list[dict[str, Any]] = finished.setdefault("flows", [])
    by_path = {flow["path"]: flow for flow in flows}
    for result in results:
        flow = by_path.get(result.flow)
        if flow is None:
            flow = {"path": result.flow, "name": Path(result.flow).stem, "config_hash": "", "entities": []}
            flows.append(flow)
            by_path[result.flow] = flow
        flow["entities"].extend(entity.to_json() for entity in result.entities)
    entities = _entities(finished)
    failed = sum(1 for e in entities if e.get("status") == "failed")
    finished["status"] = "success" if failed == 0 else "failed" if failed == len(entities) else "partial"
    if any(result.status == "interrupted" for result in results):
        finished["status"] = "interrupted"
    finished["finished_at"] = _now()
    finished["totals"] = {
        "rows_read": _count(entities, "rows_read"),
        "rows_loaded": _count(entities, "rows_loaded"),
        "rows_rejected": _count(entities, "rows_rejected"),
        "entities": len(entities),
    }
    return finished


# -- storing -----------------------------------------------------------------------------------


def runs_dir(state_dir: Path) -> Path:
    return Path(state_dir) / RUNS_DIR


def write_manifest(state_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write the masked manifest atomically to ``<state_dir>/runs/<run_id>.json``; return the path."""
    run_id = manifest.get("run_id")
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} is not usable as a file name")
    path = runs_dir(state_dir) / f"{run_id}.json"
    write_json_atomically(str(path), mask_json(manifest))
    return path


# -- reading -----------------------------------------------------------------------------------


@dataclass
class RunList:
    """What :func:`list_runs` found: the manifests, newest first, and one line per file that could
    not be read (``"<path>: <reason>"``) for the caller to warn about."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _with_live_status(manifest: dict[str, Any]) -> dict[str, Any]:
    """A ``running`` manifest whose process is gone from this host is reported ``interrupted``."""
    pid = manifest.get("pid")
    if (
        manifest.get("status") == "running"
        and manifest.get("host") == socket.gethostname()
        and isinstance(pid, int)
        and not isinstance(pid, bool)
        and pid > 0
        and not _alive(pid)
    ):
        return {**manifest, "status": "interrupted"}
    return manifest


def _read(path: Path) -> dict[str, Any]:
    """One manifest file; ``ValueError`` naming what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a run manifest (not a JSON object)")
    for key in ("run_id", "status", "started_at"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"not a run manifest (no {key!r} string)")
    if not isinstance(data.get("flows"), list):
        raise ValueError("not a run manifest (no 'flows' list)")
    return _with_live_status(data)


def _files(state_dir: Path) -> list[Path]:
    directory = runs_dir(state_dir)
    try:
        return sorted(p for p in directory.glob("*.json") if not p.name.startswith(".") and p.is_file())
    except OSError:
        return []


def _newest_first(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(runs, key=lambda m: (m["started_at"], m["run_id"]), reverse=True)


def list_runs(
    state_dir: Path, *, status: str | None = None, entity: str | None = None, limit: int | None = None
) -> RunList:
    """The runs recorded under ``state_dir``, newest first (by ``started_at``, then ``run_id``).

    ``status`` keeps the runs with that status (``interrupted`` included); ``entity`` keeps the runs
    that ran an entity of that name; ``limit`` keeps the newest that many after filtering. Files that
    cannot be read or are not manifests are skipped and described in :attr:`RunList.problems`."""
    found = RunList()
    for path in _files(state_dir):
        try:
            manifest = _read(path)
        except ValueError as exc:
            found.problems.append(f"{path}: {exc}")
            continue
        if status is not None and manifest["status"] != status:
            continue
        if entity is not None and not any(e.get("name") == entity for e in _entities(manifest)):
            continue
        found.runs.append(manifest)
    found.runs = _newest_first(found.runs)
    if limit is not None:
        found.runs = found.runs[: max(limit, 0)]
    return found


def load_run(state_dir: Path, run_id: str) -> dict[str, Any]:
    """The manifest of one run, by its id or a unique prefix of it; ``ConfigError`` if there is none,
    the prefix is ambiguous, or the file is unreadable."""
    directory = runs_dir(state_dir)
    files = {path.stem: path for path in _files(state_dir)}
    if run_id in files:
        chosen = run_id
    else:
        matches = sorted(name for name in files if run_id and name.startswith(run_id))
        if len(matches) > 1:
            shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise ConfigError(f"run id {run_id!r} is ambiguous: it matches {len(matches)} runs ({shown})")
        if not matches:
            recent = [m["run_id"] for m in list_runs(state_dir, limit=5).runs]
            hint = f"recent runs: {', '.join(recent)}" if recent else "no runs are recorded there yet"
            raise ConfigError(f"no run {run_id!r} in {directory} ({hint})")
        chosen = matches[0]
    try:
        return _read(files[chosen])
    except ValueError as exc:
        raise ConfigError(f"{files[chosen]}: {exc}") from None


# -- formatting --------------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _show_time(value: Any) -> str:
    parsed = _parse_time(value)
    if parsed is None:
        return "-" if not value else str(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float) -> str:
    """``0.42s``, ``12.3s``, ``4m05s``, ``2h03m``."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _duration(manifest: Mapping[str, Any]) -> str:
    started, finished = _parse_time(manifest.get("started_at")), _parse_time(manifest.get("finished_at"))
    if started is None or finished is None:
        return "-"
    return format_duration(max((finished - started).total_seconds(), 0.0))


def _table(rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def format_runs_table(runs: list[dict[str, Any]]) -> str:
    """One line per run: id, start (UTC), status, entities, rows read/loaded/rejected, duration."""
    if not runs:
        return "no runs recorded"
    rows: list[tuple[str, ...]] = [
        ("run id", "started (UTC)", "status", "entities", "read", "loaded", "rejected", "duration")
    ]
    for manifest in runs:
        entities = _entities(manifest)
        failed = sum(1 for e in entities if e.get("status") == "failed")
        rows.append(
            (
                str(manifest.get("run_id", "?")),
                _show_time(manifest.get("started_at")),
                str(manifest.get("status", "?")),
                f"{len(entities)}" + (f" ({failed} failed)" if failed else ""),
                f"{_count(entities, 'rows_read'):,}",
                f"{_count(entities, 'rows_loaded'):,}",
                f"{_count(entities, 'rows_rejected'):,}",
                _duration(manifest),
            )
        )
    return "\n".join(_table(rows, right={3, 4, 5, 6, 7}))


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size = count / 1024
    for unit in ("KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _entity_block(entity: Mapping[str, Any]) -> list[str]:
    def number(key: str) -> int:
        return _int(entity.get(key))

    mode = entity.get("mode") or "?"
    refresh = ", full refresh" if entity.get("full_refresh") else ""
    lines = [
        f"  entity {entity.get('name', '?')}: {entity.get('status', '?')}  "
        f"({entity.get('source') or '?'} -> {entity.get('destination') or '?'}, {mode}{refresh})",
        f"    rows        {number('rows_read'):,} read, {number('rows_loaded'):,} loaded, "
        f"{number('rows_rejected'):,} rejected, {number('rows_skipped'):,} skipped, "
        f"{number('rows_null_cursor'):,} null cursor",
        f"    commits     {number('commits'):,} ({number('batches'):,} batches, {_size(number('bytes'))}, "
        f"{format_duration(_seconds(entity.get('seconds')))})",
        f"    time        {_show_time(entity.get('started_at'))} -> {_show_time(entity.get('finished_at'))}",
    ]
    before, after = entity.get("watermark_before"), entity.get("watermark_after")
    if before is not None or after is not None:
        lines.append(f"    watermark   {_json(before)} -> {_json(after)}")
    if entity.get("resumed_from"):
        lines.append(f"    resumed     from run {entity['resumed_from']}")
    if entity.get("state_store"):
        lines.append(f"    state       {entity['state_store']}")
    checks = entity.get("checks")
    for check in checks if isinstance(checks, list) else []:
        if not isinstance(check, dict):
            continue
        line = (
            f"    check       {check.get('check', '?')} ({check.get('action', '?')}): "
            f"{_int(check.get('rows_failed')):,} of {_int(check.get('rows_evaluated')):,} rows failed"
        )
        if check.get("first_failure"):
            line += f"; first: {check['first_failure']}"
        lines.append(line)
    warnings = entity.get("warnings")
    for warning in warnings if isinstance(warnings, list) else []:
        lines.append(f"    warning     {warning}")
    if entity.get("error"):
        lines.append(f"    error       {entity['error']}")
    return lines


def format_run(manifest: dict[str, Any]) -> str:
    """A readable view of one run: the header, then each flow with one block per entity."""
    entities = _entities(manifest)
    plugins = manifest.get("plugins") or {}
    command = manifest.get("command") or []
    lines = [
        f"run {manifest.get('run_id', '?')}: {manifest.get('status', '?')}",
        f"  started     {_show_time(manifest.get('started_at'))} UTC",
        f"  finished    {_show_time(manifest.get('finished_at'))}"
        + (" UTC" if manifest.get("finished_at") else "")
        + f"  (duration {_duration(manifest)})",
        f"  env         {manifest.get('env') or '-'}",
        f"  host        {manifest.get('host', '?')} (pid {manifest.get('pid', '?')})",
        f"  conduit     {manifest.get('conduit_version', '?')}",
    ]
    if isinstance(plugins, dict) and plugins:
        lines.append(f"  plugins     {', '.join(f'{name} ({v})' for name, v in sorted(plugins.items()))}")
    if isinstance(command, list) and command:
        lines.append(f"  command     {' '.join(map(str, command))}")
    failed = sum(1 for e in entities if e.get("status") == "failed")
    lines.append(
        f"  totals      {len(entities)} entit{'y' if len(entities) == 1 else 'ies'}"
        + (f" ({failed} failed)" if failed else "")
        + f", {_count(entities, 'rows_read'):,} read, {_count(entities, 'rows_loaded'):,} loaded, "
        f"{_count(entities, 'rows_rejected'):,} rejected"
    )
    flows = manifest.get("flows")
    for flow in flows if isinstance(flows, list) else []:
        if not isinstance(flow, dict):
            continue
        lines.append("")
        config = f", config {flow['config_hash']}" if flow.get("config_hash") else ""
        lines.append(f"flow {flow.get('name') or '?'} ({flow.get('path', '?')}{config})")
        flow_entities = [e for e in flow.get("entities") or [] if isinstance(e, dict)]
        if not flow_entities:
            lines.append("  (no entities recorded)")
        for entity in flow_entities:
            lines.extend(_entity_block(entity))
    return "\n".join(lines)
