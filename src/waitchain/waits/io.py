"""read/write family: dispatch on what the fd argument is."""

from __future__ import annotations


from ..model import End, EndKind, Mode, Reason, Task, Wait
from ..procfs.fds import target_kind
from ..records import replace
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
    return fd_wait(snap, pid, task.tid, fd, writing, what, task.syscall.name)


def fd_wait(snap: Snapshot, pid: int, tid: int, fd: int, writing: bool, what: str = "",
            syscall: str = "") -> Wait:
    """What a read (or a write) on fd waits for: who is at the other end. Also called by
    the poll rule once for every watched fd (with the poll call's name as `syscall`)."""
    target = snap.target(pid, fd)
    if target is None:
        end = End(EndKind.UNKNOWN, f"fd {fd} is not open any more", reason=Reason.OTHER)
        return Wait(pid, tid, what, end=end, syscall=syscall)
    kind = target_kind(target)
    if kind == "pipe" or (kind == "path" and snap.is_fifo(pid, fd)):
        return pipe.wait(snap, pid, tid, fd, target, writing, what, syscall)
    if kind == "socket":
        return socket.wait(snap, pid, tid, fd, target, writing, what, syscall)
    for special in FD_RULES:  # terminals, eventfd/timerfd/inotify, signalfd
        found = special(snap, pid, tid, fd, target, writing, what)
        if found is not None:
            return _with_call(found, fd, syscall)
    return Wait(pid, tid, what, end=_other(target, writing), syscall=syscall, mode=Mode.ANY)


def _with_call(wait: Wait, fd: int, syscall: str) -> Wait:
    """The call's name and fd on a wait (and its edges) that another rule built without them."""
    edges = tuple(replace(e, syscall=e.syscall or syscall, fd=fd if e.fd is None else e.fd)
                  for e in wait.edges)
    return replace(wait, edges=edges, syscall=wait.syscall or syscall)


def _other(target: str, writing: bool) -> End:
    if target == "/dev/fuse":
        return End(EndKind.IDLE, "a FUSE daemon thread waiting for the kernel's next request",
                   reason=Reason.FUSE_DAEMON, subject=target)
    if target.startswith(("/dev/pts/", "/dev/tty")):
        detail = f"{'writes to' if writing else 'reads from'} the terminal {target}"
        reason = Reason.OTHER if writing else Reason.TERMINAL_INPUT
        return End(EndKind.TERMINAL, detail, reason=reason, subject=target)
    if target.startswith("/dev/"):
        detail = f"{'writes to' if writing else 'reads from'} the device {target} (a driver's wait: not followed)"
        return End(EndKind.UNKNOWN, detail, reason=Reason.NOT_FOLLOWED, subject=target)
    if target.startswith("/"):
        return End(EndKind.DISK, f"{'writes' if writing else 'reads'} {target}", reason=Reason.IO, subject=target)
    detail = f"{'writes to' if writing else 'reads from'} {target} (not followed)"
    return End(EndKind.UNKNOWN, detail, reason=Reason.NOT_FOLLOWED, subject=target)
