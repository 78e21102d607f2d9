"""The ``conduit`` command: parse arguments, call the library, render results. Nothing else.

Exit codes: 0 success; 1 a run failed (bad data, a connector error); 2 a usage, config or plugin
error. A :class:`~conduit.errors.ConduitError` is printed as one message, never as a traceback;
``CONDUIT_DEBUG=1`` adds tracebacks for unexpected errors. Everything printed passes through the
secret redactor (:mod:`conduit.secrets`).
"""

from __future__ import annotations

import atexit
import difflib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from conduit.config.explain import explain_json, explain_text
from conduit.config.flow import Project, load_project
from conduit.config.profiles import (
    available_profiles,
    choose_env,
    environment,
    find_project_root,
    load_profile,
    profiles_dir_for,
)
from conduit.errors import ConduitError, ConfigError
from conduit.plugins import Registry, core_version, load_registry
from conduit.progress import TerminalProgress, summary
from conduit.run import RunResult, new_run_id, run_flow
from conduit.scaffold import scaffold
from conduit.secrets import REDACTOR, mask_json, register_environment

SLOW_EXIT_ENV = "CONDUIT_SLOW_EXIT"
DEBUG_ENV = "CONDUIT_DEBUG"
F = TypeVar("F", bound=Callable[..., Any])


def echo(text: str, *, err: bool = False) -> None:
    click.echo(REDACTOR.redact(text), err=err)


def _registry(ctx: click.Context, *, warn: bool = True) -> Registry:
    registry: Registry = ctx.obj
    if warn:
        for plugin in registry.failures:
            echo(f"warning: plugin {plugin.name!r} ({plugin.distribution}) {plugin.error}", err=True)
        registry.raise_for_conflicts()
    return registry


def _error_text(message: str) -> str:
    lines = message.splitlines() or [""]
    if len(lines) == 1:
        return f"error: {lines[0]}"
    return f"error: {len(lines)} problems:\n" + "\n".join(f"  {line}" for line in lines)


def profile_options(function: F) -> F:
    """``--env`` and ``--profiles-dir``, shared by every command that resolves config."""
    function = click.option(
        "--profiles-dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="Directory of profiles (default: profiles/ at the project root).",
    )(function)
    return click.option("--env", "env", help="Profile to use (default: $CONDUIT_ENV, else dev).")(function)


def _project(ctx: click.Context, path: Path, env: str | None, profiles_dir: Path | None) -> Project:
    return load_project(path, _registry(ctx), env=env, profiles_dir=profiles_dir)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(core_version(), "-V", "--version", prog_name="conduit", message="%(prog)s %(version)s")
def cli() -> None:
    """Conduit: declarative data ingestion. Write what to move in YAML, then `conduit run` it."""


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--entity", "-e", "entities", multiple=True, help="Run only this entity (repeatable).")
@profile_options
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary; errors only.")
@click.option("--json", "as_json", is_flag=True, help="Print the run result as JSON on stdout.")
@click.pass_context
def run(
    ctx: click.Context,
    path: Path,
    entities: tuple[str, ...],
    env: str | None,
    profiles_dir: Path | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Run the entities of the flow(s) at PATH: a flow file, a flow directory, or a directory of flows."""
    registry = _registry(ctx)
    project = _project(ctx, path, env, profiles_dir)
    wanted = set(entities)
    known = {name for flow in project.flows for name in flow.entities}
    if wanted - known:
        unknown = ", ".join(repr(n) for n in sorted(wanted - known))
        raise ConfigError(f"{path}: no entity named {unknown}; the flows have: {', '.join(sorted(known))}")
    listener = (
        None
        if quiet or as_json
        else TerminalProgress(write=lambda text: sys.stderr.write(REDACTOR.redact(text)))
    )
    run_id = new_run_id()
    results: list[RunResult] = []
    for flow in project.flows:
        names = [n for n in flow.entities if not wanted or n in wanted]
        if names:
            results.append(run_flow(flow, registry, entities=names, listener=listener, run_id=run_id))
    ok = True
    for result in results:
        for entity in result.entities:
            for warning in entity.warnings:
                echo(f"warning: [{entity.name}] {warning}", err=True)
            if entity.error:
                echo(f"error: [{entity.name}] {entity.error}", err=True)
                if entity.debug and os.environ.get(DEBUG_ENV):
                    echo(entity.debug, err=True)
        ok = ok and result.status == "success"
    if as_json:
        payload = results[0].to_json() if len(results) == 1 else {"runs": [r.to_json() for r in results]}
        echo(json.dumps(mask_json(payload), indent=2))
    elif not quiet:
        echo("\n\n".join(summary(result) for result in results))
    ctx.exit(0 if ok else 1)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@profile_options
@click.option("--connect", is_flag=True, help="Also run every source's and destination's preflight check().")
@click.pass_context
def validate(
    ctx: click.Context, path: Path, env: str | None, profiles_dir: Path | None, connect: bool
) -> None:
    """Resolve the flow(s) at PATH offline and report every problem."""
    project = _project(ctx, path, env, profiles_dir)
    failures = 0
    for flow in project.flows:
        count = len(flow.entities)
        echo(
            f"{flow.path}: ok (flow {flow.name}, env {project.profile.env}, {count} entit{'y' if count == 1 else 'ies'}: {', '.join(flow.entities)})"
        )
        if not connect:
            continue
        for plan in flow.entities.values():
            for kind, connector in (
                ("source", plan.source_cls(plan.source.options)),
                ("destination", plan.destination_cls(plan.destination.options)),
            ):
                try:
                    connector.check()
                except ConduitError as exc:
                    failures += 1
                    echo(f"error: [{plan.name}] {kind} {getattr(plan, kind).type}: {exc}", err=True)
    ctx.exit(1 if failures else 0)


@cli.group()
def config() -> None:
    """Inspect resolved configuration."""


@config.command()
@click.argument("path", type=click.Path(path_type=Path))
@profile_options
@click.option("--entity", "-e", help="Only this entity.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def explain(
    ctx: click.Context,
    path: Path,
    env: str | None,
    profiles_dir: Path | None,
    entity: str | None,
    as_json: bool,
) -> None:
    """Every resolved value of each entity and where it came from (file:line and layer)."""
    project = _project(ctx, path, env, profiles_dir)
    if entity is not None and not any(entity in flow.entities for flow in project.flows):
        raise ConfigError(f"{path}: no entity named {entity!r}")
    if as_json:
        echo(json.dumps(explain_json(project, entity), indent=2))
    else:
        echo(explain_text(project, entity))


@cli.group()
def profiles() -> None:
    """List, show and validate environment profiles."""


def _profiles_location(path: Path, profiles_dir: Path | None) -> tuple[Path, Path]:
    root = find_project_root(path)
    return root, profiles_dir_for(root, profiles_dir)


@profiles.command(name="list")
@click.argument("path", type=click.Path(path_type=Path, exists=True), default=".")
@click.option("--profiles-dir", type=click.Path(path_type=Path, file_okay=False))
def profiles_list(path: Path, profiles_dir: Path | None) -> None:
    """The profiles of the project at PATH (default: the current directory)."""
    _, directory = _profiles_location(path, profiles_dir)
    names = available_profiles(directory)
    if not names:
        raise ConfigError(f"{directory}: no profiles (create {directory / 'dev.yml'})")
    current, _ = choose_env(None, os.environ)
    for name in names:
        echo(f"{name}{'  (current)' if name == current else ''}")


@profiles.command(name="show")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path, exists=True), default=".")
@profile_options
def profiles_show(name: str, path: Path, env: str | None, profiles_dir: Path | None) -> None:
    """Connection NAME as the profile (--env) resolves it, secrets masked."""
    root, directory = _profiles_location(path, profiles_dir)
    env_name, _ = choose_env(env, os.environ)
    profile = load_profile(directory, env_name, True, environment(root))
    connection = profile.spec.connections.get(name)
    if connection is None:
        known = ", ".join(profile.spec.connections) or "none"
        raise ConfigError(
            f"{profile.path}: no connection {name!r} in profile {env_name!r} (connections: {known})"
        )
    payload = {"env": env_name, "profile": str(profile.path), "connection": name, **connection.model_dump()}
    echo(json.dumps(mask_json(payload), indent=2))


@profiles.command(name="validate")
@click.argument("path", type=click.Path(path_type=Path, exists=True), default=".")
@profile_options
@click.pass_context
def profiles_validate(ctx: click.Context, path: Path, env: str | None, profiles_dir: Path | None) -> None:
    """Check a profile (--env, or all of them): its shape, variables, and each connection's type."""
    registry = _registry(ctx)
    root, directory = _profiles_location(path, profiles_dir)
    names = [env] if env else available_profiles(directory)
    if not names:
        raise ConfigError(f"{directory}: no profiles")
    problems = []
    for env_name in names:
        try:
            profile = load_profile(directory, env_name, True, environment(root))
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        assert profile.document is not None
        for conn_name, connection in profile.spec.connections.items():
            mark = profile.document.mark(("connections", conn_name, "type"))
            if connection.type not in registry.sources and connection.type not in registry.destinations:
                installed = sorted({*registry.sources, *registry.destinations})
                close = difflib.get_close_matches(connection.type, installed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(
                    f"{mark}: connections.{conn_name}.type: unknown connection type {connection.type!r} "
                    f"(installed: {', '.join(installed)}){hint}"
                )
        if not problems:
            echo(f"{profile.path}: ok ({len(profile.spec.connections)} connections)")
    if problems:
        raise ConfigError("\n".join(problems))


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path), default=".")
def init(directory: Path) -> None:
    """Create a small working project in DIRECTORY: one flow, a dev profile, a sample CSV."""
    created = scaffold(directory)
    for path in created:
        echo(f"created {path}")
    echo(f"\nnext: conduit run {directory / 'flows'}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the plugins as JSON.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins: distribution, version, status and the types each provides."""
    registry = _registry(ctx, warn=False)
    if as_json:
        payload: dict[str, Any] = {
            "plugins": [p.to_json() for p in registry.plugins],
            "conflicts": registry.conflicts,
        }
        echo(json.dumps(payload, indent=2))
        return
    rows = [("plugin", "distribution", "version", "status", "provides")]
    for p in registry.plugins:
        provides = "; ".join(
            f"{kind}: {', '.join(names)}"
            for kind, names in (("source", p.sources), ("destination", p.destinations), ("check", p.checks))
            if names
        )
        dist = f"{p.distribution} (built-in)" if p.builtin else p.distribution
        rows.append((p.name, dist, p.version, p.status, provides or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    for p in registry.plugins:
        if p.error:
            echo(f"{p.name}: {p.error}", err=True)
    for conflict in registry.conflicts:
        echo(f"conflict: {conflict}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run :func:`invoke`, then end the process without tearing it down.

    Everything the command did is committed, closed and flushed by the time it returns, so the
    interpreter's teardown (freeing every module, Arrow's memory pools...) is pure cost: ~0.1 s on
    every run. ``atexit`` handlers still run; ``CONDUIT_SLOW_EXIT=1`` restores the normal exit.
    """
    code = invoke(argv)
    if os.environ.get(SLOW_EXIT_ENV):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code)


def invoke(argv: list[str] | None = None) -> int:
    """Load plugins, let them add commands, run one command, map errors to an exit code."""
    register_environment(os.environ)
    try:
        registry = load_registry()
        registry.register_commands(cli)
        code = cli.main(args=argv, prog_name="conduit", standalone_mode=False, obj=registry)
    except click.exceptions.Abort:
        echo("aborted", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except ConduitError as exc:
        echo(_error_text(str(exc)), err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        echo("interrupted", err=True)
        code = 130
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        echo(f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)", err=True)
        code = 1
    return code if isinstance(code, int) else 0
