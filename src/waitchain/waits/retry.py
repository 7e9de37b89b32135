"""Lock retry loops: a thread that sleeps briefly between tries of a non-blocking lock
(sqlite's busy timeout sleeps up to 100 ms between fcntl(F_SETLK) tries, `flock -n` in a
shell loop, lock-file retries) is blocked in nanosleep, not in a lock call: nothing in its
call names the lock. When it has a file open on which another process holds a lock that
conflicts with what it may ask for, the sleep is taken for a retry of that lock and gets an
edge to the holder (Edge.retry: inferred, since what it asks for is not known).

Only short sleeps count (at most signals.MAX_INTERVAL seconds asked), and only a lock that can
conflict: a WRITE lock held by another process, or any lock of a compatible class when
the sleeper itself holds a WRITE lock on the file (it waits to get more of it: sqlite's
writer holds PENDING while it waits for the readers to go). A sleeper holding a READ lock
next to other readers, the holder itself, and long sleeps get no edge. The lock's holders
are found as for a blocked lock call (waits/filelock.py): the fds whose fdinfo lists it.

Measured with the sqlite3 shell 3.40: its busy handler sleeps in clock_nanosleep (up to
100 ms) between fcntl(F_SETLK) tries that fail with EAGAIN, in rollback-journal mode (the
holder's WRITE lock on the PENDING..SHARED bytes of the database) and in WAL mode (the
holder's WRITE lock on byte 120 of the -shm file). Not seen: a shell loop of `flock -n`
and `sleep` (the shell has no fd on the file: flock(1) opens it), lock files made with
O_EXCL or mkdir (no kernel lock). Limits, since what the sleeper asks for is unknown: a
WAL reader holds a READ lock on the -shm file for as long as its connection is open, so a
reader that polls with short sleeps while another connection writes gets the edge too."""

from __future__ import annotations

from collections import Counter

from ..errors import WaitchainError
from ..model import Edge, EdgeKind, FdInfo, LockType, Mode, Retry
from ..procfs.locks import LockEntry, fdinfo_locks
from ..records import record
from ..snapshot import Snapshot
from . import filelock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

CLASSES = ("FLOCK", "POSIX", "OFDLCK")


@record(frozen=True)
class _File:
    """A regular file the sleeper has open, with a lock another process holds on it."""

    fd: int
    path: str
    info: FdInfo
    dev: str


def retry_edges(snap: Snapshot, pid: int, tid: int, call: str, interval: float) -> Tuple[Tuple[Edge, ...], Mode]:
    """Edges to the holders of the locks a short sleep (signals.retrying checks that it is
    one: at most signals.MAX_INTERVAL) may be retrying; () if none."""
    try:
        held = [e for e in snap.locks() if e.held and e.cls in CLASSES]
    except WaitchainError:
        return (), Mode.ANY
    inodes = {e.ino for e in held}
    edges: Dict[int, Edge] = {}
    owners: List[set] = []
    for file in _locked_files(snap, pid, inodes):
        own = _own_locks(snap, pid, file)
        for entry in _conflicting(held, file, own, pid):
            holders = {p: fds for p, fds in filelock._holders(snap, file.path, entry).items() if p != pid}
            owners.append(set(holders))
            for holder, fds in holders.items():
                if holder not in edges:
                    edges[holder] = _edge(pid, tid, file, entry, holder, fds, Retry(call, interval, _strongest(own)))
    return tuple(edges.values()), _mode(owners)


def _locked_files(snap: Snapshot, pid: int, inodes: set) -> List[_File]:
    """The sleeper's fds on a path whose inode has a held lock (fdinfo read only for paths)."""
    proc = snap.processes.get(pid)
    if proc is None or not inodes:
        return []
    found = []
    for fd, target in sorted(proc.fds.items()):
        if not target.startswith("/"):
            continue
        info = snap.fdinfo(pid, fd)
        if info is not None and info.ino in inodes:
            found.append(_File(fd, target, info, filelock._device(snap, pid, info.mnt_id)))
    return found


def _own_locks(snap: Snapshot, pid: int, file: _File) -> List[LockEntry]:
    """The locks the sleeper holds on the file: the `lock:` lines of every fd of its own on
    the same inode (POSIX locks are the process's, whichever fd took them)."""
    proc = snap.processes.get(pid)
    fds = [fd for fd, target in (proc.fds.items() if proc else ()) if target == file.path]
    own: List[LockEntry] = []
    for fd in sorted(set(fds) | {file.fd}):
        info = snap.fdinfo(pid, fd)
        if info is not None and info.ino == file.info.ino:
            own += [e for e in fdinfo_locks(info.extra) if e.ino == file.info.ino]
    return own


def _conflicting(held: List[LockEntry], file: _File, own: List[LockEntry], pid: int) -> List[LockEntry]:
    """Other processes' locks on the file that the sleeper may be retrying (see the module's
    docstring): not its own (as many as its fdinfo lists, and its POSIX locks)."""
    mine = Counter(e.key for e in own)
    found: List[LockEntry] = []
    for entry in held:
        if entry.ino != file.info.ino or (file.dev and entry.dev != file.dev):
            continue
        if mine[entry.key] > 0 or (entry.cls == "POSIX" and entry.pid == pid):
            mine[entry.key] -= 1
            continue
        wants_more = any(o.type == "WRITE" and o.compatible_class(entry.cls) for o in own)
        if (entry.type == "WRITE" or wants_more) and entry.key not in {e.key for e in found}:
            found.append(entry)
    return found


def _strongest(own: List[LockEntry]) -> Optional[LockType]:
    types = {e.type for e in own}
    return LockType.WRITE if "WRITE" in types else LockType.READ if "READ" in types else None


def _mode(owners: List[set]) -> Mode:
    """As a blocked lock call's (filelock._mode): ALL when several locks are each held by
    one process, different ones."""
    owners = [o for o in owners if o]
    if len(set().union(*owners)) > 1 and all(len(o) == 1 for o in owners):
        return Mode.ALL
    return Mode.ANY


def _edge(pid: int, tid: int, file: _File, entry: LockEntry, holder: int, fds: List[int],
          retry: Retry) -> Edge:
    return Edge(pid, tid, holder, None, filelock.KINDS.get(entry.cls, EdgeKind.LOCK), file.path,
                _evidence(pid, file, entry, holder, fds, retry), syscall=retry.call, fd=file.fd,
                holder_fds=tuple(fds), inode=file.info.ino or None, lock=filelock._lock(entry),
                retry=retry)


def _evidence(pid: int, file: _File, entry: LockEntry, holder: int, fds: List[int], retry: Retry) -> str:
    where = f"{file.dev or '?'}:{file.info.ino}"
    own = f"it holds a {retry.holds.name} lock there itself" if retry.holds else "it holds no lock there"
    text = (f"inferred: it sleeps {retry.interval:g} s in {retry.call} with fd {file.fd} open on {where}, "
            f"and /proc/locks: '{entry.line}' is held by {holder} (/proc/{holder}/fdinfo/"
            f"{','.join(map(str, fds))} lists it); {own}")
    if entry.pid > 0 and entry.pid != holder:
        text += f" (the pid column names {entry.pid}, the process that took it)"
    return text
