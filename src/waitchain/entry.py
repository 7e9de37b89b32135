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

import gc  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

from . import children  # noqa: E402

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    signal.signal(signal.SIGINT, _exit_now)
    cli_main = _import_cli()
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


def _import_cli() -> Callable[[Optional[List[str]]], int]:
    """cli.main, the command line module and all it imports loaded with the garbage collector
    off: the imports make ~17,000 container objects that live as long as the process, none
    of them garbage, yet they cost 23 collections (5-11 ms of a run, timed by gc.callbacks).
    Frozen after (set aside from later collections, which then walk only what the run makes:
    without the freeze the first collections of the run walk them all and nothing is saved);
    on the first import only, so a test process that calls main() keeps collecting its own."""
    first = "waitchain.cli" not in sys.modules
    collecting = gc.isenabled()
    gc.disable()
    try:
        from .cli import main as cli_main  # the heavy imports
    finally:
        if first:
            gc.freeze()
        if collecting:
            gc.enable()
    return cli_main
