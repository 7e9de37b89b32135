"""File locks: flock, POSIX fcntl(F_SETLKW) and OFD fcntl(F_OFD_SETLKW).

The waiter's request comes from its call (the flock operation, or the struct flock its
third argument points at). The locks it conflicts with are the held locks in /proc/locks on
the same device:inode. /proc/locks's pid column is whoever *took* a lock (stale after it
exits, -1 for OFD locks), so the holders are the processes whose fdinfo has that lock as a
`lock:` line: the kernel prints it for every fd sharing the owning file description, so an
fd inherited by a child lists both parent and child."""

from __future__ import annotations

from collections import Counter

from ..errors import WaitchainError
from ..model import Edge, EdgeKind, End, EndKind, FdInfo, FileLock, LockType, Mode, Reason, Task, Wait
from ..procfs.locks import LockEntry, device_text, fdinfo_locks, overlaps
from ..procfs.status import mask, signal_names
from ..records import record, replace
from ..snapshot import Snapshot
from .describe import fd_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

SYSCALLS = {"flock", "fcntl"}
LOCK_SH, LOCK_EX = 1, 2
F_SETLKW, F_OFD_SETLKW = 7, 38  # F_SETLKW64 is F_SETLKW on 64-bit kernels
F_RDLCK, F_WRLCK = 0, 1
SEEK_SET, SEEK_CUR = 0, 1
KINDS = {"FLOCK": EdgeKind.FLOCK, "POSIX": EdgeKind.POSIX_LOCK, "OFDLCK": EdgeKind.OFD_LOCK}
LOCK_TYPES = {"READ": LockType.READ, "WRITE": LockType.WRITE}


@record(frozen=True)
class Request:
    """The lock a blocked call asks for. type "" or range (0, None) when unknown."""

    cls: str  # FLOCK, POSIX, OFDLCK
    type: str  # READ, WRITE, ""
    start: int
    end: Optional[int]
    text: str  # the call's lock argument as a person reads it

    def conflicts(self, entry: LockEntry) -> bool:
        if not entry.held or not entry.compatible_class(self.cls):
            return False
        if "WRITE" not in (self.type or "WRITE", entry.type):
            return False
        return overlaps(self.start, self.end, entry.start, entry.end)


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    fd = call.arg_int(0)
    info = snap.fdinfo(pid, fd)
    request = _request(snap, pid, call.name, call.args, info)
    what = f"{call.name}({fd_text(snap, pid, fd)}, {request.text if request else hex(call.args[1])})"
    if request is None:
        return _ends(pid, task.tid, what, f"{call.name} with this command does not wait for a lock",
                     Reason.NOT_FOLLOWED)
    if info is None or snap.target(pid, fd) is None:
        return _ends(pid, task.tid, what, f"fd {fd} is not open any more", Reason.NOT_READABLE)
    waiter = _Waiter(pid, task.tid, fd, snap.target(pid, fd) or "", call.name, what)
    wait = _wait(snap, waiter, info, request)
    timer = _timer(snap, pid, task.tid, call.name) if wait.edges else None
    return replace(wait, end=timer) if timer is not None and wait.end is None else wait


def _timer(snap: Snapshot, pid: int, tid: int, name: str) -> Optional[End]:
    """A POSIX timer whose signal the thread catches and does not block ends the wait
    (EINTR): util-linux `flock -w N` arms one (SIGALRM) and blocks in flock(LOCK_EX). The
    timer may be disarmed, and when it fires is not shown: a way out, its time unknown. A
    process-directed timer counts only in a process of one thread (another thread could
    take the signal). The wait keeps its edges, followed, with this end as a remark: the
    graph takes it for a way out (graph/explore.node_of), so it never makes a deadlock."""
    try:
        status = snap.status(pid, tid)
    except WaitchainError:
        return None
    ending = mask(status, "SigCgt") & ~mask(status, "SigBlk")
    local = snap.local_id(pid, pid, tid)
    for timer in snap.timers(pid):
        if not 0 < timer.signo <= 64 or not ending & (1 << (timer.signo - 1)):
            continue
        alone = timer.notify == "signal" and len(snap.tasks(pid)) == 1
        if alone or (timer.notify == "thread" and timer.target in (tid, local)):
            signals = tuple(signal_names(1 << (timer.signo - 1)))
            return End(EndKind.SLEEPING, reason=Reason.TIMEOUT, call=name, signals=signals,
                       source=f"/proc/{pid}/timers")
    return None


@record(frozen=True)
class _Waiter:
    """The blocked thread and its call."""

    pid: int
    tid: int
    fd: int
    target: str  # the fd's link target: the locked file's path
    syscall: str
    what: str


def _ends(pid: int, tid: int, what: str, detail: str, reason: Reason) -> Wait:
    return Wait(pid, tid, what, end=End(EndKind.UNKNOWN, detail, reason=reason))


# --- the request ------------------------------------------------------------------------


def _request(snap: Snapshot, pid: int, name: str, args: Tuple[int, ...], info: Optional[FdInfo]) -> Optional[Request]:
    if name == "flock":
        op = args[1] & 3
        kind = {LOCK_SH: "READ", LOCK_EX: "WRITE"}.get(op, "")
        return Request("FLOCK", kind, 0, None, {LOCK_SH: "LOCK_SH", LOCK_EX: "LOCK_EX"}.get(op, hex(args[1])))
    cmd = args[1] & 0xFFFFFFFF
    if cmd not in (F_SETLKW, F_OFD_SETLKW):
        return None
    cls, text = ("OFDLCK", "F_OFD_SETLKW") if cmd == F_OFD_SETLKW else ("POSIX", "F_SETLKW")
    return _byte_range(snap, pid, cls, text, args[2], info)


def _byte_range(snap: Snapshot, pid: int, cls: str, text: str, address: int, info: Optional[FdInfo]) -> Request:
    try:
        l_type, whence, start, length = snap.memory.flock(pid, address)
    except WaitchainError:
        return Request(cls, "", 0, None, f"{text}, {{struct flock unreadable}}")
    kind = {F_RDLCK: "READ", F_WRLCK: "WRITE"}.get(l_type, "")
    start, end = _range(whence, start, length, info.pos if info else 0)
    type_text = {"READ": "F_RDLCK", "WRITE": "F_WRLCK"}.get(kind, str(l_type))
    shown = f"{text}, {{{type_text}, {_range_text(start, end)}}}"
    return Request(cls, kind, start, end, shown)


def _range(whence: int, start: int, length: int, pos: int) -> Tuple[int, Optional[int]]:
    """First and last byte (None: EOF); the whole file when relative to an unknown EOF."""
    if whence not in (SEEK_SET, SEEK_CUR):
        return 0, None
    start += pos if whence == SEEK_CUR else 0
    if length > 0:
        return start, start + length - 1
    if length < 0:
        return max(0, start + length), start - 1
    return start, None


def _range_text(start: int, end: Optional[int]) -> str:
    return f"bytes {start}-{'EOF' if end is None else end}"


# --- the conflicting locks and their holders --------------------------------------------


def _wait(snap: Snapshot, waiter: _Waiter, info: FdInfo, request: Request) -> Wait:
    pid, tid, what = waiter.pid, waiter.tid, waiter.what
    try:
        locks = snap.locks()
    except WaitchainError as exc:
        return _ends(pid, tid, what, f"/proc/locks unreadable: {exc}", Reason.NOT_READABLE)
    dev = _device(snap, pid, info.mnt_id)
    blockers = _blockers(locks, request, pid, dev, info)
    where = f"{dev or '?'}:{info.ino}"
    if not blockers:
        return _ends(pid, tid, what, f"no lock conflicting with this request on {where} in /proc/locks "
                     "(just released?)", Reason.OTHER)
    held = [(entry, _holders(snap, waiter.target, entry)) for entry in blockers]
    edges = _edges(waiter, request, held, where, info.ino)
    orphans = [entry for entry, holders in held if not holders]
    end = _orphan_end(orphans) if orphans and not edges else None
    return Wait(pid, tid, what, edges, end, mode=_mode(held))


def _mode(held: List[Tuple[LockEntry, Dict[int, List[int]]]]) -> Mode:
    """ALL when the request conflicts with several locks, each held by one process (a write
    lock behind several readers: every one must release). Else ANY: one lock whose file
    description several processes share (a fork) is released by any of them."""
    owners = [set(holders) for _, holders in held if holders]
    if len(set().union(*owners)) > 1 and all(len(o) == 1 for o in owners):
        return Mode.ALL
    return Mode.ANY


def _device(snap: Snapshot, pid: int, mnt_id: int) -> str:
    """The fd's device as /proc/locks prints it (from mountinfo), "" if unknown."""
    mount = snap.mounts(pid).get(mnt_id)
    return device_text(mount.major, mount.minor) if mount else ""


def _blockers(locks: List[LockEntry], request: Request, pid: int, dev: str, info: FdInfo) -> List[LockEntry]:
    """Held locks on the file that conflict with the request, except the requester's own:
    its file description's locks (as many as its fdinfo lists: another owner's OFD lock may
    read the same) and, for a POSIX request, the POSIX locks of its process."""
    own = Counter(entry.key for entry in fdinfo_locks(info.extra))
    found: List[LockEntry] = []
    for entry in locks:
        if entry.ino != info.ino or (dev and entry.dev != dev) or not request.conflicts(entry):
            continue
        if own[entry.key] > 0 or (request.cls == entry.cls == "POSIX" and entry.pid == pid):
            own[entry.key] -= 1
            continue
        if entry.key not in {e.key for e in found}:
            found.append(entry)
    return found


def _edges(waiter: _Waiter, request: Request, held: List[Tuple[LockEntry, Dict[int, List[int]]]],
           where: str, inode: int) -> Tuple[Edge, ...]:
    """One edge per holding process (the first conflicting lock it holds)."""
    edges: Dict[int, Edge] = {}
    for entry, holders in held:
        for holder, fds in holders.items():
            if holder not in edges:
                edges[holder] = _edge(waiter, request, entry, where, holder, fds, inode)
    return tuple(edges.values())


def _edge(waiter: _Waiter, request: Request, entry: LockEntry, where: str, holder: int,
          fds: List[int], inode: int) -> Edge:
    return Edge(waiter.pid, waiter.tid, holder, None, KINDS.get(entry.cls, EdgeKind.LOCK),
                waiter.target, _evidence(entry, request, where, holder, fds), syscall=waiter.syscall,
                fd=waiter.fd, holder_fds=tuple(fds), inode=inode or None, lock=_lock(entry))


def _lock(entry: LockEntry) -> Optional[FileLock]:
    """The held lock's type and range, None for a type other than READ or WRITE."""
    kind = LOCK_TYPES.get(entry.type)
    return FileLock(kind, entry.start, entry.end) if kind is not None else None


def _holders(snap: Snapshot, target: str, entry: LockEntry) -> Dict[int, List[int]]:
    """pid → fds whose fdinfo has the lock, among the holders of the same path; else among
    the fds of the pid /proc/locks names."""
    found = _with_lock(snap, snap.holders.get(target, ()), entry)
    if not found and entry.pid > 0 and entry.pid in snap.processes:
        fds = snap.processes[entry.pid].fds
        found = _with_lock(snap, [(entry.pid, fd) for fd, t in fds.items() if t.startswith("/")], entry)
    return found


def _with_lock(snap: Snapshot, candidates, entry: LockEntry) -> Dict[int, List[int]]:
    found: Dict[int, List[int]] = {}
    for pid, fd in candidates:
        info = snap.fdinfo(pid, fd)
        if info is not None and info.ino == entry.ino and any(e.key == entry.key for e in fdinfo_locks(info.extra)):
            found.setdefault(pid, []).append(fd)
    return found


def _evidence(entry: LockEntry, request: Request, where: str, holder: int, fds: List[int]) -> str:
    fd_list = ",".join(str(fd) for fd in fds)
    text = (f"/proc/locks: '{entry.line}' conflicts with this {request.text} on {where}; "
            f"/proc/{holder}/fdinfo/{fd_list} lists it as a lock: line")
    if entry.pid > 0 and entry.pid != holder:
        text += f" (the pid column names {entry.pid}, the process that took it)"
    return text


def _orphan_end(orphans: List[LockEntry]) -> End:
    lines = "; ".join(f"'{e.line}'" for e in orphans)
    return End(EndKind.UNKNOWN, f"held by a lock no scanned fd shows ({lines}): opened through "
               "another path, in another mount namespace, or by a process whose fds are not "
               "readable?", reason=Reason.NOT_READABLE)
