"""read/write family: dispatch on what the fd argument is."""

from __future__ import annotations

from ..model import End, Task, Wait
from ..procfs.fds import target_kind
from ..snapshot import Snapshot
from . import pipe, socket
from .describe import call_text

READS = {"read", "readv", "pread64", "preadv", "preadv2", "recvfrom", "recvmsg", "recvmmsg"}
WRITES = {"write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg", "sendmmsg"}
SYSCALLS = READS | WRITES


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    assert task.syscall is not None
    fd = task.syscall.arg_int(0)
    writing = task.syscall.name in WRITES
    what = call_text(snap, pid, task)
    target = snap.target(pid, fd)
    if target is None:
        return Wait(pid, task.tid, what, end=End("unknown", f"fd {fd} is not open any more"))
    kind = target_kind(target)
    if kind == "pipe" or (kind == "path" and snap.is_fifo(pid, fd)):
        return pipe.wait(snap, pid, task.tid, fd, target, writing, what)
    if kind == "socket":
        return socket.wait(snap, pid, task.tid, fd, target, writing, what)
    return Wait(pid, task.tid, what, end=_other(target, writing))


def _other(target: str, writing: bool) -> End:
    if target.startswith(("/dev/pts/", "/dev/tty")):
        return End("terminal", f"{'writes to' if writing else 'reads from'} the terminal {target}")
    if target.startswith("/"):
        return End("disk", f"{'writes' if writing else 'reads'} {target}")
    return End("unknown", f"{'writes to' if writing else 'reads from'} {target} (not followed)")
