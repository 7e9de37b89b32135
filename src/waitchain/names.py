"""Short names for processes, for people: `/usr/bin/python3 /srv/app/server.py -v` →
`python3 server.py -v`. Untrusted text: control characters are escaped here."""

from __future__ import annotations

import os

from .sanitize import clean

CMD_WIDTH = 48


def short_cmdline(cmdline: str, width: int = CMD_WIDTH) -> str:
    words = cmdline.split(" ")
    shown = [os.path.basename(w) if i < 2 and "/" in w and not w.startswith("[") else w
             for i, w in enumerate(words)]
    text = clean(" ".join(shown))
    return text if len(text) <= width else text[: width - 1] + "…"


def program(cmdline: str) -> str:
    """The script or program a person would name: the first argument for interpreters."""
    words = short_cmdline(cmdline, 10_000).split(" ")
    if len(words) > 1 and words[0].startswith(("python", "perl", "ruby", "node", "bash", "sh")) \
            and not words[1].startswith("-"):
        return words[1]
    return words[0]
