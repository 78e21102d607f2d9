"""What an entity *is*: state, locks, part files and dead-letter queues belong to the target together
with the flow and the entity (never to an entity name that another flow can also use), and a commit
whose acknowledgement is lost is settled from the committed state. The real CLI, real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from exactly_once import PG_DSN, Scratch, make_rows, scratch_schema, write_csv
from pgproxy import proxy_to


@pytest.fixture
def pg() -> Iterator[Scratch]:
    yield from scratch_schema()


def _pg_entity(name: str, source: str, schema: str, table: str, *, dsn: str = PG_DSN, extra: str = "") -> str:
    return (
        f"  {name}:\n"
        f"    source: {{type: csv, options: {{path: {source!r}, columns: "
        '{id: int64, name: string, amount: int64, updated_at: "timestamp[us, UTC]"}}}\n'
        f"    destination: {{type: postgres, options: {{dsn: {dsn!r}, schema: {schema}, table: {table}}}}}\n"
        "    mode: append\n"
        "    incremental: {cursor: updated_at}\n"
        f"{extra}"
    )


def _count(pg: Scratch, table: str) -> int:
    ((count,),) = pg.query(f'SELECT count(*) FROM "{pg.schema}"."{table}"')
    return int(count)


def _state_rows(pg: Scratch) -> list[tuple[str, str, str]]:
    return [
        (str(target), str(flow), str(entity))
        for target, flow, entity in pg.query(
            f'SELECT target, flow, entity FROM "{pg.schema}"._conduit_state ORDER BY 1, 2, 3'
        )
    ]


# -- defect 1: state is per target, flow and entity -------------------------------------------------


def test_two_flows_with_an_entity_of_one_name_share_no_state(tmp_path: Path, pg: Scratch) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    for flow in ("sales", "billing"):
        write_csv(tmp_path / flow / "orders.csv", make_rows(1, 300, seed=len(flow)))
        (flows / f"{flow}.yml").write_text(
            "version: 1\nentities:\n"
            + _pg_entity("orders", f"{flow}/orders.csv", pg.schema, f"{flow}_orders")
        )
    first = run_cli("run", flows / "sales.yml", "-q", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_cli("run", flows / "billing.yml", "-q", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    # before: billing read sales' watermark and loaded nothing, with exit 0
    assert (_count(pg, "sales_orders"), _count(pg, "billing_orders")) == (300, 300)
    assert _state_rows(pg) == [("billing_orders", "billing", "orders"), ("sales_orders", "sales", "orders")]

    reset = run_cli("state", "reset", "orders", "--flow", flows / "billing.yml", "--yes", cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert _state_rows(pg) == [("sales_orders", "sales", "orders")]  # sales' state untouched
    again = run_cli("run", tmp_path, "-q", cwd=tmp_path)  # the project: both flows
    assert again.returncode == 0, again.stderr
    assert _count(pg, "sales_orders") == 300  # nothing reloaded
    assert _count(pg, "billing_orders") == 600  # reset: billing reloads (as asked)


def test_a_state_table_keyed_by_entity_alone_is_migrated_and_its_rows_taken_over(
    tmp_path: Path, pg: Scratch
) -> None:
    rows = make_rows(1, 200, seed=3)
    write_csv(tmp_path / "in" / "a.csv", rows)
    flow = tmp_path / "ingest.yml"
    flow.write_text("version: 1\nentities:\n" + _pg_entity("events", "in/*.csv", pg.schema, "events"))
    assert run_cli("run", flow, "-q", cwd=tmp_path).returncode == 0
    ((state,),) = pg.query(f'SELECT state FROM "{pg.schema}"._conduit_state')
    # the table as versions before flow-and-target keys left it
    pg.query(
        f'DROP TABLE "{pg.schema}"._conduit_state; '
        f'CREATE TABLE "{pg.schema}"._conduit_state (entity text PRIMARY KEY, state jsonb NOT NULL, '
        "run_id text, updated_at timestamptz NOT NULL DEFAULT now()); "
        f"INSERT INTO \"{pg.schema}\"._conduit_state (entity, state) VALUES ('events', %s) RETURNING 1",
        (json.dumps(state),),
    )
    shown = run_cli("state", "show", "events", "--flow", flow, cwd=tmp_path)
    assert shown.returncode == 0 and "watermark" in shown.stdout, shown.stdout + shown.stderr
    write_csv(tmp_path / "in" / "b.csv", make_rows(201, 50, seed=4))
    again = run_cli("run", flow, "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert _count(pg, "events") == 250  # the old watermark was honoured: only the new rows
    assert _state_rows(pg) == [("events", tmp_path.name, "events")]  # the old row was taken over


# -- defect 2: two entities appending into one Parquet directory ------------------------------------


def test_two_entities_appending_into_one_parquet_directory_keep_each_others_parts(tmp_path: Path) -> None:
    write_csv(tmp_path / "eu.csv", make_rows(1, 100, seed=1))
    write_csv(tmp_path / "us.csv", make_rows(1001, 70, seed=2))
    columns = '{id: int64, name: string, amount: int64, updated_at: "timestamp[us, UTC]"}'
    entities = "".join(
        f"  {name}:\n"
        f"    source: {{type: csv, options: {{path: {name}.csv, columns: {columns}}}}}\n"
        "    destination: {type: parquet, options: {path: out/orders, layout: directory}}\n"
        "    mode: append\n"
        for name in ("eu", "us")
    )
    flow = tmp_path / "ingest.yml"
    flow.write_text("version: 1\nentities:\n" + entities)
    result = run_cli("run", flow, "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    parts = sorted((tmp_path / "out" / "orders").glob("*.parquet"))
    ids = sorted(i for part in parts for i in pq.read_table(part).column("id").to_pylist())
    assert ids == list(range(1, 101)) + list(range(1001, 1071))  # before: the second renamed over the first


# -- defect 4: a commit whose acknowledgement is lost -----------------------------------------------


def test_a_commit_whose_acknowledgement_is_lost_keeps_its_rejected_rows(tmp_path: Path, pg: Scratch) -> None:
    (tmp_path / "in").mkdir()
    lines = ["id,name,amount,updated_at"]
    lines += [f"{i},n{i},{i},2026-01-01T00:00:{i:02d}+00:00" for i in range(1, 41)]
    lines[7] = "7,n7,not-a-number,2026-01-01T00:00:07+00:00"
    (tmp_path / "in" / "a.csv").write_text("\n".join(lines) + "\n")
    with proxy_to("127.0.0.1", 5432) as proxy:
        proxied = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?sslmode=disable"
        flow = tmp_path / "ingest.yml"
        entity = _pg_entity(
            "events", "in/*.csv", pg.schema, "events", dsn=proxied, extra="    on_error: dlq\n"
        )
        flow.write_text("version: 1\nentities:\n" + entity)
        cut = run_cli("run", flow, "-q", cwd=tmp_path)
        assert proxy.cuts == 1, cut.stderr
    assert cut.returncode == 1, cut.stderr
    assert "Traceback" not in cut.stderr
    assert _count(pg, "events") == 39  # the server committed
    pending = list((tmp_path / ".conduit" / "dlq").rglob("*.pending"))
    assert len(pending) == 1, "the rejected row's part must stay for the next run to settle"

    flow.write_text("version: 1\nentities:\n" + entity.replace(proxied, PG_DSN))
    settled = run_cli("run", flow, "-q", cwd=tmp_path)
    assert settled.returncode == 0, settled.stderr
    assert _count(pg, "events") == 39  # nothing loaded twice
    assert not list((tmp_path / ".conduit" / "dlq").rglob("*.pending"))
    shown = run_cli("dlq", "show", "events", "--flow", flow, "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    records = json.loads(shown.stdout)
    assert [(r["row"], r["reason"]) for r in records] == [(7, "not_a_number")]  # before: gone


# -- defect 8: names that map to one file name ------------------------------------------------------


def test_entities_whose_names_differ_only_in_unsafe_characters_keep_separate_queues(tmp_path: Path) -> None:
    names = ["sales eu", "sales_eu", "a/b", "a_b"]
    entities = ""
    for number, name in enumerate(names):
        bad = 10 + number
        lines = ["id,amount"] + [f"{i},{'x' if i == bad else i}" for i in range(1, 21)]
        (tmp_path / f"in{number}.csv").write_text("\n".join(lines) + "\n")
        entities += (
            f"  {json.dumps(name)}:\n"
            f"    source: {{type: csv, options: {{path: in{number}.csv, columns: {{id: int64, amount: int64}}}}}}\n"
            f"    destination: {{type: parquet, options: {{path: out/{number}.parquet}}}}\n"
            "    on_error: dlq\n"
        )
    flow = tmp_path / "ingest.yml"
    flow.write_text("version: 1\nentities:\n" + entities)
    result = run_cli("run", flow, "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for number, name in enumerate(names):
        shown = run_cli("dlq", "show", name, "--flow", flow, "--json", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        records = json.loads(shown.stdout)
        assert [(r["entity"], r["row"]) for r in records] == [(name, 10 + number)], name
