"""`waitchain demo`: start four programs that deadlock, diagnose them from the first, clean up."""

from __future__ import annotations

import argparse

from ..engine import diagnose
from ..snapshot import Snapshot
from .harness import Processes
from .scenario import start

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List

INTRO = """\
waitchain demo: starts four small Python programs that hang together, diagnoses them the
way you would a hung service, then kills them (nothing else on this machine is touched):
  unprivileged-dmesg.py  runs command-client.py and reads all its output through a pipe
  command-client.py      asks command-server.py over TCP to run dmesg and waits for the reply
  command-server.py      runs dmesg.py with stdout=PIPE, then calls p.wait() before reading it
  dmesg.py               writes more than a pipe holds (64 KiB), so it blocks, and so does everyone
What to look at: the tree (each line waits for the line below it), the DEADLOCK line, and
"root cause": the line of code to fix. `waitchain {wrapper}` ({wrapper} is unprivileged-dmesg.py) prints:
"""


def main(argv: List[str]) -> int:
    from ..cli import Report, add_output_options, check_options, finish

    p = argparse.ArgumentParser(prog="waitchain demo", description="Run the built-in deadlock "
                                "scenario, diagnose it from the hung wrapper, then kill it.")
    add_output_options(p)
    args = p.parse_args(argv)
    fmt = check_options(args)
    report = Report.open(args.report, args.force) if args.report else None
    try:
        with Processes() as procs:
            pids = start(procs)
            with Snapshot.scan() as snap:
                diag = diagnose(snap, [pids.wrapper])
                intro = INTRO.format(wrapper=pids.wrapper) + "\n" if fmt == "text" else ""
                return finish(diag, args, snap, fmt, report, before=intro)
    finally:
        if report is not None:
            report.discard()
