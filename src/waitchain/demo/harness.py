"""Start real processes, wait until they block, and always kill and reap them.
Used by `waitchain demo` and by the tests."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time

from ..errors import WaitchainError
from ..procfs.process import read_children, read_stat
from ..procfs.reader import ProcFS
from ..procfs.tasks import read_tasks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable, List, Optional

PR_SET_CHILD_SUBREAPER = 36
POLL_INTERVAL = 0.005


def become_subreaper() -> None:
    """Orphaned grandchildren are re-parented to us, so we can reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


class Processes:
    """A context manager owning every process it starts (each in its own session) and
    their descendants: on exit all are killed with SIGKILL and reaped."""

    def __init__(self) -> None:
        self.started: List[subprocess.Popen] = []
        self.cleanups: List[Callable[[], None]] = []
        become_subreaper()

    def __enter__(self) -> "Processes":
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()
        for cleanup in self.cleanups:
            cleanup()

    def spawn(self, argv: List[str], **kwargs) -> subprocess.Popen:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.started.append(proc)
        return proc

    def descendants(self) -> List[int]:
        """Every live process in the sessions we started."""
        sessions = {p.pid for p in self.started}
        return [pid for pid in ProcFS().pids() if _session(pid) in sessions]

    def kill_all(self) -> None:
        victims = self.descendants()
        for proc in self.started:
            _quiet(os.killpg, proc.pid, signal.SIGKILL)
        for pid in victims:
            _quiet(os.kill, pid, signal.SIGKILL)
        for proc in self.started:
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        for pid in victims:
            _quiet(os.waitpid, pid, 0)


def _session(pid: int) -> Optional[int]:
    try:
        return read_stat(ProcFS(), pid).session
    except WaitchainError:
        return None


def _quiet(func: Callable, *args: object) -> None:
    try:
        func(*args)
    except (ProcessLookupError, ChildProcessError, PermissionError):
        pass


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll a kernel-visible condition (a thread blocked in a call) up to a deadline.
    Blocking in a system call is not an event any process can announce, so this is the
    handshake's last step, after the process has said it is about to block."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting until {what}")
        time.sleep(POLL_INTERVAL)


def blocked_in(pid: int, calls: Iterable[str]) -> bool:
    """Some thread of pid sleeps (S or D) inside one of `calls`."""
    names = set(calls)
    try:
        tasks = read_tasks(ProcFS(), pid)
    except WaitchainError:
        return False
    return any(t.state in "SD" and t.syscall and t.syscall.name in names for t in tasks)


def wait_blocked(pid: int, *calls: str, timeout: float = 20.0) -> None:
    wait_until(lambda: blocked_in(pid, calls), f"{pid} blocks in {'/'.join(calls)}", timeout)


def children(pid: int) -> List[int]:
    return read_children(ProcFS(), pid)


def wait_child(pid: int, timeout: float = 20.0) -> int:
    wait_until(lambda: bool(children(pid)), f"{pid} has a child", timeout)
    return children(pid)[0]
