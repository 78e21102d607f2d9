"""The postgres source: tables, queries, cursor pushdown, type mapping, batching and errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pyarrow as pa
import pytest
from pg_helpers import Scratch, read, scratch_schema

from conduit.connectors import ReadRequest
from conduit.errors import ConnectorError, DataError
from conduit_postgres.options import PostgresSourceOptions

UTC = dt.UTC


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_schema() as scratch:
        scratch.execute(
            f"CREATE TABLE {scratch.schema}.orders (id bigint, customer text, amount numeric(12,2), "
            "placed_at timestamptz)"
        )
        scratch.execute(
            f"INSERT INTO {scratch.schema}.orders SELECT i, 'c' || (i % 3), i * 1.25, "
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour' FROM generate_series(1, 10) i"
        )
        yield scratch


def test_reads_a_whole_table(pg: Scratch) -> None:
    table, positions = read(pg.source(table="orders"))
    assert table.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("customer", pa.string()),
            ("amount", pa.decimal128(12, 2)),
            ("placed_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    assert table.num_rows == 10
    assert table.column("amount")[3].as_py() == Decimal("5.00")
    assert table.column("placed_at")[0].as_py() == dt.datetime(2024, 1, 1, 1, tzinfo=UTC)
    assert positions[-1] == {"row": 10}


def test_table_with_columns_and_where_equals_the_query(pg: Scratch) -> None:
    from_table, _ = read(pg.source(table="orders", columns=["customer", "id"], where="id % 2 = 0"))
    from_query, _ = read(
        pg.source(query=f"SELECT customer, id FROM {pg.schema}.orders WHERE id % 2 = 0 ORDER BY id;")
    )
    assert from_table.column_names == ["customer", "id"]
    assert sorted(from_table.column("id").to_pylist()) == [2, 4, 6, 8, 10]
    assert from_query.sort_by("id").equals(from_table.sort_by("id"))


def test_cursor_pushdown_returns_the_rows_past_the_value_in_order(pg: Scratch) -> None:
    pg.execute(f"UPDATE {pg.schema}.orders SET id = 11 - id")  # heap order is now descending
    table, positions = read(pg.source(table="orders", cursor_column="id", cursor_after=6), batch_size=2)
    assert table.column("id").to_pylist() == [7, 8, 9, 10]
    assert positions == [{"row": 2, "cursor": 8}, {"row": 4, "cursor": 10}]


def test_cursor_on_a_timestamp_with_a_text_value(pg: Scratch) -> None:
    source = pg.source(
        query=f"SELECT id, placed_at FROM {pg.schema}.orders",
        cursor_column="placed_at",
        cursor_after="2024-01-01 08:00:00+00",
    )
    table, positions = read(source)
    assert table.column("id").to_pylist() == [9, 10]
    assert positions[-1]["cursor"] == "2024-01-01T10:00:00+00:00"


def test_cursor_after_as_yaml_gives_it(pg: Scratch) -> None:
    options = PostgresSourceOptions.model_validate({"table": "t", "cursor_column": "at", "cursor_after": "5"})
    assert options.cursor_after == "5"
    after = dt.datetime(2024, 1, 1, 8, tzinfo=UTC)  # YAML turns an unquoted timestamp into this
    table, _ = read(pg.source(table="orders", cursor_column="placed_at", cursor_after=after))
    assert table.column("id").to_pylist() == [9, 10]
    table, _ = read(pg.source(table="orders", cursor_column="placed_at", cursor_after=dt.date(2024, 1, 1)))
    assert table.num_rows == 10


def test_cursor_value_is_bound_not_spliced(pg: Scratch) -> None:
    source = pg.source(table="orders", cursor_column="customer", cursor_after="c2' OR '1'='1")
    table, _ = read(source)
    assert table.num_rows == 0


def test_cursor_column_must_be_in_the_result(pg: Scratch) -> None:
    with pytest.raises(ConnectorError, match="cursor_column"):
        pg.source(query=f"SELECT id FROM {pg.schema}.orders", cursor_column="placed_at").discover()


def test_option_combinations_are_checked() -> None:
    with pytest.raises(ValueError, match="exactly one of table"):
        PostgresSourceOptions.model_validate({"table": "t", "query": "SELECT 1"})
    with pytest.raises(ValueError, match="columns and where go with table"):
        PostgresSourceOptions.model_validate({"query": "SELECT 1", "where": "true"})
    with pytest.raises(ValueError, match="cursor_after needs cursor_column"):
        PostgresSourceOptions.model_validate({"table": "t", "cursor_after": 3})


def test_type_mapping(pg: Scratch) -> None:
    pg.execute(
        f"""
        CREATE TYPE {pg.schema}.mood AS ENUM ('sad', 'happy');
        CREATE DOMAIN {pg.schema}.money2 AS numeric(10,2);
        CREATE TABLE {pg.schema}.kinds (
            id int, small int2, flag bool, f4 real, f8 double precision,
            exact numeric(38,9), wide numeric(50,2), free numeric, cash {pg.schema}.money2,
            label varchar(20), padded char(3), raw bytea, uid uuid, doc jsonb, plain json,
            day date, at timestamp, atz timestamptz, clock time, span interval, feeling {pg.schema}.mood,
            ints int8[], texts text[], nums numeric(6,2)[], floats float8[], stamps timestamptz[], addr inet
        )"""
    )
    pg.execute(
        f"""INSERT INTO {pg.schema}.kinds VALUES (
            1, -32768, true, 1.5, 'NaN', 12345678901234567890123456789.123456789,
            -123456789012345678901234567890123456789012345678.99, 3.14159265358979323846264338327950288419716939937510,
            12.50, 'x,"y"', 'ab', '\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{"b": [1, 2.5], "a": null}}',
            '{{"keep":  "spacing"}}', '0001-01-01', '2024-02-29 23:59:59.999999', '1969-12-31 23:59:59.000001+00',
            '24:00:00', '1 year 2 months 3 days 04:05:06.5', 'happy',
            ARRAY[1, NULL, 9223372036854775807], ARRAY['a"b', NULL, '', 'c,d'], ARRAY[1.5, NULL],
            ARRAY['NaN', '-Infinity', '-0']::float8[], ARRAY['2024-01-01 00:00:00+00']::timestamptz[], '10.0.0.1/8'
        ), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, '{{}}', NULL, NULL, NULL, NULL)"""
    )
    pg.execute(f"UPDATE {pg.schema}.kinds SET clock = '23:59:59.999999' WHERE id = 1")
    table, _ = read(pg.source(table="kinds"))
    types = {field.name: field.type for field in table.schema}
    assert types == {
        "id": pa.int32(),
        "small": pa.int16(),
        "flag": pa.bool_(),
        "f4": pa.float32(),
        "f8": pa.float64(),
        "exact": pa.decimal128(38, 9),
        "wide": pa.decimal256(50, 2),
        "free": pa.string(),
        "cash": pa.decimal128(10, 2),
        "label": pa.string(),
        "padded": pa.string(),
        "raw": pa.binary(),
        "uid": pa.string(),
        "doc": pa.string(),
        "plain": pa.string(),
        "day": pa.date32(),
        "at": pa.timestamp("us"),
        "atz": pa.timestamp("us", tz="UTC"),
        "clock": pa.time64("us"),
        "span": pa.string(),
        "feeling": pa.string(),
        "ints": pa.list_(pa.int64()),
        "texts": pa.list_(pa.string()),
        "nums": pa.list_(pa.decimal128(6, 2)),
        "floats": pa.list_(pa.float64()),
        "stamps": pa.list_(pa.timestamp("us", tz="UTC")),
        "addr": pa.string(),
    }
    first, second = table.sort_by("id").to_pylist()
    assert first["wide"] == Decimal("-123456789012345678901234567890123456789012345678.99")
    assert first["free"] == "3.14159265358979323846264338327950288419716939937510"
    assert first["exact"] == Decimal("12345678901234567890123456789.123456789")
    assert first["padded"] == "ab "
    assert first["raw"] == b"\x00\xff\x10"
    assert first["uid"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert first["doc"] == '{"a": null, "b": [1, 2.5]}'
    assert first["plain"] == '{"keep":  "spacing"}'
    assert first["day"] == dt.date(1, 1, 1)
    assert first["atz"] == dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC)
    assert first["clock"] == dt.time(23, 59, 59, 999999)
    assert first["span"] == "P1Y2M3DT4H5M6.5S"
    assert first["ints"] == [1, None, 2**63 - 1]
    assert first["texts"] == ['a"b', None, "", "c,d"]
    assert first["nums"] == [Decimal("1.50"), None]
    assert str(first["floats"]) == "[nan, -inf, -0.0]"
    assert first["stamps"] == [dt.datetime(2024, 1, 1, tzinfo=UTC)]
    assert first["addr"] == "10.0.0.1/8"
    assert first["label"] == 'x,"y"'
    assert first["f8"] != first["f8"]  # NaN
    assert second["texts"] == [] and second["ints"] is None
    assert all(value is None for key, value in second.items() if key not in {"id", "texts"})


def test_many_rows_come_in_several_bounded_batches(pg: Scratch) -> None:
    pg.execute(
        f"CREATE TABLE {pg.schema}.big AS SELECT i AS id, md5(i::text) AS digest FROM generate_series(1, 200000) i"
    )
    source = pg.source(table="big", fetch_block_size=64 * 1024)
    schema = source.discover()
    sizes = []
    total = 0
    for item in source.read(ReadRequest("big", schema, 10_000)):
        sizes.append(item.data.num_rows)
        total += item.data.num_rows
        assert item.position == {"row": total}
    source.close()
    assert total == 200_000
    assert len(sizes) > 10 and max(sizes) <= 10_000


def test_stopping_early_releases_the_copy(pg: Scratch) -> None:
    pg.execute(f"CREATE TABLE {pg.schema}.big AS SELECT i AS id FROM generate_series(1, 500000) i")
    source = pg.source(table="big", fetch_block_size=64 * 1024)
    schema = source.discover()
    batches = source.read(ReadRequest("big", schema, 1_000))
    first = next(batches)
    assert first.data.num_rows == 1_000
    batches.close()
    source.close()
    again, _ = read(pg.source(table="big"))
    assert again.num_rows == 500_000


def test_an_empty_result_has_the_schema_and_no_rows(pg: Scratch) -> None:
    table, positions = read(pg.source(table="orders", where="false"))
    assert table.num_rows == 0 and table.column_names == ["id", "customer", "amount", "placed_at"]
    assert positions == []


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"table": "missing"}, 'relation "{schema}.missing" does not exist'),
        ({"table": "orders", "columns": ["nope"]}, 'column "nope" does not exist'),
        ({"table": "orders", "where": "id >"}, "syntax error"),
        ({"query": "SELECT 1 AS a, 2 AS a"}, "more than one column named a"),
    ],
)
def test_bad_tables_columns_and_queries_fail_in_one_line(
    pg: Scratch, options: dict[str, object], expected: str
) -> None:
    source = pg.source(**options)
    with pytest.raises(ConnectorError) as info:
        source.check()
    message = str(info.value)
    assert expected.format(schema=pg.schema) in message
    assert message.startswith("postgres source ") and "\n" not in message


def test_a_value_arrow_cannot_hold_is_a_data_error(pg: Scratch) -> None:
    pg.execute(f"INSERT INTO {pg.schema}.orders VALUES (11, 'x', 1, 'infinity')")
    with pytest.raises(DataError) as info:
        read(pg.source(table="orders"))
    assert "placed_at" in str(info.value) and "infinity" in str(info.value)


def test_a_query_failing_mid_stream_fails_with_the_servers_reason(pg: Scratch) -> None:
    source = pg.source(query=f"SELECT id, 1 / (id - 10) AS boom FROM {pg.schema}.orders")
    with pytest.raises(DataError, match="division by zero"):
        read(source)


def test_table_names_are_parsed_and_quoted() -> None:
    options = PostgresSourceOptions.model_validate({"table": '"my.schema"."Odd ""name"""'})
    assert options.target is not None
    assert (options.target.schema, options.target.name) == ("my.schema", 'Odd "name"')
    with pytest.raises(ValueError, match="3 dot-separated parts"):
        PostgresSourceOptions.model_validate({"table": "a.b.c"})
    with pytest.raises(ValueError, match="63 bytes"):
        PostgresSourceOptions.model_validate({"table": "x" * 64})


# Text-format COPY: every value PostgreSQL escapes must come back exactly as inserted.
TRICKY_TEXT: list[str | None] = [
    "",
    None,
    "\\N",  # the string, not NULL
    "N",
    "NULL",
    "\\",
    "\\\\",
    "a\\",
    "\\n",  # a backslash, then n
    "\\\n",  # a backslash, then a newline
    "\\\\n",
    "\\t\t\\",
    "\\x41",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "tab\tinside",
    "line\nbreak\n",
    "carriage\rreturn",
    "\b\f\v",
    "\x01\x1f\x7f",
    "quotes \"double\" and 'single'",
    "comma, here",
    '",\\\n\t',
    "é 漢字 🎉",
    " padded ",
]


def _insert(pg: Scratch, table: str, rows: list[tuple[object, ...]]) -> None:
    marks = ", ".join(["%s"] * len(rows[0]))
    with pg.connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {pg.schema}.{table} VALUES ({marks})", rows)


def test_text_values_round_trip_exactly(pg: Scratch) -> None:
    pg.execute(f"CREATE TABLE {pg.schema}.tricky (id int, t text, v varchar(40), n name)")
    _insert(pg, "tricky", [(i, value, value, value) for i, value in enumerate(TRICKY_TEXT)])
    table, _ = read(pg.source(table="tricky"), batch_size=5)
    rows = table.sort_by("id").to_pylist()
    assert [row["t"] for row in rows] == TRICKY_TEXT
    assert [row["v"] for row in rows] == TRICKY_TEXT
    assert [row["n"] for row in rows] == TRICKY_TEXT


def test_a_single_text_column_keeps_empty_strings_and_nulls(pg: Scratch) -> None:
    pg.execute(f"CREATE TABLE {pg.schema}.one (t text)")  # each row is a line of its value alone
    _insert(pg, "one", [("",), (None,), ("",), ("\\N",), (None,)])
    table, _ = read(pg.source(table="one"))
    assert table.column("t").to_pylist() == ["", None, "", "\\N", None]


def test_bytea_round_trips_exactly(pg: Scratch) -> None:
    values = [b"", None, b"\x00", b"\\", b"\t", b"\n", b"\x00\\\t\n\r\\N", bytes(range(256)), b"\\x00"]
    pg.execute(f"CREATE TABLE {pg.schema}.blobs (id int, raw bytea)")
    _insert(pg, "blobs", [(i, value) for i, value in enumerate(values)])
    table, _ = read(pg.source(table="blobs"))
    assert table.sort_by("id").column("raw").to_pylist() == values


def test_text_arrays_round_trip_exactly(pg: Scratch) -> None:
    elements = [
        'a"b',
        "back\\slash",
        "new\nline",
        "tab\there",
        "",
        None,
        "\\N",
        "NULL",
        "{}",
        ",",
        '"',
        "\\",
        '\\"\\n',
        "é 🎉",
    ]
    values: list[list[str | None] | None] = [elements, [], None, [None], ["\\\\"], ["\r\n\b\f\v\x01"]]
    pg.execute(f"CREATE TYPE {pg.schema}.mood AS ENUM ('plain', 'tab\there', 'back\\slash', 'quo\"te')")
    pg.execute(
        f"CREATE TABLE {pg.schema}.arrays (id int, texts text[], labels varchar(20)[], moods {pg.schema}.mood[])"
    )
    moods = ["plain", "tab\there", "back\\slash", 'quo"te', None]
    _insert(
        pg,
        "arrays",
        [
            (i, value, value and [v if v is None else v[:20] for v in value], None)
            for i, value in enumerate(values)
        ],
    )
    pg.execute(f"UPDATE {pg.schema}.arrays SET moods = %s::text[]::{pg.schema}.mood[]", (moods,))
    table, _ = read(pg.source(table="arrays"))
    rows = table.sort_by("id").to_pylist()
    assert table.schema.field("moods").type == pa.list_(pa.string())
    assert [row["texts"] for row in rows] == values
    assert [row["labels"] for row in rows] == [
        value and [v if v is None else v[:20] for v in value] for value in values
    ]
    assert all(row["moods"] == moods for row in rows)


def test_json_enums_and_other_text_forms_round_trip_exactly(pg: Scratch) -> None:
    documents = [
        '{"a": "x\\"y\\\\z\\n\\t", "b": "\\u00e9\\u0000", "c": "\\\\N"}',
        '{\n\t"k": [1, "\\\\", null],\r\n "e": ""\n}',
        "[]",
        '"\\\\"',
        None,
    ]
    pg.execute(f"CREATE TYPE {pg.schema}.pair AS (a text, b text)")
    pg.execute(f"CREATE TYPE {pg.schema}.label AS ENUM ('plain', 'tab\there', 'back\\slash')")
    pg.execute(
        f"CREATE TABLE {pg.schema}.docs (id int, plain json, doc jsonb, label {pg.schema}.label, "
        f"pair {pg.schema}.pair, texts2d text)"
    )
    labels = ["tab\there", "back\\slash", "plain", None, "plain"]
    _insert(
        pg,
        "docs",
        [
            (i, document, document.replace("\\u0000", "") if document else None, label, None, None)
            for i, (document, label) in enumerate(zip(documents, labels, strict=True))
        ],
    )
    pg.execute(
        f"UPDATE {pg.schema}.docs SET pair = ROW(E'x\"y\\\\z', E'new\\nline,\\ttab'), "
        "texts2d = ARRAY[ARRAY['a\"b', E'c\\\\d'], ARRAY[E'\\n', NULL]]::text WHERE id = 0"
    )
    expected = pg.query(
        f"SELECT id, plain::text, doc::text, label::text, pair::text, texts2d FROM {pg.schema}.docs ORDER BY id"
    )
    table, _ = read(pg.source(table="docs"))
    rows = table.sort_by("id").to_pylist()
    assert [tuple(row.values()) for row in rows] == expected
    assert [row["plain"] for row in rows] == documents
    assert [row["label"] for row in rows] == labels
    assert rows[0]["pair"] == '("x""y\\\\z","new\nline,\ttab")'


def test_escaped_values_across_many_blocks(pg: Scratch) -> None:
    pg.execute(
        f"CREATE TABLE {pg.schema}.many AS SELECT i AS id, "
        "CASE WHEN i % 11 = 0 THEN NULL WHEN i % 13 = 0 THEN '' "
        "ELSE repeat(E'\\\\', i % 5) || E'\\t' || i || CASE WHEN i % 7 = 0 THEN E'\\n\\\\N' ELSE '' END END AS t, "
        "decode(lpad(to_hex(i % 256), 2, '0'), 'hex') AS raw "
        "FROM generate_series(1, 30000) i"
    )
    expected = pg.query(f"SELECT id, t, raw FROM {pg.schema}.many ORDER BY id")
    table, _ = read(pg.source(table="many", fetch_block_size=16 * 1024), batch_size=1_000)
    got = [(row["id"], row["t"], row["raw"]) for row in table.sort_by("id").to_pylist()]
    assert got == [(i, t, bytes(raw)) for i, t, raw in expected]


def test_a_result_without_columns_is_refused(pg: Scratch) -> None:
    with pytest.raises(ConnectorError, match="no columns"):
        pg.source(query=f"SELECT FROM {pg.schema}.orders").discover()


def test_a_bad_bytea_value_names_the_prefix_as_written() -> None:
    from conduit_postgres.hexbytes import HexError
    from conduit_postgres.source import _bytea

    assert _bytea(pa.array(["\\\\x00ff", None, "\\\\x"])).to_pylist() == [b"\x00\xff", None, b""]
    with pytest.raises(HexError, match=r"expected \\x<hex digits>") as info:
        _bytea(pa.array(["\\\\x00", "\\x00"]))
    assert info.value.row == 1 and "\\\\x" not in str(info.value)
