"""Finding flows on disk and reading the files of one flow, in any of the three layouts.

1. One file (``ingest.yml``, ``flow.yml`` or any ``*.yml``) with everything inline.
2. A flow directory: ``flow.yml`` (flow-level ``source``/``destination``, ``defaults``, options) and
   ``entities.yml`` (``defaults:`` and an ``entities:`` list of bare names or mappings).
3. A flow directory with ``entities/``: one YAML file per entity (the file name is the entity name
   unless the file sets ``name:``); ``flow.yml`` and ``entities.yml`` defaults still apply.

A project directory holds many flows: ``flows/<name>/`` directories or ``flows/<name>.yml`` files.
``conduit run flows/`` runs them all; ``conduit run flows/orders`` runs one.

A config file may be a symbolic link. One that leads nowhere (to a missing file, or round in a loop)
is a :class:`ConfigError` naming it: ``Path.is_file()`` is false for it, so it would otherwise be taken
for an absent file and its flow or entity silently dropped.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from conduit.config.documents import Document, load_document
from conduit.errors import ConfigError

FLOW_FILE = "flow.yml"
ENTITIES_FILE = "entities.yml"
ENTITIES_DIR = "entities"
SINGLE_FILES = ("ingest.yml", "flow.yml", "ingest.yaml", "flow.yaml")


@dataclass
class FlowFiles:
    """The parsed files of one flow (not yet expanded or validated)."""

    name: str
    flow: Document
    entities_file: Document | None = None
    entity_files: list[Document] = field(default_factory=list)

    @property
    def documents(self) -> list[Document]:
        return [self.flow, *([self.entities_file] if self.entities_file else []), *self.entity_files]


def _yaml_name(path: Path) -> bool:
    return path.suffix in (".yml", ".yaml") and not path.name.startswith(".")


def _is_yaml(path: Path) -> bool:
    return path.is_file() and _yaml_name(path)


def _broken_link(path: Path) -> str | None:
    """Why ``path`` is a symbolic link that leads nowhere (the end of a message), or ``None``."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"is a symbolic link to a missing file ({os.readlink(path)})"
        return f"is a symbolic link that cannot be followed: {exc.strerror}"
    return None


def _check_link(path: Path) -> None:
    """``ConfigError`` naming ``path`` if it is a symbolic link that leads nowhere."""
    problem = _broken_link(path)
    if problem is not None:
        raise ConfigError(f"{path}: {problem}")


def _children(directory: Path) -> list[Path]:
    """The entries of ``directory`` in name order; ``ConfigError`` if it cannot be listed."""
    try:
        return sorted(directory.iterdir())
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot read directory: {exc.strerror}") from None


def _flow_in(directory: Path) -> Path | None:
    """The flow a directory holds: itself (layouts 2 and 3), or its single flow file (layout 1)."""
    for name in (ENTITIES_FILE, ENTITIES_DIR, *SINGLE_FILES):
        _check_link(directory / name)
    if (directory / ENTITIES_FILE).is_file() or (directory / ENTITIES_DIR).is_dir():
        return directory
    for name in SINGLE_FILES:
        if (directory / name).is_file():
            return directory if name.startswith("flow.") else directory / name
    return None


def find_flows(path: Path) -> list[Path]:
    """The flows a path names: a flow file, a flow directory, or a directory of flows."""
    if not path.exists():
        _check_link(path)
        raise ConfigError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    own = _flow_in(path)
    if own is not None:
        return [own]
    if (path / "flows").is_dir():
        return find_flows(path / "flows")
    found = []
    for child in _children(path):
        if _yaml_name(child):
            _check_link(child)
        flow = _flow_in(child) if child.is_dir() else (child if _is_yaml(child) else None)
        if flow is not None:
            found.append(flow)
    if not found:
        raise ConfigError(
            f"{path}: no flow here (looked for {FLOW_FILE}, {ENTITIES_FILE}, {ENTITIES_DIR}/, ingest.yml, "
            f"flows/ and flow directories below it)"
        )
    return found


def flow_name(path: Path) -> str:
    if path.is_dir():
        return path.resolve().name
    if path.stem in ("ingest", "flow"):
        return path.resolve().parent.name
    return path.stem


def read_flow(path: Path) -> FlowFiles:
    """Parse every file of the flow at ``path`` (a file for layout 1, a directory for 2 and 3)."""
    if path.is_file():
        return FlowFiles(flow_name(path), load_document(path))
    flow_path = path / FLOW_FILE
    entities_path = path / ENTITIES_FILE
    entity_dir = path / ENTITIES_DIR
    for known in (flow_path, entities_path, entity_dir):
        _check_link(known)
    flow = load_document(flow_path) if flow_path.is_file() else Document(flow_path, {}, {})
    entities_file = load_document(entities_path) if entities_path.is_file() else None
    entity_files = []
    if entity_dir.is_dir():
        for child in _children(entity_dir):
            if _yaml_name(child):
                _check_link(child)
            if _is_yaml(child):
                entity_files.append(load_document(child))
    return FlowFiles(flow_name(path), flow, entities_file, entity_files)
