"""The conformance kit run against the built-in connectors, as any connector package runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conduit.testing import RoundTripTests


class TestParquetFile(RoundTripTests):
    source_type = "parquet"
    destination_type = "parquet"

    @pytest.fixture
    def destination_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": "out/golden.parquet"}

    @pytest.fixture
    def source_options(self) -> dict[str, Any]:
        return {"path": "out/golden.parquet"}

    @pytest.fixture
    def append_destination_options(self) -> dict[str, Any]:
        return {"path": "out/parts", "row_group_size": 2}

    @pytest.fixture
    def append_source_options(self) -> dict[str, Any]:
        return {"path": "out/parts"}

    @pytest.fixture
    def broken_source_options(self, tmp_path: Path) -> dict[str, Any]:
        (tmp_path / "not.parquet").write_text("this is not parquet")
        return {"path": "not.parquet"}

    @pytest.fixture
    def broken_destination_options(self, tmp_path: Path) -> dict[str, Any]:
        (tmp_path / "a-file").write_text("x")
        return {"path": "a-file/below/golden.parquet"}


class TestParquetDirectory(TestParquetFile):
    @pytest.fixture
    def destination_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": "out/dataset", "max_rows_per_file": 4, "row_group_size": 2}

    @pytest.fixture
    def source_options(self) -> dict[str, Any]:
        return {"path": "out/dataset"}


class TestJsonLines(RoundTripTests):
    source_type = "jsonl"
    destination_type = "jsonl"

    @pytest.fixture
    def destination_options(self) -> dict[str, Any]:
        return {"path": "out/golden.jsonl"}

    @pytest.fixture
    def source_options(self) -> dict[str, Any]:
        return {"path": "out/golden.jsonl"}

    @pytest.fixture
    def broken_source_options(self) -> dict[str, Any]:
        return {"path": "missing/*.jsonl"}

    @pytest.fixture
    def broken_destination_options(self, tmp_path: Path) -> dict[str, Any]:
        (tmp_path / "a-file").write_text("x")
        return {"path": "a-file/golden.jsonl"}


class TestJsonLinesCompressed(TestJsonLines):
    @pytest.fixture
    def destination_options(self) -> dict[str, Any]:
        return {"path": "out/golden.jsonl.gz"}

    @pytest.fixture
    def source_options(self) -> dict[str, Any]:
        return {"path": "out/golden.jsonl.gz"}
