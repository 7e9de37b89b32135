"""The seed scenario, started for real: wrapper → client → server → dmesg stand-in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from . import SCRIPTS, script
from .harness import Processes, wait_blocked, wait_child
from ..records import record


@record(frozen=True)
class DemoPids:
    wrapper: int
    client: int
    server: int
    child: int


def start(procs: Processes) -> DemoPids:
    """Start the scenario and return once every process of the chain is blocked."""
    where = _workdir(procs)
    server = procs.spawn([sys.executable, os.path.join(where, "command-server.py")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert server.stdout is not None
    port = server.stdout.readline().decode().strip()  # handshake: the server listens
    if not port.isdigit():
        raise RuntimeError("the demo's command server did not start")
    wrapper = procs.spawn([sys.executable, os.path.join(where, "unprivileged-dmesg.py"), port],
                          stdout=subprocess.PIPE)
    client = wait_child(wrapper.pid)
    child = wait_child(server.pid)
    wait_blocked(child, "write")
    wait_blocked(server.pid, "wait4")
    wait_blocked(client, "recvfrom")
    wait_blocked(wrapper.pid, "read")
    return DemoPids(wrapper.pid, client, server.pid, child)


def _workdir(procs: Processes) -> str:
    """A copy of the scripts in a fresh directory, removed on exit: they run as a user's
    scripts do, not from site-packages (whose frames the stack rule skips as library code)."""
    where = tempfile.mkdtemp(prefix="waitchain-demo-")
    procs.cleanups.append(lambda: shutil.rmtree(where, ignore_errors=True))
    for name in SCRIPTS:
        shutil.copy(script(name), where)
    return where
