"""Ctrl-C at any moment: a real `waitchain --all --confirm 2` gets SIGINT at several delays
after it starts and must exit 130 quietly (no traceback: stderr empty or one line) with no helper
or child left behind (this test process is the subreaper of every orphan, so a helper
left running would be its child). --confirm 2 makes the run last past the last delay: at
the idle size `--all` alone now ends within 0.1-0.3 s, before the later signals.

The first milliseconds are the interpreter's: its start-up and the console-script
wrapper's own `import re` run before any waitchain code can set a handler. A SIGINT there
is handled by Python itself (killed by SIGINT: a shell shows 130; or Python's
KeyboardInterrupt report, whose frames are all outside waitchain). From waitchain's first
line on (entry.py sets the handler before the heavy imports), it is ours."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from waitchain.demo.harness import children, wait_until

DELAYS = (0, 0.02, 0.05, 0.1, 0.3, 0.6, 1.0)
FRAME = re.compile(r'^\s*File "([^"]+)"', re.M)


def _command() -> list:
    script = shutil.which("waitchain", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "waitchain"]


def _before_our_code(err: str) -> bool:
    """A KeyboardInterrupt report from the interpreter's start-up: no frame is waitchain's."""
    frames = FRAME.findall(err)
    return bool(frames) and "KeyboardInterrupt" in err and not any(
        os.sep + "waitchain" + os.sep in f for f in frames)


@pytest.mark.parametrize("delay", DELAYS)
def test_sigint_at_any_moment_exits_130_quietly(delay: float) -> None:
    before = set(children(os.getpid()))
    cli = subprocess.Popen(_command() + ["--all", "--confirm", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           preexec_fn=_default_sigint)
    try:
        time.sleep(delay)
        cli.send_signal(signal.SIGINT)
        _, raw = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    err = raw.decode("utf-8", "replace")
    if cli.returncode != 130 and _before_our_code(err) or cli.returncode == -signal.SIGINT and not err:
        pass  # the interpreter's own start-up (see the module's docstring)
    else:
        assert cli.returncode == 130, err
        assert len(err.splitlines()) <= 1, err
        assert "Traceback" not in err
    # no helper (memory reader, py-spy) outlives it: none left running as our (adopted) child
    wait_until(lambda: _running_children(before) == [], "every helper of the run has exited", timeout=5)


def _default_sigint() -> None:
    """As at a terminal: a test suite started in the background (`nohup ... &`, a job of a
    non-interactive shell) inherits SIGINT ignored, and so would the command, which then
    finished an early Ctrl-C's run with exit 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _running_children(before: set) -> list:
    """Our children not there before that still run; adopted ones that exited are reaped."""
    running = []
    for pid in set(children(os.getpid())) - before:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state in ("Z", "X"):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        else:
            running.append(pid)
    return running


def test_sigint_during_the_heavy_imports_is_quiet() -> None:
    """The case of the report: Ctrl-C while the command line's modules load. The signal is
    sent once the process is inside waitchain's own imports (its entry module has run)."""
    cli = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "waitchain", "--all"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = b""
    try:
        while b"waitchain.entry" not in seen:  # importtime lists each module as it is loaded
            chunk = os.read(cli.stderr.fileno(), 4096)  # type: ignore[union-attr]
            assert chunk, seen.decode()
            seen += chunk
        cli.send_signal(signal.SIGINT)
        _, rest = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    tail = [line for line in (seen + rest).decode().splitlines() if not line.startswith("import time:")]
    assert cli.returncode == 130, tail
    assert tail == [] or len(tail) <= 1, tail
