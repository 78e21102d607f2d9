"""Schema evolution at the postgres destination, against the real server: the planned DDL, running it
inside a load (append, replace, merge) or on its own with the state, and rolling it back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from pg_helpers import DSN, Scratch, read, scratch_schema
from psycopg2 import sql

from conduit.connectors import StateKey, WriteMode, WriteRequest
from conduit.errors import ConnectorError
from conduit.schema import ColumnChange, diff_schemas, evolved
from conduit_postgres import PostgresDestination
from conduit_postgres.evolution import column_holds, text_widening
from conduit_postgres.types import MAX_LENGTH, PgType, field_max_length

PASSWORD = "s3cr3t-pw"  # trust auth ignores it; it must never show in a message

KEY = StateKey("", "t")


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_schema() as scratch:
        yield scratch


def q(*names: str) -> str:
    """Names quoted and dotted as the plan spells them."""
    return ".".join('"' + name.replace('"', '""') + '"' for name in names)


def create(pg: Scratch, table: str, columns: str) -> None:
    pg.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(pg.schema, table), sql.SQL(columns)))


def plan(
    destination: PostgresDestination, incoming: pa.Schema, *, timestamptz: bool = False
) -> tuple[pa.Schema, tuple[ColumnChange, ...], list[str]]:
    """What the engine does for a table loaded before schemas were recorded: diff the table's schema
    with the incoming one, evolve it by every change, plan the DDL."""
    current = destination.current_schema()
    assert current is not None
    diff = diff_schemas(current, incoming, timestamptz=timestamptz)
    target = evolved(current, diff.changes)
    return target, diff.changes, destination.plan_schema_changes(target, diff.changes)


def columns(pg: Scratch, table: str) -> list[tuple[str, str]]:
    """``(name, format_type)`` of the table's columns, in order."""
    rows = pg.query(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (q(pg.schema, table),),
    )
    return [(str(name), str(kind)) for name, kind in rows]


def state_of(pg: Scratch, entity: str = "t") -> Any:
    rows = pg.query(f"SELECT state FROM {pg.schema}._conduit_state WHERE entity = %s", (entity,))
    return rows[0][0] if rows else None


def helper_tables(pg: Scratch) -> list[str]:
    return [t for t in pg.tables() if t.startswith("_conduit_") and t != "_conduit_state"]


def load(
    destination: PostgresDestination,
    data: pa.Table,
    mode: WriteMode,
    ddl: Sequence[str],
    *,
    state: dict[str, Any] | None = None,
) -> None:
    """A load as the engine runs one with schema changes: open, apply, write, commit."""
    with destination.open(WriteRequest("t", data.schema, mode, "evolve")) as session:
        session.apply_schema_changes(ddl)
        for batch in data.to_batches(max_chunksize=2):
            session.write(batch)
        session.commit(state or {"loaded": data.num_rows})
        session.committed = True


# -- capabilities and the plan -----------------------------------------------------------------


def test_capabilities_declare_added_columns_and_widenings() -> None:
    assert PostgresDestination.capabilities.schema_changes == frozenset({"add_column", "widen_type"})


def test_added_columns_get_the_created_tables_types_and_every_name_is_quoted(pg: Scratch) -> None:
    table = 'Weird "T"'
    create(pg, table, "id bigint")
    destination = pg.destination(table)
    incoming = pa.schema(
        [
            ("id", pa.int64()),
            ("new col", pa.int64()),
            ('quote"d', pa.decimal128(12, 2)),
            ("select", pa.string()),
            ("ünï", pa.timestamp("s", tz="Europe/Paris")),
            ("semi;colon", pa.list_(pa.int32())),
            ("Mixed", pa.int8()),
        ]
    )
    target, changes, planned = plan(destination, incoming)
    t = q(pg.schema, table)
    assert planned == [
        f'ALTER TABLE {t} ADD COLUMN "new col" bigint',
        f'ALTER TABLE {t} ADD COLUMN "quote""d" numeric(12,2)',
        f'ALTER TABLE {t} ADD COLUMN "select" text',
        f'ALTER TABLE {t} ADD COLUMN "ünï" timestamp with time zone',
        f'ALTER TABLE {t} ADD COLUMN "semi;colon" jsonb',
        f'ALTER TABLE {t} ADD COLUMN "Mixed" smallint',
    ]
    assert destination.plan_schema_changes(target, changes) == planned  # the same text every time
    destination.apply_schema_changes(KEY, planned, {"v": 2})
    assert destination.current_schema() == destination.stored_schema(target)
    assert destination.plan_schema_changes(target, changes) == []  # made: nothing left to do


def test_widenings_alter_the_type_with_a_cast_and_keep_the_values(pg: Scratch) -> None:
    create(
        pg,
        "m",
        "a integer, b integer, c numeric(10,2), d integer, e real, f timestamp, g bigint, h text",
    )
    pg.execute(
        f"INSERT INTO {pg.schema}.m VALUES (2147483647, -5, 12345678.91, 7, 0.5, '2024-01-02 03:04:05', 1, 'x')"
    )
    # the server's TimeZone must not move the timestamps: naive values are taken as UTC
    destination = pg.destination("m", options="-c TimeZone=America/New_York")
    incoming = pa.schema(
        [
            ("a", pa.int64()),  # int -> bigint
            ("b", pa.decimal128(12, 2)),  # int -> numeric
            ("c", pa.decimal128(14, 4)),  # numeric precision and scale up
            ("d", pa.float64()),  # int -> double precision
            ("e", pa.float64()),  # real -> double precision
            ("f", pa.timestamp("us", tz="UTC")),  # timestamp -> timestamptz (when allowed)
            ("g", pa.int32()),  # fits bigint: no statement
        ]  # h is removed: no statement, it stays
    )
    target, changes, planned = plan(destination, incoming, timestamptz=True)
    assert [(c.column, c.kind, c.compatibility) for c in changes] == [
        ("a", "type_changed", "widening"),
        ("b", "type_changed", "widening"),
        ("c", "type_changed", "widening"),
        ("d", "type_changed", "widening"),
        ("e", "type_changed", "widening"),
        ("f", "type_changed", "widening"),
        ("g", "type_changed", "fits"),
        ("h", "removed", None),
    ]
    m = q(pg.schema, "m")
    assert planned == [
        f'ALTER TABLE {m} ALTER COLUMN "a" TYPE bigint USING "a"::bigint',
        f'ALTER TABLE {m} ALTER COLUMN "b" TYPE numeric(12,2) USING "b"::numeric(12,2)',
        f'ALTER TABLE {m} ALTER COLUMN "c" TYPE numeric(14,4) USING "c"::numeric(14,4)',
        f'ALTER TABLE {m} ALTER COLUMN "d" TYPE double precision USING "d"::double precision',
        f'ALTER TABLE {m} ALTER COLUMN "e" TYPE double precision USING "e"::double precision',
        f'ALTER TABLE {m} ALTER COLUMN "f" TYPE timestamp with time zone USING "f" AT TIME ZONE \'UTC\'',
    ]
    destination.apply_schema_changes(KEY, planned, {"schema": "v2"})
    assert destination.current_schema() == pa.schema(
        [
            ("a", pa.int64()),
            ("b", pa.decimal128(12, 2)),
            ("c", pa.decimal128(14, 4)),
            ("d", pa.float64()),
            ("e", pa.float64()),
            ("f", pa.timestamp("us", tz="UTC")),
            ("g", pa.int64()),
            ("h", pa.string()),
        ]
    )
    assert destination.current_schema() == destination.stored_schema(target)
    assert pg.query(f"SELECT a, b, c, d, e, f AT TIME ZONE 'UTC', g, h FROM {pg.schema}.m") == [
        (
            2147483647,
            Decimal("-5.00"),
            Decimal("12345678.9100"),
            7.0,
            0.5,
            dt.datetime(2024, 1, 2, 3, 4, 5),
            1,
            "x",
        )
    ]
    assert state_of(pg) == {"schema": "v2"}


def test_a_widening_is_checked_against_the_table_and_never_narrows(pg: Scratch) -> None:
    create(
        pg,
        "k",
        "a bigint, b numeric(30,10), c numeric, d text, e integer, f real, g varchar(3), deleted boolean",
    )
    destination = pg.destination("k", primary_key=["a"], hard_delete="flag")

    def widening(column: str, current: pa.DataType, widened: pa.DataType) -> ColumnChange:
        return ColumnChange("type_changed", column, current, widened, "widening", widened)

    changes = [
        widening("a", pa.int32(), pa.int64()),  # already bigint
        widening("b", pa.decimal128(10, 2), pa.decimal128(12, 2)),  # numeric(30,10) is wider
        widening("c", pa.int32(), pa.decimal128(20, 2)),  # unconstrained numeric holds it
        widening("d", pa.string(), pa.large_string()),  # text holds it
        ColumnChange("added", "e", None, pa.int64()),  # the table has it: the load fits into it
        widening("z", pa.int32(), pa.int64()),  # not in the table: added, wide
        ColumnChange("added", "flag", None, pa.bool_()),  # merge's hard_delete flag is never stored
        ColumnChange("type_changed", "f", pa.float32(), pa.string(), "incompatible"),
        ColumnChange("type_changed", "e", pa.int32(), pa.int16(), "fits"),
        ColumnChange("removed", "deleted", pa.bool_(), None),
        widening("g", pa.string(), pa.string()),  # varchar(3) does not hold every string
    ]
    k = q(pg.schema, "k")
    assert destination.plan_schema_changes(pa.schema([]), changes) == [
        f'ALTER TABLE {k} ADD COLUMN "z" bigint',
        f'ALTER TABLE {k} ALTER COLUMN "g" TYPE text USING "g"::text',
    ]
    assert pg.destination("missing").plan_schema_changes(pa.schema([]), changes) == []


def test_column_holds() -> None:
    integer = PgType("int4", -1, "N", "integer")
    assert column_holds(integer, pa.int16()) and column_holds(integer, pa.int32())
    assert not column_holds(integer, pa.int64()) and not column_holds(integer, pa.float64())
    numeric = PgType("numeric", ((12 << 16) | 2) + 4, "N", "numeric(12,2)")
    assert column_holds(numeric, pa.decimal128(12, 2)) and column_holds(numeric, pa.decimal128(5, 1))
    assert not column_holds(numeric, pa.decimal128(12, 4)) and not column_holds(numeric, pa.int64())
    assert column_holds(PgType("timestamptz", -1, "D", "timestamp with time zone"), pa.timestamp("ms", "UTC"))
    assert not column_holds(PgType("varchar", 9, "S", "character varying(5)"), pa.string())


def test_a_plan_refuses_a_column_name_postgresql_would_truncate(pg: Scratch) -> None:
    create(pg, "people", "id bigint")
    change = ColumnChange("added", "x" * 64, None, pa.int64())
    with pytest.raises(ConnectorError, match="63 bytes"):
        pg.destination("people").plan_schema_changes(pa.schema([]), [change])


# -- inside a load ------------------------------------------------------------------------------


def people_table(pg: Scratch) -> PostgresDestination:
    """``people (id bigint PRIMARY KEY, amount integer, name text)`` with an index and two rows."""
    create(pg, "people", "id bigint PRIMARY KEY, amount integer, name text DEFAULT 'n'")
    pg.execute(f"CREATE INDEX people_name_idx ON {pg.schema}.people (name)")
    pg.execute(f"INSERT INTO {pg.schema}.people VALUES (1, 10, 'a'), (2, 20, 'b')")
    return pg.destination("people", primary_key=["id"], password=PASSWORD)


EVOLVED = pa.schema(
    [("id", pa.int64()), ("amount", pa.int64()), ("name", pa.string()), ("score", pa.float64())]
)


def evolve_people(destination: PostgresDestination) -> tuple[pa.Schema, list[str]]:
    target, _, planned = plan(destination, EVOLVED)
    assert target == EVOLVED
    return target, planned


def new_rows(target: pa.Schema) -> pa.Table:
    return pa.table(
        {
            "id": [2, 3, 4],
            "amount": [2**40, 30, None],
            "name": ["B", "c", "d"],
            "score": [2.5, None, 4.0],
        },
        schema=target,
    )


def test_the_people_plan(pg: Scratch) -> None:
    _, planned = evolve_people(people_table(pg))
    t = q(pg.schema, "people")
    assert planned == [
        f'ALTER TABLE {t} ALTER COLUMN "amount" TYPE bigint USING "amount"::bigint',
        f'ALTER TABLE {t} ADD COLUMN "score" double precision',
    ]


def test_append_applies_the_changes_then_loads_into_the_evolved_table(pg: Scratch) -> None:
    destination = people_table(pg)
    target, planned = evolve_people(destination)
    load(destination, new_rows(target).filter(pa.array([False, True, True])), "append", planned)
    assert pg.rows("people") == [
        (1, 10, "a", None),
        (2, 20, "b", None),
        (3, 30, "c", None),
        (4, None, "d", 4.0),
    ]
    assert destination.current_schema() == EVOLVED
    load(
        destination,
        pa.table({"id": [5], "amount": [2**40], "name": ["e"], "score": [1.0]}, EVOLVED),
        "append",
        [],
    )
    data, _ = read(pg.source(table="people", where="id >= 4"))
    assert data.schema == EVOLVED
    assert data.to_pylist() == [
        {"id": 4, "amount": None, "name": "d", "score": 4.0},
        {"id": 5, "amount": 2**40, "name": "e", "score": 1.0},
    ]
    assert state_of(pg) == {"loaded": 1}
    assert helper_tables(pg) == []


def test_replace_applies_the_changes_to_the_table_then_swaps_in_the_evolved_copy(pg: Scratch) -> None:
    destination = people_table(pg)
    target, planned = evolve_people(destination)
    load(destination, new_rows(target), "replace", planned)
    assert pg.rows("people") == [(2, 2**40, "B", 2.5), (3, 30, "c", None), (4, None, "d", 4.0)]
    assert columns(pg, "people") == [
        ("id", "bigint"),
        ("amount", "bigint"),
        ("name", "text"),
        ("score", "double precision"),
    ]
    # the data has exactly the evolved table's columns: the staging table was made LIKE it
    indexes = pg.query(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s ORDER BY 1",
        (pg.schema, "people"),
    )
    assert [row[0] for row in indexes] == ["people_name_idx", "people_pkey"]
    assert pg.query(
        f"SELECT column_default FROM information_schema.columns WHERE table_schema = '{pg.schema}' AND table_name = 'people' AND column_name = 'name'"
    ) == [("'n'::text",)]
    assert destination.current_schema() == EVOLVED
    assert helper_tables(pg) == []


def test_merge_applies_the_changes_then_upserts_into_the_evolved_table(pg: Scratch) -> None:
    destination = people_table(pg)
    target, planned = evolve_people(destination)
    load(destination, new_rows(target), "merge", planned)
    assert pg.rows("people") == [
        (1, 10, "a", None),
        (2, 2**40, "B", 2.5),
        (3, 30, "c", None),
        (4, None, "d", 4.0),
    ]
    assert destination.current_schema() == EVOLVED
    assert helper_tables(pg) == []


def test_merge_with_a_hard_delete_flag_plans_no_column_for_it(pg: Scratch) -> None:
    destination = pg.destination("people", primary_key=["id"], hard_delete="gone")
    create(pg, "people", "id bigint PRIMARY KEY, amount integer")
    pg.execute(f"INSERT INTO {pg.schema}.people VALUES (1, 10), (2, 20)")
    incoming = pa.schema([("id", pa.int64()), ("amount", pa.int64()), ("gone", pa.bool_())])
    target, _, planned = plan(destination, incoming)
    assert planned == [
        f'ALTER TABLE {q(pg.schema, "people")} ALTER COLUMN "amount" TYPE bigint USING "amount"::bigint'
    ]
    data = pa.table({"id": [1, 3], "amount": [2**40, 3], "gone": [True, False]}, schema=target)
    load(destination, data, "merge", planned)
    assert pg.rows("people") == [(2, 20), (3, 3)]
    assert columns(pg, "people") == [("id", "bigint"), ("amount", "bigint")]


@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
@pytest.mark.parametrize("written", [True, False])
def test_an_aborted_load_rolls_back_the_changes_with_the_data(
    pg: Scratch, mode: WriteMode, written: bool
) -> None:
    destination = people_table(pg)
    destination.write_state(KEY, {"before": True})
    before = columns(pg, "people")
    target, planned = evolve_people(destination)
    with pytest.raises(RuntimeError):
        with destination.open(WriteRequest("t", target, mode, "aborted")) as session:
            session.apply_schema_changes(planned)
            if written:
                session.write(new_rows(target).to_batches()[0])
            raise RuntimeError("the source failed mid-load")
    assert columns(pg, "people") == before
    assert pg.rows("people") == [(1, 10, "a"), (2, 20, "b")]
    assert state_of(pg) == {"before": True}
    assert helper_tables(pg) == []


def test_a_failing_statement_in_a_load_names_it_and_rolls_everything_back(pg: Scratch) -> None:
    destination = people_table(pg)
    pg.execute(f"CREATE VIEW {pg.schema}.amounts AS SELECT amount FROM {pg.schema}.people")
    before = columns(pg, "people")
    target, planned = evolve_people(destination)
    session = destination.open(WriteRequest("t", target, "append", "failing"))
    with pytest.raises(ConnectorError) as caught:
        session.apply_schema_changes(list(reversed(planned)))  # the ADD COLUMN runs, then the ALTER fails
    message = str(caught.value)
    assert type(caught.value) is ConnectorError
    assert planned[0] in message and "view" in message and "nothing was changed" in message
    assert "\n" not in message and PASSWORD not in message and DSN not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(ConnectorError, match="session is over"):
        session.write(new_rows(target).to_batches()[0])
    session.abort()
    assert columns(pg, "people") == before
    assert pg.rows("people") == [(1, 10, "a"), (2, 20, "b")]


def test_schema_changes_come_before_the_first_write(pg: Scratch) -> None:
    destination = people_table(pg)
    target, planned = evolve_people(destination)
    data = pa.table({"id": [9], "amount": [9], "name": ["z"]})
    with destination.open(WriteRequest("t", data.schema, "append", "late")) as session:
        session.apply_schema_changes([])  # nothing to run: nothing started
        session.write(data.to_batches()[0])
        with pytest.raises(ConnectorError, match="before the first write"):
            session.apply_schema_changes(planned)
        session.commit({})
        session.committed = True
    with pytest.raises(ConnectorError, match="session is over"):
        session.apply_schema_changes(planned)
    assert columns(pg, "people") == [("id", "bigint"), ("amount", "integer"), ("name", "text")]
    assert pg.count("people") == 3


def test_an_empty_load_still_applies_and_commits_the_changes(pg: Scratch) -> None:
    destination = people_table(pg)
    target, planned = evolve_people(destination)
    load(
        destination, pa.table({n: [] for n in target.names}, schema=target), "append", planned, state={"v": 2}
    )
    assert destination.current_schema() == EVOLVED
    assert state_of(pg) == {"v": 2}


# -- outside a load ---------------------------------------------------------------------------


def test_applying_outside_a_load_commits_the_ddl_with_the_state(pg: Scratch) -> None:
    destination = people_table(pg)
    destination.write_state(KEY, {"schema": 1})
    _, planned = evolve_people(destination)
    destination.apply_schema_changes(KEY, planned, {"schema": 2})
    assert destination.read_state(KEY) == {"schema": 2}
    assert destination.current_schema() == EVOLVED
    assert pg.rows("people") == [(1, 10, "a", None), (2, 20, "b", None)]
    destination.apply_schema_changes(KEY, [], None)  # no statements: the state alone (None deletes)
    assert destination.read_state(KEY) is None


def test_a_failing_statement_outside_a_load_leaves_ddl_and_state_as_they_were(pg: Scratch) -> None:
    destination = people_table(pg)
    destination.write_state(KEY, {"schema": 1})
    pg.execute(f"CREATE VIEW {pg.schema}.amounts AS SELECT amount FROM {pg.schema}.people")
    before = columns(pg, "people")
    _, planned = evolve_people(destination)
    with pytest.raises(ConnectorError) as caught:
        destination.apply_schema_changes(KEY, list(reversed(planned)), {"schema": 2})
    message = str(caught.value)
    assert planned[0] in message and "\n" not in message and PASSWORD not in message
    assert destination.read_state(KEY) == {"schema": 1}
    assert columns(pg, "people") == before


def test_applying_outside_a_load_with_a_bad_state_runs_no_statement(pg: Scratch) -> None:
    destination = people_table(pg)
    before = columns(pg, "people")
    _, planned = evolve_people(destination)
    with pytest.raises(ConnectorError, match="cannot store the state"):
        destination.apply_schema_changes(KEY, planned, {"x": float("nan")})
    assert columns(pg, "people") == before


# -- varchar(n) and char(n) ---------------------------------------------------------------------


def test_length_limited_text_columns_report_their_limit(pg: Scratch) -> None:
    create(pg, "codes", "id bigint, code varchar(5), flag char(3), note text, free varchar")
    destination = pg.destination("codes")
    current = destination.current_schema()
    assert current is not None
    assert current == pa.schema(
        [
            ("id", pa.int64()),
            ("code", pa.string()),
            ("flag", pa.string()),
            ("note", pa.string()),
            ("free", pa.string()),
        ]
    )  # types alone: metadata does not count
    assert current.field("code").metadata == {MAX_LENGTH: b"5"}
    assert current.field("flag").metadata == {MAX_LENGTH: b"3"}
    assert [field_max_length(f) for f in current] == [None, 5, 3, None, None]
    incoming = pa.schema(
        [("id", pa.int64()), ("code", pa.string()), ("flag", pa.string()), ("note", pa.large_string())]
    )
    assert [c.kind for c in diff_schemas(current, destination.stored_schema(incoming)).changes] == ["removed"]

    changes = [change for f in current if (change := text_widening(f)) is not None]
    assert [c.column for c in changes] == ["code", "flag"]
    target = evolved(current, changes)
    planned = destination.plan_schema_changes(target, changes)
    codes = q(pg.schema, "codes")
    assert planned == [
        f'ALTER TABLE {codes} ALTER COLUMN "code" TYPE text USING "code"::text',
        f'ALTER TABLE {codes} ALTER COLUMN "flag" TYPE text USING "flag"::text',
    ]
    long = pa.table(
        {"id": [1], "code": ["much longer than five"], "flag": ["four"], "note": ["n"], "free": ["f"]},
        schema=target,
    )
    load(destination, long, "append", planned)
    after = destination.current_schema()
    assert after is not None and [field_max_length(f) for f in after] == [None] * 5
    assert pg.rows("codes") == [(1, "much longer than five", "four", "n", "f")]
    assert text_widening(after.field("code")) is None
