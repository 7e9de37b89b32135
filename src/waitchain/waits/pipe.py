"""Pipes and FIFOs. A reader waits for every other holder of the write end; a writer on a
full pipe waits for the holders of the read end. A reader that holds a write end itself can
never see EOF."""

from __future__ import annotations

from typing import List, Tuple

from ..model import READ, READ_WRITE, WRITE, Edge, End, Holder, Wait
from ..snapshot import Snapshot
from .describe import plural

WRITERS = (WRITE, READ_WRITE)
READERS = (READ, READ_WRITE)


def wait(snap: Snapshot, pid: int, tid: int, fd: int, target: str, writing: bool, what: str) -> Wait:
    kind = "pipe" if target.startswith("pipe:") else "fifo"
    wanted = READERS if writing else WRITERS
    # A holder whose fdinfo is unreadable (it exited since the scan, or EACCES) may hold
    # either end: keep it, so the chain shows it as gone/unknown instead of dropping it.
    holders = [h for h in snap.holders_of(target) if h.access in wanted or (not h.access and h.pid != pid)]
    others = [h for h in holders if h.pid != pid]
    own = [h for h in holders if h.pid == pid]
    label = _write_label(snap, pid, fd, others) if writing else "waits for the writer"
    edges = tuple(_edges(pid, tid, others, kind, target, label, writing))
    return Wait(pid, tid, what, edges, _own_end(own, others, writing, target))


def _edges(pid: int, tid: int, holders: List[Holder], kind: str, target: str, label: str,
           writing: bool):
    for other, fds, known in _by_pid(holders):
        end = "read" if writing else "write"
        how = (f"fdinfo flags mark the {end} end" if known else
               f"fdinfo unreadable (exited since the scan, or not permitted): may hold the {end} end")
        evidence = f"/proc/{other}/fd/{fds} → {target}; {how}"
        yield Edge(pid, tid, other, None, kind, target, evidence, label)


def _by_pid(holders: List[Holder]) -> List[Tuple[int, str, bool]]:
    """(pid, "fd,fd", whether every access mode was read) per holding process."""
    fds: dict = {}
    for holder in holders:
        fds.setdefault(holder.pid, []).append(holder)
    return [(pid, ",".join(str(h.fd) for h in hs), all(h.access for h in hs)) for pid, hs in fds.items()]


def _write_label(snap: Snapshot, pid: int, fd: int, readers: List[Holder]) -> str:
    fill = snap.pipe_fill(pid, fd)
    who = ", ".join(sorted({str(h.pid) for h in readers})) or "none"
    readers_text = f"reader is {who}" if len({h.pid for h in readers}) <= 1 else f"readers are {who}"
    if fill is None:
        return f"pipe full; {readers_text}"
    if not fill.full:
        return f"pipe holds {fill.used}/{fill.size} B, no room for this write; {readers_text}"
    return f"pipe full {fill.used}/{fill.size} B; {readers_text}"


def _own_end(own: List[Holder], others: List[Holder], writing: bool, target: str):
    if not own and others:
        return None
    if not own:
        role = "read" if writing else "write"
        return End("unknown", f"no process holds the {role} end of {target}")
    fds = ", ".join(str(h.fd) for h in own)
    if writing:
        detail = f"the pipe is full and this process holds a read end itself ({plural(len(own), 'fd')} {fds})"
        return End("self", detail) if not others else None
    detail = f"EOF can never come: this process holds the write end, fd {fds}"
    return End("self", detail)
