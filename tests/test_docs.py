"""The YAML examples in the docs load and validate, so the docs cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

from conduit.config import load_flow
from conduit.plugins import load_registry

DOCS = [REPO / "README.md", REPO / "docs" / "config.md"]
BLOCKS = [
    pytest.param(block, id=f"{path.name}-{index}")
    for path in DOCS
    for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S))
    if "entities:" in block
]


def test_docs_have_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS)
def test_doc_example_validates(block: str, tmp_path: Path) -> None:
    path = tmp_path / "ingest.yml"
    path.write_text(block)
    flow = load_flow(path, load_registry())
    assert flow.entities
