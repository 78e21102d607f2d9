"""Finding plugins and building the registry of source, destination and check types.

:func:`load_registry` is the one entry point: it loads every ``conduit`` entry point (one at a time, so
a plugin that fails to import is reported with its entry point and distribution while the others keep
working), registers the built-ins through the same hooks, rejects misspelled hook names
(``check_pending``), and collects every registered type name with the plugin and distribution that
registered it. The rest of the code uses the typed lookups on :class:`Registry`, never ``pm.hook.*``.

``CONDUIT_DISABLE_PLUGINS=name,other`` blocks plugins by name (entry point name, or a built-in's name).
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar, cast

import click
import pluggy

from conduit import hookspecs
from conduit.checks import Check
from conduit.connectors import Destination, Source
from conduit.errors import PluginError, UnknownTypeError
from conduit.schema import SchemaDecision, SchemaDiff

ENTRY_POINT_GROUP = "conduit"
DISABLE_ENV = "CONDUIT_DISABLE_PLUGINS"
CORE_DISTRIBUTION = "conduit-core"

# Types our own packages provide, for the "pip install ..." hint when one is not installed.
KNOWN_PACKAGES: dict[str, str] = {
    "csv": "conduit-csv",
    "postgres": "conduit-postgres",
    "s3": "conduit-s3",
    "snowflake": "conduit-snowflake",
    "bigquery": "conduit-bigquery",
}

T = TypeVar("T")
_REFERENCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def _builtin_modules() -> list[tuple[str, object]]:
    from conduit import checks, schema
    from conduit.builtins import JsonlPlugin, ParquetPlugin

    return [("parquet", ParquetPlugin), ("jsonl", JsonlPlugin), ("checks", checks), ("schema-policy", schema)]


def core_version() -> str:
    try:
        return metadata.version(CORE_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


class Registered(Generic[T]):
    """A type name, the class behind it, and who registered it.

    A plugin may register a class, or a ``"module:attribute"`` reference to one: the module is then
    imported the first time the type is used, so a run pays only for the connectors it uses, and a
    connector whose module fails to import breaks that type only (with a message naming the plugin).
    """

    def __init__(self, name: str, cls: T | str, plugin: str, distribution: str, base: type | None = None):
        self.name = name
        self.plugin = plugin
        self.distribution = distribution
        self._target = cls
        self._base = base

    @property
    def reference(self) -> str:
        """Where the class lives, without importing it."""
        target = self._target
        if isinstance(target, str):
            return target
        return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"

    @property
    def cls(self) -> T:
        if isinstance(self._target, str):
            self._target = self._resolve(self._target)
        return self._target

    def _resolve(self, reference: str) -> T:
        kind = "type" if self._base is None else f"{self._base.__name__.lower()} type"
        where = f"plugin {self.plugin!r} ({self.distribution}): {kind} {self.name!r}"
        module_name, _, attribute = reference.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                found = getattr(found, part)
        except Exception as exc:  # noqa: BLE001 - reported as this plugin's failure
            raise PluginError(
                f"{where} cannot be loaded from {reference!r}: {_format_exception(exc)}"
            ) from None
        if self._base is not None and not (isinstance(found, type) and issubclass(found, self._base)):
            raise PluginError(
                f"{where}: {reference!r} is {found!r}, not a subclass of conduit.{self._base.__name__}"
            )
        return cast(T, found)


@dataclass
class PluginInfo:
    """One plugin as ``conduit plugins`` shows it."""

    name: str
    distribution: str
    version: str
    builtin: bool
    status: str = "ok"  # ok | disabled | failed
    error: str | None = None
    sources: list[str] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "status": self.status,
            "error": self.error,
            "sources": self.sources,
            "destinations": self.destinations,
            "checks": self.checks,
        }


@dataclass
class Registry:
    """Everything the plugins registered, with typed lookups and the problems found on the way."""

    pm: pluggy.PluginManager
    plugins: list[PluginInfo]
    sources: dict[str, Registered[type[Source]]]
    destinations: dict[str, Registered[type[Destination]]]
    checks: dict[str, Registered[type[Check]]]
    conflicts: list[str]

    @property
    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.status == "failed"]

    def raise_for_conflicts(self) -> None:
        if self.conflicts:
            raise PluginError("\n".join(self.conflicts))

    def source(self, name: str) -> type[Source]:
        return self._lookup("source", name, self.sources).cls

    def destination(self, name: str) -> type[Destination]:
        return self._lookup("destination", name, self.destinations).cls

    def check(self, name: str) -> type[Check]:
        return self._lookup("check", name, self.checks).cls

    def schema_decision(
        self,
        entity: str,
        diff: SchemaDiff,
        policy: str = "manual",
        capabilities: frozenset[str] = frozenset(),
    ) -> SchemaDecision:
        decision: SchemaDecision | None = self.pm.hook.conduit_schema_policy(
            entity=entity, diff=diff, policy=policy, capabilities=capabilities
        )
        if decision is None:  # only when the built-in policy was disabled
            return SchemaDecision(proceed=False, reason=f"no schema policy decided: {diff.describe()}")
        return decision

    def register_commands(self, cli: click.Group) -> None:
        self.pm.hook.conduit_register_commands(cli=cli)

    def _lookup(self, kind: str, name: str, table: dict[str, Registered[T]]) -> Registered[T]:
        if name in table:
            return table[name]
        raise UnknownTypeError(unknown_type_message(kind, name, table, self.plugins))


def unknown_type_message(kind: str, name: str, known: Iterable[str], plugins: Iterable[PluginInfo]) -> str:
    known = sorted(known)
    parts = [f"unknown {kind} type {name!r}"]
    failed = [p for p in plugins if p.status == "failed" and p.name == name]
    disabled = [p for p in plugins if p.status == "disabled" and p.name == name]
    if failed:
        parts.append(f"the plugin {name!r} from {failed[0].distribution} failed to load: {failed[0].error}")
    elif disabled:
        parts.append(f"the plugin {name!r} is disabled by {DISABLE_ENV}")
    elif name in KNOWN_PACKAGES:
        package = KNOWN_PACKAGES[name]
        parts.append(f"it is provided by {package}: pip install {package}")
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        parts.append(f"did you mean {close[0]!r}?")
    parts.append(f"installed {kind} types: {', '.join(known) or '(none)'}")
    return "; ".join(parts)


def _disabled_names() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _format_exception(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _unknown_hooks_message(pm: pluggy.PluginManager, plugin: object) -> str | None:
    known = [name for name in dir(hookspecs) if name.startswith("conduit_")]
    bad = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.spec is None:
            close = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            bad.append(f"{caller.name!r}{hint}")
    return f"implements unknown hook {', '.join(bad)}" if bad else None


def get_plugin_manager() -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A plugin manager with the built-ins and every loadable ``conduit`` entry point registered."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    disabled = _disabled_names()
    infos: list[PluginInfo] = []
    version = core_version()

    for name, module in _builtin_modules():
        info = PluginInfo(name, CORE_DISTRIBUTION, version, builtin=True)
        infos.append(info)
        if name in disabled:
            info.status = "disabled"
            continue
        pm.register(module, name=name)

    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist
        dist_name = dist.metadata["Name"] if dist is not None else "(unknown distribution)"
        dist_version = dist.version if dist is not None else "?"
        info = PluginInfo(ep.name, dist_name, dist_version, builtin=False)
        infos.append(info)
        if ep.name in disabled:
            info.status = "disabled"
            continue
        _register_entry_point(pm, ep, info, infos)
    pm.check_pending()  # every plugin with an unknown hook was rejected above; this only confirms it
    return pm, infos


def _register_entry_point(
    pm: pluggy.PluginManager,
    ep: metadata.EntryPoint,
    info: PluginInfo,
    infos: list[PluginInfo],
) -> None:
    def fail(message: str) -> None:
        info.status = "failed"
        info.error = message

    where = f"entry point {ep.name!r} ({ep.value}) of {info.distribution} {info.version}"
    if pm.has_plugin(ep.name):
        owner = next((p for p in infos if p.name == ep.name and p is not info), None)
        other = owner.distribution if owner else "another plugin"
        fail(f"{where}: the plugin name {ep.name!r} is already taken by {other}")
        return
    try:
        plugin = ep.load()
    except Exception as exc:  # noqa: BLE001 - any import failure of a plugin is reported, not raised
        fail(f"{where} failed to import: {_format_exception(exc)}")
        return
    try:
        pm.register(plugin, name=ep.name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        fail(f"{where} was rejected: {_format_exception(exc)}")
        return
    problem = _unknown_hooks_message(pm, plugin)
    if problem:
        pm.unregister(plugin)
        fail(f"{where} {problem}")


def _collect(
    pm: pluggy.PluginManager,
    hook_name: str,
    infos: dict[str, PluginInfo],
    attribute: str,
    base: type,
    conflicts: list[str],
) -> dict[str, Registered[Any]]:
    table: dict[str, Registered[Any]] = {}
    kind = attribute.rstrip("s")
    caller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():  # registration order
        info = infos[impl.plugin_name]

        def register(name: str, cls: type | str, _info: PluginInfo = info) -> None:
            lazy = isinstance(cls, str) and _REFERENCE.fullmatch(cls) is not None
            if not lazy and not (isinstance(cls, type) and issubclass(cls, base)):
                raise PluginError(
                    f"plugin {_info.name!r} ({_info.distribution}) registered {kind} {name!r} with "
                    f"{cls!r}, which is neither a subclass of conduit.{base.__name__} nor a "
                    "'package.module:ClassName' reference to one"
                )
            if name in table:
                first = table[name]
                conflicts.append(
                    f"{kind} type {name!r} is registered twice: by plugin {first.plugin!r} "
                    f"({first.distribution}) and by plugin {_info.name!r} ({_info.distribution}); "
                    f"uninstall one, or set {DISABLE_ENV}={_info.name}"
                )
                return
            table[name] = Registered(name, cls, _info.name, _info.distribution, base)
            getattr(_info, attribute).append(name)

        kwargs: dict[str, Callable[[str, type | str], None]] = {"register": register}
        try:
            impl.function(**{arg: kwargs[arg] for arg in impl.argnames if arg in kwargs})
        except PluginError as exc:
            info.status, info.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the others down
            info.status = "failed"
            info.error = f"{hook_name} raised {_format_exception(exc)}"
    return table


def load_registry() -> Registry:
    """Load all plugins and collect what they register. Problems are recorded, not raised."""
    pm, plugin_list = get_plugin_manager()
    by_name = {p.name: p for p in plugin_list if p.status == "ok"}
    conflicts: list[str] = []
    sources = _collect(pm, "conduit_register_sources", by_name, "sources", Source, conflicts)
    destinations = _collect(
        pm, "conduit_register_destinations", by_name, "destinations", Destination, conflicts
    )
    checks = _collect(pm, "conduit_register_checks", by_name, "checks", Check, conflicts)
    return Registry(pm, plugin_list, sources, destinations, checks, conflicts)
