"""``RoundTripTests``: a destination writes the golden table, a source reads it back, values must match."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from conduit.connectors import (
    ConnectorOptions,
    Destination,
    ReadRequest,
    Source,
    StateKey,
    WriteMode,
    WriteRequest,
)
from conduit.errors import ConduitError
from conduit.plugins import Registry, load_registry
from conduit.testing.golden import assert_tables_equal, golden_table
from conduit.types import type_name


def build_source(registry: Registry, type_name_: str, options: dict[str, Any], base_dir: Path) -> Source:
    """A source instance exactly as the engine builds one: registry lookup plus option validation."""
    cls = registry.source(type_name_)
    validated = cls.options_model.model_validate(options, context={"base_dir": str(base_dir)})
    return cls(validated)


def build_destination(
    registry: Registry, type_name_: str, options: dict[str, Any], base_dir: Path
) -> Destination:
    cls = registry.destination(type_name_)
    validated = cls.options_model.model_validate(options, context={"base_dir": str(base_dir)})
    return cls(validated)


def write_all(
    destination: Destination,
    table: pa.Table,
    *,
    mode: WriteMode = "replace",
    run_id: str = "kit",
    batch_rows: int = 3,
) -> None:
    """Write ``table`` through one load session in batches of ``batch_rows``, then commit."""
    with destination.open(WriteRequest("golden", table.schema, mode, run_id)) as session:
        for batch in table.to_batches(max_chunksize=batch_rows):
            session.write(batch)
        session.commit({"run_id": run_id, "entity": "golden", "rows": table.num_rows})
        session.committed = True


def read_all(source: Source, batch_size: int = 65_536) -> pa.Table:
    """Discover then read everything; every batch must have exactly the discovered schema."""
    schema = source.discover()
    batches = []
    for item in source.read(ReadRequest("golden", schema, batch_size)):
        assert item.data.schema.equals(schema), (
            f"batch schema {item.data.schema} differs from the discovered schema {schema}"
        )
        batches.append(item.data)
    source.close()
    return pa.Table.from_batches(batches, schema=schema)


def _assert_fails_readably(check: Callable[[], None]) -> None:
    with pytest.raises(ConduitError) as info:
        check()
    message = str(info.value)
    assert message.strip(), "the error message is empty"
    assert "Traceback" not in message and "\n" not in message.strip(), f"not one line: {message!r}"


class RoundTripTests:
    """Contract tests for a source/destination pair that can read back what the destination wrote.

    Subclasses set ``source_type`` and ``destination_type`` and provide the fixtures
    ``destination_options``, ``source_options`` (reading what the destination wrote),
    ``broken_source_options`` and ``broken_destination_options`` (whose ``check()`` must fail).
    ``append_destination_options`` defaults to ``destination_options``; override it when appending
    needs a different target (a directory of parts).
    """

    source_type: ClassVar[str]
    destination_type: ClassVar[str]

    @pytest.fixture
    def registry(self) -> Registry:
        return load_registry()

    @pytest.fixture
    def append_destination_options(self, destination_options: dict[str, Any]) -> dict[str, Any]:
        return destination_options

    @pytest.fixture
    def append_source_options(self, source_options: dict[str, Any]) -> dict[str, Any]:
        return source_options

    # -- helpers ------------------------------------------------------------------------------

    def _source_options(
        self, registry: Registry, options: dict[str, Any], schema: pa.Schema
    ) -> dict[str, Any]:
        """Declare the column types when neither side keeps them (text formats)."""
        source_cls = registry.source(self.source_type)
        destination_cls = registry.destination(self.destination_type)
        keeps_types = source_cls.capabilities.typed and destination_cls.capabilities.preserves_types
        if keeps_types or not source_cls.capabilities.declared_columns or "columns" in options:
            return options
        return {**options, "columns": {f.name: type_name(f.type) for f in schema}}

    def _read(self, registry: Registry, options: dict[str, Any], schema: pa.Schema, base: Path) -> pa.Table:
        return read_all(
            build_source(registry, self.source_type, self._source_options(registry, options, schema), base)
        )

    def _skip_unless_mode(self, registry: Registry, mode: WriteMode) -> None:
        modes = registry.destination(self.destination_type).capabilities.write_modes
        if mode not in modes:
            pytest.skip(f"destination {self.destination_type!r} does not declare write mode {mode!r}")

    # -- the contract ---------------------------------------------------------------------------

    def test_types_are_registered(self, registry: Registry) -> None:
        source_cls = registry.source(self.source_type)
        destination_cls = registry.destination(self.destination_type)
        assert issubclass(source_cls.options_model, ConnectorOptions)
        assert issubclass(destination_cls.options_model, ConnectorOptions)
        assert destination_cls.capabilities.default_mode in destination_cls.capabilities.write_modes

    def test_golden_round_trip(
        self,
        registry: Registry,
        tmp_path: Path,
        destination_options: dict[str, Any],
        source_options: dict[str, Any],
    ) -> None:
        golden = golden_table()
        write_all(build_destination(registry, self.destination_type, destination_options, tmp_path), golden)
        assert_tables_equal(golden, self._read(registry, source_options, golden.schema, tmp_path))

    def test_one_destination_serves_several_sessions_then_closes(
        self,
        registry: Registry,
        tmp_path: Path,
        destination_options: dict[str, Any],
        source_options: dict[str, Any],
    ) -> None:
        """As the engine uses it: preflight, sessions one after another (checkpoints), ``close()``
        once at the end; closing again does no harm, and what was committed stays."""
        golden = golden_table()
        destination = build_destination(registry, self.destination_type, destination_options, tmp_path)
        destination.check()
        write_all(destination, golden.slice(0, 2), run_id="first")
        write_all(destination, golden, run_id="second")
        destination.close()
        destination.close()
        assert_tables_equal(golden, self._read(registry, source_options, golden.schema, tmp_path))

    def test_empty_input(
        self,
        registry: Registry,
        tmp_path: Path,
        destination_options: dict[str, Any],
        source_options: dict[str, Any],
    ) -> None:
        empty = golden_table().slice(0, 0)
        write_all(build_destination(registry, self.destination_type, destination_options, tmp_path), empty)
        back = self._read(registry, source_options, empty.schema, tmp_path)
        assert back.num_rows == 0
        assert back.column_names == empty.column_names

    def test_discover(
        self,
        registry: Registry,
        tmp_path: Path,
        destination_options: dict[str, Any],
        source_options: dict[str, Any],
    ) -> None:
        golden = golden_table()
        write_all(build_destination(registry, self.destination_type, destination_options, tmp_path), golden)
        options = self._source_options(registry, source_options, golden.schema)
        schema = build_source(registry, self.source_type, options, tmp_path).discover()
        assert schema.names == golden.schema.names
        assert [f.type for f in schema] == [f.type for f in golden.schema]

    def test_source_check_fails_readably(
        self, registry: Registry, tmp_path: Path, broken_source_options: dict[str, Any]
    ) -> None:
        _assert_fails_readably(
            build_source(registry, self.source_type, broken_source_options, tmp_path).check
        )

    def test_destination_check_fails_readably(
        self, registry: Registry, tmp_path: Path, broken_destination_options: dict[str, Any]
    ) -> None:
        destination = build_destination(registry, self.destination_type, broken_destination_options, tmp_path)
        _assert_fails_readably(destination.check)

    def test_abort_leaves_target_as_it_was(
        self,
        registry: Registry,
        tmp_path: Path,
        destination_options: dict[str, Any],
        source_options: dict[str, Any],
    ) -> None:
        capabilities = registry.destination(self.destination_type).capabilities
        if not capabilities.atomic:
            pytest.skip(f"destination {self.destination_type!r} does not declare atomic=True")
        golden = golden_table()
        destination = build_destination(registry, self.destination_type, destination_options, tmp_path)
        write_all(destination, golden)
        with destination.open(
            WriteRequest("golden", golden.schema, capabilities.default_mode, "aborted")
        ) as session:
            session.write(golden.to_batches()[0])
            session.abort()
        assert_tables_equal(golden, self._read(registry, source_options, golden.schema, tmp_path))
        leftovers = [p.name for p in tmp_path.rglob("*") if "aborted" in p.name]
        assert not leftovers, f"abort left files behind: {leftovers}"

    def test_replace_leaves_only_new_data(
        self,
        registry: Registry,
        tmp_path: Path,
        destination_options: dict[str, Any],
        source_options: dict[str, Any],
    ) -> None:
        self._skip_unless_mode(registry, "replace")
        golden = golden_table()
        destination = build_destination(registry, self.destination_type, destination_options, tmp_path)
        write_all(destination, golden, mode="replace", run_id="first")
        newer = golden.slice(2, 3)
        write_all(destination, newer, mode="replace", run_id="second")
        assert_tables_equal(newer, self._read(registry, source_options, golden.schema, tmp_path))

    def test_state_is_kept_per_flow_and_entity(
        self, registry: Registry, tmp_path: Path, append_destination_options: dict[str, Any]
    ) -> None:
        """Two flows with an entity of one name loading into one target share no state and no lock
        (for a destination that stores state and appends)."""
        capabilities = registry.destination(self.destination_type).capabilities
        if not capabilities.stores_state:
            pytest.skip(f"destination {self.destination_type!r} does not store state")
        self._skip_unless_mode(registry, "append")
        golden = golden_table()
        destination = build_destination(registry, self.destination_type, append_destination_options, tmp_path)
        first, second = StateKey("first", "golden"), StateKey("second", "golden")
        for key in (first, second):
            request = WriteRequest(key.entity, golden.schema, "append", f"run-{key.flow}", flow=key.flow)
            with destination.open(request) as session:
                session.write(golden.to_batches()[0])
                session.commit({"entity": key.entity, "flow": key.flow})
                session.committed = True
        assert (destination.read_state(first) or {}).get("flow") == "first"
        assert (destination.read_state(second) or {}).get("flow") == "second"
        assert destination.read_state(StateKey("third", "golden")) is None
        with destination.lock(first), destination.lock(second):
            with pytest.raises(ConduitError):
                with destination.lock(first):
                    pytest.fail(f"{first} was locked twice")
        destination.write_state(second, None)
        assert destination.read_state(second) is None
        assert (destination.read_state(first) or {}).get("flow") == "first"
        destination.close()

    def test_append_twice_doubles(
        self,
        registry: Registry,
        tmp_path: Path,
        append_destination_options: dict[str, Any],
        append_source_options: dict[str, Any],
    ) -> None:
        self._skip_unless_mode(registry, "append")
        golden = golden_table()
        destination = build_destination(registry, self.destination_type, append_destination_options, tmp_path)
        write_all(destination, golden, mode="append", run_id="first")
        write_all(destination, golden, mode="append", run_id="second")
        back = self._read(registry, append_source_options, golden.schema, tmp_path)
        assert back.num_rows == 2 * golden.num_rows
        assert sorted(back.column("id").to_pylist()) == sorted(golden.column("id").to_pylist() * 2)
