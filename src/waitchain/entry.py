"""The entry point of the `waitchain` command and of `python -m waitchain`: Ctrl-C exits
130 quietly at any moment. SIGINT is handled here before any heavy import (the command
line module pulls in the whole tool, which takes long enough for an early Ctrl-C to land
in an import and print a traceback); the helpers waitchain started are ended on the way
out (see children.py). Keep this module's imports to the standard library's lightest."""

from __future__ import annotations

# _signal: the C module, loaded at start-up: no Python code runs before the handler is set
import _signal  # type: ignore[import-not-found,unused-ignore]
import os

EXIT_INTERRUPTED = 130  # errors.EXIT_INTERRUPTED, not imported: errors is not light


def _exit_now(signum: int, frame: object) -> None:
    """Before the command line is loaded (and after it returned): no output is pending
    that matters, so leave at once; children started so far are ended first."""
    kill = getattr(globals().get("children"), "kill_all", None)
    if kill is not None:
        kill()
    os._exit(EXIT_INTERRUPTED)


# at import, first (the console script imports us first): `import signal` runs signal.py's
# enum building, long enough for an early Ctrl-C to land in it with a traceback
_signal.signal(_signal.SIGINT, _exit_now)

import signal  # noqa: E402
import sys  # noqa: E402
from typing import List, Optional  # noqa: E402

from . import children  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    signal.signal(signal.SIGINT, _exit_now)
    from .cli import main as cli_main  # the heavy imports

    signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt: cli cleans up
    try:
        code = cli_main(argv)
    except KeyboardInterrupt:  # raised where cli.main could not catch it
        code = EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the cleanup below is not interrupted
    if code == EXIT_INTERRUPTED:
        children.kill_all()
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    signal.signal(signal.SIGINT, _exit_now)
    return code
