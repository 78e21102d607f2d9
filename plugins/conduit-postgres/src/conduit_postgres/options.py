"""The options of the ``postgres`` source and destination, validated when the config is loaded."""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Literal

from pydantic import Field, field_validator, model_validator

from conduit.connectors import ConnectorOptions, Secret
from conduit_postgres.identifiers import TableName, require_identifier, shown

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class ConnectionOptions(ConnectorOptions):
    """How to reach the server: a ``dsn`` (libpq URL or ``key=value`` string), fields, or both.

    Fields override the same setting in the DSN; what neither gives comes from libpq's usual
    environment variables (``PGHOST``, ``PGPASSWORD``...) and defaults.
    """

    dsn: Secret | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    password: Secret | None = None
    dbname: str | None = None
    sslmode: SslMode | None = None
    options: str | None = None
    connect_timeout: int = Field(default=10, ge=1, le=3600)
    connect_retries: int = Field(default=2, ge=0, le=20)
    connect_backoff: float = Field(default=0.5, ge=0, le=60)


with warnings.catch_warnings():
    # The option is called ``schema`` as users say it; pydantic warns that the field hides the
    # deprecated ``BaseModel.schema()`` classmethod, which nothing here uses.
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class TableOptions(ConnectionOptions):
        """The ``schema`` a bare ``table`` name belongs to."""

        schema: str = "public"  # type: ignore[assignment]

        @field_validator("schema")
        @classmethod
        def _schema(cls, value: str) -> str:
            return require_identifier(value, "schema name")


def _table(value: str, schema: str) -> str:
    TableName.parse(value, schema)
    return value


class PostgresDestinationOptions(TableOptions):
    """Options of ``type: postgres`` as a destination (see the package README)."""

    table: str
    primary_key: list[str] | None = None
    order_by: str | None = None
    hard_delete: str | None = None
    create_table: bool = True

    @field_validator("primary_key")
    @classmethod
    def _primary_key(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("primary_key must list at least one column")
        for name in value:
            require_identifier(name, "primary_key column")
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"primary_key lists {', '.join(map(shown, repeated))} more than once")
        return value

    @field_validator("order_by", "hard_delete")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        return None if value is None else require_identifier(value, "column")

    @model_validator(mode="after")
    def _consistent(self) -> PostgresDestinationOptions:
        _table(self.table, self.schema)
        keys = self.primary_key or []
        if self.hard_delete is not None and self.hard_delete in keys:
            raise ValueError(f"hard_delete column {shown(self.hard_delete)} cannot be part of primary_key")
        if self.order_by is not None and self.order_by == self.hard_delete:
            raise ValueError("order_by and hard_delete cannot be the same column")
        return self

    @property
    def target(self) -> TableName:
        return TableName.parse(self.table, self.schema)


class PostgresSourceOptions(TableOptions):
    """Options of ``type: postgres`` as a source: a ``table`` (with ``columns``/``where``) or a ``query``."""

    table: str | None = None
    columns: list[str] | None = None
    where: str | None = None
    query: str | None = None
    cursor_column: str | None = None
    cursor_after: int | float | dt.datetime | dt.date | str | None = None
    fetch_block_size: int | None = Field(default=None, ge=4096, le=64 * 1024 * 1024)

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("columns must list at least one column")
        for name in value:
            require_identifier(name, "column")
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"columns lists {', '.join(map(shown, repeated))} more than once")
        return value

    @field_validator("cursor_column")
    @classmethod
    def _cursor_column(cls, value: str | None) -> str | None:
        return None if value is None else require_identifier(value, "cursor_column")

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip().rstrip(";").strip()
        if not text:
            raise ValueError("query is empty")
        return text

    @field_validator("where")
    @classmethod
    def _where(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("where is empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PostgresSourceOptions:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table (with optional columns and where) or query")
        if self.table is not None:
            _table(self.table, self.schema)
        elif self.columns is not None or self.where is not None:
            raise ValueError("columns and where go with table; put them in the query instead")
        if self.cursor_after is not None and self.cursor_column is None:
            raise ValueError("cursor_after needs cursor_column")
        if (
            self.columns is not None
            and self.cursor_column is not None
            and self.cursor_column not in self.columns
        ):
            raise ValueError(f"cursor_column {shown(self.cursor_column)} must be one of columns")
        return self

    @property
    def target(self) -> TableName | None:
        return None if self.table is None else TableName.parse(self.table, self.schema)

    def describe(self) -> str:
        """What is read, for messages: ``table public.orders`` or ``query 'SELECT ...'``."""
        if self.table is not None:
            return f"table {self.target}"
        query = " ".join((self.query or "").split())
        return f"query {query if len(query) <= 80 else query[:77] + '...'!r}"
