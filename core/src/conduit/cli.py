"""The ``conduit`` command: parse arguments, call the library, render results. Nothing else.

Exit codes: 0 success; 1 a run failed (bad data, a connector error); 2 a usage, config or plugin
error; 130 a run stopped by SIGINT (Ctrl-C) or SIGTERM, what it committed kept (`--resume` goes on). A :class:`~conduit.errors.ConduitError` is printed as one message, never as a traceback;
``CONDUIT_DEBUG=1`` adds tracebacks for unexpected errors. Everything printed passes through the
secret redactor (:mod:`conduit.secrets`).
"""

from __future__ import annotations

import atexit
import difflib
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import pyarrow as pa

from conduit import interrupts, manifest
from conduit.config.explain import explain_json, explain_text
from conduit.config.flow import EntityPlan, Project, load_project
from conduit.config.profiles import (
    available_profiles,
    choose_env,
    environment,
    find_project_root,
    load_profile,
    profiles_dir_for,
)
from conduit.connectors import Destination, StateKey
from conduit.dlq import DeadLetterQueue, dlq_root
from conduit.errors import ConduitError, ConfigError, DataLocation, Interrupted
from conduit.evolution import approve
from conduit.incremental import from_json, to_json
from conduit.plugins import Registry, core_version, load_registry
from conduit.progress import TerminalProgress, summary
from conduit.replay import replay_entity
from conduit.run import RunOptions, RunResult, new_run_id, run_flow
from conduit.scaffold import scaffold
from conduit.schema import SchemaRecord, drift
from conduit.secrets import REDACTOR, mask_json, register_environment
from conduit.state import StateStore, describe_state, normalized, now, store_for
from conduit.state import state_dir as state_dir_for
from conduit.types import type_name

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


def state_dir_option(function: F) -> F:
    return click.option(
        "--state-dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="Local state directory: run manifests, and state a destination cannot hold "
        "(default: $CONDUIT_STATE_DIR, else .conduit/ at the project root).",
    )(function)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--entity", "-e", "entities", multiple=True, help="Run only this entity (repeatable).")
@profile_options
@state_dir_option
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last commit.")
@click.option(
    "--full-refresh", is_flag=True, help="Ignore the stored state and reload everything (mode replace)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary; errors only.")
@click.option("--json", "as_json", is_flag=True, help="Print the run result as JSON on stdout.")
@click.pass_context
def run(
    ctx: click.Context,
    path: Path,
    entities: tuple[str, ...],
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
    resume: bool,
    full_refresh: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Run the entities of the flow(s) at PATH: a flow file, a flow directory, or a directory of flows."""
    if resume and full_refresh:
        raise click.UsageError("--resume and --full-refresh exclude each other")
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
    root = state_dir_for(project.root, state_dir)
    options = RunOptions(resume=resume, full_refresh=full_refresh, state_dir=root)
    flows = [flow for flow in project.flows if any(not wanted or n in wanted for n in flow.entities)]
    record = manifest.start_manifest(run_id, flows, env=project.profile.env, command=sys.argv[1:])
    results: list[RunResult] = []
    # SIGINT/SIGTERM stop the run at a batch boundary; each later flow then starts nothing.
    with interrupts.handling():
        _write_manifest(root, record)
        for flow in flows:
            names = [n for n in flow.entities if not wanted or n in wanted]
            results.append(
                run_flow(flow, registry, entities=names, listener=listener, run_id=run_id, options=options)
            )
        _write_manifest(root, manifest.finish_manifest(record, results))
    ok = True
    for result in results:
        for entity in result.entities:
            for warning in entity.warnings:
                echo(f"warning: [{entity.name}] {warning}", err=True)
            if entity.error and entity.status != "interrupted":
                echo(f"error: [{entity.name}] {entity.error}", err=True)
                if entity.debug and os.environ.get(DEBUG_ENV):
                    echo(entity.debug, err=True)
        ok = ok and result.status == "success"
    failed = [e for result in results for e in result.entities if e.status == "failed"]
    if as_json:
        payload = results[0].to_json() if len(results) == 1 else {"runs": [r.to_json() for r in results]}
        echo(json.dumps(mask_json(payload), indent=2))
    elif not quiet:
        echo("\n\n".join(summary(result) for result in results))
    if any(result.status == "interrupted" for result in results):
        again = _run_again(ctx, path, results, full_refresh)
        echo(f"interrupted: {_interruption(results)}; continue with: {again}", err=True)
        ctx.exit(Interrupted.exit_code)
    # 3: nothing failed but schema drift waits for `conduit schema approve`.
    ctx.exit(0 if ok else 3 if all(e.needs_approval for e in failed) else 1)


def _interruption(results: list[RunResult]) -> str:
    """What an interrupted run left: per stopped entity what it committed, and what did not start."""
    parts = []
    for entity in (e for result in results for e in result.entities if e.status == "interrupted"):
        if entity.commits:
            parts.append(f"entity {entity.name!r} stopped after committing {entity.rows_loaded:,} rows")
        else:
            parts.append(f"entity {entity.name!r} stopped before its first commit (nothing of it was loaded)")
    not_started = [name for result in results for name in result.not_started]
    if not_started:
        parts.append(f"not started: {', '.join(not_started)}")
    return "; ".join(parts)


def _run_again(ctx: click.Context, path: Path, results: list[RunResult], full_refresh: bool) -> str:
    """The command that continues an interrupted run: the same flows, profile and state directory,
    with ``--resume`` (an ordinary run where nothing is left to resume), or ``--full-refresh`` again
    (a replace load commits once, so there is nothing to resume). When some entities finished, only
    the interrupted and the not-started ones are named, so the finished ones are not loaded again."""
    params = ctx.params
    command = ["conduit", "run", str(path)]
    if any(e.status in ("success", "failed") for result in results for e in result.entities):
        for result in results:
            command += [arg for e in result.entities if e.status == "interrupted" for arg in ("-e", e.name)]
            command += [arg for name in result.not_started for arg in ("-e", name)]
    else:
        command += [arg for name in params.get("entities") or () for arg in ("-e", name)]
    for option in ("env", "profiles_dir", "state_dir"):
        if params.get(option) is not None:
            command += [f"--{option.replace('_', '-')}", str(params[option])]
    command.append("--full-refresh" if full_refresh else "--resume")
    return shlex.join(command)


def _write_manifest(root: Path, record: dict[str, Any]) -> None:
    try:
        manifest.write_manifest(root, record)
    except OSError as exc:
        echo(f"warning: could not write the run manifest under {root}: {exc}", err=True)


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
                finally:
                    connector.close()
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


def _plans(
    ctx: click.Context, flow: Path, entity: str | None, env: str | None, profiles_dir: Path | None
) -> tuple[Project, list[EntityPlan]]:
    project = _project(ctx, flow, env, profiles_dir)
    plans = [plan for f in project.flows for plan in f.entities.values()]
    if entity is not None:
        plans = [plan for plan in plans if plan.name == entity]
        if not plans:
            known = sorted({p.name for f in project.flows for p in f.entities.values()})
            raise ConfigError(f"{flow}: no entity named {entity!r}; the flows have: {', '.join(known)}")
    return project, plans


def _entity_plan(
    ctx: click.Context,
    entity: str,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
) -> tuple[Project, EntityPlan, Path]:
    """What the per-entity commands start from: the project, the entity's plan, the state directory."""
    project, (plan,) = _plans(ctx, flow, entity, env, profiles_dir)
    return project, plan, state_dir_for(project.root, state_dir)


def _store(plan: EntityPlan, root: Path) -> tuple[Destination, StateStore]:
    """The entity's destination (closed when the command ends) and its state store."""
    destination = plan.destination_cls(plan.destination.options)
    click.get_current_context().call_on_close(destination.close)
    return destination, store_for(destination, StateKey(plan.flow, plan.name), root)


def flow_options(function: F) -> F:
    function = state_dir_option(function)
    function = profile_options(function)
    return click.option(
        "--flow",
        "-f",
        "flow",
        type=click.Path(path_type=Path),
        default=Path("."),
        show_default=True,
        help="The flow file or directory the entity belongs to.",
    )(function)


@cli.group()
def state() -> None:
    """Show, set or reset an entity's incremental state (watermark, loaded files, checkpoint)."""


@state.command(name="show")
@click.argument("entity", required=False)
@flow_options
@click.option("--json", "as_json", is_flag=True, help="Print the stored state documents as JSON.")
@click.pass_context
def state_show(
    ctx: click.Context,
    entity: str | None,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
    as_json: bool,
) -> None:
    """Show the state of ENTITY (or of every entity of the flow)."""
    project, plans = _plans(ctx, flow, entity, env, profiles_dir)
    root = state_dir_for(project.root, state_dir)
    shown: dict[str, Any] = {}
    for plan in plans:
        _, store = _store(plan, root)
        shown[plan.name] = store.read()
        if not as_json:
            echo(describe_state(plan.name, shown[plan.name], store.where))
    if as_json:
        echo(json.dumps(mask_json(shown), indent=2, default=str))


@state.command(name="set")
@click.argument("entity")
@click.option("--cursor", "cursor", required=True, help="The new watermark (in the cursor column's type).")
@flow_options
@click.pass_context
def state_set(
    ctx: click.Context,
    entity: str,
    cursor: str,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
) -> None:
    """Set ENTITY's watermark: the next run loads rows with a cursor at or past VALUE."""
    project, (plan,) = _plans(ctx, flow, entity, env, profiles_dir)
    if plan.incremental is None:
        raise ConfigError(f"entity {entity!r} has no incremental: block, so it has no cursor to set")
    source = plan.source_cls(plan.source.options)
    try:
        schema = source.discover()
    finally:
        source.close()
    column = plan.incremental.cursor
    if column not in schema.names:
        raise ConfigError(f"entity {entity!r}: incremental.cursor {column!r} is not a column of the source")
    value = from_json(cursor, schema.field(column).type, f"--cursor for {entity!r}").as_py()
    _, store = _store(plan, state_dir_for(project.root, state_dir))
    with store.lock("state-set"):
        current = normalized(plan.name, store.read())
        current.update(
            cursor=column, watermark=to_json(value), boundary={}, files={}, in_progress=None, updated_at=now()
        )
        store.write(current)
    echo(f"{entity}: watermark set to {to_json(value)!r}; the next run loads rows with {column} >= it")


@state.command(name="reset")
@click.argument("entity")
@flow_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def state_reset(
    ctx: click.Context,
    entity: str,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
    yes: bool,
) -> None:
    """Forget ENTITY's state: the next run loads from the beginning (initial_value)."""
    _, plan, root = _entity_plan(ctx, entity, flow, env, profiles_dir, state_dir)
    _, store = _store(plan, root)
    if not yes and not sys.stdin.isatty():
        echo(f"error: resetting {entity!r} needs confirmation; pass --yes to reset without asking", err=True)
        ctx.exit(1)
    if not yes and not click.confirm(
        f"Reset the state of {entity!r}? Its next run reloads from the beginning", default=False
    ):
        echo("not reset", err=True)
        ctx.exit(1)
    with store.lock("state-reset"):
        store.write(None)
    echo(f"{entity}: state reset")


@cli.group()
def dlq() -> None:
    """Inspect, replay and purge rows that were rejected rather than loaded (the dead-letter queue)."""


def _queue(plan: EntityPlan, root: Path) -> DeadLetterQueue:
    return DeadLetterQueue(dlq_root(root, plan.rows.dlq_path), plan.flow, plan.name, plan.rows.dlq_format)


@dlq.command(name="list")
@flow_options
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON.")
@click.pass_context
def dlq_list(
    ctx: click.Context,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
    as_json: bool,
) -> None:
    """Rejected rows per entity: how many, from which runs, for which reasons."""
    project, plans = _plans(ctx, flow, None, env, profiles_dir)
    root = state_dir_for(project.root, state_dir)
    summaries = [_queue(plan, root).summary() for plan in plans]
    if as_json:
        echo(json.dumps(mask_json([s.to_json() for s in summaries]), indent=2))
        return
    shown = [s for s in summaries if s.rows]
    if not shown:
        echo("no rejected rows")
        return
    for item in shown:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in item.reasons.most_common())
        echo(
            f"{item.entity}: {item.rows:,} rows from {len(item.runs)} run(s), last {item.last_at} "
            f"({reasons})\n  {item.directory}"
        )


def _masked_values(values: Any, secret: tuple[str, ...]) -> Any:
    if not isinstance(values, dict) or not secret:
        return values
    return {k: ("***" if k in secret and v is not None else v) for k, v in values.items()}


@dlq.command(name="show")
@click.argument("entity")
@flow_options
@click.option("--run", "run", help="Only rows rejected by this run (an id or a unique prefix).")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@click.pass_context
def dlq_show(
    ctx: click.Context,
    entity: str,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
    run: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show ENTITY's rejected rows with why (oldest first); values of secret_columns as ***."""
    _, plan, root = _entity_plan(ctx, entity, flow, env, profiles_dir, state_dir)
    queue = _queue(plan, root)
    secret = plan.rows.secret_columns
    records = []
    for record in queue.records(run):
        record["values"] = _masked_values(record.get("values"), secret)
        if secret and record.get("raw") is not None:
            record["raw"] = "*** (raw record hidden: the entity has secret_columns)"
        records.append(record)
        if len(records) >= limit:
            break
    if as_json:
        echo(json.dumps(mask_json(records), indent=2))
        return
    if not records:
        echo(f"{entity}: no rejected rows" + (f" from run {run}" if run else ""))
        return
    for number, record in enumerate(records, start=1):
        place = str(DataLocation(file=record.get("file"), line=record.get("line"), row=record.get("row")))
        echo(
            f"#{number} {place or '(no location)'} | {record.get('rule')}: {record.get('reason')} | "
            f"run {record.get('run_id')}\n  {record.get('message')}"
        )
        if record.get("values") is not None:
            echo(f"  values: {json.dumps(record['values'], ensure_ascii=False)}")
        if record.get("raw") is not None:
            echo(f"  raw: {record['raw']!r}")


@dlq.command(name="replay")
@click.argument("entity")
@flow_options
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def dlq_replay(
    ctx: click.Context,
    entity: str,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
    as_json: bool,
) -> None:
    """Load ENTITY's rejected rows again through the current config and checks; loaded rows leave
    the queue, rows that still fail stay."""
    project, plan, root = _entity_plan(ctx, entity, flow, env, profiles_dir, state_dir)
    owner = next(f for f in project.flows if plan.name in f.entities and f.entities[plan.name] is plan)
    run_id = new_run_id()
    record = manifest.start_manifest(run_id, [owner], env=project.profile.env, command=sys.argv[1:])
    _write_manifest(root, record)
    outcome = replay_entity(plan, _registry(ctx), root, run_id)
    result = RunResult(run_id, str(owner.path), record["started_at"], now(), [outcome.entity])
    _write_manifest(root, manifest.finish_manifest(record, [result]))
    for warning in outcome.entity.warnings:
        echo(f"warning: [{entity}] {warning}", err=True)
    if as_json:
        payload = {
            "run_id": run_id,
            "entity": entity,
            "status": outcome.entity.status,
            "replayed": outcome.replayed,
            "still_rejected": outcome.still_rejected,
            "without_values": outcome.without_values,
            "reasons": outcome.reasons or {},
            "error": outcome.entity.error,
        }
        echo(json.dumps(mask_json(payload), indent=2))
    if outcome.entity.error:
        echo(f"error: [{entity}] {outcome.entity.error}", err=True)
        ctx.exit(1)
    if not as_json:
        parts = [f"{entity}: {outcome.replayed:,} rows replayed into the destination"]
        if outcome.still_rejected:
            reasons = ", ".join(f"{k} {v:,}" for k, v in sorted((outcome.reasons or {}).items()))
            parts.append(f"{outcome.still_rejected:,} still rejected and kept in the queue ({reasons})")
        if outcome.without_values:
            parts.append(
                f"{outcome.without_values:,} malformed records kept (no values to replay: fix the file "
                "and load it again)"
            )
        echo("; ".join(parts) + f" (run {run_id})")


@dlq.command(name="purge")
@click.argument("entity")
@flow_options
@click.option("--run", "run", help="Only the rows rejected by this run (an id or a unique prefix).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def dlq_purge(
    ctx: click.Context,
    entity: str,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
    run: str | None,
    yes: bool,
) -> None:
    """Delete ENTITY's rejected rows (all, or one run's) for good."""
    _, plan, root = _entity_plan(ctx, entity, flow, env, profiles_dir, state_dir)
    queue = _queue(plan, root)
    what = f"the rejected rows of {entity!r}" + (f" from run {run}" if run else "")
    if not yes and not sys.stdin.isatty():
        echo(f"error: purging {what} needs confirmation; pass --yes to purge without asking", err=True)
        ctx.exit(1)
    if not yes and not click.confirm(f"Delete {what}? They cannot be replayed afterwards", default=False):
        echo("not purged", err=True)
        ctx.exit(1)
    _, store = _store(plan, root)
    with store.lock("dlq-purge"):
        count = queue.purge(run)
    echo(f"{entity}: {count:,} rejected rows purged")


@cli.group()
def schema() -> None:
    """Show, compare and approve entities' accepted schemas (versions kept with the state)."""


def _record(plan: EntityPlan, root: Path) -> SchemaRecord:
    _, store = _store(plan, root)
    return SchemaRecord.from_state(store.read() or {})


def _columns(stored: dict[str, Any]) -> list[str]:
    return [
        f"  {c['name']}: {c['type']}{'' if c.get('nullable', True) else ' not null'}"
        for c in stored["columns"]
    ]


@schema.command(name="show")
@click.argument("entity")
@flow_options
@click.option("--version", "version", type=int, help="An older version (default: the accepted one).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def schema_show(
    ctx: click.Context,
    entity: str,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
    version: int | None,
    as_json: bool,
) -> None:
    """Show ENTITY's accepted schema (the columns its target has, by version)."""
    _, plan, root = _entity_plan(ctx, entity, flow, env, profiles_dir, state_dir)
    record = _record(plan, root)
    if not record.version:
        raise ConduitError(f"entity {entity!r} has no accepted schema yet (it has not been loaded)")
    wanted = version or record.version
    entry = next((h for h in record.history if h.get("version") == wanted), None)
    if entry is None:
        raise ConduitError(f"entity {entity!r} has no schema version {wanted} (versions 1..{record.version})")
    if as_json:
        echo(json.dumps({k: v for k, v in entry.items() if k != "arrow"}, indent=2))
        return
    echo(
        f"{entity}: schema version {wanted} of {record.version}, accepted {entry['accepted_at']} ({entry['how']})"
    )
    echo("\n".join(_columns(entry)))


@schema.command(name="history")
@click.argument("entity")
@flow_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def schema_history(
    ctx: click.Context,
    entity: str,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
    as_json: bool,
) -> None:
    """List ENTITY's schema versions: when, how, what changed, and the DDL that ran."""
    _, plan, root = _entity_plan(ctx, entity, flow, env, profiles_dir, state_dir)
    record = _record(plan, root)
    history = [{k: v for k, v in h.items() if k != "arrow"} for h in record.history]
    if as_json:
        echo(json.dumps(history, indent=2))
        return
    if not history:
        echo(f"{entity}: no schema versions yet")
        return
    for entry in history:
        changes = "; ".join(_change_text(c) for c in entry.get("changes") or []) or "first version"
        echo(
            f"v{entry['version']}  {entry['accepted_at']}  {entry['how']}  run {entry['run_id']}\n  {changes}"
        )
        for statement in entry.get("ddl") or []:
            echo(f"  ddl: {statement}")


def _change_text(change: dict[str, Any]) -> str:
    if change["kind"] == "added":
        return f"+{change['column']} {change['to']}"
    if change["kind"] == "removed":
        return f"-{change['column']} (loads as NULL)"
    if change["kind"] == "nullability":
        return f"?{change['column']} may now be NULL"
    widened = f" -> column {change['widened']}" if change.get("widened") else ""
    return f"~{change['column']} {change['from']} => {change['to']} ({change['compatibility']}{widened})"


@schema.command(name="diff")
@click.argument("entity")
@flow_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def schema_diff(
    ctx: click.Context,
    entity: str,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
    as_json: bool,
) -> None:
    """Compare what the source sends now, the accepted schema, and the destination's columns."""
    _, plan, root = _entity_plan(ctx, entity, flow, env, profiles_dir, state_dir)
    incoming = plan.discover()
    destination, store = _store(plan, root)
    record = SchemaRecord.from_state(store.read() or {})
    current = destination.current_schema()
    accepted = record.current
    names: list[str] = []
    for schema_ in (accepted, incoming, current):
        for name in schema_.names if schema_ is not None else []:
            if name not in names:
                names.append(name)

    def kind(schema_: pa.Schema | None, name: str) -> str | None:
        if schema_ is None or name not in schema_.names:
            return None
        return type_name(schema_.field(name).type)

    rows = [
        {
            "column": n,
            "source": kind(incoming, n),
            "accepted": kind(accepted, n),
            "destination": kind(current, n),
        }
        for n in names
    ]
    changes = []
    if accepted is not None and record.source is not None:
        changes = [
            c.to_json()
            for c in drift(
                record.source, accepted, incoming, timestamptz=plan.rows.timestamp_to_timestamptz
            ).changes
        ]
    if as_json:
        echo(json.dumps({"accepted_version": record.version, "columns": rows, "changes": changes}, indent=2))
        return
    width = max([len(n) for n in names] + [6])
    echo(f"{'column':<{width}}  {'source':<22}  {'accepted v' + str(record.version):<22}  destination")
    for row in rows:
        echo(
            f"{row['column']:<{width}}  {row['source'] or '-':<22}  {row['accepted'] or '-':<22}  {row['destination'] or '-'}"
        )
    echo("drift: " + ("; ".join(_change_text(c) for c in changes) if changes else "none"))


@schema.command(name="approve")
@click.argument("entity")
@flow_options
@click.pass_context
def schema_approve(
    ctx: click.Context,
    entity: str,
    flow: Path,
    env: str | None,
    profiles_dir: Path | None,
    state_dir: Path | None,
) -> None:
    """Apply the plan a `manual` run left for ENTITY (its DDL, exactly) and accept the new version."""
    _, plan, root = _entity_plan(ctx, entity, flow, env, profiles_dir, state_dir)
    done = approve(plan, _registry(ctx), root, new_run_id())
    for statement in done.ddl:
        echo(f"ran: {statement}")
    changes = "; ".join(_change_text(c) for c in done.changes)
    echo(f"{entity}: schema version {done.to_version} accepted ({changes}); the next run loads with it")


def _runs_root(project_dir: Path, state_dir: Path | None) -> Path:
    return state_dir_for(find_project_root(project_dir), state_dir)


@cli.group(invoke_without_command=True)
@click.option("--status", type=click.Choice(["success", "partial", "failed", "running", "interrupted"]))
@click.option("--entity", "-e", help="Only runs that included this entity.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the manifests as JSON.")
@click.option(
    "--project",
    "project_dir",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="The project (or flow) whose runs to list.",
)
@state_dir_option
@click.pass_context
def runs(
    ctx: click.Context,
    status: str | None,
    entity: str | None,
    limit: int,
    as_json: bool,
    project_dir: Path,
    state_dir: Path | None,
) -> None:
    """List past runs from their manifests (newest first); `conduit runs show RUN_ID` for one."""
    if ctx.invoked_subcommand is not None:
        return
    listed = manifest.list_runs(_runs_root(project_dir, state_dir), status=status, entity=entity, limit=limit)
    for problem in listed.problems:
        echo(f"warning: {problem}", err=True)
    if as_json:
        echo(json.dumps(mask_json(listed.runs), indent=2))
    elif listed.runs:
        echo(manifest.format_runs_table(listed.runs))
    else:
        echo("no runs recorded")


@runs.command(name="show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run's manifest (a unique prefix of the run id is enough)."""
    parent = ctx.parent.params if ctx.parent is not None else {}
    root = _runs_root(parent.get("project_dir") or Path("."), parent.get("state_dir"))
    record = manifest.load_run(root, run_id)
    echo(json.dumps(mask_json(record), indent=2) if as_json else manifest.format_run(record))


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
    except Interrupted as exc:
        echo(f"interrupted: {exc}", err=True)
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
