"""The shape of a flow file (``ingest.yml``), as pydantic models. Unknown keys are errors.

.. code-block:: yaml

    version: 1
    sources:                 # named connections: a type and its options
      files: {type: csv, options: {delimiter: ","}}
    destinations:
      lake: {type: parquet, options: {compression: zstd}}
    entities:                # one stream each, from a source to a destination
      orders:
        source: {connection: files, options: {path: data/orders*.csv}}
        destination: {connection: lake, options: {path: out/orders.parquet}}
        mode: replace
        batch_size: 65536
        checks:
          - not_null: {columns: [order_id]}

An entity's ``source``/``destination`` is a connection name (``source: files``), a connection plus
options that override the connection's (``{connection: files, options: {...}}``) or an inline
definition (``{type: csv, options: {...}}``). Connector options are validated later, by each
connector's own model, once the type is known.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from conduit.connectors import WriteMode


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectionSpec(_Strict):
    """A named source or destination: its type and the options shared by the entities that use it."""

    type: str
    options: dict[str, Any] = Field(default_factory=dict)


class EndpointSpec(_Strict):
    """An entity's source or destination: a named connection, or an inline type, plus options."""

    connection: str | None = None
    type: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_of(self) -> EndpointSpec:
        if (self.connection is None) == (self.type is None):
            raise ValueError("give exactly one of 'connection' (a name) or 'type' (an inline definition)")
        return self


class EntitySpec(_Strict):
    """One stream moved from a source to a destination."""

    source: EndpointSpec
    destination: EndpointSpec
    mode: WriteMode | None = None
    batch_size: int = Field(default=65_536, gt=0, le=10_000_000)
    checks: list[dict[str, dict[str, Any]]] = Field(default_factory=list)

    @field_validator("source", "destination", mode="before")
    @classmethod
    def _name_is_a_connection(cls, value: Any) -> Any:
        return {"connection": value} if isinstance(value, str) else value


class FlowSpec(_Strict):
    """A whole flow file."""

    version: Literal[1] = 1
    sources: dict[str, ConnectionSpec] = Field(default_factory=dict)
    destinations: dict[str, ConnectionSpec] = Field(default_factory=dict)
    # Validated one entity at a time (EntitySpec) so one bad entity does not hide the others' problems.
    entities: dict[str, dict[str, Any]]
