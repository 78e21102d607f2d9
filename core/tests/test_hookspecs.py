"""Meta-tests: every hook is documented in docs/hooks.md and exercised by at least one test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from conduit import hookspecs

REPO = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("conduit_")
)


def _test_sources() -> str:
    files = [*REPO.glob("core/tests/*.py"), *REPO.glob("tests/*.py"), *REPO.glob("plugins/*/tests/*.py")]
    return "\n".join(p.read_text() for p in files if p.name != Path(__file__).name)


def test_there_are_hooks() -> None:
    assert "conduit_register_sources" in HOOKS and len(HOOKS) >= 5


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring_and_a_section_in_the_reference(hook: str) -> None:
    assert inspect.getdoc(getattr(hookspecs, hook)), f"{hook} has no docstring"
    assert f"\n## {hook}\n" in (REPO / "docs" / "hooks.md").read_text(), (
        f"docs/hooks.md has no section for {hook}"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook: str) -> None:
    assert hook in _test_sources(), f"no test implements or calls {hook}"
