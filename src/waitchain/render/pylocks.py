"""Python threads in words, from the stacks stage's facts: a thread's own name, the lock it
waits for and its likely holder (inferred from source: model.LockHold), the locks it holds,
threads that wait for each other's locks (ABBA) and a thread that takes a lock it already
holds. Every string returned is cleaned of control characters."""

from __future__ import annotations

import os

from ..model import Diagnosis, LockHold, Stack
from ..sanitize import clean
from .common import name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional


def thread_name(diag: Diagnosis, pid: int, tid: int) -> str:
    """The thread's own name ("MainThread", Thread(name=...)) when py-spy read it, else ""."""
    stack = diag.stacks.get((pid, tid))
    return clean(diag.thread_names.get((pid, tid)) or (stack.name if stack else "") or "")


def thread_text(diag: Diagnosis, pid: int, tid: int) -> str:
    """`thread 19303 'worker-a'`, or `thread 19303` when it has no name."""
    named = thread_name(diag, pid, tid)
    return f"thread {tid} '{named}'" if named else f"thread {tid}"


def hold_text(hold: LockHold, inferred: bool = True) -> str:
    """`with a: at abba.py:5, inferred from source`."""
    what = f"with {clean(hold.expression)}:" if hold.statement == "with" else f"{clean(hold.expression)}.acquire()"
    return f"{what} at {clean(os.path.basename(hold.file))}:{hold.line}" + (", inferred from source" if inferred else "")


def lock_lines(diag: Diagnosis, pid: int, tid: int) -> List[str]:
    """What the thread holds and what it waits for, one line each."""
    stack = diag.stacks.get((pid, tid))
    if stack is None:
        return []
    out = [f"holds `{clean(h.expression)}` ({hold_text(h)})" for h in stack.holds if h.tid == tid
           and not _own(stack, h)]
    if stack.lock_wait:
        out.append(_wait_text(diag, pid, stack))
    return out


def _own(stack: Stack, hold: LockHold) -> bool:
    """The hold is the one its own wait re-takes (said once, by the wait's line)."""
    return stack.likely_holder == hold


def _holder(stack: Stack) -> Optional[int]:
    """Who holds the lock the thread waits for: an RLock's recorded owner, else the thread
    inferred from source."""
    if stack.lock_owner is not None:
        return stack.lock_owner
    return stack.likely_holder.tid if stack.likely_holder is not None else None


def _where(stack: Stack, inferred: bool = True) -> str:
    """How the holder is known: where it took the lock (inferred from source), or the
    RLock's own record of its owner."""
    hold = stack.likely_holder
    if stack.lock_owner is not None:
        return "the RLock's owner, read from the lock" + (
            f"; {hold_text(hold, inferred=False)}" if hold is not None and hold.tid == stack.lock_owner else "")
    return hold_text(hold, inferred) if hold is not None else ""


def _wait_text(diag: Diagnosis, pid: int, stack: Stack) -> str:
    lock = f"`{clean(stack.lock_wait)}`"
    holder = _holder(stack)
    if holder is None:
        return f"waits for {lock}; no thread is found inside `with {clean(stack.lock_wait)}:` or after its acquire()"
    if holder == stack.tid:
        return f"takes a lock it already holds: {lock} ({_where(stack)}); threading.Lock is not re-entrant"
    return f"waits for {lock}, held by {thread_text(diag, pid, holder)} ({_where(stack)})"


def lock_steps(diag: Diagnosis, pid: int) -> List[str]:
    """The lock facts of a process's threads as verdict steps: each ring of threads that wait
    for each other's locks (two: ABBA), each thread that re-takes its own lock."""
    stacks = {tid: s for (p, tid), s in sorted(diag.stacks.items()) if p == pid}
    waits: Dict[int, int] = {tid: h for tid, s in stacks.items() for h in [_holder(s)] if h is not None}
    out: List[str] = []
    seen: set = set()
    for tid in waits:
        if tid in seen:
            continue
        ring = _ring(waits, tid)
        if ring is None:
            continue
        seen.update(ring)
        if len(ring) == 1:
            out.append(f"{thread_text(diag, pid, tid)} {_wait_text(diag, pid, stacks[tid])}")
            continue
        parts = [f"{t} holds `{clean(before.lock_wait)}` ({_where(before, inferred=False)}) "
                 f"and waits for `{clean(stacks[t].lock_wait)}`"
                 for t in ring for before in [stacks[_prev(ring, t)]]]
        kind = "ABBA" if len(ring) == 2 else "each holds the lock the next one wants"
        inferred = any(stacks[t].lock_owner is None for t in ring)
        out.append(f"{' and '.join(thread_text(diag, pid, t) for t in ring)} wait for each other ({kind}): "
                   + "; ".join(parts) + (" (inferred from source)" if inferred else ""))
    return out


def _ring(waits: Dict[int, int], start: int) -> Optional[List[int]]:
    """The threads from `start` following "waits for the holder" back to `start`, or None."""
    path = [start]
    while True:
        nxt = waits.get(path[-1])
        if nxt is None:
            return None
        if nxt == start:
            return path
        if nxt in path:
            return None  # a ring that does not pass through start: found from one of its own
        path.append(nxt)


def _prev(ring: List[int], tid: int) -> int:
    """The member that waits for `tid`: its hold is the lock `tid` holds."""
    return ring[ring.index(tid) - 1]


# --- multiprocessing ---------------------------------------------------------------------------


def multiprocessing_queue(diag: Diagnosis, parent: int, tid: int, child: int) -> bool:
    """The parent waits in multiprocessing's Process.join for a child that is stuck on a
    multiprocessing.Queue (putting, its feeder thread writing, or joining the feeder at exit)."""
    waiter = diag.stacks.get((parent, tid))
    return (waiter is not None and waiter.library_wait == "multiprocessing-join"
            and any(s.library_wait == "multiprocessing-queue" for (p, _), s in diag.stacks.items() if p == child))


def get_before_join(diag: Diagnosis, parent: int, child: int) -> str:
    """To fix: the parent reads the queue before it joins the child."""
    return (f"{name(diag, parent)} joins its multiprocessing child {child} before reading the multiprocessing.Queue "
            "the child writes: the child cannot exit until its queue's feeder thread has put "
            "everything into the pipe, and the pipe is full. get() before join(): call queue.get() "
            "until you have every result (or a sentinel), then p.join()")
