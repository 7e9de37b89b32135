"""`waitchain demo`: start the seed's deadlock, diagnose it from the wrapper, clean up."""

from __future__ import annotations

import argparse
import sys
from typing import List

from ..engine import diagnose
from ..snapshot import Snapshot
from .harness import Processes
from .scenario import start

INTRO = """\
The demo starts the scenario of the talk this tool comes from:
  unprivileged-dmesg.py runs command-client.py with stdout=PIPE and reads all its output;
  command-client.py asks command-server.py over TCP to run `dmesg` and copies the reply;
  command-server.py runs dmesg with stdout=PIPE, then calls p.wait() before reading.
dmesg prints more than a pipe holds, so everything hangs. waitchain {wrapper}:
"""


def main(argv: List[str]) -> int:
    from ..cli import add_output_options, finish

    p = argparse.ArgumentParser(prog="waitchain demo", description="Run the built-in deadlock "
                                "scenario, diagnose it from the hung wrapper, then kill it.")
    add_output_options(p)
    args = p.parse_args(argv)
    with Processes() as procs:
        pids = start(procs)
        with Snapshot.scan() as snap:
            diag = diagnose(snap, [pids.wrapper])
            if args.format == "text" and not args.json:
                sys.stdout.write(INTRO.format(wrapper=pids.wrapper) + "\n")
            return finish(diag, args, snap)
