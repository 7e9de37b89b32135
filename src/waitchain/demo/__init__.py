"""The seed scenario: a command server that deadlocks on p.wait() with a full stdout pipe,
behind a TCP client and a wrapper. The scripts here are run as files, not imported."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ("command-server.py", "command-client.py", "unprivileged-dmesg.py", "dmesg.py")


def script(name: str) -> str:
    return os.path.join(HERE, name)
