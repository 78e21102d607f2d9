"""The docs' examples are real files that load, and the docs quote them exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

from conduit.config import load_flow
from conduit.config.flow import load_project
from conduit.plugins import load_registry

EXAMPLES = REPO / "docs" / "examples"
INLINE_DOCS = [REPO / "README.md"]
INLINE = [
    pytest.param(block, id=f"{path.name}-{index}")
    for path in INLINE_DOCS
    for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S))
    if "entities:" in block
]
QUOTED = re.findall(
    r"```yaml\n# (docs/examples/\S+)(.*?)```", (REPO / "docs" / "config.md").read_text(), re.S
)


def test_docs_have_examples() -> None:
    assert INLINE and len(QUOTED) >= 6


@pytest.mark.parametrize("block", INLINE)
def test_inline_example_validates(block: str, tmp_path: Path) -> None:
    path = tmp_path / "ingest.yml"
    path.write_text(block)
    assert load_flow(path, load_registry()).entities


@pytest.mark.parametrize(("relative", "body"), QUOTED, ids=[q[0] for q in QUOTED])
def test_config_md_quotes_the_example_files_exactly(relative: str, body: str) -> None:
    assert (REPO / relative).read_text() == f"# {relative}{body}"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_example_project_loads_in_every_env(env: str) -> None:
    project = load_project(EXAMPLES, load_registry(), env=env, environ={})
    assert [flow.name for flow in project.flows] == ["entity_files", "flow_dir", "one_file"]
    assert all(set(flow.entities) == {"customers", "orders"} for flow in project.flows)
