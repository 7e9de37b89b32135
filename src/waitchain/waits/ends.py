"""Waits that end a chain: a running or stopped thread, a server waiting for clients,
sleeps, the disk, and calls that later rules will follow (poll, futex, ...)."""

from __future__ import annotations

import os
from typing import Optional

from ..model import End, Task, Wait
from ..snapshot import Snapshot
from .describe import call_text, fd_text

SYSCALLS = {"accept", "accept4", "connect"}  # sleeps and signal waits: signals.py
OR_WAITS = {"poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2"}


def by_state(task: Task) -> Optional[End]:
    """Ends decided by the thread state alone, before looking at the system call
    (D state is kernel.py's: wait_of asks it first)."""
    if task.state == "R" or task.note == "running":
        return End("running", f"running (busy), {_cpu(task)}")
    if task.state in ("T", "t"):
        return End("stopped", "stopped by a signal or a debugger")
    if task.state in ("Z", "X"):
        return End("unknown", "exited (zombie)")
    if task.syscall is None:
        return End("unknown", task.note or "no system call information")
    return None


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    assert task.syscall is not None
    name = task.syscall.name
    what = call_text(snap, pid, task)
    if name in ("accept", "accept4"):
        where = fd_text(snap, pid, task.syscall.arg_int(0))
        return Wait(pid, task.tid, what, end=End("idle", f"waits for a client on {where}"))
    if name == "connect":
        return Wait(pid, task.tid, what, end=End("remote", "waits for the remote host to answer"))
    return Wait(pid, task.tid, what, end=End("sleeping", f"sleeps in {name}: waits for time or a signal"))


def unfollowed(task: Task) -> End:
    name = task.syscall.name if task.syscall else "?"
    if name in OR_WAITS:
        return End("unknown", f"waits in {name} for any of several fds (not followed yet)")
    if name == "futex":
        return End("unknown", "waits on a futex (a lock or condition; not followed yet)")
    return End("unknown", f"blocked in {name} ({task.wchan or 'no wchan'}; not followed)")


def _cpu(task: Task) -> str:
    seconds = (task.utime + task.stime) / os.sysconf("SC_CLK_TCK")
    return f"{seconds:.1f} s CPU so far"
