"""YAML documents that remember where every key and value came from.

:func:`load_document` parses a file into plain Python data plus a map from key path (a tuple such as
``("entities", "orders", "source", "options", "path")``) to the :class:`Mark` (file, line, column) of
that key in the file. Every later error message uses it to say ``ingest.yml:12:7: entities.orders...``.
Duplicate keys in one mapping are errors (YAML silently keeps the last one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conduit.errors import ConfigError

KeyPath = tuple[str | int, ...]

# libyaml's C parser when PyYAML was built with it (the wheels are): about 8x faster on big projects.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Mark:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass
class Document:
    """Parsed YAML data and the position of every key path in it."""

    path: Path
    data: Any
    marks: dict[KeyPath, Mark] = field(default_factory=dict)

    def mark(self, keypath: KeyPath) -> Mark:
        """The mark of ``keypath`` or of its nearest ancestor that has one."""
        for end in range(len(keypath), -1, -1):
            found = self.marks.get(keypath[:end])
            if found is not None:
                return found
        return Mark(str(self.path), 1, 1)


def value_at(data: Any, keypath: KeyPath) -> Any:
    """The value at ``keypath`` inside nested mappings and lists, or ``None`` when there is none."""
    for part in keypath:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def format_keypath(keypath: Sequence[str | int]) -> str:
    text = ""
    for part in keypath:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _mark(file: str, node: yaml.Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Walker:
    """Builds the data with PyYAML's safe constructor and records marks from the node tree."""

    def __init__(self, file: str, loader: yaml.SafeLoader) -> None:  # or CSafeLoader
        self.file = file
        self.loader = loader
        self.marks: dict[KeyPath, Mark] = {}
        self.problems: list[str] = []

    def walk(self, node: yaml.Node, keypath: KeyPath) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Mark] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.loader.construct_object(key_node, deep=True)
                mark = _mark(self.file, key_node)
                if key in seen:
                    self.problems.append(
                        f"{mark}: {format_keypath((*keypath, key))}: duplicate key (first at line "
                        f"{seen[key].line})"
                    )
                seen[key] = mark
                child = (*keypath, key)
                self.marks[child] = mark
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*keypath, index)
                self.marks[child] = _mark(self.file, item)
                self.walk(item, child)


def parse_document(text: str, path: Path) -> Document:
    """Parse YAML text; raise one :class:`ConfigError` with file:line:column on any problem."""
    file = str(path)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(path, {}, {})
        data = loader.construct_document(node)
        walker = _Walker(file, loader)
        walker.walk(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: YAML error: {exc}") from None
    finally:
        loader.dispose()
    if walker.problems:
        raise ConfigError("\n".join(walker.problems))
    walker.marks[()] = Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)
    return Document(path, data, walker.marks)


def load_document(path: Path) -> Document:
    """Read and parse one YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; give the path of a flow file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config files must be UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    return parse_document(text, path)
