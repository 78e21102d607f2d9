"""The conformance kit from conduit-core, run against the csv source and destination."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conduit.testing import RoundTripTests


class TestCsvContract(RoundTripTests):
    source_type = "csv"
    destination_type = "csv"

    @pytest.fixture
    def destination_options(self) -> dict[str, Any]:
        return {"path": "out/golden.csv"}

    @pytest.fixture
    def source_options(self) -> dict[str, Any]:
        return {"path": "out/golden.csv"}

    @pytest.fixture
    def broken_source_options(self) -> dict[str, Any]:
        return {"path": "missing/*.csv"}

    @pytest.fixture
    def broken_destination_options(self, tmp_path: Path) -> dict[str, Any]:
        (tmp_path / "a-file").write_text("x")
        return {"path": "a-file/golden.csv"}


class TestCsvContractCompressed(TestCsvContract):
    @pytest.fixture
    def destination_options(self) -> dict[str, Any]:
        return {"path": "out/golden.csv.zst"}

    @pytest.fixture
    def source_options(self) -> dict[str, Any]:
        return {"path": "out/golden.csv.zst"}
