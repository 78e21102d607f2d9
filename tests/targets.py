"""One destination of a test matrix, Parquet directory or PostgreSQL table: its YAML, and what it holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from exactly_once import PG_DSN, Scratch, scratch_schema


class Target:
    """``out/<table>`` (Parquet parts) or ``<scratch schema>.<table>`` (PostgreSQL)."""

    def __init__(self, kind: str, tmp: Path, pg: Scratch | None, table: str) -> None:
        self.kind, self.tmp, self.pg, self.table = kind, tmp, pg, table

    @property
    def yaml(self) -> str:
        if self.kind == "parquet":
            return f"{{type: parquet, options: {{path: out/{self.table}}}}}"
        assert self.pg is not None
        return (
            f"{{type: postgres, options: {{dsn: '{PG_DSN}', schema: {self.pg.schema}, table: {self.table}}}}}"
        )

    def _parts(self) -> list[Path]:
        directory = self.tmp / "out" / self.table
        return (
            sorted(directory.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns)
            if directory.exists()
            else []
        )

    def rows(self) -> list[dict[str, Any]]:
        """Every row, by id; Parquet parts read with the newest part's schema."""
        if self.kind == "parquet":
            parts = self._parts()
            if not parts:
                return []
            schema = pq.read_schema(parts[-1])
            table = ds.dataset([str(p) for p in parts], schema=schema, format="parquet").to_table()
            return sorted(table.to_pylist(), key=lambda r: r["id"])
        assert self.pg is not None
        name = f'"{self.pg.schema}"."{self.table}"'
        if not self.pg.query("SELECT to_regclass(%s) IS NOT NULL", (name,))[0][0]:
            return []
        with self.pg.connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {name} ORDER BY id")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def ids(self) -> list[int]:
        return [row["id"] for row in self.rows()]

    def column_type(self, column: str) -> str | None:
        """The column's type as the target names it (Arrow for Parquet, PostgreSQL's format_type)."""
        if self.kind == "parquet":
            schema = pq.read_schema(self._parts()[-1])
            if column not in schema.names:
                return None
            dtype = schema.field(column).type
            return f"decimal({dtype.precision},{dtype.scale})" if pa.types.is_decimal(dtype) else str(dtype)
        assert self.pg is not None
        found = self.pg.query(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped",
            (f'"{self.pg.schema}"."{self.table}"', column),
        )
        return found[0][0] if found else None


def open_target(kind: str, tmp: Path, table: str) -> Iterator[Target]:
    """For a parametrised fixture: the target, with a scratch PostgreSQL schema dropped afterwards."""
    if kind == "postgres":
        for pg in scratch_schema():
            yield Target("postgres", tmp, pg, table)
    else:
        yield Target("parquet", tmp, None, table)
