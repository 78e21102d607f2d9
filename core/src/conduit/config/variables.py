"""Variable expansion in config values.

* ``${VAR}`` and ``${VAR:-default}``: the environment (a ``.env`` file next to the project adds
  variables but never overrides the real environment);
* ``${var.name}`` (and ``${var.name:-default}``): the active profile's ``variables``;
* ``${entity.name}``: the name of the entity being resolved (so one ``defaults:`` block can say
  ``path: data/${entity.name}.csv``);
* ``$${`` is a literal ``${``.

Expansion runs after YAML parsing and touches string scalars only, so a value can never change the
structure of the config. An undefined variable without a default is an error naming the variable and
the key path that used it. Every expansion records which variables a value used, for
``conduit config explain``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from conduit.config.documents import Document, KeyPath, format_keypath
from conduit.config.layers import Layer, Origin
from conduit.errors import ConfigError

ENTITY_NAME = "entity.name"
_PATTERN = re.compile(
    r"\$\$\{|\$\{((?:var\.|entity\.)?[A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}?"
)


class Variables:
    """The values ``${...}`` can refer to: environment, profile variables, the entity's name."""

    def __init__(
        self,
        env: Mapping[str, str],
        profile: Mapping[str, Any] | None = None,
        entity: str | None = None,
    ) -> None:
        self.env = env
        self.profile = profile or {}
        self.entity = entity

    def lookup(self, name: str) -> str | None:
        if name == ENTITY_NAME:
            return self.entity
        if name.startswith("var."):
            value = self.profile.get(name[4:])
            return None if value is None else str(value)
        if name.startswith("entity."):
            return None
        return self.env.get(name)

    def missing(self, name: str) -> str:
        if name.startswith("var."):
            known = ", ".join(sorted(self.profile)) or "none"
            return f"profile variable {name[4:]!r} is not defined (the profile's variables: {known})"
        if name.startswith("entity."):
            return f"unknown variable {name!r} (only ${{{ENTITY_NAME}}} is defined for entities)"
        return f"environment variable {name!r} is not set and has no default (${{{name}:-...}})"


def expand_value(text: str, variables: Variables, *, phase: str = "all") -> tuple[str, list[str], list[str]]:
    """Expand one string: the result, the variable names used, and the problems found.

    ``phase="document"`` expands everything but ``${entity.name}`` and leaves ``$${`` escapes for the
    entity phase; ``phase="entity"`` expands only ``${entity.name}`` and the escapes, so a value that
    came from a variable is never expanded twice.
    """
    used: list[str] = []
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return whole if phase == "document" else "${"
        name, default = match.group(1), match.group(2)
        if phase == "entity" and name != ENTITY_NAME:
            return whole
        if name is None:
            problems.append(f"malformed variable reference {whole!r} (use ${{NAME}} or ${{NAME:-default}})")
            return whole
        if phase == "document" and name == ENTITY_NAME:
            return whole
        value = variables.lookup(name)
        used.append(name)
        if value is not None:
            return value
        if default is not None:
            return default
        problems.append(variables.missing(name))
        return whole

    return _PATTERN.sub(replace, text), used, problems


def expand_document(document: Document, variables: Variables) -> dict[KeyPath, tuple[str, ...]]:
    """Expand every string of ``document.data`` in place (``${entity.name}`` is kept for later).

    Returns the variables each key path used; raises one ConfigError listing every problem.
    """
    problems: list[str] = []
    used_by: dict[KeyPath, tuple[str, ...]] = {}

    def expand(text: str, keypath: KeyPath) -> str:
        expanded, used, found = expand_value(text, variables, phase="document")
        if used:
            used_by[keypath] = tuple(used)
        problems.extend(f"{document.mark(keypath)}: {format_keypath(keypath)}: {p}" for p in found)
        return expanded

    if isinstance(document.data, str):
        document.data = expand(document.data, ())
    else:
        _walk_in_place(document.data, (), expand)
    if problems:
        raise ConfigError("\n".join(problems))
    return used_by


def expand_entity_name(layer: Layer, entity: str) -> None:
    """Replace ``${entity.name}`` in a merged entity layer, recording it in the origins."""
    variables = Variables({}, None, entity)

    def expand(text: str, keypath: KeyPath) -> str:
        expanded, used, _ = expand_value(text, variables, phase="entity")
        origin = layer.origin(keypath)
        if origin is not None and used:
            layer.origins[keypath] = Origin(
                origin.layer, origin.mark, (*origin.variables, *used), origin.keypath
            )
        return expanded

    _walk_in_place(layer.data, (), expand)


def _walk_in_place(value: Any, keypath: KeyPath, expand: Callable[[str, KeyPath], str]) -> None:
    """Like :func:`_walk`, but only the strings that hold a reference are replaced (no copying)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(item, str):
            if "${" in item:
                value[key] = expand(item, (*keypath, key))
        elif isinstance(item, dict | list):
            _walk_in_place(item, (*keypath, key), expand)
