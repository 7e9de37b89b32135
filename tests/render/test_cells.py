"""render/cells.cell_len gives the widths rich 15's cell_len gave (the text output's columns
depended on them before it stopped importing rich): one case per rule and per kind of name a
process can take."""

from __future__ import annotations

import pytest

from waitchain.render.cells import cell_len

CASES = [
    ("abc", 3), ("└─ ↺ → …", 8),  # ASCII, the tree's drawing
    ("\u65e5\u672c\u8a9e", 6), ("\uff46\uff55\uff4c\uff4c", 8),  # CJK, fullwidth
    ("cafe\u0301", 4), ("\u0e17\u0e35\u0e48", 1), ("\u200b\u200e", 0),  # combining marks, format characters
    ("\U0001f44d", 2), ("\U0001f468\u200d\U0001f469\u200d\U0001f467", 2),  # emoji; a ZWJ sequence is one
    ("\u2764", 1), ("\u2764\ufe0f", 2), ("#\ufe0f", 2), ("a\ufe0f", 1),  # VS16 widens emoji only
    ("x\u200d", 1), ("\u200dx", 0),  # a ZWJ hides the next character
    ("\U0001f44d\U0001f3fd", 2), ("\u3164\uffa0\u1160", 0),  # skin tone; Hangul fillers
    ("\u0600\u00ad", 2), ("\u2630\U0001d360", 4),  # wcwidth's choices: number sign, soft hyphen, trigram, rod
    ("\U0001fae0", 2), ("\u0897\u1acf", 0), ("\U00020000\U0003fffd", 4),  # newer than Python 3.9's Unicode
]


@pytest.mark.parametrize("text,cells", CASES)
def test_cell_len_as_rich_measured(text: str, cells: int) -> None:
    assert cell_len(text) == cells
