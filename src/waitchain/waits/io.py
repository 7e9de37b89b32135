"""read/write family: dispatch on what the fd argument is."""

from __future__ import annotations

from ..model import End, Task, Wait
from ..procfs.fds import target_kind
from ..snapshot import Snapshot
from . import objects, pipe, signals, socket, tty
from .describe import call_text

READS = {"read", "readv", "pread64", "preadv", "preadv2", "recvfrom", "recvmsg", "recvmmsg"}
WRITES = {"write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg", "sendmmsg"}
SYSCALLS = READS | WRITES
FD_RULES = (tty.wait, objects.fd_wait, signals.fd_wait)


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    assert task.syscall is not None
    fd = task.syscall.arg_int(0)
    writing = task.syscall.name in WRITES
    what = call_text(snap, pid, task)
    return fd_wait(snap, pid, task.tid, fd, writing, what)


def fd_wait(snap: Snapshot, pid: int, tid: int, fd: int, writing: bool, what: str = "") -> Wait:
    """What a read (or a write) on fd waits for: who is at the other end. Also called by
    the poll rule once for every watched fd."""
    target = snap.target(pid, fd)
    if target is None:
        return Wait(pid, tid, what, end=End("unknown", f"fd {fd} is not open any more"))
    kind = target_kind(target)
    if kind == "pipe" or (kind == "path" and snap.is_fifo(pid, fd)):
        return pipe.wait(snap, pid, tid, fd, target, writing, what)
    if kind == "socket":
        return socket.wait(snap, pid, tid, fd, target, writing, what)
    for special in FD_RULES:  # terminals, eventfd/timerfd/inotify, signalfd
        found = special(snap, pid, tid, fd, target, writing, what)
        if found is not None:
            return found
    return Wait(pid, tid, what, end=_other(target, writing))


def _other(target: str, writing: bool) -> End:
    if target == "/dev/fuse":
        return End("idle", "a FUSE daemon thread waiting for the kernel's next request")
    if target.startswith(("/dev/pts/", "/dev/tty")):
        return End("terminal", f"{'writes to' if writing else 'reads from'} the terminal {target}")
    if target.startswith("/"):
        return End("disk", f"{'writes' if writing else 'reads'} {target}")
    return End("unknown", f"{'writes to' if writing else 'reads from'} {target} (not followed)")
