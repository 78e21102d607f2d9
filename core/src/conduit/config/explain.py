"""``conduit config explain``: every resolved value of every entity, and where it came from."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from conduit.config.flow import EntityPlan, Project
from conduit.config.layers import Origin
from conduit.connectors import ConnectorOptions
from conduit.secrets import MASK, REDACTOR


def _options(options: ConnectorOptions) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in type(options).model_fields:
        value = getattr(options, key)
        if isinstance(value, SecretStr):
            values[key] = MASK if value.get_secret_value() else ""
        elif isinstance(value, ConnectorOptions):
            values[key] = _options(value)
        else:
            values[key] = options.model_dump(mode="json", include={key})[key]
    return values


def entity_config(plan: EntityPlan) -> dict[str, Any]:
    """The fully resolved config of one entity (secrets masked)."""
    return {
        "source": {
            "type": plan.source.type,
            "connection": plan.source.connection,
            "options": _options(plan.source.options),
        },
        "destination": {
            "type": plan.destination.type,
            "connection": plan.destination.connection,
            "options": _options(plan.destination.options),
        },
        "mode": plan.mode,
        "batch_size": plan.batch_size,
        "checks": [
            {check_name: check.options.model_dump(mode="json")}
            for check, check_name in zip(plan.checks, _check_names(plan), strict=True)
        ],
    }


def _check_names(plan: EntityPlan) -> list[str]:
    return [key.split(".", 1)[1] for key in plan.provenance if key.startswith("checks[")]


def explain_json(project: Project, entity: str | None = None) -> dict[str, Any]:
    flows = []
    for flow in project.flows:
        entities = {}
        for name, plan in flow.entities.items():
            if entity is not None and name != entity:
                continue
            entities[name] = {
                "config": entity_config(plan),
                "provenance": {key: origin.to_json() for key, origin in plan.provenance.items()},
            }
        flows.append({"flow": flow.name, "path": str(flow.path), "entities": entities})
    profile = str(project.profile.path) if project.profile.path else None
    return {"env": project.profile.env, "profile": profile, "flows": flows}


def _flatten(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        items: list[tuple[str, Any]] = []
        for key, item in value.items():
            items.extend(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return items
    return [(prefix, value)]


def _origin_for(plan: EntityPlan, key: str) -> Origin | None:
    while key:
        if key in plan.provenance:
            return plan.provenance[key]
        key = key.rsplit(".", 1)[0] if "." in key else ""
    return None


def explain_text(project: Project, entity: str | None = None) -> str:
    lines = [f"env: {project.profile.env} (profile: {project.profile.path or 'none'})"]
    for flow in project.flows:
        for name, plan in flow.entities.items():
            if entity is not None and name != entity:
                continue
            lines.append("")
            lines.append(f"flow {flow.name} / entity {name}")
            rows = []
            config = entity_config(plan)
            for key, value in _flatten(config, ""):
                if key.startswith("checks"):
                    continue
                origin = _origin_for(plan, key)
                rows.append((key, _show(value), str(origin) if origin else ""))
            for index, check in enumerate(config["checks"]):
                for check_name, options in check.items():
                    origin = plan.provenance.get(f"checks[{index}].{check_name}")
                    rows.append(
                        (f"checks[{index}].{check_name}", _show(options), str(origin) if origin else "")
                    )
            width_key = max(len(r[0]) for r in rows)
            width_value = min(48, max(len(r[1]) for r in rows))
            lines.extend(f"  {k.ljust(width_key)}  {v.ljust(width_value)}  {o}".rstrip() for k, v, o in rows)
    return REDACTOR.redact("\n".join(lines))


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    return str(value)
