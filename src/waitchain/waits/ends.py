"""Waits that end a chain: a running or stopped thread, a server waiting for clients,
a connect, and calls that later rules will follow."""

from __future__ import annotations

import os
from typing import Optional

from ..model import End, EndKind, Reason, Task, Wait
from ..snapshot import Snapshot
from .describe import call_text, fd_text

SYSCALLS = {"accept", "accept4", "connect"}  # sleeps and signal waits: signals.py
OR_WAITS = {"poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2"}


def by_state(task: Task) -> Optional[End]:
    """Ends decided by the thread state alone, before looking at the system call
    (D state is kernel.py's: wait_of asks it first)."""
    if task.state == "R" or task.note == "running":
        return End(EndKind.RUNNING, reason=Reason.BUSY, cpu=_cpu(task))
    if task.state in ("T", "t"):
        return End(EndKind.STOPPED, reason=Reason.STOPPED)
    if task.state in ("Z", "X"):
        return End(EndKind.UNKNOWN, reason=Reason.EXITED)
    if task.syscall is None:
        return End(EndKind.UNKNOWN, task.note or "no system call information", reason=Reason.NOT_READABLE)
    return None


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    assert task.syscall is not None
    name = task.syscall.name
    what = call_text(snap, pid, task)
    if name in ("accept", "accept4"):
        fd = task.syscall.arg_int(0)
        where = fd_text(snap, pid, fd)
        end = End(EndKind.IDLE, reason=Reason.ACCEPT, subject=where)
        return Wait(pid, task.tid, what, end=end)
    end = End(EndKind.REMOTE, reason=Reason.CONNECTING)
    return Wait(pid, task.tid, what, end=end)


def unfollowed(task: Task) -> End:
    name = task.syscall.name if task.syscall else "?"
    if name in OR_WAITS:
        detail = f"waits in {name} for any of several fds (not followed yet)"
    elif name == "futex":
        detail = "waits on a futex (a lock or condition; not followed yet)"
    else:
        detail = f"blocked in {name} ({task.wchan or 'no wchan'}; not followed)"
    return End(EndKind.UNKNOWN, detail, reason=Reason.NOT_FOLLOWED)


def _cpu(task: Task) -> float:
    return (task.utime + task.stime) / os.sysconf("SC_CLK_TCK")
