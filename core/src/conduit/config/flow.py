"""Loading flows into validated, ready-to-run entity plans, remembering where every value came from.

:func:`load_project` finds the flows a path names (one file, a flow directory, or a directory of
flows), the project's profile and ``.env``, and resolves every entity:

1. each file is parsed with positions and its ``${...}`` variables expanded;
2. the entity's layers are deep-merged, lowest first: the flow-level ``source``/``destination``
   (``flow``), ``defaults:`` blocks (``defaults``), the entity itself (``entity``); then
   ``${entity.name}`` is expanded;
3. each endpoint's connection is looked up (the flow's ``sources``/``destinations``, else the
   profile's ``connections``) and its options are merged over the connection's:
   **entity options > flow defaults > profile params > connector defaults**;
4. every connector validates its merged options with its own model.

Every problem in every file is collected and raised as one :class:`~conduit.errors.ConfigError`, each
line naming ``file:line:column`` and the key path. Each :class:`EntityPlan` keeps the
:class:`~conduit.config.layers.Origin` of every resolved value for ``conduit config explain``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, SecretStr, ValidationError

from conduit.checks import Check
from conduit.config.documents import Document, KeyPath, Mark, format_keypath, value_at
from conduit.config.errors import Loc, Locator, problems_from, validation_problems
from conduit.config.layers import Layer, Origin, from_document, merge
from conduit.config.layouts import FlowFiles, find_flows, read_flow
from conduit.config.models import (
    DEFAULT_COMMIT_EVERY,
    EntitiesFileSpec,
    EntitySpec,
    FlowSpec,
    IncrementalSpec,
)
from conduit.config.profiles import (
    Profile,
    choose_env,
    environment,
    find_project_root,
    load_profile,
    profiles_dir_for,
)
from conduit.config.variables import Variables, expand_document, expand_entity_name
from conduit.connectors import ConnectorOptions, Destination, ErrorPolicy, Source, WriteMode
from conduit.errors import ConduitError, ConfigError, PluginError
from conduit.plugins import Registry
from conduit.secrets import REDACTOR, register_secrets_in


@dataclass(frozen=True)
class Endpoint:
    """A resolved source or destination of one entity."""

    type: str
    connection: str | None
    options: ConnectorOptions


@dataclass(frozen=True)
class EntityPlan:
    """Everything needed to run one entity, validated, with the origin of every value."""

    name: str
    source_cls: type[Source]
    source: Endpoint
    destination_cls: type[Destination]
    destination: Endpoint
    mode: WriteMode
    batch_size: int
    checks: tuple[Check, ...] = ()
    flow: str = ""
    provenance: dict[str, Origin] = field(default_factory=dict)
    incremental: IncrementalSpec | None = None
    commit_every: int = DEFAULT_COMMIT_EVERY
    rows: RowPolicy = field(default_factory=lambda: RowPolicy())
    mark: Mark | None = None
    """Where the entity is defined (its key, list item or file), for messages about the entity."""

    def discover(self) -> pa.Schema:
        """The schema the source sends now (a preflight read; the source is closed after)."""
        source = self.source_cls(self.source.options)
        try:
            return source.discover()
        finally:
            source.close()


@dataclass(frozen=True)
class RowPolicy:
    """What the entity does with bad rows: ``on_error`` for rows that do not read or convert, the
    rejection thresholds, where the dead-letter queue lives, and which columns are never shown."""

    on_error: ErrorPolicy = "fail"
    max_rejected: int | None = None
    max_rejected_ratio: float | None = None
    dlq_format: Literal["jsonl", "parquet"] = "jsonl"
    dlq_path: Path | None = None
    secret_columns: tuple[str, ...] = ()
    schema_policy: str = "manual"
    timestamp_to_timestamptz: bool = False


@dataclass(frozen=True)
class Flow:
    """A loaded flow: its entities in file order."""

    path: Path
    entities: dict[str, EntityPlan]
    config_hash: str = ""
    plugins: dict[str, str] = field(default_factory=dict)
    name: str = ""
    env: str = ""


@dataclass
class Project:
    """The flows a path names, resolved against one profile."""

    root: Path
    profile: Profile
    flows: list[Flow]


# -- the entry points --------------------------------------------------------------------------


def load_project(
    path: str | Path,
    registry: Registry,
    *,
    env: str | None = None,
    profiles_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Project:
    """Resolve every flow under ``path`` against the chosen profile; one ConfigError for all problems."""
    target = Path(path)
    flow_paths = find_flows(target)
    root = find_project_root(target)
    real_env = os.environ if environ is None else environ
    variables_env = environment(root, real_env)
    env_name, explicit = choose_env(env, real_env)
    profile = load_profile(profiles_dir_for(root, profiles_dir), env_name, explicit, variables_env)
    if profile.document is not None:
        register_secrets_in(profile.document.data)
    problems: list[str] = []
    flows = []
    for flow_path in flow_paths:
        try:
            flows.append(
                _FlowResolver(read_flow(flow_path), registry, profile, variables_env, root).resolve()
            )
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    names = [flow.name for flow in flows]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ConfigError(f"{target}: two flows are named {', '.join(map(repr, duplicated))}")
    shared = _shared_targets(flows)
    if shared:
        raise ConfigError("\n".join(shared))
    return Project(root, profile, flows)


def _target_of(plan: EntityPlan) -> str | None:
    """Where the entity writes (:meth:`Destination.target_id`), from its options alone: a destination
    connects to nothing when constructed. ``None`` when the options do not tell (a DSN that does not
    parse, say: that is reported when the destination is used)."""
    try:
        destination = plan.destination_cls(plan.destination.options)
    except ConduitError:
        return None
    try:
        return destination.target_id()
    except ConduitError:
        return None
    finally:
        destination.close()


def _shared_targets(flows: list[Flow]) -> list[str]:
    """Entities of these flows that write one target (same destination type, same ``target_id``)
    while one of them replaces it: the replace would remove the others' rows while their state still
    says those rows are loaded. Appends and merges into one target are fine: each entity keeps its own
    state (and a Parquet directory names every entity's parts apart)."""
    writers: dict[tuple[type[Destination], str], list[EntityPlan]] = {}
    for flow in flows:
        for plan in flow.entities.values():
            target = _target_of(plan)
            if target is not None:
                writers.setdefault((plan.destination_cls, target), []).append(plan)
    problems = []
    for (_, target), plans in writers.items():
        for index, replacing in enumerate(plans):
            if replacing.mode != "replace":
                continue
            for other in plans:
                if other is replacing or (other.mode == "replace" and plans.index(other) < index):
                    continue  # a pair of replaces is told once
                problems.append(
                    f"{replacing.mark}: {format_keypath(('entities', replacing.name))}: two entities write "
                    f"{target}: {replacing.name!r} ({replacing.mark}) with mode replace and {other.name!r} "
                    f"({other.mark}) with mode {other.mode}; a replace would remove the other's rows while "
                    "its state still says they are loaded (write them to separate targets, or load both with "
                    "mode append or merge)"
                )
    return problems


def load_flow(
    path: str | Path,
    registry: Registry,
    *,
    env: str | None = None,
    profiles_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flow:
    """Load exactly one flow (a file or a flow directory)."""
    project = load_project(path, registry, env=env, profiles_dir=profiles_dir, environ=environ)
    if len(project.flows) != 1:
        raise ConfigError(f"{path}: holds {len(project.flows)} flows; name one of them")
    return project.flows[0]


# -- resolution of one flow --------------------------------------------------------------------


@dataclass
class _EntitySource:
    name: str
    document: Document
    root: KeyPath
    layer: Layer


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _shorthand(document: Document, keypaths: list[KeyPath]) -> None:
    """``source: name`` means ``source: {connection: name}`` wherever an endpoint may stand."""
    for keypath in keypaths:
        parent = value_at(document.data, keypath[:-1])
        key = keypath[-1]
        if isinstance(parent, dict) and isinstance(parent.get(key), str):
            parent[key] = {"connection": parent[key]}
            if keypath in document.marks:
                document.marks[(*keypath, "connection")] = document.marks[keypath]


def _locate(layer: Layer, loc: Loc, display: KeyPath, fallback: Any) -> tuple[str, str]:
    """Where a merged value was written: its file position, and its key path in that file when the
    value itself has an origin (else the entity's logical key path)."""
    exact = layer.origins.get(loc)
    origin = exact or layer.origin(loc)
    mark = origin.mark if origin and origin.mark else fallback
    if exact is not None and exact.keypath is not None:
        return str(mark), format_keypath(exact.keypath)
    return str(mark), format_keypath((*display, *loc))


def _endpoint_paths(prefix: KeyPath) -> list[KeyPath]:
    return [(*prefix, "source"), (*prefix, "destination")]


class _FlowResolver:
    def __init__(
        self, files: FlowFiles, registry: Registry, profile: Profile, environ: Mapping[str, str], root: Path
    ) -> None:
        self.files = files
        self.root = str(root)
        self.registry = registry
        self.profile = profile
        self.variables = Variables(environ, profile.spec.variables)
        self.problems: list[str] = []
        self.used: dict[int, dict[KeyPath, tuple[str, ...]]] = {}

    def problem(self, document: Document, keypath: KeyPath, message: str) -> None:
        self.problems.append(f"{document.mark(keypath)}: {format_keypath(keypath)}: {message}")

    def fail_if_problems(self) -> None:
        if self.problems:
            # a mistake in a shared block (defaults, a connection) is found once per entity: say it once
            raise ConfigError("\n".join(dict.fromkeys(self.problems)))

    # -- files --

    def _expand(self) -> None:
        for document in self.files.documents:
            if not isinstance(document.data, dict):
                self.problems.append(f"{document.mark(())}: a flow or entity file must be a mapping")
                continue
            register_secrets_in(document.data)
            try:
                self.used[id(document)] = expand_document(document, self.variables)
            except ConfigError as exc:
                self.problems.append(str(exc))
            register_secrets_in(document.data)

    def _validate(self, document: Document, model: type[BaseModel]) -> Any:
        try:
            return model.model_validate(document.data)
        except ValidationError as exc:
            self.problems.extend(validation_problems(exc, document, model, lambda loc: loc))
            return None

    def _layer(self, document: Document, root: KeyPath, layer: str) -> Layer:
        return from_document(document, root, layer, self.used.get(id(document), {}))

    # -- entities --

    def _collect_entities(self) -> list[_EntitySource]:
        found: list[_EntitySource] = []
        seen: dict[str, _EntitySource] = {}

        def add(name: Any, document: Document, root: KeyPath) -> None:
            if not isinstance(name, str) or not name:
                self.problem(document, root, "an entity needs a name (a string)")
                return
            if name in seen:
                first = seen[name]
                self.problem(
                    document,
                    root,
                    f"duplicate entity {name!r} (first defined at {first.document.mark(first.root)})",
                )
                return
            layer = self._layer(document, root, "entity")
            layer.data.pop("name", None)
            entry = _EntitySource(name, document, root, layer)
            seen[name] = entry
            found.append(entry)

        def from_container(document: Document, key: str) -> None:
            container = document.data.get(key) if isinstance(document.data, dict) else None
            if isinstance(container, dict):
                for name in container:
                    _shorthand(document, _endpoint_paths((key, name)))
                    if container[name] is None:
                        container[name] = {}
                    add(name, document, (key, name))
            elif isinstance(container, list):
                for index, item in enumerate(container):
                    if isinstance(item, str):
                        container[index] = {}
                        add(item, document, (key, index))
                    elif isinstance(item, dict):
                        _shorthand(document, _endpoint_paths((key, index)))
                        add(item.get("name"), document, (key, index))
                    else:
                        self.problem(document, (key, index), "an entity is a name or a mapping with 'name'")

        from_container(self.files.flow, "entities")
        if self.files.entities_file is not None:
            from_container(self.files.entities_file, "entities")
        for document in self.files.entity_files:
            if not isinstance(document.data, dict):
                continue
            _shorthand(document, _endpoint_paths(()))
            add(document.data.get("name") or document.path.stem, document, ())
        return found

    def resolve(self) -> Flow:
        self._expand()
        self.fail_if_problems()
        flow_doc = self.files.flow
        for document, prefix in ((flow_doc, ()), (flow_doc, ("defaults",))):
            _shorthand(document, _endpoint_paths(prefix))
        if self.files.entities_file is not None:
            _shorthand(self.files.entities_file, _endpoint_paths(("defaults",)))
        flow_spec: FlowSpec | None = self._validate(flow_doc, FlowSpec)
        if self.files.entities_file is not None:
            self._validate(self.files.entities_file, EntitiesFileSpec)
        entities = self._collect_entities()
        self.fail_if_problems()
        assert flow_spec is not None
        self.flow_spec = flow_spec

        base_layers = [
            self._endpoints_layer(flow_doc, (), "flow"),
            self._layer(flow_doc, ("defaults",), "defaults"),
        ]
        if self.files.entities_file is not None:
            base_layers.append(self._layer(self.files.entities_file, ("defaults",), "defaults"))
        plans: dict[str, EntityPlan] = {}
        for entity in entities:
            plan = self._entity(entity, base_layers)
            if plan is not None:
                plans[entity.name] = plan
        self.fail_if_problems()
        if not plans:
            raise ConfigError(f"{flow_doc.mark(())}: the flow defines no entities")
        plugins = {p.name: f"{p.distribution} {p.version}" for p in self.registry.plugins if p.status == "ok"}
        data = {str(d.path): d.data for d in self.files.documents}
        name = flow_spec.name or self.files.name
        return Flow(flow_doc.path, plans, _hash(data), plugins, name, self.profile.env)

    def _endpoints_layer(self, document: Document, root: KeyPath, layer: str) -> Layer:
        full = self._layer(document, root, layer)
        keep: dict[str, Any] = {key: full.data[key] for key in ("source", "destination") if key in full.data}
        origins = {
            path: origin
            for path, origin in full.origins.items()
            if path[:1] in (("source",), ("destination",))
        }
        return Layer(keep, origins)

    def _entity(self, entity: _EntitySource, base_layers: list[Layer]) -> EntityPlan | None:
        merged = merge([*base_layers, entity.layer])
        expand_entity_name(merged, entity.name)
        display = ("entities", entity.name)

        def locate(loc: Loc) -> tuple[str, str]:
            return _locate(merged, loc, display, entity.document.mark(entity.root))

        try:
            spec = EntitySpec.model_validate(merged.data)
        except ValidationError as exc:
            self.problems.extend(problems_from(exc, EntitySpec, locate))
            for kind in ("source", "destination"):
                if isinstance(merged.data.get(kind), dict):
                    self._endpoint(kind, merged, display, locate)
            return None
        source = self._endpoint("source", merged, display, locate)
        destination = self._endpoint("destination", merged, display, locate)
        checks = self._checks(spec.checks, merged, locate)
        if source is None or destination is None or checks is None:
            return None
        (source_cls, source_ep, source_prov), (destination_cls, destination_ep, destination_prov) = (
            source,
            destination,
        )
        assert issubclass(source_cls, Source) and issubclass(destination_cls, Destination)
        provenance = {**source_prov, **destination_prov}
        capabilities = destination_cls.capabilities
        mode: WriteMode = spec.mode or capabilities.default_mode
        provenance["mode"] = (merged.origin(("mode",)) if spec.mode else None) or Origin(
            "destination default"
        )
        provenance["batch_size"] = merged.origins.get(("batch_size",)) or Origin("engine default")
        if mode not in capabilities.write_modes:
            where, keypath = locate(("mode",))
            supported = ", ".join(sorted(capabilities.write_modes))
            self.problems.append(
                f"{where}: {keypath}: destination type {destination_ep.type!r} does not support mode "
                f"{mode!r} (supported: {supported})"
            )
            return None
        if spec.incremental is not None and mode == "replace":
            written = merged.origin(("mode",)) if spec.mode else None
            self._incremental_replace(locate, destination_ep.type, capabilities.write_modes, written)
            return None
        if spec.incremental is not None and spec.incremental.lookback is not None and mode != "merge":
            where, keypath = locate(("incremental", "lookback"))
            self.problems.append(
                f"{where}: {keypath}: lookback re-reads rows that were already loaded, so it needs mode "
                f"merge (which de-duplicates by key); this entity's mode is {mode!r}"
            )
            return None
        if spec.incremental is not None:
            provenance["incremental"] = merged.origin(("incremental",)) or Origin("entity")
        provenance["commit_every"] = merged.origins.get(("commit_every",)) or Origin("engine default")
        for index, item in enumerate(spec.checks):
            for check_name in item:
                provenance[f"checks[{index}].{check_name}"] = merged.origin(("checks", index)) or Origin(
                    "entity"
                )
        return EntityPlan(
            entity.name,
            source_cls,
            source_ep,
            destination_cls,
            destination_ep,
            mode,
            spec.batch_size,
            tuple(checks),
            self.files.name,
            provenance,
            spec.incremental,
            spec.commit_every,
            RowPolicy(
                spec.on_error or "fail",
                spec.max_rejected,
                spec.max_rejected_ratio,
                spec.dlq.format,
                self._dlq_path(spec.dlq.path),
                tuple(spec.secret_columns or ()),
                spec.schema_.policy,
                spec.schema_.timestamp_to_timestamptz,
            ),
            entity.document.mark(entity.root),
        )

    def _incremental_replace(
        self, locate: Locator, destination_type: str, modes: frozenset[WriteMode], written: Origin | None
    ) -> None:
        """Refuse ``incremental`` with mode ``replace``: each run reads only the rows past the watermark
        and would replace the target with them; the watermark keeps the others from coming back."""
        where, keypath = locate(("incremental",))
        if written is not None:
            how = f"set at {written.mark}" if written.mark else "set"
        else:
            how = f"the default of destination type {destination_type!r}; this entity sets no mode"
        if "append" not in modes and "merge" not in modes:
            remedy = (
                f"destination type {destination_type!r} supports only mode replace, so it cannot load "
                "incrementally: drop incremental and reload everything each run, or load into a destination "
                "that appends (parquet with layout: directory, postgres)"
            )
        elif destination_type == "parquet":
            remedy = (
                "set mode: append with a directory layout, destination option layout: directory, so that "
                "every run adds part files; or drop incremental and reload everything each run"
            )
        else:
            remedy = "use mode: append, or drop incremental and reload everything each run"
        self.problems.append(
            f"{where}: {keypath}: an incremental load needs mode append or merge: mode replace ({how}) would "
            "replace the target with only the rows past the watermark, and the watermark keeps the rows "
            f"before it from coming back ({remedy})"
        )

    def _dlq_path(self, value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(self.root) / path

    def _connection(self, kind: str, name: str) -> tuple[str, Layer, Origin] | None:
        """A named connection: the flow's own ``sources``/``destinations`` first, then the profile's."""
        named = self.flow_spec.sources if kind == "source" else self.flow_spec.destinations
        if name in named:
            root: KeyPath = (f"{kind}s", name)
            layer = self._layer(self.files.flow, (*root, "options"), "flow")
            return named[name].type, layer, Origin("flow", self.files.flow.mark((*root, "type")))
        connection = self.profile.spec.connections.get(name)
        if connection is not None and self.profile.document is not None:
            root = ("connections", name)
            document = self.profile.document
            layer = from_document(document, (*root, "params"), "profile", self.profile.variables_used)
            return connection.type, layer, Origin("profile", document.mark((*root, "type")))
        return None

    def _endpoint(
        self, kind: str, merged: Layer, display: KeyPath, locate: Locator
    ) -> tuple[type, Endpoint, dict[str, Origin]] | None:
        endpoint = merged.sub(kind)
        data = endpoint.data
        connection_name = data.get("connection")
        type_name = data.get("type")
        provenance: dict[str, Origin] = {}
        layers: list[Layer] = []
        if isinstance(connection_name, str):
            found = self._connection(kind, connection_name)
            if found is None:
                candidates = [*(self.flow_spec.sources if kind == "source" else self.flow_spec.destinations)]
                candidates += list(self.profile.spec.connections)
                close = difflib.get_close_matches(connection_name, candidates, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                if self.profile.path is None:
                    profile_note = f", and no profile {self.profile.env!r} was found"
                else:
                    profile_note = f" nor in the profile {self.profile.path}"
                where_text, keypath = locate((kind, "connection"))
                self.problems.append(
                    f"{where_text}: {keypath}: unknown connection {connection_name!r} (not defined under "
                    f"{kind}s in the flow{profile_note}){hint}"
                )
                return None
            type_name, connection_layer, type_origin = found
            layers.append(connection_layer)
            provenance[f"{kind}.connection"] = merged.origin((kind, "connection")) or Origin("entity")
        else:
            type_origin = merged.origin((kind, "type")) or Origin("entity")
        provenance[f"{kind}.type"] = type_origin
        layers.append(endpoint.sub("options"))
        options_layer = merge(layers)
        try:
            cls: type[Source] | type[Destination] = (
                self.registry.source(str(type_name))
                if kind == "source"
                else self.registry.destination(str(type_name))
            )
        except PluginError as exc:
            mark = type_origin.mark
            where_text = str(mark) if mark else locate((kind,))[0]
            self.problems.append(f"{where_text}: {format_keypath((*display, kind, 'type'))}: {exc}")
            return None

        def locate_option(loc: Loc) -> tuple[str, str]:
            fallback = options_layer.origin(()) or merged.origin((kind,))
            mark = fallback.mark if fallback and fallback.mark else None
            return _locate(options_layer, loc, (*display, kind, "options"), mark)

        try:
            options = cls.options_model.model_validate(options_layer.data, context={"base_dir": self.root})
        except ValidationError as exc:
            self.problems.extend(problems_from(exc, cls.options_model, locate_option))
            return None
        for key in type(options).model_fields:
            origin = options_layer.origins.get((key,))
            provenance[f"{kind}.options.{key}"] = origin or Origin("connector default")
            value = getattr(options, key)
            if isinstance(value, SecretStr):
                REDACTOR.add(value.get_secret_value())
        endpoint_value = Endpoint(
            str(type_name), connection_name if isinstance(connection_name, str) else None, options
        )
        return cls, endpoint_value, provenance

    def _checks(
        self, items: list[dict[str, dict[str, Any]]], merged: Layer, locate: Locator
    ) -> list[Check] | None:
        found: list[Check] = []
        ok = True
        for index, item in enumerate(items):
            if len(item) != 1:
                where, keypath = locate(("checks", index))
                self.problems.append(
                    f"{where}: {keypath}: each check is a mapping with one key, the check name: {{not_null: {{...}}}}"
                )
                ok = False
                continue
            ((name, options),) = item.items()
            try:
                cls = self.registry.check(name)
            except PluginError as exc:
                where, keypath = locate(("checks", index, name))
                self.problems.append(f"{where}: {keypath}: {exc}")
                ok = False
                continue

            def locate_check(loc: Loc, index: int = index, name: str = name) -> tuple[str, str]:
                return locate(("checks", index, name, *loc))

            try:
                validated = cls.options_model.model_validate(options, context={"base_dir": self.root})
            except ValidationError as exc:
                self.problems.extend(problems_from(exc, cls.options_model, locate_check))
                ok = False
                continue
            found.append(cls(validated))
        return found if ok else None
