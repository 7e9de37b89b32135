"""futex: a thread waiting for another thread. A futex is only a number in memory, so an
owner is named only when the memory proves to hold one:

- PI futexes (FUTEX_LOCK_PI): the kernel's protocol puts the owner TID in the word's low
  30 bits (FUTEX_WAITERS and FUTEX_OWNER_DIED above).
- glibc robust mutexes wait (on a shared futex) with value owner TID | FUTEX_WAITERS; the
  pthread_mutex_t's `__kind` says robust.
- Other glibc mutexes wait with FUTEX_WAIT and value 2. pthread_mutex_t is `=iIiIi` (__lock,
  __count, __owner, __nusers, __kind) on x86_64 and aarch64: accepted only when __lock is
  set, __kind is a mutex type (0-3) with only known flag bits, process-shared exactly when
  the futex is shared, __nusers (private) is at most the process's threads, and __owner is
  a live thread. Other locks wait with value 2 too:
  stdio's _IO_lock_t is {int lock; int cnt; void *owner}, whose "owner" is half a pointer.
- pthread_join waits (on a shared futex) on the joined thread's tid word: the value is the
  TID of a thread of this process.
- Anything else (condition variables, semaphores, Python locks) names no owner. A private
  one (FUTEX_PRIVATE_FLAG: the word is in memory only this process's threads share) can
  still only be woken by a thread of this process: an edge to the process (any of its
  other threads, or a signal handler when one can run), so that a process whose threads
  all wait so, untimed, is stuck for good. A shared one ends the chain: any process
  mapping the page could wake it.

Every TID read from the target is a number in the target's pid namespace: it is turned
into a host TID through NSpid (snap.host_tid) before it names a thread. Memory is read
through snap.memory (process_vm_readv): the target is never stopped."""

from __future__ import annotations


from ..errors import WaitchainError
from ..model import Edge, EdgeKind, End, EndKind, Ownerless, Reason, Task, Wait
from . import signals
from ..procfs.cstructs import MutexWords
from ..records import record, replace
from ..snapshot import Snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple

SYSCALLS = {"futex"}
WAIT, LOCK_PI, TRYLOCK_PI, WAIT_BITSET, WAIT_REQUEUE_PI, LOCK_PI2 = 0, 6, 8, 9, 11, 13
TIMED = {WAIT, WAIT_BITSET, LOCK_PI, LOCK_PI2, WAIT_REQUEUE_PI}  # the fourth argument is a timeout
PI_CALLS = (LOCK_PI, LOCK_PI2, TRYLOCK_PI)
PRIVATE, CLOCK_REALTIME = 128, 256
WAITERS, OWNER_DIED, TID_MASK = 0x80000000, 0x40000000, 0x3FFFFFFF
PID_MAX_LIMIT = 1 << 22  # the kernel's upper bound for pid_max
NAMES = {WAIT: "FUTEX_WAIT", LOCK_PI: "FUTEX_LOCK_PI", TRYLOCK_PI: "FUTEX_TRYLOCK_PI",
         WAIT_BITSET: "FUTEX_WAIT_BITSET", WAIT_REQUEUE_PI: "FUTEX_WAIT_REQUEUE_PI",
         LOCK_PI2: "FUTEX_LOCK_PI2"}
# glibc's __kind: a type in the low 2 bits (timed, recursive, errorcheck, adaptive), flags.
KIND_TYPES, ROBUST, PRIO_INHERIT, PRIO_PROTECT, PSHARED = 3, 16, 32, 64, 128
ELISION, NO_ELISION = 256, 512
LOCK_FLAGS = PSHARED | ELISION | NO_ELISION  # the flags a mutex that waits on value 2 may have
# ownerless waits that only the process's own threads can end, when the futex is private
OWN_THREADS_ONLY = {Ownerless.NONE_RECORDED, Ownerless.PYTHON, Ownerless.UNPROVED}
MAX_CANDIDATES = 512  # processes searched for the owner of a shared futex in another pid namespace


@record(frozen=True)
class Futex:
    """One blocked futex call, decoded."""

    pid: int
    tid: int
    addr: int
    cmd: int
    private: bool
    val: int
    what: str

    def end(self, detail: str, reason: Reason) -> Wait:
        return Wait(self.pid, self.tid, self.what, end=End(EndKind.UNKNOWN, detail, reason=reason))

    def ownerless(self, why: Ownerless) -> Wait:
        end = End(EndKind.UNKNOWN, reason=Reason.NO_OWNER, address=self.addr, ownerless=why)
        return Wait(self.pid, self.tid, self.what, end=end)


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    futex = decode(pid, task)
    try:
        found = _follow(snap, futex)
    except WaitchainError as exc:
        return futex.end(f"the futex word is unreadable: {exc}", Reason.NOT_READABLE)
    if found is None:
        found = futex.ownerless(Ownerless.PYTHON if _python(snap, futex.pid) else Ownerless.NONE_RECORDED)
    if futex.private and found.end is not None and found.end.ownerless in OWN_THREADS_ONLY:
        found = _own_threads(snap, futex, found.end.ownerless)
    if task.syscall is not None and task.syscall.args[3] and futex.cmd in TIMED:
        # pthread_mutex_timedlock, a timed join, a timed condition wait: the clock ends the
        # wait, whatever the owner does
        timeout = End(EndKind.SLEEPING, reason=Reason.TIMEOUT, call="futex")
        return replace(found, live=found.live + (timeout,))
    return found


def decode(pid: int, task: Task) -> Futex:
    call = task.syscall
    assert call is not None
    addr, op, val = call.args[0], call.args[1] & 0xFFFFFFFF, call.args[2] & 0xFFFFFFFF
    cmd = op & ~(PRIVATE | CLOCK_REALTIME)
    what = f"futex({addr:#x}, {_op_text(op)}, {val})"
    return Futex(pid, task.tid, addr, cmd, bool(op & PRIVATE), val, what)


def _op_text(op: int) -> str:
    text = NAMES.get(op & ~(PRIVATE | CLOCK_REALTIME), str(op & 0x7F))
    return text + ("_PRIVATE" if op & PRIVATE else "") + ("|FUTEX_CLOCK_REALTIME" if op & CLOCK_REALTIME else "")


def _follow(snap: Snapshot, futex: Futex) -> Optional[Wait]:
    if futex.cmd in PI_CALLS:
        return _pi(snap, futex)
    if futex.cmd not in (WAIT, WAIT_BITSET):
        return None
    found = _robust(snap, futex) if futex.val & WAITERS else None
    if found is None and futex.val == 2:
        found = _mutex(snap, futex)
    return found or _join(snap, futex) or _unproved(futex)


# --- the kinds of owner word ------------------------------------------------------------------


def _pi(snap: Snapshot, futex: Futex) -> Wait:
    word = snap.memory.u32(futex.pid, futex.addr)
    evidence = f"PI futex word at {futex.addr:#x} is {word:#x}: the owner TID is its low 30 bits"
    if not word & TID_MASK:
        return futex.ownerless(Ownerless.RELEASED)
    return _owner(snap, futex, word & TID_MASK, not futex.private, evidence)


def _robust(snap: Snapshot, futex: Futex) -> Optional[Wait]:
    """A robust mutex: the waited-for value is the owner's TID with FUTEX_WAITERS."""
    words = snap.memory.mutex(futex.pid, futex.addr)
    if not words.kind & ROBUST or not _plausible_kind(words.kind):
        return None
    evidence = (f"robust mutex at {futex.addr:#x} (__kind {words.kind:#x}) waited on with value "
                f"{futex.val:#x}: the owner TID is its low 30 bits")
    return _owner(snap, futex, futex.val & TID_MASK, bool(words.kind & PSHARED), evidence)


def _mutex(snap: Snapshot, futex: Futex) -> Optional[Wait]:
    """A plain glibc mutex waited on with value 2, when its words prove to be one."""
    words = snap.memory.mutex(futex.pid, futex.addr)
    if not _plain_mutex(snap, futex, words):
        return None
    owner = _locate(snap, futex.pid, words.owner & TID_MASK, not futex.private)
    if owner is None:
        return None
    evidence = (f"glibc pthread_mutex_t at {futex.addr:#x} read with process_vm_readv: "
                f"lock={words.lock} count={words.count} owner TID={words.owner} (the int at offset 8) "
                f"nusers={words.nusers} kind={words.kind}")
    return _edge(snap, futex, EdgeKind.MUTEX, owner, words.owner & TID_MASK, evidence)


def _join(snap: Snapshot, futex: Futex) -> Optional[Wait]:
    """pthread_join: a shared futex whose value is a TID of this process, still in the word."""
    if futex.private or not 0 < futex.val <= PID_MAX_LIMIT:
        return None
    joined = snap.host_tid(futex.pid, futex.val)
    if joined is None or joined == futex.tid or snap.memory.u32(futex.pid, futex.addr) != futex.val:
        return None
    evidence = (f"futex word at {futex.addr:#x} holds {futex.val}, the TID of a thread of this process"
                f"{_translated(futex.val, joined)}: pthread_join waits on the joined thread's tid "
                "word until it exits")
    return _edge(snap, futex, EdgeKind.JOIN, (futex.pid, joined), futex.val, evidence)


def _own_threads(snap: Snapshot, futex: Futex, why: Ownerless) -> Wait:
    """A private futex that names no owner: an edge to its own process (another thread,
    or a signal handler, must wake it)."""
    edge = Edge(futex.pid, futex.tid, futex.pid, None, EdgeKind.FUTEX, f"futex {futex.addr:#x}",
                f"{_op_text(futex.cmd | PRIVATE)} on {futex.addr:#x}: a private futex is woken only by a "
                "thread sharing the process's memory; the word records no owner", syscall="futex",
                address=futex.addr, ownerless=why)
    sigchld, handlers = signals.handler_wakes(snap, futex.pid, futex.tid, "futex", _python(snap, futex.pid))
    return Wait(futex.pid, futex.tid, futex.what, (edge, *sigchld), live=tuple(handlers))


def _unproved(futex: Futex) -> Optional[Wait]:
    if futex.val != 2:
        return None
    return futex.ownerless(Ownerless.UNPROVED)


def _plain_mutex(snap: Snapshot, futex: Futex, words: MutexWords) -> bool:
    """The lock is taken, the type is one that waits on value 2, and (a private mutex)
    its users are no more than the process's threads (cond waits keep theirs counted)."""
    if not (words.lock and _plain_kind(words.kind, futex.private)):
        return False
    return not futex.private or words.nusers <= len(snap.tasks(futex.pid))


def _plain_kind(kind: int, private: bool) -> bool:
    """A mutex type that waits on value 2, process-shared exactly when the futex is."""
    return 0 <= kind and not kind & ~(KIND_TYPES | LOCK_FLAGS) and bool(kind & PSHARED) != private


def _plausible_kind(kind: int) -> bool:
    """Only glibc's known __kind bits (a priority ceiling only with PRIO_PROTECT)."""
    known = KIND_TYPES | ROBUST | PRIO_INHERIT | PRIO_PROTECT | LOCK_FLAGS
    return 0 <= kind and not kind & ~(known | (0xFFF80000 if kind & PRIO_PROTECT else 0))


# --- the owner: a live thread, named by its host TID -------------------------------------------


def _owner(snap: Snapshot, futex: Futex, local: int, shared: bool, evidence: str) -> Wait:
    """A mutex edge to the thread whose TID (in the target's namespace) is `local`; the
    owner exited when no live thread has it."""
    owner = _locate(snap, futex.pid, local, shared)
    if owner is None:
        end = End(EndKind.UNKNOWN, reason=Reason.OWNER_EXITED, address=futex.addr, owner=local)
        return Wait(futex.pid, futex.tid, futex.what, end=end)
    return _edge(snap, futex, EdgeKind.MUTEX, owner, local, evidence)


def _locate(snap: Snapshot, pid: int, local: int, shared: bool) -> Optional[Tuple[int, int]]:
    """(host pid, host TID) of the live thread whose TID in pid's namespace is `local`:
    a thread of pid, or (a process-shared futex) of another process."""
    if not 0 < local <= PID_MAX_LIMIT:
        return None
    tid = snap.host_tid(pid, local)
    if tid is not None:
        return pid, tid
    return _elsewhere(snap, pid, local) if shared else None


def _elsewhere(snap: Snapshot, pid: int, local: int) -> Optional[Tuple[int, int]]:
    found = _by_host_id(snap, pid, local)
    if found is not None or snap.local_id(pid, pid) == pid:  # our namespace: ids are host ids
        return found
    return _by_nspid(snap, pid, local)


def _by_host_id(snap: Snapshot, pid: int, local: int) -> Optional[Tuple[int, int]]:
    """`local` read as a host TID (its /proc/TID/status Tgid), if pid sees that thread as `local`."""
    try:
        group = int(snap.status(local).get("Tgid", "0"))
    except (WaitchainError, ValueError):
        return None
    if group == pid or group not in snap.processes or not _has_thread(snap, group, local):
        return None
    return (group, local) if snap.local_id(group, pid, local) == local else None


def _by_nspid(snap: Snapshot, pid: int, local: int) -> Optional[Tuple[int, int]]:
    """The thread `local` among the processes of pid's pid namespace (their NSpid)."""
    pidns = snap.processes[pid].pidns if pid in snap.processes else ""
    others = [p for p in sorted(snap.processes) if p != pid and pidns and snap.processes[p].pidns == pidns]
    for other in others[:MAX_CANDIDATES]:
        tid = snap.host_tid(other, local)
        if tid is not None:
            return other, tid
    return None


def _has_thread(snap: Snapshot, pid: int, tid: int) -> bool:
    return any(t.tid == tid for t in snap.tasks(pid))


# --- edges and texts --------------------------------------------------------------------------


def _edge(snap: Snapshot, futex: Futex, kind: EdgeKind, owner: Tuple[int, int], local: int,
          evidence: str) -> Wait:
    to_pid, to_tid = owner
    edge = Edge(futex.pid, futex.tid, to_pid, to_tid, kind, f"futex {futex.addr:#x}",
                evidence + (_translated(local, to_tid) if kind == EdgeKind.MUTEX else ""), syscall="futex")
    return Wait(futex.pid, futex.tid, futex.what, (edge,))


def _translated(local: int, host: int) -> str:
    if local == host:
        return ""
    return f" (TID {local} in the process's pid namespace is host TID {host}: NSpid in /proc/PID/task/TID/status)"


def _python(snap: Snapshot, pid: int) -> bool:
    proc = snap.processes.get(pid)
    return proc is not None and proc.comm.startswith("python")


__all__ = ["rule", "decode", "Futex"]
