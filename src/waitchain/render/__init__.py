"""Renderers: one module per output format, each `render(diag, options) -> str`."""

from __future__ import annotations

import importlib

from ..model import Diagnosis
from ..records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Optional, Tuple

    Render = Callable[["Diagnosis", "Options"], str]


# Format name → (module of this package, its render function). A run imports only the module
# of the format it prints: --json does not pay for the text layout nor Graphviz's wrapper (svg).
FORMATS: Dict[str, Tuple[str, str]] = {
    "text": ("text", "render"), "json": ("json", "render"), "dot": ("dot", "render"),
    "svg": ("svg", "render"), "mermaid": ("mermaid", "render_source"), "markdown": ("mermaid", "render"),
}


@record(frozen=True)
class Options:
    color: bool = False
    width: Optional[int] = None
    explain: bool = False  # show how to check each edge by hand
    stacks: bool = False  # full stacks instead of the application frame only
    ascii: bool = False  # no box-drawing characters


def renderer(fmt: str) -> Render:
    """The render function of one format (KeyError for an unknown one), its module imported now."""
    module, function = FORMATS[fmt]
    found: Render = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return found


def renderers() -> Dict[str, Render]:
    """Every format → its render function (imports every renderer: for tests and tools)."""
    return {fmt: renderer(fmt) for fmt in FORMATS}
