"""The ``conduit`` command: parse arguments, call the library, render results. Nothing else.

Exit codes: 0 success; 1 a run failed (bad data, a connector error); 2 a usage, config or plugin
error. A :class:`~conduit.errors.ConduitError` is printed as one message, never as a traceback;
``CONDUIT_DEBUG=1`` adds tracebacks for unexpected errors.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from conduit.config.flow import load_flow
from conduit.errors import ConduitError
from conduit.plugins import Registry, core_version, load_registry
from conduit.progress import TerminalProgress, summary
from conduit.run import run_flow

DEBUG_ENV = "CONDUIT_DEBUG"


def _registry(ctx: click.Context, *, warn: bool = True) -> Registry:
    registry: Registry = ctx.obj
    if warn:
        for plugin in registry.failures:
            click.echo(f"warning: plugin {plugin.name!r} ({plugin.distribution}) {plugin.error}", err=True)
        registry.raise_for_conflicts()
    return registry


def _error_text(message: str) -> str:
    lines = message.splitlines() or [""]
    if len(lines) == 1:
        return f"error: {lines[0]}"
    return f"error: {len(lines)} problems:\n" + "\n".join(f"  {line}" for line in lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(core_version(), "-V", "--version", prog_name="conduit", message="%(prog)s %(version)s")
def cli() -> None:
    """Conduit: declarative data ingestion. Write what to move in YAML, then `conduit run` it."""


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--entity", "-e", "entities", multiple=True, help="Run only this entity (repeatable).")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary; errors only.")
@click.option("--json", "as_json", is_flag=True, help="Print the run result as JSON on stdout.")
@click.pass_context
def run(ctx: click.Context, path: Path, entities: tuple[str, ...], quiet: bool, as_json: bool) -> None:
    """Run the entities of the flow file PATH."""
    registry = _registry(ctx)
    flow = load_flow(path, registry)
    listener = None if quiet or as_json else TerminalProgress()
    result = run_flow(flow, registry, entities=list(entities) or None, listener=listener)
    for entity in result.entities:
        for warning in entity.warnings:
            click.echo(f"warning: [{entity.name}] {warning}", err=True)
        if entity.error:
            click.echo(f"error: [{entity.name}] {entity.error}", err=True)
            if entity.debug and os.environ.get(DEBUG_ENV):
                click.echo(entity.debug, err=True)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    elif not quiet:
        click.echo(summary(result))
    ctx.exit(0 if result.status == "success" else 1)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.pass_context
def validate(ctx: click.Context, path: Path) -> None:
    """Load and check the flow file PATH without moving any data."""
    flow = load_flow(path, _registry(ctx))
    names = ", ".join(flow.entities)
    click.echo(f"{path}: ok ({len(flow.entities)} entit{'y' if len(flow.entities) == 1 else 'ies'}: {names})")


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
        click.echo(json.dumps(payload, indent=2))
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
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    for p in registry.plugins:
        if p.error:
            click.echo(f"{p.name}: {p.error}", err=True)
    for conflict in registry.conflicts:
        click.echo(f"conflict: {conflict}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: load plugins, let them add commands, run, map errors to exit codes."""
    try:
        registry = load_registry()
        registry.register_commands(cli)
        code = cli.main(args=argv, prog_name="conduit", standalone_mode=False, obj=registry)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except ConduitError as exc:
        click.echo(_error_text(str(exc)), err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        code = 130
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)", err=True
        )
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
