"""futex: a thread waiting for another thread.

- A glibc pthread mutex waits with FUTEX_WAIT on its lock word and value 2; the owner's TID
  is the int at offset 8 (`=iIi` lock, count, owner on x86_64 and aarch64 glibc).
- PI mutexes (FUTEX_LOCK_PI) and robust mutexes keep the owner TID in the word itself
  (low 30 bits; FUTEX_WAITERS and FUTEX_OWNER_DIED above).
- pthread_join waits on the joined thread's tid word: the expected value is that TID.
- Anything else (condition variables, semaphores, Python locks) names no owner.
Memory is read with process_vm_readv: the target is never stopped."""

from __future__ import annotations

from typing import Optional

from ..errors import WaitchainError
from ..model import Edge, End, Task, Wait
from ..procfs.cstructs import read_mutex, read_u32
from ..procfs.status import thread_group
from ..snapshot import Snapshot

SYSCALLS = {"futex"}
WAIT, LOCK_PI, TRYLOCK_PI, WAIT_BITSET, WAIT_REQUEUE_PI, LOCK_PI2 = 0, 6, 8, 9, 11, 13
PRIVATE, CLOCK_REALTIME = 128, 256
WAITERS, OWNER_DIED, TID_MASK = 0x80000000, 0x40000000, 0x3FFFFFFF
PID_MAX_LIMIT = 1 << 22  # the kernel's upper bound for pid_max
NAMES = {WAIT: "FUTEX_WAIT", LOCK_PI: "FUTEX_LOCK_PI", TRYLOCK_PI: "FUTEX_TRYLOCK_PI",
         WAIT_BITSET: "FUTEX_WAIT_BITSET", WAIT_REQUEUE_PI: "FUTEX_WAIT_REQUEUE_PI",
         LOCK_PI2: "FUTEX_LOCK_PI2"}
NO_OWNER = "no owner can be known: a condition variable, a semaphore, or a lock that records none"
PYTHON_LOCK = " (Python's threading.Lock is one)"


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    addr, op, val = call.args[0], call.args[1] & 0xFFFFFFFF, call.args[2] & 0xFFFFFFFF
    cmd = op & ~(PRIVATE | CLOCK_REALTIME)
    what = f"futex({addr:#x}, {_op_text(op)}, {val})"
    try:
        found = _follow(snap, pid, task.tid, addr, cmd, op & PRIVATE, val, what)
    except WaitchainError as exc:
        return Wait(pid, task.tid, what, end=End("unknown", f"the futex word is unreadable: {exc}"))
    return found or Wait(pid, task.tid, what, end=End("unknown", _no_owner(snap, pid, addr)))


def _no_owner(snap: Snapshot, pid: int, addr: int) -> str:
    proc = snap.processes.get(pid)
    python = proc is not None and proc.comm.startswith("python")
    return f"waits on a futex at {addr:#x}; {NO_OWNER}" + (PYTHON_LOCK if python else "")


def _op_text(op: int) -> str:
    text = NAMES.get(op & ~(PRIVATE | CLOCK_REALTIME), str(op & 0x7F))
    return text + ("_PRIVATE" if op & PRIVATE else "") + ("|FUTEX_CLOCK_REALTIME" if op & CLOCK_REALTIME else "")


def _follow(snap: Snapshot, pid: int, tid: int, addr: int, cmd: int, private: int, val: int,
            what: str) -> Optional[Wait]:
    if cmd in (LOCK_PI, LOCK_PI2, TRYLOCK_PI):
        word = read_u32(pid, addr)
        evidence = f"PI futex word at {addr:#x} is {word:#x}: the owner TID is its low 30 bits"
        return _owner(snap, pid, tid, word & TID_MASK, private, "mutex", addr, evidence, what)
    if cmd not in (WAIT, WAIT_BITSET):
        return None
    if val & WAITERS and _holder(snap, pid, val & TID_MASK, private) is not None:
        evidence = f"robust mutex word at {addr:#x} is {val:#x}: the owner TID is its low 30 bits"
        return _owner(snap, pid, tid, val & TID_MASK, private, "mutex", addr, evidence, what)
    if val > 2 and _is_thread(snap, pid, val) and read_u32(pid, addr) == val:
        evidence = (f"futex word at {addr:#x} holds {val}, the TID of a thread of this process: "
                    "pthread_join waits on the joined thread's tid word until it exits")
        return _edge(pid, tid, pid, val, "join", addr, evidence, f"waits for thread {val} to exit", what)
    if val == 2:
        return _mutex(snap, pid, tid, addr, private, what)
    return None


def _mutex(snap: Snapshot, pid: int, tid: int, addr: int, private: int, what: str) -> Optional[Wait]:
    lock, count, owner = read_mutex(pid, addr)
    if lock == 0 or owner <= 0:
        return None
    evidence = (f"glibc pthread_mutex_t at {addr:#x} read with process_vm_readv: lock={lock} "
                f"count={count} owner TID={owner} (the int at offset 8)")
    return _owner(snap, pid, tid, owner, private, "mutex", addr, evidence, what)


def _owner(snap: Snapshot, pid: int, tid: int, owner: int, private: int, kind: str, addr: int,
           evidence: str, what: str) -> Wait:
    holder = _holder(snap, pid, owner, private)
    if holder is None:
        detail = f"the mutex at {addr:#x} names owner TID {owner}, which is not a live thread: it exited holding the lock"
        return Wait(pid, tid, what, end=End("unknown", detail))
    label = (f"waits for thread {owner}, the mutex owner" if owner != tid
             else "waits for itself: it relocks a mutex it holds")
    return _edge(pid, tid, holder, owner, kind, addr, evidence, label, what)


def _edge(pid: int, tid: int, to_pid: int, to_tid: int, kind: str, addr: int, evidence: str,
          label: str, what: str) -> Wait:
    edge = Edge(pid, tid, to_pid, to_tid, kind, f"futex {addr:#x}", evidence, label)
    return Wait(pid, tid, what, (edge,))


def _holder(snap: Snapshot, pid: int, owner: int, private: int) -> Optional[int]:
    """The process of a live thread `owner`: this one, or (shared futex) another."""
    if not 0 < owner <= PID_MAX_LIMIT:
        return None
    if _is_thread(snap, pid, owner):
        return pid
    return None if private else _group(snap, owner)


def _is_thread(snap: Snapshot, pid: int, tid: int) -> bool:
    return any(t.tid == tid for t in snap.tasks(pid))


def _group(snap: Snapshot, tid: int) -> Optional[int]:
    """The process of a thread in another process (a process-shared mutex)."""
    try:
        group = thread_group(snap.fs, tid)
    except WaitchainError:
        return None
    return group if group in snap.processes else None
