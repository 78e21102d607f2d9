"""The conformance kit from conduit-core, run against the postgres source and destination."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_helpers import DSN, Scratch, scratch_schema

from conduit.errors import ConduitError
from conduit.plugins import Registry
from conduit.testing import RoundTripTests, build_destination

PASSWORD = "s3cr3t-Pa55word"


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_schema() as scratch:
        yield scratch


class TestPostgresContract(RoundTripTests):
    source_type = "postgres"
    destination_type = "postgres"

    @pytest.fixture
    def destination_options(self, pg: Scratch) -> dict[str, Any]:
        return {"dsn": DSN, "table": pg.table("golden")}

    @pytest.fixture
    def source_options(self, pg: Scratch) -> dict[str, Any]:
        return {"dsn": DSN, "table": pg.table("golden")}

    @pytest.fixture
    def broken_source_options(self, pg: Scratch) -> dict[str, Any]:
        return {"dsn": DSN, "table": pg.table("missing")}

    @pytest.fixture
    def broken_destination_options(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": 1,
            "user": "loader",
            "password": PASSWORD,
            "dbname": "test",
            "table": "golden",
            "connect_retries": 1,
            "connect_backoff": 0,
        }

    def test_unreachable_destination_names_the_endpoint_not_the_password(
        self, registry: Registry, tmp_path: Path, broken_destination_options: dict[str, Any]
    ) -> None:
        destination = build_destination(registry, "postgres", broken_destination_options, tmp_path)
        with pytest.raises(ConduitError) as info:
            destination.check()
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith("cannot connect to PostgreSQL at 127.0.0.1:1 (test): ")
        assert PASSWORD not in message

    def test_missing_source_table_is_named(
        self, registry: Registry, tmp_path: Path, pg: Scratch, broken_source_options: dict[str, Any]
    ) -> None:
        from conduit.testing import build_source

        source = build_source(registry, "postgres", broken_source_options, tmp_path)
        with pytest.raises(ConduitError) as info:
            source.check()
        assert f"{pg.schema}.missing" in str(info.value)
        assert "does not exist" in str(info.value)
