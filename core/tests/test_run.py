"""The run loop: streaming, checks, the schema-policy hook, failure atomicity, progress output."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conduit import hookimpl
from conduit.config import load_flow
from conduit.plugins import Registered, Registry, load_registry
from conduit.progress import TerminalProgress, summary
from conduit.run import _read_ahead, run_flow
from conduit.schema import SchemaDecision, SchemaDiff


@pytest.fixture
def registry() -> Registry:
    return load_registry()


def _jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _flow(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "ingest.yml"
    path.write_text("version: 1\nentities:\n" + body)
    return path


APPEND = """\
  events:
    source: {type: jsonl, options: {path: events.jsonl}}
    destination: {type: parquet, options: {path: out/events}}
    mode: append
"""


def test_append_then_append_again_doubles(tmp_path: Path, registry: Registry) -> None:
    _jsonl(tmp_path / "events.jsonl", [{"id": i, "kind": "x"} for i in range(5)])
    flow = load_flow(_flow(tmp_path, APPEND), registry)
    assert run_flow(flow, registry).status == "success"
    assert run_flow(flow, registry).status == "success"
    assert pq.read_table(tmp_path / "out" / "events").num_rows == 10


def test_default_policy_refuses_a_changed_schema_before_writing(tmp_path: Path, registry: Registry) -> None:
    _jsonl(tmp_path / "events.jsonl", [{"id": i, "kind": "x"} for i in range(5)])
    flow = load_flow(_flow(tmp_path, APPEND), registry)
    run_flow(flow, registry)
    _jsonl(tmp_path / "events.jsonl", [{"id": 9, "kind": "y", "extra": 1.5}])
    result = run_flow(flow, registry)
    entity = result.entities[0]
    assert result.status == "failed"
    assert "new column 'extra' (decimal(18,1))" in (entity.error or "")  # 1.5: inferred exactly
    assert pq.read_table(tmp_path / "out" / "events").num_rows == 5  # nothing written


class AllowAdditions:
    """A third-party schema policy: let new columns through, refuse anything else."""

    @hookimpl
    def conduit_schema_policy(self, entity: str, diff: SchemaDiff) -> SchemaDecision | None:
        if all(change.kind == "added" for change in diff.changes):
            return SchemaDecision(proceed=True, reason="additions are fine")
        return None


def test_a_plugin_policy_overrides_the_default(tmp_path: Path, registry: Registry) -> None:
    registry.pm.register(AllowAdditions(), name="allow-additions")
    _jsonl(tmp_path / "events.jsonl", [{"id": 1, "kind": "x"}])
    flow = load_flow(_flow(tmp_path, APPEND), registry)
    run_flow(flow, registry)
    _jsonl(tmp_path / "events.jsonl", [{"id": 2, "kind": "y", "extra": 1.5}])
    assert run_flow(flow, registry).status == "success"
    _jsonl(tmp_path / "events.jsonl", [{"id": "three", "kind": "z"}])  # a type change: default refuses
    result = run_flow(flow, registry)
    assert result.status == "failed" and "changes type from int64 to string" in (
        result.entities[0].error or ""
    )


def test_column_order_alone_is_not_a_change(tmp_path: Path, registry: Registry) -> None:
    _jsonl(tmp_path / "events.jsonl", [{"id": 1, "kind": "x"}])
    flow = load_flow(_flow(tmp_path, APPEND), registry)
    run_flow(flow, registry)
    _jsonl(tmp_path / "events.jsonl", [{"kind": "y", "id": 2}])
    assert run_flow(flow, registry).status == "success"
    table = pq.read_table(tmp_path / "out" / "events")
    assert sorted(table.column("id").to_pylist()) == [1, 2]


CHECKED = """\
  people:
    source: {type: jsonl, options: {path: people.jsonl}}
    destination: {type: parquet, options: {path: out/people.parquet}}
    batch_size: 2
    checks:
      - not_null: {columns: [email], action: ACTION}
"""


def test_failing_check_stops_the_entity_and_leaves_no_output(tmp_path: Path, registry: Registry) -> None:
    _jsonl(
        tmp_path / "people.jsonl",
        [{"id": 1, "email": "a@x"}, {"id": 2, "email": "b@x"}, {"id": 3, "email": None}],
    )
    flow = load_flow(_flow(tmp_path, CHECKED.replace("ACTION", "fail")), registry)
    result = run_flow(flow, registry)
    error = result.entities[0].error or ""
    assert result.status == "failed"
    assert "people.jsonl, row 3: check not_null(email) failed" in error and "'id': 3" in error
    assert not (tmp_path / "out" / "people.parquet").exists()
    assert not list((tmp_path / "out").glob(".*"))  # no temp file left behind


def test_warning_check_loads_and_reports(tmp_path: Path, registry: Registry) -> None:
    _jsonl(
        tmp_path / "people.jsonl",
        [{"id": 1, "email": None}, {"id": 2, "email": "b@x"}, {"id": 3, "email": None}],
    )
    flow = load_flow(_flow(tmp_path, CHECKED.replace("ACTION", "warn")), registry)
    entity = run_flow(flow, registry).entities[0]
    assert entity.status == "success" and entity.rows_loaded == 3
    assert entity.checks[0].rows_failed == 2 and entity.checks[0].rows_evaluated == 3
    assert "2 of 3 rows failed" in entity.warnings[0] and "row 1" in entity.warnings[0]


def test_check_on_a_missing_column_is_reported(tmp_path: Path, registry: Registry) -> None:
    _jsonl(tmp_path / "people.jsonl", [{"id": 1}])
    flow = load_flow(_flow(tmp_path, CHECKED.replace("ACTION", "fail")), registry)
    error = run_flow(flow, registry).entities[0].error or ""
    assert "names columns the source does not have: email" in error


def test_one_failing_entity_does_not_stop_the_others(tmp_path: Path, registry: Registry) -> None:
    _jsonl(tmp_path / "good.jsonl", [{"a": 1}])
    body = (
        "  broken:\n    source: {type: jsonl, options: {path: missing.jsonl}}\n"
        "    destination: {type: parquet, options: {path: out/broken.parquet}}\n"
        "  good:\n    source: {type: jsonl, options: {path: good.jsonl}}\n"
        "    destination: {type: parquet, options: {path: out/good.parquet}}\n"
    )
    result = run_flow(load_flow(_flow(tmp_path, body), registry), registry)
    assert result.status == "partial"
    assert [e.status for e in result.entities] == ["failed", "success"]
    assert "file not found" in (result.entities[0].error or "")
    only = run_flow(load_flow(_flow(tmp_path, body), registry), registry, entities=["good"])
    assert [e.name for e in only.entities] == ["good"]


def test_read_ahead_passes_batches_in_order_and_reraises_source_errors() -> None:
    def numbers() -> Iterator[int]:
        yield from range(50)
        raise ValueError("source broke at 50")

    seen = []
    with pytest.raises(ValueError, match="source broke at 50"):
        for item in _read_ahead(numbers(), 2):  # type: ignore[arg-type]
            seen.append(item)
    assert seen == list(range(50))


def test_read_ahead_stops_the_producer_when_the_consumer_fails() -> None:
    closed = []

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)

    with pytest.raises(RuntimeError):
        for item in _read_ahead(endless(), 2):  # type: ignore[arg-type]
            if item == 10:
                raise RuntimeError("writer failed")
    assert closed == [True]


def test_progress_plain_lines_and_live_line(tmp_path: Path, registry: Registry) -> None:
    _jsonl(tmp_path / "good.jsonl", [{"a": i} for i in range(10)])
    body = (
        "  good:\n    source: {type: jsonl, options: {path: good.jsonl}}\n"
        "    destination: {type: parquet, options: {path: out/good.parquet}}\n"
    )
    flow = load_flow(_flow(tmp_path, body), registry)
    plain = io.StringIO()
    result = run_flow(flow, registry, listener=TerminalProgress(plain, live=False))
    assert plain.getvalue().splitlines()[0] == "[good] started: jsonl -> parquet (mode replace)"
    assert plain.getvalue().splitlines()[-1].startswith("[good] done: 10 rows in ")
    assert "\r" not in plain.getvalue()
    live = io.StringIO()
    progress = TerminalProgress(live, live=True)
    progress.progress("good", 5_000, 2.0)
    assert "\r\x1b[K[good] 5,000 rows  2,500 rows/s  2.0s" in live.getvalue()
    table = summary(result)
    assert "good" in table and "success" in table and "jsonl -> parquet (replace)" in table
    assert table.splitlines()[-1].startswith(f"run {result.run_id}: success (1 entity, 10 rows,")


def test_a_connector_bug_is_one_line_not_a_traceback(tmp_path: Path, registry: Registry) -> None:
    from conduit import ReadRequest, Source, SourceBatch

    class Liar(Source):
        def discover(self) -> pa.Schema:
            return pa.schema([("a", pa.int64())])

        def read(self, request: ReadRequest) -> Iterator[SourceBatch]:
            yield SourceBatch(pa.record_batch([pa.array(["x"])], names=["a"]))

    registry.sources["liar"] = Registered("liar", Liar, "liar-plugin", "test")
    body = (
        "  lies:\n    source: {type: liar}\n"
        "    destination: {type: parquet, options: {path: out/lies.parquet}}\n"
    )
    result = run_flow(load_flow(_flow(tmp_path, body), registry), registry)
    error = result.entities[0].error or ""
    assert "yielded a batch whose schema differs from the one it discovered" in error
    assert not (tmp_path / "out" / "lies.parquet").exists()


def test_the_engine_closes_the_destination_after_success_and_failure(
    tmp_path: Path, registry: Registry
) -> None:
    from conduit.builtins.parquet import ParquetDestination

    closed: list[str] = []

    class Recording(ParquetDestination):
        def close(self) -> None:
            closed.append(self.options.path)

    registry.destinations["recording"] = Registered("recording", Recording, "recording-plugin", "test")
    _jsonl(tmp_path / "events.jsonl", [{"id": i} for i in range(3)])
    (tmp_path / "bad.jsonl").write_text("not json\n")
    body = (
        "  good:\n    source: {type: jsonl, options: {path: events.jsonl}}\n"
        "    destination: {type: recording, options: {path: out/good.parquet}}\n"
        "  bad:\n    source: {type: jsonl, options: {path: bad.jsonl}}\n"
        "    destination: {type: recording, options: {path: out/bad.parquet}}\n"
    )
    flow = load_flow(_flow(tmp_path, body), registry)
    closed.clear()  # loading builds each destination once to learn its target (and closes it)
    result = run_flow(flow, registry)
    assert [e.status for e in result.entities] == ["success", "failed"]
    assert [Path(p).name for p in closed] == ["good.parquet", "bad.parquet"]
