"""``${VAR}`` and ``${VAR:-default}`` expansion from the environment.

Expansion runs after YAML parsing and touches string scalars only, so a variable's value can never
change the structure of the config. ``$${`` is a literal ``${``. An undefined variable without a
default is an error naming the variable and the key path that used it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from conduit.config.documents import Document, KeyPath, format_keypath
from conduit.errors import ConfigError

_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}?")


def expand_value(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand one string; return it and the problems found (undefined or malformed references)."""
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name is None:
            problems.append(f"malformed variable reference {whole!r} (use ${{NAME}} or ${{NAME:-default}})")
            return whole
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(f"environment variable {name!r} is not set and has no default (${{{name}:-...}})")
        return whole

    return _PATTERN.sub(replace, text), problems


def expand_document(document: Document, env: Mapping[str, str]) -> None:
    """Expand every string scalar of ``document.data`` in place; raise one error listing all problems."""
    problems: list[str] = []

    def walk(value: Any, keypath: KeyPath) -> Any:
        if isinstance(value, dict):
            return {key: walk(item, (*keypath, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*keypath, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            expanded, found = expand_value(value, env)
            for problem in found:
                problems.append(f"{document.mark(keypath)}: {format_keypath(keypath)}: {problem}")
            return expanded
        return value

    document.data = walk(document.data, ())
    if problems:
        raise ConfigError("\n".join(problems))
