"""Entity state: the incremental watermark, the files already loaded, and the checkpoint of a run
that has not finished.

The state is one JSON document per entity. Where the destination can store it with the data
(``DestinationCapabilities.stores_state``: the PostgreSQL ``_conduit_state`` table, the Parquet
directory's commit record) it is committed in the same transaction or commit record as the rows it
describes, so a crash at any instant leaves data and state agreeing. Otherwise it lives in the local
state directory (``.conduit/state/<flow>/<entity>.json``), written right after each commit.

A state belongs to what it describes: the destination's target together with the flow and the
entity (:class:`~conduit.connectors.StateKey`), never to an entity name another flow may also use.

Document (``version`` 1)::

    {"version": 1, "entity": "orders", "cursor": "updated_at",
     "watermark": "2026-11-01T10:00:00+00:00",      # highest cursor value loaded (JSON form)
     "boundary": {"<row hash>": 1, ...},            # rows loaded AT the watermark (de-duplication)
     "primary_key": ["id"] | [] | null,             # incremental.primary_key the boundary was hashed by
                                                    # ([]: none, whole rows; null: not recorded, older
                                                    # versions); a change is refused until a reset
     "boundary_columns": ["id", "name", ...],       # the columns the row hashes cover: the primary key,
                                                    # or the row's columns as first loaded (stable when
                                                    # columns are added later)
     "files": {"data/a.csv": "1234:1700000000"},     # files loaded in full: path -> version
     "in_progress": null | {...},                   # the checkpoint of an unfinished run
     "run_id": "...", "updated_at": "...", "rows_loaded_total": 123}
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from conduit.connectors import Destination, StateKey
from conduit.errors import ConnectorError
from conduit.files import remove_quietly, write_json_atomically
from conduit.locks import lock_file

STATE_VERSION = 1
STATE_DIR_ENV = "CONDUIT_STATE_DIR"
DEFAULT_STATE_DIR = ".conduit"


def empty_state(entity: str) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "entity": entity,
        "cursor": None,
        "watermark": None,
        "boundary": {},
        "primary_key": None,
        "boundary_columns": None,
        "files": {},
        "in_progress": None,
        "run_id": None,
        "updated_at": None,
        "rows_loaded_total": 0,
    }


def normalized(entity: str, stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stored document with every key present (older or partial documents are filled in)."""
    state = empty_state(entity)
    if stored:
        state.update(copy.deepcopy(dict(stored)))
    return state


def state_dir(project_root: Path, override: str | Path | None = None) -> Path:
    """``--state-dir``, else ``$CONDUIT_STATE_DIR``, else ``<project root>/.conduit``."""
    chosen = override or os.environ.get(STATE_DIR_ENV)
    if chosen:
        path = Path(chosen)
        return path if path.is_absolute() else (Path.cwd() / path)
    return project_root / DEFAULT_STATE_DIR


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """The file name earlier versions gave a flow or entity: lossy (``sales eu`` and ``sales_eu``
    both ``sales_eu``), so only read to find state written by them; see :func:`file_name`."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "_"
    return cleaned[:120]


_MAX_FILE_NAME = 160


def file_name(name: str) -> str:
    """A flow or entity name as one path component, one-to-one: distinct names never share a file.

    Letters, digits, ``_``, ``-`` and inner ``.`` stay as they are (so ``orders`` is ``orders``);
    every other character, and a leading ``.``, is percent-encoded (``sales eu`` is ``sales%20eu``,
    ``a/b`` is ``a%2Fb``, ``%`` itself ``%25``). A name longer than 160 characters once encoded is
    cut and ends with a hash of the whole name."""
    encoded = quote(name, safe="")
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    encoded = encoded or "%"  # the empty name (never a valid entity): "%" alone is no other encoding
    if len(encoded) > _MAX_FILE_NAME:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        encoded = f"{encoded[: _MAX_FILE_NAME - 17].rstrip('%')}~{digest}"
    return encoded


def key_tag(key: StateKey) -> str:
    """A short fixed-length tag of ``key`` (12 hex digits) for names that must stay short and unique
    per flow and entity, such as Parquet part files."""
    text = json.dumps([key.flow, key.entity])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class StateStore(Protocol):
    """Where one entity's state is read and written, and its run lock taken."""

    @property
    def where(self) -> str: ...

    @property
    def with_data(self) -> bool:
        """``True``: the destination commits the state with the data (``commit(state)``)."""
        ...

    def read(self) -> dict[str, Any] | None: ...

    def write(self, state: Mapping[str, Any] | None) -> None: ...

    def lock(self, run_id: str) -> AbstractContextManager[None]: ...


@dataclass
class DestinationStateStore:
    """State held by the destination itself, committed with the data."""

    destination: Destination
    key: StateKey
    where: str = "destination"
    with_data: bool = True

    def read(self) -> dict[str, Any] | None:
        return self.destination.read_state(self.key)

    def write(self, state: Mapping[str, Any] | None) -> None:
        self.destination.write_state(self.key, state)

    def lock(self, run_id: str) -> AbstractContextManager[None]:
        return self.destination.lock(self.key)


@dataclass
class LocalStateStore:
    """State in the local state directory, for destinations that cannot hold it:
    ``<root>/state/<flow>/<entity>.json`` (names through :func:`file_name`), recording the target it
    describes (:meth:`Destination.target_id`). A document written for another target is not this
    target's state: the entity then loads as for the first time (and its next commit replaces it)."""

    root: Path
    key: StateKey
    target: str
    with_data: bool = False

    @property
    def where(self) -> str:
        return str(self.path.parent)

    @property
    def path(self) -> Path:
        return self.root / "state" / file_name(self.key.flow) / f"{file_name(self.key.entity)}.json"

    @property
    def _legacy_path(self) -> Path:
        """Where versions before the one-to-one names kept it (see :func:`safe_name`)."""
        return self.root / "state" / safe_name(self.key.flow) / f"{safe_name(self.key.entity)}.json"

    def read(self) -> dict[str, Any] | None:
        data = _read_json(self.path)
        if data is None and self._legacy_path != self.path:
            legacy = _read_json(self._legacy_path)
            # a lossy old name may be another entity's file: only the one written for this entity counts
            data = legacy if legacy is not None and legacy.get("entity") == self.key.entity else None
        if data is None:
            return None
        stored_target = data.get("target")
        if stored_target is not None and stored_target != self.target:
            return None
        return data

    def write(self, state: Mapping[str, Any] | None) -> None:
        if state is None:
            remove_quietly(str(self.path))
        else:
            write_json_atomically(str(self.path), {**dict(state), "target": self.target})
        if self._legacy_path != self.path:
            legacy = _read_json(self._legacy_path)
            if legacy is not None and legacy.get("entity") == self.key.entity:
                remove_quietly(str(self._legacy_path))

    def lock(self, run_id: str) -> AbstractContextManager[None]:
        path = self.root / "locks" / file_name(self.key.flow) / f"{file_name(self.key.entity)}.lock"
        return lock_file(path, str(self.key), run_id)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConnectorError(f"cannot read the state file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConnectorError(f"the state file {path} is not valid JSON ({exc}); fix or remove it") from None
    return data if isinstance(data, dict) else None


def store_for(destination: Destination, key: StateKey, root: Path) -> StateStore:
    """The destination when it stores state, else the local state directory."""
    if destination.capabilities.stores_state:
        return DestinationStateStore(destination, key)
    return LocalStateStore(root, key, destination.target_id())


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def describe_state(entity: str, stored: Mapping[str, Any] | None, where: str) -> str:
    """A short human view of one entity's state, for ``conduit state show``."""
    if not stored:
        return f"{entity}: no state (the next run is a first load)   [{where}]"
    state = normalized(entity, stored)
    lines = [f"{entity}:   [{where}]"]
    if state["cursor"]:
        remembered = sum(int(v) for v in (state["boundary"] or {}).values())
        lines.append(
            f"  watermark   {state['cursor']} = {state['watermark']!r} ({remembered} row(s) remembered at it)"
        )
    if state["files"]:
        lines.append(f"  files       {len(state['files'])} loaded in full")
    progress = state["in_progress"]
    if progress:
        at = (
            f"{progress.get('file')} row {progress.get('row')}"
            if progress.get("file")
            else progress.get("mark")
        )
        lines.append(
            f"  INTERRUPTED run {progress.get('run_id')}: {int(progress.get('rows') or 0):,} rows committed, "
            f"stopped at {at}; continue with `conduit run --resume`"
        )
    schema = state.get("schema")
    if isinstance(schema, Mapping) and schema.get("version"):
        columns = ", ".join(str(c.get("name")) for c in schema.get("columns") or [])
        lines.append(
            f"  schema      version {schema['version']}: {columns}  (`conduit schema history {entity}`)"
        )
    lines.append(f"  last run    {state['run_id']} at {state['updated_at']}")
    lines.append(f"  rows loaded {int(state['rows_loaded_total'] or 0):,} in total")
    return "\n".join(lines)
