"""Environment profiles (``profiles/<env>.yml``) and the project's ``.env`` file.

The project root is the nearest directory, from the flow path upwards, that holds a ``profiles/`` or
a ``flows/`` directory; for a flow with neither above it, the flow's own directory. Relative paths in
connector options and the ``.env`` file are taken from the project root. The profile is chosen by ``--env``, else ``CONDUIT_ENV``, else ``dev``;
an explicitly chosen profile that does not exist is an error, the implicit ``dev`` may be absent.

.. code-block:: yaml

    version: 1
    variables: {lake_root: /data/lake}
    connections:
      warehouse: {type: postgres, params: {host: db.internal, password: "${PG_PASSWORD}"}}
      csv_default: {type: csv, params: {delimiter: ",", encoding: utf-8}}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conduit.config.documents import Document, KeyPath, load_document
from conduit.config.errors import validation_problems
from conduit.config.variables import Variables, expand_document, expand_value
from conduit.errors import ConfigError

ENV_VAR = "CONDUIT_ENV"
DEFAULT_ENV = "dev"


class ProfileConnection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    params: dict[str, Any] = Field(default_factory=dict)


class ProfileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    variables: dict[str, str | int | float | bool] = Field(default_factory=dict)
    connections: dict[str, ProfileConnection] = Field(default_factory=dict)


@dataclass
class Profile:
    """The active profile: its name, file, validated content and which variables each value used."""

    env: str
    path: Path | None = None
    document: Document | None = None
    spec: ProfileSpec = field(default_factory=ProfileSpec)
    variables_used: dict[KeyPath, tuple[str, ...]] = field(default_factory=dict)


def find_project_root(path: Path) -> Path:
    """The nearest directory at or above ``path`` holding ``profiles/`` or ``flows/``, else the flow's."""
    start = path.resolve()
    start = start if start.is_dir() else start.parent
    for candidate in (start, *start.parents):
        if (candidate / "profiles").is_dir() or (candidate / "flows").is_dir():
            return candidate
    return start


_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` allowed, ``#`` comments, single or double quotes)."""
    values: dict[str, str] = {}
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if match is None:
            problems.append(f"{path}:{number}:1: expected KEY=VALUE")
            continue
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    if problems:
        raise ConfigError("\n".join(problems))
    return values


def environment(root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables ``${VAR}`` sees: ``.env`` at the project root, overridden by the real environment."""
    real = dict(os.environ if environ is None else environ)
    dotenv = root / ".env"
    merged = read_dotenv(dotenv) if dotenv.is_file() else {}
    merged.update(real)
    return merged


def profiles_dir_for(root: Path, profiles_dir: Path | None) -> Path:
    return profiles_dir.resolve() if profiles_dir is not None else root / "profiles"


def choose_env(env: str | None, environ: Mapping[str, str]) -> tuple[str, bool]:
    """The profile name and whether it was chosen explicitly (``--env`` or ``CONDUIT_ENV``)."""
    if env:
        return env, True
    if environ.get(ENV_VAR):
        return environ[ENV_VAR], True
    return DEFAULT_ENV, False


def available_profiles(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


def load_profile(directory: Path, env: str, explicit: bool, variables_env: Mapping[str, str]) -> Profile:
    """Load and validate ``<directory>/<env>.yml``; expand its variables (env first, then var.*)."""
    path = next(
        (
            directory / f"{env}{suffix}"
            for suffix in (".yml", ".yaml")
            if (directory / f"{env}{suffix}").is_file()
        ),
        None,
    )
    if path is None:
        if explicit:
            known = ", ".join(available_profiles(directory)) or "none"
            raise ConfigError(
                f"{directory}: no profile {env!r} ({directory / (env + '.yml')} does not exist; profiles: {known})"
            )
        return Profile(env)
    document = load_document(path)
    if not isinstance(document.data, dict):
        raise ConfigError(f"{document.mark(())}: a profile must be a mapping with 'connections'")
    problems: list[str] = []
    raw_variables = document.data.get("variables")
    profile_variables: dict[str, Any] = {}
    if isinstance(raw_variables, dict):
        for name, value in raw_variables.items():
            if isinstance(value, str):
                value, _, found = expand_value(value, Variables(variables_env))
                problems.extend(f"{document.mark(('variables', name))}: variables.{name}: {p}" for p in found)
            profile_variables[str(name)] = value
    if problems:
        raise ConfigError("\n".join(problems))
    used = expand_document(document, Variables(variables_env, profile_variables))
    try:
        spec = ProfileSpec.model_validate(document.data)
    except ValidationError as exc:
        raise ConfigError(
            "\n".join(validation_problems(exc, document, ProfileSpec, lambda loc: loc))
        ) from None
    return Profile(env, path, document, spec, used)
