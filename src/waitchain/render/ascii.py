"""--ascii for the formats other than text: arrows, ellipses and box-drawing characters
written out in ASCII, and what is left (a non-ASCII process name) as the format's own
character reference, so the output is ASCII and still says everything."""

from __future__ import annotations


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

TABLE = str.maketrans({"└": "`", "├": "|", "│": "|", "─": "-", "↺": "<<", "→": "->", "…": "...",
                       "·": "*", "⟂": "#", "—": "-", "–": "-", "•": "*", "⇄": "<->", "↑": "^",
                       "←": "<-", "≤": "<=", "≥": ">=", "×": "x"})


def to_ascii(text: str, reference: Callable[[int], str]) -> str:
    """`text` in ASCII: the table first, then `reference(code point)` for the rest."""
    text = text.translate(TABLE)
    return "".join(ch if ord(ch) < 0x80 else reference(ord(ch)) for ch in text)
