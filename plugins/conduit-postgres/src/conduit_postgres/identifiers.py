"""PostgreSQL identifiers: validation, table-name parsing, quoting and the connector's helper names.

Every identifier that reaches SQL is quoted with :class:`psycopg2.sql.Identifier`, so a name is used
exactly as written: ``Orders`` and ``orders`` are different tables, and a name with quotes, spaces,
semicolons or SQL keywords is just a name. PostgreSQL folds nothing inside quotes, so two distinct
names never land on the same column; the one silent merge it does is truncation to 63 bytes, which
is refused here instead (as are empty names and NUL characters).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from psycopg2 import sql

from conduit.errors import ConnectorError

MAX_BYTES = 63
"""PostgreSQL's identifier limit (NAMEDATALEN - 1): longer names are truncated by the server."""

_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")


def identifier_problem(name: str) -> str | None:
    """Why ``name`` cannot be a PostgreSQL identifier as written, or ``None`` when it can."""
    if not name:
        return "is empty"
    if "\x00" in name:
        return "contains a NUL character"
    size = len(name.encode("utf-8"))
    if size > MAX_BYTES:
        return (
            f"is {size} bytes long in UTF-8; PostgreSQL identifiers hold at most {MAX_BYTES} bytes "
            "and a longer one would be truncated"
        )
    return None


def require_identifier(name: str, what: str) -> str:
    """``name`` unchanged, or ``ValueError`` (for option validation) saying what is wrong with it."""
    problem = identifier_problem(name)
    if problem:
        raise ValueError(f"{what} {shown(name)} {problem}")
    return name


def check_column_names(names: Iterable[str], where: str) -> None:
    """Every name is a valid identifier and none repeats; ``ConnectorError`` naming the culprits."""
    listed = list(names)
    for name in listed:
        problem = identifier_problem(name)
        if problem:
            raise ConnectorError(f"{where}: column name {shown(name)} {problem}")
    repeated = sorted(name for name, count in Counter(listed).items() if count > 1)
    if repeated:
        raise ConnectorError(
            f"{where}: column name {', '.join(shown(n) for n in repeated)} appears more than once"
        )


def shown(name: str) -> str:
    """A name for messages: bare when it needs no quoting in SQL, double-quoted otherwise."""
    if _PLAIN.match(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def split_qualified(value: str) -> list[str]:
    """Split ``schema.table`` into its parts. Parts may be double-quoted (``"my.schema"."t"``, with
    ``""`` for a quote inside); unquoted parts are taken as written (never folded to lower case)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(value):
        char = value[i]
        if quoted:
            if char == '"':
                if value[i + 1 : i + 2] == '"':
                    current.append('"')
                    i += 1
                else:
                    quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    if quoted:
        raise ValueError(f"table name {value!r} has an unclosed double quote")
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class TableName:
    """A schema-qualified table name, always quoted in SQL."""

    schema: str
    name: str

    @classmethod
    def parse(cls, value: str, default_schema: str) -> TableName:
        """``name`` or ``schema.name`` (see :func:`split_qualified`); ``ValueError`` when malformed."""
        parts = split_qualified(value.strip())
        if len(parts) == 1:
            parts = [default_schema, parts[0]]
        if len(parts) != 2:
            raise ValueError(
                f"table {value!r} has {len(parts)} dot-separated parts; write name or schema.name "
                '(double-quote a part that contains a dot: "my.table")'
            )
        schema, name = parts
        require_identifier(schema, "schema name")
        require_identifier(name, "table name")
        return cls(schema, name)

    @property
    def sql(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def sibling(self, name: str) -> TableName:
        """Another table in the same schema."""
        return TableName(self.schema, name)

    def __str__(self) -> str:
        return f"{shown(self.schema)}.{shown(self.name)}"


def helper_name(kind: str) -> str:
    """A fresh name for one of the connector's own tables (staging, the old table in a swap)."""
    return f"_conduit_{kind}_{uuid.uuid4().hex[:16]}"


def column_list(names: Iterable[str]) -> sql.Composed:
    """``"a", "b", ...`` with every name quoted."""
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)
