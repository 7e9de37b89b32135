"""Short names for processes, for people: `/usr/bin/python3 /srv/app/server.py -v` →
`python3 server.py -v`. Untrusted text: control characters are escaped here."""

from __future__ import annotations

import os
import re

from .sanitize import clean

CMD_WIDTH = 48
INTERPRETERS = ("python", "perl", "ruby", "node", "bash", "sh")
# A script given as a file descriptor (`bash /dev/fd/3`, `<(...)`) has no name worth keeping.
FD_SCRIPT = re.compile(r"^/(?:dev/fd|proc/self/fd|proc/\d+/fd)/\d+$")


def _interpreter(word: str) -> bool:
    return os.path.basename(word).startswith(INTERPRETERS)


def short_cmdline(cmdline: str, width: int = CMD_WIDTH) -> str:
    """The program's directory is dropped, and the script's for an interpreter; other
    arguments keep their paths (`flock /tmp/l`, `cat /var/log/app.log`, `postgres: 15/main:`)."""
    words = cmdline.split(" ")
    script = len(words) > 1 and _interpreter(words[0]) and not FD_SCRIPT.match(words[1])
    shown = [os.path.basename(w) if (i == 0 or (i == 1 and script)) and "/" in w
             and not w.startswith("[") else w for i, w in enumerate(words)]
    text = clean(" ".join(shown))
    return text if len(text) <= width else text[: width - 1] + "…"


def program(cmdline: str) -> str:
    """The script or program a person would name: the first argument for interpreters."""
    words = short_cmdline(cmdline, 10_000).split(" ")
    if len(words) > 1 and words[0].startswith(INTERPRETERS) \
            and not words[1].startswith("-") and not FD_SCRIPT.match(words[1]):
        return words[1]
    return words[0][:-1] if len(words[0]) > 1 and words[0].endswith(":") else words[0]  # `nginx: worker`
