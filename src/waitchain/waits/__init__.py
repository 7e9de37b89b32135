"""What a blocked thread waits for. One rule module per kind of wait; this module only
dispatches on the thread's state and system call."""

from __future__ import annotations

from ..model import End, Task, Wait
from ..snapshot import Snapshot
from . import child, ends, fifo, filelock, futex, io, kernel, objects, poll, signals
from .describe import call_text

RULES = {}
for _module in (io, child, ends, filelock, futex, fifo, signals, objects, poll):
    RULES.update({name: _module.rule for name in _module.SYSCALLS})


def wait_of(snap: Snapshot, pid: int, task: Task) -> Wait:
    """The wait of one thread: edges to the processes it waits for, or where it ends."""
    if kernel.in_kernel_wait(task):  # D state, or inside a FUSE request
        return kernel.rule(snap, pid, task)
    state_end = ends.by_state(task)
    if state_end is not None:
        return Wait(pid, task.tid, call_text(snap, pid, task), end=state_end)
    rule = RULES.get(task.syscall.name) if task.syscall else None
    if rule is None:
        return Wait(pid, task.tid, call_text(snap, pid, task), end=ends.unfollowed(task))
    return rule(snap, pid, task)


__all__ = ["wait_of", "End"]
