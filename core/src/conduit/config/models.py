"""The shape of flow and entity files, as pydantic models. Unknown keys are errors.

.. code-block:: yaml

    version: 1
    sources:                 # named connections defined in the flow (profiles hold the others)
      files: {type: csv, options: {delimiter: ","}}
    destinations:
      lake: {type: parquet, options: {compression: zstd}}
    source: {connection: files}          # flow-level: what every entity starts from
    destination: {connection: lake}
    defaults:                            # deep-merged under every entity
      destination: {options: {path: "out/${entity.name}.parquet"}}
    entities:
      orders:
        source: {options: {path: data/orders*.csv}}
        mode: replace
        batch_size: 65536
        checks:
          - not_null: {columns: [order_id]}

An endpoint (``source``/``destination``) is a connection name (``source: files``), a connection plus
options that override it (``{connection: files, options: {...}}``), or an inline definition
(``{type: csv, options: {...}}``). Connector options are validated later by each connector's own
model, once the type is known and every layer is merged.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from conduit.connectors import WriteMode


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectionSpec(_Strict):
    """A named source or destination: its type and the options shared by the entities that use it."""

    type: str
    options: dict[str, Any] = Field(default_factory=dict)


class EndpointSpec(_Strict):
    """An entity's source or destination after merging: a named connection or an inline type."""

    connection: str | None = None
    type: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_of(self) -> EndpointSpec:
        if (self.connection is None) == (self.type is None):
            raise ValueError("give exactly one of 'connection' (a name) or 'type' (an inline definition)")
        return self


class PartialEndpoint(_Strict):
    """An endpoint as written in one layer (flow level or defaults): every key optional."""

    connection: str | None = None
    type: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class IncrementalSpec(_Strict):
    """``incremental:`` load only rows past the last run's high-water mark (see docs/config.md)."""

    cursor: str = Field(min_length=1)
    initial_value: int | float | dt.datetime | dt.date | str | None = None
    lookback: int | float | str | None = None
    primary_key: list[str] | None = None
    on_null: Literal["fail", "skip"] = "fail"


DEFAULT_COMMIT_EVERY = 250_000


class DlqSpec(_Strict):
    """``dlq:`` where rejected rows go: files under the state directory (see docs/config.md)."""

    format: Literal["jsonl", "parquet"] = "jsonl"
    path: str | None = None
    """A directory instead of ``<state dir>/dlq``; ``<flow>/<entity>/`` is appended."""


class DlqDefaults(_Strict):
    format: Literal["jsonl", "parquet"] | None = None
    path: str | None = None


class SchemaSpec(_Strict):
    """``schema:`` what happens when the source's schema drifts (see docs/config.md)."""

    policy: Literal["manual", "auto", "warn", "freeze"] = "manual"
    timestamp_to_timestamptz: bool = False


class SchemaDefaults(_Strict):
    policy: Literal["manual", "auto", "warn", "freeze"] | None = None
    timestamp_to_timestamptz: bool | None = None


class _RowPolicy(_Strict):
    """What happens to bad rows (shared by entities and ``defaults:``)."""

    on_error: Literal["fail", "dlq"] | None = None
    max_rejected: int | None = Field(default=None, ge=0)
    max_rejected_ratio: float | None = Field(default=None, ge=0, le=1)
    secret_columns: list[str] | None = None


class EntitySpec(_RowPolicy):
    """One stream moved from a source to a destination (after defaults are merged in)."""

    name: str | None = None
    source: EndpointSpec
    destination: EndpointSpec
    mode: WriteMode | None = None
    batch_size: int = Field(default=65_536, gt=0, le=10_000_000)
    checks: list[dict[str, dict[str, Any]]] = Field(default_factory=list)
    incremental: IncrementalSpec | None = None
    commit_every: int = Field(default=DEFAULT_COMMIT_EVERY, gt=0)
    dlq: DlqSpec = Field(default_factory=DlqSpec)
    schema_: SchemaSpec = Field(default_factory=SchemaSpec, alias="schema")


class DefaultsSpec(_RowPolicy):
    """A ``defaults:`` block: any entity key, every one optional."""

    source: PartialEndpoint | None = None
    destination: PartialEndpoint | None = None
    mode: WriteMode | None = None
    batch_size: int | None = Field(default=None, gt=0, le=10_000_000)
    checks: list[dict[str, dict[str, Any]]] | None = None
    incremental: IncrementalSpec | None = None
    commit_every: int | None = Field(default=None, gt=0)
    dlq: DlqDefaults | None = None
    schema_: SchemaDefaults | None = Field(default=None, alias="schema")


class FlowSpec(_Strict):
    """A flow file (``ingest.yml`` or ``flow.yml``)."""

    version: Literal[1] = 1
    name: str | None = None
    sources: dict[str, ConnectionSpec] = Field(default_factory=dict)
    destinations: dict[str, ConnectionSpec] = Field(default_factory=dict)
    source: PartialEndpoint | None = None
    destination: PartialEndpoint | None = None
    defaults: DefaultsSpec | None = None
    # Entities are validated one at a time (EntitySpec, after merging) so one bad entity does not
    # hide the others' problems; here only the container's shape is checked.
    entities: dict[str, Any] | list[Any] | None = None


class EntitiesFileSpec(_Strict):
    """``entities.yml``: defaults and a list (or mapping) of entities."""

    version: Literal[1] = 1
    defaults: DefaultsSpec | None = None
    entities: dict[str, Any] | list[Any] = Field(default_factory=list)
