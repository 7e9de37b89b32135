"""Every registered format renders every fixed diagnosis, names every process, and keeps
its output free of raw control characters."""

from __future__ import annotations

import re
import shutil

import pytest
from render_fixtures import ALL

from waitchain.render import Options, renderers

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def test_registry_has_every_cli_format() -> None:
    from waitchain.cli import FORMATS

    assert set(FORMATS) <= set(renderers())


@pytest.mark.parametrize("fixture", sorted(ALL))
@pytest.mark.parametrize("fmt", sorted(renderers()))
def test_renders(fmt: str, fixture: str) -> None:
    if fmt == "svg" and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    diag = ALL[fixture]()
    out = renderers()[fmt](diag, Options(width=100))
    assert isinstance(out, str) and out.endswith("\n")
    for pid in diag.processes:
        assert str(pid) in out, f"{fmt} does not mention pid {pid}"
    assert not CONTROL.search(out), f"{fmt} output contains a raw control character"
    if diag.deadlocked:
        assert "DEADLOCK" in out


@pytest.mark.parametrize("fmt", sorted(renderers()))
def test_options_are_optional(fmt: str) -> None:
    """Every render function takes the diagnosis alone (Options has defaults)."""
    if fmt == "svg" and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    assert renderers()[fmt](ALL["demo"]())
