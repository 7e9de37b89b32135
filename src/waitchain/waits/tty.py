"""Terminals. A read on a pty slave /dev/pts/N waits for whoever holds its master: the
holders of /dev/ptmx whose fdinfo says `tty-index: N` (a terminal emulator, tmux, sshd,
`script`). A read on the master waits for the programs holding the slave. A read on a
real terminal waits for a person at it (the end of the chain)."""

from __future__ import annotations


from ..model import Edge, EdgeKind, End, EndKind, Missing, Pty, PtySide, Reason, Wait
from ..records import record
from ..snapshot import Snapshot
from .describe import nobody_end

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

MASTERS = ("/dev/ptmx", "/dev/pts/ptmx")
PTS_PREFIX = "/dev/pts/"
PTS_MAJORS = range(136, 144)  # UNIX98_PTY_SLAVE_MAJOR and the following ones


def wait(snap: Snapshot, pid: int, tid: int, fd: int, target: str, writing: bool,
         what: str) -> Optional[Wait]:
    """The wait of a read/write on a terminal fd, None if the fd is not a terminal."""
    if target in MASTERS:
        return _master(snap, _Waiter(pid, tid, fd, writing, what), target)
    index = _slave_index(snap, pid, target)
    if index is not None:
        return _slave(snap, _Waiter(pid, tid, fd, writing, what), index)
    if target.startswith("/dev/tty") or target == "/dev/console":
        return Wait(pid, tid, what, end=_terminal(target, writing=writing))
    return None


@record(frozen=True)
class _Waiter:
    """The thread reading (or writing) a terminal fd."""

    pid: int
    tid: int
    fd: int
    writing: bool
    what: str


def _terminal(subject: str, writing: Optional[bool] = None, pty: Optional[Pty] = None, unread: str = "") -> End:
    """A person at a real terminal (writing: which way), a pty slave no scanned process holds
    the master of (pty), or a master whose slave is not known (unread)."""
    return End(EndKind.TERMINAL, reason=Reason.TERMINAL_INPUT, subject=subject, writing=writing, pty=pty,
               unread=unread)


def _slave_index(snap: Snapshot, pid: int, target: str) -> Optional[int]:
    """N for /dev/pts/N, or for /dev/tty when the controlling terminal is a pty."""
    digits = target[len(PTS_PREFIX):]
    if target.startswith(PTS_PREFIX) and digits.isdigit() and digits.isascii():
        return int(digits)
    if target != "/dev/tty":
        return None
    number = snap.controlling_tty(pid)
    major, minor = (number >> 8) & 0xFFF, (number & 0xFF) | ((number >> 12) & 0xFFF00)
    return (major - PTS_MAJORS.start) * 256 + minor if major in PTS_MAJORS else None


def device_name(number: int) -> str:
    """/dev/pts/N or /dev/ttyN for a terminal's device number (stat's tty_nr), else MAJ:MIN."""
    major, minor = (number >> 8) & 0xFFF, (number & 0xFF) | ((number >> 12) & 0xFFF00)
    if major in PTS_MAJORS:
        return f"{PTS_PREFIX}{(major - PTS_MAJORS.start) * 256 + minor}"
    if major == 4 and minor < 64:
        return f"/dev/tty{minor}"
    return f"terminal {major}:{minor}"


def _slave(snap: Snapshot, waiter: _Waiter, index: int) -> Wait:
    masters = _masters(snap, index)
    slave = f"{PTS_PREFIX}{index}"
    if not masters:
        end = (nobody_end(snap, Missing.PTY_MASTER, slave) if snap.fds_unreadable() else
               _terminal(slave, pty=Pty(PtySide.SLAVE, index)))
        return Wait(waiter.pid, waiter.tid, waiter.what, end=end)
    edges = tuple(_edge(waiter, holder, fds, slave, Pty(PtySide.SLAVE, index), f"has tty-index: {index}")
                  for holder, fds in masters.items())
    return Wait(waiter.pid, waiter.tid, waiter.what, edges)


def _masters(snap: Snapshot, index: int) -> Dict[int, List[Tuple[str, int]]]:
    """pid → (master path, fd) of every /dev/ptmx fd whose fdinfo has tty-index: index."""
    found: Dict[int, List[Tuple[str, int]]] = {}
    for target in MASTERS:
        for holder, fd in snap.holders.get(target, ()):
            info = snap.fdinfo(holder, fd)
            if info is not None and ("tty-index", str(index)) in info.extra:
                found.setdefault(holder, []).append((target, fd))
    return found


def _master(snap: Snapshot, waiter: _Waiter, target: str) -> Wait:
    index = snap.fdinfo_field(waiter.pid, waiter.fd, "tty-index")
    if index is None or not (index.isdigit() and index.isascii()):
        return Wait(waiter.pid, waiter.tid, waiter.what,
                    end=_terminal(target, unread="no tty-index in its fdinfo"))
    slave = f"{PTS_PREFIX}{index}"
    holders: Dict[int, List[Tuple[str, int]]] = {}
    for holder, other in snap.holders.get(slave, ()):
        if holder != waiter.pid:
            holders.setdefault(holder, []).append((slave, other))
    pty = Pty(PtySide.MASTER, int(index))
    edges = tuple(_edge(waiter, holder, fds, f"{target} ({slave})", pty, f"→ {slave}")
                  for holder, fds in holders.items())
    if edges:
        return Wait(waiter.pid, waiter.tid, waiter.what, edges)
    return Wait(waiter.pid, waiter.tid, waiter.what, end=nobody_end(snap, Missing.PTY_SLAVE, slave))


def _edge(waiter: _Waiter, holder: int, fds: List[Tuple[str, int]], obj: str, pty: Pty, fact: str) -> Edge:
    where = ", ".join(_where(holder, path, fd) for path, fd in fds)
    return Edge(waiter.pid, waiter.tid, holder, None, EdgeKind.PTY, obj, f"{where} {fact}",
                fd=waiter.fd, writing=waiter.writing, holder_fds=tuple(fd for _, fd in fds), pty=pty)


def _where(holder: int, path: str, fd: int) -> str:
    """/proc/PID/fdinfo/FD (/dev/ptmx) for a master, /proc/PID/fd/FD for a slave."""
    if path in MASTERS:
        return f"/proc/{holder}/fdinfo/{fd} ({path})"
    return f"/proc/{holder}/fd/{fd}"
