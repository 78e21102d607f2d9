"""What the system catalog says: relations, their columns and types, unique indexes, privileges.

Every name is passed as a bound parameter; nothing here builds SQL from names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg2.extensions import cursor as Cursor

from conduit_postgres.identifiers import TableName
from conduit_postgres.types import PgType

TABLE_KINDS = frozenset({"r", "p"})
_KIND_NAMES = {
    "v": "a view",
    "m": "a materialized view",
    "f": "a foreign table",
    "S": "a sequence",
    "i": "an index",
    "I": "an index",
    "c": "a composite type",
    "t": "a TOAST table",
}


@dataclass(frozen=True)
class Relation:
    oid: int
    kind: str

    @property
    def is_table(self) -> bool:
        return self.kind in TABLE_KINDS

    def describe_kind(self) -> str:
        return _KIND_NAMES.get(self.kind, f"a relation of kind {self.kind!r}")


@dataclass(frozen=True)
class Column:
    name: str
    type: PgType
    not_null: bool = False
    generated: bool = False


@dataclass(frozen=True)
class Table:
    """A table's columns in order (dropped columns left out)."""

    name: TableName
    oid: int
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def schema_exists(cursor: Cursor, schema: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,))
    return cursor.fetchone() is not None


def find_relation(cursor: Cursor, name: TableName) -> Relation | None:
    cursor.execute(
        "SELECT c.oid, c.relkind FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (name.schema, name.name),
    )
    row = cursor.fetchone()
    return None if row is None else Relation(int(row[0]), str(row[1]))


def describe_table(cursor: Cursor, name: TableName, oid: int) -> Table:
    cursor.execute(
        "SELECT attname, atttypid, atttypmod, attnotnull, attgenerated <> '' "
        "FROM pg_catalog.pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        (oid,),
    )
    rows = cursor.fetchall()
    types = resolve_types(cursor, [(int(r[1]), int(r[2])) for r in rows])
    columns = tuple(Column(str(r[0]), pg, bool(r[3]), bool(r[4])) for r, pg in zip(rows, types, strict=True))
    return Table(name, oid, columns)


@dataclass(frozen=True)
class _TypeRow:
    name: str
    kind: str
    category: str
    element: int
    base: int
    base_typmod: int


def _type_rows(cursor: Cursor, oids: set[int]) -> dict[int, _TypeRow]:
    rows: dict[int, _TypeRow] = {}
    tried = set(oids)
    wanted = set(oids)
    while wanted:  # then the base types of domains and the element types of arrays, and theirs
        cursor.execute(
            "SELECT oid, typname, typtype, typcategory, typelem, typbasetype, typtypmod "
            "FROM pg_catalog.pg_type WHERE oid = ANY(%s::oid[])",
            (sorted(wanted),),
        )
        for oid, name, kind, category, element, base, base_typmod in cursor.fetchall():
            rows[int(oid)] = _TypeRow(
                str(name), str(kind), str(category), int(element), int(base), int(base_typmod)
            )
        wanted = {ref for row in rows.values() for ref in (row.element, row.base) if ref} - tried
        tried |= wanted
    return rows


def resolve_types(cursor: Cursor, columns: Sequence[tuple[int, int]]) -> list[PgType]:
    """The :class:`PgType` of each ``(type oid, typmod)``, domains resolved to their base types."""
    if not columns:
        return []
    cursor.execute(
        "SELECT pg_catalog.format_type(o, m) FROM unnest(%s::oid[], %s::int4[]) WITH ORDINALITY AS u(o, m, n) "
        "ORDER BY n",
        ([c[0] for c in columns], [c[1] for c in columns]),
    )
    displays = [str(row[0]) for row in cursor.fetchall()]
    rows = _type_rows(cursor, {c[0] for c in columns})

    def build(oid: int, typmod: int, display: str) -> PgType:
        row = rows.get(oid)
        if row is None:
            return PgType("unknown", typmod, "X", display)
        for _ in range(32):  # a domain over a domain...: follow to the base type
            if row.kind != "d" or row.base not in rows:
                break
            typmod = typmod if typmod >= 0 else row.base_typmod
            row = rows[row.base]
        element = None
        if row.category == "A" and row.element in rows:
            element = build(row.element, typmod, display)
        return PgType(row.name, typmod, row.category, display, element)

    return [build(oid, typmod, display) for (oid, typmod), display in zip(columns, displays, strict=True)]


def unique_keys(cursor: Cursor, oid: int) -> list[set[str]]:
    """The column sets of the table's valid, immediate unique indexes (usable by ON CONFLICT)."""
    cursor.execute(
        "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) AS k(attnum) "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) "
        "FROM pg_catalog.pg_index i WHERE i.indrelid = %s AND i.indisunique AND i.indisvalid "
        "AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL",
        (oid,),
    )
    return [set(row[0]) for row in cursor.fetchall()]


def can_insert(cursor: Cursor, oid: int) -> bool:
    cursor.execute("SELECT pg_catalog.has_table_privilege(%s::oid, 'INSERT')", (oid,))
    row = cursor.fetchone()
    return bool(row and row[0])


def owns(cursor: Cursor, oid: int) -> bool:
    """The user may rename and drop the relation (replace swaps tables)."""
    cursor.execute(
        "SELECT pg_catalog.pg_has_role(relowner, 'USAGE') FROM pg_catalog.pg_class WHERE oid = %s", (oid,)
    )
    row = cursor.fetchone()
    return bool(row and row[0])


def can_create_in_schema(cursor: Cursor, schema: str) -> bool:
    cursor.execute("SELECT pg_catalog.has_schema_privilege(%s, 'CREATE')", (schema,))
    row = cursor.fetchone()
    return bool(row and row[0])


def can_create_schema(cursor: Cursor) -> bool:
    cursor.execute("SELECT pg_catalog.has_database_privilege(current_database(), 'CREATE')")
    row = cursor.fetchone()
    return bool(row and row[0])


def helper_relations(cursor: Cursor, schema: str, prefix: str) -> list[tuple[str, str]]:
    """``(name, relkind)`` of indexes and sequences in ``schema`` whose names start with ``prefix``."""
    cursor.execute(
        "SELECT c.relname, c.relkind FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('i', 'S') AND left(c.relname, %s) = %s",
        (schema, len(prefix), prefix),
    )
    return [(str(row[0]), str(row[1])) for row in cursor.fetchall()]


def owned_sequences(cursor: Cursor, oid: int) -> list[tuple[str, str]]:
    """``(sequence, column)`` of the sequences owned by the table's columns (``serial``)."""
    cursor.execute(
        "SELECT s.relname, a.attname FROM pg_catalog.pg_depend d "
        "JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
        "WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass "
        "AND d.refobjid = %s AND d.deptype = 'a'",
        (oid,),
    )
    return [(str(row[0]), str(row[1])) for row in cursor.fetchall()]
