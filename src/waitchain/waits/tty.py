"""Terminals. A read on a pty slave /dev/pts/N waits for whoever holds its master: the
holders of /dev/ptmx whose fdinfo says `tty-index: N` (a terminal emulator, tmux, sshd,
`script`). A read on the master waits for the programs holding the slave. A read on a
real terminal waits for a person at it (the end of the chain)."""

from __future__ import annotations

from typing import Dict, List, Optional

from ..model import Edge, End, Wait
from ..procfs.status import tty_nr
from ..snapshot import Snapshot

MASTERS = ("/dev/ptmx", "/dev/pts/ptmx")
PTS_PREFIX = "/dev/pts/"
PTS_MAJORS = range(136, 144)  # UNIX98_PTY_SLAVE_MAJOR and the following ones


def wait(snap: Snapshot, pid: int, tid: int, fd: int, target: str, writing: bool,
         what: str) -> Optional[Wait]:
    """The wait of a read/write on a terminal fd, None if the fd is not a terminal."""
    if target in MASTERS:
        return _master(snap, pid, tid, fd, target, writing, what)
    index = _slave_index(snap, pid, target)
    if index is not None:
        return _slave(snap, pid, tid, index, writing, what)
    if target.startswith("/dev/tty") or target == "/dev/console":
        doing = "writes to" if writing else "waits for input from"
        return Wait(pid, tid, what, end=End("terminal", f"{doing} a person at the terminal {target}"))
    return None


def _slave_index(snap: Snapshot, pid: int, target: str) -> Optional[int]:
    """N for /dev/pts/N, or for /dev/tty when the controlling terminal is a pty."""
    digits = target[len(PTS_PREFIX):]
    if target.startswith(PTS_PREFIX) and digits.isdigit() and digits.isascii():
        return int(digits)
    if target != "/dev/tty":
        return None
    number = tty_nr(snap.fs, pid)
    major, minor = (number >> 8) & 0xFFF, (number & 0xFF) | ((number >> 12) & 0xFFF00)
    return (major - PTS_MAJORS.start) * 256 + minor if major in PTS_MAJORS else None


def _slave(snap: Snapshot, pid: int, tid: int, index: int, writing: bool, what: str) -> Wait:
    masters = _masters(snap, index)
    slave = f"{PTS_PREFIX}{index}"
    if not masters:
        detail = f"no scanned process holds the master of {slave} (no /dev/ptmx fd with tty-index: {index})"
        return Wait(pid, tid, what, end=End("terminal", detail))
    label = ("waits for the terminal (the pty master's holder) to read its output" if writing
             else "waits for input from the terminal (the pty master's holder)")
    edges = tuple(_edge(pid, tid, holder, fds, slave, label, f"has tty-index: {index}")
                  for holder, fds in masters.items())
    return Wait(pid, tid, what, edges)


def _masters(snap: Snapshot, index: int) -> Dict[int, List[str]]:
    found: Dict[int, List[str]] = {}
    for target in MASTERS:
        for holder, fd in snap.holders.get(target, ()):
            info = snap.fdinfo(holder, fd)
            if info is not None and ("tty-index", str(index)) in info.extra:
                found.setdefault(holder, []).append(f"/proc/{holder}/fdinfo/{fd} ({target})")
    return found


def _master(snap: Snapshot, pid: int, tid: int, fd: int, target: str, writing: bool, what: str) -> Wait:
    index = snap.fdinfo_field(pid, fd, "tty-index")
    if index is None:
        return Wait(pid, tid, what, end=End("terminal", f"{target} without tty-index in its fdinfo"))
    slave = f"{PTS_PREFIX}{index}"
    holders: Dict[int, List[str]] = {}
    for holder, other in snap.holders.get(slave, ()):
        if holder != pid:
            holders.setdefault(holder, []).append(f"/proc/{holder}/fd/{other}")
    label = (f"waits for the programs on {slave} to read their input" if writing
             else f"waits for output from the programs on {slave}")
    edges = tuple(_edge(pid, tid, holder, links, f"{target} ({slave})", label, f"→ {slave}")
                  for holder, links in holders.items())
    return Wait(pid, tid, what, edges, None if edges else End("unknown", f"no other process holds {slave}"))


def _edge(pid: int, tid: int, holder: int, where: List[str], obj: str, label: str, fact: str) -> Edge:
    evidence = f"{', '.join(where)} {fact}"
    return Edge(pid, tid, holder, None, "pty", obj, evidence, label)
