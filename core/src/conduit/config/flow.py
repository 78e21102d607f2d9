"""Loading a flow file into validated, ready-to-run entity plans.

:func:`load_flow` reads the YAML (with positions), expands ``${VAR}`` references, validates the flow
shape, then resolves every entity: connection references, the connector classes from the plugin
registry, the merged options (entity options override connection options) validated by each
connector's own model, the write mode against the destination's capabilities, and the checks.
Every problem in the file is collected and raised as one :class:`~conduit.errors.ConfigError`, each
line naming ``file:line:column`` and the key path.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from conduit.checks import Check
from conduit.config.documents import Document, KeyPath, format_keypath, load_document
from conduit.config.errors import validation_problems
from conduit.config.models import ConnectionSpec, EndpointSpec, EntitySpec, FlowSpec
from conduit.config.variables import expand_document
from conduit.connectors import ConnectorOptions, Destination, Source, WriteMode
from conduit.errors import ConfigError, PluginError
from conduit.plugins import Registry


@dataclass(frozen=True)
class Endpoint:
    """A resolved source or destination of one entity."""

    type: str
    connection: str | None
    options: ConnectorOptions


@dataclass(frozen=True)
class EntityPlan:
    """Everything needed to run one entity, validated."""

    name: str
    source_cls: type[Source]
    source: Endpoint
    destination_cls: type[Destination]
    destination: Endpoint
    mode: WriteMode
    batch_size: int
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class Flow:
    """A loaded flow file: its entities in file order."""

    path: Path
    entities: dict[str, EntityPlan]
    config_hash: str = ""
    plugins: dict[str, str] = field(default_factory=dict)


def _normalise_entities(document: Document, problems: list[str]) -> dict[str, KeyPath]:
    """Accept ``entities`` as a mapping or as a list of ``{name: ..., ...}``; map names to key paths."""
    data = document.data
    entities = data.get("entities") if isinstance(data, dict) else None
    paths: dict[str, KeyPath] = {}
    if isinstance(entities, dict):
        return {str(name): ("entities", name) for name in entities}
    if not isinstance(entities, list):
        return paths
    as_mapping: dict[str, Any] = {}
    for index, item in enumerate(entities):
        keypath: KeyPath = ("entities", index)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            problems.append(
                f"{document.mark(keypath)}: {format_keypath(keypath)}: an entity in a list needs a "
                f"'name' key (or write entities as a mapping of name to entity)"
            )
            continue
        name = item["name"]
        if name in as_mapping:
            first = document.mark(paths[name])
            problems.append(
                f"{document.mark(keypath)}: {format_keypath(keypath)}: duplicate entity {name!r} "
                f"(first defined at line {first.line})"
            )
            continue
        as_mapping[name] = {key: value for key, value in item.items() if key != "name"}
        paths[name] = keypath
    data["entities"] = as_mapping
    return paths


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_flow(
    path: str | Path,
    registry: Registry,
    *,
    env: Mapping[str, str] | None = None,
) -> Flow:
    """Load, validate and resolve a flow file. Raises one ConfigError listing every problem."""
    file = Path(path)
    document = load_document(file)
    if not isinstance(document.data, dict):
        raise ConfigError(f"{document.mark(())}: a flow file must be a mapping with 'entities'")
    expand_document(document, os.environ if env is None else env)
    problems: list[str] = []
    entity_paths = _normalise_entities(document, problems)

    def to_keypath(loc: tuple[str | int, ...]) -> KeyPath:
        if len(loc) >= 2 and loc[0] == "entities" and loc[1] in entity_paths:
            return (*entity_paths[str(loc[1])], *loc[2:])
        return loc

    try:
        spec = FlowSpec.model_validate(document.data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, document, FlowSpec, to_keypath))
        raise ConfigError("\n".join(problems)) from None
    resolver = _Resolver(document, spec, registry, to_keypath)
    resolver.problems.extend(problems)
    plans = {}
    for name, raw in spec.entities.items():
        try:
            entity_spec = EntitySpec.model_validate(raw)
        except ValidationError as exc:
            prefix: KeyPath = ("entities", name)

            def entity_keypath(loc: tuple[str | int, ...], prefix: KeyPath = prefix) -> KeyPath:
                return to_keypath((*prefix, *loc))

            resolver.problems.extend(validation_problems(exc, document, EntitySpec, entity_keypath))
            resolver.endpoints_of_invalid_entity(name, raw)
            continue
        plan = resolver.entity(name, entity_spec)
        if plan is not None:
            plans[name] = plan
    if resolver.problems:
        raise ConfigError("\n".join(resolver.problems))
    if not plans:
        raise ConfigError(f"{document.mark(('entities',))}: entities: the flow defines no entities")
    plugins = {p.name: f"{p.distribution} {p.version}" for p in registry.plugins if p.status == "ok"}
    return Flow(file, plans, _hash(document.data), plugins)


class _Resolver:
    def __init__(self, document: Document, spec: FlowSpec, registry: Registry, to_keypath: Any) -> None:
        self.document = document
        self.spec = spec
        self.registry = registry
        self.to_keypath = to_keypath
        self.problems: list[str] = []
        self.base_dir = str(document.path.parent.resolve())

    def problem(self, keypath: KeyPath, message: str) -> None:
        self.problems.append(f"{self.document.mark(keypath)}: {format_keypath(keypath)}: {message}")

    def entity(self, name: str, spec: Any) -> EntityPlan | None:
        prefix = self.to_keypath(("entities", name))
        source = self.endpoint("source", spec.source, (*prefix, "source"), self.spec.sources)
        destination = self.endpoint(
            "destination", spec.destination, (*prefix, "destination"), self.spec.destinations
        )
        checks = tuple(self.checks(spec.checks, (*prefix, "checks")))
        if source is None or destination is None:
            return None
        source_cls = self.registry.source(source.type)
        destination_cls = self.registry.destination(destination.type)
        capabilities = destination_cls.capabilities
        mode: WriteMode = spec.mode or capabilities.default_mode
        if mode not in capabilities.write_modes:
            supported = ", ".join(sorted(capabilities.write_modes))
            self.problem(
                (*prefix, "mode"),
                f"destination type {destination.type!r} does not support mode {mode!r} (supported: {supported})",
            )
            return None
        return EntityPlan(
            name, source_cls, source, destination_cls, destination, mode, spec.batch_size, checks
        )

    def endpoints_of_invalid_entity(self, name: str, raw: dict[str, Any]) -> None:
        """Still check the well-formed endpoints of an entity that has other problems."""
        prefix = self.to_keypath(("entities", name))
        for kind, named in (("source", self.spec.sources), ("destination", self.spec.destinations)):
            value = raw.get(kind)
            try:
                spec = EndpointSpec.model_validate({"connection": value} if isinstance(value, str) else value)
            except ValidationError:
                continue  # already reported by the entity's own validation
            self.endpoint(kind, spec, (*prefix, kind), named)

    def endpoint(
        self,
        kind: str,
        spec: EndpointSpec,
        keypath: KeyPath,
        named: dict[str, ConnectionSpec],
    ) -> Endpoint | None:
        origins: dict[str, KeyPath] = {}
        merged: dict[str, Any] = {}
        if spec.connection is not None:
            connection = named.get(spec.connection)
            if connection is None:
                close = difflib.get_close_matches(spec.connection, list(named), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                defined = ", ".join(named) or "(none)"
                self.problem(
                    (*keypath, "connection") if (*keypath, "connection") in self.document.marks else keypath,
                    f"unknown {kind} {spec.connection!r}{hint} (defined under {kind}s: {defined})",
                )
                return None
            type_name = connection.type
            type_path: KeyPath = (f"{kind}s", spec.connection, "type")
            for key, value in connection.options.items():
                merged[key] = value
                origins[key] = (f"{kind}s", spec.connection, "options", key)
        else:
            assert spec.type is not None
            type_name = spec.type
            type_path = (*keypath, "type")
        for key, value in spec.options.items():
            merged[key] = value
            origins[key] = (*keypath, "options", key)
        try:
            cls: type[Source] | type[Destination] = (
                self.registry.source(type_name) if kind == "source" else self.registry.destination(type_name)
            )
        except PluginError as exc:
            self.problem(type_path, str(exc))
            return None
        options = self.validate(cls.options_model, merged, origins, (*keypath, "options"))
        if options is None:
            return None
        assert isinstance(options, ConnectorOptions)
        return Endpoint(type_name, spec.connection, options)

    def validate(
        self,
        model: type[BaseModel],
        data: dict[str, Any],
        origins: dict[str, KeyPath],
        fallback: KeyPath,
    ) -> BaseModel | None:
        try:
            return model.model_validate(data, context={"base_dir": self.base_dir})
        except ValidationError as exc:

            def to_keypath(loc: tuple[str | int, ...]) -> KeyPath:
                if loc and isinstance(loc[0], str) and loc[0] in origins:
                    return (*origins[loc[0]], *loc[1:])
                return (*fallback, *loc)

            self.problems.extend(validation_problems(exc, self.document, model, to_keypath))
            return None

    def checks(self, items: list[dict[str, dict[str, Any]]], keypath: KeyPath) -> list[Check]:
        found = []
        for index, item in enumerate(items):
            item_path = (*keypath, index)
            if len(item) != 1:
                self.problem(
                    item_path, "each check is a mapping with one key, the check name: {not_null: {...}}"
                )
                continue
            ((name, options),) = item.items()
            try:
                cls = self.registry.check(name)
            except PluginError as exc:
                self.problem((*item_path, name), str(exc))
                continue
            origins = {key: (*item_path, name, key) for key in options}
            validated = self.validate(cls.options_model, options, origins, (*item_path, name))
            if validated is not None:
                found.append(cls(validated))  # type: ignore[arg-type]
        return found
