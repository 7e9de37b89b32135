"""Other local objects a thread can wait on.

- eventfd: every other holder of the same eventfd may write it. Link targets are all
  `anon_inode:[eventfd]` and fdinfo `ino:` is the one shared anonymous inode, so the object
  is told apart by fdinfo `eventfd-id:` (Linux 6.x); without it no holder can be named.
- timerfd: time (end `sleeping`), or forever when the timer is disarmed.
- inotify: file-system events (end `idle`).
- POSIX message queues (mq_timedreceive/mq_timedsend): the other holders of the queue.
- SysV message queues and semaphores (msgrcv, msgsnd, semop): /proc/sysvipc says what
  the object holds; it has no holders, so the chain ends there."""

from __future__ import annotations


from ..errors import WaitchainError
from ..model import READ, READ_WRITE, WRITE, Edge, EdgeKind, End, EndKind, FdInfo, Missing, Reason, Task, Wait
from ..snapshot import Snapshot
from .describe import fd_text, nobody_end

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional

SYSCALLS = {"mq_timedreceive", "mq_timedsend", "msgrcv", "msgsnd", "semop", "semtimedop"}
IPC_NOWAIT = 0o4000


def fd_wait(snap: Snapshot, pid: int, tid: int, fd: int, target: str, writing: bool,
            what: str) -> Optional[Wait]:
    """read/write on an eventfd, timerfd or inotify fd; None for other fds."""
    if target == "anon_inode:[eventfd]":
        return _eventfd(snap, pid, tid, fd, target, writing, what)
    if target == "anon_inode:[timerfd]":
        return Wait(pid, tid, what, end=_timerfd(snap, pid, fd))
    if target == "anon_inode:inotify":
        return Wait(pid, tid, what, end=_inotify(snap, pid, fd))
    return None


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    if call.name.startswith("mq_"):
        return _mqueue(snap, pid, task.tid, call.arg_int(0), call.name == "mq_timedsend")
    if call.name.startswith("msg"):
        return _msg(snap, pid, task)
    return _sem(snap, pid, task)


# --- eventfd, timerfd, inotify ------------------------------------------------------------


def _eventfd(snap: Snapshot, pid: int, tid: int, fd: int, target: str, writing: bool, what: str) -> Wait:
    ident = snap.fdinfo_field(pid, fd, "eventfd-id")
    if ident is None:
        detail = f"waits on eventfd {fd}; this kernel prints no eventfd-id, so its other holders cannot be told apart"
        return Wait(pid, tid, what, end=End(EndKind.UNKNOWN, detail, reason=Reason.OTHER, subject=target))
    edges = tuple(Edge(pid, tid, holder, None, EdgeKind.EVENTFD, f"eventfd-id {ident}",
                       f"/proc/{holder}/fdinfo/{','.join(map(str, fds))} and /proc/{pid}/fdinfo/{fd} "
                       f"both say eventfd-id: {ident}", fd=fd, writing=writing, holder_fds=tuple(fds))
                  for holder, fds in _same_eventfd(snap, pid, target, ident).items())
    if edges:
        return Wait(pid, tid, what, edges)
    detail = f"no other process holds eventfd-id {ident}: only another thread of this process can write it"
    return Wait(pid, tid, what, end=_alone(snap, detail, Missing.EVENTFD, f"eventfd-id {ident}"))


def _same_eventfd(snap: Snapshot, pid: int, target: str, ident: str) -> Dict[int, List[int]]:
    """Other processes' fds on the eventfd with this id (eventfd ids are system-wide)."""
    others: Dict[int, List[int]] = {}
    for holder, fd in snap.holders.get(target, ()):
        if holder != pid and snap.fdinfo_field(holder, fd, "eventfd-id") == ident:
            others.setdefault(holder, []).append(fd)
    return others


def _timerfd(snap: Snapshot, pid: int, fd: int) -> End:
    value = snap.fdinfo_field(pid, fd, "it_value")
    interval = snap.fdinfo_field(pid, fd, "it_interval")
    if value in ("(0, 0)", None) and interval in ("(0, 0)", None):
        return End(EndKind.SLEEPING, reason=Reason.TIMER, fd=fd)
    return End(EndKind.SLEEPING, reason=Reason.TIMER, timeout=_seconds(value), fd=fd, timer=(str(value), str(interval)))


def _seconds(pair: Optional[str]) -> Optional[float]:
    """fdinfo's "(s, ns)" as seconds; None when absent, zero or not two numbers."""
    parts = (pair or "").strip("()").split(",")
    try:
        sec, nsec = (int(p) for p in parts)
    except ValueError:
        return None
    return sec + nsec / 1e9 if sec or nsec else None


def _inotify(snap: Snapshot, pid: int, fd: int) -> End:
    info = snap.fdinfo(pid, fd)
    watches = sum(1 for k, _ in (info.extra if info else ()) if k == "inotify wd")
    return End(EndKind.IDLE, reason=Reason.FILE_EVENTS, fd=fd, count=watches)


# --- POSIX message queues -----------------------------------------------------------------


def _mqueue(snap: Snapshot, pid: int, tid: int, fd: int, sending: bool) -> Wait:
    name = "mq_timedsend" if sending else "mq_timedreceive"
    what = f"{name}({fd_text(snap, pid, fd)})"
    target, info = snap.target(pid, fd), snap.fdinfo(pid, fd)
    if target is None or info is None:
        return Wait(pid, tid, what, end=End(EndKind.UNKNOWN, f"fd {fd} is not open any more",
                                            reason=Reason.NOT_READABLE))
    wanted = (READ, READ_WRITE) if sending else (WRITE, READ_WRITE)
    others = _queue_holders(snap, pid, target, info.mnt_id, info.ino, wanted)
    edges = tuple(_queue_edge(pid, tid, fd, sending, target, info, holder, fds)
                  for holder, fds in others.items())
    if edges:
        return Wait(pid, tid, what, edges)
    role = "for reading" if sending else "for writing"
    detail = f"no other process has the message queue {target} open {role}"
    return Wait(pid, tid, what, end=_alone(snap, detail, Missing.MQUEUE_READER if sending else Missing.MQUEUE_WRITER, target))


def _queue_edge(pid: int, tid: int, fd: int, sending: bool, target: str, info: FdInfo, holder: int,
                fds: List[int]) -> Edge:
    evidence = (f"{', '.join(f'/proc/{holder}/fd/{n}' for n in fds)} → {target}, same fdinfo "
                f"mnt_id {info.mnt_id} and ino {info.ino}")
    return Edge(pid, tid, holder, None, EdgeKind.MQUEUE, f"mqueue {target}", evidence, fd=fd,
                writing=sending, holder_fds=tuple(fds), inode=info.ino or None)


def _alone(snap: Snapshot, detail: str, missing: Missing, subject: str) -> End:
    """Only the waiter's process holds the object: idle, waiting for an event; unknown when
    some processes' fds could not be read (the other holder may be among them)."""
    if snap.fds_unreadable():
        return nobody_end(snap, missing, subject)
    return End(EndKind.IDLE, detail, reason=Reason.EVENT, subject=subject)


def _queue_holders(snap: Snapshot, pid: int, target: str, mnt_id: int, ino: int, wanted) -> Dict[int, List[int]]:
    """Other holders of the same queue (mount id and inode: the mqueue mount a process
    opens through mq_open is the kernel's internal one, in nobody's mountinfo)."""
    found: Dict[int, List[int]] = {}
    for holder, fd in snap.holders.get(target, ()):
        info = snap.fdinfo(holder, fd)
        if holder != pid and info is not None and (info.mnt_id, info.ino) == (mnt_id, ino) \
                and info.access in wanted:
            found.setdefault(holder, []).append(fd)
    return found


# --- SysV IPC ---------------------------------------------------------------------------


def _msg(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    msqid, sending = call.arg_int(0), call.name == "msgsnd"
    what = f"{call.name}({msqid})"
    row = _row(snap, "msg", "msqid", msqid)
    if row is None:
        return Wait(pid, task.tid, what, end=_ipc_missing(snap, pid, "message queue", msqid))
    facts = (f"/proc/sysvipc/msg: queue {msqid} (key {_col(row, 'key', '#x')}) holds {_col(row, 'qnum')} "
             f"messages, {_col(row, 'cbytes')} B; last sent by {_col(row, 'lspid')}, "
             f"last received by {_col(row, 'lrpid')}")
    detail = f"waits for {_wanted(call.arg_int(3)) if not sending else 'room in the queue'}: {facts}"
    end = End(EndKind.IDLE, detail, reason=Reason.EVENT, subject=f"SysV message queue {msqid}")
    return Wait(pid, task.tid, what, end=end)


def _wanted(kind: int) -> str:
    """msgrcv's msgtyp: which message it waits for."""
    if kind > 0:
        return f"a message of type {kind}"
    return f"a message of type ≤ {-kind}" if kind < 0 else "a message"


def _sem(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    semid = call.arg_int(0)
    what = f"{call.name}({semid})"
    row = _row(snap, "sem", "semid", semid)
    if row is None:
        return Wait(pid, task.tid, what, end=_ipc_missing(snap, pid, "semaphore set", semid))
    ops = _sem_ops(snap, pid, call.args[1], call.arg_int(2))
    detail = (f"waits on SysV semaphore set {semid} (key {_col(row, 'key', '#x')}, "
              f"{_col(row, 'nsems')} semaphores){ops}; "
              "a semaphore has no owner, so nobody can be named (/proc/sysvipc/sem)")
    end = End(EndKind.UNKNOWN, detail, reason=Reason.NO_OWNER, subject=f"SysV semaphore set {semid}")
    return Wait(pid, task.tid, what, end=end)


def _col(row: Dict[str, int], name: str, spec: str = "") -> str:
    """A column of a /proc/sysvipc row, "?" when this kernel does not print it."""
    return format(row[name], spec) if name in row else "?"


def _sem_ops(snap: Snapshot, pid: int, address: int, count: int) -> str:
    try:
        ops = snap.memory.sembufs(pid, address, count)
    except WaitchainError:
        return ""
    texts = [f"#{num} to be ≥ {-op}" if op < 0 else f"#{num} to be 0" for num, op, flg in ops
             if op <= 0 and not flg & IPC_NOWAIT]
    return f": for semaphore {', '.join(texts)}" if texts else ""


def _ipc_missing(snap: Snapshot, pid: int, what: str, ident: int) -> End:
    mine, theirs = snap.namespace(None, "ipc"), snap.namespace(pid, "ipc")
    where = " (it is in another IPC namespace)" if mine != theirs else ""
    return End(EndKind.UNKNOWN, f"SysV {what} {ident} is not in /proc/sysvipc{where}",
               reason=Reason.NOT_READABLE, subject=f"SysV {what} {ident}")


def _row(snap: Snapshot, kind: str, column: str, ident: int) -> Optional[Dict[str, int]]:
    """The /proc/sysvipc/KIND row whose COLUMN is ident; None if absent."""
    return next((row for row in snap.sysvipc(kind) if row.get(column) == ident), None)
