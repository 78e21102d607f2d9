"""A third-party plugin adding a CLI command and a quality check through the hooks."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import make_distribution, run_cli

PLUGIN = '''
from __future__ import annotations

import json

import click
import pyarrow.compute as pc

from conduit import Check, CheckOptions, ConnectorOptions, Destination, LoadSession, hookimpl
from conduit.connectors import LocalPath


class PositiveOptions(CheckOptions):
    column: str


class Positive(Check):
    """Values of one numeric column are greater than zero."""

    options_model = PositiveOptions

    def columns(self):
        return [self.options.column]

    def evaluate(self, batch):
        return pc.greater(batch.column(self.options.column), 0)

    def describe(self):
        return f"positive({self.options.column})"

    def explain(self, row):
        return f"{self.options.column} is {row[self.options.column]}, not above 0"


@hookimpl
def conduit_register_checks(register):
    register("positive", Positive)


class TallyOptions(ConnectorOptions):
    path: LocalPath


class TallySession(LoadSession):
    def __init__(self, path):
        self.path, self.rows = path, 0

    def write(self, batch):
        self.rows += batch.num_rows

    def commit(self, state):
        with open(self.path, "w") as f:
            json.dump({"rows": self.rows, "entity": state["entity"]}, f)

    def abort(self):
        self.rows = 0


class Tally(Destination):
    """Records how many rows each load committed, in a JSON file."""

    options_model = TallyOptions

    def open(self, request):
        return TallySession(self.options.path)


@hookimpl
def conduit_register_destinations(register):
    register("tally", Tally)


@hookimpl
def conduit_register_commands(cli):
    @cli.command(name="greet")
    @click.argument("name")
    def greet(name):
        """Say hello (added by conduit-extras)."""
        click.echo(f"hello {name} from conduit-extras")
'''

FLOW = """
version: 1
entities:
  amounts:
    source: {type: jsonl, options: {path: in.jsonl}}
    destination: {type: jsonl, options: {path: out.jsonl}}
    checks:
      - positive: {column: amount, action: ACTION}
"""


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    make_distribution(site, "conduit-extras", "0.9.0", {"extras": "extras_mod"}, {"extras_mod": PLUGIN})
    return site


def test_plugin_command_is_added_to_the_cli(tmp_path: Path) -> None:
    site = _site(tmp_path)
    result = run_cli("greet", "ada", extra_path=site)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello ada from conduit-extras"
    assert "greet" in run_cli("--help", extra_path=site).stdout
    assert run_cli("greet", "ada").returncode == 2  # without the plugin the command does not exist


def test_plugin_check_runs_with_each_action(tmp_path: Path) -> None:
    site = _site(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"amount": 3}\n{"amount": -1}\n{"amount": 5}\n')
    listed = json.loads(run_cli("plugins", "--json", extra_path=site).stdout)["plugins"]
    assert next(p for p in listed if p["name"] == "extras")["checks"] == ["positive"]

    (tmp_path / "ingest.yml").write_text(FLOW.replace("ACTION", "fail"))
    failed = run_cli("run", tmp_path / "ingest.yml", extra_path=site)
    assert failed.returncode == 1
    assert (
        "in.jsonl, row 2: check positive(amount) failed: {'amount': -1} (amount is -1, not above 0)"
        in failed.stderr
    )
    assert not (tmp_path / "out.jsonl").exists()

    (tmp_path / "ingest.yml").write_text(FLOW.replace("ACTION", "warn"))
    warned = run_cli("run", tmp_path / "ingest.yml", extra_path=site)
    assert warned.returncode == 0, warned.stderr
    assert "check positive(amount): 1 of 3 rows failed (action: warn" in warned.stderr
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 3

    (tmp_path / "ingest.yml").write_text(FLOW.replace("ACTION", "dlq"))
    queued = run_cli("run", tmp_path / "ingest.yml", "--json", extra_path=site)
    assert queued.returncode == 0, queued.stderr
    entity = json.loads(queued.stdout)["entities"][0]
    assert (entity["rows_read"], entity["rows_loaded"], entity["rows_rejected"]) == (3, 2, 1)
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 2
    shown = json.loads(
        run_cli("dlq", "show", "amounts", "--flow", tmp_path, "--json", extra_path=site).stdout
    )
    assert [(r["row"], r["rule"], r["message"], r["values"]) for r in shown] == [
        (2, "positive(amount)", "amount is -1, not above 0", {"amount": -1})
    ]


def test_plugin_destination_receives_the_rows(tmp_path: Path) -> None:
    site = _site(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"amount": 3}\n{"amount": 4}\n')
    (tmp_path / "ingest.yml").write_text(
        "version: 1\nentities:\n  counted:\n    source: {type: jsonl, options: {path: in.jsonl}}\n"
        "    destination: {type: tally, options: {path: tally.json}}\n"
    )
    result = run_cli("run", tmp_path / "ingest.yml", extra_path=site)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "tally.json").read_text()) == {"rows": 2, "entity": "counted"}
