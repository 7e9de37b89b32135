"""Golden files: every format on the fixed diagnoses. Regenerate deliberately with
WAITCHAIN_REGOLD=1 and review the diff."""

from __future__ import annotations

import pytest
from conftest import golden
from render_fixtures import ALL

from waitchain.render import Options, dot, json, mermaid, text

WIDTH = 110


@pytest.mark.parametrize("name", sorted(ALL))
def test_text(name: str) -> None:
    golden(f"{name}.txt", text.render(ALL[name](), Options(width=WIDTH)))


def test_text_explain() -> None:
    golden("demo-explain.txt", text.render(ALL["demo"](), Options(width=WIDTH, explain=True)))


def test_text_narrow_ascii() -> None:
    golden("demo-60-ascii.txt", text.render(ALL["demo"](), Options(width=60, ascii=True)))


@pytest.mark.parametrize("name", sorted(ALL))
def test_dot(name: str) -> None:
    golden(f"{name}.dot", dot.render(ALL[name]()))


@pytest.mark.parametrize("name", sorted(ALL))
def test_mermaid(name: str) -> None:
    golden(f"{name}.md", mermaid.render(ALL[name]()))


@pytest.mark.parametrize("name", sorted(ALL))
def test_json(name: str) -> None:
    golden(f"{name}.json", json.render(ALL[name]()))
