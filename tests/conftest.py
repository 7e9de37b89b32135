"""Shared fixtures: real processes that are always killed and reaped, a way to start a small
Python program with a readiness handshake, and the real CLI run in-process.

Readiness: every program gets a pipe (fd number in $WAITCHAIN_TEST_READY) and calls
`ready(...)` just before it blocks; the test reads that line and THEN polls /proc with
`wait_blocked(pid, syscall)` until the thread is asleep in the call. No bare sleeps.
Plain helper functions are in scenario_helpers.py."""

from __future__ import annotations

import json
import os
import select
import sys
import textwrap
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import pytest

from waitchain import cli
from waitchain.demo.harness import Processes, become_subreaper, children, wait_until

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for scenario_helpers
from scenario_helpers import threads_in  # noqa: E402

READY_TIMEOUT = 15.0

become_subreaper()  # orphans of every test (daemonizing helpers, a child's children) come to us


@pytest.fixture(autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """The safety net under every test's own cleanup: whatever child is still ours after
    the test (an orphan we adopted as subreaper, or a leak) is killed and reaped."""
    yield
    for pid in children(os.getpid()):
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

# What a sleeping Python thread is inside: time.sleep is clock_nanosleep on 3.11+,
# pselect6 with no fds on 3.9/3.10; signal.pause is pause (ppoll with no fds on aarch64).
SLEEP_CALLS = ("clock_nanosleep", "nanosleep", "pselect6", "select", "pause", "ppoll")

PRELUDE = '''\
import ctypes, os, signal, socket, sys, threading, time
_READY = int(os.environ.pop("WAITCHAIN_TEST_READY"))
libc = ctypes.CDLL(None, use_errno=True)

def ready(*words):
    """Tell the test we are about to block: one line, `PID word...`."""
    line = " ".join(str(w) for w in (os.getpid(),) + words) + "\\n"
    os.write(_READY, line.encode())

def sleep_forever():
    while True:
        time.sleep(3600)

'''


class Program:
    """A started program and the read end of its readiness pipe."""

    def __init__(self, popen, ready_fd: int) -> None:
        self.popen = popen
        self.pid: int = popen.pid
        self.fd = ready_fd
        self.buf = b""

    def ready(self, count: int = 1, timeout: float = READY_TIMEOUT) -> List[List[str]]:
        """The next `count` readiness lines (from this program or its forks), split in words."""
        deadline = time.monotonic() + timeout
        while self.buf.count(b"\n") < count:
            self._fill(deadline)
        lines = self.buf.split(b"\n")
        self.buf = b"\n".join(lines[count:])
        return [line.decode().split() for line in lines[:count]]

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.fd], [], [], left)[0]:
            raise TimeoutError(f"program {self.pid} did not report ready in time")
        chunk = os.read(self.fd, 4096)
        if not chunk:
            raise RuntimeError(f"program {self.pid} exited before it was ready "
                               f"(status {self.popen.poll()}); see its stderr above")
        self.buf += chunk

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@pytest.fixture
def procs() -> Iterator[Processes]:
    """Every process started through it (and their descendants) is killed and reaped."""
    with Processes() as p:
        yield p


@pytest.fixture
def run_py(procs: Processes):
    """run_py(code, *args, pass_fds=(), argv0=None, **popen_kwargs) -> Program.
    `code` runs after PRELUDE (ready(), sleep_forever(), libc); fds in pass_fds keep
    their numbers in the program. The caller closes its own copies of them."""
    started: List[Program] = []

    def start(code: str, *args: str, pass_fds: Sequence[int] = (), argv0: Optional[str] = None,
              **kwargs: Any) -> Program:
        r, w = os.pipe()
        env = dict(os.environ, WAITCHAIN_TEST_READY=str(w))
        argv = [argv0 or sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args]
        try:
            popen = procs.spawn(argv, executable=sys.executable, pass_fds=(w, *pass_fds),
                                env=env, **kwargs)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        program = Program(popen, r)
        started.append(program)
        return program

    yield start
    for program in started:
        program.close()


@pytest.fixture
def wait_sleeping():
    """wait_sleeping(pid): poll /proc until a thread of pid sleeps (time.sleep, pause)."""

    def wait(pid: int, threads: int = 1) -> None:
        wait_until(lambda: len(threads_in(pid, SLEEP_CALLS)) >= threads,
                   f"{threads} threads of {pid} sleep")

    return wait


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """run_cli(*argv) -> CliResult: waitchain.cli.main in this process, output captured."""

    def run(*argv: str) -> CliResult:
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture
def diagnose_pid(run_cli):
    """diagnose_pid(pid) -> (parsed JSON, exit code), through the real CLI."""

    def diagnose(pid: int) -> Tuple[Dict[str, Any], int]:
        result = run_cli(str(pid), "--json", "--no-stacks")
        assert result.out, f"no JSON output; stderr: {result.err}"
        return json.loads(result.out), result.code

    return diagnose
