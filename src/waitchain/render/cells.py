"""How many terminal cells text takes, as rich's cell_len (15.0) counted them before the text
output stopped importing rich, so that the columns stay where they were: East Asian wide and
fullwidth characters take 2 cells; combining marks, format and control characters 0; a zero
width joiner hides the character after it (the rest of an emoji sequence); a variation
selector 16 widens the text-presentation emoji before it (❤ + U+FE0F).

The widths are the Unicode 17 table rich took from the wcwidth project. Most of it follows
from unicodedata's categories and East Asian widths (`_measure`); `_EXCEPTIONS` lists where
it does not, under any Python from 3.9 (Unicode 13) to 3.13 (15.1): the characters added
since the running Python's Unicode version, and wcwidth's own choices (the Arabic number
signs and the soft hyphen 1 cell, Hangul fillers and skin-tone modifiers 0, the trigrams and
counting rods 2). Checked against rich's cell_len for every code point under each Python."""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from functools import lru_cache

_ZERO = frozenset(("Mn", "Me", "Mc", "Cf", "Cc", "Zl", "Zp"))
_EXCEPTIONS = (  # (first, last, cells), sorted
    (0x00AD, 0x00AD, 1), (0x0600, 0x0605, 1), (0x06DD, 0x06DD, 1), (0x070F, 0x070F, 1),
    (0x0890, 0x0891, 1), (0x0897, 0x089F, 0), (0x08CA, 0x08D2, 0), (0x08E2, 0x08E2, 1),
    (0x0C3C, 0x0C3C, 0), (0x0CF3, 0x0CF3, 0), (0x0ECE, 0x0ECE, 0), (0x1160, 0x11FF, 0),
    (0x1715, 0x1715, 0), (0x180F, 0x180F, 0), (0x1AC1, 0x1ADD, 0), (0x1AE0, 0x1AEB, 0),
    (0x1DFA, 0x1DFA, 0), (0x2065, 0x2065, 0), (0x2630, 0x2637, 2), (0x268A, 0x268F, 2),
    (0x2FFC, 0x2FFF, 2), (0x3164, 0x3164, 0), (0x31E4, 0x31E5, 2), (0x31EF, 0x31EF, 2),
    (0x4DC0, 0x9FFF, 2), (0xD7B0, 0xD7FF, 0), (0xFA6E, 0xFAFF, 2), (0xFFA0, 0xFFA0, 0),
    (0xFFF0, 0xFFF8, 0), (0x10D69, 0x10D6D, 0), (0x10EFA, 0x10EFF, 0), (0x10F82, 0x10F85, 0),
    (0x11070, 0x11070, 0), (0x11073, 0x11074, 0), (0x110BD, 0x110BD, 1), (0x110C2, 0x110C2, 0),
    (0x110CD, 0x110CD, 1), (0x11241, 0x11241, 0), (0x113B8, 0x113C0, 0), (0x113C2, 0x113C2, 0),
    (0x113C5, 0x113C5, 0), (0x113C7, 0x113CA, 0), (0x113CC, 0x113D0, 0), (0x113D2, 0x113D2, 0),
    (0x113E1, 0x113E2, 0), (0x11B60, 0x11B67, 0), (0x11F00, 0x11F01, 0), (0x11F03, 0x11F03, 0),
    (0x11F34, 0x11F3A, 0), (0x11F3E, 0x11F42, 0), (0x11F5A, 0x11F5A, 0), (0x13439, 0x13440, 0),
    (0x13447, 0x13455, 0), (0x1611E, 0x1612F, 0), (0x16FF2, 0x16FF6, 2), (0x187F8, 0x187FF, 2),
    (0x18CFF, 0x18D1E, 2), (0x18D80, 0x18DF2, 2), (0x1AFF0, 0x1AFF3, 2), (0x1AFF5, 0x1AFFB, 2),
    (0x1AFFD, 0x1AFFE, 2), (0x1B11F, 0x1B122, 2), (0x1B132, 0x1B132, 2), (0x1B155, 0x1B155, 2),
    (0x1CF00, 0x1CF2D, 0), (0x1CF30, 0x1CF46, 0), (0x1D300, 0x1D356, 2), (0x1D360, 0x1D376, 2),
    (0x1E08F, 0x1E08F, 0), (0x1E2AE, 0x1E2AE, 0), (0x1E4EC, 0x1E4EF, 0), (0x1E5EE, 0x1E5EF, 0),
    (0x1E6E3, 0x1E6E3, 0), (0x1E6E6, 0x1E6E6, 0), (0x1E6EE, 0x1E6EF, 0), (0x1E6F5, 0x1E6F5, 0),
    (0x1F3FB, 0x1F3FF, 0), (0x1F6D8, 0x1F6D8, 2), (0x1F6DC, 0x1F6DF, 2), (0x1F7F0, 0x1F7F0, 2),
    (0x1F979, 0x1F9CC, 2), (0x1FA75, 0x1FA7C, 2), (0x1FA87, 0x1FA8A, 2), (0x1FA8E, 0x1FAC6, 2),
    (0x1FAC8, 0x1FAC8, 2), (0x1FACD, 0x1FADC, 2), (0x1FADF, 0x1FAEA, 2), (0x1FAEF, 0x1FAF8, 2),
    (0x2A6DE, 0x2FFFD, 2), (0x3134B, 0x3FFFD, 2), (0xE0000, 0xE0FFF, 0),
)
_FIRSTS = [first for first, _, _ in _EXCEPTIONS]
_ZWJ, _VS16 = "\u200d", "\ufe0f"
_NARROW_TO_WIDE = frozenset(  # emoji 1 cell wide alone, 2 with a VS16 after them
    "#*0123456789\xa9\xae\u203c\u2049\u2122\u2139\u2194\u2195\u2196\u2197\u2198\u2199\u21a9"
    "\u21aa\u2328\u23cf\u23ed\u23ee\u23ef\u23f1\u23f2\u23f8\u23f9\u23fa\u24c2\u25aa\u25ab"
    "\u25b6\u25c0\u25fb\u25fc\u2600\u2601\u2602\u2603\u2604\u260e\u2611\u2618\u261d\u2620"
    "\u2622\u2623\u2626\u262a\u262e\u262f\u2638\u2639\u263a\u2640\u2642\u265f\u2660\u2663"
    "\u2665\u2666\u2668\u267b\u267e\u2692\u2694\u2695\u2696\u2697\u2699\u269b\u269c\u26a0"
    "\u26a7\u26b0\u26b1\u26c8\u26cf\u26d1\u26d3\u26e9\u26f0\u26f1\u26f4\u26f7\u26f8\u26f9"
    "\u2702\u2708\u2709\u270c\u270d\u270f\u2712\u2714\u2716\u271d\u2721\u2733\u2734\u2744"
    "\u2747\u2763\u2764\u27a1\u2934\u2935\u2b05\u2b06\u2b07\U0001f170\U0001f171\U0001f17e"
    "\U0001f17f\U0001f321\U0001f324\U0001f325\U0001f326\U0001f327\U0001f328\U0001f329"
    "\U0001f32a\U0001f32b\U0001f32c\U0001f336\U0001f37d\U0001f396\U0001f397\U0001f399"
    "\U0001f39a\U0001f39b\U0001f39e\U0001f39f\U0001f3cb\U0001f3cc\U0001f3cd\U0001f3ce"
    "\U0001f3d4\U0001f3d5\U0001f3d6\U0001f3d7\U0001f3d8\U0001f3d9\U0001f3da\U0001f3db"
    "\U0001f3dc\U0001f3dd\U0001f3de\U0001f3df\U0001f3f3\U0001f3f5\U0001f3f7\U0001f43f"
    "\U0001f441\U0001f4fd\U0001f549\U0001f54a\U0001f56f\U0001f570\U0001f573\U0001f574"
    "\U0001f575\U0001f576\U0001f577\U0001f578\U0001f579\U0001f587\U0001f58a\U0001f58b"
    "\U0001f58c\U0001f58d\U0001f590\U0001f5a5\U0001f5a8\U0001f5b1\U0001f5b2\U0001f5bc"
    "\U0001f5c2\U0001f5c3\U0001f5c4\U0001f5d1\U0001f5d2\U0001f5d3\U0001f5dc\U0001f5dd"
    "\U0001f5de\U0001f5e1\U0001f5e3\U0001f5e8\U0001f5ef\U0001f5f3\U0001f5fa\U0001f6cb"
    "\U0001f6cd\U0001f6ce\U0001f6cf\U0001f6e0\U0001f6e1\U0001f6e2\U0001f6e3\U0001f6e4"
    "\U0001f6e5\U0001f6e9\U0001f6f0\U0001f6f3"
)


def cell_len(text: str) -> int:
    """The number of cells text takes on a terminal."""
    if text.isascii() and text.isprintable():
        return len(text)
    if _ZWJ not in text and _VS16 not in text:
        return sum(map(_width, text))
    total = 0
    last = ""  # the last character that took cells
    chars = iter(text)
    for char in chars:
        if char == _ZWJ:
            next(chars, None)  # joined into the sequence before it
        elif char == _VS16:
            total += last in _NARROW_TO_WIDE
            last = ""
        else:
            width = _width(char)
            if width:
                last, total = char, total + width
    return total


@lru_cache(maxsize=None)
def _width(char: str) -> int:
    code = ord(char)
    i = bisect_right(_FIRSTS, code) - 1
    if i >= 0 and code <= _EXCEPTIONS[i][1]:
        return _EXCEPTIONS[i][2]
    return _measure(char)


def _measure(char: str) -> int:
    category = unicodedata.category(char)
    if category in _ZERO:
        return 0
    if category != "Cn" and unicodedata.east_asian_width(char) in ("W", "F"):  # Cn: unassigned
        return 2
    return 1
