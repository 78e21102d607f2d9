"""Flow layouts on disk (``conduit.config.layouts``): a config file that is a symlink leading nowhere
is an error naming it, never a flow or an entity silently dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from conduit.config.layouts import find_flows, read_flow
from conduit.errors import ConfigError

ENTITY = "source: {type: jsonl, options: {path: orders.jsonl}}\n"


def _flow_dir(tmp_path: Path) -> Path:
    flow = tmp_path / "flows" / "shop"
    (flow / "entities").mkdir(parents=True)
    (flow / "flow.yml").write_text("destination: {type: parquet, options: {path: out}}\n")
    (flow / "entities" / "customers.yml").write_text(ENTITY)
    return flow


def test_entity_files_are_read(tmp_path: Path) -> None:
    flow = _flow_dir(tmp_path)
    (tmp_path / "shared.yml").write_text(ENTITY)
    (flow / "entities" / "orders.yml").symlink_to(tmp_path / "shared.yml")
    files = read_flow(find_flows(tmp_path)[0])
    assert [d.path.name for d in files.entity_files] == ["customers.yml", "orders.yml"]


def test_a_dangling_entity_symlink_is_an_error(tmp_path: Path) -> None:
    flow = _flow_dir(tmp_path)
    (flow / "entities" / "orders.yml").symlink_to(tmp_path / "gone.yml")
    with pytest.raises(
        ConfigError, match=r"entities/orders.yml: is a symbolic link to a missing file \(.*gone.yml\)"
    ):
        read_flow(flow)
    with pytest.raises(ConfigError, match="entities/orders.yml: is a symbolic link to a missing file"):
        read_flow(find_flows(tmp_path)[0])


def test_a_looping_entity_symlink_is_an_error(tmp_path: Path) -> None:
    flow = _flow_dir(tmp_path)
    (flow / "entities" / "orders.yml").symlink_to("orders.yml")
    with pytest.raises(ConfigError, match="entities/orders.yml: is a symlink loop"):
        read_flow(flow)


@pytest.mark.parametrize("name", ["flow.yml", "entities.yml"])
def test_a_dangling_flow_or_entities_file_is_an_error(tmp_path: Path, name: str) -> None:
    flow = _flow_dir(tmp_path)
    (flow / name).unlink(missing_ok=True)
    (flow / name).symlink_to(tmp_path / "gone.yml")
    with pytest.raises(ConfigError, match=f"shop/{name}: is a symbolic link to a missing file"):
        read_flow(find_flows(tmp_path)[0])


def test_a_dangling_flow_file_in_a_directory_of_flows_is_an_error(tmp_path: Path) -> None:
    _flow_dir(tmp_path)
    (tmp_path / "flows" / "billing.yml").symlink_to(tmp_path / "gone.yml")
    with pytest.raises(ConfigError, match="flows/billing.yml: is a symbolic link to a missing file"):
        find_flows(tmp_path)


def test_a_dangling_flow_path_says_so(tmp_path: Path) -> None:
    (tmp_path / "ingest.yml").symlink_to(tmp_path / "gone.yml")
    with pytest.raises(ConfigError, match="ingest.yml: is a symbolic link to a missing file"):
        find_flows(tmp_path / "ingest.yml")
    with pytest.raises(ConfigError, match="nope.yml: no such file or directory"):
        find_flows(tmp_path / "nope.yml")


def test_hidden_and_other_files_in_entities_are_still_ignored(tmp_path: Path) -> None:
    flow = _flow_dir(tmp_path)
    (flow / "entities" / ".orders.yml").symlink_to(tmp_path / "gone.yml")
    (flow / "entities" / "README.md").symlink_to(tmp_path / "gone.md")
    assert [d.path.name for d in read_flow(flow).entity_files] == ["customers.yml"]
