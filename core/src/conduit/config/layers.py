"""Config values that remember where they came from, and the deep merge that stacks them.

A :class:`Layer` is a mapping plus, for every key path inside it, the :class:`Origin` of that value:
the layer name (``entity``, ``defaults``, ``flow``, ``profile``, ``connector default``), the file
position, and the variables its text used. Layers are merged lowest first; a mapping merges key by
key, a list or a scalar replaces what was below it (and the origins below it go with it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conduit.config.documents import Document, KeyPath, Mark, value_at

LAYER_ORDER = ("connector default", "profile", "flow", "defaults", "entity")


def _copy(value: Any) -> Any:
    """A deep copy of plain config data (mappings, lists, scalars): much cheaper than copy.deepcopy."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


@dataclass(frozen=True)
class Origin:
    """Where a resolved value came from."""

    layer: str
    mark: Mark | None = None
    variables: tuple[str, ...] = ()
    keypath: KeyPath | None = None  # where in its file (for messages)

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "file": self.mark.file if self.mark else None,
            "line": self.mark.line if self.mark else None,
            "column": self.mark.column if self.mark else None,
            "variables": list(self.variables),
        }

    def __str__(self) -> str:
        text = f"{self.layer}" if self.mark is None else f"{self.layer}, {self.mark}"
        if self.variables:
            text += f", via {', '.join('${' + v + '}' for v in self.variables)}"
        return text


@dataclass
class Layer:
    """A mapping and the origin of every key path in it (paths relative to the mapping)."""

    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[KeyPath, Origin] = field(default_factory=dict)

    def sub(self, key: str) -> Layer:
        """The layer below ``key`` (an empty layer when it is absent or not a mapping)."""
        value = self.data.get(key)
        if not isinstance(value, dict):
            return Layer()
        origins = {
            path[1:]: origin for path, origin in self.origins.items() if path[:1] == (key,) and len(path) > 1
        }
        if (key,) in self.origins:
            origins[()] = self.origins[(key,)]
        return Layer(value, origins)

    def origin(self, keypath: KeyPath) -> Origin | None:
        """The origin of ``keypath`` or of its nearest ancestor that has one."""
        for end in range(len(keypath), -1, -1):
            found = self.origins.get(keypath[:end])
            if found is not None:
                return found
        return None


def from_document(
    document: Document,
    root: KeyPath,
    layer: str,
    variables: Mapping[KeyPath, tuple[str, ...]] | None = None,
) -> Layer:
    """The mapping at ``root`` in ``document`` as a layer named ``layer``."""
    value = value_at(document.data, root)
    if not isinstance(value, dict):
        return Layer()
    used = variables or {}
    origins = {
        path[len(root) :]: Origin(layer, mark, used.get(path, ()), path)
        for path, mark in document.marks.items()
        if path[: len(root)] == root
    }
    return Layer(_copy(value), origins)


def from_mapping(data: Mapping[str, Any], layer: str, mark: Mark | None = None) -> Layer:
    """A layer for values that have no file (connector defaults): every key gets the same origin."""
    origins: dict[KeyPath, Origin] = {}

    def walk(value: Any, path: KeyPath) -> None:
        origins[path] = Origin(layer, mark)
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, key))

    walk(dict(data), ())
    return Layer(_copy(dict(data)), origins)


def merge(layers: Iterable[Layer]) -> Layer:
    """Deep-merge layers, lowest precedence first: mappings merge, lists and scalars replace."""
    result = Layer()
    for layer in layers:
        _merge_into(result, layer, ())
    return result


def _merge_into(result: Layer, layer: Layer, prefix: KeyPath) -> None:
    target: dict[str, Any] = result.data
    for part in prefix:
        target = target[part]  # type: ignore[index]
    if () in layer.origins and prefix not in result.origins:
        result.origins[prefix] = layer.origins[()]
    for key, value in layer.data.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(result, layer.sub(key), path)
            continue
        if key in target:  # what was below is replaced, and its origins go with it
            for old in [p for p in result.origins if p[: len(path)] == path]:
                del result.origins[old]
        target[key] = _copy(value)
        for rel, origin in layer.origins.items():
            if rel[:1] == (key,):
                result.origins[(*prefix, *rel)] = origin
