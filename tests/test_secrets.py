"""A secret given through an environment variable never appears in any output or file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_distribution, run_cli

CANARY = "c4nary-S3cret-9f2e"

PLUGIN = '''
import pyarrow as pa

from conduit import ConnectorError, ConnectorOptions, Secret, Source, SourceBatch, hookimpl


class VaultOptions(ConnectorOptions):
    host: str = "db.internal"
    user: str = "loader"
    password: Secret
    fail: bool = False


class VaultSource(Source):
    """A source behind a password; with fail: true its check fails the way a driver does,
    quoting the DSN (password included) in its message."""

    options_model = VaultOptions

    def check(self):
        if self.options.fail:
            secret = self.options.password.get_secret_value()
            dsn = f"postgresql://{self.options.user}:{secret}@{self.options.host}:5432/app"
            raise ConnectorError(f"could not connect to {dsn}: password {secret} rejected")

    def discover(self):
        return pa.schema([("id", pa.int64()), ("note", pa.string())])

    def read(self, request):
        batch = pa.record_batch([pa.array([1, 2, 3]), pa.array(["a", "b", "c"])], schema=request.schema)
        yield SourceBatch(batch, {"row": 3})


@hookimpl
def conduit_register_sources(register):
    register("vault", VaultSource)
'''

PROFILE = """\
version: 1
connections:
  vault: {type: vault, params: {password: "${VAULT_PASSWORD}"}}
"""

FLOW = """\
version: 1
entities:
  orders:
    source: {connection: vault, options: {fail: FAIL}}
    destination: {type: jsonl, options: {path: out/orders.jsonl}}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    make_distribution(
        tmp_path / "site", "conduit-vault", "0.1.0", {"vault": "vault_mod"}, {"vault_mod": PLUGIN}
    )
    root = tmp_path / "project"
    (root / "profiles").mkdir(parents=True)
    (root / "flows").mkdir()
    (root / "profiles" / "dev.yml").write_text(PROFILE)
    (root / "flows" / "ok.yml").write_text(FLOW.replace("FAIL", "false"))
    return root


def _cli(project: Path, *args: str | Path, password: str = CANARY) -> tuple[int, str]:
    result = run_cli(*args, extra_path=project.parent / "site", env={"VAULT_PASSWORD": password})
    return result.returncode, result.stdout + result.stderr


def test_the_canary_never_appears(project: Path) -> None:
    outputs = []
    code, text = _cli(project, "run", project / "flows")
    assert code == 0, text
    outputs.append(text)
    code, text = _cli(project, "run", project / "flows", "--json")
    assert code == 0 and json.loads(text)["status"] == "success"
    outputs.append(text)
    for args in (
        ("validate", project),
        ("config", "explain", project),
        ("config", "explain", project, "--json"),
    ):
        code, text = _cli(project, *args)
        assert code == 0, text
        outputs.append(text)
    explained = json.loads(outputs[-1])
    options = explained["flows"][0]["entities"]["orders"]["config"]["source"]["options"]
    assert options["password"] == "***"
    code, text = _cli(project, "profiles", "show", "vault", project)
    assert code == 0 and json.loads(text)["params"]["password"] == "***"
    outputs.append(text)

    # a failing connection whose driver message quotes the DSN and the password
    (project / "flows" / "ok.yml").write_text(FLOW.replace("FAIL", "true"))
    code, text = _cli(project, "run", project / "flows")
    assert code == 1
    assert "could not connect to postgresql://loader:***@db.internal:5432/app: password *** rejected" in text
    outputs.append(text)
    code, text = _cli(project, "validate", project, "--connect")
    assert code == 1 and "password *** rejected" in text
    outputs.append(text)
    # a config error near the secret
    (project / "flows" / "ok.yml").write_text(FLOW.replace("FAIL", "maybe"))
    code, text = _cli(project, "validate", project)
    assert code == 2
    outputs.append(text)

    for text in outputs:
        assert CANARY not in text
    for path in project.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_short_secrets_do_not_mask_unrelated_text(project: Path) -> None:
    code, text = _cli(project, "run", project / "flows", password="a")
    assert code == 0, text
    assert "[orders] started: vault -> jsonl (mode replace)" in text
    assert "***" not in text
    (project / "flows" / "ok.yml").write_text(FLOW.replace("FAIL", "true"))
    code, text = _cli(project, "run", project / "flows", password="a")
    # the URL's password is masked whatever its length; the bare one-letter word is left alone
    assert "postgresql://loader:***@db.internal" in text and "password a rejected" in text
