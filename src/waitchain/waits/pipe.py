"""Pipes and FIFOs. A reader waits for every holder of the write end; a writer on a full
pipe waits for the holders of the read end. The waiter's own process may be one of them
(a reader that holds a write end too, a writer that also reads): then the edge goes back to
its own process, because another of its threads may still write (or read); the graph calls
it a self-deadlock only when none can. Two ways out beyond the holders: a FIFO its reader
keeps open read-write so that writers may come and go (`cat 0<>fifo`: anyone may open its
path and write, whoever else holds it too), and a signal wake-up fd only the reader's
process holds (a handler writes it: signals.wake_sources)."""

from __future__ import annotations


from ..model import READ, READ_WRITE, WRITE, Edge, EdgeKind, End, EndKind, Holder, Missing, Mode, Reason, Wait
from ..procfs.fds import inode_of
from ..snapshot import Snapshot
from . import signals
from .describe import nobody_end

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

WRITERS = (WRITE, READ_WRITE)
READERS = (READ, READ_WRITE)


def wait(snap: Snapshot, pid: int, tid: int, fd: int, target: str, writing: bool, what: str,
         syscall: str = "") -> Wait:
    kind = EdgeKind.PIPE if target.startswith("pipe:") else EdgeKind.FIFO
    holders = other_end(snap, pid, target, writing)
    fill = snap.pipe_fill(pid, fd) if writing else None
    inode = _inode(snap, pid, fd, target)
    edges = tuple(
        Edge(pid, tid, holder, None, kind, target, _evidence(holder, fds, target, writing, unsure),
             syscall=syscall, fd=fd, writing=writing, fill=fill, holder_fds=fds, unsure=unsure,
             inode=inode)
        for holder, fds, unsure in by_pid(holders))
    end = None if edges else nobody_end(snap, Missing.READ_END if writing else Missing.WRITE_END, target)
    live: Tuple[End, ...] = ()
    if not writing and kind == EdgeKind.FIFO and any(e.to_pid == pid for e in edges):
        live = (End(EndKind.IDLE, reason=Reason.FIFO_OPEN, subject=target, self_held=True),)
    elif not writing and signals.is_wakeup_fd(snap, pid, edges):
        woken, outside = signals.wake_sources(snap, pid, tid, syscall, False, True, False)
        edges, live = edges + tuple(woken), tuple(outside)
    return Wait(pid, tid, what, edges, end, syscall=syscall, mode=Mode.ANY, live=live)


def _inode(snap: Snapshot, pid: int, fd: int, target: str) -> Optional[int]:
    """pipe:[N] names its inode; a FIFO's is in the waiter's fdinfo."""
    inode = inode_of(target)
    if inode is not None:
        return inode
    info = snap.fdinfo(pid, fd)
    return info.ino if info is not None and info.ino else None


def other_end(snap: Snapshot, pid: int, target: str, writing: bool) -> List[Holder]:
    """Holders of the end the waiter needs (the read end for a writer). A holder whose
    fdinfo is unreadable (it exited since the scan, or EACCES) may hold either end: kept,
    so the chain shows it as gone or unknown instead of dropping it; but never the waiter's
    own unreadable fds (its own fd of the end it uses is one of them)."""
    wanted = READERS if writing else WRITERS
    return [h for h in snap.holders_with(target, wanted) if h.access or h.pid != pid]


def by_pid(holders: List[Holder]) -> List[Tuple[int, Tuple[int, ...], bool]]:
    """(pid, its fds, unsure) per holding process, in scan order; unsure when none of its
    fds' access modes could be read."""
    found: Dict[int, List[Holder]] = {}
    for holder in holders:
        found.setdefault(holder.pid, []).append(holder)
    return [(p, tuple(h.fd for h in hs), not any(h.access for h in hs)) for p, hs in found.items()]


def _role(writing: bool) -> str:
    """The end the waiter needs someone at."""
    return "read" if writing else "write"


def _evidence(holder: int, fds: Tuple[int, ...], target: str, writing: bool, unsure: bool) -> str:
    end = _role(writing)
    how = (f"its access mode unreadable (exited since the scan, or not permitted): may hold the {end} end"
           if unsure else f"open for {'reading' if writing else 'writing'}: the {end} end")
    return f"/proc/{holder}/fd/{','.join(map(str, fds))} → {target}; {how}"
