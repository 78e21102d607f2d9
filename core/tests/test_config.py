"""Config loading: positions in errors, variables, validation messages, entity resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from conduit.config import load_flow
from conduit.config.documents import parse_document
from conduit.config.variables import Variables, expand_value
from conduit.errors import ConfigError
from conduit.plugins import Registry, load_registry


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ingest.yml"
    path.write_text(text)
    return path


GOOD = """\
version: 1
sources:
  raw:
    type: jsonl
    options: {path: data/*.jsonl}
destinations:
  lake:
    type: parquet
    options: {compression: zstd}
entities:
  orders:
    source: raw
    destination: {connection: lake, options: {path: out/orders.parquet}}
  users:
    source: {type: jsonl, options: {path: users.jsonl}}
    destination: {type: jsonl, options: {path: out/users.jsonl}}
    batch_size: 100
"""


def test_a_good_flow_resolves(tmp_path: Path, registry: Registry) -> None:
    flow = load_flow(_write(tmp_path, GOOD), registry)
    assert list(flow.entities) == ["orders", "users"]
    orders = flow.entities["orders"]
    assert orders.source.type == "jsonl" and orders.source.connection == "raw"
    # relative paths resolve against the config file's directory, not the working directory
    assert orders.source.options.path == str(tmp_path.resolve() / "data/*.jsonl")  # type: ignore[attr-defined]
    assert orders.destination.options.compression == "zstd"  # type: ignore[attr-defined]
    assert orders.mode == "replace"  # the destination's default mode
    assert flow.entities["users"].batch_size == 100


def test_entities_may_be_a_list(tmp_path: Path, registry: Registry) -> None:
    text = GOOD.split("entities:")[0] + (
        "entities:\n"
        "  - name: orders\n"
        "    source: raw\n"
        "    destination: {connection: lake, options: {path: out/orders.parquet}}\n"
        "  - name: orders\n"
        "    source: raw\n"
        "    destination: {connection: lake, options: {path: out/again.parquet}}\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"ingest.yml:14:5: entities\[1\]: duplicate entity 'orders' \(first defined at .*ingest.yml:11:5\)",
    ):
        load_flow(_write(tmp_path, text), registry)
    flow = load_flow(
        _write(
            tmp_path,
            text.replace(
                "name: orders\n    source: raw\n    destination: {connection: lake, options: {path: out/again",
                "name: users\n    source: raw\n    destination: {connection: lake, options: {path: out/again",
            ),
        ),
        registry,
    )
    assert list(flow.entities) == ["orders", "users"]


def test_unknown_key_names_file_line_and_suggests(tmp_path: Path, registry: Registry) -> None:
    path = _write(tmp_path, GOOD.replace("batch_size: 100", "batch_sise: 100"))
    with pytest.raises(ConfigError) as info:
        load_flow(path, registry)
    message = str(info.value)
    assert (
        f"{path}:17:5: entities.users.batch_sise: unknown key 'batch_sise' (did you mean 'batch_size'?)"
        in message
    )


def test_connector_option_errors_point_at_the_layer_that_set_them(tmp_path: Path, registry: Registry) -> None:
    text = GOOD.replace("options: {compression: zstd}", "options: {compresion: zstd}").replace(
        "options: {path: out/users.jsonl}", "options: {path: out/users.jsonl, pretty: true}"
    )
    with pytest.raises(ConfigError) as info:
        load_flow(_write(tmp_path, text), registry)
    lines = str(info.value).splitlines()
    assert len(lines) == 2, lines  # all problems of the file, in one message
    assert (
        ":9:15: destinations.lake.options.compresion: unknown key 'compresion' (did you mean 'compression'?)"
        in lines[0]
    )
    assert ":16:65: entities.users.destination.options.pretty: unknown key 'pretty'" in lines[1]


def test_wrong_value_type_and_missing_key(tmp_path: Path, registry: Registry) -> None:
    text = GOOD.replace("batch_size: 100", "batch_size: lots").replace(
        "options: {path: users.jsonl}", "options: {}"
    )
    with pytest.raises(ConfigError) as info:
        load_flow(_write(tmp_path, text), registry)
    message = str(info.value)
    assert (
        "entities.users.batch_size: Input should be a valid integer" in message and "(got 'lots')" in message
    )
    assert "entities.users.source.options.path: missing required key 'path'" in message


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path, registry: Registry) -> None:
    path = _write(tmp_path, "version: 1\nentities:\n  orders: {source: raw\n  users: x\n")
    with pytest.raises(ConfigError) as info:
        load_flow(path, registry)
    assert str(info.value).startswith(f"{path}:4:")
    assert "YAML syntax error" in str(info.value)


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_document("a: 1\nb:\n  c: 1\n  c: 2\n", tmp_path / "x.yml")
    assert "x.yml:4:3: b.c: duplicate key (first at line 3)" in str(info.value)


def test_unknown_connection_suggests(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ConfigError) as info:
        load_flow(_write(tmp_path, GOOD.replace("source: raw", "source: rwa")), registry)
    assert (
        "ingest.yml:12:5: entities.orders.source.connection: unknown connection 'rwa' (not defined under "
        in str(info.value)
    )
    assert "did you mean 'raw'?" in str(info.value)


def test_unsupported_mode_is_a_config_error(tmp_path: Path, registry: Registry) -> None:
    text = GOOD.replace("    batch_size: 100", "    batch_size: 100\n    mode: append")
    with pytest.raises(ConfigError) as info:
        load_flow(_write(tmp_path, text), registry)
    assert (
        "entities.users.mode: destination type 'jsonl' does not support mode 'append' (supported: replace)"
        in str(info.value)
    )


def test_unknown_check_and_bad_check_options(tmp_path: Path, registry: Registry) -> None:
    text = GOOD + "    checks:\n      - not_nul: {columns: [a]}\n      - not_null: {column: [a]}\n"
    with pytest.raises(ConfigError) as info:
        load_flow(_write(tmp_path, text), registry)
    message = str(info.value)
    assert "unknown check type 'not_nul'" in message and "did you mean 'not_null'?" in message
    assert (
        "entities.users.checks[1].not_null.column: unknown key 'column' (did you mean 'columns'?)" in message
    )


def test_variables_expand_in_values_only(tmp_path: Path, registry: Registry) -> None:
    text = GOOD.replace("data/*.jsonl", '"${DATA_DIR}/*.jsonl"').replace("zstd", '"${CODEC:-snappy}"')
    flow = load_flow(_write(tmp_path, text), registry, environ={"DATA_DIR": "/srv/in"})
    assert flow.entities["orders"].source.options.path == "/srv/in/*.jsonl"  # type: ignore[attr-defined]
    assert flow.entities["orders"].destination.options.compression == "snappy"  # type: ignore[attr-defined]


def test_undefined_variable_names_variable_and_key(tmp_path: Path, registry: Registry) -> None:
    path = _write(tmp_path, GOOD.replace("data/*.jsonl", '"${DATA_DIR}/*.jsonl"'))
    with pytest.raises(ConfigError) as info:
        load_flow(path, registry, environ={})
    assert f"{path}:5:15: sources.raw.options.path: environment variable 'DATA_DIR' is not set" in str(
        info.value
    )


def test_variable_expansion_rules() -> None:
    env = Variables({"X": "1"}, {"root": "/lake"}, "orders")
    assert expand_value("a-${X}-b", env) == ("a-1-b", ["X"], [])
    assert expand_value("${Y:-fallback}", env) == ("fallback", ["Y"], [])
    assert expand_value("${Y:-}", env) == ("", ["Y"], [])
    assert expand_value("$${LITERAL}", env) == ("${LITERAL}", [], [])
    assert expand_value("${var.root}/${entity.name}", env) == (
        "/lake/orders",
        ["var.root", "entity.name"],
        [],
    )
    # the document phase keeps ${entity.name} and escapes for the entity phase; that never expands twice
    assert expand_value("$${X} ${entity.name} ${X}", env, phase="document") == (
        "$${X} ${entity.name} 1",
        ["X"],
        [],
    )
    assert expand_value("$${X} ${entity.name}", env, phase="entity") == ("${X} orders", ["entity.name"], [])
    assert "profile variable 'nope' is not defined" in expand_value("${var.nope}", env)[2][0]
    _, _, problems = expand_value("${1BAD}", env)
    assert problems and "malformed" in problems[0]


def test_no_entities_and_not_a_mapping(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ConfigError, match="the flow defines no entities"):
        load_flow(_write(tmp_path, "version: 1\n"), registry)
    with pytest.raises(ConfigError, match="a flow or entity file must be a mapping"):
        load_flow(_write(tmp_path, "- a\n- b\n"), registry)
    with pytest.raises(ConfigError, match="no such file or directory"):
        load_flow(tmp_path / "nope.yml", registry)
