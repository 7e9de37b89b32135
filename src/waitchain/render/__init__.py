"""Renderers: one module per output format, each `render(diag, options) -> str`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

from ..model import Diagnosis


@dataclass(frozen=True)
class Options:
    color: bool = False
    width: Optional[int] = None
    explain: bool = False  # show how to check each edge by hand
    stacks: bool = False  # full stacks instead of the application frame only
    ascii: bool = False  # no box-drawing characters


def renderers() -> Dict[str, Callable[[Diagnosis, Options], str]]:
    """Format name → render function. Imported lazily: each format pays for its own imports."""
    from . import dot, json, mermaid, svg, text

    return {"text": text.render, "json": json.render, "dot": dot.render, "svg": svg.render,
            "mermaid": mermaid.render_source, "markdown": mermaid.render}
